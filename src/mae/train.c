/* ap_mae_train: AP-MAE over a pattern store. Steps of one task's batch at a
 * time (tasks in turn), AdamW under the cosine schedule restarting every
 * epoch, a held-out loss on fixed patterns and masks, progress, a JSONL log,
 * and checkpoints (train_state.safetensors: parameters, AdamW moments, step,
 * mask RNG and each task's data position, written atomically; then the checkpoint
 * of docs/mae.md) from which --resume continues bit for bit. Data parallel
 * over the ranks of an ap_parallel group (docs/scale.md): each rank takes a
 * share of every batch and the gradients are summed before the step. */
#include "apmae/nn.h"
#include "internal.h"
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STATE_KEY "apmae_mae_train_state"
#define EVAL_CHUNK 32 /* images per held-out forward call */

void ap_mae_train_options_default(ap_mae_train_options *o) {
    memset(o, 0, sizeof *o);
    o->config = "small";
    o->batch = 60;
    o->heads = "all";
    o->holdout = 0.05;
    o->eval_patterns = 256;
}

/* Everything of one run, freed by trainer_free. */
typedef struct trainer {
    const ap_mae_train_options *o;
    ap_store *store;
    mae_data data;
    ap_mae_model *m;
    ap_rng rng; /* the training steps' masks */
    int64_t step, steps, cycle, eval_every, ckpt_every;
    double base_lr;
    /* data parallelism: this rank's share [lo, lo + n) of every batch (all of
     * it when alone); rank 0 evaluates and writes DIR */
    const ap_parallel *par;
    int rank, size, lo, n;
    ap_pattern_ref *refs; /* [batch]: the whole batch, on every rank */
    int64_t *masks;       /* [batch, M]: likewise */
    float *patterns;      /* [max(n, EVAL_CHUNK), N, N] */
    /* the held-out evaluation: fixed patterns and masks */
    ap_pattern_ref *eval_refs;
    int64_t *eval_masks; /* [neval, M] */
    size_t neval;
    float *eval_scaled; /* [EVAL_CHUNK, N, N] */
    cJSON *identity;    /* what a resumed run must agree on */
    char *dir_state, *dir_args, *dir_log;
    FILE *log;
} trainer;

static void trainer_free(trainer *t) {
    ap_store_close(t->store, NULL);
    mae_data_free(&t->data);
    ap_mae_free(t->m);
    free(t->refs);
    free(t->masks);
    free(t->patterns);
    free(t->eval_refs);
    free(t->eval_masks);
    free(t->eval_scaled);
    cJSON_Delete(t->identity);
    free(t->dir_state);
    free(t->dir_args);
    free(t->dir_log);
    if (t->log) fclose(t->log);
}

static ap_status check_options(const ap_mae_train_options *o, ap_error *err) {
    if (!o->store || !o->out || !o->config) return ap_fail(err, AP_ERR_ARG, "--store, --config and --out are required");
    if (o->batch < 1 || o->batch > 4096) return ap_fail(err, AP_ERR_ARG, "--batch: %d is outside 1..4096", o->batch);
    if (o->steps < 1) return ap_fail(err, AP_ERR_ARG, "--steps: %lld is not positive", (long long)o->steps);
    if (!(o->lr >= 0 && o->lr < 1)) return ap_fail(err, AP_ERR_ARG, "--lr: %g is not in (0, 1)", o->lr);
    if (!(o->holdout > 0 && o->holdout < 1))
        return ap_fail(err, AP_ERR_ARG, "--holdout: %g is not in (0, 1)", o->holdout);
    if (o->checkpoint_every < 0 || o->eval_every < 0 || o->stop_after < 0)
        return ap_fail(err, AP_ERR_ARG, "--checkpoint-every, --eval-every and --stop-after must not be negative");
    if (o->eval_patterns < 1) return ap_fail(err, AP_ERR_ARG, "--eval-patterns: %d is not positive", o->eval_patterns);
    const ap_parallel *p = o->parallel;
    if (p && (p->size < 1 || p->rank < 0 || p->rank >= p->size || (p->size > 1 && !p->sum)))
        return ap_fail(err, AP_ERR_ARG, "data parallelism: rank %d of %d is not a rank (or no sum is given)", p->rank,
                       p->size);
    if (p && o->batch < p->size)
        return ap_fail(err, AP_ERR_ARG, "--batch %d is smaller than the %d ranks: every rank takes a share of each "
                       "batch, at least one pattern", o->batch, p->size);
    return AP_OK;
}

