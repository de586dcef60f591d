/* UMAP (McInnes, Healy & Melville 2018) as umap-learn computes it
 * (docs/analysis.md, "UMAP"): kNN graph -> fuzzy simplicial set -> spectral
 * initial layout -> SGD of the fuzzy cross-entropy in n_components
 * dimensions. */
#include "cluster/umap_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ap_umap_params_default(ap_umap_params *p) {
    p->n_components = 8;
    p->n_neighbors = 20;
    p->min_dist = 0.05;
    p->spread = 1.0;
    p->metric = AP_METRIC_COSINE;
    p->n_epochs = 0;
    p->seed = 0;
}

int umap_default_epochs(int64_t n) {
    return n <= 10000 ? 500 : 200;
}

/* ---- the curve 1 / (1 + a d^(2b)) ---- */

#define AB_POINTS 300

static double ab_sse(const double *x, const double *y, double a, double b) {
    double s = 0;
    for (int i = 0; i < AB_POINTS; i++) {
        double r = 1.0 / (1.0 + a * pow(x[i], 2 * b)) - y[i];
        s += r * r;
    }
    return s;
}

/* Levenberg-Marquardt from (a, b) = (1, 1), the start scipy's curve_fit
 * uses in umap-learn's find_ab_params. */
ap_status umap_find_ab(double spread, double min_dist, double *a_out, double *b_out, ap_error *err) {
    double x[AB_POINTS], y[AB_POINTS];
    for (int i = 0; i < AB_POINTS; i++) {
        x[i] = 3.0 * spread * i / (AB_POINTS - 1);
        y[i] = x[i] < min_dist ? 1.0 : exp(-(x[i] - min_dist) / spread);
    }
    double a = 1, b = 1, lambda = 1e-3, sse = ab_sse(x, y, a, b);
    for (int it = 0, moving = 1; it < 500 && moving; it++) {
        double jtj[3] = {0, 0, 0}, jtr[2] = {0, 0}; /* [aa, ab, bb] */
        for (int i = 0; i < AB_POINTS; i++) {
            if (x[i] <= 0) continue; /* f = 1 at d = 0 whatever a, b: no gradient */
            double p = pow(x[i], 2 * b), q = 1.0 + a * p, f = 1.0 / q;
            double da = -p / (q * q), db = -a * p * 2.0 * log(x[i]) / (q * q), r = f - y[i];
            jtj[0] += da * da;
            jtj[1] += da * db;
            jtj[2] += db * db;
            jtr[0] += da * r;
            jtr[1] += db * r;
        }
        int accepted = 0;
        while (!accepted && lambda < 1e12) { /* raise the damping until a step does not increase the error */
            double m00 = jtj[0] * (1 + lambda), m11 = jtj[2] * (1 + lambda), m01 = jtj[1];
            double det = m00 * m11 - m01 * m01;
            double sa = -(m11 * jtr[0] - m01 * jtr[1]) / det, sb = -(m00 * jtr[1] - m01 * jtr[0]) / det;
            double s2 = ab_sse(x, y, a + sa, b + sb);
            if (isfinite(s2) && s2 <= sse) {
                double step = fabs(sa) / (fabs(a) + 1e-12) + fabs(sb) / (fabs(b) + 1e-12);
                a += sa;
                b += sb;
                sse = s2;
                lambda = lambda / 10 > 1e-12 ? lambda / 10 : 1e-12;
                accepted = 1;
                moving = step >= 1e-12;
            } else {
                lambda *= 10;
            }
        }
        moving = moving && accepted;
    }
    if (!isfinite(a) || !isfinite(b) || a <= 0 || b <= 0)
        return ap_fail(err, AP_ERR_ARG, "UMAP: no curve fits min_dist %g and spread %g", min_dist, spread);
    *a_out = a;
    *b_out = b;
    return AP_OK;
}

/* ---- the whole embedding ---- */

static ap_status check_params(const ap_umap_params *p, int64_t n, int d, ap_error *err) {
    if (p->n_components < 1)
        return ap_fail(err, AP_ERR_ARG, "UMAP: n_components must be at least 1 (got %d)", p->n_components);
    if (p->n_neighbors < 2)
        return ap_fail(err, AP_ERR_ARG, "UMAP: n_neighbors must be at least 2 (got %d)", p->n_neighbors);
    if (!(p->spread > 0) || !isfinite(p->spread))
        return ap_fail(err, AP_ERR_ARG, "UMAP: spread must be positive (got %g)", p->spread);
    if (!(p->min_dist >= 0) || p->min_dist > p->spread)
        return ap_fail(err, AP_ERR_ARG, "UMAP: min_dist must be in [0, spread = %g] (got %g)", p->spread,
                       p->min_dist);
    if (p->n_epochs < 0) return ap_fail(err, AP_ERR_ARG, "UMAP: n_epochs must be >= 0 (got %d)", p->n_epochs);
    if (p->metric != AP_METRIC_EUCLIDEAN && p->metric != AP_METRIC_COSINE)
        return ap_fail(err, AP_ERR_ARG, "UMAP: unknown metric %d", (int)p->metric);
    if (d < 1) return ap_fail(err, AP_ERR_ARG, "x: UMAP needs at least one column (got %d)", d);
    if (n <= p->n_neighbors)
        return ap_fail(err, AP_ERR_ARG, "x: %lld points; UMAP with n_neighbors = %d needs more than %d", (long long)n,
                       p->n_neighbors, p->n_neighbors);
    if (n > INT32_MAX) return ap_fail(err, AP_ERR_ARG, "x: %lld rows, at most %d supported", (long long)n, INT32_MAX);
    return AP_OK;
}

