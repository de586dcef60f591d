/* ap_mae_eval: reconstruction MSE of a checkpoint on a store's patterns
 * (held-out split of training, or all), beside the mean-patch and head-mean
 * baselines on the same masks; per task, layer and head; the 4-panel
 * figures; and the ratio to the MSE on the store of the LM trained on
 * (cross-model). */
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK 32 /* images per forward call */

void ap_mae_pattern_masks(const ap_mae_config *cfg, uint64_t seed, const char *id, int layer, int head,
                          int64_t *masked) {
    uint64_t h = ap_hash_mix(ap_hash_mix(seed, ap_hash_bytes(id, strlen(id))), ((uint64_t)layer << 32) | (uint32_t)head);
    ap_rng rng;
    ap_rng_seed(&rng, h);
    ap_mae_random_masks(cfg, &rng, 1, masked);
}

/* Pixel (r, c) of patch k in an N-wide image. */
static size_t patch_pixel(int k, int g, int p, int N, int r, int c) {
    return ((size_t)(k / g) * p + r) * N + (size_t)(k % g) * p + c;
}

double ap_mae_mean_patch_mse(const ap_mae_config *cfg, const float *scaled, const int64_t *masked, int M,
                             float *pred) {
    const int N = cfg->max_length, p = cfg->patch_size, g = N / p;
    unsigned char is_masked[256 * 256] = {0}; /* g <= 256 (ap_mae_config_validate) */
    for (int i = 0; i < M; i++) is_masked[masked[i]] = 1;
    int V = 0;
    for (int k = 0; k < g * g; k++) V += k / g >= k % g && !is_masked[k];
    double se = 0;
    for (int r = 0; r < p; r++)
        for (int c = 0; c < p; c++) {
            double sum = 0;
            for (int k = 0; k < g * g; k++)
                if (k / g >= k % g && !is_masked[k]) sum += scaled[patch_pixel(k, g, p, N, r, c)];
            double mean = V ? sum / V : 0;
            if (pred) pred[r * p + c] = (float)mean;
            for (int i = 0; i < M; i++) {
                double d = mean - scaled[patch_pixel((int)masked[i], g, p, N, r, c)];
                se += d * d;
            }
        }
    return se / ((double)M * p * p);
}

/* ---- what training recorded ---------------------------------------------------------------- */

void mae_record_free(mae_record *r) {
    free(r->store);
    free(r->model_id);
    for (size_t i = 0; i < r->ntasks; i++) free(r->tasks[i]);
    free(r->tasks);
    memset(r, 0, sizeof *r);
}

static ap_status record_parse(const cJSON *j, const char *path, mae_record *r, ap_error *err) {
    const char *store, *model_id, *seed, *ids_hash = NULL;
    ap_status st = ap_json_str(j, "store", path, 1, &store, err);
    if (!st) st = ap_json_str(j, "store_ids_hash", path, 0, &ids_hash, err);
    if (!st) st = ap_json_str(j, "store_model_id", path, 1, &model_id, err);
    if (!st) st = ap_json_int_opt(j, "store_samples", path, -1, &r->store_samples, err);
    if (!st) st = ap_json_num(j, "holdout", path, &r->holdout, err);
    if (!st) st = ap_json_str(j, "seed", path, 1, &seed, err);
    if (!st) st = ap_json_bool_opt(j, "compat_reference", path, 0, &r->compat, err);
    if (st) return st;
    r->seed = strtoull(seed, NULL, 10);
    if (ids_hash) r->has_ids_hash = 1, r->store_ids_hash = strtoull(ids_hash, NULL, 16);
    if (!(r->store = ap_strdup(store, err)) || !(r->model_id = ap_strdup(model_id, err))) return AP_ERR_NOMEM;
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(j, "split_tasks");
    if (!tasks || cJSON_IsNull(tasks)) return AP_OK;
    if (!cJSON_IsArray(tasks)) return ap_fail(err, AP_ERR_FORMAT, "%s: 'split_tasks' is not a list", path);
    if (!(r->tasks = ap_calloc((size_t)cJSON_GetArraySize(tasks) + 1, sizeof *r->tasks, err))) return AP_ERR_NOMEM;
    for (const cJSON *t = tasks->child; t; t = t->next) {
        if (!cJSON_IsString(t)) return ap_fail(err, AP_ERR_FORMAT, "%s: a task name is not a string", path);
        if (!(r->tasks[r->ntasks++] = ap_strdup(t->valuestring, err))) return AP_ERR_NOMEM;
    }
    return AP_OK;
}

