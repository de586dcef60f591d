/* apmae/cluster.h — recurring attention patterns: per (layer, head), the
 * AP-MAE encodings of all samples reduced with UMAP and clustered with
 * HDBSCAN (docs/analysis.md). The algorithms work on any float matrix
 * x [n, d] (row-major); `apmae cluster` runs them per head over a store.
 *
 * Determinism: for a given seed every function here returns the same result
 * whatever the thread count. */
#ifndef APMAE_CLUSTER_H
#define APMAE_CLUSTER_H

#include "apmae/base.h"

typedef enum ap_metric { AP_METRIC_EUCLIDEAN = 0, AP_METRIC_COSINE } ap_metric;
ap_status ap_metric_parse(const char *s, ap_metric *out, ap_error *err);
const char *ap_metric_name(ap_metric m);

/* ---- UMAP ------------------------------------------------------------------------------------ */

/* AP_ERR_ARG naming `what` (e.g. "x") and the first row and column holding
 * NaN or an infinity; AP_OK when every value of x [n, d] is finite. */
ap_status ap_check_finite(const float *x, int64_t n, int d, const char *what, ap_error *err);

/* k nearest neighbours. Up to AP_KNN_EXACT_MAX_N points the search is exact
 * (distances through BLAS products); above it approximate (random-projection
 * trees refined by NN-descent), see docs/analysis.md. */
#define AP_KNN_EXACT_MAX_N 20000
typedef enum ap_knn_method { AP_KNN_AUTO = 0, AP_KNN_EXACT, AP_KNN_APPROX } ap_knn_method;

/* The k nearest points of every row of x [n, d]: idx [n, k], dist [n, k].
 * Row i lists i itself first (distance 0), then the k-1 nearest other points
 * by increasing distance, ties by index. Euclidean distance, or cosine
 * distance 1 - cos(x_i, x_j) (a row of norm 0 is then an error). 1 <= k <= n;
 * seed drives the approximate search only. */
ap_status ap_knn(const float *x, int64_t n, int d, int k, ap_metric metric, ap_knn_method method, uint64_t seed,
                 int32_t *idx, float *dist, ap_error *err);

typedef struct ap_umap_params {
    int n_components;  /* output dimension (8) */
    int n_neighbors;   /* k of the kNN graph, the point itself included (20) */
    double min_dist;   /* (0.05) */
    double spread;     /* (1.0) */
    ap_metric metric;  /* of the input space (cosine) */
    int n_epochs;      /* SGD epochs; 0: umap-learn's rule (500 for n <= 10,000, else 200) */
    uint64_t seed;
} ap_umap_params;
void ap_umap_params_default(ap_umap_params *p);

/* Embed x [n, d] into out [n, n_components]. n must exceed n_neighbors. */
ap_status ap_umap(const float *x, int64_t n, int d, const ap_umap_params *p, float *out, ap_error *err);

/* ---- HDBSCAN --------------------------------------------------------------------------------- */

typedef struct ap_hdbscan_params {
    int min_samples;          /* core distance = distance to the min_samples-th neighbour, the point itself counted (20) */
    int min_cluster_size;     /* (25) */
    int allow_single_cluster; /* (1) */
    ap_metric metric;         /* (euclidean: HDBSCAN runs on the UMAP output) */
} ap_hdbscan_params;
void ap_hdbscan_params_default(ap_hdbscan_params *p);

/* Cluster x [n, d]: labels [n] in 0..k-1 (clusters numbered in a
 * deterministic order, see docs/analysis.md), -1 = noise; outlier [n]
 * (GLOSH scores, may be NULL). *nclusters may be NULL. */
ap_status ap_hdbscan(const float *x, int64_t n, int d, const ap_hdbscan_params *p, int32_t *labels, float *outlier,
                     int *nclusters, ap_error *err);

#endif
