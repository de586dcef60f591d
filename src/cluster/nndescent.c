/* Approximate k nearest neighbours for large n (docs/analysis.md, "UMAP"):
 * a forest of random-projection trees gives every point a first set of
 * candidates (all pairs within each leaf), then NN-descent refines them by
 * local joins: two candidates of the same point are likely neighbours of
 * each other (Dong, Charikar & Li 2011; the sampling of pynndescent).
 *
 * Determinism: trees are built from per-tree seeds; within one tree, leaves
 * hold disjoint points, so each heap is written by one thread. A local join
 * reads the heaps and emits candidate pairs; the pairs are applied afterwards,
 * each heap by one thread. A heap keeps the K smallest (distance, index) of
 * everything offered whatever the order, so the result never depends on the
 * thread count. */
#include "cluster/umap_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum {
    FLAG_OLD = 0,   /* joined already */
    FLAG_NEW = 1,   /* not joined yet */
    FLAG_FRESH = 2, /* entered during this iteration (counted, then NEW) */
    MAX_CANDIDATES = 60,
    JOIN_CHUNK = 8192
};
#define STOP_FRACTION 0.001 /* stop when fewer than this share of heap entries changed */

/* ---- random-projection trees ---- */

typedef struct rp_tree {
    int32_t *perm;   /* the points, leaf by leaf */
    int32_t *leaves; /* [nleaves][2]: begin, end in perm */
    int nleaves;
} rp_tree;

static int tree_count(int64_t n) {
    int t = 5 + (int)lround(pow((double)n, 0.25));
    return t < 32 ? t : 32;
}

/* Split perm[lo, hi) by the hyperplane between two random points of it
 * (through the origin for cosine: angular trees); points on the plane, or all
 * points on one side, are sent to a random side. Returns the split point. */
static int64_t rp_split(const knn_rows *r, int32_t *perm, int64_t lo, int64_t hi, ap_rng *rng, float *normal,
                        uint8_t *side, int32_t *right) {
    const int d = r->d;
    const int64_t m = hi - lo;
    int64_t a = lo + (int64_t)ap_rng_below(rng, (uint64_t)m);
    int64_t b = lo + (int64_t)ap_rng_below(rng, (uint64_t)(m - 1));
    if (b >= a) b++;
    const float *xa = r->x + (int64_t)perm[a] * d, *xb = r->x + (int64_t)perm[b] * d;
    float offset = 0;
    for (int t = 0; t < d; t++) {
        normal[t] = xa[t] - xb[t];
        if (r->metric == AP_METRIC_EUCLIDEAN) offset -= normal[t] * 0.5f * (xa[t] + xb[t]);
    }
    int64_t nleft = 0;
    for (int64_t i = lo; i < hi; i++) {
        const float *xi = r->x + (int64_t)perm[i] * d;
        float s = offset;
#pragma omp simd reduction(+ : s)
        for (int t = 0; t < d; t++) s += normal[t] * xi[t];
        side[i - lo] = s < 0 ? 0 : s > 0 ? 1 : (uint8_t)(ap_rng_next(rng) >> 63);
        nleft += side[i - lo] == 0;
    }
    if (nleft == 0 || nleft == m) {
        nleft = 0;
        for (int64_t i = 0; i < m; i++) {
            side[i] = (uint8_t)(ap_rng_next(rng) >> 63);
            nleft += side[i] == 0;
        }
        if (nleft == 0 || nleft == m) { /* two coin flips of a tiny node agreed: halve it */
            nleft = m / 2;
            for (int64_t i = 0; i < m; i++) side[i] = i >= nleft;
        }
    }
    /* stable partition: left side first */
    int64_t w = lo, nr = 0;
    for (int64_t i = lo; i < hi; i++) {
        if (side[i - lo] == 0)
            perm[w++] = perm[i];
        else
            right[nr++] = perm[i];
    }
    memcpy(perm + w, right, (size_t)nr * sizeof *right);
    return lo + nleft;
}