ap_status mae_record_load(const char *model, mae_record *r, ap_error *err) {
    memset(r, 0, sizeof *r);
    char *path = ap_path_join(model, AP_MAE_TRAIN_ARGS, err);
    if (!path) return AP_ERR_NOMEM;
    ap_status st = AP_OK;
    if (ap_path_exists(path)) {
        cJSON *j = NULL;
        st = ap_json_load(path, &j, err);
        if (!st) st = record_parse(j, path, r, err);
        r->present = st == AP_OK;
        cJSON_Delete(j);
    }
    free(path);
    return st;
}

/* ---- accumulation ------------------------------------------------------------------------ */

typedef struct agg {
    double mse, base, head;
    int64_t n;
} agg;

static void agg_add(agg *a, double mse, double base, double head) {
    a->mse += mse;
    a->base += base;
    a->head += head;
    a->n++;
}

/* with_head: the head-mean baseline was computed for these patterns. */
static cJSON *agg_json(const agg *a, int with_head) {
    cJSON *j = cJSON_CreateObject();
    double mse = a->n ? a->mse / (double)a->n : NAN, base = a->n ? a->base / (double)a->n : NAN;
    cJSON_AddNumberToObject(j, "mse", mse);
    cJSON_AddNumberToObject(j, "baseline_mse", base);
    cJSON_AddNumberToObject(j, "ratio", base > 0 ? mse / base : NAN);
    if (with_head) {
        double head = a->n ? a->head / (double)a->n : NAN;
        cJSON_AddNumberToObject(j, "head_mean_mse", head);
        cJSON_AddNumberToObject(j, "head_mean_ratio", head > 0 ? mse / head : NAN);
    }
    cJSON_AddNumberToObject(j, "patterns", (double)a->n);
    return j;
}

/* One store's evaluation. */
typedef struct evaluator {
    const ap_mae_eval_options *o;
    ap_mae_model *m;
    const mae_record *rec;
    const ap_mae_head_mean *hm; /* NULL: no head-mean baseline for this store */
    ap_store *store;
    int N, M, P2, L, H;
    signed char *role; /* NULL: every sample */
    int *task_of;      /* [S] index into tasks */
    char **tasks;
    size_t ntasks;
    agg all, *by_task, *by_layer, *by_head;
    /* a chunk */
    ap_pattern_ref refs[CHUNK];
    int nchunk;
    float *raw, *scaled, *pred;
    int64_t *masks;
    float loss[CHUNK];
    /* figures: one pattern per sample, for the first o->figures samples */
    ap_pattern_ref *figs;
    int nfigs;
    int64_t fig_sample, fig_seen;
    ap_pattern_ref fig_pick;
} evaluator;

static void evaluator_free(evaluator *e) {
    ap_store_close(e->store, NULL);
    free(e->role);
    free(e->task_of);
    for (size_t i = 0; i < e->ntasks; i++) free(e->tasks[i]);
    free(e->tasks);
    free(e->by_task);
    free(e->by_layer);
    free(e->by_head);
    free(e->raw);
    free(e->scaled);
    free(e->pred);
    free(e->masks);
    free(e->figs);
}

