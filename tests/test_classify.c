/* The correctness classifier: the XGBoost path against XGBoost's Python
 * package (tests/fixtures/classify/xgb_ref.json from tools/xgb_ref.py),
 * stratified splits and folds, the Wilson interval, the confidence
 * baseline, and the protocol on planted data (correctness a function of
 * one head's cluster id: near-perfect accuracy, that head first by SHAP) and
 * on data whose correctness ignores the clusters (chance), SHAP additivity,
 * determinism, and the skips for data sets it cannot classify. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/classify.h"
#include "apmae/io.h"
#include <png.h>

static void *json_ints(const cJSON *a, size_t elem) {
    int n = cJSON_GetArraySize(a);
    char *out = calloc((size_t)n + 1, elem);
    for (int i = 0; i < n; i++) {
        double v = cJSON_GetArrayItem(a, i)->valuedouble;
        if (elem == sizeof(int32_t)) ((int32_t *)out)[i] = (int32_t)v;
        else if (elem == sizeof(int64_t)) ((int64_t *)out)[i] = (int64_t)v;
        else ((uint8_t *)out)[i] = (uint8_t)v;
    }
    return out;
}

/* Same data, split and parameters as XGBoost's Python package: the same
 * early-stopping round, margins and contributions. */
static void test_matches_python_xgboost(void **state) {
    (void)state;
    cJSON *j = NULL;
    TU_OK(ap_json_load("fixtures/classify/xgb_ref.json", &j, tu_err()));
    const int F = cJSON_GetObjectItem(j, "features")->valueint;
    int32_t *x = json_ints(cJSON_GetObjectItem(j, "x"), sizeof(int32_t));
    uint8_t *y = json_ints(cJSON_GetObjectItem(j, "y"), 1);
    const cJSON *jtrain = cJSON_GetObjectItem(j, "train"), *jeval = cJSON_GetObjectItem(j, "eval"),
                *jtest = cJSON_GetObjectItem(j, "test");
    int64_t *train = json_ints(jtrain, sizeof(int64_t)), *eval = json_ints(jeval, sizeof(int64_t)),
            *test = json_ints(jtest, sizeof(int64_t));
    const int ntr = cJSON_GetArraySize(jtrain), nev = cJSON_GetArraySize(jeval), nte = cJSON_GetArraySize(jtest);
    ap_gbt_params p;
    ap_gbt_params_default(&p);
    p.nthread = 1;
    ap_gbt *m = NULL;
    TU_OK(ap_gbt_train(x, y, F, train, ntr, eval, nev, &p, &m, tu_err()));
    assert_int_equal(ap_gbt_best_iteration(m), cJSON_GetObjectItem(j, "best_iteration")->valueint);
    assert_int_equal(ap_gbt_rounds(m), cJSON_GetObjectItem(j, "rounds")->valueint);
    float *margin = malloc(sizeof(float) * nte), *phi = malloc(sizeof(float) * nte * (F + 1));
    TU_OK(ap_gbt_margin(m, x, F, test, nte, margin, tu_err()));
    TU_OK(ap_gbt_contribs(m, x, F, test, nte, phi, tu_err()));
    const cJSON *jm = cJSON_GetObjectItem(j, "margin"), *jc = cJSON_GetObjectItem(j, "contribs");
    assert_int_equal(cJSON_GetArraySize(jc), nte * (F + 1));
    double worst_margin = 0, worst_phi = 0;
    for (int i = 0; i < nte; i++) worst_margin = fmax(worst_margin, fabs(margin[i] - cJSON_GetArrayItem(jm, i)->valuedouble));
    for (int i = 0; i < nte * (F + 1); i++) worst_phi = fmax(worst_phi, fabs(phi[i] - cJSON_GetArrayItem(jc, i)->valuedouble));
    assert_true(worst_margin < 1e-5);
    assert_true(worst_phi < 1e-5);
    /* a model that learnt something: not all margins equal */
    int distinct = 0;
    for (int i = 1; i < nte; i++) distinct += margin[i] != margin[0];
    assert_true(distinct > 0);
    ap_gbt_free(m);
    free(margin);
    free(phi);
    free(x);
    free(y);
    free(train);
    free(eval);
    free(test);
    cJSON_Delete(j);
}

static void test_bad_cluster_ids(void **state) {
    (void)state;
    int32_t x[4] = {0, 1, -2, 3};
    uint8_t y[4] = {0, 1, 0, 1};
    int64_t rows[4] = {0, 1, 2, 3};
    ap_gbt_params p;
    ap_gbt_params_default(&p);
    ap_gbt *m = NULL;
    assert_int_equal(ap_gbt_train(x, y, 1, rows, 4, NULL, 0, &p, &m, tu_err()), AP_ERR_RANGE);
    assert_non_null(strstr(tu_last_error()->msg, "cluster id -2"));
    assert_null(m);
}

