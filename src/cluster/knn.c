/* k nearest neighbours (docs/analysis.md, "UMAP"): exact through BLAS
 * products in fixed tiles, or approximate (nndescent.c) for large n.
 *
 * Determinism: the tiles are fixed and each is one single-threaded sgemm
 * (OpenBLAS runs serially inside an OpenMP region), every row's candidates
 * are kept in a heap ordered by (distance, index), and the reported
 * distances are recomputed directly: the result is the same bits for any
 * thread count. */
#include "cluster/umap_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

ap_status ap_metric_parse(const char *s, ap_metric *out, ap_error *err) {
    if (s && strcmp(s, "euclidean") == 0) {
        *out = AP_METRIC_EUCLIDEAN;
        return AP_OK;
    }
    if (s && strcmp(s, "cosine") == 0) {
        *out = AP_METRIC_COSINE;
        return AP_OK;
    }
    return ap_fail(err, AP_ERR_ARG, "unknown metric '%s' (expected euclidean or cosine)", s ? s : "(null)");
}

const char *ap_metric_name(ap_metric m) {
    return m == AP_METRIC_COSINE ? "cosine" : "euclidean";
}

ap_status ap_check_finite(const float *x, int64_t n, int d, const char *what, ap_error *err) {
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            float v = x[i * d + j];
            if (!isfinite(v))
                return ap_fail(err, AP_ERR_ARG, "%s: row %lld, column %d is %s", what, (long long)i, j,
                               isnan(v) ? "NaN" : "infinite");
        }
    return AP_OK;
}

/* ---- rows ---- */

ap_status knn_rows_init(knn_rows *r, const float *x, int64_t n, int d, ap_metric metric, ap_error *err) {
    memset(r, 0, sizeof *r);
    r->n = n;
    r->d = d;
    r->metric = metric;
    r->x = x;
    r->sqnorm = ap_malloc((size_t)n * sizeof(float), err);
    if (!r->sqnorm) return err->code;
    if (metric == AP_METRIC_COSINE) {
        r->scaled = ap_malloc((size_t)n * d * sizeof(float), err);
        if (!r->scaled) {
            knn_rows_free(r);
            return err->code;
        }
        r->x = r->scaled;
    }
    ap_status st = AP_OK;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * d;
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)xi[j] * xi[j];
        if (metric == AP_METRIC_COSINE) {
            float *yi = r->scaled + i * d;
            float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
            for (int j = 0; j < d; j++) yi[j] = xi[j] * inv;
            r->sqnorm[i] = s > 0 ? 1.0f : 0.0f;
        } else {
            r->sqnorm[i] = (float)s;
        }
    }
    if (metric == AP_METRIC_COSINE)
        for (int64_t i = 0; i < n && st == AP_OK; i++)
            if (r->sqnorm[i] == 0.0f)
                st = ap_fail(err, AP_ERR_ARG, "x: row %lld is all zeros: its cosine distance is undefined",
                             (long long)i);
    if (st != AP_OK) knn_rows_free(r);
    return st;
}

void knn_rows_free(knn_rows *r) {
    free(r->scaled);
    free(r->sqnorm);
    memset(r, 0, sizeof *r);
}

float knn_rank_dist(const knn_rows *r, int64_t i, int64_t j) {
    const float *a = r->x + i * r->d, *b = r->x + j * r->d;
    float s = 0;
    if (r->metric == AP_METRIC_COSINE) {
#pragma omp simd reduction(+ : s)
        for (int t = 0; t < r->d; t++) s += a[t] * b[t];
        return 1.0f - s;
    }
#pragma omp simd reduction(+ : s)
    for (int t = 0; t < r->d; t++) s += (a[t] - b[t]) * (a[t] - b[t]);
    return s;
}

/* The reported distance, in double: sqrt of the squared difference, or for
 * cosine 1 - cos = |a - b|^2 / 2 on unit rows (no cancellation near 0). */
static float exact_dist(const knn_rows *r, int64_t i, int64_t j) {
    const float *a = r->x + i * r->d, *b = r->x + j * r->d;
    double s = 0;
    for (int t = 0; t < r->d; t++) {
        double v = (double)a[t] - b[t];
        s += v * v;
    }
    return (float)(r->metric == AP_METRIC_COSINE ? 0.5 * s : sqrt(s));
}

/* ---- heaps ---- */