static cJSON *config_json(const ap_mae_config *c) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    const struct {
        const char *k;
        double v;
    } f[] = {{"max_length", c->max_length},         {"patch_size", c->patch_size},
             {"mask_ratio", c->mask_ratio},         {"encoder_dim", c->encoder_dim},
             {"encoder_layers", c->encoder_layers}, {"encoder_heads", c->encoder_heads},
             {"encoder_dim_head", c->encoder_dim_head}, {"encoder_mlp_dim", c->encoder_mlp_dim},
             {"decoder_dim", c->decoder_dim},       {"decoder_layers", c->decoder_layers},
             {"decoder_heads", c->decoder_heads},   {"decoder_dim_head", c->decoder_dim_head},
             {"decoder_mlp_dim", c->decoder_mlp_dim}, {"layer_norm_eps", c->layer_norm_eps},
             {"qkv_bias", c->qkv_bias},             {"scaler", c->scaler}};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) cJSON_AddNumberToObject(j, f[i].k, f[i].v);
    return j;
}

/* The options a resumed run must share with the checkpoint. */
static cJSON *identity_json(const trainer *t) {
    const ap_mae_train_options *o = t->o;
    const ap_store_meta *sm = ap_store_get_meta(t->store);
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "store", o->store);
    cJSON_AddStringToObject(j, "store_model_id", sm->model_id ? sm->model_id : "");
    cJSON_AddNumberToObject(j, "store_samples", (double)ap_store_count(t->store));
    cJSON_AddItemToObject(j, "config", config_json(&t->m->cfg));
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "lr", t->base_lr);
    cJSON_AddNumberToObject(j, "steps", (double)o->steps);
    cJSON_AddStringToObject(j, "heads", o->heads);
    cJSON_AddStringToObject(j, "tasks", o->tasks ? o->tasks : "");
    cJSON_AddNumberToObject(j, "holdout", o->holdout);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddBoolToObject(j, "compat_reference", o->compat_reference);
    return j;
}

/* train_args.json: what evaluation needs to recompute the split. */
static ap_status write_args(const trainer *t, ap_error *err) {
    const ap_mae_train_options *o = t->o;
    cJSON *j = cJSON_CreateObject();
    if (!j) return ap_fail(err, AP_ERR_NOMEM, "out of memory");
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(j, "store", o->store);
    const char *model_id = ap_store_get_meta(t->store)->model_id;
    cJSON_AddStringToObject(j, "store_model_id", model_id ? model_id : "");
    cJSON_AddNumberToObject(j, "store_samples", (double)ap_store_count(t->store));
    uint64_t ids_hash;
    ap_status st = mae_store_ids_hash(t->store, ap_store_count(t->store), &ids_hash, err);
    if (st) {
        cJSON_Delete(j);
        return st;
    }
    char hex[24];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)ids_hash);
    cJSON_AddStringToObject(j, "store_ids_hash", hex);
    cJSON_AddStringToObject(j, "split", "a sample is held out when FNV-1a(id) mixed with the seed (splitmix64), "
                                        "as a fraction of 2^64, is below holdout; at least one sample");
    cJSON_AddNumberToObject(j, "holdout", o->holdout);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON *tasks = cJSON_AddArrayToObject(j, "tasks");
    for (size_t i = 0; tasks && i < t->data.ntasks; i++)
        cJSON_AddItemToArray(tasks, cJSON_CreateString(t->data.tasks[i].name));
    /* the candidates of the split: the --tasks given, or every task (null) */
    cJSON *given = o->tasks ? cJSON_AddArrayToObject(j, "split_tasks") : cJSON_AddNullToObject(j, "split_tasks");
    for (const char *p = o->tasks; given && p && *p;) {
        size_t n = strcspn(p, ",");
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(n < 255 ? n : 255), p);
        cJSON_AddItemToArray(given, cJSON_CreateString(name));
        p += n + (p[n] == ',');
    }
    cJSON_AddStringToObject(j, "heads", o->heads);
    cJSON_AddStringToObject(j, "config", o->config);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "lr", t->base_lr);
    cJSON_AddNumberToObject(j, "steps", (double)o->steps);
    cJSON_AddBoolToObject(j, "compat_reference", o->compat_reference);
    st = ap_json_save(t->dir_args, j, err);
    cJSON_Delete(j);
    return st;
}

