/* The pieces of kNN and UMAP (docs/analysis.md, "UMAP"), shared between
 * src/cluster/ files and the tests. Not part of the public API. */
#ifndef APMAE_CLUSTER_UMAP_INTERNAL_H
#define APMAE_CLUSTER_UMAP_INTERNAL_H

#include "apmae/cluster.h"

/* ---- kNN (knn.c, nndescent.c) ---- */

/* The rows the searches compare: for cosine, x with every row scaled to unit
 * norm (then 1 - dot is the distance); for euclidean, x as it is. sqnorm[i] =
 * |row i|^2. Owned by the caller (knn_rows_free). */
typedef struct knn_rows {
    const float *x; /* x itself, or `scaled` */
    float *scaled;
    float *sqnorm;
    int64_t n;
    int d;
    ap_metric metric;
} knn_rows;
ap_status knn_rows_init(knn_rows *r, const float *x, int64_t n, int d, ap_metric metric, ap_error *err);
void knn_rows_free(knn_rows *r);
/* The distance the searches rank by (squared euclidean, or 1 - dot), from a
 * direct sum. */
float knn_rank_dist(const knn_rows *r, int64_t i, int64_t j);

/* Bounded max-heaps of K candidates per point, ordered by (distance, index):
 * the K smallest of everything pushed, whatever the order of the pushes.
 * Empty slots hold index -1 and distance +inf. flag (may be NULL) marks
 * entries NN-descent has not joined yet. */
typedef struct knn_heaps {
    int64_t n;
    int K;
    int32_t *idx;
    float *dist;
    uint8_t *flag;
} knn_heaps;
ap_status knn_heaps_init(knn_heaps *h, int64_t n, int K, int with_flags, ap_error *err);
void knn_heaps_free(knn_heaps *h);
/* Push (d, j) into point i's heap unless j is there already or (d, j) is not
 * smaller than the largest entry. Returns 1 when it went in. */
int knn_heap_push(knn_heaps *h, int64_t i, float d, int32_t j, uint8_t flag);

/* ap_knn on prepared rows (n <= INT32_MAX, 1 <= k <= n). */
ap_status knn_search(const knn_rows *r, int k, ap_knn_method method, uint64_t seed, int32_t *idx, float *dist,
                     ap_error *err);

/* Approximate search: fills h (K = k - 1 other points per row, ranked by
 * knn_rank_dist) by random-projection trees and NN-descent. */
ap_status knn_nndescent(const knn_rows *r, uint64_t seed, knn_heaps *h, ap_error *err);

/* ---- fuzzy simplicial set (fuzzy.c) ---- */

/* smooth-kNN calibration of each row of dist [n, k] (column 0 the point
 * itself): rho = distance to the nearest other point at a positive distance,
 * sigma such that sum_{j>=1} exp(-max(0, d_j - rho) / sigma) = log2(k),
 * floored at 1e-3 times the mean distance (of the row when rho > 0, of all
 * rows otherwise). */
void umap_smooth_knn(const float *dist, int64_t n, int k, double *sigma, double *rho);

/* A symmetric weighted graph in CSR form, columns ascending in each row. */
typedef struct umap_graph {
    int64_t n, nnz;
    int64_t *rowptr;
    int32_t *col;
    float *w;
} umap_graph;
void umap_graph_free(umap_graph *g);
/* The fuzzy union A + A^T - A∘A^T of the kNN memberships A_ij =
 * exp(-max(0, d_ij - rho_i) / sigma_i). */
ap_status umap_fuzzy_graph(const int32_t *idx, const float *dist, int64_t n, int k, umap_graph *g, ap_error *err);
/* Drop the edges lighter than max weight / n_epochs (in place). */
void umap_graph_prune(umap_graph *g, int n_epochs);

/* ---- initial layout (spectral.c) ---- */

/* The spectral layout of g into out [n, dim] (unscaled): the eigenvectors of
 * the normalised Laplacian for its 2nd..(dim+1)-th smallest eigenvalues,
 * connected components laid out apart; random where it cannot be computed.
 * rows gives the component centroids. *how (may be NULL) says what was done. */
typedef enum umap_init_kind { UMAP_INIT_SPECTRAL, UMAP_INIT_COMPONENTS, UMAP_INIT_RANDOM } umap_init_kind;
ap_status umap_spectral_layout(const umap_graph *g, const knn_rows *rows, int dim, uint64_t seed, float *out,
                               umap_init_kind *how, ap_error *err);

/* The top nev eigenpairs (largest eigenvalues, decreasing) of the symmetric
 * operator y = A x restricted to the complement of the unit vector v0, by
 * thick-restart Lanczos: vals [nev], vecs [nev][n] vector by vector.
 * *converged = 0 when some residual |A v - lambda v| stayed above tol within
 * max_matvec products (vecs then holds the best approximation). */
typedef void (*umap_matvec_fn)(const void *ctx, const double *x, double *y);
ap_status umap_lanczos_top(umap_matvec_fn A, const void *ctx, int64_t n, const double *v0, int nev, uint64_t seed,
                           double tol, int max_matvec, double *vals, double *vecs, int *matvecs, int *converged,
                           ap_error *err);

/* ---- the low-dimensional curve and the SGD (umap.c, sgd.c) ---- */

/* a, b of 1 / (1 + a d^(2b)) fitted by least squares to 1 for d < min_dist and
 * exp(-(d - min_dist) / spread) beyond, on 300 points of [0, 3 spread]. */
ap_status umap_find_ab(double spread, double min_dist, double *a, double *b, ap_error *err);

/* umap-learn's default epochs: 500 up to 10,000 points, 200 beyond. */
int umap_default_epochs(int64_t n);

/* The layout SGD over the edges of g (both directions of each), sequential. */
ap_status umap_sgd(float *emb, int dim, const umap_graph *g, int n_epochs, double a, double b, uint64_t seed,
                   ap_error *err);

#endif
