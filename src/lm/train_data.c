/* Training data: the corpus read into memory and split into train and
 * held-out files, and the token stream of packed, partly FIM-rewritten
 * sequences (train_internal.h describes the recipe). */
#include "train_internal.h"

#include <omp.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- documents --------------------------------------------------------------------- */

void lmt_docs_free(lmt_docs *d) {
    free(d->arena);
    free(d->off);
    free(d->len);
    memset(d, 0, sizeof *d);
}

ap_status lmt_docs_add(lmt_docs *d, const char *text, size_t len, ap_error *err) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 1024;
        size_t *off = ap_realloc(d->off, cap * sizeof *off, err);
        if (!off) return AP_ERR_NOMEM;
        d->off = off;
        size_t *ln = ap_realloc(d->len, cap * sizeof *ln, err);
        if (!ln) return AP_ERR_NOMEM;
        d->len = ln;
        d->cap = cap;
    }
    if (d->arena_len + len > d->arena_cap) {
        size_t cap = d->arena_cap ? d->arena_cap : (size_t)1 << 20;
        while (cap < d->arena_len + len) cap *= 2;
        char *a = ap_realloc(d->arena, cap, err);
        if (!a) return AP_ERR_NOMEM;
        d->arena = a;
        d->arena_cap = cap;
    }
    memcpy(d->arena + d->arena_len, text, len);
    d->off[d->n] = d->arena_len;
    d->len[d->n] = len;
    d->arena_len += len;
    d->bytes += (int64_t)len;
    d->n++;
    return AP_OK;
}

int lmt_is_heldout(const char *source, double holdout) {
    /* the path's hash, mixed so similar paths spread out, as a share in [0, 1) */
    uint64_t h = ap_hash_mix(ap_hash_bytes(source, strlen(source)), 0x4c4d5f686f6c64ull);
    return (double)(h >> 11) * 0x1.0p-53 < holdout;
}

ap_status lmt_docs_load(const char *path, const ap_corpus_options *opt, double holdout, lmt_docs *train,
                        lmt_docs *held, int progress, ap_error *err) {
    ap_corpus *c;
    ap_status st = ap_corpus_open(path, opt, &c, err);
    if (st) return st;
    ap_progress bar;
    int64_t done, total;
    ap_corpus_progress(c, &done, &total);
    if (progress) ap_progress_begin(&bar, "read corpus", total);
    for (;;) {
        ap_corpus_file f;
        int has;
        if ((st = ap_corpus_next(c, &f, &has, err)) || !has) break;
        lmt_docs *dst = lmt_is_heldout(f.source, holdout) ? held : train;
        if ((st = lmt_docs_add(dst, f.data, f.len, err))) break;
        if (progress) {
            ap_corpus_progress(c, &done, &total);
            ap_progress_update(&bar, done, NULL);
        }
    }
    if (progress) {
        char extra[96];
        snprintf(extra, sizeof extra, "%zu files, %.1f MB", train->n + held->n,
                 (double)(train->bytes + held->bytes) / 1e6);
        ap_progress_end(&bar, extra);
    }
    ap_corpus_close(c);
    return st;
}

/* ---- special tokens ------------------------------------------------------------------ */

ap_status lmt_special_lookup(const ap_tokenizer *tok, const char *tokenizer_path, lmt_special *sp, ap_error *err) {
    static const char *const names[] = {"<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>",
                                        "<fim_pad>"};
    int32_t *slots[] = {&sp->eot, &sp->fim_prefix, &sp->fim_middle, &sp->fim_suffix, &sp->fim_pad};
    for (int i = 0; i < 5; i++) {
        *slots[i] = ap_tokenizer_token_id(tok, names[i]);
        if (*slots[i] < 0)
            return ap_fail(err, AP_ERR_FORMAT, "%s: the tokenizer has no %s token (training needs StarCoder2's "
                           "special tokens)", tokenizer_path, names[i]);
    }
    return AP_OK;
}