static ap_status rp_build(const knn_rows *r, int leaf_size, uint64_t seed, rp_tree *t, ap_error *err) {
    const int64_t n = r->n;
    memset(t, 0, sizeof *t);
    t->perm = ap_malloc((size_t)n * sizeof(int32_t), err);
    t->leaves = ap_malloc((size_t)n * 2 * sizeof(int32_t), err);
    int64_t *stack = ap_malloc((size_t)n * 2 * sizeof(int64_t), err);
    float *normal = ap_malloc((size_t)r->d * sizeof(float), err);
    uint8_t *side = ap_malloc((size_t)n, err);
    int32_t *right = ap_malloc((size_t)n * sizeof(int32_t), err);
    ap_status st = AP_OK;
    if (!t->perm || !t->leaves || !stack || !normal || !side || !right) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++) t->perm[i] = (int32_t)i;
    ap_rng rng;
    ap_rng_seed(&rng, seed);
    int64_t top = 0;
    stack[top++] = 0;
    stack[top++] = n;
    while (top > 0) {
        int64_t hi = stack[--top], lo = stack[--top];
        if (hi - lo <= leaf_size) {
            t->leaves[2 * t->nleaves] = (int32_t)lo;
            t->leaves[2 * t->nleaves + 1] = (int32_t)hi;
            t->nleaves++;
            continue;
        }
        int64_t mid = rp_split(r, t->perm, lo, hi, &rng, normal, side, right);
        stack[top++] = mid;
        stack[top++] = hi;
        stack[top++] = lo;
        stack[top++] = mid;
    }
done:
    free(stack);
    free(normal);
    free(side);
    free(right);
    if (st != AP_OK) {
        free(t->perm);
        free(t->leaves);
        memset(t, 0, sizeof *t);
    }
    return st;
}

/* Every pair within each leaf of every tree, into the heaps (as new). */
static ap_status rp_forest_init(const knn_rows *r, uint64_t seed, knn_heaps *h, ap_error *err) {
    const int ntrees = tree_count(r->n);
    const int leaf_size = h->K + 1 > 10 ? h->K + 1 : 10;
    rp_tree *trees = ap_calloc((size_t)ntrees, sizeof *trees, err);
    if (!trees) return err->code;
    ap_status st = AP_OK;
#pragma omp parallel for schedule(dynamic)
    for (int t = 0; t < ntrees; t++) {
        ap_error terr = {0};
        if (rp_build(r, leaf_size, ap_hash_mix(seed, (uint64_t)t), &trees[t], &terr) != AP_OK) {
#pragma omp critical(nnd_err)
            st = ap_fail(err, AP_ERR_NOMEM, "out of memory building the kNN search trees");
        }
    }
    for (int t = 0; t < ntrees && st == AP_OK; t++) {
        const rp_tree *tr = &trees[t];
#pragma omp parallel for schedule(dynamic, 16)
        for (int l = 0; l < tr->nleaves; l++) {
            const int32_t lo = tr->leaves[2 * l], hi = tr->leaves[2 * l + 1];
            for (int32_t a = lo; a < hi; a++)
                for (int32_t b = a + 1; b < hi; b++) {
                    int32_t p = tr->perm[a], q = tr->perm[b];
                    float dpq = knn_rank_dist(r, p, q);
                    knn_heap_push(h, p, dpq, q, FLAG_NEW);
                    knn_heap_push(h, q, dpq, p, FLAG_NEW);
                }
        }
    }
    for (int t = 0; t < ntrees; t++) {
        free(trees[t].perm);
        free(trees[t].leaves);
    }
    free(trees);
    return st;
}

/* ---- NN-descent ---- */

/* A random priority of the pair {i, j} in iteration `it`, the same from both
 * ends, in [0, 1). */
static float pair_priority(uint64_t seed, int it, int32_t i, int32_t j) {
    uint64_t lo = (uint64_t)(i < j ? i : j), hi = (uint64_t)(i < j ? j : i);
    uint64_t hsh = ap_hash_mix(ap_hash_mix(seed, (uint64_t)it), (lo << 32) | hi);
    return (float)(hsh >> 40) * 0x1.0p-24f;
}

