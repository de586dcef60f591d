/* Loading tokenizer.json: the subset of Hugging Face `tokenizers` that
 * byte-level BPE models such as StarCoder2 and GPT-2 use, validated strictly:
 * anything that would change the ids and that apmae does not implement is an
 * error naming the file and the part, never silently ignored. */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static ap_status unsupported(const ap_tokenizer *tok, ap_error *err, const char *fmt, ...) AP_PRINTF(3, 4);
static ap_status unsupported(const ap_tokenizer *tok, ap_error *err, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ap_fail(err, AP_ERR_FORMAT, "%s: unsupported tokenizer: %s (apmae implements byte-level BPE: %s)", tok->path,
                   what, "model BPE, no normalizer, [Digits +] ByteLevel pre-tokenizer and decoder");
}

static int absent(const cJSON *j) { return !j || cJSON_IsNull(j); }

static const char *type_of(const cJSON *j) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
    return cJSON_IsString(t) ? t->valuestring : "(no type)";
}

static int has_type(const cJSON *j, const char *type) { return cJSON_IsObject(j) && strcmp(type_of(j), type) == 0; }

/* A boolean field: def when absent or null, an error when of another type. */
static ap_status get_bool(const ap_tokenizer *tok, const cJSON *obj, const char *where, const char *key, int def,
                          int *out, ap_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (absent(j)) {
        *out = def;
        return AP_OK;
    }
    if (!cJSON_IsBool(j)) return ap_fail(err, AP_ERR_FORMAT, "%s: %s.%s must be true or false", tok->path, where, key);
    *out = cJSON_IsTrue(j);
    return AP_OK;
}

/* An id: an integer in [0, limit). */
static ap_status get_id(const ap_tokenizer *tok, const cJSON *j, size_t limit, const char *what, int32_t *out,
                        ap_error *err) {
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < 0 ||
        j->valuedouble >= (double)limit)
        return ap_fail(err, AP_ERR_FORMAT, "%s: the id of %s is not an integer in [0, %zu)", tok->path, what, limit);
    *out = (int32_t)j->valuedouble;
    return AP_OK;
}

/* A ByteLevel pre-tokenizer: add_prefix_space is required (as in the Rust
 * crate) and must be false; use_regex defaults to true and must be. */
static ap_status check_byte_level(const ap_tokenizer *tok, const cJSON *j, const char *where, ap_error *err) {
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space");
    if (!cJSON_IsBool(prefix))
        return ap_fail(err, AP_ERR_FORMAT, "%s: %s.add_prefix_space must be true or false", tok->path, where);
    if (cJSON_IsTrue(prefix)) return unsupported(tok, err, "%s with add_prefix_space true", where);
    int use_regex = 1;
    ap_status st = get_bool(tok, j, where, "use_regex", 1, &use_regex, err);
    if (st) return st;
    return use_regex ? AP_OK : unsupported(tok, err, "%s with use_regex false", where);
}

/* pre_tokenizer: ByteLevel, or Sequence [ByteLevel] / [Digits, ByteLevel]. */
static ap_status parse_pre_tokenizer(ap_tokenizer *tok, const cJSON *j, ap_error *err) {
    if (absent(j)) return unsupported(tok, err, "no pre_tokenizer");
    if (has_type(j, "ByteLevel")) return check_byte_level(tok, j, "pre_tokenizer", err);
    if (!has_type(j, "Sequence")) return unsupported(tok, err, "pre_tokenizer type '%s'", type_of(j));
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;
    if (n < 1 || n > 2 || !has_type(cJSON_GetArrayItem(list, n - 1), "ByteLevel"))
        return unsupported(tok, err, "pre_tokenizer Sequence other than [ByteLevel] or [Digits, ByteLevel]");
    if (n == 2) {
        const cJSON *d = cJSON_GetArrayItem(list, 0);
        if (!has_type(d, "Digits"))
            return unsupported(tok, err, "pre_tokenizer '%s' before ByteLevel (only Digits is implemented)",
                               type_of(d));
        int individual = 0;
        ap_status st = get_bool(tok, d, "pre_tokenizer Digits", "individual_digits", 0, &individual, err);
        if (st) return st;
        tok->digits = individual ? TOK_DIGITS_INDIVIDUAL : TOK_DIGITS_CONTIGUOUS;
    }
    return check_byte_level(tok, cJSON_GetArrayItem(list, n - 1), "pre_tokenizer ByteLevel", err);
}

/* The parts around the model: what would change ids or decoding must be
 * absent or exactly what apmae implements. */
