/* The report's sections, each from the outputs of the stages it shows:
 * run settings, the LM's accuracy, the pattern gallery and AP-MAE. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "apmae/classify.h"
#include "apmae/mae_train.h"
#include "apmae/study.h"
#include "internal.h"

static double num(const cJSON *o, const char *key) {
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, key));
}
static const char *str(const cJSON *o, const char *key) {
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* ---- run settings -------------------------------------------------------------------------------- */

static void config_rows(rp_out *o, const cJSON *obj, const char *prefix) {
    for (const cJSON *v = obj ? obj->child : NULL; v; v = v->next) {
        if (cJSON_IsObject(v)) {
            config_rows(o, v, v->string);
            continue;
        }
        rp_raw(o, "<tr><td><code>");
        if (prefix) rp_printf(o, "%s.", prefix);
        rp_text(o, v->string);
        rp_raw(o, "</code></td><td>");
        if (cJSON_IsString(v)) rp_text(o, v->valuestring);
        else if (cJSON_IsNumber(v)) rp_printf(o, "%.10g", v->valuedouble);
        else rp_raw(o, "null");
        rp_raw(o, "</td></tr>\n");
    }
}

void rp_section_settings(rp_out *o, const rp_study *s) {
    const char *file = str(s->record, "config_file");
    rp_raw(o, "<p>Study directory <code>");
    rp_text(o, s->dir);
    rp_raw(o, "</code>, config ");
    if (file) {
        rp_raw(o, "<code>");
        rp_text(o, file);
        rp_raw(o, "</code>");
    } else {
        rp_raw(o, "the built-in defaults");
    }
    rp_raw(o, ", apmae ");
    rp_text(o, str(s->record, "apmae_version"));
    rp_raw(o, ".");
    if (s->store) {
        const ap_store_meta *m = ap_store_get_meta(s->store);
        rp_raw(o, " Model <code>");
        rp_text(o, m->model_id);
        rp_printf(o, "</code>: %d layers &times; %d heads, N = %d tokens per scenario; the store holds %lld samples.",
                  m->num_layers, m->num_heads, m->n_tokens, (long long)ap_store_count(s->store));
    }
    rp_raw(o, "</p>\n<h3>Stages</h3>\n<table><tr><th>stage</th><th>state</th><th>time (s)</th><th>CPU (s)</th>"
              "<th>finished (UTC)</th><th>summary</th></tr>\n");
    for (int k = 0; k < AP_STAGE_COUNT; k++) {
        const char *name = ap_study_stage_name((ap_study_stage)k);
        const cJSON *rec = rp_stage(s, name);
        const char *recorded = rec ? str(rec, "state") : NULL, *state = recorded ? recorded : "not run";
        if (k == AP_STAGE_REPORT && recorded && strcmp(recorded, "running") == 0) state = "writing this page";
        rp_printf(o, "<tr><td>%s</td><td>%s</td><td class=\"num\">", name, state);
        rp_num(o, rec ? num(rec, "seconds") : NAN);
        rp_raw(o, "</td><td class=\"num\">");
        rp_num(o, rec ? num(rec, "cpu_seconds") : NAN);
        rp_raw(o, "</td><td>");
        rp_text(o, rec ? str(rec, "finished") : "");
        rp_raw(o, "</td><td>");
        rp_text(o, rec ? str(rec, "summary") : "");
        rp_raw(o, "</td></tr>\n");
    }
    rp_raw(o, "</table>\n<h3>Config</h3>\n<table><tr><th>field</th><th>value</th></tr>\n");
    config_rows(o, cJSON_GetObjectItemCaseSensitive(s->record, "config"), NULL);
    rp_raw(o, "</table>\n<p class=\"note\">docs/study.md explains every field.</p>\n");
}

/* ---- LM accuracy per task ------------------------------------------------------------------------ */

static void kept_counts(rp_out *o, const rp_study *s, const char *task, size_t *correct, size_t *wrong) {
    int64_t *idx = NULL;
    *correct = *wrong = 0;
    if (!o->st) o->st = ap_store_filter(s->store, task, 1, &idx, correct, o->err);
    free(idx);
    idx = NULL;
    if (!o->st) o->st = ap_store_filter(s->store, task, 0, &idx, wrong, o->err);
    free(idx);
}