static void test_splits(void **state) {
    (void)state;
    enum { n = 103 };
    uint8_t y[n], in_test[n], again[n];
    int fold[n];
    int64_t ones = 0;
    for (int i = 0; i < n; i++) ones += y[i] = (uint8_t)(i % 3 == 0); /* 35 correct, 68 incorrect */
    TU_OK(ap_stratified_split(y, n, 0.1, 42, in_test, tu_err()));
    int64_t test_pos = 0, test_neg = 0;
    for (int i = 0; i < n; i++) {
        test_pos += in_test[i] && y[i];
        test_neg += in_test[i] && !y[i];
    }
    assert_int_equal(test_pos, 4); /* round(3.5) */
    assert_int_equal(test_neg, 7); /* round(6.8) */
    TU_OK(ap_stratified_split(y, n, 0.1, 42, again, tu_err()));
    assert_memory_equal(in_test, again, n);
    TU_OK(ap_stratified_split(y, n, 0.1, 43, again, tu_err()));
    assert_true(memcmp(in_test, again, n) != 0);
    TU_OK(ap_stratified_folds(y, n, 5, 7, fold, tu_err()));
    int size[5] = {0}, pos[5] = {0};
    for (int i = 0; i < n; i++) {
        assert_true(fold[i] >= 0 && fold[i] < 5);
        size[fold[i]]++;
        pos[fold[i]] += y[i];
    }
    for (int k = 0; k < 5; k++) {
        assert_true(size[k] == 20 || size[k] == 21);
        assert_true(pos[k] == 7);
    }
    (void)ones;
}

static void test_wilson(void **state) {
    (void)state;
    double lo, hi;
    ap_wilson_interval(5, 10, &lo, &hi);
    assert_true(fabs(lo - 0.236593) < 1e-5 && fabs(hi - 0.763407) < 1e-5);
    ap_wilson_interval(0, 10, &lo, &hi);
    assert_true(lo < 1e-12 && fabs(hi - 0.277533) < 1e-5);
    ap_wilson_interval(40, 40, &lo, &hi);
    assert_true(fabs(lo - 0.912376) < 1e-5 && hi > 1 - 1e-12);
}

static void test_confidence_threshold(void **state) {
    (void)state;
    const float p[8] = {0.9f, 0.2f, 0.8f, 0.3f, 0.7f, 0.1f, 0.45f, 0.5f};
    const uint8_t y[8] = {1, 0, 1, 0, 1, 0, 1, 0};
    int64_t rows[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    double t;
    /* sorted: .1- .2- .3- .45+ .5- .7+ .8+ .9+ : thresholds 0.6 and 0.4 both
     * make 7 of 8 right; the lower one is kept */
    TU_OK(ap_confidence_threshold(p, y, rows, 8, &t, tu_err()));
    assert_true(fabs(t - 0.375) < 1e-6);
    /* confidence that says the opposite of correctness: calling every
     * sample correct (t = 0) is as good as any threshold */
    const uint8_t inv[8] = {0, 1, 0, 1, 0, 1, 0, 1};
    TU_OK(ap_confidence_threshold(p, inv, rows, 8, &t, tu_err()));
    assert_true(t == 0);
    /* all incorrect: t = 1 calls none correct */
    const uint8_t none[8] = {0};
    TU_OK(ap_confidence_threshold(p, none, rows, 8, &t, tu_err()));
    assert_true(t == 1);
}

enum { PL = 3, PH = 4, PF = PL * PH };

/* n samples of random cluster ids (-1..4); correctness a function of the
 * planted head's id when planted >= 0, else independent coin flips. */
static void planted_data(int64_t n, int planted, uint64_t seed, int32_t *x, uint8_t *y, float *max_prob) {
    ap_rng r;
    ap_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) {
        for (int f = 0; f < PF; f++) x[i * PF + f] = (int32_t)ap_rng_below(&r, 6) - 1;
        y[i] = planted >= 0 ? (uint8_t)(x[i * PF + planted] == 1 || x[i * PF + planted] == 3 ||
                                        x[i * PF + planted] == -1)
                            : (uint8_t)(ap_rng_below(&r, 2));
        max_prob[i] = (float)(0.05 + 0.9 * ap_rng_uniform(&r));
    }
}

/* The head map: a PNG whose mean-positive panel is reddest at the planted
 * head's cell. */
