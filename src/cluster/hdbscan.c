/* HDBSCAN (docs/analysis.md "HDBSCAN"): from the mutual-reachability MST
 * (hdbscan_mst.c) to labels and GLOSH outlier scores.
 *
 *   1. single linkage: the MST edges in (w, a, b) order merge components;
 *      merge i is node n + i, its left child the component of a;
 *   2. condensed tree, top-down: at a merge of distance w (lambda = 1/w),
 *      a side with fewer than min_cluster_size points falls out of the
 *      current cluster at lambda; when both sides are that big the cluster
 *      splits into two new ones born at lambda;
 *   3. stability of a cluster: the sum over what leaves it (points, and
 *      child clusters with their sizes) of (lambda - its birth lambda), the
 *      root born at lambda 0;
 *   4. excess of mass: leaves first, a cluster is kept when its stability
 *      is at least the best its children reach, otherwise it passes that
 *      best up; kept clusters' descendants are dropped; the root takes part
 *      only with allow_single_cluster;
 *   5. labels: a point belongs to the kept cluster at or above the one it
 *      fell out of, else it is noise; when the kept cluster is the root,
 *      only points that left at a lambda at least the largest at which
 *      anything left the root itself belong to it (the Python hdbscan
 *      library's rule);
 *   6. GLOSH: 1 - lambda(point) / the largest lambda in the subtree of the
 *      cluster it fell out of.
 * Clusters are numbered by their smallest member index. */
#include "hdbscan_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ap_hdbscan_params_default(ap_hdbscan_params *p) {
    *p = (ap_hdbscan_params){.min_samples = 20, .min_cluster_size = 25, .allow_single_cluster = 1,
                             .metric = AP_METRIC_EUCLIDEAN};
}

/* ---- single linkage ---- */

typedef struct linkage {
    int32_t n;
    int32_t *left, *right; /* [n - 1]: children of node n + i (< n: a point) */
    double *lambda;        /* [n - 1] */
    int32_t *size;         /* [2n - 1]: points under each node */
} linkage;

static void linkage_free(linkage *L) {
    free(L->left);
    free(L->right);
    free(L->lambda);
    free(L->size);
}

/* Distances become lambda = 1 / w; w below a floor (exact duplicates give
 * w = 0) counts as the floor, 1e-12 of the largest w, so lambdas stay
 * finite and stabilities comparable. */
static ap_status build_linkage(const hd_edge *edges, int32_t n, linkage *L, ap_error *err) {
    memset(L, 0, sizeof *L);
    L->n = n;
    size_t m = n > 1 ? (size_t)n - 1 : 1;
    L->left = ap_malloc(m * sizeof *L->left, err);
    L->right = ap_malloc(m * sizeof *L->right, err);
    L->lambda = ap_malloc(m * sizeof *L->lambda, err);
    L->size = ap_malloc((2 * (size_t)n - 1) * sizeof *L->size, err);
    int32_t *parent = ap_malloc((2 * (size_t)n - 1) * sizeof *parent, err);
    if (!L->left || !L->right || !L->lambda || !L->size || !parent) {
        free(parent);
        linkage_free(L);
        return AP_ERR_NOMEM;
    }
    double wmax = n > 1 ? edges[n - 2].w : 0, floor = wmax > 0 ? 1e-12 * wmax : 1.0;
    for (int32_t i = 0; i < 2 * n - 1; i++) parent[i] = i, L->size[i] = 1;
    for (int32_t i = 0; i < n - 1; i++) {
        int32_t a = hd_find(parent, edges[i].a), b = hd_find(parent, edges[i].b), node = n + i;
        L->left[i] = a;
        L->right[i] = b;
        L->lambda[i] = 1.0 / (edges[i].w > floor ? edges[i].w : floor);
        L->size[node] = L->size[a] + L->size[b];
        parent[a] = parent[b] = node;
    }
    free(parent);
    return AP_OK;
}

/* ---- condensed tree ---- */

typedef struct condensed {
    int32_t nclusters;     /* cluster 0 is the root; a child's id exceeds its parent's */
    int32_t *parent;       /* [nclusters] (-1 for the root) */
    double *birth;         /* lambda at which the cluster appeared (root: 0) */
    int32_t *size;
    int32_t *point_cluster; /* [n]: the cluster each point fell out of */
    double *point_lambda;   /* [n]: and at which lambda */
} condensed;

