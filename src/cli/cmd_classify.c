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
    {"--store", CLI_PATH, "S.h5", "store with /clusters/labels (apmae cluster)", .required = 1},
    {"--out", CLI_PATH, "DIR", "results.json, summary.csv, heads_<task>.csv, shap_<task>.png (created if missing)",
     .required = 1},
    {"--tasks", CLI_STRING, "all|T1,T2", "tasks to classify one by one and pooled as 'all'", .def = "all"},
    {"--features", CLI_CHOICE, NULL, "the features: the L*H cluster ids of a sample (the only kind)",
     .choices = "clusters", .def = "clusters"},
    {"--seed", CLI_INT, "S", "test split, folds and XGBoost", .def = "42", .range = "0.."},
    {"--test-fraction", CLI_REAL, "F", "held-out test part of each class", .def = "0.1", .range = "(0, 1)"},
    {"--folds", CLI_INT, "K", "repeated stratified K-fold cross-validation; 0 = none", .def = "5", .range = "0..1000"},
    {"--repeats", CLI_INT, "R", "repetitions of the K-fold split", .def = "5", .range = "1..1000"},
    {"--max-rounds", CLI_INT, "N", "boosting rounds at most (early stopping usually ends sooner)", .def = "1000",
     .range = "1..100000"},
    {"--json", CLI_SWITCH, NULL, "print results.json on stdout instead of the table"},
    {0},
};

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
    ap_classify_opts o = {.store = cli_str(a, "--store"), .out_dir = cli_str(a, "--out"), .tasks = cli_str(a, "--tasks")};
    ap_classify_params_default(&o.params);
    o.params.seed = o.params.gbt.seed = (uint64_t)cli_int(a, "--seed");
    o.params.test_fraction = cli_real(a, "--test-fraction");
    o.params.folds = (int)cli_int(a, "--folds");
    o.params.repeats = (int)cli_int(a, "--repeats");
    o.params.gbt.max_rounds = (int)cli_int(a, "--max-rounds");
    ap_status st;
    if ((st = ap_classify_store(&o, err))) return st;
    char *path = ap_path_join(o.out_dir, "results.json", err);
    cJSON *j = NULL;
    st = path ? ap_json_load(path, &j, err) : AP_ERR_NOMEM;
    if (st == AP_OK && cli_switch(a, "--json")) {
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

static const cli_spec k_spec = {
    .name = "classify",
    .summary = "predict correctness from the per-head cluster ids, with baselines and SHAP per head",
    .description =
        "From each sample's cluster ids alone (one categorical feature per layer and head, noise its own category)\n"
        "predict whether the model's completion was correct, with gradient-boosted trees (XGBoost: depth 6, learning\n"
        "rate 0.1, up to 1000 rounds, early stopping after 25 on 10% of the training part). Per task and pooled: the\n"
        "test accuracy on a stratified held-out split with its 95% interval, the majority-class and LM-confidence\n"
        "(max softmax probability) baselines, the confusion matrix, repeated K-fold cross-validation, and every\n"
        "head's SHAP contributions on the test part, ranked. A task with one class only or too few samples is\n"
        "skipped with the reason in results.json.",
    .docs = "docs/analysis.md",
    .flags = k_flags,
    .run = run,
};

int cmd_classify(int argc, char **argv) { return cli_run(&k_spec, argc, argv); }
