/* Loading a StarCoder2 checkpoint: config, then every tensor checked against
 * the shapes the config implies; matrices stay in their stored dtype inside
 * the memory map, the small 1-D parameters are widened once to float32. */
#include "apmae/lm.h"

#include <stdlib.h>
#include <string.h>

static ap_status bind_weight(ap_lm *lm, const char *name, int n, int64_t d0, int64_t d1, ap_weight *w,
                             ap_error *err) {
    int64_t shape[2] = {d0, d1};
    const ap_tensor *t;
    ap_status st = ap_st_expect(lm->st, name, 1, n, shape, &t, err);
    if (st) return st;
    w->data = t->data;
    w->dtype = t->dtype;
    return AP_OK;
}

/* 1-D parameters (biases, LayerNorm) are copied to float32 into lm->small. */
static ap_status bind_vector(ap_lm *lm, const char *name, int64_t len, size_t *cursor, ap_weight *w,
                             ap_error *err) {
    int64_t shape[1] = {len};
    const ap_tensor *t;
    ap_status st = ap_st_expect(lm->st, name, 1, 1, shape, &t, err);
    if (st) return st;
    float *dst = lm->small + *cursor;
    ap_to_f32(t->dtype, t->data, dst, (size_t)len);
    *cursor += (size_t)len;
    w->data = dst;
    w->dtype = AP_F32;
    return AP_OK;
}

static size_t small_param_count(const ap_lm_config *c) {
    size_t D = (size_t)c->hidden_size, kvd = (size_t)c->num_kv_heads * c->head_dim;
    size_t per_layer = 4 * D /* two LayerNorms */ + (c->use_bias ? 2 * D + 2 * kvd + (size_t)c->intermediate_size + D : 0);
    return per_layer * (size_t)c->num_layers + 2 * D;
}

static ap_status bind_layer(ap_lm *lm, int i, size_t *cur, ap_error *err) {
    const ap_lm_config *c = &lm->cfg;
    ap_lm_layer *L = &lm->layers[i];
    int64_t D = c->hidden_size, I = c->intermediate_size, kvd = (int64_t)c->num_kv_heads * c->head_dim;
    char name[160];
    ap_status st;
#define W2(field, suffix, rows, cols)                                                        \
    snprintf(name, sizeof name, "model.layers.%d.%s", i, suffix);                            \
    if ((st = bind_weight(lm, name, 2, rows, cols, &L->field, err))) return st;
#define W1(field, suffix, len)                                                               \
    snprintf(name, sizeof name, "model.layers.%d.%s", i, suffix);                            \
    if ((st = bind_vector(lm, name, len, cur, &L->field, err))) return st;
    W1(ln1_w, "input_layernorm.weight", D);
    W1(ln1_b, "input_layernorm.bias", D);
    W1(ln2_w, "post_attention_layernorm.weight", D);
    W1(ln2_b, "post_attention_layernorm.bias", D);
    W2(q_w, "self_attn.q_proj.weight", D, D);
    W2(k_w, "self_attn.k_proj.weight", kvd, D);
    W2(v_w, "self_attn.v_proj.weight", kvd, D);
    W2(o_w, "self_attn.o_proj.weight", D, D);
    W2(fc_w, "mlp.c_fc.weight", I, D);
    W2(proj_w, "mlp.c_proj.weight", D, I);
    if (c->use_bias) {
        W1(q_b, "self_attn.q_proj.bias", D);
        W1(k_b, "self_attn.k_proj.bias", kvd);
        W1(v_b, "self_attn.v_proj.bias", kvd);
        W1(o_b, "self_attn.o_proj.bias", D);
        W1(fc_b, "mlp.c_fc.bias", I);
        W1(proj_b, "mlp.c_proj.bias", D);
    }
#undef W1
#undef W2
    return AP_OK;
}

static ap_status bind_all(ap_lm *lm, ap_error *err) {
    const ap_lm_config *c = &lm->cfg;
    size_t cur = 0;
    ap_status st = bind_weight(lm, "model.embed_tokens.weight", 2, c->vocab_size, c->hidden_size, &lm->embed, err);
    if (st) return st;
    for (int i = 0; i < c->num_layers; i++)
        if ((st = bind_layer(lm, i, &cur, err))) return st;
    if ((st = bind_vector(lm, "model.norm.weight", c->hidden_size, &cur, &lm->norm_w, err)) ||
        (st = bind_vector(lm, "model.norm.bias", c->hidden_size, &cur, &lm->norm_b, err)))
        return st;
    if (c->tie_word_embeddings) {
        lm->lm_head = lm->embed;
    } else if ((st = bind_weight(lm, "lm_head.weight", 2, c->vocab_size, c->hidden_size, &lm->lm_head, err))) {
        return st;
    }
    return AP_OK;
}

ap_status ap_lm_load(const char *dir, ap_lm **out, ap_error *err) {
    *out = NULL;
    if (!ap_path_is_dir(dir)) return ap_fail(err, AP_ERR_IO, "%s: not a model directory", dir);
    ap_lm *lm = ap_calloc(1, sizeof *lm, err);
    if (!lm) return AP_ERR_NOMEM;
    ap_status st = AP_ERR_NOMEM;
    char *cfg_path = ap_path_join(dir, "config.json", err);
    lm->dir = ap_strdup(dir, err);
    if (!cfg_path || !lm->dir) goto fail;
    if ((st = ap_lm_config_load(cfg_path, &lm->cfg, err))) goto fail;
    if ((st = ap_st_open(dir, &lm->st, err))) goto fail;
    st = AP_ERR_NOMEM;
    lm->layers = ap_calloc((size_t)lm->cfg.num_layers, sizeof *lm->layers, err);
    lm->small = ap_malloc(small_param_count(&lm->cfg) * sizeof(float), err);
    if (!lm->layers || !lm->small) goto fail;
    if ((st = bind_all(lm, err))) {
        ap_error_prefix(err, "%s: checkpoint does not match config.json", dir);
        goto fail;
    }
    free(cfg_path);
    *out = lm;
    return AP_OK;
fail:
    free(cfg_path);
    ap_lm_free(lm);
    return st;
}

void ap_lm_free(ap_lm *lm) {
    if (!lm) return;
    ap_st_close(lm->st);
    free(lm->layers);
    free(lm->small);
    free(lm->dir);
    free(lm);
}
