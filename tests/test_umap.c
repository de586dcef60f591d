/* UMAP and kNN (src/cluster/) against umap-learn and scikit-learn figures
 * (tools/umap_ref.py -> tests/fixtures/cluster/) and hand computations:
 * the a/b curve fit, smooth-kNN calibration, the fuzzy union, exact kNN
 * against brute force, NN-descent recall, the Lanczos eigenvectors of a
 * path graph, trustworthiness of the digits embedding, the same output for 1 and
 * 2 threads, and the errors for bad input. */
#include "testutil.h"

#include "apmae/cluster.h"
#include "apmae/io.h"
#include "cluster/umap_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURES "fixtures/cluster"

static cJSON *load_ref(void) {
    cJSON *ref = NULL;
    TU_OK(ap_json_load(FIXTURES "/umap_ref.json", &ref, tu_err()));
    return ref;
}

static double json_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("umap_ref.json: no number '%s'", key);
    return v->valuedouble;
}

/* n x d standard normal values (malloc'ed). */
static float *gaussian_points(int n, int d, uint64_t seed) {
    ap_rng rng;
    ap_rng_seed(&rng, seed);
    float *x = malloc(sizeof(float) * n * d);
    for (int i = 0; i < n * d; i++) x[i] = (float)ap_rng_normal(&rng);
    return x;
}

/* ---- a/b ---- */

static void test_ab_fit(void **state) {
    (void)state;
    cJSON *ref = load_ref();
    const cJSON *c;
    int cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(ref, "ab")) {
        double a, b, md = json_num(c, "min_dist"), sp = json_num(c, "spread");
        TU_OK(umap_find_ab(sp, md, &a, &b, tu_err()));
        double ea = fabs(a / json_num(c, "a") - 1), eb = fabs(b / json_num(c, "b") - 1);
        print_message("  min_dist %.3f spread %.1f: a %.6f (rel err %.1e) b %.6f (rel err %.1e)\n", md, sp, a, ea, b,
                      eb);
        assert_true(ea < 1e-4 && eb < 1e-4);
        cases++;
    }
    assert_true(cases >= 4);
    cJSON_Delete(ref);
}

/* ---- smooth kNN and the fuzzy union ---- */

static void test_smooth_knn_by_hand(void **state) {
    (void)state;
    /* k = 5, column 0 the point itself; target sum log2(5) over columns 1..4 */
    const float dist[4 * 5] = {
        0, 1, 2, 2, 2,     /* rho 1: 1 + 3t = log2 5, t = exp(-1/sigma) */
        0, 0, 0.5f, 1.5f, 2.5f, /* duplicate at 0, rho 0.5: 2 + t + t^2 = log2 5 */
        0, 1, 1, 1, 1,     /* sum 4 > log2 5 for every sigma: the floor, 1e-3 x row mean */
        0, 0, 0, 0, 0,     /* rho 0: the floor on the mean of all rows */
    };
    double sigma[4], rho[4];
    umap_smooth_knn(dist, 4, 5, sigma, rho);
    const double target = log2(5.0);
    const double t0 = (target - 1) / 3, t1 = (sqrt(1 + 4 * (target - 2)) - 1) / 2;
    const double want_sigma[4] = {-1 / log(t0), -1 / log(t1), 1e-3 * 0.8, 1e-3 * 15.5 / 20};
    const double want_rho[4] = {1, 0.5, 1, 0};
    for (int i = 0; i < 4; i++) {
        print_message("  row %d: rho %.4f sigma %.6g (hand %.6g)\n", i, rho[i], sigma[i], want_sigma[i]);
        assert_true(fabs(rho[i] - want_rho[i]) < 1e-7);
        assert_true(fabs(sigma[i] / want_sigma[i] - 1) < 1e-4);
    }
}