/* ---- held-out loss ----------------------------------------------------------------------- */

/* Up to eval_patterns of the held-out samples' patterns (every layer and
 * head), chosen by selection sampling in store order, with their masks. */
static ap_status setup_eval(trainer *t, ap_error *err) {
    const mae_data *d = &t->data;
    const ap_mae_config *cfg = &t->m->cfg;
    const int M = ap_mae_num_masked(cfg);
    const int64_t per = (int64_t)d->L * d->H;
    int64_t left = d->heldout_samples * per, want = left < t->o->eval_patterns ? left : t->o->eval_patterns;
    t->eval_refs = ap_malloc((size_t)(want ? want : 1) * sizeof *t->eval_refs, err);
    t->eval_masks = ap_malloc((size_t)(want ? want : 1) * M * sizeof *t->eval_masks, err);
    t->eval_scaled = ap_malloc((size_t)EVAL_CHUNK * cfg->max_length * cfg->max_length * sizeof(float), err);
    if (!t->eval_refs || !t->eval_masks || !t->eval_scaled) return AP_ERR_NOMEM;
    ap_rng rng;
    ap_rng_seed(&rng, ap_hash_mix(t->o->seed, 0x6576616cull /* "eval" */));
    for (int64_t i = 0; i < ap_store_count(t->store) && (int64_t)t->neval < want; i++) {
        if (d->role[i] != AP_MAE_HELDOUT) continue;
        ap_store_sample r;
        ap_status st = ap_store_read_sample(t->store, i, &r, NULL, err);
        if (st) return st;
        for (int64_t k = 0; k < per; k++, left--) {
            if (ap_rng_below(&rng, (uint64_t)left) >= (uint64_t)(want - (int64_t)t->neval)) continue;
            int layer = (int)(k / d->H), head = (int)(k % d->H);
            ap_mae_pattern_masks(cfg, t->o->seed, r.id, layer, head, t->eval_masks + t->neval * M);
            t->eval_refs[t->neval++] = (ap_pattern_ref){i, layer, head};
        }
    }
    return AP_OK;
}

static ap_status heldout_loss(trainer *t, double *out, ap_error *err) {
    const int M = ap_mae_num_masked(&t->m->cfg);
    double sum = 0;
    float loss[EVAL_CHUNK];
    for (size_t b = 0; b < t->neval; b += EVAL_CHUNK) {
        int n = (int)(t->neval - b < EVAL_CHUNK ? t->neval - b : EVAL_CHUNK);
        ap_status st = mae_read_refs(t->store, t->eval_refs + b, (size_t)n, t->patterns, err);
        if (!st) st = ap_mae_scale(&t->m->cfg, t->patterns, n, t->eval_scaled, err);
        if (!st) st = ap_mae_forward(t->m, t->eval_scaled, n, t->eval_masks + b * M, M, loss, NULL, err);
        if (st) return st;
        for (int i = 0; i < n; i++) sum += loss[i];
    }
    *out = t->neval ? sum / (double)t->neval : NAN;
    return AP_OK;
}

