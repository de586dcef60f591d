/* The StarCoder2 forward pass (docs/lm.md) over one sequence, float32
 * arithmetic on weights of any stored float dtype. */
#include "apmae/lm.h"
#include "apmae/nn.h"
#include "kernels.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Weights wider than this many floats are widened in row blocks. */
#define LM_WIDEN_SCRATCH_FLOATS ((size_t)16 << 20)

/* Activations of one forward pass, one contiguous block (llm.c style). */
struct ap_lm_state {
    int max_T;
    float *block;
    float *h;       /* [T, D] residual stream */
    float *a;       /* [T, D] LayerNorm output */
    float *q;       /* [T, D] */
    float *k, *v;   /* [T, KV*hd] */
    float *o;       /* [T, D] concatenated head outputs */
    float *fc;      /* [T, I] */
    float *cos_t, *sin_t; /* [max_T, hd/2] */
    float *att_rows; /* per-thread row scratch [threads, max_T] */
    float *widen;   /* scratch for widening weights; NULL when all are float32 */
    int threads;
};

static int weights_need_widening(const ap_lm *lm) {
    if (lm->embed.dtype != AP_F32 || lm->lm_head.dtype != AP_F32) return 1;
    for (int i = 0; i < lm->cfg.num_layers; i++) {
        const ap_lm_layer *L = &lm->layers[i];
        if (L->q_w.dtype != AP_F32 || L->k_w.dtype != AP_F32 || L->v_w.dtype != AP_F32 ||
            L->o_w.dtype != AP_F32 || L->fc_w.dtype != AP_F32 || L->proj_w.dtype != AP_F32)
            return 1;
    }
    return 0;
}

ap_status ap_lm_state_new(const ap_lm *lm, int max_T, ap_lm_state **out, ap_error *err) {
    *out = NULL;
    const ap_lm_config *c = &lm->cfg;
    if (max_T < 1) return ap_fail(err, AP_ERR_RANGE, "sequence length %d must be at least 1", max_T);
    ap_lm_state *s = ap_calloc(1, sizeof *s, err);
    if (!s) return AP_ERR_NOMEM;
    size_t T = (size_t)max_T, D = (size_t)c->hidden_size, kvd = (size_t)c->num_kv_heads * c->head_dim;
    size_t half = (size_t)c->head_dim / 2;
    s->threads = omp_get_max_threads();
    size_t sizes[] = {T * D, T * D, T * D, T * kvd, T * kvd, T * D, T * (size_t)c->intermediate_size,
                      T * half, T * half, (size_t)s->threads * T};
    float **slots[] = {&s->h, &s->a, &s->q, &s->k, &s->v, &s->o, &s->fc, &s->cos_t, &s->sin_t, &s->att_rows};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += (sizes[i] + 15) & ~(size_t)15;
    s->block = ap_malloc_aligned(total * sizeof(float), err);
    if (!s->block) {
        free(s);
        return AP_ERR_NOMEM;
    }
    float *p = s->block;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        *slots[i] = p;
        p += (sizes[i] + 15) & ~(size_t)15;
    }
    if (weights_need_widening(lm)) {
        s->widen = ap_malloc_aligned(LM_WIDEN_SCRATCH_FLOATS * sizeof(float), err);
        if (!s->widen) {
            ap_lm_state_free(s);
            return AP_ERR_NOMEM;
        }
    }
    s->max_T = max_T;
    lm_rope_tables(s->cos_t, s->sin_t, max_T, c->head_dim, c->rope_theta);
    *out = s;
    return AP_OK;
}

void ap_lm_state_free(ap_lm_state *s) {
    if (!s) return;
    ap_free_aligned(s->block);
    ap_free_aligned(s->widen);
    free(s);
}

static void linear(ap_lm_state *s, float *y, const float *x, int T, int in, int out, const ap_weight *w,
                   const ap_weight *b) {
    lm_linear(y, x, T, in, out, w->data, w->dtype, b->data, s->widen, LM_WIDEN_SCRATCH_FLOATS);
}

/* LayerNorm with float32 weights (ap_lm_load widens them). The epsilon is
 * rounded to float first: inference has always used it so, and the shipped
 * model's results are reproduced to the bit. */
static void layernorm(const ap_lm *lm, float *y, const float *x, const ap_weight *w, const ap_weight *b, int T) {
    ap_nn_layernorm_fwd_f(y, NULL, NULL, x, w->data, b->data, T, lm->cfg.hidden_size, (float)lm->cfg.norm_epsilon);
}

