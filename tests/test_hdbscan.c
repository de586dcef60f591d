/* HDBSCAN against R's dbscan::hdbscan (fixtures from tools/hdbscan_ref.R):
 * identical partitions up to a renumbering and the same GLOSH scores on
 * blobs of different densities, two moons, exact duplicates, cosine
 * distance, split min_samples / min_cluster_size, and one blob with
 * allow_single_cluster. Also: Prim and Borůvka give the same MST (with
 * ties), core distances equal a brute-force search, the labels do not
 * depend on the thread count, exact duplicates beyond min_samples stay
 * finite, clusters are numbered by their smallest member, bad input is
 * refused with a clear message. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/cluster.h"
#include "apmae/io.h"
#include "cluster/hdbscan_internal.h"

typedef struct fixture {
    cJSON *json;
    ap_hdbscan_params p;
    int64_t n;
    int d;
    float *x;
    int32_t *labels;
    float *glosh;  /* GLOSH on R's hierarchy, condensed as the Python hdbscan library does */
    uint8_t *tied; /* points that leave a cluster at its birth: a tied merge order decides their side */
} fixture;

static float *json_floats(const cJSON *a, int64_t n) {
    assert_true(cJSON_IsArray(a) && cJSON_GetArraySize(a) == n);
    float *v = malloc(sizeof(float) * (size_t)n);
    int64_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) v[i++] = (float)e->valuedouble;
    return v;
}

static fixture load(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "fixtures/cluster/hdbscan_%s.json", name);
    fixture f = {0};
    int64_t v;
    TU_OK(ap_json_load(path, &f.json, tu_err()));
    ap_hdbscan_params_default(&f.p);
    TU_OK(ap_json_int(f.json, "min_samples", path, &v, tu_err()));
    f.p.min_samples = (int)v;
    TU_OK(ap_json_int(f.json, "min_cluster_size", path, &v, tu_err()));
    f.p.min_cluster_size = (int)v;
    TU_OK(ap_json_int(f.json, "allow_single_cluster", path, &v, tu_err()));
    f.p.allow_single_cluster = (int)v;
    TU_OK(ap_json_int(f.json, "n", path, &f.n, tu_err()));
    TU_OK(ap_json_int(f.json, "d", path, &v, tu_err()));
    f.d = (int)v;
    f.x = json_floats(cJSON_GetObjectItem(f.json, "x"), f.n * f.d);
    float *lab = json_floats(cJSON_GetObjectItem(f.json, "labels"), f.n);
    f.labels = malloc(sizeof(int32_t) * (size_t)f.n);
    for (int64_t i = 0; i < f.n; i++) f.labels[i] = (int32_t)lab[i];
    free(lab);
    f.glosh = json_floats(cJSON_GetObjectItem(f.json, "glosh"), f.n);
    f.tied = calloc((size_t)f.n, 1);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(f.json, "tied")) f.tied[e->valueint] = 1;
    return f;
}

static void fixture_free(fixture *f) {
    cJSON_Delete(f->json);
    free(f->x);
    free(f->labels);
    free(f->glosh);
    free(f->tied);
}

/* Same noise points and a one-to-one map between the clusters, tied points
 * aside. */
static void assert_same_partition(const int32_t *a, const int32_t *b, const uint8_t *tied, int64_t n) {
    int32_t map_ab[4096], map_ba[4096];
    for (int i = 0; i < 4096; i++) map_ab[i] = map_ba[i] = -1;
    for (int64_t i = 0; i < n; i++) {
        if (tied[i]) continue;
        if (a[i] < 0 || b[i] < 0) {
            if (a[i] != b[i]) fail_msg("point %lld: labels %d and %d (one of them noise)", (long long)i, a[i], b[i]);
            continue;
        }
        assert_true(a[i] < 4096 && b[i] < 4096);
        if (map_ab[a[i]] < 0) map_ab[a[i]] = b[i];
        if (map_ba[b[i]] < 0) map_ba[b[i]] = a[i];
        if (map_ab[a[i]] != b[i] || map_ba[b[i]] != a[i])
            fail_msg("point %lld: cluster %d here, %d in the reference, which other points split", (long long)i, a[i],
                     b[i]);
    }
}

static void check_fixture(const char *name, ap_metric metric) {
    fixture f = load(name);
    f.p.metric = metric;
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)f.n);
    float *outlier = malloc(sizeof(float) * (size_t)f.n);
    int k = -1;
    TU_OK(ap_hdbscan(f.x, f.n, f.d, &f.p, labels, outlier, &k, tu_err()));
    int kref = 0;
    for (int64_t i = 0; i < f.n; i++)
        if (f.labels[i] + 1 > kref) kref = f.labels[i] + 1;
    print_message("%-12s %lld points: %d clusters (R: %d)\n", name, (long long)f.n, k, kref);
    assert_int_equal(k, kref);
    assert_same_partition(labels, f.labels, f.tied, f.n);
    /* numbered by smallest member */
    int next = 0;
    for (int64_t i = 0; i < f.n; i++)
        if (labels[i] >= 0) {
            assert_true(labels[i] <= next);
            if (labels[i] == next) next++;
        }
    int ntied = 0;
    for (int64_t i = 0; i < f.n; i++) {
        ntied += f.tied[i];
        if (!f.tied[i] && fabsf(outlier[i] - f.glosh[i]) > 1e-5f)
            fail_msg("point %lld: GLOSH %g, reference %g", (long long)i, outlier[i], f.glosh[i]);
    }
    assert_true(ntied <= f.n / 20);
    free(labels);
    free(outlier);
    fixture_free(&f);
}

