/* The intervention experiment (docs/analysis.md "Interventions"): the plan
 * (head sets per setting and n), the scenarios (from the store or a fresh
 * balanced draw), one unablated and one ablated pass per distinct head set
 * and scenario, appended per scenario to a partial file so that a killed
 * run continues where it stopped. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apmae/extract.h"
#include "apmae/store.h"

#define IV_PARTIAL "intervene.partial.jsonl"

/* ---- plan ---- */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The n values: each capped at L*H, ascending, without duplicates. */
static ap_status plan_n(iv_exp *x, ap_error *err) {
    const ap_intervene_opts *o = x->o;
    if (o->n_count == 0) return ap_fail(err, AP_ERR_ARG, "--n: give at least one head count");
    x->n = ap_malloc(o->n_count * sizeof *x->n, err);
    if (!x->n) return AP_ERR_NOMEM;
    for (size_t i = 0; i < o->n_count; i++) {
        if (o->n[i] < 1)
            return ap_fail(err, AP_ERR_ARG, "--n: %lld heads: each n must be at least 1 (n = 0 ablates nothing)",
                           (long long)o->n[i]);
        x->n[i] = o->n[i] < x->P ? o->n[i] : x->P;
    }
    qsort(x->n, o->n_count, sizeof *x->n, cmp_i64);
    x->nn = 0;
    for (size_t i = 0; i < o->n_count; i++)
        if (x->nn == 0 || x->n[x->nn - 1] != x->n[i]) x->n[x->nn++] = x->n[i];
    return AP_OK;
}

/* Runs in setting order, then n; each gets the index of its distinct set. */
static ap_status plan_runs(iv_exp *x, ap_error *err) {
    ap_status st;
    for (int s = 0; s < AP_IV_SETTINGS; s++) {
        if (!(x->o->settings >> s & 1u)) continue;
        if (!(x->order[s] = ap_malloc((size_t)x->P * sizeof(int), err))) return AP_ERR_NOMEM;
        if ((st = ap_iv_head_order((ap_iv_setting)s, x->shap, x->L, x->H, x->o->seed, x->order[s], &x->navail[s],
                                   err)))
            return st;
        if (x->navail[s] == 0) ap_warn("neutral: no head has |mean_total| <= %g; its runs ablate nothing",
                                       AP_IV_NEUTRAL_MAX);
    }
    if (!(x->runs = ap_calloc((size_t)AP_IV_SETTINGS * (size_t)x->nn, sizeof *x->runs, err))) return AP_ERR_NOMEM;
    if (!(x->sets = ap_calloc((size_t)AP_IV_SETTINGS * (size_t)x->nn, (size_t)x->P, err))) return AP_ERR_NOMEM;
    uint8_t *mask = ap_malloc((size_t)x->P, err);
    if (!mask) return AP_ERR_NOMEM;
    for (int s = 0; s < AP_IV_SETTINGS; s++) {
        if (!x->order[s]) continue;
        for (int k = 0; k < x->nn; k++) {
            iv_run *r = &x->runs[x->nruns++];
            r->setting = (ap_iv_setting)s;
            r->n = (int)x->n[k];
            r->n_heads = r->n < x->navail[s] ? r->n : x->navail[s];
            r->heads = x->order[s];
            memset(mask, 0, (size_t)x->P);
            r->first_layer = x->L;
            for (int i = 0; i < r->n_heads; i++) {
                mask[r->heads[i]] = 1;
                if (r->heads[i] / x->H < r->first_layer) r->first_layer = r->heads[i] / x->H;
            }
            for (r->set = 0; r->set < x->nsets; r->set++)
                if (memcmp(x->sets + (size_t)r->set * x->P, mask, (size_t)x->P) == 0) break;
            if (r->set == x->nsets) memcpy(x->sets + (size_t)x->nsets++ * x->P, mask, (size_t)x->P);
        }
    }
    free(mask);
    return AP_OK;
}

/* ---- scenarios ---- */