/* ---- the token array ---------------------------------------------------------------- */

void lmt_tokens_free(lmt_tokens *t) {
    free(t->ids);
    memset(t, 0, sizeof *t);
}

ap_status lmt_tokenize_docs(const lmt_docs *docs, const ap_tokenizer *tok, int32_t eot, uint64_t seed,
                            lmt_tokens *out, int progress, ap_error *err) {
    memset(out, 0, sizeof *out);
    size_t n = docs->n;
    uint32_t *order = ap_malloc((n ? n : 1) * sizeof *order, err);
    int32_t **ids = ap_calloc(n ? n : 1, sizeof *ids, err);
    size_t *len = ap_calloc(n ? n : 1, sizeof *len, err);
    ap_status st = AP_ERR_NOMEM;
    if (!order || !ids || !len) goto done;
    /* documents in a seeded order, so windows join unrelated neighbours */
    for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
    ap_rng r;
    ap_rng_seed(&r, ap_hash_mix(seed, 0x646f6373ull));
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)ap_rng_below(&r, i);
        uint32_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    ap_progress bar;
    if (progress) ap_progress_begin(&bar, "tokenize", (int64_t)n);
    int64_t finished = 0;
    st = AP_OK;
#pragma omp parallel
    {
        ap_error terr = {0};
        ap_status tst = AP_OK;
#pragma omp for schedule(dynamic, 4)
        for (size_t i = 0; i < n; i++) {
            if (tst) continue;
            size_t d = order[i];
            tst = ap_tokenizer_encode(tok, docs->arena + docs->off[d], docs->len[d], &ids[i], &len[i], &terr);
            if (progress) {
                int64_t now;
#pragma omp atomic capture
                now = ++finished;
                if (omp_get_thread_num() == 0) ap_progress_update(&bar, now, NULL);
            }
        }
#pragma omp critical
        if (tst && !st) {
            st = tst;
            if (err) *err = terr;
        }
    }
    if (st) goto done;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += len[i] + 1;
    out->ids = ap_malloc((total ? total : 1) * sizeof *out->ids, err);
    if (!out->ids) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(out->ids + out->n, ids[i], len[i] * sizeof *out->ids);
        out->n += len[i];
        out->ids[out->n++] = eot;
    }
    if (progress) {
        char extra[64];
        snprintf(extra, sizeof extra, "%.2fM tokens", (double)out->n / 1e6);
        ap_progress_end(&bar, extra);
    }
done:
    for (size_t i = 0; ids && i < n; i++) free(ids[i]);
    free(ids);
    free(len);
    free(order);
    return st;
}

/* ---- the stream ------------------------------------------------------------------------ */

ap_status lmt_stream_init(lmt_stream *s, const lmt_tokens *toks, int n1, const ap_tokenizer *tok,
                          const lmt_special *sp, uint64_t seed, const lmt_fim *fim, ap_error *err) {
    memset(s, 0, sizeof *s);
    s->toks = toks;
    s->tok = tok;
    s->sp = *sp;
    s->seed = seed;
    s->fim = *fim;
    s->n1 = n1;
    s->perm_epoch = -1;
    s->nwin = toks->n / (size_t)n1;
    ap_rng_seed(&s->pos.rng, ap_hash_mix(seed, 0x66696dull));
    if (s->nwin == 0)
        return ap_fail(err, AP_ERR_ARG, "the corpus has %zu tokens, fewer than one sequence of %d", toks->n, n1);
    if (s->nwin > UINT32_MAX) return ap_fail(err, AP_ERR_ARG, "the corpus has too many sequences");
    s->perm = ap_malloc(s->nwin * sizeof *s->perm, err);
    return s->perm ? AP_OK : AP_ERR_NOMEM;
}

void lmt_stream_free(lmt_stream *s) {
    free(s->perm);
    free(s->piece);
    free(s->cand);
    memset(s, 0, sizeof *s);
}