static void check_head_map(const ap_classify_result *r, int layer, int head) {
    char *path = tu_tmp_path("shap.png");
    TU_OK(ap_shap_head_map_png(path, "SHAP per head: planted (test)", r->heads, r->nheads, PL, PH, tu_err()));
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&img, path));
    img.format = PNG_FORMAT_RGB;
    unsigned char *rgb = malloc(PNG_IMAGE_SIZE(img));
    assert_true(png_image_finish_read(&img, NULL, rgb, 0, NULL));
    /* layout of figure.c: margin 12, row labels of one 12-pixel digit + 6,
     * title and labels 82 high, 32-pixel cells */
    const int left = 12 + 12 + 6, top = 12 + 18 + 10 + 18 + 4 + 18 + 2, cell = 32;
    /* the reddest pixel above the colour bar lies in the planted head's cell of the first panel */
    int best = -1, bx = 0, by = 0;
    for (int y = 0; y < top + PL * cell; y++)
        for (int x = 0; x < (int)img.width; x++) {
            const unsigned char *p = rgb + 3 * ((size_t)y * img.width + x);
            int red = p[0] - p[2];
            if (red > best) best = red, bx = x, by = y;
        }
    assert_true(best > 60);
    assert_true(by >= top + layer * cell && by < top + (layer + 1) * cell);
    assert_true(bx >= left + head * cell && bx < left + (head + 1) * cell);
    free(rgb);
    free(path);
}

static void test_planted_head_found(void **state) {
    (void)state;
    enum { n = 400, planted = 6 }; /* layer 1, head 2 */
    int32_t *x = malloc(sizeof(int32_t) * n * PF);
    uint8_t y[n];
    float mp[n];
    planted_data(n, planted, 1, x, y, mp);
    ap_classify_params p;
    ap_classify_params_default(&p);
    p.folds = 3;
    p.repeats = 1;
    p.gbt.nthread = 1;
    p.gbt.max_rounds = 150; /* separable data: early stopping never ends it */
    ap_classify_result r;
    TU_OK(ap_classify(x, y, mp, n, PL, PH, &p, NULL, NULL, &r, tu_err()));
    assert_string_equal(r.skipped, "");
    assert_int_equal(r.n, n);
    assert_int_equal(r.n_test, 40);
    assert_int_equal(r.n_train, 360);
    assert_true(r.accuracy >= 0.97);
    assert_true(r.lo > 0.85);
    assert_int_equal(r.confusion[0][0] + r.confusion[0][1] + r.confusion[1][0] + r.confusion[1][1], 40);
    assert_int_equal(r.nheads, PF);
    assert_int_equal(r.heads[0].layer, 1);
    assert_int_equal(r.heads[0].head, 2);
    /* the planted head carries almost all of the explanation */
    assert_true(r.heads[0].mean_abs > 5 * r.heads[1].mean_abs);
    for (int f = 0; f < PF; f++) {
        const ap_head_shap *h = &r.heads[f];
        assert_true(h->mean_pos >= 0 && h->mean_neg <= 0);
        assert_true(fabs(h->mean_pos + h->mean_neg - h->mean_total) < 1e-12);
        assert_true(h->mean_abs >= fabs(h->mean_total) - 1e-12);
        if (f > 0) assert_true(h->mean_abs <= r.heads[f - 1].mean_abs);
    }
    assert_true(r.shap_sum_error < 1e-4);
    /* the confidence is noise here: its baseline stays near chance */
    assert_true(r.has_cv && r.cv.folds == 3 && r.cv.repeats == 1);
    assert_true(r.cv.mean >= 0.97 && r.cv.confidence_mean < 0.65 && r.cv.wins == 3);
    /* the folds' SHAP (every sample once) agrees on the planted head */
    assert_true(r.cv.heads[0].layer == 1 && r.cv.heads[0].head == 2);
    assert_true(r.cv.heads[0].mean_abs > 5 * r.cv.heads[1].mean_abs && r.cv.shap_sum_error < 1e-4);
    assert_true(r.best_iteration >= 0 && r.rounds > r.best_iteration);
    check_head_map(&r, 1, 2);
    ap_classify_result_free(&r);
    free(x);
}

static void test_chance_when_independent(void **state) {
    (void)state;
    enum { n = 400 };
    int32_t *x = malloc(sizeof(int32_t) * n * PF);
    uint8_t y[n];
    float mp[n];
    planted_data(n, -1, 2, x, y, mp);
    ap_classify_params p;
    ap_classify_params_default(&p);
    p.folds = 5;
    p.repeats = 1;
    p.gbt.nthread = 1;
    ap_classify_result r;
    TU_OK(ap_classify(x, y, mp, n, PL, PH, &p, NULL, NULL, &r, tu_err()));
    assert_string_equal(r.skipped, "");
    assert_true(r.lo <= 0.5 && r.hi >= 0.5);
    assert_true(r.has_cv && fabs(r.cv.mean - 0.5) < 0.08);
    assert_true(r.shap_sum_error < 1e-4);
    ap_classify_result_free(&r);
    free(x);
}

