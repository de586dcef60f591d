/* The AP-MAE model: create, load/save (config.json + model.safetensors),
 * masked forward, encoding, and the training step (backward, then AdamW). */
#include "apmae/io.h"
#include "apmae/nn.h"
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


/* Grow *buf to hold n elements of size sz (contents not kept). */
static ap_status reserve(void **buf, size_t *cap, size_t n, size_t sz, int aligned, ap_error *err) {
    if (n <= *cap && *buf) return AP_OK;
    if (aligned) ap_free_aligned(*buf);
    else free(*buf);
    *cap = 0;
    size_t bytes = n * sz > 0 ? n * sz : 64;
    *buf = aligned ? ap_malloc_aligned(bytes, err) : ap_malloc(bytes, err);
    if (!*buf) return AP_ERR_NOMEM;
    *cap = n;
    return AP_OK;
}

static ap_status use_plan(ap_mae_work *w, int B, int Se, int M, int with_dec, ap_error *err) {
    mae_plan_init(&w->plan, &w->L, B, Se, M, with_dec);
    return reserve((void **)&w->acts, &w->acts_cap, w->plan.total, sizeof(float), 1, err);
}

/* A model with its layout and an uninitialised parameter block. */
static ap_status model_alloc(const ap_mae_config *cfg, ap_mae_model **out, ap_error *err) {
    *out = NULL;
    ap_mae_model *m = ap_calloc(1, sizeof *m, err);
    if (!m) return AP_ERR_NOMEM;
    m->cfg = *cfg;
    m->work = ap_calloc(1, sizeof *m->work, err);
    ap_status st = m->work ? mae_layout_init(&m->work->L, cfg, err) : AP_ERR_NOMEM;
    if (st == AP_OK) {
        m->nparams = m->work->L.total;
        m->params = ap_malloc_aligned(m->nparams * sizeof(float), err);
        if (!m->params) st = AP_ERR_NOMEM;
    }
    if (st != AP_OK) {
        ap_mae_free(m);
        return st;
    }
    *out = m;
    return AP_OK;
}

ap_status ap_mae_new(const ap_mae_config *cfg, uint64_t seed, ap_mae_model **out, ap_error *err) {
    ap_status st = ap_mae_config_validate(cfg, "AP-MAE config", err);
    if (st == AP_OK) st = model_alloc(cfg, out, err);
    if (st != AP_OK) return st;
    ap_rng rng;
    ap_rng_seed(&rng, seed);
    mae_layout_init_params(&(*out)->work->L, (*out)->params, &rng);
    return AP_OK;
}

void ap_mae_free(ap_mae_model *m) {
    if (!m) return;
    if (m->work) {
        mae_layout_free(&m->work->L);
        ap_free_aligned(m->work->acts);
        free(m->work->vis);
        free(m->work->scaled);
        free(m->work->loss);
        free(m->work->masks);
        free(m->work);
    }
    ap_free_aligned(m->params);
    ap_free_aligned(m->grads);
    ap_free_aligned(m->adam_m);
    ap_free_aligned(m->adam_v);
    free(m);
}

size_t ap_mae_tensor_count(const ap_mae_model *m) { return m->work->L.ntensors; }

const ap_mae_tensor_info *ap_mae_tensor(const ap_mae_model *m, size_t i) {
    return i < m->work->L.ntensors ? &m->work->L.tensors[i] : NULL;
}

const ap_mae_tensor_info *ap_mae_tensor_find(const ap_mae_model *m, const char *name) {
    for (size_t i = 0; i < m->work->L.ntensors; i++)
        if (strcmp(m->work->L.tensors[i].name, name) == 0) return &m->work->L.tensors[i];
    return NULL;
}

/* ---- Checkpoints ------------------------------------------------------------ */

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

static ap_status load_tensors(ap_mae_model *m, const ap_safetensors *st, const char *file, ap_error *err) {
    const mae_layout *L = &m->work->L;
    for (size_t i = 0; i < L->ntensors; i++) {
        const ap_mae_tensor_info *want = &L->tensors[i];
        const ap_tensor *t = ap_st_find(st, want->name);
        if (!t)
            return ap_fail(err, AP_ERR_FORMAT, "%s: missing tensor '%s' (the config.json beside it needs it)", file,
                           want->name);
        int same = t->ndim == want->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == want->shape[d];
        if (!same) {
            char got[128], exp[128];
            shape_str(got, sizeof got, t->ndim, t->shape);
            shape_str(exp, sizeof exp, want->ndim, want->shape);
            return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s' has shape %s, the config.json beside it implies %s",
                           t->file ? t->file : file, want->name, got, exp);
        }
        if (t->dtype != AP_F32 && t->dtype != AP_F16 && t->dtype != AP_BF16)
            return ap_fail(err, AP_ERR_FORMAT, "%s: tensor '%s' has dtype %s (expected F32, F16 or BF16)",
                           t->file ? t->file : file, want->name, ap_dtype_name(t->dtype));
        ap_to_f32(t->dtype, t->data, m->params + want->offset, want->numel);
    }
    if (st->ntensors > L->ntensors) /* names are unique, so some are not ours */
        ap_warn("%s: %zu tensors that AP-MAE does not use are ignored", file, st->ntensors - L->ntensors);
    return AP_OK;
}

