/* Shards of an extraction (docs/store.md): naming, and merging them back into
 * the one store a single process would have written. Shard K of R holds the
 * scenarios whose index i has i % R == K, in file order, each sample
 * recording its index; the merge interleaves them by that index, copying
 * patterns as stored (no re-encoding), so it is exact. */
#include "apmae/extract.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MERGE_COMMIT_EVERY 256

ap_status ap_shard_parse(const char *spec, int *index, int *count, ap_error *err) {
    const char *slash = spec ? strchr(spec, '/') : NULL;
    char k[32];
    int64_t K = -1, R = 0;
    if (!slash || (size_t)(slash - spec) >= sizeof k)
        return ap_fail(err, AP_ERR_ARG, "--shard: expected K/R (e.g. 0/4), got '%s'", spec ? spec : "");
    memcpy(k, spec, (size_t)(slash - spec));
    k[slash - spec] = '\0';
    if (ap_parse_i64(k, "--shard K", &K, err) || ap_parse_i64(slash + 1, "--shard R", &R, err)) return AP_ERR_ARG;
    if (R < 1 || R > 1 << 20 || K < 0 || K >= R)
        return ap_fail(err, AP_ERR_ARG, "--shard %s: need 0 <= K < R (R at most %d)", spec, 1 << 20);
    *index = (int)K;
    *count = (int)R;
    return AP_OK;
}

char *ap_shard_path(const char *store_path, int index, int count, ap_error *err) {
    size_t n = strlen(store_path) + 64;
    char *p = ap_malloc(n, err);
    if (p) snprintf(p, n, "%s.shard-%d-of-%d", store_path, index, count);
    return p;
}

/* The scenario count in a store's run description (-1 when absent). */
static int64_t run_scenarios(const char *run) {
    cJSON *o = cJSON_Parse(run ? run : "");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "scenarios");
    int64_t n = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
    cJSON_Delete(o);
    return n;
}

static int same_str(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : "") == 0; }

static ap_status differs(const char *pj, const char *p0, const char *what, const char *vj, const char *v0,
                         ap_error *err) {
    return ap_fail(err, AP_ERR_ARG, "shard %s: its %s (%s) differs from shard %s's (%s); shards of one run must match",
                   pj, what, vj, p0, v0);
}

/* Shard j against shard 0: the same run of the same model, stored alike. */
static ap_status check_like_first(ap_store *const *st, size_t j, ap_error *err) {
    const ap_store_meta *a = ap_store_get_meta(st[0]), *b = ap_store_get_meta(st[j]);
    const char *p0 = ap_store_path(st[0]), *pj = ap_store_path(st[j]);
    char va[160], vb[160];
    if (!same_str(a->model_id, b->model_id) || !same_str(a->model_config, b->model_config))
        return differs(pj, p0, "model", b->model_id, a->model_id, err);
    snprintf(va, sizeof va, "N %d, %d x %d heads, %s (%d bits), deflate %d, %s", a->n_tokens, a->num_layers,
             a->num_heads, ap_dtype_name(a->dtype), a->small_bits, a->deflate,
             a->no_patterns ? "no patterns" : "patterns");
    snprintf(vb, sizeof vb, "N %d, %d x %d heads, %s (%d bits), deflate %d, %s", b->n_tokens, b->num_layers,
             b->num_heads, ap_dtype_name(b->dtype), b->small_bits, b->deflate,
             b->no_patterns ? "no patterns" : "patterns");
    if (strcmp(va, vb) != 0) return differs(pj, p0, "layout", vb, va, err);
    if (!same_str(a->run, b->run)) return differs(pj, p0, "extraction options", b->run, a->run, err);
    return AP_OK;
}

/* The embeddings of a non-empty shard (NULL: none; partial ones were
 * refused before). */
static const ap_store_embed_info *embeddings_of(ap_store *s) {
    return ap_store_embedded(s) > 0 ? ap_store_embed_info_of(s) : NULL;
}

static int same_embeddings(const ap_store_embed_info *a, const ap_store_embed_info *b) {
    if (!a || !b) return !a == !b;
    return strcmp(a->model_hash, b->model_hash) == 0 && a->dim == b->dim &&
           !a->compat_reference == !b->compat_reference;
}

/* Every non-empty shard has the embeddings of one AP-MAE, or none has any;
 * *info: those embeddings (or, when all shards are empty, any begun). */