static void shuffle_epoch(lmt_stream *s, int64_t epoch) {
    for (size_t i = 0; i < s->nwin; i++) s->perm[i] = (uint32_t)i;
    ap_rng r;
    ap_rng_seed(&r, ap_hash_mix(s->seed, (uint64_t)epoch + 1));
    for (size_t i = s->nwin; i > 1; i--) {
        size_t j = (size_t)ap_rng_below(&r, i);
        uint32_t t = s->perm[i - 1];
        s->perm[i - 1] = s->perm[j];
        s->perm[j] = t;
    }
    s->perm_epoch = epoch;
}

static double uniform01(ap_rng *r) { return (double)(ap_rng_next(r) >> 11) * 0x1.0p-53; }

static ap_status append_ids(int32_t **buf, size_t *n, size_t *cap, const int32_t *ids, size_t k, ap_error *err) {
    if (*n + k > *cap) {
        size_t c = *cap ? *cap : 512;
        while (c < *n + k) c *= 2;
        int32_t *b = ap_realloc(*buf, c * sizeof *b, err);
        if (!b) return AP_ERR_NOMEM;
        *buf = b;
        *cap = c;
    }
    if (k) memcpy(*buf + *n, ids, k * sizeof *ids); /* ids may be NULL when k is 0 */
    *n += k;
    return AP_OK;
}

/* Encodes text[a, b) and appends the ids to the piece buffer. */
static ap_status encode_part(lmt_stream *s, const char *text, size_t a, size_t b, size_t *n, size_t *count,
                             ap_error *err) {
    int32_t *ids;
    size_t k;
    ap_status st = ap_tokenizer_encode(s->tok, text + a, b - a, &ids, &k, err);
    if (st) return st;
    st = append_ids(&s->piece, n, &s->piece_cap, ids, k, err);
    free(ids);
    *count = k;
    return st;
}

/* Character classes for boundary splits: identifier characters (non-ASCII
 * counted as letters), whitespace, and the rest (punctuation). */