/* ---- checkpoints ------------------------------------------------------------------------- */

static void rng_to_json(cJSON *j, const ap_rng *r) {
    cJSON *a = cJSON_AddArrayToObject(j, "rng");
    char buf[32];
    for (int i = 0; a && i < 4; i++) {
        snprintf(buf, sizeof buf, "%016llx", (unsigned long long)r->s[i]);
        cJSON_AddItemToArray(a, cJSON_CreateString(buf));
    }
}

static ap_status save_checkpoint(trainer *t, ap_error *err) {
    cJSON *j = cJSON_CreateObject();
    if (!j) return ap_fail(err, AP_ERR_NOMEM, "out of memory");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddNumberToObject(j, "step", (double)t->step);
    cJSON_AddNumberToObject(j, "steps", (double)t->steps);
    cJSON_AddNumberToObject(j, "adam_step", (double)t->m->adam_step);
    rng_to_json(j, &t->rng);
    cJSON *tasks = cJSON_AddArrayToObject(j, "tasks");
    for (size_t i = 0; tasks && i < t->data.ntasks; i++) {
        cJSON *k = cJSON_CreateObject();
        cJSON_AddStringToObject(k, "name", t->data.tasks[i].name);
        cJSON_AddNumberToObject(k, "epoch", (double)t->data.tasks[i].epoch);
        cJSON_AddNumberToObject(k, "pos", (double)t->data.tasks[i].pos);
        cJSON_AddItemToArray(tasks, k);
    }
    cJSON_AddItemToObject(j, "identity", cJSON_Duplicate(t->identity, 1));
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text) return ap_fail(err, AP_ERR_NOMEM, "out of memory");
    const ap_mae_model *m = t->m;
    int64_t n = (int64_t)m->nparams;
    ap_tensor_view views[3] = {{"params", AP_F32, 1, {n}, m->params},
                               {"adam_m", AP_F32, 1, {n}, m->adam_m},
                               {"adam_v", AP_F32, 1, {n}, m->adam_v}};
    const char *meta[] = {STATE_KEY, text, NULL};
    ap_status st = ap_st_write(t->dir_state, views, 3, meta, err);
    if (!st) st = ap_mae_save(m, t->o->out, err);
    free(text);
    return st;
}

/* Names the first identity field that differs, for the --resume error. */
static ap_status load_rng(const cJSON *j, const char *path, ap_rng *r, ap_error *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "rng");
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 4)
        return ap_fail(err, AP_ERR_FORMAT, "%s: training state without its rng", path);
    for (int i = 0; i < 4; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsString(e)) return ap_fail(err, AP_ERR_FORMAT, "%s: bad rng entry", path);
        r->s[i] = strtoull(e->valuestring, NULL, 16);
    }
    return AP_OK;
}

static ap_status load_positions(trainer *t, const cJSON *j, const char *path, ap_error *err) {
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(j, "tasks");
    if (!cJSON_IsArray(tasks) || (size_t)cJSON_GetArraySize(tasks) != t->data.ntasks)
        return ap_fail(err, AP_ERR_FORMAT, "%s: its task list does not match the store's training tasks", path);
    for (size_t i = 0; i < t->data.ntasks; i++) {
        const cJSON *k = cJSON_GetArrayItem(tasks, (int)i);
        const char *name = NULL;
        int64_t epoch, pos;
        ap_status st = ap_json_str(k, "name", path, 1, &name, err);
        if (!st && strcmp(name, t->data.tasks[i].name) != 0)
            st = ap_fail(err, AP_ERR_FORMAT, "%s: task %zu is '%s', the store gives '%s'", path, i, name,
                         t->data.tasks[i].name);
        if (!st) st = ap_json_int(k, "epoch", path, &epoch, err);
        if (!st) st = ap_json_int(k, "pos", path, &pos, err);
        if (!st) st = mae_data_seek(&t->data, i, epoch, pos, err);
        if (st) return st;
    }
    return AP_OK;
}

