/* The head-mean baseline (docs/mae.md): per (layer, head) of the LM, the
 * mean of the scaled patterns of the AP-MAE's training samples, predicting
 * every masked patch of that head. It knows which head a pattern came from
 * and nothing of the pattern itself, so an AP-MAE that does not beat it has
 * learnt no more than head identity. One streaming pass over the training
 * store computes it; the table is cached beside the checkpoint, so later
 * evaluations (and a shipped checkpoint) need no training store. */
#include "train_internal.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_KEY "apmae_head_mean"

static size_t tri_size(int N) { return (size_t)N * (size_t)(N + 1) / 2; }

void ap_mae_head_mean_free(ap_mae_head_mean *hm) {
    free(hm->mean);
    memset(hm, 0, sizeof *hm);
}

/* Sum the lower triangles of L·H scaled images into sum [L·H, T]. */
static void accumulate(const float *scaled, int images, int N, double *sum) {
    const size_t T = tri_size(N), NN = (size_t)N * N;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < images; k++) {
        const float *x = scaled + (size_t)k * NN;
        double *s = sum + (size_t)k * T;
        for (int r = 0; r < N; r++)
            for (int c = 0; c <= r; c++) s[(size_t)r * (r + 1) / 2 + c] += x[(size_t)r * N + c];
    }
}

ap_status ap_mae_head_mean_compute(ap_store *s, const ap_mae_config *cfg, const signed char *role, int64_t count,
                                   int progress, ap_mae_head_mean *out, ap_error *err) {
    memset(out, 0, sizeof *out);
    ap_status st = mae_check_store_n(s, cfg, "the AP-MAE", err);
    if (st) return st;
    const ap_store_meta *m = ap_store_get_meta(s);
    const int L = m->num_layers, H = m->num_heads, N = m->n_tokens;
    if (count > ap_store_count(s)) count = ap_store_count(s);
    int64_t n = 0;
    for (int64_t i = 0; i < count; i++) n += role[i] == AP_MAE_TRAIN;
    if (n == 0) return ap_fail(err, AP_ERR_ARG, "%s: no training samples to average", ap_store_path(s));
    const size_t T = tri_size(N), NN = (size_t)N * N, images = (size_t)L * H;
    double *sum = ap_calloc(images * T, sizeof *sum, err);
    float *raw = ap_malloc(images * NN * sizeof *raw, err), *scaled = ap_malloc(images * NN * sizeof *scaled, err);
    float *mean = ap_malloc(images * T * sizeof *mean, err);
    uint16_t *half = ap_malloc(images * T * sizeof *half, err);
    st = sum && raw && scaled && mean && half ? AP_OK : AP_ERR_NOMEM;
    ap_progress bar;
    const int show = progress && !st;
    if (show) ap_progress_begin(&bar, "head mean", n);
    int64_t done = 0;
    for (int64_t i = 0; i < count && !st; i++) {
        if (role[i] != AP_MAE_TRAIN) continue;
        st = ap_store_read_patterns(s, i, raw, err);
        if (!st) st = ap_mae_scale(cfg, raw, (int)images, scaled, err);
        if (st) break;
        accumulate(scaled, (int)images, N, sum);
        if (show) ap_progress_update(&bar, ++done, NULL);
    }
    if (show) ap_progress_end(&bar, NULL);
    if (!st) {
        for (size_t k = 0; k < images * T; k++) mean[k] = (float)(sum[k] / (double)n);
        /* float16, as cached: a fresh table and a cached one are the same */
        ap_from_f32(AP_F16, mean, half, images * T);
        ap_to_f32(AP_F16, half, mean, images * T);
        *out = (ap_mae_head_mean){L, H, N, n, mean};
        mean = NULL;
    }
    free(sum);
    free(raw);
    free(scaled);
    free(mean);
    free(half);
    return st;
}

