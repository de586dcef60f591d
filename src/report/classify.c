/* The classification and SHAP sections, from the classify stage's
 * results.json (docs/analysis.md "Classify"): accuracy per task beside its
 * baselines with intervals, and the heads ranked by their SHAP values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/study.h"
#include "internal.h"

#define TOP_HEADS 10

static double num(const cJSON *o, const char *key) {
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, key));
}
static const cJSON *obj(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

/* A run's figures; NaN where it has none (a skipped run, no cross-validation). */
typedef struct run_figures {
    double acc, lo, hi, cv, cv_sd, majority, confidence;
} run_figures;

static run_figures figures_of(const cJSON *t) {
    const cJSON *iv = obj(t, "interval"), *cv = obj(t, "cv"), *base = obj(t, "baselines");
    const cJSON *cvb = obj(cv, "baselines");
    run_figures f = {num(t, "accuracy"), cJSON_GetNumberValue(cJSON_GetArrayItem(iv, 0)),
                     cJSON_GetNumberValue(cJSON_GetArrayItem(iv, 1)), num(cv, "mean"), num(cv, "sd"),
                     cvb ? num(cvb, "majority") : num(base, "majority"),
                     cvb ? num(cvb, "confidence") : num(obj(base, "confidence"), "accuracy")};
    return f;
}

static void pct(rp_out *o, double v) {
    if (isnan(v)) rp_raw(o, "–");
    else rp_printf(o, "%.1f", 100 * v);
}

static int skipped(const cJSON *t) { return cJSON_GetStringValue(obj(t, "skipped")) != NULL; }

/* The runs that were not skipped (the table lists those that were). */
static void accuracy_chart(rp_out *o, const cJSON *tasks) {
    int n = 0;
    for (const cJSON *t = tasks->child; t; t = t->next) n += !skipped(t);
    if (n == 0) return;
    const char **cats = calloc((size_t)n, sizeof *cats);
    double *v = calloc((size_t)n * 4, sizeof *v), *lo = calloc((size_t)n * 4, sizeof *lo);
    double *hi = calloc((size_t)n * 4, sizeof *hi);
    if (!cats || !v || !lo || !hi) {
        o->st = ap_fail(o->err, AP_ERR_NOMEM, "out of memory");
    } else {
        int i = 0;
        for (const cJSON *t = tasks->child; t; t = t->next) {
            if (skipped(t)) continue;
            run_figures f = figures_of(t);
            cats[i] = t->string;
            double row[4][3] = {{f.acc, f.lo, f.hi},
                                {f.cv, f.cv - f.cv_sd, f.cv + f.cv_sd},
                                {f.confidence, NAN, NAN},
                                {f.majority, NAN, NAN}};
            for (int k = 0; k < 4; k++)
                v[i * 4 + k] = 100 * row[k][0], lo[i * 4 + k] = 100 * row[k][1], hi[i * 4 + k] = 100 * row[k][2];
            i++;
        }
        const char *series[4] = {"clusters, test split (95% interval)", "clusters, cross-validation (mean ± sd)",
                                 "LM-confidence baseline", "majority baseline"};
        rp_bar_chart c = {.title = "Predicting correctness from the clusters, per task",
                          .value = {.label = "accuracy (% of the held-out samples)", .lo = 0, .hi = 100},
                          .categories = cats, .ncat = (size_t)n, .series = series, .nseries = 4, .v = v, .lo = lo,
                          .hi = hi, .reference = 50, .reference_label = "chance (balanced)"};
        rp_svg_bar_chart(o, &c);
    }
    free(cats), free(v), free(lo), free(hi);
}

static void head_list(rp_out *o, const cJSON *heads, int count) {
    int k = 0;
    for (const cJSON *h = heads ? heads->child : NULL; h && k < count; h = h->next, k++)
        rp_printf(o, "%sL%.0fH%.0f", k ? " " : "", num(h, "layer"), num(h, "head"));
}