/* The graph against a dense A + A^T - A∘A^T built here from sigma, rho. */
static void test_fuzzy_union_dense(void **state) {
    (void)state;
    const int n = 60, d = 5, k = 7;
    float *x = gaussian_points(n, d, 3), *dist = malloc(sizeof(float) * n * k);
    int32_t *idx = malloc(sizeof(int32_t) * n * k);
    TU_OK(ap_knn(x, n, d, k, AP_METRIC_EUCLIDEAN, AP_KNN_EXACT, 0, idx, dist, tu_err()));
    double sigma[60], rho[60], *A = calloc((size_t)n * n, sizeof(double));
    umap_smooth_knn(dist, n, k, sigma, rho);
    for (int i = 0; i < n; i++)
        for (int c = 1; c < k; c++) {
            double t = dist[i * k + c] - rho[i];
            A[i * n + idx[i * k + c]] = t <= 0 ? 1 : exp(-t / sigma[i]);
        }
    umap_graph g;
    TU_OK(umap_fuzzy_graph(idx, dist, n, k, &g, tu_err()));
    int64_t nnz = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double a = A[i * n + j], b = A[j * n + i], w = a + b - a * b;
            if (w > 0) nnz++;
            double got = 0;
            for (int64_t e = g.rowptr[i]; e < g.rowptr[i + 1]; e++)
                if (g.col[e] == j) got = g.w[e];
            if (fabs(got - w) > 1e-6) fail_msg("W[%d, %d] = %g, dense union %g", i, j, got, w);
        }
    assert_int_equal(g.nnz, nnz);
    for (int i = 0; i < n; i++) /* columns ascending */
        for (int64_t e = g.rowptr[i] + 1; e < g.rowptr[i + 1]; e++) assert_true(g.col[e - 1] < g.col[e]);
    umap_graph_free(&g);
    free(A);
    free(x);
    free(dist);
    free(idx);
}

/* ---- kNN ---- */

typedef struct ranked {
    double d;
    int j;
} ranked;

static int ranked_cmp(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    if (a->d != b->d) return a->d < b->d ? -1 : 1;
    return a->j - b->j;
}

static double brute_dist(const float *x, int d, int i, int j, ap_metric m) {
    double s = 0, ni = 0, nj = 0;
    for (int t = 0; t < d; t++) {
        double a = x[i * d + t], b = x[j * d + t];
        s += m == AP_METRIC_COSINE ? a * b : (a - b) * (a - b);
        ni += a * a;
        nj += b * b;
    }
    return m == AP_METRIC_COSINE ? 1 - s / sqrt(ni * nj) : sqrt(s);
}

static void check_exact_knn(ap_metric metric) {
    const int n = 300, d = 17, k = 9;
    float *x = gaussian_points(n, d, 11), *dist = malloc(sizeof(float) * n * k);
    int32_t *idx = malloc(sizeof(int32_t) * n * k);
    for (int i = 10; i < 14; i++) memcpy(x + i * d, x + 5 * d, sizeof(float) * d); /* ties at distance 0 */
    TU_OK(ap_knn(x, n, d, k, metric, AP_KNN_EXACT, 0, idx, dist, tu_err()));
    ranked *all = malloc(sizeof(ranked) * n);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        int m = 0;
        for (int j = 0; j < n; j++)
            if (j != i) all[m++] = (ranked){fmax(0, brute_dist(x, d, i, j, metric)), j};
        qsort(all, (size_t)m, sizeof *all, ranked_cmp);
        assert_int_equal(idx[i * k], i);
        assert_true(dist[i * k] == 0);
        for (int c = 1; c < k; c++) {
            if (idx[i * k + c] != all[c - 1].j)
                fail_msg("%s: row %d neighbour %d is %d, brute force says %d", ap_metric_name(metric), i, c,
                         idx[i * k + c], all[c - 1].j);
            worst = fmax(worst, fabs(dist[i * k + c] - all[c - 1].d));
        }
    }
    print_message("  %s: largest distance error %.2e\n", ap_metric_name(metric), worst);
    assert_true(worst < 1e-5);
    /* the duplicates of point 5 list each other first, by index */
    assert_int_equal(idx[5 * k + 1], 10);
    assert_int_equal(idx[10 * k + 1], 5);
    free(all);
    free(x);
    free(dist);
    free(idx);
}

static void test_knn_exact(void **state) {
    (void)state;
    check_exact_knn(AP_METRIC_EUCLIDEAN);
    check_exact_knn(AP_METRIC_COSINE);
}

