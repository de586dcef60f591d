/* The clustering stage over a store (ap_cluster_store): a synthetic store
 * (tests/cluster_synth.h) whose heads each have 2 or 3 groups of samples,
 * every group with its own embedding direction and its own attention (sink,
 * previous token, self).
 * The groups come back as the clusters, with their sizes, medoids, mean
 * patterns and kinds; a second run with the same options does nothing, and
 * other options start again; one and two threads give the same store;
 * duplicate rows are jittered; bad stores and heads are refused. The
 * command line, and killing it, are tests/test_cluster_cli.c. */
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/cluster.h"
#include "apmae/io.h"
#include "apmae/store.h"
#include "cluster_synth.h"

enum { L = 2, H = 2 };

static char *make_store(const char *name, int64_t samples, int with_embeddings) {
    return make_store_lh(name, samples, with_embeddings, L, H);
}

static ap_cluster_store_options options(const char *path, int no_umap) {
    ap_cluster_store_options o;
    ap_cluster_store_options_default(&o);
    o.store_path = path;
    o.params.no_umap = no_umap;
    o.params.hdbscan.min_cluster_size = 15;
    o.params.hdbscan.min_samples = 10;
    o.params.umap.n_neighbors = 15;
    o.params.umap.n_epochs = 100;
    o.threads = 1;
    return o;
}

/* Every head: the groups as the clusters (noise aside: at most max_noise
 * samples), each cluster's summary consistent with its members. */
static void check_heads(const char *path, int max_noise) {
    ap_store *s;
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    const ap_store_clusters_info *ci = ap_store_clusters_info_of(s);
    assert_non_null(ci);
    assert_int_equal(ci->heads_done, L * H);
    int32_t lab[S];
    float *P = malloc(sizeof(float) * N * N), *want = malloc(sizeof(float) * N * N);
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            TU_OK(ap_store_read_head_labels(s, l, h, lab, tu_err()));
            int map[3] = {-1, -1, -1}, noise = 0;
            for (int i = 0; i < S; i++) {
                int g = group_of(i, l, h);
                if (lab[i] < 0) {
                    noise++;
                    continue;
                }
                if (map[g] < 0) map[g] = lab[i];
                assert_int_equal(lab[i], map[g]);
            }
            assert_true(noise <= max_noise);
            assert_int_equal(ci->n_clusters[l * H + h], groups_of(l, h));
            ap_cluster_summary *c;
            int k;
            TU_OK(ap_store_read_cluster_summary(s, l, h, &c, &k, tu_err()));
            for (int g = 0; g < groups_of(l, h); g++) {
                const ap_cluster_summary *cs = &c[map[g]];
                static const char *const kinds[3] = {"sink", "previous", "self"};
                assert_string_equal(cs->kind, kinds[g]);
                assert_int_equal(group_of(cs->medoid, l, h), g);
                assert_true(cs->measures[g == 0 ? AP_MEASURE_SINK : g == 1 ? AP_MEASURE_PREVIOUS : AP_MEASURE_SELF] >
                            0.8f);
                TU_OK(ap_store_read_cluster_mean(s, l, h, map[g], P, tu_err()));
                fill_pattern(g, want); /* every member has the same pattern */
                assert_true(tu_max_abs_err(P, want, N * N) < 1e-6);
            }
            free(c);
        }
    free(P), free(want);
    TU_OK(ap_store_close(s, tu_err()));
}

static void test_store_without_umap(void **state) {
    (void)state;
    char *path = make_store("plain.h5", S, 1);
    ap_cluster_store_options o = options(path, 1);
    ap_cluster_store_report rep;
    TU_OK(ap_cluster_store(&o, &rep, tu_err()));
    assert_int_equal(rep.heads, L * H);
    assert_int_equal(rep.done, L * H);
    assert_int_equal(rep.already_done, 0);
    check_heads(path, 0);
    /* the same options again: nothing to do */
    TU_OK(ap_cluster_store(&o, &rep, tu_err()));
    assert_int_equal(rep.done, 0);
    assert_int_equal(rep.already_done, L * H);
    /* a subset under other options: the run starts again with those heads */
    int32_t heads[2] = {1, 0};
    o.heads = heads;
    o.nheads = 1;
    o.params.hdbscan.min_cluster_size = 16;
    TU_OK(ap_cluster_store(&o, &rep, tu_err()));
    assert_int_equal(rep.heads, 1);
    assert_int_equal(rep.done, 1);
    ap_store *s;
    TU_OK(ap_store_open(path, AP_STORE_READ, &s, tu_err()));
    assert_int_equal(ap_store_clusters_info_of(s)->heads_done, 1);
    assert_true(ap_store_clusters_info_of(s)->done[1 * H + 0]);
    assert_non_null(strstr(ap_store_clusters_info_of(s)->params, "\"min_cluster_size\":16"));
    TU_OK(ap_store_close(s, tu_err()));
    free(path);
}