static ap_status check_embeddings(ap_store *const *st, size_t n, const ap_store_embed_info **info, ap_error *err) {
    *info = NULL;
    ap_store *first = NULL; /* the first non-empty shard */
    for (size_t j = 0; j < n; j++) {
        if (ap_store_count(st[j]) == 0) {
            if (!first && !*info) *info = ap_store_embed_info_of(st[j]);
            continue;
        }
        if (!first) {
            first = st[j];
            *info = embeddings_of(first);
            continue;
        }
        const ap_store_embed_info *a = embeddings_of(first), *b = embeddings_of(st[j]);
        if (!same_embeddings(a, b)) {
            char va[96], vb[96];
            snprintf(va, sizeof va, "%s%s", a ? "AP-MAE with parameter hash " : "none", a ? a->model_hash : "");
            snprintf(vb, sizeof vb, "%s%s", b ? "AP-MAE with parameter hash " : "none", b ? b->model_hash : "");
            return differs(ap_store_path(st[j]), ap_store_path(first), "embeddings", vb, va, err);
        }
    }
    return AP_OK;
}

/* Each shard alone: its place among n shards, complete, embeddings whole. */
static ap_status check_shard(ap_store *s, size_t n, ap_error *err) {
    const ap_store_meta *m = ap_store_get_meta(s);
    const char *p = ap_store_path(s);
    if ((size_t)m->shard_count != n)
        return ap_fail(err, AP_ERR_ARG, "shard %s: it is shard %d of %d, but %zu shards were given", p, m->shard_index,
                       m->shard_count, n);
    int64_t lines = run_scenarios(m->run);
    if (lines < 0) return ap_fail(err, AP_ERR_ARG, "shard %s: not written by apmae extract (no scenario count)", p);
    if (ap_store_cursor(s) < lines)
        return ap_fail(err, AP_ERR_ARG, "shard %s is incomplete: %lld of %lld scenarios handled; rerun its extract "
                       "command to finish it", p, (long long)ap_store_cursor(s), (long long)lines);
    int64_t e = ap_store_embedded(s);
    if (e > 0 && e < ap_store_count(s))
        return ap_fail(err, AP_ERR_ARG, "shard %s: only %lld of its %lld samples have embeddings; finish "
                       "'apmae store embed' on it first", p, (long long)e, (long long)ap_store_count(s));
    return AP_OK;
}

static ap_status check_shards(ap_store *const *st, size_t n, const ap_store_embed_info **emb, ap_error *err) {
    ap_store **by_index = ap_calloc(n, sizeof *by_index, err);
    if (!by_index) return AP_ERR_NOMEM;
    ap_status s = AP_OK;
    for (size_t j = 0; s == AP_OK && j < n; j++) {
        s = check_shard(st[j], n, err);
        if (s == AP_OK && j > 0) s = check_like_first(st, j, err);
        if (s != AP_OK) break;
        int k = ap_store_get_meta(st[j])->shard_index;
        if (by_index[k])
            s = ap_fail(err, AP_ERR_ARG, "shard %s: %s is also shard %d of %zu", ap_store_path(st[j]),
                        ap_store_path(by_index[k]), k, n);
        by_index[k] = st[j];
    }
    free(by_index);
    return s == AP_OK ? check_embeddings(st, n, emb, err) : s;
}

/* Sample `pos` of shard st's scenario index, checked to belong to it and to
 * follow `prev`. */
static ap_status next_index(ap_store *st, int64_t pos, int64_t prev, size_t n, int64_t *index, ap_error *err) {
    ap_store_sample r;
    ap_status s = ap_store_read_sample(st, pos, &r, NULL, err);
    if (s != AP_OK) return s;
    int k = ap_store_get_meta(st)->shard_index;
    if (r.index < 0 || r.index % (int64_t)n != k || r.index <= prev)
        return ap_fail(err, AP_ERR_FORMAT, "shard %s: sample %lld ('%s') has scenario index %lld, which is not shard "
                       "%d of %zu's next one", ap_store_path(st), (long long)pos, r.id, (long long)r.index, k, n);
    *index = r.index;
    return AP_OK;
}

