/* apmae intervene: switch heads off by their SHAP ranking and measure what
 * happens to the model's completions (docs/analysis.md "Interventions"). */
#include "apmae/intervene.h"
#include "apmae/io.h"
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_N "1,2,5,10,20,50,100,200,400,600,800"

static const cli_flag k_flags[] = {
    {"--model", "DIR", "the LM (the model of the store and of the SHAP ranking)", 1},
    {"--store", "S.h5", "the study store: the task's scenarios (or, with --scenarios, the ids to leave out)", 1},
    {"--shap", "DIR/results.json", "results of apmae classify: the per-head SHAP figures of --task", 1},
    {"--task", "T", "the task (not noise: its scenarios have no right answer)", 1},
    {"--target", "K", "K correct and K incorrect scenarios (unablated)", 1},
    {"--n", "N,...", "heads per ablated set, each >= 1, capped at layers x heads (default " DEFAULT_N ")", 0},
    {"--settings", "S,...", "pos_only, neg_only, neutral, random (default all four)", 0},
    {"--seed", "S", "scenario draw, ties of the ranking, neutral and random draws (default 1)", 0},
    {"--scenarios", "F.jsonl", "draw the scenarios afresh from this file (apmae mine), leaving out the store's", 0},
    {"--shap-set", "test|cv", "rank by classify's test-split figures (default) or its cross-validation's", 0},
    {"--no-reuse", NULL, "run every ablated pass from the embedding (to check and time the reuse)", 0},
    {"--out", "DIR", "output directory: intervene.json, intervene.csv, predictions.csv, curves.svg", 1},
    {NULL, NULL, NULL, 0},
};
static const cli_spec k_spec = {
    "apmae intervene --model LM --store S.h5 --shap DIR/results.json --task T --target K [--n 1,2,5,...]\n"
    "                [--settings pos_only,neg_only,neutral,random] [--seed S] [--scenarios F.jsonl] --out DIR",
    "Zero the output (P.v before o_proj) of the n heads each setting picks from the task's SHAP ranking and\n"
    "count, over K correct and K incorrect scenarios, the completions that flip each way. Settings: pos_only\n"
    "(highest mean positive SHAP), neg_only (most negative mean SHAP), neutral (heads with |mean SHAP| <= 1e-5,\n"
    "drawn at random), random (any heads, drawn at random). Prints one line per (setting, n); a run killed at\n"
    "any moment continues when started again with the same flags. See docs/analysis.md.",
    k_flags,
};

static ap_status parse_settings(const char *s, unsigned *mask, ap_error *err) {
    *mask = 0;
    const char *p = s;
    for (;;) {
        size_t len = strcspn(p, ",");
        int found = -1;
        for (int k = 0; k < AP_IV_SETTINGS; k++)
            if (strlen(ap_iv_setting_name((ap_iv_setting)k)) == len &&
                strncmp(p, ap_iv_setting_name((ap_iv_setting)k), len) == 0)
                found = k;
        if (found < 0)
            return ap_fail(err, AP_ERR_ARG, "--settings: '%.*s' is not one of pos_only, neg_only, neutral, random",
                           (int)len, p);
        *mask |= 1u << found;
        if (!p[len]) return AP_OK;
        p += len + 1;
    }
}

static void print_summary(const char *json_path) {
    cJSON *j;
    ap_error err = {0};
    if (ap_json_load(json_path, &j, &err)) return;
    printf("%-9s %5s %5s %5s %5s %8s %8s %9s %9s\n", "setting", "n", "heads", "c->i", "i->c", "before", "after",
           "change", "p");
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "runs")) {
        double v[8];
        const char *keys[8] = {"n", "n_heads", "correct_to_incorrect", "incorrect_to_correct", "accuracy_before",
                               "accuracy_after", "change_pp", "mcnemar_p"};
        for (int k = 0; k < 8; k++) v[k] = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, keys[k]));
        printf("%-9s %5.0f %5.0f %5.0f %5.0f %7.1f%% %7.1f%% %+7.1fpp %9.3g\n",
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "setting")), v[0], v[1], v[2], v[3], v[4],
               v[5], v[6], v[7]);
    }
    cJSON_Delete(j);
}

static ap_status run(const cli_args *a, ap_error *err) {
    ap_intervene_opts o = {
        .model_dir = cli_get(a, "--model"),
        .store_path = cli_get(a, "--store"),
        .shap_path = cli_get(a, "--shap"),
        .task = cli_get(a, "--task"),
        .scenarios_path = cli_get(a, "--scenarios"),
        .out_dir = cli_get(a, "--out"),
        .seed = 1,
        .no_reuse = cli_has(a, "--no-reuse"),
        .settings = (1u << AP_IV_SETTINGS) - 1,
    };
    int64_t target, seed, *n = NULL;
    size_t nn;
    ap_status st;
    if ((st = ap_parse_i64(cli_get(a, "--target"), "--target", &target, err))) return st;
    if (target < 1 || target > 1000000)
        return ap_fail(err, AP_ERR_ARG, "--target %lld: needs 1..1000000 scenarios of each outcome", (long long)target);
    o.target = (int)target;
    if (cli_has(a, "--seed")) {
        if ((st = ap_parse_i64(cli_get(a, "--seed"), "--seed", &seed, err))) return st;
        o.seed = (uint64_t)seed;
    }
    if (cli_has(a, "--settings") && (st = parse_settings(cli_get(a, "--settings"), &o.settings, err))) return st;
    const char *set = cli_has(a, "--shap-set") ? cli_get(a, "--shap-set") : "test";
    if (strcmp(set, "test") != 0 && strcmp(set, "cv") != 0)
        return ap_fail(err, AP_ERR_ARG, "--shap-set: '%s' is not test or cv", set);
    o.shap_cv = strcmp(set, "cv") == 0;
    if ((st = ap_parse_i64_list(cli_has(a, "--n") ? cli_get(a, "--n") : DEFAULT_N, "--n", &n, &nn, err))) return st;
    o.n = n;
    o.n_count = nn;
    ap_intervene_report rep;
    st = ap_intervene(&o, &rep, err);
    free(n);
    if (st) return st;
    char *json = ap_path_join(o.out_dir, "intervene.json", err);
    if (!json) return AP_ERR_NOMEM;
    print_summary(json);
    free(json);
    const ap_ablator_stats *s = &rep.stats;
    ap_info("%lld scenarios (unablated accuracy %.1f%%), %d runs over %d distinct head sets; %lld ablated passes in "
            "%.1f s (%.1f/s, %s, %.0f%% of the layers run)%s",
            (long long)rep.scenarios, 100.0 * (double)rep.baseline_correct / (double)rep.scenarios, rep.runs,
            rep.head_sets, (long long)s->passes, s->seconds, s->seconds > 0 ? (double)s->passes / s->seconds : 0.0,
            o.no_reuse ? "no reuse" : "reusing the unablated pass",
            s->layers_full ? 100.0 * (double)s->layers_run / (double)s->layers_full : 0.0,
            rep.resumed ? " after resuming" : "");
    return AP_OK;
}

int cmd_intervene(int argc, char **argv) {
    cli_args a;
    ap_error err = {0};
    int r = cli_parse(&k_spec, argc, argv, &a, &err);
    if (r != 0) return r > 0 ? 0 : cli_report(&err);
    return run(&a, &err) ? cli_report(&err) : 0;
}