static ap_status check_pipeline(ap_tokenizer *tok, const cJSON *root, ap_error *err) {
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (!absent(norm)) return unsupported(tok, err, "normalizer '%s'", type_of(norm));
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (!absent(post) && !has_type(post, "ByteLevel")) /* ByteLevel only adjusts offsets */
        return unsupported(tok, err, "post_processor '%s' (it would add tokens)", type_of(post));
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (!has_type(dec, "ByteLevel")) return unsupported(tok, err, "decoder '%s'", absent(dec) ? "null" : type_of(dec));
    if (!absent(cJSON_GetObjectItemCaseSensitive(root, "truncation"))) return unsupported(tok, err, "truncation");
    if (!absent(cJSON_GetObjectItemCaseSensitive(root, "padding"))) return unsupported(tok, err, "padding");
    return parse_pre_tokenizer(tok, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err);
}

static ap_status check_model_options(ap_tokenizer *tok, const cJSON *model, ap_error *err) {
    if (!has_type(model, "BPE")) return unsupported(tok, err, "model type '%s'", type_of(model));
    if (!absent(cJSON_GetObjectItemCaseSensitive(model, "dropout"))) return unsupported(tok, err, "BPE dropout");
    static const char *const k_affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(model, k_affixes[i]);
        if (!absent(a) && !(cJSON_IsString(a) && a->valuestring[0] == '\0'))
            return unsupported(tok, err, "BPE %s", k_affixes[i]);
    }
    int byte_fallback = 0;
    ap_status st;
    if ((st = get_bool(tok, model, "model", "byte_fallback", 0, &byte_fallback, err)) ||
        (st = get_bool(tok, model, "model", "fuse_unk", 0, &tok->fuse_unk, err)) ||
        (st = get_bool(tok, model, "model", "ignore_merges", 0, &tok->ignore_merges, err)))
        return st;
    if (byte_fallback) return unsupported(tok, err, "BPE byte_fallback");
    return AP_OK;
}

static char *arena_put(char **cursor, const char *s, uint32_t *len) {
    char *p = *cursor;
    size_t n = strlen(s);
    memcpy(p, s, n + 1);
    *cursor += n + 1;
    *len = (uint32_t)n;
    return p;
}

/* model.vocab: token -> id, ids unique and < limit. */
static ap_status load_vocab(ap_tokenizer *tok, const cJSON *vocab, size_t limit, char **cursor, ap_error *err) {
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id = 0;
        char what[96];
        snprintf(what, sizeof what, "vocab token '%.60s'", e->string);
        ap_status st = get_id(tok, e, limit, what, &id, err);
        if (st) return st;
        if (tok->model_tok[id])
            return ap_fail(err, AP_ERR_FORMAT, "%s: vocab id %d is used twice ('%.60s' and '%.60s')", tok->path, id,
                           tok->model_tok[id], e->string);
        tok->model_tok[id] = arena_put(cursor, e->string, &tok->model_len[id]);
        if ((size_t)id + 1 > tok->n_ids) tok->n_ids = (size_t)id + 1;
    }
    ap_status st = tok_vocab_index(tok, err);
    if (st) return st;
    for (size_t id = 0; id < tok->n_ids; id++) /* a duplicate key shadows one of the ids */
        if (tok->model_tok[id] && tok_vocab_find(tok, tok->model_tok[id], tok->model_len[id]) != (int32_t)id)
            return ap_fail(err, AP_ERR_FORMAT, "%s: vocab token '%.60s' appears twice", tok->path, tok->model_tok[id]);
    return AP_OK;
}

static ap_status load_added_token(ap_tokenizer *tok, const cJSON *j, size_t index, size_t limit, char **cursor,
                                  ap_error *err) {
    tok_added *a = &tok->added[index];
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
    if (!cJSON_IsObject(j) || !cJSON_IsString(content) || !content->valuestring[0])
        return ap_fail(err, AP_ERR_FORMAT, "%s: added_tokens[%zu] has no (non-empty) content", tok->path, index);
    char what[96];
    snprintf(what, sizeof what, "added token '%.60s'", content->valuestring);
    int special = 0, single_word = 0, lstrip = 0, rstrip = 0, normalized = 0;
    ap_status st;
    if ((st = get_id(tok, cJSON_GetObjectItemCaseSensitive(j, "id"), limit, what, &a->id, err)) ||
        (st = get_bool(tok, j, what, "special", 0, &special, err)) ||
        (st = get_bool(tok, j, what, "single_word", 0, &single_word, err)) ||
        (st = get_bool(tok, j, what, "lstrip", 0, &lstrip, err)) ||
        (st = get_bool(tok, j, what, "rstrip", 0, &rstrip, err)) ||
        (st = get_bool(tok, j, what, "normalized", !special, &normalized, err)))
        return st;
    a->special = (uint8_t)special;
    a->single_word = (uint8_t)single_word;
    a->lstrip = (uint8_t)lstrip;
    a->rstrip = (uint8_t)rstrip;
    a->normalized = (uint8_t)normalized;
    a->content = arena_put(cursor, content->valuestring, &a->len);
    /* The same token may be in the model vocabulary, but only under this id. */
    int32_t in_vocab = tok_vocab_find(tok, a->content, a->len);
    if (in_vocab >= 0 && in_vocab != a->id)
        return ap_fail(err, AP_ERR_FORMAT, "%s: %s has id %d but vocab id %d", tok->path, what, a->id, in_vocab);
    if ((size_t)a->id < tok->n_ids && tok->model_tok[a->id] && in_vocab != a->id)
        return ap_fail(err, AP_ERR_FORMAT, "%s: id %d is both %s and vocab token '%.60s'", tok->path, a->id, what,
                       tok->model_tok[a->id]);
    for (size_t i = 0; i < index; i++) {
        if (tok->added[i].id == a->id || strcmp(tok->added[i].content, a->content) == 0)
            return ap_fail(err, AP_ERR_FORMAT, "%s: %s (id %d) clashes with added token '%.60s' (id %d)", tok->path,
                           what, a->id, tok->added[i].content, tok->added[i].id);
    }
    int pass = a->normalized ? 1 : 0;
    tok->added_first[pass][(unsigned char)a->content[0]] = 1;
    tok->n_added_pass[pass]++;
    if ((size_t)a->id + 1 > tok->n_ids) tok->n_ids = (size_t)a->id + 1;
    return AP_OK;
}