void rp_section_lm_accuracy(rp_out *o, const rp_study *s) {
    cJSON *eval = rp_load_json(o, s, AP_STUDY_LM_EVAL);
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(eval, "scenarios");
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(sc, "tasks");
    if (!tasks) {
        rp_missing(o, s, "extract", "LM accuracy");
        cJSON_Delete(eval);
        return;
    }
    int n = cJSON_GetArraySize(tasks);
    const char **cats = calloc((size_t)n + 1, sizeof *cats);
    char (*names)[64] = calloc((size_t)n + 1, sizeof *names);
    double *acc = calloc(3 * ((size_t)n + 1), sizeof *acc), *lo = acc + n + 1, *hi = lo + n + 1;
    if (!cats || !names || !acc) {
        o->st = ap_fail(o->err, AP_ERR_NOMEM, "out of memory");
    } else {
        const cJSON *all = cJSON_GetObjectItemCaseSensitive(sc, "overall"), *t = tasks->child;
        for (int i = 0; i <= n; i++, t = t ? t->next : NULL) {
            const cJSON *row = i < n ? t : all;
            snprintf(names[i], sizeof names[i], "%s (%.0f)", i < n ? t->string : "all tasks", num(row, "n"));
            cats[i] = names[i];
            acc[i] = 100 * num(row, "accuracy");
            ap_wilson_interval((int64_t)num(row, "correct"), (int64_t)num(row, "n"), &lo[i], &hi[i]);
            lo[i] *= 100, hi[i] *= 100;
        }
        rp_printf(o, "<p>First-token accuracy of the model on every labelled scenario mined (%.0f; the noise task "
                  "has no label): the argmax of the logits at the last position equals the first token of the "
                  "cut-out target. In brackets: scenarios per task; whiskers: 95%% Wilson intervals.</p>\n",
                  num(all, "n"));
        rp_bar_chart c = {.title = "LM first-token accuracy per task",
                          .value = {.label = "accuracy (% of the task's scenarios)", .lo = 0, .hi = 100},
                          .categories = cats, .ncat = (size_t)n + 1, .nseries = 1, .v = acc, .lo = lo, .hi = hi,
                          .reference = NAN};
        rp_svg_bar_chart(o, &c);
    }
    if (s->store) {
        rp_raw(o, "<p>Samples kept in the pattern store (extraction balances each task: at most half of "
                  "<code>extract.samples_per_task</code> correct and half incorrect):</p>\n<table><tr><th>task</th>"
                  "<th>correct</th><th>incorrect</th></tr>\n");
        const ap_store_meta *m = ap_store_get_meta(s->store);
        for (size_t t = 0; t < m->ntasks && !o->st; t++) {
            size_t ok, bad;
            kept_counts(o, s, m->tasks[t], &ok, &bad);
            rp_raw(o, "<tr><td>");
            rp_text(o, m->tasks[t]);
            rp_printf(o, "</td><td class=\"num\">%zu</td><td class=\"num\">%zu</td></tr>\n", ok, bad);
        }
        rp_raw(o, "</table>\n");
    }
    free(cats);
    free(names);
    free(acc);
    cJSON_Delete(eval);
}

/* ---- pattern gallery ----------------------------------------------------------------------------- */

int rp_compose(rp_out *o, const rp_study *s, const rp_cell *cells, int rows, int cols, int target, int gap,
               void **png, size_t *len, int *tile) {
    const int N = s->N;
    int b, t;
    rp_thumb_size(N, target, &b, &t);
    int cell = t + gap;
    size_t W = (size_t)cols * cell, Ht = (size_t)rows * cell, stride = 3 * W;
    unsigned char *rgb = ap_malloc(stride * Ht, o->err);
    float *P = ap_malloc((size_t)N * N * sizeof *P, o->err), *block = ap_malloc((size_t)t * t * sizeof *block, o->err);
    *png = NULL;
    if (!rgb || !P || !block) o->st = AP_ERR_NOMEM;
    if (rgb) memset(rgb, 255, stride * Ht);
    for (int i = 0; i < rows * cols && !o->st; i++) {
        const rp_cell *c = &cells[i];
        if (c->cluster >= 0) o->st = ap_store_read_cluster_mean(s->store, c->layer, c->head, c->cluster, P, o->err);
        else if (c->sample >= 0) o->st = ap_store_read_pattern(s->store, c->sample, c->layer, c->head, P, o->err);
        else continue;
        if (!o->st) rp_thumbnail(P, N, b, rgb + (size_t)(i / cols) * cell * stride + 3 * (size_t)(i % cols) * cell,
                                 stride, block);
    }
    if (!o->st) o->st = ap_png_encode_rgb(rgb, (int)W, (int)Ht, png, len, o->err);
    free(rgb);
    free(P);
    free(block);
    *tile = t;
    return !o->st;
}