static void condensed_free(condensed *C) {
    free(C->parent);
    free(C->birth);
    free(C->size);
    free(C->point_cluster);
    free(C->point_lambda);
}

/* Every point under node falls out of cluster c at lambda. */
static void fall_out(const linkage *L, int32_t node, int32_t c, double lambda, condensed *C, int32_t *stack) {
    int32_t top = 0;
    stack[top++] = node;
    while (top > 0) {
        int32_t v = stack[--top];
        if (v < L->n) {
            C->point_cluster[v] = c;
            C->point_lambda[v] = lambda;
        } else {
            stack[top++] = L->left[v - L->n];
            stack[top++] = L->right[v - L->n];
        }
    }
}

static int32_t new_cluster(condensed *C, int32_t parent, double birth, int32_t size) {
    int32_t c = C->nclusters++;
    C->parent[c] = parent;
    C->birth[c] = birth;
    C->size[c] = size;
    return c;
}

/* Breadth first from the root, so clusters are numbered parents first. */
static ap_status condense(const linkage *L, int mcs, condensed *C, ap_error *err) {
    int32_t n = L->n, cap = n / mcs * 2 + 1; /* every cluster holds >= mcs points; splits make pairs */
    memset(C, 0, sizeof *C);
    C->parent = ap_malloc((size_t)cap * sizeof *C->parent, err);
    C->birth = ap_malloc((size_t)cap * sizeof *C->birth, err);
    C->size = ap_malloc((size_t)cap * sizeof *C->size, err);
    C->point_cluster = ap_malloc((size_t)n * sizeof *C->point_cluster, err);
    C->point_lambda = ap_malloc((size_t)n * sizeof *C->point_lambda, err);
    int32_t *queue = ap_malloc(2 * (size_t)n * sizeof *queue, err); /* (node, cluster) pairs */
    int32_t *stack = ap_malloc((2 * (size_t)n) * sizeof *stack, err);
    if (!C->parent || !C->birth || !C->size || !C->point_cluster || !C->point_lambda || !queue || !stack) {
        free(queue);
        free(stack);
        condensed_free(C);
        return AP_ERR_NOMEM;
    }
    int32_t root = 2 * n - 2, head = 0, tail = 0;
    new_cluster(C, -1, 0.0, n);
    queue[tail++] = root, queue[tail++] = 0; /* n >= min_cluster_size >= 2: the root is a merge */
    while (head < tail) {
        int32_t v = queue[head++], c = queue[head++], i = v - n;
        int32_t l = L->left[i], r = L->right[i], sl = L->size[l], sr = L->size[r];
        double lambda = L->lambda[i];
        if (sl >= mcs && sr >= mcs) {
            int32_t cl = new_cluster(C, c, lambda, sl), cr = new_cluster(C, c, lambda, sr);
            queue[tail++] = l, queue[tail++] = cl;
            queue[tail++] = r, queue[tail++] = cr;
            continue;
        }
        if (sl < mcs) fall_out(L, l, c, lambda, C, stack);
        else queue[tail++] = l, queue[tail++] = c;
        if (sr < mcs) fall_out(L, r, c, lambda, C, stack);
        else queue[tail++] = r, queue[tail++] = c;
    }
    free(queue);
    free(stack);
    return AP_OK;
}

/* ---- excess of mass ---- */

static double *stabilities(const condensed *C, int32_t n, ap_error *err) {
    double *s = ap_calloc((size_t)C->nclusters, sizeof *s, err);
    if (!s) return NULL;
    for (int32_t p = 0; p < n; p++) {
        int32_t c = C->point_cluster[p];
        s[c] += C->point_lambda[p] - C->birth[c];
    }
    for (int32_t c = 1; c < C->nclusters; c++) {
        int32_t pc = C->parent[c];
        s[pc] += (C->birth[c] - C->birth[pc]) * C->size[c];
    }
    return s;
}

/* selected[c] = 1 for the clusters excess of mass keeps (descendants of a
 * kept cluster may be marked too; assign() gives their points to the
 * top-most one). */
