/* The FIM model input of a scenario: <fim_prefix> P <fim_suffix> S <fim_middle>
 * in exactly N tokens, tokenizing only a window of bytes around the target.
 *
 * Why a window gives the same tokens as the whole prefix/suffix: the
 * tokenizer splits text into pieces (added tokens first, then Digits, then the
 * GPT-2 regex 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|
 * \s+(?!\S)|\s+) and runs BPE inside each piece, so two texts give the same
 * tokens wherever they give the same pieces. The regex has no look-behind:
 * where a scan is at a piece boundary, what follows depends only on the text
 * after it.
 *  - Prefix (we keep its end): a cut c with text[c-1] == '\n' and text[c] a
 *    visible ASCII character is a piece boundary of the whole prefix, because
 *    a piece holding '\n' is all whitespace (only a plain ' ' may lead a
 *    non-space piece) and cannot run into text[c]. From c on, the whole text
 *    and the window text[c..] are scanned identically.
 *  - Suffix (we keep its start): a cut c with text[c-1] a visible ASCII
 *    character and text[c] one of ' ' \t \n \r is a piece boundary too (a
 *    non-space piece holds whitespace only as its first byte), and every
 *    piece before c ends where it does in the whole text: greedy runs stop at
 *    the same byte or at c, and the one look-ahead, (?!\S), only looks inside
 *    a whitespace run that ends before c-1.
 *  - Added tokens are matched first on the whole text; none of StarCoder2's
 *    contains whitespace, so none can straddle either kind of cut.
 * tests/test_mine_fim.c checks windowed against whole tokenization on JDK
 * files. */
#include "apmae/mine.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static int visible_ascii(char ch) { return ch > 0x20 && ch < 0x7F; }
static int cut_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

/* The largest prefix cut c <= lo (0 when there is none). */
static size_t prefix_cut(const char *text, size_t lo) {
    for (size_t c = lo; c > 0; c--)
        if (text[c - 1] == '\n' && visible_ascii(text[c])) return c;
    return 0;
}

/* The smallest suffix cut c >= hi (len when there is none). */
static size_t suffix_cut(const char *text, size_t len, size_t hi) {
    for (size_t c = hi > 0 ? hi : 1; c < len; c++)
        if (visible_ascii(text[c - 1]) && cut_space(text[c])) return c;
    return len;
}

static ap_status encode(const ap_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n,
                        ap_error *err) {
    if (len == 0) { /* nothing to tokenize; keep the caller's free() valid */
        *n = 0;
        *ids = ap_malloc(sizeof **ids, err);
        return *ids ? AP_OK : AP_ERR_NOMEM;
    }
    return ap_tokenizer_encode(tok, text, len, ids, n, err);
}

/* A first window of about 4 bytes per token; doubled until it is enough. */
static size_t first_window(size_t need) { return 4 * need + 256; }

ap_status ap_fim_prefix_tail(const ap_tokenizer *tok, const char *text, size_t len, size_t need, int32_t **ids,
                             size_t *n, int *whole, ap_error *err) {
    size_t w = first_window(need);
    for (;;) {
        size_t c = len > w ? prefix_cut(text, len - w) : 0;
        ap_status st = encode(tok, text + c, len - c, ids, n, err);
        if (st) return st;
        if (*n >= need || c == 0) {
            *whole = c == 0;
            return AP_OK;
        }
        free(*ids);
        *ids = NULL;
        w = 2 * w > len - c + 1 ? 2 * w : len - c + 1; /* the next window always reaches further */
    }
}

ap_status ap_fim_suffix_head(const ap_tokenizer *tok, const char *text, size_t len, size_t need, int32_t **ids,
                             size_t *n, int *whole, ap_error *err) {
    size_t w = first_window(need);
    for (;;) {
        size_t c = w < len ? suffix_cut(text, len, w) : len;
        ap_status st = encode(tok, text, c, ids, n, err);
        if (st) return st;
        if (*n >= need || c == len) {
            *whole = c == len;
            return AP_OK;
        }
        free(*ids);
        *ids = NULL;
        w = 2 * w > c + 1 ? 2 * w : c + 1;
    }
}