/* Every head's pattern as one image of L x H tiles: with clusters, the
 * medoid of each head's largest cluster framed in the colour of its kind;
 * without, the patterns of sample 0. */
static void gallery(rp_out *o, const rp_study *s) {
    const int L = s->L, H = s->H, gap = 2;
    rp_head_kinds kinds;
    int have_kinds = rp_head_kinds_load(o, s, &kinds);
    rp_cell *cells = ap_calloc((size_t)L * H, sizeof *cells, o->err);
    void *png = NULL;
    size_t len = 0;
    int tile = 0;
    if (!cells) o->st = AP_ERR_NOMEM;
    for (int i = 0; cells && i < L * H; i++)
        cells[i] = (rp_cell){.sample = have_kinds ? kinds.medoid[i] : 0, .layer = i / H, .head = i % H, .cluster = -1};
    /* tiles small enough that 48 heads fit the page's width */
    int target = H >= 40 ? 24 : H >= 24 ? 32 : 64;
    if (o->st || !rp_compose(o, s, cells, L, H, target, gap, &png, &len, &tile)) goto done;
    rp_tiles tiles = {.title = "An attention pattern of every head", .row_label = "layer", .col_label = "head",
                      .rows = L, .cols = H, .tile = tile, .gap = gap, .png = png, .png_len = len};
    const char *how = "Rows are query positions, columns key positions; each tile is a pattern averaged over "
                      "blocks and log-scaled like the AP-MAE's input (viridis: yellow is the largest attention in "
                      "the tile, dark purple the smallest, white above the diagonal).";
    if (have_kinds) {
        rp_printf(o, "<p>For every head, the medoid of its largest cluster: the sample whose pattern is the most "
                  "typical of what this head shows most often. The frame's colour is that cluster's kind "
                  "(docs/analysis.md names the kinds); hover a tile for all of the head's clusters. %s</p>\n", how);
        tiles.cat = (rp_categories){.of = kinds.kind, .names = kinds.names, .n = kinds.n_names};
        tiles.tooltip = (const char *const *)kinds.about;
    } else {
        ap_store_sample rec;
        if ((o->st = ap_store_read_sample(s->store, 0, &rec, NULL, o->err))) goto done;
        rp_raw(o, "<p>Every head's attention pattern for sample 0 (scenario <code>");
        rp_text(o, rec.id);
        rp_raw(o, "</code>, task ");
        rp_text(o, rec.task);
        rp_printf(o, ", completion %s); once the heads are clustered, the gallery shows each head's most common "
                  "pattern. %s</p>\n", rec.correct ? "correct" : "incorrect", how);
    }
    rp_svg_tiles(o, &tiles);
done:
    if (have_kinds) rp_head_kinds_free(&kinds, L * H);
    free(cells);
    free(png);
}

void rp_section_patterns(rp_out *o, const rp_study *s) {
    if (!s->store || ap_store_count(s->store) == 0) {
        rp_missing(o, s, "extract", "attention patterns");
        return;
    }
    if (!ap_store_has_patterns(s->store)) {
        rp_raw(o, "<p class=\"missing\">The store keeps embeddings only (no patterns), so there are no patterns "
                  "to show.</p>\n");
        return;
    }
    gallery(o, s);
}

/* ---- AP-MAE -------------------------------------------------------------------------------------- */

typedef struct curve {
    double *step, *loss, *smooth, *held_step, *held;
    size_t n, nheld;
} curve;