/* Clustered points: 40 centres, each point near one of them. */
static float *clustered_points(int n, int d, uint64_t seed) {
    ap_rng rng;
    ap_rng_seed(&rng, seed);
    float *c = malloc(sizeof(float) * 40 * d), *x = malloc(sizeof(float) * n * d);
    for (int i = 0; i < 40 * d; i++) c[i] = (float)ap_rng_normal(&rng);
    for (int i = 0; i < n; i++) {
        int which = (int)ap_rng_below(&rng, 40);
        for (int t = 0; t < d; t++) x[i * d + t] = c[which * d + t] + 0.5f * (float)ap_rng_normal(&rng);
    }
    free(c);
    return x;
}

static void check_recall(ap_metric metric) {
    const int n = 5000, d = 24, k = 15;
    float *x = clustered_points(n, d, 5), *de = malloc(sizeof(float) * n * k), *da = malloc(sizeof(float) * n * k);
    int32_t *ie = malloc(sizeof(int32_t) * n * k), *ia = malloc(sizeof(int32_t) * n * k),
            *ia2 = malloc(sizeof(int32_t) * n * k);
    TU_OK(ap_knn(x, n, d, k, metric, AP_KNN_EXACT, 0, ie, de, tu_err()));
    omp_set_num_threads(1);
    TU_OK(ap_knn(x, n, d, k, metric, AP_KNN_APPROX, 9, ia, da, tu_err()));
    omp_set_num_threads(2);
    TU_OK(ap_knn(x, n, d, k, metric, AP_KNN_APPROX, 9, ia2, da, tu_err()));
    assert_memory_equal(ia, ia2, sizeof(int32_t) * n * k);
    int64_t hit = 0;
    for (int i = 0; i < n; i++)
        for (int c = 1; c < k; c++)
            for (int e = 1; e < k; e++)
                if (ia[i * k + c] == ie[i * k + e]) {
                    hit++;
                    break;
                }
    double recall = (double)hit / ((double)n * (k - 1));
    print_message("  %s NN-descent recall %.4f\n", ap_metric_name(metric), recall);
    assert_true(recall >= 0.9);
    free(x);
    free(de);
    free(da);
    free(ie);
    free(ia);
    free(ia2);
}

static void test_knn_nndescent_recall(void **state) {
    (void)state;
    check_recall(AP_METRIC_EUCLIDEAN);
    check_recall(AP_METRIC_COSINE);
}

/* ---- Lanczos ---- */

/* y = M x, M = D^-1/2 A D^-1/2 of the path of n points (degree 1 at the ends,
 * 2 inside): eigenvalues cos(pi j / (n - 1)), all simple; the top one's
 * eigenvector is D^1/2 1 normalised. */
static void path_matvec(const void *ctx, const double *x, double *y) {
    int64_t n = *(const int64_t *)ctx;
    for (int64_t i = 0; i < n; i++) {
        double di = i == 0 || i == n - 1 ? 1 : 2, s = 0;
        if (i > 0) s += x[i - 1] / sqrt(di * (i - 1 == 0 ? 1 : 2));
        if (i < n - 1) s += x[i + 1] / sqrt(di * (i + 1 == n - 1 ? 1 : 2));
        y[i] = s;
    }
}

static void test_lanczos_path(void **state) {
    (void)state;
    int64_t n = 120;
    const int nev = 5;
    double *v0 = malloc(sizeof(double) * n), *vecs = malloc(sizeof(double) * n * nev), vals[5],
           *y = malloc(sizeof(double) * n), norm0 = 0;
    for (int64_t i = 0; i < n; i++) norm0 += v0[i] = i == 0 || i == n - 1 ? 1 : sqrt(2.0);
    norm0 = sqrt(2 + 2.0 * (double)(n - 2));
    for (int64_t i = 0; i < n; i++) v0[i] /= norm0;
    int mv = 0, conv = 0;
    TU_OK(umap_lanczos_top(path_matvec, &n, n, v0, nev, 1, 1e-10, 20000, vals, vecs, &mv, &conv, tu_err()));
    assert_true(conv);
    for (int e = 0; e < nev; e++) {
        const double *v = vecs + e * n, want = cos(M_PI * (e + 1) / (double)(n - 1));
        path_matvec(&n, v, y);
        double res = 0, norm = 0, along = 0;
        for (int64_t i = 0; i < n; i++) {
            res += (y[i] - vals[e] * v[i]) * (y[i] - vals[e] * v[i]);
            norm += v[i] * v[i];
            along += v[i] * v0[i];
        }
        print_message("  eigenvalue %d: %.12f (exact %.12f), residual %.1e\n", e, vals[e], want, sqrt(res));
        assert_true(fabs(vals[e] - want) < 1e-10);
        assert_true(sqrt(res) < 1e-8 && fabs(norm - 1) < 1e-9 && fabs(along) < 1e-9);
    }
    print_message("  %d matrix-vector products\n", mv);
    free(v0);
    free(vecs);
    free(y);
}