static ap_status index_tasks(evaluator *e, ap_error *err) {
    const int64_t S = ap_store_count(e->store);
    if (!(e->task_of = ap_malloc((size_t)(S ? S : 1) * sizeof *e->task_of, err))) return AP_ERR_NOMEM;
    for (int64_t i = 0; i < S; i++) {
        ap_store_sample r;
        ap_status st = ap_store_read_sample(e->store, i, &r, NULL, err);
        if (st) return st;
        size_t k = 0;
        while (k < e->ntasks && strcmp(e->tasks[k], r.task) != 0) k++;
        if (k == e->ntasks) {
            char **grown = ap_realloc(e->tasks, (e->ntasks + 1) * sizeof *grown, err);
            if (!grown) return AP_ERR_NOMEM;
            e->tasks = grown;
            if (!(e->tasks[e->ntasks++] = ap_strdup(r.task, err))) return AP_ERR_NOMEM;
        }
        e->task_of[i] = (int)k;
    }
    return AP_OK;
}

/* The split of this store: heldout (training's rule) or all. */
static ap_status choose_split(evaluator *e, const char **name, ap_error *err) {
    ap_mae_split_mode mode = e->o->split;
    if (mode == AP_MAE_SPLIT_AUTO) {
        int training_store;
        ap_status st = mae_is_training_store(e->store, e->rec, &training_store, err);
        if (st) return st;
        mode = training_store ? AP_MAE_SPLIT_HELDOUT : AP_MAE_SPLIT_ALL;
    }
    *name = mode == AP_MAE_SPLIT_HELDOUT ? "heldout" : "all";
    if (mode == AP_MAE_SPLIT_ALL) return AP_OK;
    if (!e->rec->present)
        return ap_fail(err, AP_ERR_ARG, "--split heldout: %s has no %s, so training's split is unknown (use --split "
                       "all)", e->o->model, AP_MAE_TRAIN_ARGS);
    const int64_t S = ap_store_count(e->store);
    if (!(e->role = ap_malloc((size_t)(S ? S : 1), err))) return AP_ERR_NOMEM;
    return ap_mae_split(e->store, (const char *const *)e->rec->tasks, e->rec->ntasks, e->rec->holdout,
                        e->rec->seed, e->role, err);
}

static ap_status evaluator_init(evaluator *e, const char *path, const char **split, ap_error *err) {
    ap_status st = ap_store_open(path, AP_STORE_READ, &e->store, err);
    if (!st) st = mae_check_store_n(e->store, &e->m->cfg, e->o->model, err);
    if (!st) st = index_tasks(e, err);
    if (!st) st = choose_split(e, split, err);
    if (st) return st;
    const ap_store_meta *sm = ap_store_get_meta(e->store);
    e->N = sm->n_tokens, e->L = sm->num_layers, e->H = sm->num_heads;
    e->M = ap_mae_num_masked(&e->m->cfg);
    e->P2 = e->m->cfg.patch_size * e->m->cfg.patch_size;
    const size_t NN = (size_t)e->N * e->N;
    e->by_task = ap_calloc(e->ntasks ? e->ntasks : 1, sizeof *e->by_task, err);
    e->by_layer = ap_calloc((size_t)e->L, sizeof *e->by_layer, err);
    e->by_head = ap_calloc((size_t)e->L * e->H, sizeof *e->by_head, err);
    e->raw = ap_malloc(CHUNK * NN * sizeof(float), err);
    e->scaled = ap_malloc(CHUNK * NN * sizeof(float), err);
    e->pred = ap_malloc((size_t)CHUNK * e->M * e->P2 * sizeof(float), err);
    e->masks = ap_malloc((size_t)CHUNK * e->M * sizeof(int64_t), err);
    e->figs = ap_calloc((size_t)(e->o->figures > 0 ? e->o->figures : 1), sizeof *e->figs, err);
    if (!e->by_task || !e->by_layer || !e->by_head || !e->raw || !e->scaled || !e->pred || !e->masks || !e->figs)
        return AP_ERR_NOMEM;
    e->fig_sample = -1;
    return AP_OK;
}

static ap_status sample_id(evaluator *e, int64_t i, const char **id, ap_error *err) {
    ap_store_sample r;
    ap_status st = ap_store_read_sample(e->store, i, &r, NULL, err);
    *id = r.id;
    return st;
}

