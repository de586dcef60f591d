/* apmae classify over a store: per task and pooled, the protocol of
 * classify.c on the samples' /clusters/labels, written as results.json, CSV
 * tables and SHAP head maps (docs/analysis.md). */
#include "apmae/classify.h"
#include "apmae/io.h"
#include "apmae/store.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What the store gives the classifier: every sample's features and outcome. */
typedef struct samples {
    int64_t S;
    int L, H;
    int32_t *labels; /* [S, L*H] */
    uint8_t *correct;
    float *max_prob;
    const char **task; /* point into the store */
} samples;

typedef struct task_run {
    const char *name;
    ap_classify_result r;
} task_run;

static void samples_free(samples *d) {
    free(d->labels);
    free(d->correct);
    free(d->max_prob);
    free(d->task);
}

/* The samples the clustering run covered (the store's first S_c) with
 * their labels, correctness, confidence and task. */
static ap_status read_samples(ap_store *s, samples *d, ap_error *err) {
    const ap_store_meta *m = ap_store_get_meta(s);
    const ap_store_clusters_info *ci = ap_store_clusters_info_of(s);
    *d = (samples){.L = m->num_layers, .H = m->num_heads};
    if (!ci)
        return ap_fail(err, AP_ERR_ARG, "%s: no /clusters/labels: cluster the store first (apmae cluster)",
                       ap_store_path(s));
    d->S = ci->samples;
    if (d->S == 0) return ap_fail(err, AP_ERR_ARG, "%s: the clustering covers no samples", ap_store_path(s));
    if (ap_store_count(s) > d->S)
        ap_warn("%s: %lld samples were added after the clustering; only its first %lld are classified",
                ap_store_path(s), (long long)(ap_store_count(s) - d->S), (long long)d->S);
    const size_t S = (size_t)d->S;
    d->labels = ap_malloc(S * (size_t)d->L * d->H * sizeof *d->labels, err);
    d->correct = ap_malloc(S, err);
    d->max_prob = ap_malloc(S * sizeof *d->max_prob, err);
    d->task = ap_malloc(S * sizeof *d->task, err);
    if (!d->labels || !d->correct || !d->max_prob || !d->task) return AP_ERR_NOMEM;
    ap_status st = ap_store_read_cluster_labels(s, d->labels, err);
    for (int64_t i = 0; st == AP_OK && i < d->S; i++) {
        ap_store_sample r;
        st = ap_store_read_sample(s, i, &r, NULL, err);
        d->correct[i] = (uint8_t)(r.correct != 0);
        d->max_prob[i] = r.max_prob;
        d->task[i] = r.task;
    }
    return st;
}

static int name_in(const char *name, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0) return 1;
    return 0;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The tasks to classify: the store's distinct task names, sorted ("all"),
 * or the listed ones in their order, each checked against the store. The
 * names point into the store or into sel_copy (caller frees both). */
static ap_status select_tasks(const samples *d, const char *sel, const char ***out, size_t *nout, char **sel_copy,
                              ap_error *err) {
    const char **have = ap_malloc(((size_t)d->S + 1) * sizeof *have, err);
    if (!have) return AP_ERR_NOMEM;
    size_t nhave = 0;
    for (int64_t i = 0; i < d->S; i++)
        if (!name_in(d->task[i], have, nhave)) have[nhave++] = d->task[i];
    qsort(have, nhave, sizeof *have, cmp_name);
    *out = have;
    *nout = nhave;
    if (name_in("all", have, nhave))
        return ap_fail(err, AP_ERR_ARG, "a task named 'all' clashes with the pooled results' name 'all'");
    if (!sel || strcmp(sel, "all") == 0) return AP_OK;
    if (!(*sel_copy = ap_strdup(sel, err))) return AP_ERR_NOMEM;
    const char **want = ap_malloc((strlen(sel) / 2 + 2) * sizeof *want, err);
    if (!want) return AP_ERR_NOMEM;
    size_t nwant = 0;
    ap_status st = AP_OK;
    for (char *tok = *sel_copy, *next; st == AP_OK && tok; tok = next) {
        if ((next = strchr(tok, ','))) *next++ = '\0';
        if (!*tok || strcmp(tok, "all") == 0) {
            st = ap_fail(err, AP_ERR_ARG, "--tasks '%s': give 'all' alone or task names separated by commas", sel);
        } else if (name_in(tok, want, nwant)) {
            st = ap_fail(err, AP_ERR_ARG, "--tasks: task '%s' is named twice", tok);
        } else if (!name_in(tok, have, nhave)) {
            ap_buf list = {0};
            for (size_t i = 0; i < nhave; i++) ap_buf_printf(&list, NULL, "%s%s", i ? ", " : "", have[i]);
            st = ap_fail(err, AP_ERR_ARG, "--tasks: the store has no task '%s' (it has: %s)", tok,
                         list.data ? list.data : "none");
            ap_buf_free(&list);
        } else {
            want[nwant++] = tok;
        }
    }
    free(have);
    *out = want;
    *nout = nwant;
    return st;
}