static void accuracy_table(rp_out *o, const cJSON *tasks) {
    rp_raw(o, "<table><tr><th>task</th><th>samples (correct)</th><th>test accuracy %</th><th>95% interval</th>"
              "<th>CV mean ± sd %</th><th>confidence baseline %</th><th>majority baseline %</th>"
              "<th>CV gain over confidence (wins/losses)</th><th>top heads</th></tr>\n");
    for (const cJSON *t = tasks->child; t; t = t->next) {
        run_figures f = figures_of(t);
        rp_raw(o, "<tr><td>");
        rp_text(o, t->string);
        rp_printf(o, "</td><td class=\"num\">%.0f (%.0f)</td>", num(t, "n"), num(t, "n_correct"));
        const char *why = cJSON_GetStringValue(obj(t, "skipped"));
        if (why) {
            rp_raw(o, "<td colspan=\"7\" class=\"note\">skipped: ");
            rp_text(o, why);
            rp_raw(o, "</td></tr>\n");
            continue;
        }
        rp_raw(o, "<td class=\"num\">");
        pct(o, f.acc);
        rp_raw(o, "</td><td class=\"num\">");
        pct(o, f.lo);
        rp_raw(o, "–");
        pct(o, f.hi);
        rp_raw(o, "</td><td class=\"num\">");
        pct(o, f.cv);
        rp_raw(o, " ± ");
        pct(o, f.cv_sd);
        rp_raw(o, "</td><td class=\"num\">");
        pct(o, f.confidence);
        rp_raw(o, "</td><td class=\"num\">");
        pct(o, f.majority);
        rp_raw(o, "</td><td class=\"num\">");
        const cJSON *gain = obj(obj(t, "cv"), "gain_over_confidence");
        if (gain) {
            rp_printf(o, "%+.1f ± ", 100 * num(gain, "mean"));
            pct(o, num(gain, "sd"));
            rp_printf(o, " (%.0f/%.0f)", num(gain, "wins"), num(gain, "losses"));
        } else {
            rp_raw(o, "–");
        }
        rp_raw(o, "</td><td><code>");
        head_list(o, obj(t, "heads"), 3);
        rp_raw(o, "</code></td></tr>\n");
    }
    rp_raw(o, "</table>\n");
}

void rp_section_classify(rp_out *o, const rp_study *s) {
    cJSON *r = rp_load_json(o, s, AP_STUDY_CLASSIFY_DIR "/results.json");
    const cJSON *tasks = obj(r, "tasks");
    if (!tasks) {
        rp_missing(o, s, "classify", "classification");
        cJSON_Delete(r);
        return;
    }
    const cJSON *gbt = obj(r, "gbt");
    rp_printf(o, "<p>From a sample's per-head cluster ids alone (%.0f categorical features), gradient-boosted trees "
              "(XGBoost: depth %.0f, learning rate %g, up to %.0f rounds with early stopping after %.0f) predict "
              "whether the LM's completion was correct (docs/analysis.md). Per task and pooled (<code>all</code>): a "
              "stratified test split of %.0f%% (seed %.0f) with its accuracy and 95%% Wilson interval, and %.0f "
              "times repeated stratified %.0f-fold cross-validation (mean ± sd of the fold accuracies). The "
              "baselines are fitted on the same training part: the majority class, and a threshold on the LM's "
              "own largest softmax probability. The clusters tell something only where they beat both.</p>\n",
              num(r, "num_layers") * num(r, "num_heads"), num(gbt, "max_depth"), num(gbt, "learning_rate"),
              num(gbt, "max_rounds"), num(gbt, "early_stopping"), 100 * num(r, "test_fraction"), num(r, "seed"),
              num(r, "repeats"), num(r, "folds"));
    accuracy_chart(o, tasks);
    accuracy_table(o, tasks);
    cJSON_Delete(r);
}

/* ---- SHAP --------------------------------------------------------------------------------------- */