static int char_class(unsigned char c) {
    if (c == '_' || c == '$' || c >= 0x80 || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
        return 0;
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ? 1 : 2;
}

/* Position i (a character start, or the end) lies between two classes, or
 * between two punctuation characters: where a scenario's target (an
 * identifier, a literal, an operator, a bracket, ...) can start or end. */
static int split_at_boundary(const char *text, size_t n, size_t i) {
    if (i == 0 || i == n) return 1;
    size_t p = i - 1;
    while (p > 0 && ((unsigned char)text[p] & 0xC0) == 0x80) p--;
    int a = char_class((unsigned char)text[p]), b = char_class((unsigned char)text[i]);
    return a != b || a == 2;
}

/* Rewrites ids[0, len) (one document's piece) in FIM form in place, keeping
 * its length: <fim_prefix> P <fim_suffix> S <fim_middle> M with S (then M)
 * cut at its end, or S padded with <fim_pad>. Left as it is when that would
 * leave no middle. */
static ap_status fim_piece(lmt_stream *s, int32_t *ids, size_t len, ap_error *err) {
    char *text;
    size_t nbytes;
    ap_status st = ap_tokenizer_decode(s->tok, ids, len, &text, &nbytes, err);
    if (st) return st;
    /* two split points drawn uniformly from the candidates */
    size_t ncand = 0;
    if (nbytes + 1 > s->cand_cap) {
        size_t *c = ap_realloc(s->cand, (nbytes + 1) * sizeof *c, err);
        if (!c) {
            free(text);
            return AP_ERR_NOMEM;
        }
        s->cand = c;
        s->cand_cap = nbytes + 1;
    }
    for (size_t i = 0; i <= nbytes; i++)
        if (i == nbytes || ((unsigned char)text[i] & 0xC0) != 0x80)
            if (s->fim.split == AP_FIM_SPLIT_CHAR || split_at_boundary(text, nbytes, i)) s->cand[ncand++] = i;
    size_t k1 = (size_t)ap_rng_below(&s->pos.rng, ncand), k2 = (size_t)ap_rng_below(&s->pos.rng, ncand);
    size_t b1 = s->cand[k1 < k2 ? k1 : k2], b2 = s->cand[k1 < k2 ? k2 : k1];
    /* layout in s->piece: P, then M, then S (assembled below) */
    size_t n = 0, np, nm, ns;
    if ((st = encode_part(s, text, 0, b1, &n, &np, err)) || (st = encode_part(s, text, b1, b2, &n, &nm, err)) ||
        (st = encode_part(s, text, b2, nbytes, &n, &ns, err))) {
        free(text);
        return st;
    }
    free(text);
    /* extra tokens come off the end of the suffix, then off the end of the
     * middle (its first token, the one FIM is about, stays) */
    size_t full = 3 + np + nm + ns, over = full > len ? full - len : 0, pad = full < len ? len - full : 0;
    if (over >= ns + nm) return AP_OK; /* cannot keep the length */
    const int32_t *P = s->piece, *M = s->piece + np, *S = s->piece + np + nm;
    size_t keep_s = over <= ns ? ns - over : 0;
    nm -= over > ns ? over - ns : 0;
    size_t o = 0;
    ids[o++] = s->sp.fim_prefix;
    memcpy(ids + o, P, np * sizeof *ids), o += np;
    ids[o++] = s->sp.fim_suffix;
    memcpy(ids + o, S, keep_s * sizeof *ids), o += keep_s;
    for (size_t i = 0; i < pad; i++) ids[o++] = s->sp.fim_pad;
    ids[o++] = s->sp.fim_middle;
    memcpy(ids + o, M, nm * sizeof *ids), o += nm;
    return o == len ? AP_OK : ap_fail(err, AP_ERR_INTERNAL, "FIM rewrite changed a piece's length");
}

ap_status lmt_stream_next(lmt_stream *s, int32_t *seq, ap_error *err) {
    if ((size_t)s->pos.index >= s->nwin) {
        s->pos.epoch++;
        s->pos.index = 0;
    }
    if (s->perm_epoch != s->pos.epoch) shuffle_epoch(s, s->pos.epoch);
    size_t w = s->perm[s->pos.index++];
    int n = s->n1;
    memcpy(seq, s->toks->ids + w * (size_t)n, (size_t)n * sizeof *seq);
    if (s->fim.rate <= 0) return AP_OK;
    /* pieces: maximal runs without <|endoftext|> (or chunks of them), one FIM draw each */
    int chunk = s->fim.chunk;
    for (int a = 0; a < n;) {
        if (seq[a] == s->sp.eot) {
            a++;
            continue;
        }
        int b = a;
        while (b < n && seq[b] != s->sp.eot) b++;
        if (chunk > 0) {
            /* the next chunk: log-uniform between chunk/4 (at least 8) and
             * 4*chunk tokens, so that FIM examples come in every length
             * (short ones teach the lookup early, long ones match the
             * scenarios); a rest shorter than the minimum stays attached */
            int lo = chunk / 4 > 8 ? chunk / 4 : 8, hi = 4 * chunk;
            int len = (int)lround(lo * pow((double)hi / lo, uniform01(&s->pos.rng)));
            if (b - (a + len) >= lo) b = a + len;
        }
        ap_status st;
        if (uniform01(&s->pos.rng) < s->fim.rate && b - a >= 2 && (st = fim_piece(s, seq + a, (size_t)(b - a), err)))
            return st;
        a = b;
    }
    return AP_OK;
}

int lmt_split_sequence(const int32_t *seq, int N, int32_t fim_pad, int32_t *inputs, int32_t *targets) {
    int count = 0;
    for (int t = 0; t < N; t++) {
        inputs[t] = seq[t];
        targets[t] = seq[t + 1] == fim_pad ? -1 : seq[t + 1];
        count += targets[t] >= 0;
    }
    return count;
}
