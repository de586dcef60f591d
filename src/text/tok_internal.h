/* Internals of the byte-level BPE tokenizer (src/text), shared by its files:
 * tokenizer.c loads and validates tokenizer.json, tables.c holds the hash
 * tables, bytelevel.c the GPT-2 byte alphabet and lossy UTF-8, pretokenize.c
 * the added-token split and the split regex, bpe.c the merges, encode.c the
 * public encode/decode. */
#ifndef APMAE_TEXT_TOK_INTERNAL_H
#define APMAE_TEXT_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "apmae/text.h"

/* An entry of tokenizer.json's added_tokens. */
typedef struct tok_added {
    const char *content;
    uint32_t len;
    int32_t id;
    uint8_t special, single_word, lstrip, rstrip, normalized;
} tok_added;

/* One merge rule: the pair (a, b) of ids (key = a << 32 | b) becomes new_id;
 * lower rank merges first. */
typedef struct tok_merge {
    uint64_t key;
    uint32_t rank;
    int32_t new_id;
} tok_merge;

/* The Digits pre-tokenizer in front of ByteLevel, if any. */
typedef enum tok_digits { TOK_DIGITS_NONE, TOK_DIGITS_INDIVIDUAL, TOK_DIGITS_CONTIGUOUS } tok_digits;

struct ap_tokenizer {
    char *path;   /* the tokenizer.json, for messages */
    char *arena;  /* all token strings, NUL-terminated, back to back */
    size_t n_ids; /* id space: max id + 1 */

    /* The BPE model's vocabulary: by id (NULL = no model token) and by string
     * (open addressing, slot = id + 1, 0 = empty). */
    const char **model_tok;
    uint32_t *model_len;
    uint32_t *vocab_slots;
    uint32_t vocab_mask;

    /* What each id decodes from: the added token's content, else the model's. */
    const char **id_tok;
    uint32_t *id_len;

    tok_added *added;
    size_t n_added;
    /* Bytes that can start an added token, per matching pass (index 0: tokens
     * with normalized=false, matched first; 1: normalized=true). */
    uint8_t added_first[2][256];
    size_t n_added_pass[2];

    tok_merge *merges; /* open addressing, key UINT64_MAX = empty */
    uint32_t merges_mask;

    int32_t byte_id[256]; /* id of each byte's ByteLevel character, -1 if absent */
    int32_t unk_id;       /* -1: characters without an id are dropped */
    int fuse_unk, ignore_merges;

    tok_digits digits;
    pcre2_code *split_re; /* the GPT-2 split regex (with the Digits rule folded in) */
    pcre2_code *word_re;  /* Unicode \w at the start, for single_word added tokens */
};

/* --- tables.c --- */
uint64_t tok_hash(const void *data, size_t len);
/* Build the string -> id table over model_tok. */
ap_status tok_vocab_index(ap_tokenizer *tok, ap_error *err);
/* Model vocabulary id of a token string, -1 when absent. */
int32_t tok_vocab_find(const ap_tokenizer *tok, const char *s, size_t len);
/* Allocate the merge table for n rules. */
ap_status tok_merges_alloc(ap_tokenizer *tok, size_t n, ap_error *err);
/* Insert or overwrite (a later duplicate rule wins, as in the Rust crate). */
void tok_merges_put(ap_tokenizer *tok, int32_t a, int32_t b, uint32_t rank, int32_t new_id);
const tok_merge *tok_merges_find(const ap_tokenizer *tok, int32_t a, int32_t b);

/* --- bytelevel.c --- */
/* The Unicode code point that stands for byte b in ByteLevel token strings. */
uint32_t tok_byte_to_cp(uint8_t b);
/* Inverse: the byte a code point stands for, -1 when it is not in the alphabet. */
int tok_cp_to_byte(uint32_t cp);
/* Append the UTF-8 encoding of cp (at most 4 bytes) to out; returns its length. */
size_t tok_utf8_put(uint32_t cp, char *out);
/* Decode one UTF-8 character of valid UTF-8 at s (n > 0 bytes left); sets
 * *cp and returns its length. */
size_t tok_utf8_get(const char *s, size_t n, uint32_t *cp);
/* Length of the valid UTF-8 prefix of s. */
size_t tok_utf8_valid_prefix(const char *s, size_t n);
/* The Unicode White_Space property. */
int tok_is_white_space(uint32_t cp);

/* --- pretokenize.c --- */
/* Compile split_re for tok->digits (and word_re when single_word is used). */
ap_status tok_compile_regexes(ap_tokenizer *tok, ap_error *err);

/* Receives each piece of a pre-tokenized text (a regex match, never empty),
 * or an added token (piece NULL, id set). */
typedef ap_status (*tok_piece_fn)(void *ctx, const char *piece, size_t len, int32_t added_id, ap_error *err);
/* Split valid UTF-8 text: added tokens first (two passes, leftmost-longest,
 * with lstrip/rstrip/single_word), then the split regex on the rest. */
ap_status tok_pretokenize(const ap_tokenizer *tok, const char *text, size_t len, pcre2_match_data *md, tok_piece_fn fn,
                          void *ctx, ap_error *err);

/* --- bpe.c --- */
/* Scratch state for encoding: the merge heap, symbols and a cache of the ids
 * of pieces already seen in this call. */
typedef struct tok_bpe_state tok_bpe_state;
tok_bpe_state *tok_bpe_state_new(ap_error *err);
void tok_bpe_state_free(tok_bpe_state *st);
/* Append the ids of one piece (raw bytes, before the ByteLevel mapping). */
ap_status tok_bpe_piece(const ap_tokenizer *tok, tok_bpe_state *st, const char *piece, size_t len, int32_t **ids,
                        size_t *n, size_t *cap, ap_error *err);

#endif
