/* The trainable model: parameter layout in checkpoint order, initialisation,
 * activation plan, AdamW, the learning-rate schedule, built-in
 * architectures and the Hugging Face export. */
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- architectures ----------------------------------------------------------- */

/* "small" is what the shipped model uses (docs/training.md says why);
 * "tiny" trains in seconds, for tests. Both: StarCoder2's biases, tied head,
 * LayerNorm eps 1e-5, no sliding window. */
static const struct {
    const char *name;
    int hidden, layers, heads, kv_heads, intermediate;
} k_builtin[] = {
    {"small", 256, 6, 8, 2, 1024},
    {"tiny", 32, 2, 4, 2, 64},
};

ap_status ap_lm_train_config(const char *name_or_path, int vocab_size, int seq_len, ap_lm_config *cfg,
                             ap_error *err) {
    if (seq_len < 2) return ap_fail(err, AP_ERR_ARG, "sequence length %d must be at least 2", seq_len);
    for (size_t i = 0; i < sizeof k_builtin / sizeof k_builtin[0]; i++) {
        if (strcmp(name_or_path, k_builtin[i].name) != 0) continue;
        *cfg = (ap_lm_config){
            .vocab_size = vocab_size,
            .hidden_size = k_builtin[i].hidden,
            .intermediate_size = k_builtin[i].intermediate,
            .num_layers = k_builtin[i].layers,
            .num_heads = k_builtin[i].heads,
            .num_kv_heads = k_builtin[i].kv_heads,
            .head_dim = k_builtin[i].hidden / k_builtin[i].heads,
            .max_position_embeddings = seq_len,
            .rope_theta = 10000.0,
            .norm_epsilon = 1e-5,
            .sliding_window = 0,
            .use_bias = 1,
            .tie_word_embeddings = 1,
        };
        return ap_lm_config_validate(cfg, name_or_path, err);
    }
    char *path = NULL;
    if (ap_path_is_dir(name_or_path)) {
        path = ap_path_join(name_or_path, "config.json", err);
        if (!path) return AP_ERR_NOMEM;
    } else if (!ap_path_exists(name_or_path)) {
        return ap_fail(err, AP_ERR_ARG, "--config %s: neither a built-in architecture (small, tiny) nor a file",
                       name_or_path);
    }
    ap_status st = ap_lm_config_load(path ? path : name_or_path, cfg, err);
    free(path);
    if (st) return st;
    if (cfg->vocab_size < vocab_size)
        return ap_fail(err, AP_ERR_ARG, "%s: vocab_size %d is smaller than the tokenizer's %d ids", name_or_path,
                       cfg->vocab_size, vocab_size);
    cfg->max_position_embeddings = seq_len;
    return AP_OK;
}

/* ---- layout ----------------------------------------------------------------------- */

typedef struct layout_builder {
    lmt_layout *L;
    size_t cap;
    ap_error *err;
} layout_builder;

/* Appends a tensor; offsets are 16-float aligned so every tensor starts on a
 * cache line. Returns its offset, or LMT_NONE on allocation failure. */
