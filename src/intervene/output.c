/* What an intervention run writes (docs/analysis.md "Interventions",
 * "Outputs"): intervene.json, intervene.csv, predictions.csv and the
 * accuracy-vs-n figure curves.svg. */
#include "internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

/* A text being built: writes append until one fails, later ones do
 * nothing, and st keeps the first failure, so a writer checks once. */
typedef struct text {
    ap_buf b;
    ap_status st;
    ap_error *err;
} text;

static void put(text *t, const char *fmt, ...) AP_PRINTF(2, 3);
static void put(text *t, const char *fmt, ...) {
    if (t->st) return;
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof small) {
        t->st = ap_buf_append(&t->b, small, (size_t)n, t->err);
        return;
    }
    char *big = n >= 0 ? ap_malloc((size_t)n + 1, t->err) : NULL;
    if (!big) {
        t->st = n < 0 ? ap_fail(t->err, AP_ERR_INTERNAL, "bad format string") : AP_ERR_NOMEM;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->st = ap_buf_append(&t->b, big, (size_t)n, t->err);
    free(big);
}

/* Write the text to path (atomically) unless building it failed. */
static ap_status text_save(text *t, const char *path) {
    ap_status st = t->st ? t->st : ap_write_file_atomic(path, t->b.data, t->b.len, t->err);
    ap_buf_free(&t->b);
    return st;
}

/* Exact two-sided binomial test of b flips one way against c the other
 * (McNemar's test on the discordant pairs): the chance of a split at least
 * this uneven if each flip went either way with probability 1/2. */
static double mcnemar_p(int64_t b, int64_t c) {
    int64_t m = b + c, lo = b < c ? b : c;
    if (m == 0) return 1.0;
    double sum = 0;
    for (int64_t k = 0; k <= lo; k++)
        sum += exp(lgamma((double)m + 1) - lgamma((double)k + 1) - lgamma((double)(m - k) + 1) - (double)m * log(2.0));
    return 2 * sum < 1 ? 2 * sum : 1.0;
}

void iv_outcome_of(const iv_exp *x, int r, iv_outcome *out) {
    memset(out, 0, sizeof *out);
    int set = x->runs[r].set;
    for (int64_t i = 0; i < x->nsc; i++) {
        int before = x->base_pred[i] == x->sc[i].label;
        int after = x->pred[(size_t)i * x->nsets + set] == x->sc[i].label;
        out->before += before;
        out->after += after;
        out->to_incorrect += before && !after;
        out->to_correct += !before && after;
    }
    out->mcnemar_p = mcnemar_p(out->to_incorrect, out->to_correct);
}

static double pct(int64_t k, int64_t n) { return n > 0 ? 100.0 * (double)k / (double)n : 0.0; }

/* Change in accuracy relative to the unablated accuracy, in percent (NaN when that is 0). */
static double relative_change(const iv_outcome *oc) {
    return oc->before > 0 ? 100.0 * (double)(oc->after - oc->before) / (double)oc->before : NAN;
}

/* ---- intervene.json ---- */

static void add_num_or_null(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static cJSON *i64_array(const int64_t *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
    return a;
}

/* Scenario indices whose outcome went from `from` to the other one in run r. */
static cJSON *flipped(const iv_exp *x, int r, int from) {
    cJSON *a = cJSON_CreateArray();
    int set = x->runs[r].set;
    for (int64_t i = 0; i < x->nsc; i++) {
        int before = x->base_pred[i] == x->sc[i].label;
        int after = x->pred[(size_t)i * x->nsets + set] == x->sc[i].label;
        if (before == from && after != from) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)i));
    }
    return a;
}

