/* apmae classify over stores: a store whose correctness is planted as a
 * function of one head's cluster id in one task and independent of the
 * clusters in another (accuracy near 1 with that head first by SHAP; chance
 * with an interval covering 0.5), a task with one class only and one too
 * small for the folds (skips in results.json), the output files, and clear
 * errors for a store without clusters and bad flags. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/io.h"
#include "apmae/store.h"

enum { N = 8, L = 2, H = 3, PLANTED_LAYER = 1, PLANTED_HEAD = 2 };

/* Per task: samples, and how correctness is made. */
typedef enum { PLANTED, INDEPENDENT, ALL_CORRECT, FEW_INCORRECT } kind;
static const struct {
    const char *name;
    int n;
    kind how;
} k_tasks[] = {{"planted", 300, PLANTED}, {"random", 300, INDEPENDENT}, {"one_class", 40, ALL_CORRECT},
               {"few", 40, FEW_INCORRECT}};
enum { NTASKS = sizeof k_tasks / sizeof k_tasks[0] };

static int64_t total_samples(void) {
    int64_t S = 0;
    for (int t = 0; t < NTASKS; t++) S += k_tasks[t].n;
    return S;
}

/* Cluster ids per head: random in -1..3 (every id used in every head). */
static void make_labels(int64_t S, int32_t *lab) {
    ap_rng r;
    ap_rng_seed(&r, 11);
    for (int64_t i = 0; i < S * L * H; i++) lab[i] = (int32_t)ap_rng_below(&r, 5) - 1;
}

/* A store of the tasks above; with_clusters: its /clusters written too. */
static char *make_store(const char *name, int with_clusters) {
    char *path = tu_fresh_store_path(name);
    static const char *const names[NTASKS] = {"planted", "random", "one_class", "few"};
    ap_store_meta m = {.model_id = "planted-model", .n_tokens = N, .num_layers = L, .num_heads = H, .dtype = AP_F32,
                       .small_bits = -1, .deflate = -1, .tasks = names, .ntasks = NTASKS, .run = "{}"};
    ap_store *s;
    TU_OK(ap_store_create(path, &m, &s, tu_err()));
    const int64_t S = total_samples();
    int32_t *lab = malloc(sizeof(int32_t) * S * L * H), *col = malloc(sizeof(int32_t) * S);
    float *attn = calloc((size_t)L * H * N * N, sizeof(float));
    make_labels(S, lab);
    ap_rng r;
    ap_rng_seed(&r, 12);
    int64_t i = 0;
    for (int t = 0; t < NTASKS; t++)
        for (int k = 0; k < k_tasks[t].n; k++, i++) {
            char id[32];
            int32_t ids[N] = {0};
            int planted = lab[i * L * H + PLANTED_LAYER * H + PLANTED_HEAD];
            int correct = k_tasks[t].how == PLANTED       ? planted == 0 || planted == 2
                          : k_tasks[t].how == INDEPENDENT ? (int)ap_rng_below(&r, 2)
                          : k_tasks[t].how == ALL_CORRECT ? 1
                                                          : k >= 7;
            snprintf(id, sizeof id, "s%05lld", (long long)i);
            ap_store_sample rec = {.id = id, .task = k_tasks[t].name, .source = "", .label_id = 1,
                                   .pred_id = correct ? 1 : 2, .correct = correct,
                                   .max_prob = (float)(0.1 + 0.8 * ap_rng_uniform(&r)), .index = i};
            TU_OK(ap_store_append(s, &rec, ids, attn, tu_err()));
        }
    TU_OK(ap_store_commit(s, tu_err()));
    if (with_clusters) {
        TU_OK(ap_store_clusters_begin(s, "{\"test\": true}", tu_err()));
        for (int f = 0; f < L * H; f++) {
            for (int64_t j = 0; j < S; j++) col[j] = lab[j * L * H + f];
            TU_OK(ap_store_put_cluster_labels(s, f / H, f % H, col, tu_err()));
        }
    }
    TU_OK(ap_store_close(s, tu_err()));
    free(lab);
    free(col);
    free(attn);
    return path;
}

static const cJSON *task_of(const cJSON *j, const char *name) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "tasks"), name);
    if (!t) fail_msg("results.json has no task %s", name);
    return t;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("'%s' is not a number", key);
    return v->valuedouble;
}

static int file_exists(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return ap_path_exists(path);
}