/* Read, scale and mask patterns [0, n) of refs into the chunk buffers. */
static ap_status prepare(evaluator *e, const ap_pattern_ref *refs, int n, ap_error *err) {
    ap_status st = mae_read_refs(e->store, refs, (size_t)n, e->raw, err);
    if (!st) st = ap_mae_scale(&e->m->cfg, e->raw, n, e->scaled, err);
    for (int b = 0; !st && b < n; b++) {
        const char *id;
        if (!(st = sample_id(e, refs[b].sample, &id, err)))
            ap_mae_pattern_masks(&e->m->cfg, e->o->seed, id, refs[b].layer, refs[b].head, e->masks + (size_t)b * e->M);
    }
    return st;
}

static ap_status flush_chunk(evaluator *e, ap_error *err) {
    int n = e->nchunk;
    e->nchunk = 0;
    if (n == 0) return AP_OK;
    ap_status st = prepare(e, e->refs, n, err);
    if (!st) st = ap_mae_forward(e->m, e->scaled, n, e->masks, e->M, e->loss, NULL, err);
    if (st) return st;
    float *mean_patch = e->pred; /* scratch */
    const size_t NN = (size_t)e->N * e->N;
    for (int b = 0; b < n; b++) {
        const ap_pattern_ref *r = &e->refs[b];
        double base = ap_mae_mean_patch_mse(&e->m->cfg, e->scaled + b * NN, e->masks + (size_t)b * e->M, e->M,
                                            mean_patch);
        double head = e->hm ? ap_mae_head_mean_mse(&e->m->cfg, e->hm, r->layer, r->head, e->scaled + b * NN,
                                                   e->masks + (size_t)b * e->M, e->M)
                            : 0;
        agg_add(&e->all, e->loss[b], base, head);
        agg_add(&e->by_task[e->task_of[r->sample]], e->loss[b], base, head);
        agg_add(&e->by_layer[r->layer], e->loss[b], base, head);
        agg_add(&e->by_head[(size_t)r->layer * e->H + r->head], e->loss[b], base, head);
    }
    return AP_OK;
}

/* Reservoir of one per sample: each evaluated pattern of the sample is the
 * figure's with equal chance. */
static void figure_candidate(evaluator *e, const ap_pattern_ref *r) {
    if (e->nfigs >= e->o->figures) return;
    if (r->sample != e->fig_sample) {
        if (e->fig_sample >= 0) e->figs[e->nfigs++] = e->fig_pick;
        if (e->nfigs >= e->o->figures) return;
        e->fig_sample = r->sample;
        e->fig_seen = 0;
    }
    ap_rng rng;
    ap_rng_seed(&rng, ap_hash_mix(ap_hash_mix(e->o->seed, (uint64_t)r->sample), (uint64_t)e->fig_seen));
    if (ap_rng_below(&rng, (uint64_t)++e->fig_seen) == 0) e->fig_pick = *r;
}

static ap_status evaluate(evaluator *e, ap_error *err) {
    const int64_t S = ap_store_count(e->store), per = (int64_t)e->L * e->H;
    int64_t total = 0;
    for (int64_t i = 0; i < S; i++) total += !e->role || e->role[i] == AP_MAE_HELDOUT;
    total *= per;
    if (total == 0) return ap_fail(err, AP_ERR_ARG, "%s: no patterns to evaluate", ap_store_path(e->store));
    int64_t want = e->o->max_patterns > 0 && e->o->max_patterns < total ? e->o->max_patterns : total, left = total;
    ap_rng rng; /* selection sampling of the --max-patterns subset, in store order */
    ap_rng_seed(&rng, ap_hash_mix(e->o->seed, 0x737562736574ull /* "subset" */));
    ap_progress bar;
    if (e->o->progress) ap_progress_begin(&bar, "mae eval", want);
    ap_status st = AP_OK;
    int64_t done = 0;
    for (int64_t i = 0; i < S && !st && done < want; i++) {
        if (e->role && e->role[i] != AP_MAE_HELDOUT) continue;
        for (int64_t k = 0; k < per && !st; k++, left--) {
            if (ap_rng_below(&rng, (uint64_t)left) >= (uint64_t)(want - done)) continue;
            ap_pattern_ref r = {i, (int32_t)(k / e->H), (int32_t)(k % e->H)};
            e->refs[e->nchunk++] = r;
            figure_candidate(e, &r);
            done++;
            if (e->nchunk == CHUNK) st = flush_chunk(e, err);
            if (e->o->progress) ap_progress_update(&bar, done, NULL);
        }
    }
    if (!st) st = flush_chunk(e, err);
    if (e->o->progress) ap_progress_end(&bar, NULL);
    if (e->fig_sample >= 0 && e->nfigs < e->o->figures) e->figs[e->nfigs++] = e->fig_pick;
    return st;
}

