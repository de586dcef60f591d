/* apmae/bpe_train.h — training a byte-level BPE tokenizer the way
 * StarCoder2's was built: StarCoder2's pre-tokenization (Digits with
 * individual digits, then the GPT-2 ByteLevel split; special tokens in the
 * text are cut out and not learned), its 38 special tokens first (ids 0-37:
 * <|endoftext|>, <fim_prefix>, <fim_middle>, <fim_suffix>, <fim_pad>, ...),
 * then the 256 byte symbols in byte order, then one token per merge.
 *
 * Merges: the pair of adjacent symbols with the highest count over the word
 * frequencies wins, ties going to the smaller (left id, right id); counts
 * are updated incrementally after each merge. A merge whose result already
 * is a token reuses that token's id (as the Hugging Face trainer does), so
 * merges continue until the vocabulary has vocab_size ids or no pair occurs
 * min_frequency times. The result is a Hugging Face tokenizer.json that
 * apmae (apmae/text.h) and the `tokenizers` libraries load and agree on. */
#ifndef APMAE_BPE_TRAIN_H
#define APMAE_BPE_TRAIN_H

#include "apmae/base.h"

/* StarCoder2's added tokens in id order. */
extern const char *const ap_sc2_special_tokens[];
extern const size_t ap_sc2_special_count;

typedef struct ap_bpe_trainer ap_bpe_trainer;

ap_status ap_bpe_trainer_new(ap_bpe_trainer **out, ap_error *err);
void ap_bpe_trainer_free(ap_bpe_trainer *t);
/* Pre-tokenize n texts (in parallel) and add their words to the counts.
 * Invalid UTF-8 is replaced as encoding does (U+FFFD). */
ap_status ap_bpe_trainer_feed(ap_bpe_trainer *t, const char *const *texts, const size_t *lens, size_t n,
                              ap_error *err);

typedef struct ap_bpe_train_options {
    size_t vocab_size;     /* ids in total, special tokens and bytes included (> 294) */
    int64_t min_frequency; /* a pair seen fewer times is never merged (>= 1) */
    int progress;
} ap_bpe_train_options;

typedef struct ap_bpe_train_stats {
    int64_t words, unique_words; /* pre-tokenized pieces fed, distinct ones */
    size_t vocab_size, merges;   /* what the tokenizer got */
    double seconds;              /* of the merge phase */
} ap_bpe_train_stats;

/* Learn the merges and append the tokenizer.json text to out. */
ap_status ap_bpe_trainer_train(ap_bpe_trainer *t, const ap_bpe_train_options *o, ap_buf *out,
                               ap_bpe_train_stats *stats, ap_error *err);

#endif