static void scenarios_free(iv_exp *x) {
    for (int64_t i = 0; i < x->nsc; i++) {
        free(x->sc[i].id);
        free(x->sc[i].ids);
    }
    free(x->sc);
}

static ap_status add_scenario(iv_exp *x, const char *id, int64_t where, int32_t label, const int32_t *ids, int T,
                              ap_error *err) {
    iv_scenario *s = &x->sc[x->nsc];
    s->id = ap_strdup(id, err);
    s->ids = ap_malloc((size_t)T * sizeof *s->ids, err);
    if (!s->id || !s->ids) {
        free(s->id);
        free(s->ids);
        return AP_ERR_NOMEM;
    }
    memcpy(s->ids, ids, (size_t)T * sizeof *ids);
    s->where = where;
    s->label = label;
    s->T = T;
    x->nsc++;
    if (T > x->max_T) x->max_T = T;
    return AP_OK;
}

static ap_status check_label(const iv_exp *x, const char *where, int32_t label, ap_error *err) {
    if (label < 0)
        return ap_fail(err, AP_ERR_ARG,
                       "%s: task '%s' has no label (noise scenarios): an intervention needs the right answer",
                       where, x->o->task);
    if (label >= x->lm->cfg.vocab_size)
        return ap_fail(err, AP_ERR_RANGE, "%s: label %d is outside the model's vocabulary (%d)", where, label,
                       x->lm->cfg.vocab_size);
    return AP_OK;
}

