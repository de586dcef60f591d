/* The steps of HDBSCAN (hdbscan.c, docs/analysis.md "HDBSCAN") that the
 * tests check on their own. Not part of the public API. */
#ifndef APMAE_CLUSTER_HDBSCAN_INTERNAL_H
#define APMAE_CLUSTER_HDBSCAN_INTERNAL_H

#include "apmae/cluster.h"

/* An edge a < b of weight w. Edges are ordered by (w, a, b): a strict total
 * order, so the minimum spanning tree under it is unique and every MST
 * algorithm here returns the same edges. */
typedef struct hd_edge {
    double w;
    int32_t a, b;
} hd_edge;
int hd_edge_less(const hd_edge *x, const hd_edge *y);

/* Union-find: the root of a's set, compressing the path on the way. */
int32_t hd_find(int32_t *parent, int32_t a);

/* Squared core distances core2 [n]: the squared euclidean distance of each
 * row of x [n, d] (row-major doubles) to its k-th nearest row, itself
 * counted (k = 1: 0); knn [n, k] those k rows (in no particular order). */
ap_status hd_core_distances(const double *x, int32_t n, int d, int k, double *core2, int32_t *knn, ap_error *err);

typedef enum hd_mst_method { HD_MST_AUTO = 0, HD_MST_PRIM, HD_MST_BORUVKA } hd_mst_method;
/* Above this many points (in at most HD_BORUVKA_MAX_DIM dimensions) AUTO
 * uses Borůvka over a kd-tree instead of Prim's O(n²) scan. */
#define HD_PRIM_MAX_N 4096
#define HD_BORUVKA_MAX_DIM 16
/* The minimum spanning tree of the mutual-reachability graph,
 * w(a, b) = max(core[a], core[b], |x_a - x_b|) with core = sqrt(core2):
 * edges [n - 1] in increasing (w, a, b) order. knn [n, k] from
 * hd_core_distances (Borůvka starts from them). */
ap_status hd_mst(const double *x, int32_t n, int d, const double *core2, const int32_t *knn, int k,
                 hd_mst_method method, hd_edge *edges, ap_error *err);

#endif