static cJSON *run_json(const iv_exp *x, int r) {
    const iv_run *run = &x->runs[r];
    iv_outcome oc;
    iv_outcome_of(x, r, &oc);
    cJSON *o = cJSON_CreateObject(), *heads = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "setting", ap_iv_setting_name(run->setting));
    cJSON_AddNumberToObject(o, "n", run->n);
    cJSON_AddNumberToObject(o, "n_heads", run->n_heads);
    cJSON_AddBoolToObject(o, "capped", run->n_heads < run->n);
    int ranked = 0;
    for (int i = 0; i < run->n_heads; i++) {
        const ap_head_shap *h = &x->shap[run->heads[i]];
        ranked += ap_iv_head_ranked(run->setting, h);
        cJSON_AddItemToArray(heads, ap_head_shap_json(h));
    }
    if (run->setting == AP_IV_POS_ONLY || run->setting == AP_IV_NEG_ONLY) cJSON_AddNumberToObject(o, "ranked", ranked);
    else cJSON_AddNullToObject(o, "ranked");
    if (run->n_heads > 0) cJSON_AddNumberToObject(o, "first_layer", run->first_layer);
    else cJSON_AddNullToObject(o, "first_layer");
    cJSON_AddItemToObject(o, "heads", heads);
    cJSON_AddNumberToObject(o, "correct_to_incorrect", (double)oc.to_incorrect);
    cJSON_AddNumberToObject(o, "incorrect_to_correct", (double)oc.to_correct);
    cJSON_AddNumberToObject(o, "correct_before", (double)oc.before);
    cJSON_AddNumberToObject(o, "correct_after", (double)oc.after);
    cJSON_AddNumberToObject(o, "accuracy_before", pct(oc.before, x->nsc));
    cJSON_AddNumberToObject(o, "accuracy_after", pct(oc.after, x->nsc));
    cJSON_AddNumberToObject(o, "change_pp", pct(oc.after, x->nsc) - pct(oc.before, x->nsc));
    add_num_or_null(o, "change_relative_pct", relative_change(&oc));
    cJSON_AddNumberToObject(o, "mcnemar_p", oc.mcnemar_p);
    cJSON_AddItemToObject(o, "flipped_to_incorrect", flipped(x, r, 1));
    cJSON_AddItemToObject(o, "flipped_to_correct", flipped(x, r, 0));
    return o;
}