static ap_status write_figures(evaluator *e, cJSON *paths, ap_error *err) {
    for (int f = 0; f < e->nfigs; f++) {
        const ap_pattern_ref *r = &e->figs[f];
        ap_status st = prepare(e, r, 1, err);
        if (!st) st = ap_mae_forward(e->m, e->scaled, 1, e->masks, e->M, e->loss, e->pred, err);
        if (st) return st;
        char name[96];
        snprintf(name, sizeof name, "figure_%02d_s%lld_l%d_h%d.png", f, (long long)r->sample, r->layer, r->head);
        char *path = ap_path_join(e->o->out, name, err);
        if (!path) return AP_ERR_NOMEM;
        st = ap_mae_write_figure(path, &e->m->cfg, e->scaled, e->masks, e->M, e->pred, err);
        cJSON_AddItemToArray(paths, cJSON_CreateString(path));
        free(path);
        if (st) return st;
    }
    return AP_OK;
}

static cJSON *breakdowns(const evaluator *e, cJSON *j) {
    const ap_mae_eval_options *o = e->o;
    if (o->by_task) {
        cJSON *t = cJSON_AddObjectToObject(j, "by_task");
        for (size_t i = 0; t && i < e->ntasks; i++)
            if (e->by_task[i].n) cJSON_AddItemToObject(t, e->tasks[i], agg_json(&e->by_task[i], e->hm != NULL));
    }
    char key[32];
    if (o->by_layer) {
        cJSON *t = cJSON_AddObjectToObject(j, "by_layer");
        for (int l = 0; t && l < e->L; l++)
            if (e->by_layer[l].n) {
                snprintf(key, sizeof key, "%d", l);
                cJSON_AddItemToObject(t, key, agg_json(&e->by_layer[l], e->hm != NULL));
            }
    }
    if (o->by_head) {
        cJSON *t = cJSON_AddObjectToObject(j, "by_head");
        for (int k = 0; t && k < e->L * e->H; k++)
            if (e->by_head[k].n) {
                snprintf(key, sizeof key, "%d:%d", k / e->H, k % e->H);
                cJSON_AddItemToObject(t, key, agg_json(&e->by_head[k], e->hm != NULL));
            }
    }
    return j;
}

/* The head-mean table applies to a store of the same layers, heads and N. */
static const ap_mae_head_mean *head_mean_for(const evaluator *e, const ap_mae_head_mean *hm) {
    if (!hm) return NULL;
    if (hm->num_layers == e->L && hm->num_heads == e->H && hm->n_tokens == e->N) return hm;
    ap_info("%s: %d layers x %d heads, the head-mean table %d x %d: no head-mean baseline for this store",
            ap_store_path(e->store), e->L, e->H, hm->num_layers, hm->num_heads);
    return NULL;
}

/* Evaluate one store into a new JSON object (*out). with_details: the
 * breakdowns and figures (the main store, not the seen one). hm: the
 * head-mean table, or NULL. */