ap_status knn_heaps_init(knn_heaps *h, int64_t n, int K, int with_flags, ap_error *err) {
    memset(h, 0, sizeof *h);
    h->n = n;
    h->K = K;
    size_t cells = (size_t)n * (size_t)(K > 0 ? K : 1);
    h->idx = ap_malloc(cells * sizeof(int32_t), err);
    h->dist = ap_malloc(cells * sizeof(float), err);
    if (with_flags) h->flag = ap_calloc(cells, 1, err);
    if (!h->idx || !h->dist || (with_flags && !h->flag)) {
        knn_heaps_free(h);
        return AP_ERR_NOMEM;
    }
    for (size_t c = 0; c < cells; c++) {
        h->idx[c] = -1;
        h->dist[c] = INFINITY;
    }
    return AP_OK;
}

void knn_heaps_free(knn_heaps *h) {
    free(h->idx);
    free(h->dist);
    free(h->flag);
    memset(h, 0, sizeof *h);
}

/* (da, ia) > (db, ib) in the heaps' order; an empty slot (inf, -1) is above
 * every real entry. */
static inline int entry_above(float da, int32_t ia, float db, int32_t ib) {
    if (da != db) return da > db;
    if (ia < 0 || ib < 0) return ia < 0 && ib >= 0;
    return ia > ib;
}

int knn_heap_push(knn_heaps *h, int64_t i, float d, int32_t j, uint8_t flag) {
    const int K = h->K;
    int32_t *hi = h->idx + i * K;
    float *hd = h->dist + i * K;
    uint8_t *hf = h->flag ? h->flag + i * K : NULL;
    if (K == 0 || !entry_above(hd[0], hi[0], d, j)) return 0;
    for (int c = 0; c < K; c++)
        if (hi[c] == j) return 0;
    /* replace the root and sift down */
    int pos = 0;
    for (;;) {
        int l = 2 * pos + 1, r = l + 1, big = pos;
        float bd = d;
        int32_t bi = j;
        if (l < K && entry_above(hd[l], hi[l], bd, bi)) {
            big = l;
            bd = hd[l];
            bi = hi[l];
        }
        if (r < K && entry_above(hd[r], hi[r], bd, bi)) big = r;
        if (big == pos) break;
        hd[pos] = hd[big];
        hi[pos] = hi[big];
        if (hf) hf[pos] = hf[big];
        pos = big;
    }
    hd[pos] = d;
    hi[pos] = j;
    if (hf) hf[pos] = flag;
    return 1;
}

/* ---- exact search ---- */

enum { TILE_ROWS = 64, TILE_COLS = 2048 };

/* Rank distances of rows [r0, r0+nr) against columns [c0, c0+nc) from one
 * sgemm into tile [nr, nc], then offered to the rows' heaps. */
static void exact_tile(const knn_rows *r, int64_t r0, int nr, int64_t c0, int nc, float *tile, knn_heaps *h) {
    const int d = r->d;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, nc, d, 1.0f, r->x + r0 * d, d, r->x + c0 * d, d, 0.0f,
                tile, nc);
    for (int a = 0; a < nr; a++) {
        const int64_t i = r0 + a;
        float *t = tile + (size_t)a * nc;
        if (r->metric == AP_METRIC_COSINE) {
            for (int c = 0; c < nc; c++) t[c] = 1.0f - t[c];
        } else {
            const float ni = r->sqnorm[i];
            for (int c = 0; c < nc; c++) {
                float s = ni + r->sqnorm[c0 + c] - 2.0f * t[c];
                t[c] = s > 0 ? s : 0;
            }
        }
        const float *hd = h->dist + i * h->K;
        for (int c = 0; c < nc; c++) {
            int64_t j = c0 + c;
            if (t[c] <= hd[0] && j != i) knn_heap_push(h, i, t[c], (int32_t)j, 0);
        }
    }
}

static ap_status exact_search(const knn_rows *r, knn_heaps *h, ap_error *err) {
    const int64_t n = r->n;
    const int64_t nblocks = (n + TILE_ROWS - 1) / TILE_ROWS;
    int failed = 0;
#pragma omp parallel
    {
        float *tile = malloc((size_t)TILE_ROWS * TILE_COLS * sizeof(float));
        if (!tile) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (int64_t b = 0; b < nblocks; b++) {
            if (!tile) continue;
            int64_t r0 = b * TILE_ROWS;
            int nr = (int)(n - r0 < TILE_ROWS ? n - r0 : TILE_ROWS);
            for (int64_t c0 = 0; c0 < n; c0 += TILE_COLS) {
                int nc = (int)(n - c0 < TILE_COLS ? n - c0 : TILE_COLS);
                exact_tile(r, r0, nr, c0, nc, tile, h);
            }
        }
        free(tile);
    }
    return failed ? ap_fail(err, AP_ERR_NOMEM, "out of memory for the kNN distance tiles") : AP_OK;
}