/* ---- trustworthiness (scikit-learn's definition) ---- */

/* 1 - 2 / (n k (2n - 3k - 1)) sum_i sum_{j in kNN_emb(i) \ kNN_x(i)} (rank_x(i, j) - k),
 * ranks from 1, ties in x broken by index. */
static double trustworthiness(const float *x, int64_t n, int d, const float *emb, int dim, int k, ap_metric metric) {
    int32_t *ek = malloc(sizeof(int32_t) * n * (k + 1));
    float *ed = malloc(sizeof(float) * n * (k + 1));
    TU_OK(ap_knn(emb, n, dim, k + 1, AP_METRIC_EUCLIDEAN, AP_KNN_EXACT, 0, ek, ed, tu_err()));
    ranked *all = malloc(sizeof(ranked) * n);
    int *rank = malloc(sizeof(int) * n);
    double penalty = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t m = 0;
        for (int64_t j = 0; j < n; j++)
            if (j != i) all[m++] = (ranked){brute_dist(x, d, (int)i, (int)j, metric), (int)j};
        qsort(all, (size_t)m, sizeof *all, ranked_cmp);
        for (int64_t r = 0; r < m; r++) rank[all[r].j] = (int)r + 1;
        for (int c = 1; c <= k; c++) {
            int r = rank[ek[i * (k + 1) + c]];
            if (r > k) penalty += r - k;
        }
    }
    free(ek);
    free(ed);
    free(all);
    free(rank);
    return 1 - penalty * 2.0 / ((double)n * k * (2.0 * n - 3.0 * k - 1.0));
}

typedef struct digits {
    ap_safetensors *st;
    float *x;
    int64_t n;
    int d;
} digits;

static void digits_load(digits *g) {
    TU_OK(ap_st_open(FIXTURES "/digits.safetensors", &g->st, tu_err()));
    const ap_tensor *t = ap_st_find(g->st, "x");
    assert_non_null(t);
    assert_int_equal(t->dtype, AP_U8);
    g->n = t->shape[0];
    g->d = (int)t->shape[1];
    g->x = malloc(sizeof(float) * t->numel);
    for (size_t i = 0; i < t->numel; i++) g->x[i] = ((const uint8_t *)t->data)[i];
}

static void digits_free(digits *g) {
    ap_st_close(g->st);
    free(g->x);
}

static void test_trustworthiness_matches_sklearn(void **state) {
    (void)state;
    cJSON *ref = load_ref();
    digits g;
    digits_load(&g);
    const ap_tensor *e = ap_st_find(g.st, "umap_learn_embedding");
    assert_non_null(e);
    const int k = (int)json_num(ref, "trust_k");
    const cJSON *fe = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ref, "digits"),
                                                       "fixture_embedding");
    float *emb = malloc(e->nbytes);
    memcpy(emb, e->data, e->nbytes);
    double t = trustworthiness(g.x, g.n, g.d, emb, (int)e->shape[1], k, AP_METRIC_COSINE);
    print_message("  umap-learn's embedding: trustworthiness %.6f here, %.6f by scikit-learn\n", t,
                  json_num(fe, "trust"));
    assert_true(fabs(t - json_num(fe, "trust")) < 1e-4);
    free(emb);
    digits_free(&g);
    cJSON_Delete(ref);
}

/* ---- UMAP on the digits ---- */

#define TRUST_MARGIN 0.003

