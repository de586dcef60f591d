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
#include "apmae/store.h"

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

/* ---- UMAP + HDBSCAN on one matrix ----------------------------------------------------------- */

typedef struct ap_cluster_params {
    ap_umap_params umap;       /* its seed is the run's seed */
    int no_umap;               /* cluster x itself */
    ap_hdbscan_params hdbscan;
    double jitter;             /* exact duplicate rows get this times a standard normal per entry (1e-3) */
} ap_cluster_params;
/* UMAP and HDBSCAN defaults (docs/analysis.md), jitter 1e-3. */
void ap_cluster_params_default(ap_cluster_params *p);

/* Cluster x [n, d] (changed in place: every exact copy of an earlier row
 * gets the jitter, drawn from seed and the row's index): UMAP into
 * embedding [n, umap.n_components] unless no_umap (then embedding is unused
 * and may be NULL), then HDBSCAN on that (or on x): labels [n]. */
ap_status ap_cluster_matrix(float *x, int64_t n, int d, const ap_cluster_params *p, int32_t *labels, float *embedding,
                            int *nclusters, ap_error *err);

/* *medoid: the member (row of space [n, d]) with the smallest sum of
 * euclidean distances to the other members (ties: the lowest row). Exact
 * up to 512 members; above, the 512 members nearest the members' mean are
 * the candidates. */
ap_status ap_cluster_medoid(const float *space, int d, const int64_t *members, int64_t count, int64_t *medoid,
                            ap_error *err);

/* ---- naming clusters (docs/analysis.md "Clusters") ------------------------------------------- */

/* The measures of one pattern tri [N(N+1)/2] (lower triangle, row-major)
 * given its input ids [N] and the ids of <fim_prefix>, <fim_suffix> and
 * <fim_middle> (-1 when unknown): shares of the mass of rows 1..N-1. With
 * full = 0 the stripes and entropy measures (O(N²), with logarithms) are
 * left 0. col: scratch [N]. */
void ap_pattern_measures(const float *tri, int N, const int32_t *input_ids, const int32_t fim_ids[3], int full,
                         double *col, double m[AP_CLUSTER_MEASURES]);
/* A readable kind from a cluster's (averaged) measures: "sink", "previous",
 * "sink+local", "diffuse", "mixed", ... */
void ap_cluster_kind(const float m[AP_CLUSTER_MEASURES], char *kind, size_t cap);

/* A PNG with a row per cluster of head (layer, head): its medoid's pattern
 * and its mean pattern side by side (each drawn like ap_pattern_write_png,
 * at least 256 pixels wide). The head must have its cluster summary and
 * the store its patterns. */
ap_status ap_cluster_sheet_png(ap_store *s, int layer, int head, const char *path, ap_error *err);

/* ---- every head of a store (apmae cluster --store) ------------------------------------------ */

typedef struct ap_cluster_store_options {
    const char *store_path;
    int use_mean;              /* cluster /embeddings/mean instead of /embeddings/cls */
    const int32_t *heads;      /* (layer, head) pairs to cluster, nheads of them; NULL: every head */
    int nheads;
    ap_cluster_params params;  /* params.umap.seed: the run's seed (UMAP and the jitter) */
    int32_t fim_ids[3];        /* token ids of <fim_prefix>, <fim_suffix>, <fim_middle> (-1: unknown) */
    int threads;               /* heads clustered at once (0: ap_num_threads()) */
} ap_cluster_store_options;
void ap_cluster_store_options_default(ap_cluster_store_options *o);

typedef struct ap_cluster_store_report {
    int heads;          /* selected */
    int already_done;   /* of them, done by an earlier run of the same options */
    int done;           /* clustered by this call */
    int64_t samples;
    double seconds;
} ap_cluster_store_report;

/* Cluster every selected head of the store's committed samples into its
 * /clusters (docs/store.md "Clusters"): the head's embeddings, UMAP +
 * HDBSCAN, each cluster's size, medoid, mean pattern, measures and kind.
 * Heads run in parallel, each committed when done, so a killed run loses
 * only the heads in flight and the same call continues. A run with other
 * options replaces the store's clusters. */
ap_status ap_cluster_store(const ap_cluster_store_options *o, ap_cluster_store_report *rep, ap_error *err);

/* The options of a store run as the JSON recorded in /clusters (params),
 * the FIM token ids included: malloc'ed. Heads and threads are not part of
 * it. */
char *ap_cluster_params_json(const ap_cluster_store_options *o, ap_error *err);

#endif
