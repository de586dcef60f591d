/* UMAP's fuzzy simplicial set (docs/analysis.md, "UMAP"): each point's
 * neighbourhood becomes a fuzzy set calibrated so that its memberships sum to
 * log2(k) (smooth kNN), and the local sets are combined by fuzzy union into
 * one symmetric weighted graph. The constants are umap-learn's. */
#include "cluster/umap_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SMOOTH_K_TOLERANCE 1e-5
#define MIN_K_DIST_SCALE 1e-3
#define SMOOTH_K_ITERATIONS 64

/* sigma by bisection on sum_{j>=1} exp(-max(0, d_j - rho) / sigma) = target;
 * the sum grows with sigma. */
static double bisect_sigma(const float *d, int k, double rho, double target) {
    double lo = 0, hi = INFINITY, mid = 1;
    for (int it = 0; it < SMOOTH_K_ITERATIONS; it++) {
        double psum = 0;
        for (int j = 1; j < k; j++) {
            double t = d[j] - rho;
            psum += t > 0 ? exp(-t / mid) : 1.0;
        }
        if (fabs(psum - target) < SMOOTH_K_TOLERANCE) break;
        if (psum > target) {
            hi = mid;
            mid = (lo + hi) / 2;
        } else {
            lo = mid;
            mid = isinf(hi) ? mid * 2 : (lo + hi) / 2;
        }
    }
    return mid;
}

void umap_smooth_knn(const float *dist, int64_t n, int k, double *sigma, double *rho) {
    const double target = log2((double)k);
    double total = 0;
    for (int64_t c = 0; c < n * k; c++) total += dist[c];
    const double mean_all = total / (double)(n * k);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *d = dist + i * k;
        double r = 0, row_sum = 0;
        for (int j = 0; j < k; j++) {
            row_sum += d[j];
            if (r == 0 && d[j] > 0) r = d[j]; /* rows are sorted: the first positive one */
        }
        double s = bisect_sigma(d, k, r, target);
        double floor = MIN_K_DIST_SCALE * (r > 0 ? row_sum / k : mean_all);
        rho[i] = r;
        sigma[i] = s < floor ? floor : s;
    }
}

void umap_graph_free(umap_graph *g) {
    free(g->rowptr);
    free(g->col);
    free(g->w);
    memset(g, 0, sizeof *g);
}

/* Membership of row i's c-th neighbour (c >= 1). */
static float membership(const float *dist, int k, int64_t i, int c, const double *sigma, const double *rho) {
    double t = dist[i * k + c] - rho[i];
    return t <= 0 ? 1.0f : (float)exp(-t / sigma[i]);
}

/* Where i is in j's neighbour list, or -1. */
static int list_position(const int32_t *idx, int k, int32_t j, int64_t i) {
    for (int c = 1; c < k; c++)
        if (idx[(int64_t)j * k + c] == i) return c;
    return -1;
}

typedef struct edge {
    int32_t col;
    float w;
} edge;

static int edge_cmp(const void *pa, const void *pb) {
    const edge *a = pa, *b = pb;
    return (a->col > b->col) - (a->col < b->col);
}

ap_status umap_fuzzy_graph(const int32_t *idx, const float *dist, int64_t n, int k, umap_graph *g, ap_error *err) {
    memset(g, 0, sizeof *g);
    double *sigma = ap_malloc((size_t)n * sizeof(double), err);
    double *rho = ap_malloc((size_t)n * sizeof(double), err);
    /* directed union entries: (i, j) from i's list, and (j, i) when j does not list i */
    float *wf = ap_malloc((size_t)n * k * sizeof(float), err);
    uint8_t *mirror = ap_calloc((size_t)n * k, 1, err);
    g->rowptr = ap_calloc((size_t)n + 1, sizeof(int64_t), err);
    ap_status st = AP_OK;
    if (!sigma || !rho || !wf || !mirror || !g->rowptr) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    umap_smooth_knn(dist, n, k, sigma, rho);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        wf[i * k] = 0;
        for (int c = 1; c < k; c++) {
            int32_t j = idx[i * k + c];
            if (j < 0) {
                wf[i * k + c] = 0;
                continue;
            }
            int back = list_position(idx, k, j, i);
            float a = membership(dist, k, i, c, sigma, rho);
            float b = back > 0 ? membership(dist, k, j, back, sigma, rho) : 0.0f;
            wf[i * k + c] = a + b - a * b;
            mirror[i * k + c] = back < 0; /* else j's own list holds (j, i) */
        }
    }
    /* rows: count, then fill in a fixed order, then sort each row by column */
    for (int64_t i = 0; i < n; i++)
        for (int c = 1; c < k; c++) {
            if (wf[i * k + c] <= 0) continue;
            g->rowptr[i + 1]++;
            if (mirror[i * k + c]) g->rowptr[idx[i * k + c] + 1]++;
        }
    for (int64_t i = 0; i < n; i++) g->rowptr[i + 1] += g->rowptr[i];
    g->n = n;
    g->nnz = g->rowptr[n];
    edge *edges = ap_malloc((size_t)(g->nnz > 0 ? g->nnz : 1) * sizeof(edge), err);
    int64_t *fill = ap_malloc((size_t)n * sizeof(int64_t), err);
    if (!edges || !fill) {
        free(edges);
        free(fill);
        st = AP_ERR_NOMEM;
        goto done;
    }
    memcpy(fill, g->rowptr, (size_t)n * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++)
        for (int c = 1; c < k; c++) {
            float w = wf[i * k + c];
            if (w <= 0) continue;
            int32_t j = idx[i * k + c];
            edges[fill[i]++] = (edge){j, w};
            if (mirror[i * k + c]) edges[fill[j]++] = (edge){(int32_t)i, w};
        }
    free(fill);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        qsort(edges + g->rowptr[i], (size_t)(g->rowptr[i + 1] - g->rowptr[i]), sizeof(edge), edge_cmp);
    g->col = ap_malloc((size_t)(g->nnz > 0 ? g->nnz : 1) * sizeof(int32_t), err);
    g->w = ap_malloc((size_t)(g->nnz > 0 ? g->nnz : 1) * sizeof(float), err);
    if (!g->col || !g->w) {
        free(edges);
        st = AP_ERR_NOMEM;
        goto done;
    }
    for (int64_t e = 0; e < g->nnz; e++) {
        g->col[e] = edges[e].col;
        g->w[e] = edges[e].w;
    }
    free(edges);
done:
    free(sigma);
    free(rho);
    free(wf);
    free(mirror);
    if (st != AP_OK) umap_graph_free(g);
    return st;
}

void umap_graph_prune(umap_graph *g, int n_epochs) {
    float wmax = 0;
    for (int64_t e = 0; e < g->nnz; e++)
        if (g->w[e] > wmax) wmax = g->w[e];
    const float cut = wmax / (float)n_epochs;
    int64_t out = 0, begin = 0;
    for (int64_t i = 0; i < g->n; i++) {
        const int64_t end = g->rowptr[i + 1];
        for (int64_t e = begin; e < end; e++)
            if (g->w[e] >= cut) {
                g->col[out] = g->col[e];
                g->w[out++] = g->w[e];
            }
        begin = end;
        g->rowptr[i + 1] = out;
    }
    g->nnz = out;
}