static ap_status select_clusters(const condensed *C, int32_t n, int allow_single, uint8_t *selected, ap_error *err) {
    double *stab = stabilities(C, n, err);
    double *below = ap_calloc((size_t)C->nclusters, sizeof *below, err); /* best of the children's subtrees */
    uint8_t *has_child = ap_calloc((size_t)C->nclusters, 1, err);
    if (!stab || !below || !has_child) {
        free(stab);
        free(below);
        free(has_child);
        return AP_ERR_NOMEM;
    }
    for (int32_t c = 1; c < C->nclusters; c++) has_child[C->parent[c]] = 1;
    for (int32_t c = C->nclusters - 1; c >= 0; c--) {
        selected[c] = 0;
        if (c == 0 && !allow_single) break;
        double best = stab[c];
        if (has_child[c] && below[c] > stab[c]) best = below[c];
        else selected[c] = 1;
        if (c > 0) below[C->parent[c]] += best;
    }
    free(stab);
    free(below);
    free(has_child);
    return AP_OK;
}

/* ---- labels and outlier scores ---- */

/* Each point's kept cluster (its id in the condensed tree) or -1. */
static void assign(const condensed *C, int32_t n, const uint8_t *selected, int32_t *owner, int32_t *label) {
    owner[0] = selected[0] ? 0 : -1;
    for (int32_t c = 1; c < C->nclusters; c++) {
        int32_t up = owner[C->parent[c]];
        owner[c] = up >= 0 ? up : selected[c] ? c : -1;
    }
    double root_max = 0; /* largest lambda at which anything left the root */
    for (int32_t c = 1; c < C->nclusters; c++)
        if (C->parent[c] == 0 && C->birth[c] > root_max) root_max = C->birth[c];
    for (int32_t p = 0; p < n; p++)
        if (C->point_cluster[p] == 0 && C->point_lambda[p] > root_max) root_max = C->point_lambda[p];
    for (int32_t p = 0; p < n; p++) {
        int32_t c = owner[C->point_cluster[p]];
        label[p] = c == 0 && C->point_lambda[p] < root_max ? -1 : c;
    }
}

/* Renumber kept clusters 0..k-1 by their smallest member index. */
static int renumber(int32_t n, int32_t nclusters, int32_t *label, int32_t *map) {
    int k = 0;
    for (int32_t c = 0; c < nclusters; c++) map[c] = -1;
    for (int32_t p = 0; p < n; p++) {
        if (label[p] < 0) continue;
        if (map[label[p]] < 0) map[label[p]] = k++;
        label[p] = map[label[p]];
    }
    return k;
}

static void glosh(const condensed *C, int32_t n, double *deaths, float *out) {
    for (int32_t c = 0; c < C->nclusters; c++) deaths[c] = 0;
    for (int32_t p = 0; p < n; p++)
        if (C->point_lambda[p] > deaths[C->point_cluster[p]]) deaths[C->point_cluster[p]] = C->point_lambda[p];
    for (int32_t c = C->nclusters - 1; c > 0; c--) {
        int32_t pc = C->parent[c];
        if (C->birth[c] > deaths[pc]) deaths[pc] = C->birth[c];
        if (deaths[c] > deaths[pc]) deaths[pc] = deaths[c];
    }
    for (int32_t p = 0; p < n; p++) {
        double m = deaths[C->point_cluster[p]];
        out[p] = m > 0 ? (float)((m - C->point_lambda[p]) / m) : 0.0f;
    }
}

/* ---- the public entry ---- */

static ap_status check_params(int64_t n, int d, const ap_hdbscan_params *p, ap_error *err) {
    if (n < 1 || n > INT32_MAX / 2)
        return ap_fail(err, AP_ERR_ARG, "x: %lld points; HDBSCAN takes 1..%d", (long long)n, INT32_MAX / 2);
    if (d < 1) return ap_fail(err, AP_ERR_ARG, "x: %d dimensions; at least 1 is needed", d);
    if (p->min_cluster_size < 2)
        return ap_fail(err, AP_ERR_ARG, "min_cluster_size is %d; it must be at least 2", p->min_cluster_size);
    if (p->min_samples < 1) return ap_fail(err, AP_ERR_ARG, "min_samples is %d; it must be at least 1", p->min_samples);
    if (n < p->min_cluster_size)
        return ap_fail(err, AP_ERR_ARG, "x has %lld points, fewer than min_cluster_size %d", (long long)n,
                       p->min_cluster_size);
    if (n < p->min_samples)
        return ap_fail(err, AP_ERR_ARG, "x has %lld points, fewer than min_samples %d", (long long)n, p->min_samples);
    if (p->metric != AP_METRIC_EUCLIDEAN && p->metric != AP_METRIC_COSINE)
        return ap_fail(err, AP_ERR_ARG, "HDBSCAN: unknown metric %d", (int)p->metric);
    return AP_OK;
}