/* ---- output ---- */

typedef struct nbr {
    float d;
    int32_t j;
} nbr;

static int nbr_cmp(const void *pa, const void *pb) {
    const nbr *a = pa, *b = pb;
    if (a->d != b->d) return a->d < b->d ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

/* Row i of the output: itself, then the heap's points by exact distance. */
static void write_row(const knn_rows *r, const knn_heaps *h, int64_t i, int k, nbr *tmp, int32_t *idx, float *dist) {
    const int K = h->K;
    int m = 0;
    for (int c = 0; c < K; c++) {
        int32_t j = h->idx[i * K + c];
        if (j >= 0) tmp[m++] = (nbr){exact_dist(r, i, j), j};
    }
    qsort(tmp, (size_t)m, sizeof *tmp, nbr_cmp);
    idx[i * k] = (int32_t)i;
    dist[i * k] = 0.0f;
    for (int c = 0; c < K; c++) {
        idx[i * k + 1 + c] = c < m ? tmp[c].j : -1;
        dist[i * k + 1 + c] = c < m ? tmp[c].d : INFINITY;
    }
}

/* A row the approximate search left short (possible only in degenerate
 * data): searched again exhaustively. */
static void refill_row(const knn_rows *r, knn_heaps *h, int64_t i) {
    for (int64_t j = 0; j < r->n; j++)
        if (j != i) knn_heap_push(h, i, knn_rank_dist(r, i, j), (int32_t)j, 0);
}

ap_status knn_search(const knn_rows *r, int k, ap_knn_method method, uint64_t seed, int32_t *idx, float *dist,
                     ap_error *err) {
    const int64_t n = r->n;
    knn_heaps h;
    const int approx = method == AP_KNN_APPROX || (method == AP_KNN_AUTO && n > AP_KNN_EXACT_MAX_N);
    ap_status st = knn_heaps_init(&h, n, k - 1, approx, err);
    if (st != AP_OK) return st;
    st = approx ? knn_nndescent(r, seed, &h, err) : exact_search(r, &h, err);
    if (st == AP_OK) {
        for (int64_t i = 0; i < n; i++)
            for (int c = 0; c < h.K; c++)
                if (h.idx[i * h.K + c] < 0) {
                    refill_row(r, &h, i);
                    break;
                }
        int failed = 0;
#pragma omp parallel
        {
            nbr *tmp = malloc((size_t)k * sizeof *tmp);
            if (!tmp) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(static)
            for (int64_t i = 0; i < n; i++)
                if (tmp) write_row(r, &h, i, k, tmp, idx, dist);
            free(tmp);
        }
        if (failed) st = ap_fail(err, AP_ERR_NOMEM, "out of memory sorting the kNN rows");
    }
    knn_heaps_free(&h);
    return st;
}

ap_status ap_knn(const float *x, int64_t n, int d, int k, ap_metric metric, ap_knn_method method, uint64_t seed,
                 int32_t *idx, float *dist, ap_error *err) {
    if (n < 1 || d < 1)
        return ap_fail(err, AP_ERR_ARG, "x: kNN needs at least one row and one column (got [%lld, %d])",
                       (long long)n, d);
    if (n > INT32_MAX) return ap_fail(err, AP_ERR_ARG, "x: %lld rows, at most %d supported", (long long)n, INT32_MAX);
    if (k < 1 || k > n)
        return ap_fail(err, AP_ERR_ARG, "x: %d neighbours (the point itself included) asked of %lld points", k,
                       (long long)n);
    ap_status st = ap_check_finite(x, n, d, "x", err);
    if (st != AP_OK) return st;
    knn_rows rows;
    if ((st = knn_rows_init(&rows, x, n, d, metric, err)) != AP_OK) return st;
    st = knn_search(&rows, k, method, seed, idx, dist, err);
    knn_rows_free(&rows);
    return st;
}
