/* apmae/text.h — the Hugging Face byte-level BPE tokenizer (tokenizer.json)
 * as StarCoder2 uses it: added/special tokens matched first, then the
 * pre-tokenizer sequence (Digits(individual_digits) + ByteLevel with the GPT-2
 * split regex, no prefix space), BPE merges by rank, ByteLevel decoding.
 * Encoding equals the Hugging Face `tokenizers` (Rust crate) result token for
 * token. A loaded tokenizer is read-only: threads may share it. */
#ifndef APMAE_TEXT_H
#define APMAE_TEXT_H

#include "apmae/base.h"

typedef struct ap_tokenizer ap_tokenizer;

/* path: a tokenizer.json, or a directory holding one. A tokenizer of another
 * kind (model type other than BPE, a normalizer or pre-tokenizer apmae does
 * not implement) is an error naming the file and the unsupported part. */
ap_status ap_tokenizer_load(const char *path, ap_tokenizer **out, ap_error *err);
void ap_tokenizer_free(ap_tokenizer *tok);

/* Encode len bytes of text (need not be NUL-terminated or valid UTF-8; invalid
 * sequences are handled as Hugging Face does after lossy UTF-8 decoding).
 * Added tokens inside the text are recognised. *ids is malloc'ed. */
ap_status ap_tokenizer_encode(const ap_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n,
                              ap_error *err);
/* Decode ids to text (special tokens included, as HF decode with
 * skip_special_tokens=false). *text is malloc'ed and NUL-terminated. Ids out of
 * range are an AP_ERR_RANGE error. The result is the raw bytes the tokens stand
 * for: where HF returns a string with invalid UTF-8 replaced (a sequence cut
 * inside a character), this returns the bytes; ap_utf8_lossy gives HF's form. */
ap_status ap_tokenizer_decode(const ap_tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len,
                              ap_error *err);

/* Copy of len bytes with each maximal invalid UTF-8 subpart replaced by U+FFFD,
 * as Rust's String::from_utf8_lossy (and the WHATWG decoder) do. *out is
 * malloc'ed and NUL-terminated. */
ap_status ap_utf8_lossy(const char *s, size_t len, char **out, size_t *out_len, ap_error *err);

/* Size of the id space (max id + 1, added tokens included). */
size_t ap_tokenizer_vocab_size(const ap_tokenizer *tok);
/* Id of a token string (vocab entry or added token); -1 when absent. */
int32_t ap_tokenizer_token_id(const ap_tokenizer *tok, const char *token);
/* The token string of an id (its byte-level form), NULL when out of range. */
const char *ap_tokenizer_id_to_token(const ap_tokenizer *tok, int32_t id);

#endif