static void test_planted_store(void **state) {
    (void)state;
    char *store = make_store("planted.h5", 1), *out = tu_tmp_path("planted_out");
    char *text = NULL;
    int rc = tu_run(&text, "OMP_NUM_THREADS=1 %s --quiet classify --store %s --out %s --folds 3 --repeats 1 "
                    "--max-rounds 150 2>&1",
                    tu_apmae_bin(), store, out);
    if (rc != 0) fail_msg("apmae classify exited %d: %s", rc, text);
    /* the table names every task and the planted head */
    assert_non_null(strstr(text, "planted"));
    assert_non_null(strstr(text, "skipped: one class only"));
    char results[1024];
    snprintf(results, sizeof results, "%s/results.json", out);
    cJSON *j = NULL;
    TU_OK(ap_json_load(results, &j, tu_err()));
    assert_string_equal(cJSON_GetObjectItem(j, "model_id")->valuestring, "planted-model");
    assert_true(num(j, "num_layers") == L && num(j, "num_heads") == H && num(j, "seed") == 42 &&
                num(j, "test_fraction") == 0.1 && num(j, "folds") == 3);

    const cJSON *p = task_of(j, "planted");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(p, "skipped")));
    assert_true(num(p, "n") == 300 && num(p, "n_test") == 30 && num(p, "n_train") == 270);
    assert_true(num(p, "accuracy") >= 0.95);
    const cJSON *cv = cJSON_GetObjectItem(p, "cv");
    assert_true(num(cv, "mean") >= 0.95 && num(cv, "folds") == 3 && num(cv, "repeats") == 1);
    const cJSON *top = cJSON_GetArrayItem(cJSON_GetObjectItem(p, "heads"), 0);
    assert_true(num(top, "layer") == PLANTED_LAYER && num(top, "head") == PLANTED_HEAD);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(p, "heads")), L * H);
    const cJSON *cv_top = cJSON_GetArrayItem(cJSON_GetObjectItem(cv, "heads"), 0);
    assert_true(num(cv_top, "layer") == PLANTED_LAYER && num(cv_top, "head") == PLANTED_HEAD);
    const cJSON *conf = cJSON_GetObjectItem(cJSON_GetObjectItem(p, "baselines"), "confidence");
    assert_true(num(conf, "accuracy") < 0.8 && num(conf, "threshold") >= 0 && num(conf, "threshold") <= 1);
    const cJSON *confusion = cJSON_GetObjectItem(p, "confusion");
    double cells = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) cells += cJSON_GetArrayItem(cJSON_GetArrayItem(confusion, a), b)->valuedouble;
    assert_true(cells == 30);

    const cJSON *rnd = task_of(j, "random");
    const cJSON *iv = cJSON_GetObjectItem(rnd, "interval");
    assert_true(cJSON_GetArrayItem(iv, 0)->valuedouble <= 0.5 && cJSON_GetArrayItem(iv, 1)->valuedouble >= 0.5);
    assert_true(fabs(num(cJSON_GetObjectItem(rnd, "cv"), "mean") - 0.5) < 0.1);

    const cJSON *one = task_of(j, "one_class");
    assert_non_null(strstr(cJSON_GetObjectItem(one, "skipped")->valuestring, "one class only"));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(one, "accuracy")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(one, "heads")), 0);

    const cJSON *few = task_of(j, "few"); /* 7 incorrect: a test split, but not 10 folds (checked below) */
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(few, "skipped")));

    const cJSON *all = task_of(j, "all");
    assert_true(num(all, "n") == total_samples());
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "tasks"), "all")->next == NULL); /* pooled last */

    assert_true(file_exists(out, "summary.csv") && file_exists(out, "heads_planted.csv") &&
                file_exists(out, "shap_planted.png") && file_exists(out, "shap_all.png"));
    assert_false(file_exists(out, "shap_one_class.png"));
    cJSON_Delete(j);
    free(text);

    /* one task, ten folds: the cross-validation is skipped with the reason */
    rc = tu_run(&text, "OMP_NUM_THREADS=1 %s --quiet classify --store %s --out %s --tasks few --folds 10 --json "
                "--max-rounds 150 2>&1",
                tu_apmae_bin(), store, out);
    if (rc != 0) fail_msg("apmae classify --tasks few exited %d: %s", rc, text);
    j = cJSON_Parse(text);
    assert_non_null(j);
    few = task_of(j, "few");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(few, "cv")));
    assert_non_null(strstr(cJSON_GetObjectItem(few, "cv_skipped")->valuestring, "too few samples for 10 folds"));
    assert_true(num(task_of(j, "all"), "n") == 40);
    cJSON_Delete(j);
    free(text);
    free(store);
    free(out);
}

/* Run apmae classify with extra flags; expect exit code 2 or 1 and the text on stderr. */
static void expect_error(const char *store, const char *flags, int code, const char *want) {
    char *out = tu_tmp_path("err_out"), *text = NULL;
    int rc = tu_run(&text, "%s classify --store %s --out %s %s 2>&1 >/dev/null", tu_apmae_bin(), store, out, flags);
    if (rc != code || !strstr(text, want))
        fail_msg("'classify %s' exited %d with '%s'; expected %d and '%s'", flags, rc, text, code, want);
    free(text);
    free(out);
}

static void test_bad_input(void **state) {
    (void)state;
    char *bare = make_store("bare.h5", 0), *store = make_store("good.h5", 1);
    expect_error(bare, "", 2, "no /clusters/labels");
    expect_error(store, "--tasks planted,nope", 2, "the store has no task 'nope' (it has: few, one_class, planted, random)");
    expect_error(store, "--tasks planted,planted", 2, "named twice");
    expect_error(store, "--folds 1", 2, "--folds 1");
    expect_error(store, "--test-fraction 0", 2, "--test-fraction: must be in (0, 1), got 0");
    expect_error(store, "--features embeddings", 2, "--features: 'embeddings' is not 'clusters'");
    expect_error("/nonexistent/x.h5", "", 1, "/nonexistent/x.h5");
    free(bare);
    free(store);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planted_store),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