/* x as doubles; for cosine each row scaled to unit length, so that
 * |a - b|^2 / 2 = 1 - cos(a, b). */
static ap_status widen(const float *x, int64_t n, int d, ap_metric metric, double *out, ap_error *err) {
    ap_status st = ap_check_finite(x, n, d, "x", err);
    if (st != AP_OK) return st;
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < d; k++) {
            double v = x[(size_t)i * d + k];
            out[(size_t)i * d + k] = v;
            s += v * v;
        }
        if (metric != AP_METRIC_COSINE) continue;
        if (!(s > 0))
            return ap_fail(err, AP_ERR_ARG, "x: row %lld is all zeros, which has no cosine distance", (long long)i);
        for (int k = 0; k < d; k++) out[(size_t)i * d + k] /= sqrt(s);
    }
    return AP_OK;
}

static ap_status tree_to_labels(const linkage *L, const ap_hdbscan_params *p, int32_t *labels, float *outlier,
                                int *nclusters, ap_error *err) {
    condensed C;
    ap_status st = condense(L, p->min_cluster_size, &C, err);
    if (st != AP_OK) return st;
    int32_t n = L->n;
    uint8_t *selected = ap_malloc((size_t)C.nclusters, err);
    int32_t *owner = ap_malloc((size_t)C.nclusters * sizeof *owner, err);
    double *deaths = outlier ? ap_malloc((size_t)C.nclusters * sizeof *deaths, err) : NULL;
    if (!selected || !owner || (outlier && !deaths)) st = AP_ERR_NOMEM;
    if (st == AP_OK) st = select_clusters(&C, n, p->allow_single_cluster, selected, err);
    if (st == AP_OK) {
        assign(&C, n, selected, owner, labels);
        int k = renumber(n, C.nclusters, labels, owner);
        if (nclusters) *nclusters = k;
        if (outlier) glosh(&C, n, deaths, outlier);
    }
    free(selected);
    free(owner);
    free(deaths);
    condensed_free(&C);
    return st;
}

ap_status ap_hdbscan(const float *x, int64_t n, int d, const ap_hdbscan_params *p, int32_t *labels, float *outlier,
                     int *nclusters, ap_error *err) {
    ap_status st = check_params(n, d, p, err);
    if (st != AP_OK) return st;
    int32_t m = (int32_t)n;
    int k = p->min_samples;
    double *xd = ap_malloc((size_t)m * d * sizeof *xd, err), *core2 = ap_malloc((size_t)m * sizeof *core2, err);
    int32_t *knn = ap_malloc((size_t)m * k * sizeof *knn, err);
    hd_edge *edges = ap_malloc((size_t)(m > 1 ? m - 1 : 1) * sizeof *edges, err);
    if (!xd || !core2 || !knn || !edges) st = AP_ERR_NOMEM;
    if (st == AP_OK) st = widen(x, n, d, p->metric, xd, err);
    if (st == AP_OK) st = hd_core_distances(xd, m, d, k, core2, knn, err);
    if (st == AP_OK) st = hd_mst(xd, m, d, core2, knn, k, HD_MST_AUTO, edges, err);
    if (st == AP_OK && p->metric == AP_METRIC_COSINE) /* |a - b| on unit rows -> 1 - cos, an increasing map */
        for (int32_t i = 0; i + 1 < m; i++) edges[i].w = edges[i].w * edges[i].w / 2;
    linkage L;
    if (st == AP_OK) st = build_linkage(edges, m, &L, err);
    free(xd);
    free(core2);
    free(knn);
    free(edges);
    if (st != AP_OK) return st;
    st = tree_to_labels(&L, p, labels, outlier, nclusters, err);
    linkage_free(&L);
    return st;
}