/* The moments a train step would allocate, so they can be filled. */
static ap_status alloc_adam(ap_mae_model *m, ap_error *err) {
    size_t bytes = m->nparams * sizeof(float);
    if (!m->grads && !(m->grads = ap_malloc_aligned(bytes, err))) return AP_ERR_NOMEM;
    if (!m->adam_m && !(m->adam_m = ap_malloc_aligned(bytes, err))) return AP_ERR_NOMEM;
    if (!m->adam_v && !(m->adam_v = ap_malloc_aligned(bytes, err))) return AP_ERR_NOMEM;
    return AP_OK;
}

static ap_status load_tensors(ap_mae_model *m, const ap_safetensors *sf, const char *path, ap_error *err) {
    int64_t shape[1] = {(int64_t)m->nparams};
    const char *names[3] = {"params", "adam_m", "adam_v"};
    float *dst[3] = {m->params, m->adam_m, m->adam_v};
    for (int i = 0; i < 3; i++) {
        const ap_tensor *tn;
        ap_status st = ap_st_expect(sf, names[i], 1, 1, shape, &tn, err);
        if (st) return st;
        if (tn->dtype != AP_F32) return ap_fail(err, AP_ERR_FORMAT, "%s: %s is not F32", path, names[i]);
        memcpy(dst[i], tn->data, m->nparams * sizeof(float));
    }
    return AP_OK;
}

static ap_status load_checkpoint(trainer *t, ap_error *err) {
    const char *path = t->dir_state;
    ap_safetensors *sf;
    cJSON *j;
    ap_status st = ap_train_state_open(path, STATE_KEY, t->identity, "store, config and training options", &sf, &j, err);
    if (st) return st;
    int64_t step, adam_step;
    if ((st = ap_json_int(j, "step", path, &step, err)) || (st = ap_json_int(j, "adam_step", path, &adam_step, err)))
        goto done;
    if (step < 0 || step > t->steps || adam_step != step) {
        st = ap_fail(err, AP_ERR_FORMAT, "%s: inconsistent training state (step %lld)", path, (long long)step);
        goto done;
    }
    if ((st = load_rng(j, path, &t->rng, err)) || (st = load_positions(t, j, path, err)) ||
        (st = alloc_adam(t->m, err)) || (st = load_tensors(t->m, sf, path, err)))
        goto done;
    t->step = step;
    t->m->adam_step = adam_step;
done:
    cJSON_Delete(j);
    ap_st_close(sf);
    return st;
}

/* ---- log --------------------------------------------------------------------------------- */

static ap_status log_line(trainer *t, const char *line, ap_error *err) {
    if (fputs(line, t->log) < 0 || fflush(t->log) != 0)
        return ap_fail_errno(err, AP_ERR_IO, "%s: cannot write", t->dir_log);
    return AP_OK;
}

/* ---- the run ----------------------------------------------------------------------------- */