ap_status ap_mae_load(const char *dir, ap_mae_model **out, ap_error *err) {
    *out = NULL;
    ap_mae_config cfg;
    ap_status st = ap_mae_config_load(dir, &cfg, err);
    if (st) return st;
    ap_mae_model *m;
    if ((st = model_alloc(&cfg, &m, err))) return st;
    char *file = ap_path_is_dir(dir) ? ap_path_join(dir, "model.safetensors", err) : NULL;
    ap_safetensors *sf = NULL;
    if (!ap_path_is_dir(dir))
        st = ap_fail(err, AP_ERR_ARG, "%s: an AP-MAE checkpoint is a directory (config.json, model.safetensors)", dir);
    else if (!file)
        st = AP_ERR_NOMEM;
    else if ((st = ap_st_open(dir, &sf, err)) == AP_OK) /* a sharded checkpoint has no model.safetensors */
        st = load_tensors(m, sf, ap_path_exists(file) ? file : dir, err);
    ap_st_close(sf);
    free(file);
    if (st) {
        ap_mae_free(m);
        return st;
    }
    *out = m;
    return AP_OK;
}

ap_status ap_mae_save(const ap_mae_model *m, const char *dir, ap_error *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return ap_fail_errno(err, AP_ERR_IO, "%s: cannot create", dir);
    const mae_layout *L = &m->work->L;
    char *cfg_path = ap_path_join(dir, "config.json", err);
    char *st_path = ap_path_join(dir, "model.safetensors", err);
    ap_tensor_view *views = ap_calloc(L->ntensors, sizeof *views, err);
    ap_status st = cfg_path && st_path && views ? AP_OK : AP_ERR_NOMEM;
    if (st == AP_OK) {
        for (size_t i = 0; i < L->ntensors; i++) {
            const ap_mae_tensor_info *t = &L->tensors[i];
            views[i].name = t->name;
            views[i].dtype = AP_F32;
            views[i].ndim = t->ndim;
            for (int d = 0; d < t->ndim; d++) views[i].shape[d] = t->shape[d];
            views[i].data = m->params + t->offset;
        }
        static const char *const meta[] = {"format", "pt", NULL};
        st = ap_st_write(st_path, views, L->ntensors, meta, err);
    }
    if (st == AP_OK) st = ap_mae_config_save(cfg_path, &m->cfg, err);
    free(views);
    free(cfg_path);
    free(st_path);
    return st;
}

/* ---- Forward, encoding ------------------------------------------------------- */

static ap_status check_batch(int B, ap_error *err) {
    if (B < 1) return ap_fail(err, AP_ERR_ARG, "AP-MAE: batch of %d images", B);
    return AP_OK;
}

/* Forward with validated masks; loss [B] into out_loss. */
static ap_status forward(ap_mae_model *m, const float *scaled, int B, const int64_t *masked, int M, float *out_loss,
                         ap_error *err) {
    ap_mae_work *w = m->work;
    const int V = w->L.T - M;
    ap_status st = use_plan(w, B, 1 + V, M, 1, err);
    if (st == AP_OK) st = reserve((void **)&w->vis, &w->vis_cap, (size_t)B * V, sizeof(int), 0, err);
    if (st) return st;
    mae_visible_ids(&w->L, masked, B, M, w->vis);
    mae_forward_f(&w->L, &w->plan, m->compat_reference, m->params, w->acts, scaled, masked, w->vis, out_loss);
    return AP_OK;
}

ap_status ap_mae_forward(ap_mae_model *m, const float *scaled, int B, const int64_t *masked, int M, float *loss,
                         float *pred, ap_error *err) {
    ap_status st = check_batch(B, err);
    if (st == AP_OK) st = ap_mae_check_masks(&m->cfg, masked, B, M, err);
    if (st == AP_OK) st = forward(m, scaled, B, masked, M, loss, err);
    if (st == AP_OK && pred)
        memcpy(pred, m->work->acts + m->work->plan.pred, (size_t)B * M * m->work->L.P2 * sizeof(float));
    return st;
}