double ap_mae_head_mean_mse(const ap_mae_config *cfg, const ap_mae_head_mean *hm, int layer, int head,
                            const float *scaled, const int64_t *masked, int M) {
    const int N = cfg->max_length, p = cfg->patch_size, g = N / p;
    const float *mean = hm->mean + ((size_t)layer * hm->num_heads + head) * tri_size(N);
    double se = 0;
    for (int i = 0; i < M; i++) {
        const int row0 = (int)(masked[i] / g) * p, col0 = (int)(masked[i] % g) * p;
        for (int r = row0; r < row0 + p; r++)
            for (int c = col0; c < col0 + p; c++) {
                double d = (c <= r ? mean[(size_t)r * (r + 1) / 2 + c] : 0.0) - scaled[(size_t)r * N + c];
                se += d * d;
            }
    }
    return se / ((double)M * p * p);
}

/* ---- the cache beside the checkpoint --------------------------------------------------------- */

/* What the table depends on: the training split and the scaler. */
static cJSON *cache_identity(const mae_record *rec, const ap_mae_config *cfg) {
    cJSON *j = cJSON_CreateObject();
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)rec->seed);
    cJSON_AddStringToObject(j, "store_model_id", rec->model_id);
    cJSON_AddNumberToObject(j, "store_samples", (double)rec->store_samples);
    if (rec->has_ids_hash) {
        char hex[24];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)rec->store_ids_hash);
        cJSON_AddStringToObject(j, "store_ids_hash", hex);
    }
    cJSON_AddNumberToObject(j, "holdout", rec->holdout);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON *tasks = cJSON_AddArrayToObject(j, "split_tasks");
    for (size_t i = 0; tasks && i < rec->ntasks; i++) cJSON_AddItemToArray(tasks, cJSON_CreateString(rec->tasks[i]));
    cJSON_AddStringToObject(j, "scaler", ap_mae_scaler_name(cfg->scaler));
    cJSON_AddNumberToObject(j, "max_length", cfg->max_length);
    return j;
}

static ap_status cache_save(const char *path, const ap_mae_head_mean *hm, const cJSON *identity, ap_error *err) {
    const size_t n = (size_t)hm->num_layers * hm->num_heads * tri_size(hm->n_tokens);
    uint16_t *half = ap_malloc(n * sizeof *half, err);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "identity", cJSON_Duplicate(identity, 1));
    cJSON_AddNumberToObject(j, "samples", (double)hm->samples);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    ap_status st = half && text ? AP_OK : ap_fail(err, AP_ERR_NOMEM, "out of memory");
    if (!st) {
        ap_from_f32(AP_F16, hm->mean, half, n);
        ap_tensor_view v = {"head_mean", AP_F16, 3,
                            {hm->num_layers, hm->num_heads, (int64_t)tri_size(hm->n_tokens)}, half};
        const char *meta[] = {CACHE_KEY, text, NULL};
        st = ap_st_write(path, &v, 1, meta, err);
    }
    free(half);
    free(text);
    return st;
}

/* The table of the file when it is one of this identity (*hit); a table of
 * another training split is no error (it is recomputed). */
static ap_status cache_load(const char *path, const cJSON *identity, ap_mae_head_mean *out, int *hit,
                            ap_error *err) {
    *hit = 0;
    ap_safetensors *sf = NULL;
    ap_status st = ap_st_open(path, &sf, err);
    if (st) return st;
    const char *text = ap_st_meta(sf, CACHE_KEY);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "identity");
    const ap_tensor *t = ap_st_find(sf, "head_mean");
    int N = 1;
    while (t && t->ndim == 3 && tri_size(N) < (size_t)t->shape[2]) N++; /* T = N(N+1)/2 */
    int64_t samples = 0;
    if (!id || !t || t->dtype != AP_F16 || t->ndim != 3 || tri_size(N) != (size_t)t->shape[2])
        st = ap_fail(err, AP_ERR_FORMAT, "%s: not a head-mean table ('%s' metadata and 'head_mean' F16 [L, H, "
                     "N(N+1)/2])", path, CACHE_KEY);
    else if (cJSON_Compare(id, identity, 1) && !(st = ap_json_int(j, "samples", path, &samples, err))) {
        float *mean = ap_malloc(t->numel * sizeof *mean, err);
        if (mean) {
            ap_to_f32(AP_F16, t->data, mean, t->numel);
            *out = (ap_mae_head_mean){(int)t->shape[0], (int)t->shape[1], N, samples, mean};
            *hit = 1;
        } else {
            st = AP_ERR_NOMEM;
        }
    }
    cJSON_Delete(j);
    ap_st_close(sf);
    return st;
}