/* K of the n indices, drawn with the seed, kept in ascending order. */
static void draw_k(int64_t *idx, size_t n, size_t K, uint64_t seed) {
    ap_rng r;
    ap_rng_seed(&r, seed);
    for (size_t i = 0; i < K && i < n; i++) {
        size_t j = i + (size_t)ap_rng_below(&r, (uint64_t)(n - i));
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    qsort(idx, K < n ? K : n, sizeof *idx, cmp_i64);
}

static int cmp_where(const void *a, const void *b) {
    int64_t x = ((const iv_scenario *)a)->where, y = ((const iv_scenario *)b)->where;
    return (x > y) - (x < y);
}

/* K correct and K incorrect samples of the task, by the store's correctness. */
static ap_status store_scenarios(iv_exp *x, ap_store *store, ap_error *err) {
    const ap_intervene_opts *o = x->o;
    int64_t *idx[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    ap_status st;
    for (int c = 0; c < 2; c++)
        if ((st = ap_store_filter(store, o->task, c, &idx[c], &n[c], err))) goto done;
    if (n[0] + n[1] == 0) {
        st = ap_fail(err, AP_ERR_ARG, "%s: no samples of task '%s'", o->store_path, o->task);
        goto done;
    }
    ap_store_sample first;
    if ((st = ap_store_read_sample(store, n[0] ? idx[0][0] : idx[1][0], &first, NULL, err)) ||
        (st = check_label(x, o->store_path, first.label_id, err)))
        goto done;
    if (n[0] < (size_t)o->target || n[1] < (size_t)o->target) {
        st = ap_fail(err, AP_ERR_ARG,
                     "%s: task '%s' has %zu correct and %zu incorrect samples, too few for --target %d (K correct "
                     "and K incorrect); use --target %zu or less",
                     o->store_path, o->task, n[1], n[0], o->target, n[0] < n[1] ? n[0] : n[1]);
        goto done;
    }
    int N = ap_store_get_meta(store)->n_tokens;
    int32_t *ids = ap_malloc((size_t)N * sizeof *ids, err);
    if (!ids || !(x->sc = ap_calloc(2 * (size_t)o->target, sizeof *x->sc, err))) {
        free(ids);
        st = AP_ERR_NOMEM;
        goto done;
    }
    for (int c = 0; c < 2 && !st; c++) {
        draw_k(idx[c], n[c], (size_t)o->target, ap_hash_mix(o->seed, 100 + (uint64_t)c));
        for (int k = 0; k < o->target && !st; k++) {
            ap_store_sample rec;
            char where[600];
            snprintf(where, sizeof where, "%s: sample %lld", o->store_path, (long long)idx[c][k]);
            if (!(st = ap_store_read_sample(store, idx[c][k], &rec, ids, err)) &&
                !(st = check_label(x, where, rec.label_id, err)))
                st = add_scenario(x, rec.id, idx[c][k], rec.label_id, ids, N, err);
        }
    }
    free(ids);
    qsort(x->sc, (size_t)x->nsc, sizeof *x->sc, cmp_where);
done:
    free(idx[0]);
    free(idx[1]);
    return st;
}

/* A fresh balanced draw: the file's scenarios of the task that the store
 * does not hold, in file order, each run once unablated, kept while its
 * group (correct or incorrect) has fewer than K. */
static ap_status fresh_scenarios(iv_exp *x, ap_store *store, ap_error *err) {
    const ap_intervene_opts *o = x->o;
    const ap_lm_config *c = &x->lm->cfg;
    ap_scenario_reader rd;
    ap_status st = ap_scenario_reader_open(&rd, o->scenarios_path, err);
    if (st) return st;
    ap_ablator *a = NULL;
    int64_t kept[2] = {0, 0};
    int T = 0;
    ap_progress bar;
    ap_progress_begin(&bar, "draw", 2 * (int64_t)o->target);
    if (!(x->sc = ap_calloc(2 * (size_t)o->target, sizeof *x->sc, err))) st = AP_ERR_NOMEM;
    ap_scenario_line s = {0};
    int has = 1;
    while (!st && (kept[0] < o->target || kept[1] < o->target) &&
           !(st = ap_scenario_reader_next(&rd, &s, &has, err)) && has) {
        char where[600];
        snprintf(where, sizeof where, "%s:%lld", o->scenarios_path, (long long)rd.lineno);
        if (strcmp(s.task, o->task) != 0) {
        } else if (ap_store_find(store, s.id) >= 0) {
            x->drawn_in_store++;
        } else if (!(st = check_label(x, where, s.label, err))) {
            x->drawn_read++;
            if (T == 0) {
                T = s.n;
                if (T > c->max_position_embeddings)
                    st = ap_fail(err, AP_ERR_ARG, "%s: %d tokens, more than the model's %d positions", where, T,
                                 c->max_position_embeddings);
                else st = ap_ablator_new(x->lm, T, 0, &a, err);
            } else if (s.n != T) {
                st = ap_fail(err, AP_ERR_FORMAT, "%s: %d input ids, but earlier scenarios have %d", where, s.n, T);
            }
            int32_t pred;
            if (!st && !(st = ap_ablator_baseline(a, s.ids, s.n, &pred, err))) {
                int group = pred == s.label;
                if (kept[group] < o->target) {
                    kept[group]++;
                    st = add_scenario(x, s.id, rd.lineno, s.label, s.ids, s.n, err);
                    ap_progress_update(&bar, kept[0] + kept[1], NULL);
                }
            }
            if (st) ap_error_prefix(err, "%s (scenario %s)", where, s.id);
        }
        ap_scenario_clear(&s);
    }
    ap_scenario_clear(&s);
    ap_progress_end(&bar, NULL);
    if (!st && (kept[0] < o->target || kept[1] < o->target))
        st = ap_fail(err, AP_ERR_ARG,
                     "%s: only %lld correct and %lld incorrect completions among its %lld scenarios of task '%s' "
                     "not in the store, too few for --target %d; use --target %lld or less, or a larger file",
                     o->scenarios_path, (long long)kept[1], (long long)kept[0], (long long)x->drawn_read, o->task,
                     o->target, (long long)(kept[0] < kept[1] ? kept[0] : kept[1]));
    ap_ablator_free(a);
    ap_scenario_reader_close(&rd);
    return st;
}

/* ---- the partial file: one line per finished scenario ---- */

/* The first line: everything the outcomes depend on. */
static ap_status plan_header(const iv_exp *x, char **out, ap_error *err) {
    const ap_intervene_opts *o = x->o;
    cJSON *j = cJSON_CreateObject(), *sets = cJSON_CreateArray(), *ids = cJSON_CreateArray();
    cJSON_AddStringToObject(j, "model", o->model_dir);
    cJSON_AddStringToObject(j, "store", o->store_path);
    cJSON_AddStringToObject(j, "shap", o->shap_path);
    cJSON_AddStringToObject(j, "shap_set", o->shap_cv ? "cv" : "test");
    cJSON_AddStringToObject(j, "task", o->task);
    if (o->scenarios_path) cJSON_AddStringToObject(j, "scenarios_file", o->scenarios_path);
    cJSON_AddNumberToObject(j, "target", o->target);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    for (int64_t i = 0; i < x->nsc; i++) cJSON_AddItemToArray(ids, cJSON_CreateString(x->sc[i].id));
    cJSON_AddItemToObject(j, "scenarios", ids);
    for (int k = 0; k < x->nsets; k++) {
        cJSON *set = cJSON_CreateArray();
        for (int i = 0; i < x->P; i++)
            if (x->sets[(size_t)k * x->P + i]) cJSON_AddItemToArray(set, cJSON_CreateNumber(i));
        cJSON_AddItemToArray(sets, set);
    }
    cJSON_AddItemToObject(j, "head_sets", sets);
    *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return *out ? AP_OK : ap_fail(err, AP_ERR_NOMEM, "out of memory");
}

/* Scenario i's outcomes from a line; 0 when the line is not exactly that. */
static int parse_done_line(iv_exp *x, const char *line, int64_t i) {
    cJSON *j = cJSON_Parse(line);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "i"), *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(j, "base"), *preds = cJSON_GetObjectItemCaseSensitive(j, "preds");
    int V = x->lm->cfg.vocab_size;
    int ok = cJSON_IsNumber(k) && k->valuedouble == (double)i && cJSON_IsString(id) &&
             strcmp(id->valuestring, x->sc[i].id) == 0 && cJSON_IsNumber(base) && base->valuedouble >= 0 &&
             base->valuedouble < V && cJSON_IsArray(preds) && cJSON_GetArraySize(preds) == x->nsets;
    if (ok) {
        x->base_pred[i] = (int32_t)base->valuedouble;
        int s = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, preds) {
            if (!cJSON_IsNumber(p) || p->valuedouble < 0 || p->valuedouble >= V) ok = 0;
            else x->pred[(size_t)i * x->nsets + s++] = (int32_t)p->valuedouble;
        }
    }
    cJSON_Delete(j);
    return ok;
}