/* Same seed, same result, whatever the thread count; another seed, another split. */
static void test_deterministic(void **state) {
    (void)state;
    enum { n = 200 };
    int32_t *x = malloc(sizeof(int32_t) * n * PF);
    uint8_t y[n];
    float mp[n];
    planted_data(n, 3, 3, x, y, mp);
    for (int i = 0; i < n; i += 7) y[i] ^= 1; /* some label noise so trees differ */
    ap_classify_params p;
    ap_classify_params_default(&p);
    p.folds = 2;
    p.repeats = 1;
    ap_classify_result a, b, c;
    p.gbt.nthread = 1;
    TU_OK(ap_classify(x, y, mp, n, PL, PH, &p, NULL, NULL, &a, tu_err()));
    p.gbt.nthread = 2;
    TU_OK(ap_classify(x, y, mp, n, PL, PH, &p, NULL, NULL, &b, tu_err()));
    assert_true(a.accuracy == b.accuracy && a.cv.mean == b.cv.mean && a.best_iteration == b.best_iteration);
    for (int f = 0; f < PF; f++) {
        assert_int_equal(a.heads[f].layer * PH + a.heads[f].head, b.heads[f].layer * PH + b.heads[f].head);
        assert_true(a.heads[f].mean_total == b.heads[f].mean_total);
    }
    p.seed = 43;
    TU_OK(ap_classify(x, y, mp, n, PL, PH, &p, NULL, NULL, &c, tu_err()));
    assert_true(memcmp(a.confusion, c.confusion, sizeof a.confusion) != 0 || a.cv.mean != c.cv.mean);
    ap_classify_result_free(&a);
    ap_classify_result_free(&b);
    ap_classify_result_free(&c);
    free(x);
}

static void count_fits(void *ctx, int64_t done, int64_t total) {
    int64_t *last = ctx;
    assert_true(done > last[0] && done <= total);
    last[0] = done;
    last[1] = total;
}

static void test_skips(void **state) {
    (void)state;
    enum { n = 40 };
    int32_t x[n * PF];
    uint8_t y[n];
    float mp[n];
    planted_data(n, 0, 4, x, y, mp);
    ap_classify_params p;
    ap_classify_params_default(&p);
    p.gbt.nthread = 1;
    ap_classify_result r;
    int64_t seen[2] = {0, 0};
    /* one class */
    uint8_t all[n];
    memset(all, 1, sizeof all);
    TU_OK(ap_classify(x, all, mp, n, PL, PH, &p, count_fits, seen, &r, tu_err()));
    assert_non_null(strstr(r.skipped, "one class only: all 40 samples are correct"));
    assert_true(seen[0] == seen[1] && r.nheads == 0);
    ap_classify_result_free(&r);
    /* four incorrect samples */
    for (int i = 0; i < n; i++) all[i] = i >= 4;
    TU_OK(ap_classify(x, all, mp, n, PL, PH, &p, NULL, NULL, &r, tu_err()));
    assert_non_null(strstr(r.skipped, "36 correct and 4 incorrect"));
    ap_classify_result_free(&r);
    /* seven incorrect: a test split, but not 10 folds */
    for (int i = 0; i < n; i++) all[i] = i >= 7;
    p.folds = 10;
    seen[0] = 0;
    TU_OK(ap_classify(x, all, mp, n, PL, PH, &p, count_fits, seen, &r, tu_err()));
    assert_string_equal(r.skipped, "");
    assert_false(r.has_cv);
    assert_non_null(strstr(r.cv_skipped, "too few samples for 10 folds"));
    assert_int_equal(r.nheads, PF);
    assert_true(seen[0] == seen[1]);
    ap_classify_result_free(&r);
    /* a test fraction that leaves no test sample: skipped, not a division by zero */
    p.test_fraction = 0.01;
    TU_OK(ap_classify(x, y, mp, n, PL, PH, &p, NULL, NULL, &r, tu_err()));
    assert_non_null(strstr(r.skipped, "leaves the test part of 40 samples empty"));
    ap_classify_result_free(&r);
    p.test_fraction = 0.1;
    /* bad parameters are errors */
    p.folds = 1;
    assert_int_equal(ap_classify(x, y, mp, n, PL, PH, &p, NULL, NULL, &r, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "--folds 1"));
    p.folds = 5;
    p.test_fraction = 1.5;
    assert_int_equal(ap_classify(x, y, mp, n, PL, PH, &p, NULL, NULL, &r, tu_err()), AP_ERR_ARG);
    assert_non_null(strstr(tu_last_error()->msg, "--test-fraction"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_python_xgboost),
        cmocka_unit_test(test_bad_cluster_ids),
        cmocka_unit_test(test_splits),
        cmocka_unit_test(test_wilson),
        cmocka_unit_test(test_confidence_threshold),
        cmocka_unit_test(test_planted_head_found),
        cmocka_unit_test(test_chance_when_independent),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_skips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