/* The table from the training store, by the recorded split. */
static ap_status compute_from_store(const char *path, const mae_record *rec, const ap_mae_config *cfg, int progress,
                                    ap_mae_head_mean *out, ap_error *err) {
    ap_store *s = NULL;
    signed char *role = NULL;
    ap_status st = ap_store_open(path, AP_STORE_READ, &s, err);
    if (st) return st;
    const char *model_id = ap_store_get_meta(s)->model_id;
    const int64_t S = ap_store_count(s), count = rec->store_samples >= 0 ? rec->store_samples : S;
    int same = 0;
    if (!model_id || strcmp(model_id, rec->model_id) != 0)
        st = ap_fail(err, AP_ERR_ARG, "%s: a store of model '%s', but the AP-MAE was trained on patterns of '%s'",
                     path, model_id ? model_id : "", rec->model_id);
    else if (count > S)
        st = ap_fail(err, AP_ERR_ARG, "%s: %lld samples, but training saw %lld", path, (long long)S, (long long)count);
    else if (!(st = mae_is_training_store(s, rec, &same, err)) && !same)
        st = ap_fail(err, AP_ERR_ARG, "%s: not the store the AP-MAE was trained on (its first %lld scenario ids differ "
                     "from the ones train_args.json records)", path, (long long)count);
    else if (!st && !(role = ap_malloc((size_t)(S ? S : 1), err)))
        st = AP_ERR_NOMEM;
    if (!st) st = ap_mae_split(s, (const char *const *)rec->tasks, rec->ntasks, rec->holdout, rec->seed, role, err);
    if (!st) {
        ap_info("head-mean baseline: averaging the training samples of %s", path);
        st = ap_mae_head_mean_compute(s, cfg, role, count, progress, out, err);
    }
    free(role);
    ap_store_close(s, NULL);
    return st;
}

ap_status mae_head_mean_for_model(const char *model, const mae_record *rec, const ap_mae_config *cfg,
                                  const char *train_store, int progress, ap_mae_head_mean *out, int *found,
                                  ap_error *err) {
    memset(out, 0, sizeof *out);
    *found = 0;
    char *cache = ap_path_join(model, AP_MAE_HEAD_MEAN_FILE, err);
    cJSON *identity = cache_identity(rec, cfg);
    if (!cache || !identity) {
        free(cache);
        cJSON_Delete(identity);
        return ap_fail(err, AP_ERR_NOMEM, "out of memory");
    }
    const char *store = train_store ? train_store : rec->store;
    ap_status st = AP_OK;
    int hit = 0;
    if (ap_path_exists(cache)) st = cache_load(cache, identity, out, &hit, err);
    if (!st && !hit && ap_path_exists(store)) {
        st = compute_from_store(store, rec, cfg, progress, out, err);
        hit = st == AP_OK;
        ap_error save_err = {0};
        if (hit && cache_save(cache, out, identity, &save_err))
            ap_warn("head-mean baseline not cached: %s", save_err.msg);
    } else if (!st && !hit) {
        ap_warn("head-mean baseline left out: the training store %s is not there (see --train-store), and %s %s",
                store, cache, ap_path_exists(cache) ? "is of another training split" : "does not exist");
    }
    *found = hit;
    free(cache);
    cJSON_Delete(identity);
    return st;
}