/* ---- vocabulary facts ---- */

/* Marks the ids of tokenizer.json's added_tokens (special tokens among them). */
static ap_status mark_added(ap_mine_vocab *v, const char *path, ap_error *err) {
    char *file = ap_path_is_dir(path) ? ap_path_join(path, "tokenizer.json", err) : ap_strdup(path, err);
    if (!file) return AP_ERR_NOMEM;
    char *json;
    size_t len;
    ap_status st = ap_read_file(file, &json, &len, err);
    if (st) {
        free(file);
        return st;
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    free(json);
    const cJSON *added = root ? cJSON_GetObjectItemCaseSensitive(root, "added_tokens") : NULL;
    if (!cJSON_IsArray(added)) st = ap_fail(err, AP_ERR_FORMAT, "%s: no added_tokens array", file);
    const cJSON *t;
    cJSON_ArrayForEach(t, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(t, "id");
        if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < (double)v->size)
            v->is_added[(size_t)id->valuedouble] = 1;
    }
    cJSON_Delete(root);
    free(file);
    return st;
}

/* Bytes a token decodes to: an added token is its literal text; a byte-level
 * vocabulary entry spells one byte per character. */
static uint32_t token_bytes(const char *s, int added) {
    if (added) return (uint32_t)strlen(s);
    uint32_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static ap_status fim_id(ap_mine_vocab *v, const char *name, const char *path, int32_t *out, ap_error *err) {
    *out = ap_tokenizer_token_id(v->tok, name);
    if (*out < 0 || (size_t)*out >= v->size)
        return ap_fail(err, AP_ERR_FORMAT, "%s: the tokenizer has no %s token; mining needs a StarCoder2-style tokenizer",
                       path, name);
    return AP_OK;
}

ap_status ap_mine_vocab_init(ap_mine_vocab *v, const ap_tokenizer *tok, const char *tokenizer_path, ap_error *err) {
    memset(v, 0, sizeof *v);
    v->tok = tok;
    v->size = ap_tokenizer_vocab_size(tok);
    ap_status st = fim_id(v, "<fim_prefix>", tokenizer_path, &v->fim_prefix, err);
    if (!st) st = fim_id(v, "<fim_middle>", tokenizer_path, &v->fim_middle, err);
    if (!st) st = fim_id(v, "<fim_suffix>", tokenizer_path, &v->fim_suffix, err);
    if (st) return st;
    v->is_added = ap_calloc(v->size, 1, err);
    v->byte_len = ap_calloc(v->size, sizeof *v->byte_len, err);
    v->plain_ids = ap_malloc(v->size * sizeof *v->plain_ids, err);
    if (!v->is_added || !v->byte_len || !v->plain_ids) {
        ap_mine_vocab_free(v);
        return AP_ERR_NOMEM;
    }
    st = mark_added(v, tokenizer_path, err);
    if (st) {
        ap_mine_vocab_free(v);
        return st;
    }
    v->is_added[v->fim_prefix] = v->is_added[v->fim_middle] = v->is_added[v->fim_suffix] = 1;
    for (size_t id = 0; id < v->size; id++) {
        const char *s = ap_tokenizer_id_to_token(tok, (int32_t)id);
        if (!s) {
            v->is_added[id] = 1; /* an unused id is never drawn */
            continue;
        }
        v->byte_len[id] = token_bytes(s, v->is_added[id]);
        if (!v->is_added[id]) v->plain_ids[v->nplain++] = (int32_t)id;
    }
    return AP_OK;
}

void ap_mine_vocab_free(ap_mine_vocab *v) {
    free(v->is_added);
    free(v->byte_len);
    free(v->plain_ids);
    memset(v, 0, sizeof *v);
}

/* ---- the model input ---- */

static int has_added(const ap_mine_vocab *v, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= v->size || v->is_added[ids[i]]) return 1;
    return 0;
}