/* Open the partial file for appending: continue an earlier run of the same
 * plan (*done = its finished scenarios, read back), or start it afresh. */
static ap_status partial_open(iv_exp *x, const char *path, const char *header, FILE **out, int64_t *done,
                              ap_error *err) {
    *done = 0;
    char *text = NULL;
    size_t len = 0, keep = 0;
    if (ap_path_exists(path)) {
        ap_status st = ap_read_file(path, &text, &len, err);
        if (st) return st;
        size_t hl = strlen(header);
        if (len > hl && memcmp(text, header, hl) == 0 && text[hl] == '\n') {
            keep = hl + 1;
            for (char *line = text + keep; *done < x->nsc;) {
                char *end = strchr(line, '\n');
                if (!end) break; /* cut by the kill: redone */
                *end = '\0';
                if (!parse_done_line(x, line, *done)) break;
                (*done)++;
                keep = (size_t)(end + 1 - text);
                line = end + 1;
            }
        } else {
            ap_warn("%s: written for other options or scenarios; starting over", path);
        }
        free(text);
    }
    FILE *f = fopen(path, keep ? "r+" : "w");
    if (!f) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot open", path);
    if (keep ? ftruncate(fileno(f), (off_t)keep) != 0 || fseek(f, 0, SEEK_END) != 0
             : fprintf(f, "%s\n", header) < 0) {
        fclose(f);
        return ap_fail_errno(err, AP_ERR_IO, "%s: cannot write", path);
    }
    *out = f;
    return AP_OK;
}