static void shap_maps(rp_out *o, const rp_study *s, const cJSON *heads, const char *which) {
    size_t n = (size_t)s->L * s->H;
    double *total = malloc(n * sizeof *total), *abs_ = malloc(n * sizeof *abs_);
    char **tip = calloc(n, sizeof *tip);
    if (!total || !abs_ || !tip) o->st = ap_fail(o->err, AP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; total && abs_ && i < n; i++) total[i] = abs_[i] = NAN;
    int rank = 0;
    for (const cJSON *h = heads->child; h && !o->st; h = h->next) {
        int l = (int)num(h, "layer"), k = (int)num(h, "head");
        rank++;
        if (l < 0 || l >= s->L || k < 0 || k >= s->H) continue;
        size_t i = (size_t)l * s->H + k;
        total[i] = num(h, "mean_total"), abs_[i] = num(h, "mean_abs");
        ap_buf b = {0};
        ap_buf_printf(&b, NULL, "layer %d, head %d: rank %d; mean |SHAP| %.4g, mean %.4g (positive %.4g, negative %.4g)",
                      l, k, rank, abs_[i], total[i], num(h, "mean_pos"), num(h, "mean_neg"));
        tip[i] = b.data;
    }
    char title[160];
    snprintf(title, sizeof title, "How much each head matters: mean |SHAP| (%s)", which);
    rp_heatmap m = {.title = title, .row_label = "layer", .col_label = "head", .value_label = "log-odds",
                    .rows = s->L, .cols = s->H, .v = abs_, .tooltip = (const char *const *)tip};
    if (!o->st) rp_svg_heatmap(o, &m);
    snprintf(title, sizeof title, "Which way each head pushes: mean SHAP (%s)", which);
    m.title = title;
    m.value_label = "log-odds (red: towards correct)";
    m.v = total;
    m.diverging = 1;
    m.tooltip = NULL; /* the value alone: the figures and rank are on the first map */
    if (!o->st) rp_svg_heatmap(o, &m);
    for (size_t i = 0; tip && i < n; i++) free(tip[i]);
    free(tip), free(total), free(abs_);
}

static void top_table(rp_out *o, const cJSON *heads) {
    rp_raw(o, "<table><tr><th>rank</th><th>layer</th><th>head</th><th>mean |SHAP|</th><th>mean SHAP</th>"
              "<th>mean positive</th><th>mean negative</th></tr>\n");
    int k = 0;
    for (const cJSON *h = heads->child; h && k < TOP_HEADS; h = h->next, k++) {
        rp_printf(o, "<tr><td class=\"num\">%d</td><td class=\"num\">%.0f</td><td class=\"num\">%.0f</td>", k + 1,
                  num(h, "layer"), num(h, "head"));
        static const char *const fields[] = {"mean_abs", "mean_total", "mean_pos", "mean_neg"};
        for (int f = 0; f < 4; f++) {
            rp_raw(o, "<td class=\"num\">");
            rp_num(o, num(h, fields[f]));
            rp_raw(o, "</td>");
        }
        rp_raw(o, "</tr>\n");
    }
    rp_raw(o, "</table>\n");
}

void rp_section_shap(rp_out *o, const rp_study *s) {
    cJSON *r = rp_load_json(o, s, AP_STUDY_CLASSIFY_DIR "/results.json");
    const cJSON *all = obj(obj(r, "tasks"), "all");
    const cJSON *cv_heads = obj(obj(all, "cv"), "heads"), *heads = cJSON_GetArraySize(cv_heads) > 0 ? cv_heads
                                                                                                     : obj(all, "heads");
    if (!heads || cJSON_GetArraySize(heads) == 0 || s->L == 0) {
        rp_missing(o, s, "classify", "SHAP values");
        cJSON_Delete(r);
        return;
    }
    const char *which = heads == cv_heads ? "all tasks pooled, over the cross-validation folds"
                                          : "all tasks pooled, on the test split";
    rp_printf(o, "<p>TreeSHAP contributions of each head's cluster id to the classifier's log-odds of a correct "
              "completion (%s; docs/analysis.md defines the four figures). A head that matters has a large mean "
              "|SHAP|; its mean SHAP says whether its clusters push towards correct (red) or incorrect (blue) on "
              "average. Hover a cell for its figures and rank.</p>\n", which);
    shap_maps(o, s, heads, which);
    int shown = cJSON_GetArraySize(heads) < TOP_HEADS ? cJSON_GetArraySize(heads) : TOP_HEADS;
    rp_printf(o, "<h3>The %d heads that matter most</h3>\n", shown);
    top_table(o, heads);
    cJSON_Delete(r);
}