static void test_store_with_umap(void **state) {
    (void)state;
    char *path = make_store("umap.h5", S, 1);
    ap_cluster_store_options o = options(path, 0);
    ap_cluster_store_report rep;
    TU_OK(ap_cluster_store(&o, &rep, tu_err()));
    assert_int_equal(rep.done, L * H);
    check_heads(path, S / 20);
    free(path);
}

/* Heads in parallel give the store one thread gives. */
static void test_threads(void **state) {
    (void)state;
    char *a = make_store("t1.h5", S, 1), *b = make_store("t2.h5", S, 1);
    ap_cluster_store_options o = options(a, 0);
    ap_cluster_store_report rep;
    TU_OK(ap_cluster_store(&o, &rep, tu_err()));
    o.store_path = b;
    o.threads = 2;
    omp_set_num_threads(2);
    TU_OK(ap_cluster_store(&o, &rep, tu_err()));
    assert_clusters_equal(a, b);
    free(a), free(b);
}

static void test_errors(void **state) {
    (void)state;
    ap_cluster_store_report rep;
    char *bare = make_store("bare.h5", S, 0);
    ap_cluster_store_options o = options(bare, 1);
    assert_int_equal(ap_cluster_store(&o, &rep, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "has no embeddings to cluster; run 'apmae store embed"));
    assert_non_null(strstr(tu_last_error()->msg, bare));
    char *few = make_store("few.h5", 12, 1);
    o = options(few, 1);
    assert_int_equal(ap_cluster_store(&o, &rep, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "12 samples, fewer than min_cluster_size 15"));
    char *ok = make_store("range.h5", S, 1);
    o = options(ok, 1);
    int32_t heads[2] = {0, H};
    o.heads = heads;
    o.nheads = 1;
    assert_int_equal(ap_cluster_store(&o, &rep, tu_err()), AP_ERR_RANGE);
    assert_non_null(strstr(tu_last_error()->msg, "head 0:2 is out of range (layers 0..1, heads 0..1)"));
    free(bare), free(few), free(ok);
}

/* Exact copies of an earlier row move by about the jitter, the first copy
 * and the other rows stay; the same seed moves them the same way. */
static void test_jitter(void **state) {
    (void)state;
    enum { n = 60, d = 3 };
    float x[n * d], y[n * d];
    ap_rng r;
    ap_rng_seed(&r, 4);
    for (int i = 0; i < n * d; i++) x[i] = (float)ap_rng_normal(&r);
    for (int i = 40; i < n; i++) memcpy(x + i * d, x + (i % 4) * d, sizeof(float) * d); /* 20 copies of rows 0..3 */
    memcpy(y, x, sizeof x);
    ap_cluster_params p;
    ap_cluster_params_default(&p);
    p.no_umap = 1;
    p.hdbscan.min_cluster_size = 5;
    p.hdbscan.min_samples = 3;
    int32_t lab[n];
    float x2[n * d];
    memcpy(x2, x, sizeof x);
    TU_OK(ap_cluster_matrix(x, n, d, &p, lab, NULL, NULL, tu_err()));
    TU_OK(ap_cluster_matrix(x2, n, d, &p, lab, NULL, NULL, tu_err()));
    assert_memory_equal(x, x2, sizeof x);
    for (int i = 0; i < n; i++) {
        double moved = 0;
        for (int k = 0; k < d; k++) moved = fmax(moved, fabs(x[i * d + k] - y[i * d + k]));
        if (i < 40) assert_true(moved == 0);
        else assert_true(moved > 0 && moved < 5e-3);
    }
}

static void test_medoid(void **state) {
    (void)state;
    enum { n = 700, d = 2 };
    float x[n * d];
    int64_t members[n], got;
    ap_rng r;
    ap_rng_seed(&r, 5);
    for (int i = 0; i < n * d; i++) x[i] = (float)ap_rng_normal(&r);
    for (int i = 0; i < n; i++) members[i] = i;
    for (int count = 9; count <= n; count += n - 9) { /* exact, then through the candidates */
        TU_OK(ap_cluster_medoid(x, d, members, count, &got, tu_err()));
        double best = INFINITY;
        int64_t want = -1;
        for (int a = 0; a < count; a++) {
            double s = 0;
            for (int b = 0; b < count; b++) s += hypot((double)x[a * d] - x[b * d], (double)x[a * d + 1] - x[b * d + 1]);
            if (s < best - 1e-9) best = s, want = a;
        }
        assert_int_equal(got, want);
    }
}

/* Adjusted Rand index, noise (-1) counted as one more label (as
 * scikit-learn's adjusted_rand_score sees it). */