static size_t add_tensor(layout_builder *lb, const char *name, int64_t d0, int64_t d1, lmt_init init) {
    lmt_layout *L = lb->L;
    if (L->ntensors == lb->cap) {
        size_t cap = lb->cap ? 2 * lb->cap : 64;
        lmt_tensor *t = ap_realloc(L->tensors, cap * sizeof *t, lb->err);
        if (!t) return LMT_NONE;
        L->tensors = t;
        lb->cap = cap;
    }
    lmt_tensor *t = &L->tensors[L->ntensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = d1 > 0 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1 > 0 ? d1 : 0;
    t->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    t->offset = L->total;
    t->decay = t->ndim == 2;
    t->init = init;
    L->total += (t->numel + 15) & ~(size_t)15;
    return t->offset;
}

static int add_layer(layout_builder *lb, int i) {
    const ap_lm_config *c = &lb->L->cfg;
    lmt_layer *ly = &lb->L->layers[i];
    int64_t D = c->hidden_size, I = c->intermediate_size, kvd = (int64_t)c->num_kv_heads * c->head_dim;
    char name[80];
#define T(field, suffix, d0, d1, init)                                          \
    snprintf(name, sizeof name, "model.layers.%d.%s", i, suffix);               \
    if ((ly->field = add_tensor(lb, name, d0, d1, init)) == LMT_NONE) return -1;
#define BIAS(field, suffix, d0)                                                 \
    if (c->use_bias) {                                                          \
        T(field, suffix, d0, 0, LMT_INIT_ZERO)                                  \
    } else {                                                                    \
        ly->field = LMT_NONE;                                                   \
    }
    T(ln1_w, "input_layernorm.weight", D, 0, LMT_INIT_ONE)
    T(ln1_b, "input_layernorm.bias", D, 0, LMT_INIT_ZERO)
    T(q_w, "self_attn.q_proj.weight", D, D, LMT_INIT_NORMAL)
    BIAS(q_b, "self_attn.q_proj.bias", D)
    T(k_w, "self_attn.k_proj.weight", kvd, D, LMT_INIT_NORMAL)
    BIAS(k_b, "self_attn.k_proj.bias", kvd)
    T(v_w, "self_attn.v_proj.weight", kvd, D, LMT_INIT_NORMAL)
    BIAS(v_b, "self_attn.v_proj.bias", kvd)
    T(o_w, "self_attn.o_proj.weight", D, D, LMT_INIT_RESIDUAL)
    BIAS(o_b, "self_attn.o_proj.bias", D)
    T(ln2_w, "post_attention_layernorm.weight", D, 0, LMT_INIT_ONE)
    T(ln2_b, "post_attention_layernorm.bias", D, 0, LMT_INIT_ZERO)
    T(fc_w, "mlp.c_fc.weight", I, D, LMT_INIT_NORMAL)
    BIAS(fc_b, "mlp.c_fc.bias", I)
    T(proj_w, "mlp.c_proj.weight", D, I, LMT_INIT_RESIDUAL)
    BIAS(proj_b, "mlp.c_proj.bias", D)
#undef BIAS
#undef T
    return 0;
}

ap_status lmt_layout_init(lmt_layout *L, const ap_lm_config *cfg, ap_error *err) {
    memset(L, 0, sizeof *L);
    L->cfg = *cfg;
    ap_status st = ap_lm_config_validate(cfg, "the model config", err);
    if (st) return st;
    layout_builder lb = {L, 0, err};
    L->layers = ap_calloc((size_t)cfg->num_layers, sizeof *L->layers, err);
    if (!L->layers) return AP_ERR_NOMEM;
    int64_t D = cfg->hidden_size;
    if ((L->embed = add_tensor(&lb, "model.embed_tokens.weight", cfg->vocab_size, D, LMT_INIT_NORMAL)) == LMT_NONE)
        goto nomem;
    for (int i = 0; i < cfg->num_layers; i++)
        if (add_layer(&lb, i)) goto nomem;
    if ((L->norm_w = add_tensor(&lb, "model.norm.weight", D, 0, LMT_INIT_ONE)) == LMT_NONE ||
        (L->norm_b = add_tensor(&lb, "model.norm.bias", D, 0, LMT_INIT_ZERO)) == LMT_NONE)
        goto nomem;
    L->head = L->embed;
    if (!cfg->tie_word_embeddings &&
        (L->head = add_tensor(&lb, "lm_head.weight", cfg->vocab_size, D, LMT_INIT_NORMAL)) == LMT_NONE)
        goto nomem;
    return AP_OK;
nomem:
    lmt_layout_free(L);
    return AP_ERR_NOMEM;
}

void lmt_layout_free(lmt_layout *L) {
    free(L->layers);
    free(L->tensors);
    memset(L, 0, sizeof *L);
}

/* N(0, 1) by Box-Muller from two uniforms in (0, 1]. */
static double normal(ap_rng *rng) {
    double u1 = ((double)(ap_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = (double)(ap_rng_next(rng) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void lmt_layout_init_params(const lmt_layout *L, float *P, uint64_t seed) {
    memset(P, 0, L->total * sizeof *P);
    double std = 0.02, resid_std = 0.02 / sqrt(2.0 * L->cfg.num_layers);
    for (size_t i = 0; i < L->ntensors; i++) {
        const lmt_tensor *t = &L->tensors[i];
        ap_rng rng; /* one stream per tensor: adding a tensor does not move the others */
        ap_rng_seed(&rng, ap_hash_mix(seed, ap_hash_bytes(t->name, strlen(t->name))));
        float *p = P + t->offset;
        for (size_t j = 0; j < t->numel; j++) {
            switch (t->init) {
            case LMT_INIT_NORMAL: p[j] = (float)(std * normal(&rng)); break;
            case LMT_INIT_RESIDUAL: p[j] = (float)(resid_std * normal(&rng)); break;
            case LMT_INIT_ZERO: p[j] = 0.0f; break;
            case LMT_INIT_ONE: p[j] = 1.0f; break;
            }
        }
    }
}

void lmt_params_from_lm(const lmt_layout *L, const ap_lm *lm, float *P) {
    memset(P, 0, L->total * sizeof *P);
    for (size_t i = 0; i < L->ntensors; i++) {
        const lmt_tensor *t = &L->tensors[i];
        const ap_tensor *src = ap_st_find(lm->st, t->name);
        /* ap_lm_load checked every tensor of this config against its shape */
        if (src && src->numel == t->numel) ap_to_f32(src->dtype, src->data, P + t->offset, t->numel);
    }
}

/* ---- activation plan ------------------------------------------------------------------ */

void lmt_plan_init(lmt_plan *pl, const lmt_layout *L, int B, int T) {
    const ap_lm_config *c = &L->cfg;
    memset(pl, 0, sizeof *pl);
    pl->B = B;
    pl->T = T;
    size_t n = (size_t)B * T, Ln = (size_t)c->num_layers, D = (size_t)c->hidden_size;
    size_t kvd = (size_t)c->num_kv_heads * c->head_dim, I = (size_t)c->intermediate_size;
    size_t att = (size_t)B * c->num_heads * T * T;
    pl->chunk = n < 256 ? (int)n : 256;
    size_t off = 0;
#define SLOT(field, count)                        \
    pl->field = off;                              \
    off += ((count) + 15) & ~(size_t)15;
    SLOT(res, (Ln + 1) * n * D)
    SLOT(ln1, Ln * n * D)
    SLOT(ln1_mean, Ln * n)
    SLOT(ln1_rstd, Ln * n)
    SLOT(q, Ln * n * D)
    SLOT(k, Ln * n * kvd)
    SLOT(v, Ln * n * kvd)
    SLOT(att, Ln * att)
    SLOT(atty, Ln * n * D)
    SLOT(mid, Ln * n * D)
    SLOT(ln2, Ln * n * D)
    SLOT(ln2_mean, Ln * n)
    SLOT(ln2_rstd, Ln * n)
    SLOT(fch, Ln * n * I)
    SLOT(fcg, Ln * n * I)
    SLOT(lnf, n * D)
    SLOT(lnf_mean, n)
    SLOT(lnf_rstd, n)
    SLOT(logits, (size_t)pl->chunk * c->vocab_size)
    SLOT(rowloss, n)
    SLOT(d_res, n * D)
    SLOT(d_a, n * D)
    SLOT(d_q, n * D)
    SLOT(d_k, n * kvd)
    SLOT(d_v, n * kvd)
    SLOT(d_atty, n * D)
    SLOT(d_fc, n * I)
    SLOT(d_lnf, n * D)
    SLOT(d_att, ap_nn_attention_scratch(T))
#undef SLOT
    pl->total = off;
}

double ap_lm_train_flops(const ap_lm_config *cfg, int B, int T) {
    /* backward: two products per forward product (input and weight gradients) */
    return 3.0 * B * ap_lm_forward_flops(cfg, T, 0);
}

/* ---- optimiser ---------------------------------------------------------------------- */

void lmt_adamw_update(const lmt_layout *L, const ap_nn_adamw *opt, float *P, const float *G, float *m, float *v,
                      int64_t step, double lr) {
    ap_nn_adamw no_decay = *opt;
    no_decay.weight_decay = 0;
    for (size_t i = 0; i < L->ntensors; i++) {
        const lmt_tensor *t = &L->tensors[i];
        ap_nn_adamw_step(t->decay ? opt : &no_decay, P + t->offset, G + t->offset, m + t->offset, v + t->offset,
                         t->numel, step, lr);
    }
}

double lmt_lr_at(int64_t step, int64_t total, int64_t warmup, double lr, double min_ratio) {
    if (step < warmup) return lr * (double)(step + 1) / (double)warmup;
    int64_t span = total - warmup - 1;
    double progress = span > 0 ? (double)(step - warmup) / (double)span : 1.0;
    if (progress > 1) progress = 1;
    double min_lr = lr * min_ratio;
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + cos(M_PI * progress));
}

/* ---- Hugging Face export ---------------------------------------------------------------- */

ap_status lmt_config_to_json(const ap_lm_config *c, ap_dtype dtype, const char *path, ap_error *err) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return ap_fail(err, AP_ERR_NOMEM, "out of memory");
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    if (arch) cJSON_AddItemToArray(arch, cJSON_CreateString("Starcoder2ForCausalLM"));
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
    cJSON_AddNumberToObject(o, "bos_token_id", 0);
    cJSON_AddNumberToObject(o, "embedding_dropout", 0.0);
    cJSON_AddNumberToObject(o, "eos_token_id", 0);
    cJSON_AddStringToObject(o, "hidden_act", "gelu_pytorch_tanh");
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddStringToObject(o, "model_type", "starcoder2");
    cJSON_AddNumberToObject(o, "norm_epsilon", c->norm_epsilon);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->num_heads);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->num_layers);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c->num_kv_heads);
    cJSON_AddNumberToObject(o, "residual_dropout", 0.0);
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    if (c->sliding_window > 0) cJSON_AddNumberToObject(o, "sliding_window", c->sliding_window);
    else cJSON_AddNullToObject(o, "sliding_window");
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddStringToObject(o, "torch_dtype", dtype == AP_BF16 ? "bfloat16" : dtype == AP_F16 ? "float16" : "float32");
    cJSON_AddBoolToObject(o, "use_bias", c->use_bias);
    cJSON_AddBoolToObject(o, "use_cache", 1);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    ap_status st = ap_json_save(path, o, err);
    cJSON_Delete(o);
    return st;
}