static void check_digits(ap_metric metric, int check_threads) {
    cJSON *ref = load_ref();
    digits g;
    digits_load(&g);
    ap_umap_params p;
    ap_umap_params_default(&p);
    p.metric = metric;
    p.seed = 42;
    p.n_epochs = (int)json_num(cJSON_GetObjectItemCaseSensitive(ref, "params"), "n_epochs");
    const int dim = p.n_components;
    float *emb = malloc(sizeof(float) * g.n * dim);
    omp_set_num_threads(1);
    TU_OK(ap_umap(g.x, g.n, g.d, &p, emb, tu_err()));
    for (int64_t i = 0; i < g.n * dim; i++) assert_true(isfinite(emb[i]));
    const int k = (int)json_num(ref, "trust_k");
    double t = trustworthiness(g.x, g.n, g.d, emb, dim, k, metric);
    const cJSON *figs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetObjectItemCaseSensitive(ref, "digits"), ap_metric_name(metric)),
                                                         "umap_learn_trust");
    double lowest = 1;
    const cJSON *v;
    cJSON_ArrayForEach(v, figs) lowest = fmin(lowest, v->valuedouble);
    print_message("  %s: trustworthiness %.5f, umap-learn's lowest over its seeds %.5f\n", ap_metric_name(metric), t,
                  lowest);
    assert_true(t >= lowest - TRUST_MARGIN);
    if (check_threads) {
        float *emb2 = malloc(sizeof(float) * g.n * dim);
        omp_set_num_threads(2);
        TU_OK(ap_umap(g.x, g.n, g.d, &p, emb2, tu_err()));
        assert_memory_equal(emb, emb2, sizeof(float) * g.n * dim);
        free(emb2);
    }
    free(emb);
    digits_free(&g);
    cJSON_Delete(ref);
}

static void test_digits_cosine_and_threads(void **state) {
    (void)state;
    check_digits(AP_METRIC_COSINE, 1);
}

static void test_digits_euclidean(void **state) {
    (void)state;
    check_digits(AP_METRIC_EUCLIDEAN, 0);
}

/* ---- disconnected graphs ---- */

/* The initial layout of x [n, d] (euclidean, k neighbours) into init
 * [n, dim], and how it was made. */
static umap_init_kind initial_layout(const float *x, int n, int d, int k, int dim, float *init) {
    knn_rows rows;
    TU_OK(knn_rows_init(&rows, x, n, d, AP_METRIC_EUCLIDEAN, tu_err()));
    int32_t *idx = malloc(sizeof(int32_t) * n * k);
    float *dist = malloc(sizeof(float) * n * k);
    TU_OK(knn_search(&rows, k, AP_KNN_EXACT, 0, idx, dist, tu_err()));
    umap_graph g;
    TU_OK(umap_fuzzy_graph(idx, dist, n, k, &g, tu_err()));
    umap_init_kind how;
    TU_OK(umap_spectral_layout(&g, &rows, dim, 1, init, &how, tu_err()));
    umap_graph_free(&g);
    knn_rows_free(&rows);
    free(idx);
    free(dist);
    return how;
}

/* Three far-apart tight blobs: three components laid out apart, and every
 * point's nearest neighbours in the embedding are of its own blob. */
static void test_disconnected_components(void **state) {
    (void)state;
    const int n = 150, d = 6, k = 10;
    float *x = gaussian_points(n, d, 8);
    for (int i = 0; i < n; i++) x[i * d + i % 3] += 100.0f;
    int32_t *idx = malloc(sizeof(int32_t) * n * k);
    float *dist = malloc(sizeof(float) * n * k), *init = malloc(sizeof(float) * n * 2);
    assert_int_equal(initial_layout(x, n, d, k, 2, init), UMAP_INIT_COMPONENTS);
    ap_umap_params p;
    ap_umap_params_default(&p);
    p.metric = AP_METRIC_EUCLIDEAN;
    p.n_neighbors = k;
    p.n_components = 2;
    float *emb = malloc(sizeof(float) * n * 2);
    TU_OK(ap_umap(x, n, d, &p, emb, tu_err()));
    TU_OK(ap_knn(emb, n, 2, k, AP_METRIC_EUCLIDEAN, AP_KNN_EXACT, 0, idx, dist, tu_err()));
    for (int i = 0; i < n; i++)
        for (int c = 0; c < k; c++) assert_int_equal(idx[i * k + c] % 3, i % 3);
    free(x);
    free(idx);
    free(dist);
    free(init);
    free(emb);
}