static void test_blobs(void **state) {
    (void)state;
    check_fixture("blobs", AP_METRIC_EUCLIDEAN);
    check_fixture("blobs_split", AP_METRIC_EUCLIDEAN);
}
static void test_moons(void **state) {
    (void)state;
    check_fixture("moons", AP_METRIC_EUCLIDEAN);
}
static void test_duplicates(void **state) {
    (void)state;
    check_fixture("duplicates", AP_METRIC_EUCLIDEAN);
}
static void test_cosine(void **state) {
    (void)state;
    check_fixture("cosine", AP_METRIC_COSINE);
}
static void test_single_cluster(void **state) {
    (void)state;
    check_fixture("blob", AP_METRIC_EUCLIDEAN);        /* without the option: R's two clusters */
    check_fixture("blob_single", AP_METRIC_EUCLIDEAN); /* with it: the root */
}

/* ---- the steps ---- */

static double *random_points(int32_t n, int d, int groups, int copies, uint64_t seed) {
    ap_rng r;
    ap_rng_seed(&r, seed);
    double *x = malloc(sizeof(double) * (size_t)n * d);
    for (int32_t i = 0; i < n; i += copies) {
        int g = (int)ap_rng_below(&r, (uint64_t)groups);
        for (int k = 0; k < d; k++) x[(size_t)i * d + k] = 4.0 * g + (g % 2 ? 0.3 : 1.0) * ap_rng_normal(&r);
        for (int c = 1; c < copies && i + c < n; c++)
            memcpy(x + (size_t)(i + c) * d, x + (size_t)i * d, sizeof(double) * (size_t)d);
    }
    return x;
}

static void test_core_distances(void **state) {
    (void)state;
    int32_t n = 700;
    int d = 3, k = 7;
    double *x = random_points(n, d, 3, 2, 5), *core = malloc(sizeof(double) * n), *all = malloc(sizeof(double) * n);
    int32_t *knn = malloc(sizeof(int32_t) * n * k);
    TU_OK(hd_core_distances(x, n, d, k, core, knn, tu_err()));
    for (int32_t i = 0; i < n; i++) {
        for (int32_t j = 0; j < n; j++) {
            double s = 0;
            for (int t = 0; t < d; t++) s += (x[i * d + t] - x[j * d + t]) * (x[i * d + t] - x[j * d + t]);
            all[j] = s;
        }
        /* the k-th smallest, the point itself (0) counted */
        for (int a = 0; a < k; a++)
            for (int b = a + 1; b < n; b++)
                if (all[b] < all[a]) {
                    double t = all[a];
                    all[a] = all[b], all[b] = t;
                }
        assert_true(core[i] == all[k - 1]);
        int self = 0; /* the k listed are the k nearest */
        for (int j = 0; j < k; j++) {
            int32_t q = knn[i * k + j];
            double s = 0;
            for (int t = 0; t < d; t++) s += (x[i * d + t] - x[q * d + t]) * (x[i * d + t] - x[q * d + t]);
            assert_true(s <= core[i]);
            self += q == i || s == 0;
        }
        assert_true(self >= 1);
    }
    TU_OK(hd_core_distances(x, n, d, 1, core, knn, tu_err()));
    for (int32_t i = 0; i < n; i++) assert_true(core[i] == 0);
    free(x), free(core), free(all), free(knn);
}

static void compare_msts(int32_t n, int d, int copies, int k) {
    double *x = random_points(n, d, 4, copies, (uint64_t)(n + d + copies)), *core2 = malloc(sizeof(double) * n);
    int32_t *knn = malloc(sizeof(int32_t) * n * k);
    hd_edge *prim = malloc(sizeof(hd_edge) * n), *bor = malloc(sizeof(hd_edge) * n);
    TU_OK(hd_core_distances(x, n, d, k, core2, knn, tu_err()));
    TU_OK(hd_mst(x, n, d, core2, knn, k, HD_MST_PRIM, prim, tu_err()));
    TU_OK(hd_mst(x, n, d, core2, knn, k, HD_MST_BORUVKA, bor, tu_err()));
    int ties = 0;
    for (int32_t i = 0; i < n - 1; i++) {
        assert_true(prim[i].w == bor[i].w && prim[i].a == bor[i].a && prim[i].b == bor[i].b);
        assert_true(i == 0 || !hd_edge_less(&prim[i], &prim[i - 1]));
        ties += i > 0 && prim[i].w == prim[i - 1].w;
    }
    print_message("MST n %d d %d copies %d: %d tied weights\n", n, d, copies, ties);
    if (copies > 1) assert_true(ties > n / 4); /* the tie-breaking was exercised */
    free(x), free(core2), free(knn), free(prim), free(bor);
}