/* One merge, "a b" or ["a", "b"], into its two parts. */
static int merge_parts(const cJSON *m, const char **a, size_t *alen, const char **b) {
    if (cJSON_IsArray(m)) {
        const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
        if (cJSON_GetArraySize(m) != 2 || !cJSON_IsString(x) || !cJSON_IsString(y)) return 0;
        *a = x->valuestring;
        *alen = strlen(x->valuestring);
        *b = y->valuestring;
        return 1;
    }
    if (!cJSON_IsString(m)) return 0;
    /* Exactly one space, as the Rust crate's split(' ') into two parts. */
    const char *sp = strchr(m->valuestring, ' ');
    if (!sp || strchr(sp + 1, ' ')) return 0;
    *a = m->valuestring;
    *alen = (size_t)(sp - m->valuestring);
    *b = sp + 1;
    return 1;
}

static ap_status load_merges(ap_tokenizer *tok, const cJSON *merges, ap_error *err) {
    ap_status st = tok_merges_alloc(tok, (size_t)cJSON_GetArraySize(merges), err);
    if (st) return st;
    ap_buf joined = {0};
    uint32_t rank = 0;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        const char *a, *b;
        size_t alen;
        if (!merge_parts(m, &a, &alen, &b)) {
            st = ap_fail(err, AP_ERR_FORMAT, "%s: merges[%u] is not \"a b\" or [\"a\", \"b\"]", tok->path, rank);
            break;
        }
        joined.len = 0;
        if ((st = ap_buf_append(&joined, a, alen, err)) || (st = ap_buf_append(&joined, b, strlen(b), err))) break;
        int32_t ia = tok_vocab_find(tok, a, alen), ib = tok_vocab_find(tok, b, strlen(b));
        int32_t inew = tok_vocab_find(tok, joined.data, joined.len);
        if (ia < 0 || ib < 0 || inew < 0) {
            const char *missing = ia < 0 ? a : ib < 0 ? b : joined.data;
            size_t mlen = ia < 0 ? alen : strlen(missing);
            st = ap_fail(err, AP_ERR_FORMAT, "%s: merges[%u]: token '%.*s' is not in the vocabulary", tok->path, rank,
                         (int)(mlen < 60 ? mlen : 60), missing);
            break;
        }
        tok_merges_put(tok, ia, ib, rank, inew);
    }
    ap_buf_free(&joined);
    return st;
}

/* Size of all the strings the tokenizer keeps. */
static size_t strings_size(const cJSON *vocab, const cJSON *added) {
    size_t n = 0;
    for (const cJSON *e = vocab->child; e; e = e->next) n += strlen(e->string) + 1;
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (cJSON_IsString(c)) n += strlen(c->valuestring) + 1;
    }
    return n;
}

