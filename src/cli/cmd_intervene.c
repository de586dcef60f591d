/* apmae intervene: switch heads off by their SHAP ranking and measure what
 * happens to the model's completions (docs/analysis.md "Interventions"). */
#include "apmae/intervene.h"
#include "apmae/io.h"
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static const cli_flag k_flags[] = {
    {"--model", CLI_PATH, "DIR", "the LM (the model of the store and of the SHAP ranking)", .required = 1},
    {"--store", CLI_PATH, "S.h5", "the study store: the task's scenarios (or, with --scenarios, the ids to leave out)",
     .required = 1},
    {"--shap", CLI_PATH, "DIR/results.json", "results of apmae classify: the per-head SHAP figures of --task",
     .required = 1},
    {"--task", CLI_STRING, "T", "the task (not noise: its scenarios have no right answer)", .required = 1},
    {"--target", CLI_INT, "K", "K correct and K incorrect scenarios (unablated)", .required = 1, .range = "1..1000000"},
    {"--n", CLI_INT_LIST, "N,...", "heads per ablated set (capped at layers x heads)",
     .def = "1,2,5,10,20,50,100,200,400,600,800", .range = "1.."},
    {"--settings", CLI_CHOICES, NULL, "which heads: by SHAP rank (pos_only, neg_only) or drawn (neutral, random)",
     .choices = "pos_only|neg_only|neutral|random", .def = "pos_only,neg_only,neutral,random"},
    {"--seed", CLI_INT, "S", "scenario draw, ties of the ranking, neutral and random draws", .def = "1", .range = "0.."},
    {"--scenarios", CLI_PATH, "F.jsonl", "draw the scenarios afresh from this file (apmae mine), leaving out the store's"},
    {"--shap-set", CLI_CHOICE, NULL, "rank by classify's test-split figures or its cross-validation's",
     .choices = "test|cv", .def = "test"},
    {"--no-reuse", CLI_SWITCH, NULL, "run every ablated pass from the embedding (to check and time the reuse)"},
    {"--out", CLI_PATH, "DIR", "intervene.json, intervene.csv, predictions.csv, curves.svg (created if missing)",
     .required = 1},
    {0},
};

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
    size_t nn;
    const int64_t *n = cli_ints(a, "--n", &nn);
    ap_intervene_opts o = {
        .model_dir = cli_str(a, "--model"),
        .store_path = cli_str(a, "--store"),
        .shap_path = cli_str(a, "--shap"),
        .task = cli_str(a, "--task"),
        .scenarios_path = cli_str(a, "--scenarios"),
        .out_dir = cli_str(a, "--out"),
        .target = (int)cli_int(a, "--target"),
        .n = n,
        .n_count = nn,
        .settings = cli_choices(a, "--settings"), /* bit i = choice i = ap_iv_setting i */
        .seed = (uint64_t)cli_int(a, "--seed"),
        .shap_cv = cli_choice(a, "--shap-set") == 1,
        .no_reuse = cli_switch(a, "--no-reuse"),
    };
    ap_intervene_report rep;
    ap_status st = ap_intervene(&o, &rep, err);
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

static const cli_spec k_spec = {
    .name = "intervene",
    .summary = "switch heads off by their SHAP ranking; flips and accuracy per setting and n",
    .description =
        "Zero the output (P.v before o_proj) of the n heads each setting picks from the task's SHAP ranking and\n"
        "count, over K correct and K incorrect scenarios, the completions that flip each way. Settings: pos_only\n"
        "(highest mean positive SHAP), neg_only (most negative mean SHAP), neutral (heads with |mean SHAP| <= 1e-5,\n"
        "drawn at random), random (any heads, drawn at random). Prints one line per (setting, n) with the change in\n"
        "accuracy and McNemar's p; a run killed at any moment continues when started again with the same flags.",
    .docs = "docs/analysis.md",
    .flags = k_flags,
    .run = run,
};

int cmd_intervene(int argc, char **argv) { return cli_run(&k_spec, argc, argv); }