static ap_status setup(trainer *t, ap_error *err) {
    const ap_mae_train_options *o = t->o;
    ap_mae_config cfg;
    ap_status st = ap_mae_config_resolve(o->config, &cfg, err);
    if (!st) st = ap_store_open(o->store, AP_STORE_READ, &t->store, err);
    if (!st) st = mae_check_store_n(t->store, &cfg, o->config, err);
    if (!st) st = mae_data_init(&t->data, t->store, o->heads, o->tasks, o->holdout, o->seed, err);
    if (!st) st = ap_mae_new(&cfg, o->seed, &t->m, err);
    if (st) return st;
    t->m->compat_reference = o->compat_reference;
    const size_t NN = (size_t)cfg.max_length * cfg.max_length, B = (size_t)o->batch, n = (size_t)t->n;
    t->refs = ap_malloc(B * sizeof *t->refs, err);
    t->masks = ap_malloc(B * (size_t)ap_mae_num_masked(&cfg) * sizeof *t->masks, err);
    t->patterns = ap_malloc((n > EVAL_CHUNK ? n : EVAL_CHUNK) * NN * sizeof(float), err);
    if (!t->refs || !t->masks || !t->patterns) return AP_ERR_NOMEM;
    if (t->rank == 0 && (st = setup_eval(t, err))) return st;
    t->steps = o->steps;
    /* The cosine restarts every epoch (one pass over the training patterns);
     * a run shorter than an epoch decays to 0 over the run instead. */
    int64_t per_epoch = (t->data.train_patterns + o->batch - 1) / o->batch;
    t->cycle = per_epoch < t->steps ? per_epoch : t->steps;
    t->base_lr = o->lr > 0 ? o->lr : ap_mae_base_lr(o->batch);
    t->eval_every = o->eval_every > 0 ? o->eval_every : (t->steps + 19) / 20;
    t->ckpt_every = o->checkpoint_every > 0 ? o->checkpoint_every : (t->steps + 19) / 20;
    ap_rng_seed(&t->rng, ap_hash_mix(o->seed, 0x6d61736bull /* "mask" */));
    if (!(t->identity = identity_json(t))) return ap_fail(err, AP_ERR_NOMEM, "out of memory");
    ap_info("%s: %lld training samples (%lld patterns, %zu tasks), %lld held out; %lld steps per epoch",
            o->store, (long long)t->data.train_samples, (long long)t->data.train_patterns, t->data.ntasks,
            (long long)t->data.heldout_samples, (long long)per_epoch);
    return o->resume ? load_checkpoint(t, err) : AP_OK;
}

static ap_status refuse_existing(const ap_mae_train_options *o, const trainer *t, ap_error *err) {
    if (o->resume || !(ap_path_exists(t->dir_state) || ap_path_exists(t->dir_args))) return AP_OK;
    return ap_fail(err, AP_ERR_ARG, "%s already holds a training run; pass --resume to continue it or choose "
                   "another --out", o->out);
}

static ap_status open_log(trainer *t, ap_error *err) {
    ap_status st = t->o->resume ? ap_log_keep_steps(t->dir_log, t->step, err)
                                : ap_write_file_atomic(t->dir_log, "", 0, err);
    if (st) return st;
    if (!(t->log = fopen(t->dir_log, "a"))) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot open", t->dir_log);
    return AP_OK;
}

/* What every rank must hold alike: the parameters at this step. */
static ap_status check_ranks_agree(const trainer *t, ap_error *err) {
    uint64_t h = ap_hash_mix(ap_hash_bytes(t->m->params, t->m->nparams * sizeof(float)), (uint64_t)t->step);
    ap_status st = ap_parallel_check_same(t->par, h, "set of parameters", err);
    if (st) ap_error_prefix(err, "step %lld (the ranks' gradient sums differ)", (long long)t->step);
    return st;
}

/* The batch's gradient and mean loss from every rank's share: each rank has
 * the gradient of the mean over its n patterns, so it weighs it by n / batch
 * before the sum. */
static ap_status sum_over_ranks(trainer *t, float *loss, ap_error *err) {
    const double w = (double)t->n / t->o->batch;
    ap_nn_scale(t->m->grads, t->m->nparams, (float)w);
    float part = (float)(*loss * w);
    ap_status st = t->par->sum(t->par->ctx, &part, 1, err);
    if (!st) st = t->par->sum(t->par->ctx, t->m->grads, t->m->nparams, err);
    *loss = part;
    return st;
}