/* Two components with dim = 8: a blob of 40 points embedded spectrally
 * around the anchor +e0, and one of 12 (< 2 dim) placed at random around -e0,
 * each within half the anchors' distance (1) of its anchor. */
static void test_small_component_random(void **state) {
    (void)state;
    const int n = 52, d = 4, k = 10, dim = 8;
    float *x = gaussian_points(n, d, 4);
    for (int i = 40; i < n; i++) x[i * d] += 1000.0f;
    float *init = malloc(sizeof(float) * n * dim);
    assert_int_equal(initial_layout(x, n, d, k, dim, init), UMAP_INIT_COMPONENTS);
    for (int i = 0; i < n; i++) {
        const float anchor0 = i < 40 ? 1.0f : -1.0f;
        for (int e = 0; e < dim; e++) {
            float off = init[i * dim + e] - (e == 0 ? anchor0 : 0.0f);
            assert_true(isfinite(off) && fabsf(off) <= 1.0f + 1e-6f);
        }
    }
    free(x);
    free(init);
}

/* ---- bad input ---- */

static void expect_error(ap_status st, const char *needle) {
    assert_int_equal(st, AP_ERR_ARG);
    if (!strstr(tu_last_error()->msg, needle)) fail_msg("message '%s' lacks '%s'", tu_last_error()->msg, needle);
    print_message("  %s\n", tu_last_error()->msg);
}

static void test_bad_input(void **state) {
    (void)state;
    const int n = 40, d = 3;
    float x[40 * 3], out[40 * 8];
    int32_t idx[40 * 5];
    float dist[40 * 5];
    ap_rng rng;
    ap_rng_seed(&rng, 1);
    for (int i = 0; i < n * d; i++) x[i] = (float)ap_rng_normal(&rng);
    ap_umap_params p;
    ap_umap_params_default(&p);
    expect_error(ap_umap(x, 20, d, &p, out, tu_err()), "needs more than 20");
    ap_umap_params bad[5];
    for (int i = 0; i < 5; i++) ap_umap_params_default(&bad[i]);
    bad[0].n_components = 0;
    bad[1].n_neighbors = 1;
    bad[2].min_dist = 2;
    bad[3].spread = 0;
    bad[4].n_epochs = -1;
    const char *named[5] = {"n_components", "n_neighbors", "min_dist", "spread", "n_epochs"};
    for (int i = 0; i < 5; i++) expect_error(ap_umap(x, n, d, &bad[i], out, tu_err()), named[i]);
    x[7 * d + 2] = NAN;
    expect_error(ap_umap(x, n, d, &p, out, tu_err()), "x: row 7, column 2 is NaN");
    x[7 * d + 2] = INFINITY;
    expect_error(ap_knn(x, n, d, 5, AP_METRIC_EUCLIDEAN, AP_KNN_AUTO, 0, idx, dist, tu_err()), "infinite");
    x[7 * d + 2] = 0;
    for (int t = 0; t < d; t++) x[3 * d + t] = 0;
    expect_error(ap_knn(x, n, d, 5, AP_METRIC_COSINE, AP_KNN_AUTO, 0, idx, dist, tu_err()), "row 3 is all zeros");
    expect_error(ap_knn(x, n, d, n + 1, AP_METRIC_EUCLIDEAN, AP_KNN_AUTO, 0, idx, dist, tu_err()), "neighbours");
    ap_metric m;
    expect_error(ap_metric_parse("manhattan", &m, tu_err()), "unknown metric 'manhattan'");
    TU_OK(ap_metric_parse("cosine", &m, tu_err()));
    assert_int_equal(m, AP_METRIC_COSINE);
    assert_string_equal(ap_metric_name(AP_METRIC_EUCLIDEAN), "euclidean");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ab_fit),
        cmocka_unit_test(test_smooth_knn_by_hand),
        cmocka_unit_test(test_fuzzy_union_dense),
        cmocka_unit_test(test_knn_exact),
        cmocka_unit_test(test_knn_nndescent_recall),
        cmocka_unit_test(test_lanczos_path),
        cmocka_unit_test(test_trustworthiness_matches_sklearn),
        cmocka_unit_test(test_digits_cosine_and_threads),
        cmocka_unit_test(test_digits_euclidean),
        cmocka_unit_test(test_disconnected_components),
        cmocka_unit_test(test_small_component_random),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