static cJSON *scenarios_json(const iv_exp *x) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < x->nsc; i++) {
        const iv_scenario *s = &x->sc[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", s->id);
        cJSON_AddNumberToObject(e, x->o->scenarios_path ? "line" : "sample", (double)s->where);
        cJSON_AddNumberToObject(e, "label", s->label);
        cJSON_AddNumberToObject(e, "baseline_pred", x->base_pred[i]);
        cJSON_AddBoolToObject(e, "baseline_correct", x->base_pred[i] == s->label);
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

static cJSON *cost_json(const iv_exp *x, const ap_intervene_report *rep) {
    const ap_ablator_stats *s = &rep->stats;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "reuse", !x->o->no_reuse);
    cJSON_AddNumberToObject(o, "runs", x->nruns);
    cJSON_AddNumberToObject(o, "head_sets", x->nsets);
    cJSON_AddNumberToObject(o, "resumed_scenarios", (double)rep->resumed);
    cJSON_AddNumberToObject(o, "baseline_passes", (double)s->baseline_passes);
    cJSON_AddNumberToObject(o, "baseline_seconds", s->baseline_seconds);
    cJSON_AddNumberToObject(o, "ablated_passes", (double)s->passes);
    cJSON_AddNumberToObject(o, "ablated_seconds", s->seconds);
    add_num_or_null(o, "ablated_passes_per_second", s->seconds > 0 ? (double)s->passes / s->seconds : NAN);
    add_num_or_null(o, "layers_run_fraction",
                    s->layers_full > 0 ? (double)s->layers_run / (double)s->layers_full : NAN);
    cJSON_AddNumberToObject(o, "threads", ap_num_threads());
    cJSON_AddNumberToObject(o, "seconds", rep->seconds);
    return o;
}

static ap_status write_json(const iv_exp *x, const ap_intervene_report *rep, const char *path, ap_error *err) {
    const ap_intervene_opts *o = x->o;
    cJSON *j = cJSON_CreateObject(), *settings = cJSON_CreateArray(), *runs = cJSON_CreateArray();
    cJSON_AddStringToObject(j, "tool_version", AP_VERSION);
    cJSON_AddStringToObject(j, "model", o->model_dir);
    cJSON_AddStringToObject(j, "store", o->store_path);
    cJSON_AddStringToObject(j, "shap", o->shap_path);
    cJSON_AddStringToObject(j, "shap_set", o->shap_cv ? "cv" : "test");
    cJSON_AddStringToObject(j, "task", o->task);
    cJSON_AddNumberToObject(j, "num_layers", x->L);
    cJSON_AddNumberToObject(j, "num_heads", x->H);
    cJSON_AddNumberToObject(j, "target", o->target);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddItemToObject(j, "n_requested", i64_array(o->n, (int)o->n_count));
    cJSON_AddItemToObject(j, "n", i64_array(x->n, x->nn));
    for (int s = 0; s < AP_IV_SETTINGS; s++)
        if (x->order[s]) cJSON_AddItemToArray(settings, cJSON_CreateString(ap_iv_setting_name((ap_iv_setting)s)));
    cJSON_AddItemToObject(j, "settings", settings);
    cJSON_AddNumberToObject(j, "neutral_max", AP_IV_NEUTRAL_MAX);
    if (x->order[AP_IV_NEUTRAL]) cJSON_AddNumberToObject(j, "neutral_heads", x->navail[AP_IV_NEUTRAL]);
    cJSON *src = cJSON_CreateObject();
    if (o->scenarios_path) {
        cJSON_AddStringToObject(src, "from", "file");
        cJSON_AddStringToObject(src, "path", o->scenarios_path);
        cJSON_AddNumberToObject(src, "run_unablated", (double)x->drawn_read);
        cJSON_AddNumberToObject(src, "left_out_in_store", (double)x->drawn_in_store);
    } else {
        cJSON_AddStringToObject(src, "from", "store");
        cJSON_AddNumberToObject(src, "store_disagreements", (double)x->store_disagree);
    }
    cJSON_AddItemToObject(j, "scenario_source", src);
    cJSON *base = cJSON_CreateObject();
    cJSON_AddNumberToObject(base, "correct", (double)rep->baseline_correct);
    cJSON_AddNumberToObject(base, "scenarios", (double)x->nsc);
    cJSON_AddNumberToObject(base, "accuracy", pct(rep->baseline_correct, x->nsc));
    cJSON_AddItemToObject(j, "baseline", base);
    for (int r = 0; r < x->nruns; r++) cJSON_AddItemToArray(runs, run_json(x, r));
    cJSON_AddItemToObject(j, "runs", runs);
    cJSON_AddItemToObject(j, "scenarios", scenarios_json(x));
    cJSON_AddItemToObject(j, "cost", cost_json(x, rep));
    ap_status st = ap_json_save(path, j, err);
    cJSON_Delete(j);
    return st;
}

/* ---- CSV ---- */

static void csv_num(text *t, double v) {
    if (isfinite(v)) put(t, ",%.6g", v);
    else put(t, ",");
}

/* A CSV field: quoted, quotes doubled. */
static void csv_string(text *t, const char *s) {
    put(t, "\"");
    for (; *s; s++) put(t, *s == '"' ? "\"\"" : "%c", *s);
    put(t, "\"");
}

static ap_status write_runs_csv(const iv_exp *x, const char *path, ap_error *err) {
    text t = {.err = err};
    put(&t, "setting,n,n_heads,ranked,first_layer,correct_to_incorrect,incorrect_to_correct,accuracy_before,"
            "accuracy_after,change_pp,change_relative_pct,mcnemar_p,heads\n");
    for (int r = 0; r < x->nruns; r++) {
        const iv_run *run = &x->runs[r];
        iv_outcome oc;
        iv_outcome_of(x, r, &oc);
        int ranked = 0;
        for (int i = 0; i < run->n_heads; i++) ranked += ap_iv_head_ranked(run->setting, &x->shap[run->heads[i]]);
        put(&t, "%s,%d,%d,", ap_iv_setting_name(run->setting), run->n, run->n_heads);
        if (run->setting == AP_IV_POS_ONLY || run->setting == AP_IV_NEG_ONLY) put(&t, "%d", ranked);
        if (run->n_heads > 0) put(&t, ",%d", run->first_layer);
        else put(&t, ",");
        put(&t, ",%lld,%lld", (long long)oc.to_incorrect, (long long)oc.to_correct);
        csv_num(&t, pct(oc.before, x->nsc));
        csv_num(&t, pct(oc.after, x->nsc));
        csv_num(&t, pct(oc.after, x->nsc) - pct(oc.before, x->nsc));
        csv_num(&t, relative_change(&oc));
        csv_num(&t, oc.mcnemar_p);
        put(&t, ",");
        for (int i = 0; i < run->n_heads; i++) put(&t, i ? " %d:%d" : "%d:%d", run->heads[i] / x->H, run->heads[i] % x->H);
        put(&t, "\n");
    }
    return text_save(&t, path);
}

static ap_status write_predictions_csv(const iv_exp *x, const char *path, ap_error *err) {
    text t = {.err = err};
    put(&t, "scenario,id,label,baseline");
    for (int r = 0; r < x->nruns; r++) put(&t, ",%s/%d", ap_iv_setting_name(x->runs[r].setting), x->runs[r].n);
    put(&t, "\n");
    for (int64_t i = 0; i < x->nsc; i++) {
        put(&t, "%lld,", (long long)i);
        csv_string(&t, x->sc[i].id);
        put(&t, ",%d,%d", x->sc[i].label, x->base_pred[i]);
        for (int r = 0; r < x->nruns; r++) put(&t, ",%d", x->pred[(size_t)i * x->nsets + x->runs[r].set]);
        put(&t, "\n");
    }
    return text_save(&t, path);
}

/* ---- curves.svg: accuracy after ablation against n (log scale), per setting ---- */

enum { SVG_W = 740, SVG_H = 420, SVG_LEFT = 64, SVG_RIGHT = 170, SVG_TOP = 48, SVG_BOTTOM = 56 };

/* log10 of the x range */
typedef struct svg_axes {
    double lx0, lx1;
} svg_axes;

static double svg_x(const svg_axes *a, double n) {
    return SVG_LEFT + (log10(n) - a->lx0) / (a->lx1 - a->lx0) * (SVG_W - SVG_LEFT - SVG_RIGHT);
}

static double svg_y(double accuracy) { return SVG_TOP + (100.0 - accuracy) / 100.0 * (SVG_H - SVG_TOP - SVG_BOTTOM); }

/* Text with the XML specials escaped. */
static void svg_escaped(text *t, const char *s) {
    for (; *s; s++) put(t, "%s", *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : (char[2]){*s, 0});
}

/* Title, grid, ticks, axis labels and the unablated accuracy as a dashed line. */
static void svg_frame(const iv_exp *x, const svg_axes *a, double base, text *t) {
    int x0 = SVG_LEFT, x1 = SVG_W - SVG_RIGHT, y0 = SVG_TOP, y1 = SVG_H - SVG_BOTTOM;
    put(t,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
        "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
        "<text x=\"%d\" y=\"24\" font-size=\"14\" font-weight=\"bold\">",
        SVG_W, SVG_H, SVG_W, SVG_H, x0);
    svg_escaped(t, x->o->task);
    put(t, ": accuracy after ablating n heads (%lld scenarios)</text>\n", (long long)x->nsc);
    for (int v = 0; v <= 100; v += 20)
        put(t,
            "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" "
            "text-anchor=\"end\">%d</text>\n",
            x0, x1, svg_y(v), svg_y(v), x0 - 6, svg_y(v) + 4, v);
    for (int k = 0; k < x->nn; k++) {
        double px = svg_x(a, (double)x->n[k]);
        put(t,
            "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#000\"/><text x=\"%.1f\" y=\"%d\" "
            "text-anchor=\"middle\">%lld</text>\n",
            px, px, y1, y1 + 5, px, y1 + 18, (long long)x->n[k]);
    }
    put(t,
        "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#000\"/>\n"
        "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">heads ablated, n (log scale)</text>\n"
        "<text transform=\"translate(18 %d) rotate(-90)\" text-anchor=\"middle\">accuracy after (%%)</text>\n"
        "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"5 4\"/>\n",
        x0, y0, x1 - x0, y1 - y0, (x0 + x1) / 2, SVG_H - 16, (y0 + y1) / 2, x0, x1, svg_y(base), svg_y(base));
}

/* A legend row at the right of the plot. */
static void svg_legend(text *t, int row, const char *colour, const char *dash, const char *name) {
    int ly = SVG_TOP + 12 + 20 * row, lx = SVG_W - SVG_RIGHT + 14;
    put(t,
        "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"%s\"/>"
        "<text x=\"%d\" y=\"%d\">%s</text>\n",
        lx, lx + 22, ly, ly, colour, dash, lx + 28, ly + 4, name);
}

static ap_status write_svg(const iv_exp *x, const ap_intervene_report *rep, const char *path, ap_error *err) {
    /* Okabe and Ito's colour-blind safe palette */
    static const char *const colour[AP_IV_SETTINGS] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7"};
    double lo = (double)x->n[0], hi = (double)x->n[x->nn - 1];
    svg_axes a = {log10(lo) - 0.08, log10(hi > lo ? hi : lo * 10) + 0.08};
    text t = {.err = err};
    svg_frame(x, &a, pct(rep->baseline_correct, x->nsc), &t);
    int row = 0, capped = 0;
    for (int s = 0; s < AP_IV_SETTINGS; s++) {
        if (!x->order[s]) continue;
        text dots = {.err = err};
        put(&t, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colour[s]);
        for (int r = 0; r < x->nruns; r++) {
            if (x->runs[r].setting != (ap_iv_setting)s) continue;
            iv_outcome oc;
            iv_outcome_of(x, r, &oc);
            double px = svg_x(&a, x->runs[r].n), py = svg_y(pct(oc.after, x->nsc));
            put(&t, "%.1f,%.1f ", px, py);
            /* hollow: a capped run, fewer heads than its n */
            put(&dots, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" stroke=\"%s\" stroke-width=\"1.5\"/>\n",
                px, py, x->runs[r].n_heads < x->runs[r].n ? "white" : colour[s], colour[s]);
            capped |= x->runs[r].n_heads < x->runs[r].n;
        }
        put(&t, "\"/>\n");
        if (dots.st) t.st = dots.st;
        else if (dots.b.len) put(&t, "%.*s", (int)dots.b.len, dots.b.data);
        ap_buf_free(&dots.b);
        svg_legend(&t, row++, colour[s], "none", ap_iv_setting_name((ap_iv_setting)s));
    }
    svg_legend(&t, row++, "#555", "5 4", "unablated");
    if (capped)
        put(&t, "<circle cx=\"%d\" cy=\"%d\" r=\"3.5\" fill=\"white\" stroke=\"#555\" stroke-width=\"1.5\"/>"
                "<text x=\"%d\" y=\"%d\">fewer heads than n</text>\n",
            SVG_W - SVG_RIGHT + 25, SVG_TOP + 12 + 20 * row, SVG_W - SVG_RIGHT + 42, SVG_TOP + 16 + 20 * row);
    put(&t, "</svg>\n");
    return text_save(&t, path);
}

ap_status iv_write_outputs(const iv_exp *x, const ap_intervene_report *rep, ap_error *err) {
    static const char *const names[] = {"intervene.json", "intervene.csv", "predictions.csv", "curves.svg"};
    ap_status st = AP_OK;
    for (int k = 0; k < 4 && !st; k++) {
        char *path = ap_path_join(x->o->out_dir, names[k], err);
        if (!path) return AP_ERR_NOMEM;
        st = k == 0   ? write_json(x, rep, path, err)
             : k == 1 ? write_runs_csv(x, path, err)
             : k == 2 ? write_predictions_csv(x, path, err)
                      : write_svg(x, rep, path, err);
        free(path);
    }
    return st;
}