static ap_status eval_store(const ap_mae_eval_options *o, ap_mae_model *m, const mae_record *rec,
                            const ap_mae_head_mean *hm, const char *path, int with_details, cJSON **out,
                            ap_error *err) {
    evaluator e = {.o = o, .m = m, .rec = rec};
    ap_mae_eval_options no_figs = *o;
    if (!with_details) no_figs.figures = 0, e.o = &no_figs;
    const char *split = NULL;
    ap_status st = evaluator_init(&e, path, &split, err);
    int64_t samples = 0;
    if (!st) {
        e.hm = head_mean_for(&e, hm);
        for (int64_t i = 0; i < ap_store_count(e.store); i++) samples += !e.role || e.role[i] == AP_MAE_HELDOUT;
        ap_info("%s: split '%s' (%lld samples)", path, split, (long long)samples);
        st = evaluate(&e, err);
    }
    cJSON *j = st ? NULL : agg_json(&e.all, e.hm != NULL);
    if (j) {
        const char *model_id = ap_store_get_meta(e.store)->model_id;
        cJSON_AddStringToObject(j, "store", path);
        cJSON_AddStringToObject(j, "store_model_id", model_id ? model_id : "");
        cJSON_AddStringToObject(j, "split", split);
        cJSON_AddNumberToObject(j, "samples", (double)samples);
        if (with_details) {
            breakdowns(&e, j);
            if (o->figures > 0) st = write_figures(&e, cJSON_AddArrayToObject(j, "figures"), err);
        }
    }
    evaluator_free(&e);
    if (st) cJSON_Delete(j);
    *out = st ? NULL : j;
    return st;
}

ap_status ap_mae_eval(const ap_mae_eval_options *o, cJSON **out, ap_error *err) {
    *out = NULL;
    if (o->figures < 0 || o->max_patterns < 0)
        return ap_fail(err, AP_ERR_ARG, "--figures and --max-patterns must not be negative");
    if (o->figures > 0 && !o->out) return ap_fail(err, AP_ERR_ARG, "--figures needs --out DIR for the PNG files");
    mae_record rec;
    ap_mae_model *m = NULL;
    ap_mae_head_mean hm = {0};
    int have_hm = 0;
    cJSON *j = NULL, *seen = NULL;
    ap_status st = mae_record_load(o->model, &rec, err);
    if (!st) st = ap_mae_load(o->model, &m, err);
    if (!st && rec.present)
        st = mae_head_mean_for_model(o->model, &rec, &m->cfg, o->train_store, o->progress, &hm, &have_hm, err);
    else if (!st)
        ap_info("%s has no %s: the head-mean baseline needs training's split, and is left out", o->model,
                AP_MAE_TRAIN_ARGS);
    if (!st && o->out && !ap_path_is_dir(o->out) && mkdir(o->out, 0777) != 0)
        st = ap_fail_errno(err, AP_ERR_IO, "%s: cannot create directory", o->out);
    if (!st) {
        m->compat_reference = o->compat >= 0 ? o->compat : rec.compat;
        st = eval_store(o, m, &rec, have_hm ? &hm : NULL, o->store, 1, &j, err);
    }
    if (!st && o->seen_store) st = eval_store(o, m, &rec, have_hm ? &hm : NULL, o->seen_store, 0, &seen, err);
    if (!st) {
        if (have_hm) {
            cJSON *h = cJSON_AddObjectToObject(j, "head_mean");
            cJSON_AddStringToObject(h, "training_store", rec.store);
            cJSON_AddNumberToObject(h, "training_samples", (double)hm.samples);
        }
        cJSON_AddStringToObject(j, "model", o->model);
        cJSON_AddStringToObject(j, "compat", m->compat_reference ? "reference" : "default");
        cJSON_AddNumberToObject(j, "seed", (double)o->seed);
        if (seen) {
            double a = cJSON_GetObjectItem(j, "mse")->valuedouble, b = cJSON_GetObjectItem(seen, "mse")->valuedouble;
            cJSON_AddItemToObject(j, "seen", seen);
            seen = NULL;
            cJSON_AddNumberToObject(j, "cross_model_ratio", b > 0 ? a / b : NAN);
        }
        if (o->out) {
            char *path = ap_path_join(o->out, "eval.json", err);
            st = path ? ap_json_save(path, j, err) : AP_ERR_NOMEM;
            free(path);
        }
    }
    mae_record_free(&rec);
    ap_mae_head_mean_free(&hm);
    ap_mae_free(m);
    cJSON_Delete(seen);
    if (st) cJSON_Delete(j);
    else *out = j;
    return st;
}