/* The join candidates of every point: up to MC of its new (resp. old)
 * neighbours and of the points that have it as a new (resp. old) neighbour,
 * sampled by random priority. Entries sampled as new become old. */
static ap_status build_candidates(knn_heaps *h, uint64_t seed, int it, knn_heaps *cnew, knn_heaps *cold,
                                  ap_error *err) {
    const int64_t n = h->n;
    const int K = h->K;
    int64_t *start = ap_calloc((size_t)n + 1, sizeof(int64_t), err);
    int32_t *src = ap_malloc((size_t)n * K * sizeof(int32_t), err);
    uint8_t *srcflag = ap_malloc((size_t)n * K, err);
    if (!start || !src || !srcflag) {
        free(start);
        free(src);
        free(srcflag);
        return AP_ERR_NOMEM;
    }
    for (int64_t c = 0; c < (int64_t)n * cnew->K; c++) {
        cnew->idx[c] = cold->idx[c] = -1;
        cnew->dist[c] = cold->dist[c] = INFINITY;
    }
    /* reverse lists, in order of the source point */
    for (int64_t i = 0; i < n * K; i++)
        if (h->idx[i] >= 0) start[h->idx[i] + 1]++;
    for (int64_t j = 0; j < n; j++) start[j + 1] += start[j];
    int64_t *fill = ap_malloc((size_t)n * sizeof(int64_t), err);
    if (!fill) {
        free(start);
        free(src);
        free(srcflag);
        return AP_ERR_NOMEM;
    }
    memcpy(fill, start, (size_t)n * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < K; c++) {
            int32_t j = h->idx[i * K + c];
            if (j < 0) continue;
            src[fill[j]] = (int32_t)i;
            srcflag[fill[j]++] = h->flag[i * K + c];
        }
    free(fill);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        for (int c = 0; c < K; c++) {
            int32_t j = h->idx[i * K + c];
            if (j < 0) continue;
            knn_heap_push(h->flag[i * K + c] ? cnew : cold, i, pair_priority(seed, it, (int32_t)i, j), j, 0);
        }
        for (int64_t s = start[i]; s < start[i + 1]; s++)
            knn_heap_push(srcflag[s] ? cnew : cold, i, pair_priority(seed, it, (int32_t)i, src[s]), src[s], 0);
        for (int c = 0; c < K; c++) {
            if (!h->flag[i * K + c]) continue;
            for (int e = 0; e < cnew->K; e++)
                if (cnew->idx[i * cnew->K + e] == h->idx[i * K + c]) {
                    h->flag[i * K + c] = FLAG_OLD;
                    break;
                }
        }
    }
    free(start);
    free(src);
    free(srcflag);
    return AP_OK;
}

typedef struct pair_update {
    int32_t p, q;
    float d;
} pair_update;

typedef struct update_buf {
    pair_update *u;
    size_t len, cap;
} update_buf;

static int buf_push(update_buf *b, int32_t p, int32_t q, float d) {
    if (b->len == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        pair_update *u = realloc(b->u, cap * sizeof *u);
        if (!u) return -1;
        b->u = u;
        b->cap = cap;
    }
    b->u[b->len++] = (pair_update){p, q, d};
    return 0;
}

/* The local join of point u: every new candidate against the later new ones
 * and all old ones; pairs that would enter either heap are emitted. */
static int join_point(const knn_rows *r, const knn_heaps *h, const knn_heaps *cnew, const knn_heaps *cold, int64_t u,
                      update_buf *out) {
    const int MC = cnew->K;
    const int32_t *nw = cnew->idx + u * MC, *od = cold->idx + u * MC;
    const int K = h->K;
    for (int a = 0; a < MC; a++) {
        int32_t p = nw[a];
        if (p < 0) continue;
        const float thr_p = h->dist[(int64_t)p * K];
        for (int b = 0; b < 2 * MC; b++) {
            int32_t q = b < MC ? (b > a ? nw[b] : -1) : od[b - MC];
            if (q < 0 || q == p) continue;
            float dpq = knn_rank_dist(r, p, q);
            if (dpq <= thr_p || dpq <= h->dist[(int64_t)q * K])
                if (buf_push(out, p, q, dpq)) return -1;
        }
    }
    return 0;
}