static void test_prim_equals_boruvka(void **state) {
    (void)state;
    compare_msts(1500, 2, 1, 5);
    compare_msts(1200, 8, 3, 10); /* exact duplicates: many equal weights */
    compare_msts(300, 5, 1, 1);   /* core 0: plain euclidean MST */
}

/* Borůvka's parallel search gives the labels of one thread. */
static void test_threads(void **state) {
    (void)state;
    int32_t n = HD_PRIM_MAX_N + 1500;
    int d = 4;
    double *xd = random_points(n, d, 5, 1, 77);
    float *x = malloc(sizeof(float) * (size_t)n * d);
    for (size_t i = 0; i < (size_t)n * d; i++) x[i] = (float)xd[i];
    int32_t *a = malloc(sizeof(int32_t) * n), *b = malloc(sizeof(int32_t) * n);
    float *ga = malloc(sizeof(float) * n), *gb = malloc(sizeof(float) * n);
    ap_hdbscan_params p;
    ap_hdbscan_params_default(&p);
    int ka, kb;
    omp_set_num_threads(1);
    TU_OK(ap_hdbscan(x, n, d, &p, a, ga, &ka, tu_err()));
    omp_set_num_threads(2);
    TU_OK(ap_hdbscan(x, n, d, &p, b, gb, &kb, tu_err()));
    assert_int_equal(ka, kb);
    assert_true(ka >= 3);
    assert_memory_equal(a, b, sizeof(int32_t) * n);
    assert_memory_equal(ga, gb, sizeof(float) * n);
    free(xd), free(x), free(a), free(b), free(ga), free(gb);
}

/* More exact copies than min_samples: core distances and MST weights 0. */
static void test_zero_distances(void **state) {
    (void)state;
    enum { N = 200, D = 2 };
    float x[N * D];
    ap_rng r;
    ap_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        int g = i < 40 ? 0 : i < 80 ? 1 : 2; /* 40 copies of (0,0), 40 of (5,5), a blob at (10, 0) */
        x[i * D] = g == 0 ? 0.0f : g == 1 ? 5.0f : 10.0f + (float)ap_rng_normal(&r);
        x[i * D + 1] = g == 0 ? 0.0f : g == 1 ? 5.0f : (float)ap_rng_normal(&r);
    }
    ap_hdbscan_params p;
    ap_hdbscan_params_default(&p);
    p.min_samples = 10;
    p.min_cluster_size = 20;
    int32_t lab[N];
    float g[N];
    int k;
    TU_OK(ap_hdbscan(x, N, D, &p, lab, g, &k, tu_err()));
    assert_true(k >= 3);
    for (int i = 0; i < N; i++) assert_true(isfinite(g[i]) && g[i] >= 0 && g[i] <= 1);
    for (int i = 1; i < 40; i++) assert_int_equal(lab[i], lab[0]);
    for (int i = 41; i < 80; i++) assert_int_equal(lab[i], lab[40]);
    assert_true(lab[0] == 0 && lab[40] == 1); /* numbered by smallest member */
}

static void test_errors(void **state) {
    (void)state;
    float x[30 * 2] = {0};
    for (int i = 0; i < 60; i++) x[i] = (float)(i % 7);
    int32_t lab[30];
    ap_hdbscan_params p;
    ap_hdbscan_params_default(&p);
    assert_int_equal(ap_hdbscan(x, 20, 2, &p, lab, NULL, NULL, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "x has 20 points, fewer than min_cluster_size 25"));
    p.min_cluster_size = 5;
    p.min_samples = 40;
    assert_int_equal(ap_hdbscan(x, 30, 2, &p, lab, NULL, NULL, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "fewer than min_samples 40"));
    p.min_samples = 5;
    x[2 * 17 + 1] = NAN;
    assert_int_equal(ap_hdbscan(x, 30, 2, &p, lab, NULL, NULL, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "x: row 17, column 1 is NaN"));
    x[2 * 17 + 1] = INFINITY;
    assert_int_equal(ap_hdbscan(x, 30, 2, &p, lab, NULL, NULL, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "infinite"));
    x[2 * 17 + 1] = 1;
    x[0] = x[1] = 0;
    p.metric = AP_METRIC_COSINE;
    assert_int_equal(ap_hdbscan(x, 30, 2, &p, lab, NULL, NULL, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "row 0 is all zeros"));
    p.metric = AP_METRIC_EUCLIDEAN;
    p.min_cluster_size = 1;
    assert_int_equal(ap_hdbscan(x, 30, 2, &p, lab, NULL, NULL, tu_err()), AP_ERR_ARG);
    p.min_cluster_size = 5;
    TU_OK(ap_hdbscan(x, 30, 2, &p, lab, NULL, NULL, tu_err()));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blobs),          cmocka_unit_test(test_moons),
        cmocka_unit_test(test_duplicates),     cmocka_unit_test(test_cosine),
        cmocka_unit_test(test_single_cluster), cmocka_unit_test(test_core_distances),
        cmocka_unit_test(test_prim_equals_boruvka), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_zero_distances), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