static double adjusted_rand(const int32_t *a, const int32_t *b, int64_t n) {
    int ka = 0, kb = 0;
    for (int64_t i = 0; i < n; i++) ka = a[i] + 2 > ka ? a[i] + 2 : ka, kb = b[i] + 2 > kb ? b[i] + 2 : kb;
    double *t = calloc((size_t)ka * kb, sizeof(double)), *ra = calloc((size_t)ka, sizeof(double)),
           *rb = calloc((size_t)kb, sizeof(double));
    for (int64_t i = 0; i < n; i++) t[(a[i] + 1) * kb + b[i] + 1]++, ra[a[i] + 1]++, rb[b[i] + 1]++;
    double pairs = 0, pa = 0, pb = 0, all = (double)n * (n - 1) / 2;
    for (int i = 0; i < ka * kb; i++) pairs += t[i] * (t[i] - 1) / 2;
    for (int i = 0; i < ka; i++) pa += ra[i] * (ra[i] - 1) / 2;
    for (int i = 0; i < kb; i++) pb += rb[i] * (rb[i] - 1) / 2;
    free(t), free(ra), free(rb);
    double expected = pa * pb / all;
    return (pairs - expected) / ((pa + pb) / 2 - expected);
}

/* scikit-learn's digits (tests/fixtures/cluster, tools/umap_ref.py): HDBSCAN
 * on umap-learn's embedding gives exactly the adjusted Rand index R's
 * hdbscan gives there, and apmae's UMAP + HDBSCAN recovers the digits about
 * as well. */
static void test_digits(void **state) {
    (void)state;
    ap_safetensors *st;
    cJSON *ref;
    TU_OK(ap_st_open("fixtures/cluster/digits.safetensors", &st, tu_err()));
    TU_OK(ap_json_load("fixtures/cluster/umap_ref.json", &ref, tu_err()));
    const ap_tensor *x = ap_st_find(st, "x"), *lab = ap_st_find(st, "labels");
    const ap_tensor *emb = ap_st_find(st, "umap_learn_embedding");
    assert_true(x && lab && emb && emb->dtype == AP_F32);
    int64_t n = x->shape[0];
    int d = (int)x->shape[1];
    int32_t *truth = malloc(sizeof(int32_t) * n), *got = malloc(sizeof(int32_t) * n);
    for (int64_t i = 0; i < n; i++) truth[i] = ((const uint8_t *)lab->data)[i];
    const cJSON *r = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "digits"), "fixture_embedding"),
                                         "r_hdbscan"), *e;
    double r_ari = 0;
    cJSON_ArrayForEach(e, r) { /* R: minPts = min_samples = min_cluster_size, no single cluster */
        ap_hdbscan_params p;
        ap_hdbscan_params_default(&p);
        p.min_samples = p.min_cluster_size = cJSON_GetObjectItem(e, "minPts")->valueint;
        p.allow_single_cluster = 0;
        int k;
        TU_OK(ap_hdbscan(emb->data, n, (int)emb->shape[1], &p, got, NULL, &k, tu_err()));
        double want = cJSON_GetObjectItem(e, "ari")->valuedouble;
        print_message("umap-learn's embedding, minPts %d: %d clusters, ARI %.6f (R: %.6f)\n", p.min_samples, k,
                      adjusted_rand(got, truth, n), want);
        assert_int_equal(k, cJSON_GetObjectItem(e, "clusters")->valueint);
        assert_true(fabs(adjusted_rand(got, truth, n) - want) < 1e-9);
        if (r_ari < want) r_ari = want;
    }
    float *xf = malloc(sizeof(float) * n * d), *out = malloc(sizeof(float) * n * 8);
    for (int64_t i = 0; i < n * d; i++) xf[i] = ((const uint8_t *)x->data)[i];
    ap_cluster_params p;
    ap_cluster_params_default(&p); /* the project's defaults but 200 epochs, like the fixture */
    p.umap.n_epochs = 200;
    p.umap.seed = 42;
    int k;
    TU_OK(ap_cluster_matrix(xf, n, d, &p, got, out, &k, tu_err()));
    double ari = adjusted_rand(got, truth, n);
    print_message("apmae UMAP + HDBSCAN: %d clusters, ARI %.4f; umap-learn + R's hdbscan: %.4f\n", k, ari, r_ari);
    assert_true(ari > r_ari - 0.05);
    free(truth), free(got), free(xf), free(out);
    cJSON_Delete(ref);
    ap_st_close(st);
}

int main(void) {
    /* small data: a second thread only adds waiting on a loaded machine;
     * test_threads sets its own */
    omp_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digits),
        cmocka_unit_test(test_store_without_umap), cmocka_unit_test(test_store_with_umap),
        cmocka_unit_test(test_threads),           cmocka_unit_test(test_errors),
        cmocka_unit_test(test_jitter),            cmocka_unit_test(test_medoid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