ap_status ap_mae_encode(ap_mae_model *m, const float *scaled, int B, float *cls, float *mean, ap_error *err) {
    ap_mae_work *w = m->work;
    ap_status st = check_batch(B, err);
    if (st == AP_OK) st = use_plan(w, B, 1 + (m->compat_reference ? w->L.G2 : w->L.T), 0, 0, err);
    if (st) return st;
    mae_encode_f(&w->L, &w->plan, m->compat_reference, m->params, w->acts, scaled, cls, mean);
    return AP_OK;
}

/* ---- Training ------------------------------------------------------------------ */

double ap_mae_base_lr(int global_batch) { return 1.5e-4 * global_batch / 50.0; }

double ap_mae_cosine_lr(double base_lr, int64_t step, int64_t cycle) {
    if (cycle <= 0) return base_lr;
    double t = (double)(step % cycle) / (double)cycle;
    return base_lr * 0.5 * (1.0 + cos(M_PI * t));
}

/* PyTorch's AdamW with the published training's settings: weight decay on
 * every parameter. */
static const ap_nn_adamw k_adamw = {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.05};

static ap_status train_buffers(ap_mae_model *m, int B, int M, ap_error *err) {
    ap_mae_work *w = m->work;
    const size_t img = (size_t)m->cfg.max_length * m->cfg.max_length;
    if (!m->grads) {
        m->grads = ap_malloc_aligned(m->nparams * sizeof(float), err);
        m->adam_m = ap_malloc_aligned(m->nparams * sizeof(float), err);
        m->adam_v = ap_malloc_aligned(m->nparams * sizeof(float), err);
        if (!m->grads || !m->adam_m || !m->adam_v) return AP_ERR_NOMEM;
        memset(m->adam_m, 0, m->nparams * sizeof(float));
        memset(m->adam_v, 0, m->nparams * sizeof(float));
    }
    ap_status st = reserve((void **)&w->scaled, &w->scaled_cap, (size_t)B * img, sizeof(float), 0, err);
    if (st == AP_OK) st = reserve((void **)&w->loss, &w->loss_cap, (size_t)B, sizeof(float), 0, err);
    if (st == AP_OK) st = reserve((void **)&w->masks, &w->masks_cap, (size_t)B * M, sizeof(int64_t), 0, err);
    return st;
}

ap_status ap_mae_grad(ap_mae_model *m, const float *patterns, int B, const int64_t *masked, int M, ap_rng *rng,
                      float *loss, ap_error *err) {
    ap_mae_work *w = m->work;
    if (!masked) M = ap_mae_num_masked(&m->cfg);
    ap_status st = check_batch(B, err);
    if (st == AP_OK && masked) st = ap_mae_check_masks(&m->cfg, masked, B, M, err);
    if (st == AP_OK) st = train_buffers(m, B, M, err);
    if (st == AP_OK) st = ap_mae_scale(&m->cfg, patterns, B, w->scaled, err);
    if (st) return st;
    if (!masked) {
        ap_mae_random_masks(&m->cfg, rng, B, w->masks);
        masked = w->masks;
    }
    if ((st = forward(m, w->scaled, B, masked, M, w->loss, err))) return st;
    double sum = 0;
    for (int b = 0; b < B; b++) sum += w->loss[b];
    if (loss) *loss = (float)(sum / B);
    memset(m->grads, 0, m->nparams * sizeof(float));
    mae_backward_f(&w->L, &w->plan, m->compat_reference, m->params, w->acts, masked, w->vis, m->grads);
    return AP_OK;
}

ap_status ap_mae_adamw_step(ap_mae_model *m, double lr, ap_error *err) {
    if (!m->grads) return ap_fail(err, AP_ERR_ARG, "AP-MAE: an AdamW step needs the gradients of ap_mae_grad first");
    m->adam_step++;
    ap_nn_adamw_step(&k_adamw, m->params, m->grads, m->adam_m, m->adam_v, m->nparams, m->adam_step, lr);
    return AP_OK;
}

ap_status ap_mae_train_step(ap_mae_model *m, const float *patterns, int B, const int64_t *masked, int M,
                            ap_rng *rng, double lr, float *loss, ap_error *err) {
    ap_status st = ap_mae_grad(m, patterns, B, masked, M, rng, loss, err);
    return st ? st : ap_mae_adamw_step(m, lr, err);
}