/* umap-learn's scaling of a spectral layout: largest coordinate 10, a little
 * noise (sd 1e-4) so no two points coincide, then every column to [0, 10]. */
static void scale_layout(float *emb, int64_t n, int dim, uint64_t seed) {
    float big = 0;
    for (int64_t c = 0; c < n * dim; c++)
        if (fabsf(emb[c]) > big) big = fabsf(emb[c]);
    const float expansion = big > 0 ? 10.0f / big : 1.0f;
    ap_rng rng;
    ap_rng_seed(&rng, seed);
    for (int64_t c = 0; c < n * dim; c++) emb[c] = emb[c] * expansion + (float)(1e-4 * ap_rng_normal(&rng));
    for (int t = 0; t < dim; t++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            lo = fminf(lo, emb[i * dim + t]);
            hi = fmaxf(hi, emb[i * dim + t]);
        }
        for (int64_t i = 0; i < n; i++) emb[i * dim + t] = hi > lo ? 10.0f * (emb[i * dim + t] - lo) / (hi - lo) : 5.0f;
    }
}

/* Seeds of the stages, all derived from the one the caller gives. */
enum { SEED_KNN = 1, SEED_SPECTRAL, SEED_NOISE, SEED_SGD };

ap_status ap_umap(const float *x, int64_t n, int d, const ap_umap_params *p, float *out, ap_error *err) {
    ap_status st = check_params(p, n, d, err);
    if (st == AP_OK) st = ap_check_finite(x, n, d, "x", err);
    if (st != AP_OK) return st;
    const int k = p->n_neighbors, dim = p->n_components;
    const int n_epochs = p->n_epochs > 0 ? p->n_epochs : umap_default_epochs(n);
    double a, b;
    if ((st = umap_find_ab(p->spread, p->min_dist, &a, &b, err)) != AP_OK) return st;
    knn_rows rows;
    if ((st = knn_rows_init(&rows, x, n, d, p->metric, err)) != AP_OK) return st;
    umap_graph g = {0};
    int32_t *idx = ap_malloc((size_t)n * k * sizeof(int32_t), err);
    float *dist = ap_malloc((size_t)n * k * sizeof(float), err);
    if (!idx || !dist) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    double t0 = ap_now();
    if ((st = knn_search(&rows, k, AP_KNN_AUTO, ap_hash_mix(p->seed, SEED_KNN), idx, dist, err)) != AP_OK) goto done;
    double t1 = ap_now();
    if ((st = umap_fuzzy_graph(idx, dist, n, k, &g, err)) != AP_OK) goto done;
    /* umap-learn prunes by the epochs it runs, or by its default for very short runs */
    umap_graph_prune(&g, n_epochs > 10 ? n_epochs : umap_default_epochs(n));
    double t2 = ap_now();
    umap_init_kind how;
    if ((st = umap_spectral_layout(&g, &rows, dim, ap_hash_mix(p->seed, SEED_SPECTRAL), out, &how, err)) != AP_OK)
        goto done;
    scale_layout(out, n, dim, ap_hash_mix(p->seed, SEED_NOISE));
    double t3 = ap_now();
    if ((st = umap_sgd(out, dim, &g, n_epochs, a, b, ap_hash_mix(p->seed, SEED_SGD), err)) != AP_OK) goto done;
    double t4 = ap_now();
    ap_debug("umap: n=%lld kNN %.3fs, graph %.3fs (%lld edges), init %.3fs (%s), SGD %.3fs (%d epochs)",
             (long long)n, t1 - t0, t2 - t1, (long long)g.nnz, t3 - t2,
             how == UMAP_INIT_SPECTRAL ? "spectral" : how == UMAP_INIT_COMPONENTS ? "components" : "random", t4 - t3,
             n_epochs);
done:
    free(idx);
    free(dist);
    umap_graph_free(&g);
    knn_rows_free(&rows);
    return st;
}