/* One step: the batch of this step's task and its masks (the whole batch on
 * every rank, so the data order and the mask generator are those of a
 * process alone), this rank's share read and its gradient taken, the sum
 * over the ranks, AdamW. `pending`: a failure of this rank since its last
 * step (rank 0's log, evaluation or checkpoint), reported to the other ranks
 * in place of a gradient. */
static ap_status step_once(trainer *t, ap_status pending, double lr, float *loss, ap_error *err) {
    const ap_mae_config *cfg = &t->m->cfg;
    const int B = t->o->batch, M = ap_mae_num_masked(cfg);
    ap_status st = pending;
    if (!st) st = mae_data_next(&t->data, t->step, B, t->refs, err);
    if (!st) {
        ap_mae_random_masks(cfg, &t->rng, B, t->masks);
        st = mae_read_refs(t->store, t->refs + t->lo, (size_t)t->n, t->patterns, err);
    }
    if (!st) st = ap_mae_grad(t->m, t->patterns, t->n, t->masks + (size_t)t->lo * M, M, NULL, loss, err);
    if ((st = ap_parallel_agree(t->par, st, err))) return st;
    if (t->size > 1 && t->step % t->ckpt_every == 0 && (st = check_ranks_agree(t, err))) return st;
    if (t->size > 1 && (st = sum_over_ranks(t, loss, err))) return st;
    if ((st = ap_mae_adamw_step(t->m, lr, err))) return st;
    if (!isfinite(*loss))
        return ap_fail(err, AP_ERR_INTERNAL, "the loss became %g at step %lld", (double)*loss,
                       (long long)t->step + 1);
    return AP_OK;
}

/* Rank 0 after step t->step: the log line (with the held-out loss at
 * evaluation steps), the progress bar (bar: NULL for none; `done` steps of
 * this run), the checkpoint. */
static ap_status report_step(trainer *t, ap_mae_train_result *res, const char *task, float loss, double lr,
                             double ips, int eval, int last, ap_progress *bar, int64_t done, ap_error *err) {
    char line[512];
    int len = snprintf(line, sizeof line, "{\"step\":%lld,\"task\":\"%s\",\"loss\":%.6g,\"lr\":%.6g,"
                       "\"images_per_s\":%.1f", (long long)t->step, task, (double)loss, lr, ips);
    ap_status st;
    if (eval) {
        if ((st = heldout_loss(t, &res->heldout_loss, err))) return st;
        len += snprintf(line + len, sizeof line - (size_t)len, ",\"heldout_loss\":%.6g", res->heldout_loss);
    }
    snprintf(line + len, sizeof line - (size_t)len, "}\n");
    if ((st = log_line(t, line, err))) return st;
    if (bar) {
        char extra[160];
        snprintf(extra, sizeof extra, "loss %.4f heldout %.4f | %.0f img/s | lr %.2e", (double)loss,
                 res->heldout_loss, ips, lr);
        ap_progress_update(bar, done, extra);
    }
    return t->step % t->ckpt_every == 0 || last ? save_checkpoint(t, err) : AP_OK;
}

/* The steps. A failure of rank 0 after a step (log, evaluation, checkpoint)
 * stays pending until the next step (or the end) tells every rank, so that
 * the ranks always stop together. */