typedef struct progress_ctx {
    ap_progress bar;
    int64_t before; /* fits of the data sets done before this one */
} progress_ctx;

static void on_fit(void *ctx, int64_t done, int64_t total) {
    progress_ctx *p = ctx;
    (void)total;
    ap_progress_update(&p->bar, p->before + done, NULL);
}

/* Classify the samples of one task (NULL: of every selected task). */
static ap_status run_one(const samples *d, const char *task, const char *const *tasks, size_t ntasks,
                         const ap_classify_params *p, progress_ctx *pc, ap_classify_result *out, ap_error *err) {
    const int F = d->L * d->H;
    int32_t *x = ap_malloc((size_t)d->S * F * sizeof *x, err);
    uint8_t *y = ap_malloc((size_t)d->S, err);
    float *mp = ap_malloc((size_t)d->S * sizeof *mp, err);
    ap_status st = x && y && mp ? AP_OK : AP_ERR_NOMEM;
    int64_t n = 0;
    for (int64_t i = 0; st == AP_OK && i < d->S; i++) {
        if (task ? strcmp(d->task[i], task) != 0 : !name_in(d->task[i], tasks, ntasks)) continue;
        memcpy(x + (size_t)n * F, d->labels + (size_t)i * F, (size_t)F * sizeof *x);
        y[n] = d->correct[i];
        mp[n++] = d->max_prob[i];
    }
    if (st == AP_OK) st = ap_classify(x, y, mp, n, d->L, d->H, p, on_fit, pc, out, err);
    if (st != AP_OK) ap_error_prefix(err, "task %s: ", task ? task : "all");
    pc->before += ap_classify_fits(p);
    free(x);
    free(y);
    free(mp);
    return st;
}

/* ---- outputs ------------------------------------------------------------------------------ */

static cJSON *pair(double a, double b) {
    cJSON *v = cJSON_CreateArray();
    cJSON_AddItemToArray(v, cJSON_CreateNumber(a));
    cJSON_AddItemToArray(v, cJSON_CreateNumber(b));
    return v;
}

static cJSON *heads_json(const ap_head_shap *heads, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const ap_head_shap *h = &heads[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "layer", h->layer);
        cJSON_AddNumberToObject(e, "head", h->head);
        cJSON_AddNumberToObject(e, "mean_pos", h->mean_pos);
        cJSON_AddNumberToObject(e, "mean_neg", h->mean_neg);
        cJSON_AddNumberToObject(e, "mean_total", h->mean_total);
        cJSON_AddNumberToObject(e, "mean_abs", h->mean_abs);
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

static cJSON *cv_json(const ap_cv_result *cv, int nheads) {
    cJSON *o = cJSON_CreateObject(), *base = cJSON_CreateObject(), *gain = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "folds", cv->folds);
    cJSON_AddNumberToObject(o, "repeats", cv->repeats);
    cJSON_AddNumberToObject(o, "mean", cv->mean);
    cJSON_AddNumberToObject(o, "sd", cv->sd);
    cJSON_AddNumberToObject(base, "majority", cv->majority_mean);
    cJSON_AddNumberToObject(base, "confidence", cv->confidence_mean);
    cJSON_AddItemToObject(o, "baselines", base);
    cJSON_AddNumberToObject(gain, "mean", cv->gain_mean);
    cJSON_AddNumberToObject(gain, "sd", cv->gain_sd);
    cJSON_AddNumberToObject(gain, "wins", cv->wins);
    cJSON_AddNumberToObject(gain, "losses", cv->losses);
    cJSON_AddItemToObject(o, "gain_over_confidence", gain);
    cJSON_AddNumberToObject(o, "shap_sum_error", cv->shap_sum_error);
    cJSON_AddItemToObject(o, "heads", heads_json(cv->heads, nheads));
    return o;
}