static void attention_block(const ap_lm *lm, ap_lm_state *s, int l, int T, const uint8_t *ablate, float *P) {
    const ap_lm_config *c = &lm->cfg;
    const ap_lm_layer *L = &lm->layers[l];
    int D = c->hidden_size, hd = c->head_dim, kvd = c->num_kv_heads * hd;
    layernorm(lm, s->a, s->h, &L->ln1_w, &L->ln1_b, T);
    linear(s, s->q, s->a, T, D, D, &L->q_w, &L->q_b);
    linear(s, s->k, s->a, T, D, kvd, &L->k_w, &L->k_b);
    linear(s, s->v, s->a, T, D, kvd, &L->v_w, &L->v_b);
    lm_rope(s->q, D, T, c->num_heads, hd, s->cos_t, s->sin_t);
    lm_rope(s->k, kvd, T, c->num_kv_heads, hd, s->cos_t, s->sin_t);
    lm_attention(s->o, P, s->q, s->k, s->v, T, c->num_heads, c->num_kv_heads, hd, c->sliding_window, ablate,
                 s->att_rows);
    /* h += o Wo^T + bo, through s->a as the projection's output */
    linear(s, s->a, s->o, T, D, D, &L->o_w, &L->o_b);
    ap_nn_add_f(s->h, s->a, (size_t)T * D);
}

static void mlp_block(const ap_lm *lm, ap_lm_state *s, int l, int T) {
    const ap_lm_config *c = &lm->cfg;
    const ap_lm_layer *L = &lm->layers[l];
    int D = c->hidden_size, I = c->intermediate_size;
    layernorm(lm, s->a, s->h, &L->ln2_w, &L->ln2_b, T);
    linear(s, s->fc, s->a, T, D, I, &L->fc_w, &L->fc_b);
    ap_nn_gelu_tanh_fwd_f(s->fc, s->fc, (size_t)T * I);
    linear(s, s->a, s->fc, T, I, D, &L->proj_w, &L->proj_b);
    ap_nn_add_f(s->h, s->a, (size_t)T * D);
}

static ap_status check_inputs(const ap_lm *lm, const ap_lm_state *s, const int32_t *ids, int T, ap_error *err) {
    if (T < 1) return ap_fail(err, AP_ERR_RANGE, "empty input: at least one token is needed");
    if (T > s->max_T)
        return ap_fail(err, AP_ERR_RANGE, "%d tokens exceed the %d the state was sized for", T, s->max_T);
    if (T > lm->cfg.max_position_embeddings)
        return ap_fail(err, AP_ERR_RANGE, "%d tokens exceed the model's max_position_embeddings %d", T,
                       lm->cfg.max_position_embeddings);
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= lm->cfg.vocab_size)
            return ap_fail(err, AP_ERR_RANGE, "token id %d at position %d is outside the vocabulary (0..%d)",
                           ids[t], t, lm->cfg.vocab_size - 1);
    return AP_OK;
}

ap_status ap_lm_forward(const ap_lm *lm, ap_lm_state *s, const int32_t *ids, int T, const ap_lm_forward_opts *opts,
                        float *logits, float *attentions, ap_error *err) {
    ap_status st = check_inputs(lm, s, ids, T, err);
    if (st) return st;
    const ap_lm_config *c = &lm->cfg;
    int D = c->hidden_size, H = c->num_heads;
    size_t esz = ap_dtype_size(lm->embed.dtype);
    for (int t = 0; t < T; t++)
        ap_to_f32(lm->embed.dtype, (const char *)lm->embed.data + (size_t)ids[t] * D * esz, s->h + (size_t)t * D,
                  (size_t)D);
    for (int l = 0; l < c->num_layers; l++) {
        const uint8_t *ablate = opts && opts->ablate ? opts->ablate + (size_t)l * H : NULL;
        float *P = attentions ? attentions + (size_t)l * H * T * T : NULL;
        attention_block(lm, s, l, T, ablate, P);
        mlp_block(lm, s, l, T);
    }
    if (!logits) return AP_OK;
    int last_only = opts && opts->last_only;
    int rows = last_only ? 1 : T;
    const float *x = s->h + (size_t)(T - rows) * D;
    layernorm(lm, s->a, x, &lm->norm_w, &lm->norm_b, rows);
    linear(s, logits, s->a, rows, D, c->vocab_size, &lm->lm_head, &(ap_weight){0});
    return AP_OK;
}

double ap_lm_forward_flops(const ap_lm_config *c, int T, int last_only) {
    double D = c->hidden_size, I = c->intermediate_size, kvd = (double)c->num_kv_heads * c->head_dim;
    double per_token_layer = 2.0 * (D * D * 2 + D * kvd * 2 + 2 * D * I);
    /* causal attention: scores and P·v over the visible keys only */
    double visible = 0;
    for (int i = 0; i < T; i++) visible += c->sliding_window > 0 && i + 1 > c->sliding_window ? c->sliding_window : i + 1;
    double attn = 4.0 * c->head_dim * c->num_heads * visible;
    double head = 2.0 * D * c->vocab_size * (last_only ? 1 : T);
    return c->num_layers * (per_token_layer * T + attn) + head;
}
