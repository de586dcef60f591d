/* Encoding (text -> ids) and decoding (ids -> bytes). */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct encode_ctx {
    const ap_tokenizer *tok;
    tok_bpe_state *bpe;
    int32_t *ids;
    size_t n, cap;
} encode_ctx;

static ap_status on_piece(void *ctx, const char *piece, size_t len, int32_t added_id, ap_error *err) {
    encode_ctx *c = ctx;
    if (piece) return tok_bpe_piece(c->tok, c->bpe, piece, len, &c->ids, &c->n, &c->cap, err);
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        int32_t *p = ap_realloc(c->ids, cap * sizeof *p, err);
        if (!p) return AP_ERR_NOMEM;
        c->ids = p;
        c->cap = cap;
    }
    c->ids[c->n++] = added_id;
    return AP_OK;
}

ap_status ap_tokenizer_encode(const ap_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n,
                              ap_error *err) {
    *ids = NULL;
    *n = 0;
    /* The Rust crate takes a str: callers holding bytes convert them lossily
     * first, so do the same with invalid UTF-8. */
    char *fixed = NULL;
    if (len && tok_utf8_valid_prefix(text, len) != len) {
        ap_status st = ap_utf8_lossy(text, len, &fixed, &len, err);
        if (st) return st;
        text = fixed;
    }
    encode_ctx c = {tok, tok_bpe_state_new(err), NULL, 0, 0};
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    ap_status st = AP_OK;
    if (!c.bpe || !md) st = c.bpe ? ap_fail(err, AP_ERR_NOMEM, "out of memory for regex match data") : AP_ERR_NOMEM;
    else if (len) st = tok_pretokenize(tok, text, len, md, on_piece, &c, err);
    if (!st && !c.ids && !(c.ids = ap_malloc(sizeof *c.ids, err))) st = AP_ERR_NOMEM;
    pcre2_match_data_free(md);
    tok_bpe_state_free(c.bpe);
    free(fixed);
    if (st) {
        free(c.ids);
        return st;
    }
    *ids = c.ids;
    *n = c.n;
    return AP_OK;
}

/* A token's bytes: each character mapped back through the ByteLevel alphabet;
 * a token with a character outside it (an added token such as "<a b>")
 * contributes its own UTF-8 bytes, as the Rust ByteLevel decoder does. */
static ap_status append_token_bytes(ap_buf *out, const char *t, size_t len, ap_error *err) {
    size_t start = out->len;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += tok_utf8_get(t + i, len - i, &cp);
        int b = tok_cp_to_byte(cp);
        if (b < 0) {
            out->len = start;
            return ap_buf_append(out, t, len, err);
        }
        char byte = (char)b;
        ap_status st = ap_buf_append(out, &byte, 1, err);
        if (st) return st;
    }
    return AP_OK;
}

ap_status ap_tokenizer_decode(const ap_tokenizer *tok, const int32_t *ids, size_t n, char **text, size_t *len,
                              ap_error *err) {
    *text = NULL;
    *len = 0;
    ap_buf out = {0};
    ap_status st = ap_buf_append(&out, NULL, 0, err);
    for (size_t i = 0; !st && i < n; i++) {
        const char *t = ap_tokenizer_id_to_token(tok, ids[i]);
        if (!t)
            st = ap_fail(err, AP_ERR_RANGE, "token id %d (position %zu) is not in the vocabulary (%zu ids)", ids[i], i,
                         tok->n_ids);
        else st = append_token_bytes(&out, t, tok->id_len[ids[i]], err);
    }
    if (st) {
        ap_buf_free(&out);
        return st;
    }
    *text = out.data;
    *len = out.len;
    return AP_OK;
}