/* Append scenario i's outcomes and make them durable. */
static ap_status partial_append(const iv_exp *x, FILE *f, const char *path, int64_t i, ap_error *err) {
    cJSON *j = cJSON_CreateObject(), *preds = cJSON_CreateArray();
    cJSON_AddNumberToObject(j, "i", (double)i);
    cJSON_AddStringToObject(j, "id", x->sc[i].id);
    cJSON_AddNumberToObject(j, "base", x->base_pred[i]);
    for (int s = 0; s < x->nsets; s++) cJSON_AddItemToArray(preds, cJSON_CreateNumber(x->pred[(size_t)i * x->nsets + s]));
    cJSON_AddItemToObject(j, "preds", preds);
    char *line = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    int bad = !line || fprintf(f, "%s\n", line) < 0 || fflush(f) != 0 || fdatasync(fileno(f)) != 0;
    cJSON_free(line);
    return bad ? ap_fail_errno(err, AP_ERR_IO, "%s: cannot write", path) : AP_OK;
}

/* ---- the passes ---- */

static ap_status run_scenarios(iv_exp *x, ap_intervene_report *rep, ap_error *err) {
    const ap_intervene_opts *o = x->o;
    char *path = ap_path_join(o->out_dir, IV_PARTIAL, err), *header = NULL;
    if (!path) return AP_ERR_NOMEM;
    ap_ablator *a = NULL;
    FILE *f = NULL;
    ap_status st;
    if ((st = plan_header(x, &header, err)) || (st = partial_open(x, path, header, &f, &rep->resumed, err)) ||
        (st = ap_ablator_new(x->lm, x->max_T, !o->no_reuse, &a, err)))
        goto done;
    if (rep->resumed > 0)
        ap_info("%s: continuing after the %lld of %lld scenarios an earlier run finished", path,
                (long long)rep->resumed, (long long)x->nsc);
    ap_progress bar;
    ap_progress_begin(&bar, "intervene", x->nsc);
    ap_progress_update(&bar, rep->resumed, NULL);
    for (int64_t i = rep->resumed; i < x->nsc && !st; i++) {
        const iv_scenario *s = &x->sc[i];
        st = ap_ablator_baseline(a, s->ids, s->T, &x->base_pred[i], err);
        for (int k = 0; k < x->nsets && !st; k++)
            st = ap_ablator_run(a, x->sets + (size_t)k * x->P, &x->pred[(size_t)i * x->nsets + k], err);
        if (st) ap_error_prefix(err, "scenario %s", s->id);
        else if (!(st = partial_append(x, f, path, i, err))) ap_progress_update(&bar, i + 1, NULL);
    }
    ap_progress_end(&bar, NULL);
    rep->stats = *ap_ablator_get_stats(a);
done:
    if (f && fclose(f) != 0 && !st) st = ap_fail_errno(err, AP_ERR_IO, "%s: cannot write", path);
    ap_ablator_free(a);
    cJSON_free(header);
    free(path);
    return st;
}

/* ---- the whole experiment ---- */

static void exp_free(iv_exp *x) {
    free(x->shap);
    for (int s = 0; s < AP_IV_SETTINGS; s++) free(x->order[s]);
    free(x->n);
    free(x->runs);
    free(x->sets);
    scenarios_free(x);
    free(x->base_pred);
    free(x->pred);
}

static ap_status check_opts(const ap_intervene_opts *o, ap_error *err) {
    if (o->target < 1)
        return ap_fail(err, AP_ERR_ARG, "--target %d: needs at least 1 correct and 1 incorrect scenario", o->target);
    if ((o->settings & ((1u << AP_IV_SETTINGS) - 1)) == 0)
        return ap_fail(err, AP_ERR_ARG, "--settings: choose at least one of pos_only, neg_only, neutral, random");
    return AP_OK;
}

