/* HDBSCAN's first steps: core distances and the minimum spanning tree of
 * the mutual-reachability graph (docs/analysis.md "HDBSCAN").
 *
 * Both run over a kd-tree with tight bounding boxes. Core distances are an
 * exact k-nearest-neighbour search. The MST is Prim's O(n²) scan for small
 * n (or many dimensions, where a kd-tree prunes nothing), else Borůvka:
 * each round every component finds its lightest edge to another one,
 * starting from its points' k nearest neighbours in other components and
 * then searching the kd-tree from each of its points (but those known to
 * have no lighter edge), pruning subtrees that lie inside the component or
 * whose lower bound max(core[p], the box's smallest core distance, distance
 * to the box) exceeds the best edge so far. Weights are compared squared
 * (no square roots in the inner loops; the square root is monotone and
 * correctly rounded, so the distances that come out are exactly
 * max(core[a], core[b], |x_a - x_b|)). Edges
 * compare by (w, a, b), a strict total order, so both algorithms return
 * the same, unique tree whatever the thread count. */
#include "hdbscan_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define LEAF_SIZE 16

int hd_edge_less(const hd_edge *x, const hd_edge *y) {
    if (x->w != y->w) return x->w < y->w;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static hd_edge make_edge(double w, int32_t p, int32_t q) {
    return p < q ? (hd_edge){w, p, q} : (hd_edge){w, q, p};
}

/* Squared euclidean distance, summed in dimension order: the same value
 * for (a, b) and (b, a), and never below the box bound of box_gap2. */
static double dist2(const double *u, const double *v, int d) {
    double s = 0;
    for (int k = 0; k < d; k++) s += (u[k] - v[k]) * (u[k] - v[k]);
    return s;
}

/* Squared mutual reachability; core2: squared core distances. */
static double reach2(const double *x, int d, const double *core2, int32_t a, int32_t b) {
    double w = dist2(x + (size_t)a * d, x + (size_t)b * d, d);
    if (core2[a] > w) w = core2[a];
    if (core2[b] > w) w = core2[b];
    return w;
}

/* ---- kd-tree ---- */

typedef struct kd_node {
    int32_t start, end;  /* idx[start, end) */
    int32_t left, right; /* children; -1 for a leaf */
} kd_node;

typedef struct kd_tree {
    const double *x;
    int d;
    int32_t *idx;
    double *xs;      /* the points in tree order, xs[r] = x[idx[r]]: a leaf's points are contiguous in memory */
    kd_node *nodes;
    int32_t nnodes;
    double *lo, *hi; /* bounding box of each node, [nnodes, d] */
} kd_tree;

static void kd_free(kd_tree *t) {
    free(t->idx);
    free(t->xs);
    free(t->nodes);
    free(t->lo);
    free(t->hi);
}

static int key_less(const kd_tree *t, int dim, int32_t a, int32_t b) {
    double u = t->x[(size_t)a * t->d + dim], v = t->x[(size_t)b * t->d + dim];
    return u < v || (u == v && a < b);
}

/* Put the m-th smallest of idx[lo, hi) (by coordinate dim, then index) at
 * position m, smaller ones before it (Hoare's quickselect, middle pivot). */
static void select_nth(const kd_tree *t, int dim, int32_t lo, int32_t hi, int32_t m) {
    int32_t *v = t->idx;
    while (hi - lo > 1) {
        int32_t pivot = v[lo + (hi - lo) / 2], i = lo, j = hi - 1;
        while (i <= j) {
            while (key_less(t, dim, v[i], pivot)) i++;
            while (key_less(t, dim, pivot, v[j])) j--;
            if (i <= j) {
                int32_t tmp = v[i];
                v[i++] = v[j];
                v[j--] = tmp;
            }
        }
        if (m <= j) hi = j + 1;
        else if (m >= i) lo = i;
        else return;
    }
}

static void node_box(kd_tree *t, int32_t node) {
    const kd_node *nd = &t->nodes[node];
    double *lo = t->lo + (size_t)node * t->d, *hi = t->hi + (size_t)node * t->d;
    for (int k = 0; k < t->d; k++) lo[k] = INFINITY, hi[k] = -INFINITY;
    for (int32_t i = nd->start; i < nd->end; i++) {
        const double *p = t->x + (size_t)t->idx[i] * t->d;
        for (int k = 0; k < t->d; k++) {
            if (p[k] < lo[k]) lo[k] = p[k];
            if (p[k] > hi[k]) hi[k] = p[k];
        }
    }
}

/* Build the subtree over idx[start, end); returns its node. */
static int32_t kd_build_node(kd_tree *t, int32_t start, int32_t end) {
    int32_t node = t->nnodes++;
    t->nodes[node] = (kd_node){start, end, -1, -1};
    node_box(t, node);
    if (end - start <= LEAF_SIZE) return node;
    const double *lo = t->lo + (size_t)node * t->d, *hi = t->hi + (size_t)node * t->d;
    int dim = 0;
    for (int k = 1; k < t->d; k++)
        if (hi[k] - lo[k] > hi[dim] - lo[dim]) dim = k;
    if (!(hi[dim] > lo[dim])) return node; /* all points equal: one leaf */
    int32_t mid = start + (end - start) / 2;
    select_nth(t, dim, start, end, mid);
    int32_t left = kd_build_node(t, start, mid);
    int32_t right = kd_build_node(t, mid, end);
    t->nodes[node].left = left;
    t->nodes[node].right = right;
    return node;
}

static ap_status kd_build(kd_tree *t, const double *x, int32_t n, int d, ap_error *err) {
    memset(t, 0, sizeof *t);
    t->x = x;
    t->d = d;
    int32_t cap = n / 4 + 8; /* a leaf holds at least LEAF_SIZE / 2 points, unless the root is one */
    t->idx = ap_malloc((size_t)n * sizeof *t->idx, err);
    t->nodes = ap_malloc((size_t)cap * sizeof *t->nodes, err);
    t->lo = ap_malloc((size_t)cap * d * sizeof *t->lo, err);
    t->hi = ap_malloc((size_t)cap * d * sizeof *t->hi, err);
    t->xs = ap_malloc((size_t)n * d * sizeof *t->xs, err);
    if (!t->idx || !t->nodes || !t->lo || !t->hi || !t->xs) {
        kd_free(t);
        return AP_ERR_NOMEM;
    }
    for (int32_t i = 0; i < n; i++) t->idx[i] = i;
    kd_build_node(t, 0, n);
    for (int32_t r = 0; r < n; r++) memcpy(t->xs + (size_t)r * d, x + (size_t)t->idx[r] * d, (size_t)d * sizeof *x);
    return AP_OK;
}

/* Squared distance from point p to the node's box (0 inside). */
static double box_gap2(const kd_tree *t, int32_t node, const double *p) {
    const double *lo = t->lo + (size_t)node * t->d, *hi = t->hi + (size_t)node * t->d;
    double s = 0;
    for (int k = 0; k < t->d; k++) {
        double g = p[k] < lo[k] ? lo[k] - p[k] : p[k] > hi[k] ? p[k] - hi[k] : 0;
        s += g * g;
    }
    return s;
}

/* ---- core distances: k nearest neighbours ---- */

/* A max-heap of the k smallest squared distances seen, with their points. */
typedef struct knn_heap {
    double *v;
    int32_t *id;
    int k, n;
} knn_heap;

static void heap_push(knn_heap *h, double x, int32_t id) {
    int i;
    if (h->n < h->k) {
        i = h->n++;
        while (i > 0 && h->v[(i - 1) / 2] < x) {
            h->v[i] = h->v[(i - 1) / 2], h->id[i] = h->id[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h->v[i] = x, h->id[i] = id;
        return;
    }
    if (x >= h->v[0]) return;
    i = 0; /* replace the top and sift down */
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->k) break;
        if (c + 1 < h->k && h->v[c + 1] > h->v[c]) c++;
        if (h->v[c] <= x) break;
        h->v[i] = h->v[c], h->id[i] = h->id[c];
        i = c;
    }
    h->v[i] = x, h->id[i] = id;
}

static void knn_search(const kd_tree *t, int32_t node, const double *p, knn_heap *h) {
    const kd_node *nd = &t->nodes[node];
    if (nd->left < 0) {
        for (int32_t i = nd->start; i < nd->end; i++)
            heap_push(h, dist2(p, t->xs + (size_t)i * t->d, t->d), t->idx[i]);
        return;
    }
    double gl = box_gap2(t, nd->left, p), gr = box_gap2(t, nd->right, p);
    int32_t first = gl <= gr ? nd->left : nd->right, second = gl <= gr ? nd->right : nd->left;
    double g2 = gl <= gr ? gr : gl;
    knn_search(t, first, p, h);
    if (h->n < h->k || g2 < h->v[0]) knn_search(t, second, p, h);
}

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Queries in the tree's order: neighbouring queries visit the same nodes,
 * which then stay in cache. */
static void core_from_tree(const kd_tree *t, int32_t n, int k, double *core2, int32_t *knn, double *scratch) {
#pragma omp parallel for schedule(dynamic, 64)
    for (int32_t r = 0; r < n; r++) {
        int32_t i = t->idx[r];
        knn_heap h = {scratch + (size_t)thread_num() * (size_t)k, knn + (size_t)i * k, k, 0};
        knn_search(t, 0, t->xs + (size_t)r * t->d, &h);
        core2[i] = h.v[0];
    }
}

ap_status hd_core_distances(const double *x, int32_t n, int d, int k, double *core2, int32_t *knn, ap_error *err) {
    if (k < 1 || k > n) return ap_fail(err, AP_ERR_ARG, "core distances: k = %d is outside 1..%d", k, n);
    kd_tree t;
    ap_status st = kd_build(&t, x, n, d, err);
    if (st != AP_OK) return st;
    double *scratch = ap_malloc((size_t)max_threads() * (size_t)k * sizeof *scratch, err);
    if (!scratch) st = AP_ERR_NOMEM;
    else core_from_tree(&t, n, k, core2, knn, scratch);
    free(scratch);
    kd_free(&t);
    return st;
}

/* ---- Prim ---- */

static ap_status mst_prim(const double *x, int32_t n, int d, const double *core2, hd_edge *edges, ap_error *err) {
    hd_edge *key = ap_malloc((size_t)n * sizeof *key, err); /* lightest known edge of each vertex to the tree */
    uint8_t *in = ap_calloc((size_t)n, 1, err);
    if (!key || !in) {
        free(key);
        free(in);
        return AP_ERR_NOMEM;
    }
    for (int32_t v = 0; v < n; v++) key[v] = (hd_edge){INFINITY, -1, -1};
    int32_t u = 0;
    in[0] = 1;
    for (int32_t step = 0; step < n - 1; step++) {
        int32_t best = -1;
        for (int32_t v = 0; v < n; v++) {
            if (in[v]) continue;
            hd_edge e = make_edge(reach2(x, d, core2, u, v), u, v);
            if (key[v].a < 0 || hd_edge_less(&e, &key[v])) key[v] = e;
            if (best < 0 || hd_edge_less(&key[v], &key[best])) best = v;
        }
        edges[step] = key[best];
        in[best] = 1;
        u = best;
    }
    free(key);
    free(in);
    return AP_OK;
}

/* ---- Borůvka over the kd-tree ---- */

typedef struct boruvka {
    const kd_tree *t;
    const double *core2; /* squared core distances */
    const int32_t *knn;  /* [n, k]: each point's k nearest (itself among them) */
    int k;
    int32_t *comp;      /* component of each point (its union-find root) */
    int32_t *node_comp; /* the component of every point of a node, or -1 when mixed */
    double *node_core2; /* smallest squared core distance in each node */
} boruvka;

int32_t hd_find(int32_t *parent, int32_t a) {
    while (parent[a] != a) a = parent[a] = parent[parent[a]];
    return a;
}

/* node_comp and node_core2 of a subtree, children first. */
static void node_summaries(boruvka *B, int32_t node, int with_core) {
    const kd_node *nd = &B->t->nodes[node];
    if (nd->left < 0) {
        int32_t c = B->comp[B->t->idx[nd->start]];
        double m = INFINITY;
        for (int32_t i = nd->start; i < nd->end; i++) {
            int32_t p = B->t->idx[i];
            if (B->comp[p] != c) c = -1;
            if (B->core2[p] < m) m = B->core2[p];
        }
        B->node_comp[node] = c;
        if (with_core) B->node_core2[node] = m;
        return;
    }
    node_summaries(B, nd->left, with_core);
    node_summaries(B, nd->right, with_core);
    int32_t a = B->node_comp[nd->left], b = B->node_comp[nd->right];
    B->node_comp[node] = a == b ? a : -1;
    if (with_core) B->node_core2[node] = fmin(B->node_core2[nd->left], B->node_core2[nd->right]);
}

/* Lower bound of the squared mutual reachability from p to any point of node. */
static double node_bound(const boruvka *B, int32_t node, int32_t p) {
    double lb = box_gap2(B->t, node, B->t->x + (size_t)p * B->t->d);
    if (B->core2[p] > lb) lb = B->core2[p];
    if (B->node_core2[node] > lb) lb = B->node_core2[node];
    return lb;
}

/* The lightest edge from p to another component, in *best. */
static void boruvka_search(const boruvka *B, int32_t node, int32_t p, hd_edge *best) {
    const kd_node *nd = &B->t->nodes[node];
    int32_t cp = B->comp[p];
    if (B->node_comp[node] == cp || node_bound(B, node, p) > best->w) return;
    if (nd->left < 0) {
        const double *xp = B->t->x + (size_t)p * B->t->d;
        for (int32_t i = nd->start; i < nd->end; i++) {
            int32_t q = B->t->idx[i];
            if (B->comp[q] == cp) continue;
            double w = dist2(xp, B->t->xs + (size_t)i * B->t->d, B->t->d);
            w = fmax(w, fmax(B->core2[p], B->core2[q])); /* = reach2(p, q) */
            hd_edge e = make_edge(w, p, q);
            if (hd_edge_less(&e, best)) *best = e;
        }
        return;
    }
    double gl = box_gap2(B->t, nd->left, B->t->x + (size_t)p * B->t->d);
    double gr = box_gap2(B->t, nd->right, B->t->x + (size_t)p * B->t->d);
    boruvka_search(B, gl <= gr ? nd->left : nd->right, p, best);
    boruvka_search(B, gl <= gr ? nd->right : nd->left, p, best);
}

/* Points grouped by component: members[first[c] .. first[c + 1]) in the
 * tree's order (a counting sort of comp), so that consecutive searches
 * start near each other. */
static void group_members(const kd_tree *t, const int32_t *comp, int32_t n, int32_t *first, int32_t *members) {
    memset(first, 0, ((size_t)n + 1) * sizeof *first);
    for (int32_t p = 0; p < n; p++) first[comp[p] + 1]++;
    for (int32_t c = 0; c < n; c++) first[c + 1] += first[c];
    for (int32_t r = 0; r < n; r++) members[first[comp[t->idx[r]]]++] = t->idx[r];
    for (int32_t c = n; c > 0; c--) first[c] = first[c - 1];
    first[0] = 0;
}

/* The lightest edge leaving a component. Its points share one bound, first
 * the lightest edge to their nearest neighbours outside the component (the
 * edge is most often there), so most searches stop at once. lower[p] is a
 * lower bound of the lightest edge from p to another component: its core
 * distance, raised to the bound each search of p ends with (p has no
 * lighter edge than that); components only merge, so it stays a bound in
 * later rounds, and a point whose bound exceeds the component's is not
 * searched at all. */
static hd_edge component_best(const boruvka *B, const int32_t *members, int32_t count, double *lower) {
    hd_edge best = {INFINITY, -1, -1};
    for (int32_t i = 0; i < count; i++) {
        int32_t p = members[i];
        for (int j = 0; j < B->k; j++) {
            int32_t q = B->knn[(size_t)p * B->k + j];
            if (B->comp[q] == B->comp[p]) continue;
            hd_edge e = make_edge(reach2(B->t->x, B->t->d, B->core2, p, q), p, q);
            if (hd_edge_less(&e, &best)) best = e;
        }
    }
    for (int32_t i = 0; i < count; i++) {
        int32_t p = members[i];
        if (lower[p] > best.w) continue;
        boruvka_search(B, 0, p, &best);
        lower[p] = best.w;
    }
    return best;
}

static ap_status mst_boruvka(const double *x, int32_t n, int d, const double *core2, const int32_t *knn, int k,
                             hd_edge *edges, ap_error *err) {
    kd_tree t;
    ap_status st = kd_build(&t, x, n, d, err);
    if (st != AP_OK) return st;
    boruvka B = {.t = &t, .core2 = core2, .knn = knn, .k = k};
    int32_t *parent = ap_malloc((size_t)n * sizeof *parent, err);
    int32_t *first = ap_malloc(((size_t)n + 1) * sizeof *first, err);
    int32_t *members = ap_malloc((size_t)n * sizeof *members, err);
    hd_edge *comp_best = ap_malloc((size_t)n * sizeof *comp_best, err);
    double *lower = ap_malloc((size_t)n * sizeof *lower, err);
    B.comp = ap_malloc((size_t)n * sizeof *B.comp, err);
    B.node_comp = ap_malloc((size_t)t.nnodes * sizeof *B.node_comp, err);
    B.node_core2 = ap_malloc((size_t)t.nnodes * sizeof *B.node_core2, err);
    if (!parent || !first || !members || !comp_best || !lower || !B.comp || !B.node_comp || !B.node_core2)
        st = AP_ERR_NOMEM;
    int32_t found = 0;
    for (int32_t i = 0; st == AP_OK && i < n; i++) parent[i] = B.comp[i] = i, lower[i] = core2[i];
    for (int round = 0; st == AP_OK && found < n - 1; round++) {
        node_summaries(&B, 0, round == 0);
        group_members(&t, B.comp, n, first, members);
#pragma omp parallel for schedule(dynamic, 1)
        for (int32_t c = 0; c < n; c++)
            comp_best[c] = first[c + 1] > first[c]
                               ? component_best(&B, members + first[c], first[c + 1] - first[c], lower)
                               : (hd_edge){INFINITY, -1, -1};
        /* Under a strict total order the components' lightest edges form no
         * cycle; an edge chosen by both its ends is added once. */
        int32_t before = found;
        for (int32_t c = 0; c < n; c++) {
            if (comp_best[c].a < 0) continue;
            int32_t ra = hd_find(parent, comp_best[c].a), rb = hd_find(parent, comp_best[c].b);
            if (ra == rb) continue;
            parent[ra < rb ? rb : ra] = ra < rb ? ra : rb;
            edges[found++] = comp_best[c];
        }
        for (int32_t p = 0; p < n; p++) B.comp[p] = hd_find(parent, p);
        if (found == before) st = ap_fail(err, AP_ERR_INTERNAL, "Borůvka round %d joined no components", round);
    }
    free(parent);
    free(first);
    free(members);
    free(comp_best);
    free(lower);
    free(B.comp);
    free(B.node_comp);
    free(B.node_core2);
    kd_free(&t);
    return st;
}

static int edge_cmp(const void *x, const void *y) {
    const hd_edge *a = x, *b = y;
    return hd_edge_less(a, b) ? -1 : hd_edge_less(b, a) ? 1 : 0;
}

ap_status hd_mst(const double *x, int32_t n, int d, const double *core2, const int32_t *knn, int k,
                 hd_mst_method method, hd_edge *edges, ap_error *err) {
    if (n < 2) return AP_OK;
    if (method == HD_MST_AUTO) method = n > HD_PRIM_MAX_N && d <= HD_BORUVKA_MAX_DIM ? HD_MST_BORUVKA : HD_MST_PRIM;
    ap_status st = method == HD_MST_PRIM ? mst_prim(x, n, d, core2, edges, err)
                                         : mst_boruvka(x, n, d, core2, knn, k, edges, err);
    if (st != AP_OK) return st;
    for (int32_t i = 0; i < n - 1; i++) edges[i].w = sqrt(edges[i].w);
    qsort(edges, (size_t)(n - 1), sizeof *edges, edge_cmp);
    return AP_OK;
}