static void curve_free(curve *c) { free(c->step), free(c->loss), free(c->smooth), free(c->held_step), free(c->held); }

/* train_log.jsonl: one line per step, and the held-out loss at evaluation steps. */
static int read_curve(rp_out *o, const char *path, curve *c) {
    memset(c, 0, sizeof *c);
    char *text;
    size_t len;
    if (!ap_path_exists(path) || ap_read_file(path, &text, &len, NULL)) return 0;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    c->step = calloc(lines, sizeof(double)), c->loss = calloc(lines, sizeof(double));
    c->smooth = calloc(lines, sizeof(double)), c->held_step = calloc(lines, sizeof(double));
    c->held = calloc(lines, sizeof(double));
    if (!c->step || !c->loss || !c->smooth || !c->held_step || !c->held) {
        o->st = ap_fail(o->err, AP_ERR_NOMEM, "out of memory");
        free(text);
        return 0;
    }
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        cJSON *j = cJSON_Parse(line);
        double step = num(j, "step"), loss = num(j, "loss"), held = num(j, "heldout_loss");
        if (!isnan(step) && !isnan(loss)) c->step[c->n] = step, c->loss[c->n++] = loss;
        if (!isnan(step) && !isnan(held)) c->held_step[c->nheld] = step, c->held[c->nheld++] = held;
        cJSON_Delete(j);
        line = nl ? nl + 1 : line + strlen(line);
    }
    free(text);
    /* a trailing mean over ~1/30 of the run shows the trend through the per-step noise */
    size_t w = c->n / 30 + 1;
    double sum = 0;
    for (size_t i = 0; i < c->n; i++) {
        sum += c->loss[i];
        if (i >= w) sum -= c->loss[i - w];
        c->smooth[i] = sum / (double)(i + 1 < w ? i + 1 : w);
    }
    return c->n > 0 || c->nheld > 0;
}

static void training_curve(rp_out *o, const rp_study *s) {
    char *path = rp_path(o, s, AP_STUDY_MAE_DIR "/" AP_MAE_TRAIN_LOG);
    curve c = {0};
    if (path && read_curve(o, path, &c)) {
        rp_series series[3] = {
            {.name = "training batch loss", .x = c.step, .y = c.loss, .n = c.n, .thin = 1},
            {.name = "training loss, running mean", .x = c.step, .y = c.smooth, .n = c.n},
            {.name = "held-out loss", .x = c.held_step, .y = c.held, .n = c.nheld, .markers = 1},
        };
        rp_line_chart chart = {.title = "AP-MAE training",
                               .x = {.label = "training step", .lo = 0, .hi = NAN},
                               .y = {.label = "MSE on the masked patches (scaled pixels)", .log = 1, .lo = NAN,
                                     .hi = NAN},
                               .series = series,
                               .nseries = 3};
        rp_svg_line_chart(o, &chart);
    } else {
        rp_missing(o, s, "mae-train", "AP-MAE training curve");
    }
    curve_free(&c);
    free(path);
}

static void eval_row(rp_out *o, const char *label, const cJSON *r) {
    rp_raw(o, "<tr><td>");
    rp_text(o, label);
    rp_raw(o, "</td><td class=\"num\">");
    rp_num(o, num(r, "patterns"));
    rp_raw(o, "</td><td class=\"num\">");
    rp_num(o, num(r, "mse"));
    rp_raw(o, "</td><td class=\"num\">");
    rp_num(o, num(r, "baseline_mse"));
    rp_raw(o, "</td><td class=\"num\">");
    rp_num(o, num(r, "ratio"));
    rp_raw(o, "</td></tr>\n");
}

static const char *k_eval_head = "<tr><th></th><th>patterns</th><th>MSE</th><th>mean-patch baseline MSE</th>"
                                 "<th>ratio</th></tr>\n";