static cJSON *task_json(const ap_classify_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", (double)r->n);
    cJSON_AddNumberToObject(o, "n_correct", (double)r->n_correct);
    cJSON_AddNumberToObject(o, "n_train", (double)r->n_train);
    cJSON_AddNumberToObject(o, "n_test", (double)r->n_test);
    if (r->skipped[0]) {
        cJSON_AddStringToObject(o, "skipped", r->skipped);
        const char *absent[] = {"accuracy", "interval", "cv", "cv_skipped", "baselines", "confusion", "best_iteration"};
        for (size_t i = 0; i < sizeof absent / sizeof *absent; i++) cJSON_AddNullToObject(o, absent[i]);
        cJSON_AddItemToObject(o, "heads", cJSON_CreateArray());
        return o;
    }
    cJSON_AddNullToObject(o, "skipped");
    cJSON_AddNumberToObject(o, "accuracy", r->accuracy);
    cJSON_AddItemToObject(o, "interval", pair(r->lo, r->hi));
    if (r->has_cv) cJSON_AddItemToObject(o, "cv", cv_json(&r->cv, r->nheads));
    else cJSON_AddNullToObject(o, "cv");
    if (r->cv_skipped[0]) cJSON_AddStringToObject(o, "cv_skipped", r->cv_skipped);
    else cJSON_AddNullToObject(o, "cv_skipped");
    cJSON *base = cJSON_CreateObject(), *conf = cJSON_CreateObject();
    cJSON_AddNumberToObject(base, "majority", r->majority);
    cJSON_AddNumberToObject(conf, "accuracy", r->confidence);
    cJSON_AddNumberToObject(conf, "threshold", r->confidence_threshold);
    cJSON_AddItemToObject(base, "confidence", conf);
    cJSON_AddItemToObject(o, "baselines", base);
    cJSON *confusion = cJSON_CreateArray();
    for (int t = 0; t < 2; t++)
        cJSON_AddItemToArray(confusion, pair((double)r->confusion[t][0], (double)r->confusion[t][1]));
    cJSON_AddItemToObject(o, "confusion", confusion);
    cJSON_AddNumberToObject(o, "best_iteration", r->best_iteration);
    cJSON_AddNumberToObject(o, "rounds", r->rounds);
    cJSON_AddNumberToObject(o, "shap_sum_error", r->shap_sum_error);
    cJSON_AddItemToObject(o, "heads", heads_json(r->heads, r->nheads));
    return o;
}

static ap_status write_results_json(const ap_classify_opts *o, const ap_store_meta *m, const task_run *runs,
                                    size_t nruns, ap_error *err) {
    const ap_classify_params *p = &o->params;
    cJSON *j = cJSON_CreateObject(), *gbt = cJSON_CreateObject(), *tasks = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "store", o->store);
    cJSON_AddStringToObject(j, "model_id", m->model_id);
    cJSON_AddNumberToObject(j, "num_layers", m->num_layers);
    cJSON_AddNumberToObject(j, "num_heads", m->num_heads);
    cJSON_AddStringToObject(j, "features", "clusters");
    cJSON_AddStringToObject(j, "categories", "cluster c >= 0 -> category c + 1; noise (-1) -> category 0");
    cJSON_AddNumberToObject(j, "seed", (double)p->seed);
    cJSON_AddNumberToObject(j, "test_fraction", p->test_fraction);
    cJSON_AddNumberToObject(j, "eval_fraction", p->eval_fraction);
    cJSON_AddNumberToObject(j, "folds", p->folds);
    cJSON_AddNumberToObject(j, "repeats", p->repeats);
    cJSON_AddStringToObject(gbt, "engine", "xgboost");
    cJSON_AddNumberToObject(gbt, "max_rounds", p->gbt.max_rounds);
    cJSON_AddNumberToObject(gbt, "max_depth", p->gbt.max_depth);
    cJSON_AddNumberToObject(gbt, "learning_rate", p->gbt.learning_rate);
    cJSON_AddNumberToObject(gbt, "early_stopping", p->gbt.early_stopping);
    cJSON_AddItemToObject(j, "gbt", gbt);
    cJSON_AddStringToObject(j, "tool_version", AP_VERSION);
    for (size_t i = 0; i < nruns; i++) cJSON_AddItemToObject(tasks, runs[i].name, task_json(&runs[i].r));
    cJSON_AddItemToObject(j, "tasks", tasks);
    char *path = ap_path_join(o->out_dir, "results.json", err);
    ap_status st = path ? ap_json_save(path, j, err) : AP_ERR_NOMEM;
    free(path);
    cJSON_Delete(j);
    return st;
}

