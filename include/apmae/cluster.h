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