/* Interleave the shards' samples by scenario index into dst. */
static ap_status interleave(ap_store *dst, ap_store *const *st, size_t n, ap_error *err) {
    int64_t *pos = ap_calloc(n, sizeof *pos, err), *head = ap_calloc(n, sizeof *head, err);
    ap_status s = pos && head ? AP_OK : AP_ERR_NOMEM;
    int64_t total = 0, done = 0;
    for (size_t j = 0; s == AP_OK && j < n; j++) {
        total += ap_store_count(st[j]);
        head[j] = INT64_MAX;
        if (ap_store_count(st[j]) > 0) s = next_index(st[j], 0, -1, n, &head[j], err);
    }
    ap_progress bar;
    ap_progress_begin(&bar, "merge", total);
    while (s == AP_OK && done < total) {
        size_t best = 0;
        for (size_t j = 1; j < n; j++)
            if (head[j] < head[best]) best = j;
        s = ap_store_copy_sample(dst, st[best], pos[best], err);
        if (s != AP_OK) break;
        int64_t prev = head[best];
        head[best] = INT64_MAX;
        if (++pos[best] < ap_store_count(st[best])) s = next_index(st[best], pos[best], prev, n, &head[best], err);
        if (s == AP_OK && ++done % MERGE_COMMIT_EVERY == 0) {
            s = ap_store_commit(dst, err);
            ap_progress_update(&bar, done, NULL);
        }
    }
    if (s == AP_OK) ap_progress_update(&bar, done, NULL);
    ap_progress_end(&bar, NULL);
    free(pos);
    free(head);
    return s;
}

/* Build the merged store at tmp: shard 0's metadata, unsharded. */
static ap_status write_merged(const char *tmp, ap_store *const *st, size_t n, const ap_store_embed_info *e,
                              ap_error *err) {
    ap_store_meta m = *ap_store_get_meta(st[0]);
    m.shard_index = 0;
    m.shard_count = 1;
    if (m.dtype != AP_BF16) m.small_bits = -1; /* read back as the dtype's full width, which create does not take */
    ap_store *dst = NULL;
    ap_status s = ap_store_create(tmp, &m, &dst, err);
    if (s == AP_OK && e) s = ap_store_embed_begin(dst, e, err);
    if (s == AP_OK) s = interleave(dst, st, n, err);
    if (s == AP_OK) {
        int64_t cursor = 0;
        for (size_t j = 0; j < n; j++)
            if (ap_store_cursor(st[j]) > cursor) cursor = ap_store_cursor(st[j]);
        ap_store_set_cursor(dst, cursor);
    }
    ap_error close_err = {0};
    ap_status c = ap_store_close(dst, &close_err);
    if (s == AP_OK && c != AP_OK) {
        s = c;
        if (err) *err = close_err;
    }
    return s;
}

/* Make the new directory entry of path durable. */
static ap_status fsync_dir_of(const char *path, ap_error *err) {
    char *copy = ap_strdup(path, err);
    if (!copy) return AP_ERR_NOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    ap_status s = fd >= 0 && fsync(fd) == 0 ? AP_OK : ap_fail_errno(err, AP_ERR_IO, "%s: cannot sync its directory", path);
    if (fd >= 0) close(fd);
    free(copy);
    return s;
}

/* A merge is built under a temporary name and renamed into place, so the
 * store exists only once complete; a stale one (and its journal) from an
 * interrupted merge is removed first. */
static void remove_store_files(const char *path) {
    char j[4400];
    snprintf(j, sizeof j, "%s-journal", path);
    unlink(path);
    unlink(j);
}

ap_status ap_extract_merge(const char *out_path, const char *const *shards, size_t n, int64_t *samples,
                           ap_error *err) {
    if (n < 1) return ap_fail(err, AP_ERR_ARG, "store merge needs at least one shard");
    if (ap_path_exists(out_path))
        return ap_fail(err, AP_ERR_IO, "%s: already exists (a store is never overwritten)", out_path);
    ap_store **st = ap_calloc(n, sizeof *st, err);
    if (!st) return AP_ERR_NOMEM;
    ap_status s = AP_OK;
    for (size_t j = 0; s == AP_OK && j < n; j++) s = ap_store_open(shards[j], AP_STORE_READ, &st[j], err);
    const ap_store_embed_info *emb = NULL;
    if (s == AP_OK) s = check_shards(st, n, &emb, err);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.merging", out_path);
    if (s == AP_OK) {
        remove_store_files(tmp);
        s = write_merged(tmp, st, n, emb, err);
    }
    if (s == AP_OK && samples) {
        *samples = 0;
        for (size_t j = 0; j < n; j++) *samples += ap_store_count(st[j]);
    }
    for (size_t j = 0; j < n; j++) ap_store_close(st[j], NULL);
    free(st);
    if (s == AP_OK && link(tmp, out_path) != 0)
        s = ap_fail_errno(err, AP_ERR_IO, "%s: cannot create", out_path);
    if (s == AP_OK) s = fsync_dir_of(out_path, err);
    remove_store_files(tmp);
    return s;
}