static ap_status run(trainer *t, ap_mae_train_result *res, ap_error *err) {
    const ap_mae_train_options *o = t->o;
    const int writer = t->rank == 0, progress = o->progress && writer;
    ap_status st = AP_OK; /* pending: this rank's failure not yet told to the others */
    if (!o->resume && writer) {
        char line[64];
        st = heldout_loss(t, &res->heldout_loss_initial, err);
        res->heldout_loss = res->heldout_loss_initial;
        snprintf(line, sizeof line, "{\"step\":0,\"heldout_loss\":%.6g}\n", res->heldout_loss_initial);
        if (!st) st = log_line(t, line, err);
    }
    const int64_t start = t->step, stop = o->stop_after > 0 && o->stop_after < t->steps ? o->stop_after : t->steps;
    ap_progress bar;
    if (progress) ap_progress_begin(&bar, "mae train", stop - start);
    double t0 = ap_now(), loss_sum = 0;
    int64_t loss_n = 0;
    int stopped_together = 0;
    while (t->step < stop) {
        const char *task = t->data.tasks[t->step % (int64_t)t->data.ntasks].name;
        double lr = ap_mae_cosine_lr(t->base_lr, t->step, t->cycle);
        float loss;
        if ((st = step_once(t, st, lr, &loss, err))) {
            stopped_together = 1;
            break;
        }
        t->step++;
        loss_sum += loss, loss_n++;
        double elapsed = ap_now() - t0, ips = (double)(t->step - start) * o->batch / (elapsed > 0 ? elapsed : 1e-9);
        int last = t->step == stop, eval = t->step % t->eval_every == 0 || last;
        if (eval) {
            res->train_loss = loss_sum / (double)loss_n;
            loss_sum = 0, loss_n = 0;
        }
        if (writer)
            st = report_step(t, res, task, loss, lr, ips, eval, last, progress ? &bar : NULL, t->step - start, err);
    }
    if (!stopped_together) st = ap_parallel_agree(t->par, st, err);
    if (!stopped_together && !st && t->size > 1) st = check_ranks_agree(t, err);
    res->seconds = ap_now() - t0;
    if (progress) {
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.4f heldout %.4f", res->train_loss, res->heldout_loss);
        ap_progress_end(&bar, extra);
    }
    res->step = t->step;
    res->images_per_s = res->seconds > 0 ? (double)(t->step - start) * o->batch / res->seconds : 0;
    return st;
}

ap_status ap_mae_train(const ap_mae_train_options *o, ap_mae_train_result *res, ap_error *err) {
    memset(res, 0, sizeof *res);
    res->train_loss = res->heldout_loss = res->heldout_loss_initial = NAN;
    ap_status st = check_options(o, err);
    if (st) return st;
    trainer t = {.o = o, .par = o->parallel, .size = 1};
    if (t.par) t.rank = t.par->rank, t.size = t.par->size;
    ap_parallel_share(o->batch, t.rank, t.size, &t.lo, &t.n);
    const int writer = t.rank == 0; /* the rank that evaluates and writes DIR */
    t.dir_state = ap_path_join(o->out, AP_MAE_TRAIN_STATE, err);
    t.dir_args = ap_path_join(o->out, AP_MAE_TRAIN_ARGS, err);
    t.dir_log = ap_path_join(o->out, AP_MAE_TRAIN_LOG, err);
    if (!t.dir_state || !t.dir_args || !t.dir_log) st = AP_ERR_NOMEM;
    if (!st && writer) st = refuse_existing(o, &t, err);
    if (!st) st = setup(&t, err);
    /* every rank set up before DIR is written, so a failed start leaves no run behind */
    st = ap_parallel_agree(t.par, st, err);
    if (!st && writer && !o->resume) st = ap_make_dirs(o->out, err);
    if (!st && writer && !o->resume) st = write_args(&t, err);
    if (!st && writer) st = open_log(&t, err);
    st = ap_parallel_agree(t.par, st, err);
    if (!st) {
        if (o->resume) ap_info("resuming at step %lld of %lld", (long long)t.step, (long long)t.steps);
        res->steps = t.steps;
        res->steps_per_epoch = (t.data.train_patterns + o->batch - 1) / o->batch;
        res->params = (int64_t)t.m->nparams;
        res->train_samples = t.data.train_samples;
        res->heldout_samples = t.data.heldout_samples;
        res->train_patterns = t.data.train_patterns;
        res->ntasks = (int)t.data.ntasks;
        st = run(&t, res, err);
    }
    trainer_free(&t);
    return st;
}