/* The prefix and suffix token counts: each side's share of N-3, a short side
 * (one that is whole and smaller than its share) giving its slack to the
 * other. Re-tokenizes the other side with a larger need when that is used.
 * Returns 0 when the two sides cannot fill N-3 slots together. */
typedef struct side {
    int32_t *ids;
    size_t n;
    int whole;
} side;

static ap_status split_slots(const ap_mine_vocab *v, const char *text, size_t len, size_t start, size_t end,
                             size_t slots, side *p, side *s, size_t *take_p, size_t *take_s, int *fits,
                             ap_error *err) {
    size_t hs = slots / 2, hp = slots - hs;
    ap_status st = ap_fim_prefix_tail(v->tok, text, start, hp, &p->ids, &p->n, &p->whole, err);
    if (!st) st = ap_fim_suffix_head(v->tok, text + end, len - end, hs, &s->ids, &s->n, &s->whole, err);
    if (st) return st;
    *take_p = hp;
    *take_s = hs;
    if (p->n < hp) {
        *take_p = p->n;
        *take_s = slots - p->n;
        if (s->n < *take_s && !s->whole) {
            free(s->ids);
            s->ids = NULL;
            st = ap_fim_suffix_head(v->tok, text + end, len - end, *take_s, &s->ids, &s->n, &s->whole, err);
        }
    } else if (s->n < hs) {
        *take_s = s->n;
        *take_p = slots - s->n;
        if (p->n < *take_p && !p->whole) {
            free(p->ids);
            p->ids = NULL;
            st = ap_fim_prefix_tail(v->tok, text, start, *take_p, &p->ids, &p->n, &p->whole, err);
        }
    }
    *fits = p->n >= *take_p && s->n >= *take_s;
    return st;
}

ap_status ap_fim_build(const ap_mine_vocab *v, const char *text, size_t len, size_t start, size_t end, size_t n,
                       ap_fim_input *in, ap_error *err) {
    in->prefix_tokens = in->suffix_tokens = 0;
    in->label_id = -1;
    in->result = AP_FIM_OK;
    if (n < 16) return ap_fail(err, AP_ERR_ARG, "max_length %zu is below 16", n);
    if (start >= end || end > len)
        return ap_fail(err, AP_ERR_RANGE, "target [%zu, %zu) is not a non-empty span of %zu bytes", start, end, len);
    side p = {0}, s = {0};
    size_t take_p, take_s;
    int fits;
    int32_t *label = NULL;
    size_t nlabel = 0;
    ap_status st = split_slots(v, text, len, start, end, n - 3, &p, &s, &take_p, &take_s, &fits, err);
    if (!st && !fits) in->result = AP_FIM_TOO_SHORT;
    if (!st && fits) st = encode(v->tok, text + start, end - start, &label, &nlabel, err);
    if (!st && fits && nlabel == 0)
        st = ap_fail(err, AP_ERR_INTERNAL, "the target [%zu, %zu) tokenizes to nothing", start, end);
    if (!st && fits) {
        const int32_t *pk = p.ids + (p.n - take_p);
        if (has_added(v, pk, take_p) || has_added(v, s.ids, take_s) || has_added(v, label, 1)) {
            in->result = AP_FIM_SPECIAL_TOKEN;
        } else {
            in->ids[0] = v->fim_prefix;
            memcpy(in->ids + 1, pk, take_p * sizeof *pk);
            in->ids[1 + take_p] = v->fim_suffix;
            memcpy(in->ids + 2 + take_p, s.ids, take_s * sizeof *s.ids);
            in->ids[n - 1] = v->fim_middle;
            in->prefix_tokens = take_p;
            in->suffix_tokens = take_s;
            in->label_id = label[0];
        }
    }
    free(p.ids);
    free(s.ids);
    free(label);
    return st;
}
