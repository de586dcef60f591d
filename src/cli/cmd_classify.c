/* apmae classify: predict correctness from the per-head cluster ids, per
 * task and pooled, with baselines, intervals, cross-validation and SHAP per
 * head (docs/analysis.md "Classify"). */
#include "apmae/classify.h"
#include "apmae/io.h"
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cli_flag k_flags[] = {
    {"--store", "S.h5", "store with /clusters/labels (apmae cluster)", 1},
    {"--out", "DIR", "results.json, summary.csv, heads_<task>.csv, shap_<task>.png (created if missing)", 1},
    {"--tasks", "all|T1,T2", "tasks to classify one by one and pooled as 'all' (default all)", 0},
    {"--features", "clusters", "the features: the L*H cluster ids of a sample (the only kind)", 0},
    {"--seed", "S", "test split, folds and XGBoost (default 42)", 0},
    {"--test-fraction", "F", "held-out test part of each class (default 0.1)", 0},
    {"--folds", "K", "repeated stratified K-fold cross-validation; 0 = none (default 5)", 0},
    {"--repeats", "R", "repetitions of the K-fold split (default 5)", 0},
    {"--max-rounds", "N", "boosting rounds at most (default 1000; early stopping usually ends sooner)", 0},
    {"--json", NULL, "print results.json on stdout instead of the table", 0},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_spec = {
    "apmae classify --store S.h5 --out DIR [--tasks all|T1,T2] [--seed 42] [--test-fraction 0.1] [--folds K] "
    "[--repeats R] [--max-rounds N] [--json]",
    "From each sample's cluster ids alone (one categorical feature per layer and head, noise its own category) "
    "predict whether the model's completion was correct, with gradient-boosted trees (XGBoost: depth 6, learning "
    "rate 0.1, up to 1000 rounds, early stopping after 25 on 10% of the training part). Per task and pooled: the "
    "test accuracy on a stratified held-out split with its 95% interval, the majority-class and LM-confidence "
    "(max softmax probability) baselines, the confusion matrix, repeated K-fold cross-validation, and every head's "
    "SHAP contributions on the test part, ranked. A task with one class only or too few samples is skipped with "
    "the reason in results.json.",
    k_flags,
};

static ap_status get_int(const cli_args *a, const char *flag, int64_t lo, int64_t hi, int64_t *out, ap_error *err) {
    if (!cli_has(a, flag)) return AP_OK;
    ap_status st = ap_parse_i64(cli_get(a, flag), flag, out, err);
    if (st == AP_OK && (*out < lo || *out > hi))
        st = ap_fail(err, AP_ERR_ARG, "%s: %lld is outside %lld..%lld", flag, (long long)*out, (long long)lo,
                     (long long)hi);
    return st;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* One line per task from results.json. */
static void print_table(const cJSON *j) {
    printf("%-22s %6s %6s %22s %8s %10s %15s %10s  %s\n", "task", "n", "test", "accuracy [95% interval]", "majority",
           "confidence", "cv mean +- sd", "cv conf.", "top heads (SHAP)");
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(j, "tasks");
    for (const cJSON *t = tasks ? tasks->child : NULL; t; t = t->next) {
        const cJSON *skipped = cJSON_GetObjectItemCaseSensitive(t, "skipped");
        if (cJSON_IsString(skipped)) {
            printf("%-22s %6.0f  skipped: %s\n", t->string, num(t, "n"), skipped->valuestring);
            continue;
        }
        const cJSON *iv = cJSON_GetObjectItemCaseSensitive(t, "interval"),
                    *base = cJSON_GetObjectItemCaseSensitive(t, "baselines"),
                    *cv = cJSON_GetObjectItemCaseSensitive(t, "cv");
        const cJSON *cvbase = cJSON_GetObjectItemCaseSensitive(cv, "baselines");
        char cvtext[32] = "-", cvconf[16] = "-", heads[64] = "";
        if (cJSON_IsObject(cv)) {
            snprintf(cvtext, sizeof cvtext, "%.3f +- %.3f", num(cv, "mean"), num(cv, "sd"));
            snprintf(cvconf, sizeof cvconf, "%.3f", num(cvbase, "confidence"));
        }
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(t, "heads")->child;
        for (int k = 0; h && k < 3; k++, h = h->next) {
            size_t len = strlen(heads);
            snprintf(heads + len, sizeof heads - len, "%sL%.0fH%.0f", k ? " " : "", num(h, "layer"), num(h, "head"));
        }
        printf("%-22s %6.0f %6.0f %7.3f [%.3f, %.3f] %8.3f %10.3f %15s %10s  %s\n", t->string, num(t, "n"),
               num(t, "n_test"), num(t, "accuracy"), cJSON_GetArrayItem(iv, 0)->valuedouble,
               cJSON_GetArrayItem(iv, 1)->valuedouble, num(base, "majority"),
               num(cJSON_GetObjectItemCaseSensitive(base, "confidence"), "accuracy"), cvtext, cvconf, heads);
    }
}

static ap_status run(const cli_args *a, ap_error *err) {
    ap_classify_opts o = {.store = cli_get(a, "--store"), .out_dir = cli_get(a, "--out"), .tasks = cli_get(a, "--tasks")};
    ap_classify_params_default(&o.params);
    const char *features = cli_get(a, "--features");
    if (features && strcmp(features, "clusters") != 0)
        return ap_fail(err, AP_ERR_ARG, "--features '%s': the only features are 'clusters'", features);
    int64_t seed = (int64_t)o.params.seed, folds = o.params.folds, repeats = o.params.repeats,
            rounds = o.params.gbt.max_rounds;
    ap_status st;
    if ((st = get_int(a, "--seed", 0, INT64_MAX, &seed, err)) || (st = get_int(a, "--folds", 0, 1000, &folds, err)) ||
        (st = get_int(a, "--repeats", 1, 1000, &repeats, err)) ||
        (st = get_int(a, "--max-rounds", 1, 100000, &rounds, err)))
        return st;
    if (cli_has(a, "--test-fraction") &&
        (st = ap_parse_f64(cli_get(a, "--test-fraction"), "--test-fraction", &o.params.test_fraction, err)))
        return st;
    o.params.seed = (uint64_t)seed;
    o.params.gbt.seed = (uint64_t)seed;
    o.params.folds = (int)folds;
    o.params.repeats = (int)repeats;
    o.params.gbt.max_rounds = (int)rounds;
    if ((st = ap_classify_store(&o, err))) return st;
    char *path = ap_path_join(o.out_dir, "results.json", err);
    cJSON *j = NULL;
    st = path ? ap_json_load(path, &j, err) : AP_ERR_NOMEM;
    if (st == AP_OK && cli_has(a, "--json")) {
        char *text = cJSON_Print(j);
        if (text) printf("%s\n", text);
        else st = ap_fail(err, AP_ERR_NOMEM, "out of memory");
        free(text);
    } else if (st == AP_OK) {
        print_table(j);
    }
    cJSON_Delete(j);
    free(path);
    return st;
}

int cmd_classify(int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(&k_spec, argc, argv, &a, &err);
    if (r > 0) return 0;
    if (r < 0 || a.npositional > 0) {
        if (r == 0) ap_fail(&err, AP_ERR_ARG, "unexpected argument '%s'; see --help", a.positional[0]);
        return cli_report(&err);
    }
    return run(&a, &err) == AP_OK ? 0 : cli_report(&err);
}