static ap_status load_json(ap_tokenizer *tok, const cJSON *root, ap_error *err) {
    if (!cJSON_IsObject(root)) return ap_fail(err, AP_ERR_FORMAT, "%s: not a JSON object", tok->path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return ap_fail(err, AP_ERR_FORMAT, "%s: no \"model\" object", tok->path);
    ap_status st;
    if ((st = check_model_options(tok, model, err)) || (st = check_pipeline(tok, root, err))) return st;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab)) return ap_fail(err, AP_ERR_FORMAT, "%s: model.vocab is not an object", tok->path);
    if (!cJSON_IsArray(merges)) return ap_fail(err, AP_ERR_FORMAT, "%s: model.merges is not an array", tok->path);
    if (!absent(added) && !cJSON_IsArray(added))
        return ap_fail(err, AP_ERR_FORMAT, "%s: added_tokens is not an array", tok->path);
    if (absent(added)) added = NULL;

    /* Ids must fit a dense numbering of all entries. */
    size_t n_vocab = (size_t)cJSON_GetArraySize(vocab), n_added = added ? (size_t)cJSON_GetArraySize(added) : 0;
    size_t limit = n_vocab + n_added;
    if (limit >= INT32_MAX) return ap_fail(err, AP_ERR_FORMAT, "%s: too many tokens", tok->path);
    tok->arena = ap_malloc(strings_size(vocab, added) + 1, err);
    tok->model_tok = ap_calloc(limit + 1, sizeof *tok->model_tok, err);
    tok->model_len = ap_calloc(limit + 1, sizeof *tok->model_len, err);
    tok->added = ap_calloc(n_added + 1, sizeof *tok->added, err);
    if (!tok->arena || !tok->model_tok || !tok->model_len || !tok->added) return AP_ERR_NOMEM;
    char *cursor = tok->arena;
    if ((st = load_vocab(tok, vocab, limit, &cursor, err))) return st;
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next, tok->n_added++)
        if ((st = load_added_token(tok, e, tok->n_added, limit, &cursor, err))) return st;

    tok->id_tok = ap_calloc(tok->n_ids + 1, sizeof *tok->id_tok, err);
    tok->id_len = ap_calloc(tok->n_ids + 1, sizeof *tok->id_len, err);
    if (!tok->id_tok || !tok->id_len) return AP_ERR_NOMEM;
    for (size_t id = 0; id < tok->n_ids; id++) {
        tok->id_tok[id] = tok->model_tok[id];
        tok->id_len[id] = tok->model_len[id];
    }
    for (size_t i = 0; i < tok->n_added; i++) {
        tok->id_tok[tok->added[i].id] = tok->added[i].content;
        tok->id_len[tok->added[i].id] = tok->added[i].len;
    }

    for (int b = 0; b < 256; b++) {
        char ch[4];
        tok->byte_id[b] = tok_vocab_find(tok, ch, tok_utf8_put(tok_byte_to_cp((uint8_t)b), ch));
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    tok->unk_id = -1;
    if (!absent(unk)) {
        if (!cJSON_IsString(unk) || (tok->unk_id = tok_vocab_find(tok, unk->valuestring, strlen(unk->valuestring))) < 0)
            return ap_fail(err, AP_ERR_FORMAT, "%s: model.unk_token is not a vocabulary token", tok->path);
    }
    if ((st = load_merges(tok, merges, err))) return st;
    return tok_compile_regexes(tok, err);
}

ap_status ap_tokenizer_load(const char *path, ap_tokenizer **out, ap_error *err) {
    *out = NULL;
    ap_tokenizer *tok = ap_calloc(1, sizeof *tok, err);
    if (!tok) return AP_ERR_NOMEM;
    tok->path = ap_path_is_dir(path) ? ap_path_join(path, "tokenizer.json", err) : ap_strdup(path, err);
    if (!tok->path) {
        free(tok);
        return AP_ERR_NOMEM;
    }
    char *data;
    size_t len;
    ap_status st = ap_read_file(tok->path, &data, &len, err);
    if (st) {
        ap_tokenizer_free(tok);
        return st;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!root) {
        st = ap_fail(err, AP_ERR_FORMAT, "%s: not valid JSON (error near byte %zu)", tok->path,
                     end ? (size_t)(end - data) : (size_t)0);
    } else {
        st = load_json(tok, root, err);
        cJSON_Delete(root);
    }
    free(data);
    if (st) {
        ap_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return AP_OK;
}

void ap_tokenizer_free(ap_tokenizer *tok) {
    if (!tok) return;
    pcre2_code_free(tok->split_re);
    pcre2_code_free(tok->word_re);
    free(tok->merges);
    free(tok->id_tok);
    free(tok->id_len);
    free(tok->added);
    free(tok->vocab_slots);
    free(tok->model_tok);
    free(tok->model_len);
    free(tok->arena);
    free(tok->path);
    free(tok);
}

size_t ap_tokenizer_vocab_size(const ap_tokenizer *tok) { return tok->n_ids; }

int32_t ap_tokenizer_token_id(const ap_tokenizer *tok, const char *token) {
    for (size_t i = 0; i < tok->n_added; i++)
        if (strcmp(tok->added[i].content, token) == 0) return tok->added[i].id;
    return tok_vocab_find(tok, token, strlen(token));
}

const char *ap_tokenizer_id_to_token(const ap_tokenizer *tok, int32_t id) {
    return id >= 0 && (size_t)id < tok->n_ids ? tok->id_tok[id] : NULL;
}