/* The ratio to the baseline of every head, as a layers x heads map. */
static void eval_head_map(rp_out *o, const rp_study *s, const cJSON *by_head) {
    size_t n = (size_t)s->L * s->H;
    double *v = malloc(n * sizeof *v);
    if (!v) {
        o->st = ap_fail(o->err, AP_ERR_NOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) v[i] = NAN;
    for (const cJSON *h = by_head->child; h; h = h->next) {
        int l, k;
        if (sscanf(h->string, "%d:%d", &l, &k) == 2 && l >= 0 && l < s->L && k >= 0 && k < s->H)
            v[(size_t)l * s->H + k] = num(h, "ratio");
    }
    rp_heatmap m = {.title = "AP-MAE reconstruction per head: MSE / mean-patch baseline MSE",
                    .row_label = "layer", .col_label = "head", .value_label = "ratio (lower: better)",
                    .rows = s->L, .cols = s->H, .v = v};
    rp_svg_heatmap(o, &m);
    free(v);
}

static void eval_tables(rp_out *o, const rp_study *s) {
    cJSON *ev = rp_load_json(o, s, AP_STUDY_MAE_EVAL_DIR "/eval.json");
    if (!ev) {
        rp_missing(o, s, "mae-eval", "AP-MAE evaluation");
        return;
    }
    rp_printf(o, "<p>Reconstruction of the masked patches of the held-out samples' patterns (%.0f samples): the "
              "AP-MAE's mean squared error against the mean-patch baseline, which predicts every masked patch as "
              "the mean of the image's visible patches (docs/mae.md). A ratio below 1 means the model learnt more "
              "than the average shape of a pattern.</p>\n<table>", num(ev, "samples"));
    rp_raw(o, k_eval_head);
    eval_row(o, "all held-out patterns", ev);
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(ev, "by_task");
    for (const cJSON *t = tasks ? tasks->child : NULL; t; t = t->next) eval_row(o, t->string, t);
    rp_raw(o, "</table>\n");
    const cJSON *by_head = cJSON_GetObjectItemCaseSensitive(ev, "by_head");
    if (by_head && s->L > 0) eval_head_map(o, s, by_head);
    const cJSON *figs = cJSON_GetObjectItemCaseSensitive(ev, "figures");
    if (cJSON_GetArraySize(figs) > 0)
        rp_raw(o, "<h3>Reconstructions</h3>\n<p>Each figure: the pattern (scaled), the visible input (masked "
                  "patches grey), the predicted masked patches, and visible plus predicted.</p>\n<div class=\"figures\">");
    for (const cJSON *f = figs ? figs->child : NULL; f && !o->st; f = f->next) {
        const char *base = strrchr(f->valuestring, '/');
        char name[512];
        snprintf(name, sizeof name, "%s/%s", AP_STUDY_MAE_EVAL_DIR, base ? base + 1 : f->valuestring);
        char *path = rp_path(o, s, name);
        if (path) rp_img_file(o, path, name);
        free(path);
    }
    if (cJSON_GetArraySize(figs) > 0) rp_raw(o, "</div>\n");
    cJSON_Delete(ev);
}

static void cross_model(rp_out *o, const rp_study *s) {
    rp_raw(o, "<h3>Cross-model check</h3>\n");
    cJSON *x = rp_load_json(o, s, AP_STUDY_MAE_EVAL_DIR "/cross.json");
    if (!x) {
        rp_raw(o, "<p class=\"missing\">No second model is configured (<code>cross_model</code>), so the AP-MAE was "
                  "not evaluated on another model's patterns.</p>\n");
        return;
    }
    const cJSON *seen = cJSON_GetObjectItemCaseSensitive(x, "seen");
    rp_raw(o, "<p>The AP-MAE on the patterns of a model it never saw (every sample) against its own model's "
              "held-out samples.</p>\n<table>");
    rp_raw(o, k_eval_head);
    char label[600];
    snprintf(label, sizeof label, "seen: %s", str(seen, "store_model_id") ? str(seen, "store_model_id") : "");
    eval_row(o, label, seen);
    snprintf(label, sizeof label, "unseen: %s", str(x, "store_model_id") ? str(x, "store_model_id") : "");
    eval_row(o, label, x);
    rp_raw(o, "</table>\n<p>Cross-model ratio (unseen MSE / seen MSE): <b>");
    rp_num(o, num(x, "cross_model_ratio"));
    rp_raw(o, "</b>.</p>\n");
    cJSON_Delete(x);
}

void rp_section_mae(rp_out *o, const rp_study *s) {
    training_curve(o, s);
    eval_tables(o, s);
    cross_model(o, s);
}
