/* The interventions section: per task, the accuracy after switching off n
 * heads against n, one curve per setting beside the unablated accuracy,
 * and a table of the runs (flips, change, McNemar's p). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/study.h"
#include "internal.h"

static const cJSON *member(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }
static double number(const cJSON *o, const char *key) { return cJSON_GetNumberValue(member(o, key)); }

/* One task's accuracy-vs-n chart: a series per setting (runs in intervene.json
 * order, which is ascending n within a setting) and the unablated accuracy. */
static void curves(rp_out *o, const char *task, const cJSON *iv) {
    const cJSON *runs = member(iv, "runs"), *settings = member(iv, "settings");
    int nruns = cJSON_GetArraySize(runs), ns = cJSON_GetArraySize(settings);
    double *x = calloc((size_t)(ns + 1) * (size_t)(nruns + 2), sizeof *x);
    double *y = calloc((size_t)(ns + 1) * (size_t)(nruns + 2), sizeof *y);
    rp_series *series = calloc((size_t)ns + 1, sizeof *series);
    if (!x || !y || !series) {
        o->st = ap_fail(o->err, AP_ERR_NOMEM, "out of memory");
        free(x), free(y), free(series);
        return;
    }
    double lo = INFINITY, hi = 0;
    int k = 0;
    for (const cJSON *setting = settings ? settings->child : NULL; setting; setting = setting->next, k++) {
        rp_series *sr = &series[k];
        sr->name = setting->valuestring;
        sr->x = x + (size_t)k * (size_t)(nruns + 2);
        sr->y = y + (size_t)k * (size_t)(nruns + 2);
        sr->markers = 1;
        const cJSON *r;
        cJSON_ArrayForEach(r, runs) {
            double n = number(r, "n_heads");
            if (strcmp(cJSON_GetStringValue(member(r, "setting")), sr->name) != 0 || !(n >= 1)) continue;
            ((double *)sr->x)[sr->n] = n;
            ((double *)sr->y)[sr->n++] = number(r, "accuracy_after");
            lo = fmin(lo, n), hi = fmax(hi, n);
        }
    }
    rp_series *base = &series[ns];
    double before = number(member(iv, "baseline"), "accuracy");
    double *bx = x + (size_t)ns * (size_t)(nruns + 2), *by = y + (size_t)ns * (size_t)(nruns + 2);
    bx[0] = isfinite(lo) ? lo : 1, bx[1] = hi > bx[0] ? hi : bx[0] + 1, by[0] = by[1] = before;
    *base = (rp_series){.name = "unablated", .x = bx, .y = by, .n = 2, .thin = 1};
    char title[160];
    snprintf(title, sizeof title, "%s: accuracy with n heads switched off", task);
    rp_line_chart c = {.title = title,
                       .x = {.label = "heads switched off, n (log scale)", .log = 1, .lo = NAN, .hi = NAN},
                       .y = {.label = "accuracy (%)", .lo = 0, .hi = 100},
                       .series = series,
                       .nseries = (size_t)ns + 1};
    rp_svg_line_chart(o, &c);
    free(x), free(y), free(series);
}

static void runs_table(rp_out *o, const cJSON *iv) {
    rp_raw(o, "<table><tr><th>setting</th><th>n</th><th>first layer</th><th>correct → incorrect</th>"
              "<th>incorrect → correct</th><th>accuracy after (%)</th><th>change (pp)</th><th>McNemar p</th></tr>\n");
    const cJSON *r;
    cJSON_ArrayForEach(r, member(iv, "runs")) {
        rp_raw(o, "<tr><td>");
        rp_text(o, cJSON_GetStringValue(member(r, "setting")));
        static const char *const keys[] = {"n_heads", "first_layer", "correct_to_incorrect", "incorrect_to_correct",
                                           "accuracy_after", "change_pp", "mcnemar_p"};
        rp_raw(o, "</td>");
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            rp_raw(o, "<td class=\"num\">");
            rp_num(o, number(r, keys[i]));
            rp_raw(o, "</td>");
        }
        rp_raw(o, "</tr>\n");
    }
    rp_raw(o, "</table>\n");
}

static void task_part(rp_out *o, const rp_study *s, const char *task) {
    char name[160];
    snprintf(name, sizeof name, AP_STUDY_INTERVENE_DIR "/%s/intervene.json", task);
    cJSON *iv = rp_load_json(o, s, name);
    rp_raw(o, "<h3>");
    rp_text(o, task);
    rp_raw(o, "</h3>\n");
    if (!iv) {
        rp_missing(o, s, "intervene", "intervention of this task");
        return;
    }
    const cJSON *base = member(iv, "baseline");
    rp_printf(o, "<p>%.0f scenarios (%.0f correct unablated), heads ranked by the task's SHAP figures of the %s; "
              "%.0f of the model's heads count as neutral.</p>\n", number(base, "scenarios"), number(base, "correct"),
              strcmp(cJSON_GetStringValue(member(iv, "shap_set")), "cv") == 0 ? "cross-validation" : "test split",
              number(iv, "neutral_heads"));
    curves(o, task, iv);
    runs_table(o, iv);
    cJSON_Delete(iv);
}

void rp_section_intervene(rp_out *o, const rp_study *s) {
    cJSON *index = rp_load_json(o, s, AP_STUDY_INTERVENE_TASKS);
    const cJSON *tasks = member(index, "tasks"), *left_out = member(index, "left_out");
    if (!index) {
        rp_missing(o, s, "intervene", "interventions");
        return;
    }
    rp_raw(o, "<p>Heads switched off (their attention output zeroed before the output projection, at every "
              "position) in sets of n chosen from a task's SHAP ranking: <b>pos_only</b> the n heads of largest "
              "mean positive SHAP, <b>neg_only</b> the n of most negative mean SHAP, <b>neutral</b> n drawn among "
              "the heads whose mean SHAP is about 0, <b>random</b> n drawn among all heads "
              "(docs/analysis.md, \"Interventions\"). Each task runs on an equal number of scenarios the model "
              "completed correctly and incorrectly, so the unablated accuracy (the thin line) is about 50%. A point "
              "above that line means switching those heads off fixed more completions than it broke.</p>\n");
    if (cJSON_GetArraySize(tasks) == 0)
        rp_printf(o, "<p class=\"missing\">No task had %.0f correct and %.0f incorrect samples in the store "
                  "(intervene.target).</p>\n", number(index, "target"), number(index, "target"));
    for (const cJSON *t = tasks ? tasks->child : NULL; t && !o->st; t = t->next) task_part(o, s, t->valuestring);
    if (cJSON_GetArraySize(left_out) > 0) {
        rp_raw(o, "<p class=\"note\">Left out: ");
        for (const cJSON *t = left_out->child; t; t = t->next) {
            rp_text(o, t->string);
            rp_raw(o, " (");
            rp_text(o, t->valuestring);
            rp_raw(o, t->next ? "), " : ").");
        }
        rp_raw(o, "</p>\n");
    }
    cJSON_Delete(index);
}