ap_status lmt_export_hf(const lmt_layout *L, const float *P, ap_dtype dtype, const char *dir, ap_error *err) {
    if (dtype != AP_F32 && dtype != AP_BF16 && dtype != AP_F16)
        return ap_fail(err, AP_ERR_ARG, "checkpoint dtype must be F32, F16 or BF16");
    size_t esz = ap_dtype_size(dtype), bytes = 0;
    for (size_t i = 0; i < L->ntensors; i++) bytes += L->tensors[i].numel * esz;
    ap_tensor_view *views = ap_calloc(L->ntensors, sizeof *views, err);
    char *data = dtype == AP_F32 ? NULL : ap_malloc(bytes, err);
    char *cfg_path = ap_path_join(dir, "config.json", err), *st_path = ap_path_join(dir, "model.safetensors", err);
    ap_status st = AP_ERR_NOMEM;
    if (!views || (dtype != AP_F32 && !data) || !cfg_path || !st_path) goto done;
    size_t cur = 0;
    for (size_t i = 0; i < L->ntensors; i++) {
        const lmt_tensor *t = &L->tensors[i];
        views[i] = (ap_tensor_view){t->name, dtype, t->ndim, {t->shape[0], t->shape[1]}, P + t->offset};
        if (data) {
            ap_from_f32(dtype, P + t->offset, data + cur, t->numel);
            views[i].data = data + cur;
            cur += t->numel * esz;
        }
    }
    static const char *const meta[] = {"format", "pt", NULL};
    if ((st = ap_st_write(st_path, views, L->ntensors, meta, err))) goto done;
    st = lmt_config_to_json(&L->cfg, dtype, cfg_path, err);
done:
    free(views);
    free(data);
    free(cfg_path);
    free(st_path);
    return st;
}