/* The store was made by a model of this shape. */
static ap_status check_store(const iv_exp *x, ap_store *store, ap_error *err) {
    const ap_store_meta *m = ap_store_get_meta(store);
    if (m->num_layers != x->L || m->num_heads != x->H)
        return ap_fail(err, AP_ERR_ARG, "%s: patterns of a model with %d layers x %d heads, but %s has %d x %d",
                       x->o->store_path, m->num_layers, m->num_heads, x->o->model_dir, x->L, x->H);
    if (!x->o->scenarios_path && m->n_tokens > x->lm->cfg.max_position_embeddings)
        return ap_fail(err, AP_ERR_ARG, "%s: samples of %d tokens, more than the model's %d positions",
                       x->o->store_path, m->n_tokens, x->lm->cfg.max_position_embeddings);
    return AP_OK;
}

/* Store scenarios: the recomputed baseline should be the store's pred_id. */
static ap_status count_store_disagreements(iv_exp *x, ap_store *store, ap_error *err) {
    for (int64_t i = 0; i < x->nsc; i++) {
        ap_store_sample rec;
        ap_status st = ap_store_read_sample(store, x->sc[i].where, &rec, NULL, err);
        if (st) return st;
        x->store_disagree += rec.pred_id != x->base_pred[i];
    }
    if (x->store_disagree)
        ap_warn("%lld of %lld scenarios: the model's unablated prediction differs from the store's; is %s the "
                "model that made %s?",
                (long long)x->store_disagree, (long long)x->nsc, x->o->model_dir, x->o->store_path);
    return AP_OK;
}

ap_status ap_intervene(const ap_intervene_opts *o, ap_intervene_report *rep, ap_error *err) {
    memset(rep, 0, sizeof *rep);
    double t0 = ap_now();
    ap_status st = check_opts(o, err);
    if (st) return st;
    iv_exp x = {.o = o};
    ap_lm *lm = NULL;
    ap_store *store = NULL;
    if ((st = ap_lm_load(o->model_dir, &lm, err))) return st;
    x.lm = lm;
    x.L = lm->cfg.num_layers;
    x.H = lm->cfg.num_heads;
    x.P = x.L * x.H;
    if ((st = ap_store_open(o->store_path, AP_STORE_READ, &store, err)) || (st = check_store(&x, store, err)))
        goto done;
    if (!(x.shap = ap_malloc((size_t)x.P * sizeof *x.shap, err))) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    if ((st = ap_shap_load(o->shap_path, o->task, o->shap_cv, x.L, x.H, x.shap, err)) || (st = plan_n(&x, err)) ||
        (st = plan_runs(&x, err)))
        goto done;
    st = o->scenarios_path ? fresh_scenarios(&x, store, err) : store_scenarios(&x, store, err);
    if (st) goto done;
    x.base_pred = ap_malloc((size_t)x.nsc * sizeof *x.base_pred, err);
    x.pred = ap_malloc((size_t)x.nsc * (size_t)x.nsets * sizeof *x.pred, err);
    if (!x.base_pred || !x.pred) {
        st = AP_ERR_NOMEM;
        goto done;
    }
    if (!ap_path_is_dir(o->out_dir) && mkdir(o->out_dir, 0777) != 0 && errno != EEXIST) {
        st = ap_fail_errno(err, AP_ERR_IO, "%s: cannot create the output directory", o->out_dir);
        goto done;
    }
    rep->scenarios = x.nsc;
    rep->runs = x.nruns;
    rep->head_sets = x.nsets;
    if ((st = run_scenarios(&x, rep, err))) goto done;
    if (!o->scenarios_path && (st = count_store_disagreements(&x, store, err))) goto done;
    for (int64_t i = 0; i < x.nsc; i++) rep->baseline_correct += x.base_pred[i] == x.sc[i].label;
    rep->seconds = ap_now() - t0;
    if ((st = iv_write_outputs(&x, rep, err))) goto done;
    char *partial = ap_path_join(o->out_dir, IV_PARTIAL, err);
    if (!partial) st = AP_ERR_NOMEM;
    else if (unlink(partial) != 0) st = ap_fail_errno(err, AP_ERR_IO, "%s: cannot remove", partial);
    free(partial);
done:;
    ap_error close_err = {0};
    ap_status cst = ap_store_close(store, &close_err);
    if (!st && cst) {
        st = cst;
        *err = close_err;
    }
    exp_free(&x);
    ap_lm_free(lm);
    return st;
}