/* A task name as a file name: characters other than letters, digits, '-',
 * '_' and '.' become '_'. */
static void file_stem(const char *task, char *out, size_t cap) {
    size_t i = 0;
    for (; task[i] && i + 1 < cap; i++) {
        char c = task[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                 c == '_' || (c == '.' && i > 0);
        out[i] = ok ? c : '_';
    }
    out[i] = '\0';
}

static ap_status write_text(const char *dir, const char *name, const ap_buf *b, ap_error *err) {
    char *path = ap_path_join(dir, name, err);
    ap_status st = path ? ap_write_file_atomic(path, b->data ? b->data : "", b->len, err) : AP_ERR_NOMEM;
    free(path);
    return st;
}

static ap_status write_summary_csv(const char *dir, const task_run *runs, size_t nruns, ap_error *err) {
    ap_buf b = {0};
    ap_status st = ap_buf_printf(&b, err,
                                 "task,n,n_correct,n_train,n_test,skipped,accuracy,interval_lo,interval_hi,majority,"
                                 "confidence,confidence_threshold,cv_folds,cv_repeats,cv_mean,cv_sd,cv_majority,"
                                 "cv_confidence,cv_gain_mean,cv_gain_sd,cv_wins,cv_losses,best_iteration,top_heads\n");
    for (size_t i = 0; st == AP_OK && i < nruns; i++) {
        const ap_classify_result *r = &runs[i].r;
        st = ap_buf_printf(&b, err, "%s,%lld,%lld,%lld,%lld,", runs[i].name, (long long)r->n, (long long)r->n_correct,
                           (long long)r->n_train, (long long)r->n_test);
        if (st == AP_OK && r->skipped[0]) {
            /* the reason without commas, so the row keeps its columns */
            char reason[sizeof r->skipped];
            snprintf(reason, sizeof reason, "%s", r->skipped);
            for (char *c = reason; *c; c++)
                if (*c == ',' || *c == '\n') *c = ';';
            st = ap_buf_printf(&b, err, "%s,,,,,,,,,,,,,,,,,,\n", reason);
            continue;
        }
        if (st == AP_OK)
            st = ap_buf_printf(&b, err, ",%.4f,%.4f,%.4f,%.4f,%.4f,%.6g,", r->accuracy, r->lo, r->hi, r->majority,
                               r->confidence, r->confidence_threshold);
        if (st == AP_OK && r->has_cv)
            st = ap_buf_printf(&b, err, "%d,%d,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%d,%d,", r->cv.folds, r->cv.repeats,
                               r->cv.mean, r->cv.sd, r->cv.majority_mean, r->cv.confidence_mean, r->cv.gain_mean,
                               r->cv.gain_sd, r->cv.wins, r->cv.losses);
        else if (st == AP_OK) st = ap_buf_printf(&b, err, ",,,,,,,,,,");
        if (st == AP_OK) st = ap_buf_printf(&b, err, "%d,", r->best_iteration);
        for (int h = 0; st == AP_OK && h < r->nheads && h < 5; h++)
            st = ap_buf_printf(&b, err, "%sL%dH%d", h ? " " : "", r->heads[h].layer, r->heads[h].head);
        if (st == AP_OK) st = ap_buf_printf(&b, err, "\n");
    }
    if (st == AP_OK) st = write_text(dir, "summary.csv", &b, err);
    ap_buf_free(&b);
    return st;
}

/* Where head (layer, head) ranks in heads [n] (0-based), or -1. */
static int rank_of(const ap_head_shap *heads, int n, int layer, int head) {
    for (int i = 0; i < n; i++)
        if (heads[i].layer == layer && heads[i].head == head) return i;
    return -1;
}

static ap_status write_heads(const char *dir, const task_run *t, int L, int H, ap_error *err) {
    const ap_classify_result *r = &t->r;
    char stem[200], name[256];
    file_stem(t->name, stem, sizeof stem);
    ap_buf b = {0};
    ap_status st = ap_buf_printf(&b, err, "rank,layer,head,mean_pos,mean_neg,mean_total,mean_abs,cv_rank,cv_mean_pos,"
                                          "cv_mean_neg,cv_mean_total,cv_mean_abs\n");
    for (int i = 0; st == AP_OK && i < r->nheads; i++) {
        const ap_head_shap *h = &r->heads[i];
        st = ap_buf_printf(&b, err, "%d,%d,%d,%.6g,%.6g,%.6g,%.6g", i + 1, h->layer, h->head, h->mean_pos,
                           h->mean_neg, h->mean_total, h->mean_abs);
        int k = r->has_cv ? rank_of(r->cv.heads, r->nheads, h->layer, h->head) : -1;
        if (st == AP_OK && k >= 0) {
            const ap_head_shap *c = &r->cv.heads[k];
            st = ap_buf_printf(&b, err, ",%d,%.6g,%.6g,%.6g,%.6g\n", k + 1, c->mean_pos, c->mean_neg, c->mean_total,
                               c->mean_abs);
        } else if (st == AP_OK) {
            st = ap_buf_printf(&b, err, ",,,,,\n");
        }
    }
    snprintf(name, sizeof name, "heads_%s.csv", stem);
    if (st == AP_OK) st = write_text(dir, name, &b, err);
    ap_buf_free(&b);
    char title[300];
    snprintf(title, sizeof title, "SHAP per head: %s (accuracy %.3f, n %lld)", t->name, r->accuracy, (long long)r->n);
    snprintf(name, sizeof name, "shap_%s.png", stem);
    char *path = st == AP_OK ? ap_path_join(dir, name, err) : NULL;
    if (path) st = ap_shap_head_map_png(path, title, r->heads, r->nheads, L, H, err);
    else if (st == AP_OK) st = AP_ERR_NOMEM;
    free(path);
    return st;
}

static ap_status write_outputs(const ap_classify_opts *o, const ap_store_meta *m, const task_run *runs, size_t nruns,
                               ap_error *err) {
    ap_status st = write_results_json(o, m, runs, nruns, err);
    if (st == AP_OK) st = write_summary_csv(o->out_dir, runs, nruns, err);
    for (size_t i = 0; st == AP_OK && i < nruns; i++)
        if (!runs[i].r.skipped[0]) st = write_heads(o->out_dir, &runs[i], m->num_layers, m->num_heads, err);
    return st;
}

ap_status ap_classify_store(const ap_classify_opts *o, ap_error *err) {
    ap_store *s = NULL;
    ap_status st = ap_store_open(o->store, AP_STORE_READ, &s, err);
    if (st != AP_OK) return st;
    if (!ap_path_is_dir(o->out_dir) && mkdir(o->out_dir, 0777) != 0 && errno != EEXIST) {
        ap_store_close(s, NULL);
        return ap_fail_errno(err, AP_ERR_IO, "%s: cannot create directory", o->out_dir);
    }
    samples d = {0};
    const char **tasks = NULL;
    char *sel_copy = NULL;
    size_t ntasks = 0;
    task_run *runs = NULL;
    st = read_samples(s, &d, err);
    if (st == AP_OK) st = select_tasks(&d, o->tasks, &tasks, &ntasks, &sel_copy, err);
    if (st == AP_OK && !(runs = ap_calloc(ntasks + 1, sizeof *runs, err))) st = AP_ERR_NOMEM;
    progress_ctx pc = {.before = 0};
    if (st == AP_OK)
        ap_progress_begin(&pc.bar, "classify", (int64_t)(ntasks + 1) * ap_classify_fits(&o->params));
    for (size_t t = 0; st == AP_OK && t <= ntasks; t++) {
        runs[t].name = t < ntasks ? tasks[t] : "all";
        st = run_one(&d, t < ntasks ? tasks[t] : NULL, tasks, ntasks, &o->params, &pc, &runs[t].r, err);
        if (st == AP_OK && runs[t].r.skipped[0]) ap_info("%s: skipped: %s", runs[t].name, runs[t].r.skipped);
    }
    if (st == AP_OK) {
        ap_progress_end(&pc.bar, NULL);
        st = write_outputs(o, ap_store_get_meta(s), runs, ntasks + 1, err);
    }
    for (size_t t = 0; runs && t <= ntasks; t++) ap_classify_result_free(&runs[t].r);
    free(runs);
    free(tasks);
    free(sel_copy);
    samples_free(&d);
    ap_store_close(s, NULL);
    return st;
}