/* Offer the emitted pairs to both heaps; thread t owns the points of its
 * slice of [0, n), so no heap is written by two threads. */
static void apply_updates(knn_heaps *h, update_buf *bufs, int nbufs) {
    const int64_t n = h->n;
#pragma omp parallel
    {
        const int T = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t lo = n * t / T, hi = n * (t + 1) / T;
        for (int b = 0; b < nbufs; b++)
            for (size_t e = 0; e < bufs[b].len; e++) {
                const pair_update *u = &bufs[b].u[e];
                if (u->p >= lo && u->p < hi) knn_heap_push(h, u->p, u->d, u->q, FLAG_FRESH);
                if (u->q >= lo && u->q < hi) knn_heap_push(h, u->q, u->d, u->p, FLAG_FRESH);
            }
    }
}

/* One NN-descent iteration; returns the number of heap entries that changed,
 * or -1 when out of memory. */
static int64_t descent_iteration(const knn_rows *r, knn_heaps *h, const knn_heaps *cnew, const knn_heaps *cold) {
    const int64_t n = h->n;
    const int nthreads = omp_get_max_threads();
    update_buf *bufs = calloc((size_t)nthreads, sizeof *bufs);
    if (!bufs) return -1;
    int failed = 0;
    for (int64_t u0 = 0; u0 < n && !failed; u0 += JOIN_CHUNK) {
        const int64_t u1 = u0 + JOIN_CHUNK < n ? u0 + JOIN_CHUNK : n;
        for (int b = 0; b < nthreads; b++) bufs[b].len = 0;
#pragma omp parallel num_threads(nthreads)
        {
            update_buf *mine = &bufs[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 64)
            for (int64_t u = u0; u < u1; u++)
                if (join_point(r, h, cnew, cold, u, mine)) {
#pragma omp atomic write
                    failed = 1;
                }
        }
        if (!failed) apply_updates(h, bufs, nthreads);
    }
    for (int b = 0; b < nthreads; b++) free(bufs[b].u);
    free(bufs);
    if (failed) return -1;
    int64_t changed = 0;
    for (int64_t c = 0; c < n * h->K; c++)
        if (h->flag[c] == FLAG_FRESH) {
            h->flag[c] = FLAG_NEW;
            changed++;
        }
    return changed;
}

ap_status knn_nndescent(const knn_rows *r, uint64_t seed, knn_heaps *h, ap_error *err) {
    const int64_t n = r->n;
    if (h->K == 0) return AP_OK;
    ap_status st = rp_forest_init(r, seed, h, err);
    if (st != AP_OK) return st;
    const int MC = h->K < MAX_CANDIDATES ? h->K : MAX_CANDIDATES;
    knn_heaps cnew, cold;
    if ((st = knn_heaps_init(&cnew, n, MC, 0, err)) != AP_OK) return st;
    if ((st = knn_heaps_init(&cold, n, MC, 0, err)) != AP_OK) {
        knn_heaps_free(&cnew);
        return st;
    }
    const int max_iter = (int)fmax(5.0, round(log2((double)n)));
    for (int it = 0; it < max_iter; it++) {
        if ((st = build_candidates(h, seed, it, &cnew, &cold, err)) != AP_OK) break;
        int64_t changed = descent_iteration(r, h, &cnew, &cold);
        if (changed < 0) {
            st = ap_fail(err, AP_ERR_NOMEM, "out of memory in the kNN search (NN-descent)");
            break;
        }
        ap_debug("nndescent iteration %d: %lld heap entries changed", it, (long long)changed);
        if ((double)changed <= STOP_FRACTION * (double)n * h->K) break;
    }
    knn_heaps_free(&cnew);
    knn_heaps_free(&cold);
    return st;
}
