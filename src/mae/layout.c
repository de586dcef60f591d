/* The parameter layout of AP-MAE (tensor names, shapes and offsets of
 * docs/mae.md, in checkpoint order), its initialisation, and the activation plan. */
#include "apmae/nn.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { INIT_ZERO, INIT_ONE, INIT_BIAS, INIT_XAVIER, INIT_NORMAL };

typedef struct builder {
    mae_layout *L;
    unsigned char *kinds; /* init kind per tensor */
    size_t cap;
    ap_error *err;
    ap_status st;
} builder;

/* Appends a tensor (shape d[0..ndim)) and returns its offset. */
static size_t add(builder *bd, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int kind) {
    mae_layout *L = bd->L;
    if (bd->st != AP_OK) return 0;
    if (L->ntensors == bd->cap) {
        bd->st = ap_fail(bd->err, AP_ERR_INTERNAL, "AP-MAE layout: tensor table overflow at %s", name);
        return 0;
    }
    ap_mae_tensor_info *t = &L->tensors[L->ntensors];
    t->name = ap_strdup(name, bd->err);
    if (!t->name) {
        bd->st = AP_ERR_NOMEM;
        return 0;
    }
    int64_t d[3] = {d0, d1, d2};
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = d[i];
        t->numel *= (size_t)d[i];
    }
    t->offset = L->total;
    bd->kinds[L->ntensors++] = (unsigned char)kind;
    L->total += t->numel;
    return t->offset;
}

/* A tensor of block i of the encoder or decoder ("who"). */
static size_t blk(builder *bd, const char *who, int i, const char *suffix, int ndim, int64_t d0, int64_t d1,
                  int kind) {
    char name[160];
    snprintf(name, sizeof name, "%s.transformer.layers.%d.%s", who, i, suffix);
    return add(bd, name, ndim, d0, d1, 0, kind);
}

static void add_stack(builder *bd, mae_stack *st, const char *who, int qkv_bias) {
    const int D = st->D, inner = st->H * st->dh, mlp = st->mlp;
    char name[160];
    for (int i = 0; i < st->L; i++) {
        mae_block *k = &st->blocks[i];
        k->ln1_w = blk(bd, who, i, "0.norm.weight", 1, D, 0, INIT_ONE);
        k->ln1_b = blk(bd, who, i, "0.norm.bias", 1, D, 0, INIT_ZERO);
        k->qkv_w = blk(bd, who, i, "0.to_qkv.weight", 2, 3 * inner, D, INIT_XAVIER);
        k->qkv_b = qkv_bias ? blk(bd, who, i, "0.to_qkv.bias", 1, 3 * inner, 0, INIT_BIAS) : MAE_NONE;
        k->out_w = blk(bd, who, i, "0.to_out.0.weight", 2, D, inner, INIT_XAVIER);
        k->out_b = blk(bd, who, i, "0.to_out.0.bias", 1, D, 0, INIT_BIAS);
        k->ln2_w = blk(bd, who, i, "1.net.0.weight", 1, D, 0, INIT_ONE);
        k->ln2_b = blk(bd, who, i, "1.net.0.bias", 1, D, 0, INIT_ZERO);
        k->fc1_w = blk(bd, who, i, "1.net.1.weight", 2, mlp, D, INIT_XAVIER);
        k->fc1_b = blk(bd, who, i, "1.net.1.bias", 1, mlp, 0, INIT_BIAS);
        k->fc2_w = blk(bd, who, i, "1.net.4.weight", 2, D, mlp, INIT_XAVIER);
        k->fc2_b = blk(bd, who, i, "1.net.4.bias", 1, D, 0, INIT_BIAS);
    }
    snprintf(name, sizeof name, "%s.transformer.norm.weight", who);
    st->norm_w = add(bd, name, 1, D, 0, 0, INIT_ONE);
    snprintf(name, sizeof name, "%s.transformer.norm.bias", who);
    st->norm_b = add(bd, name, 1, D, 0, 0, INIT_ZERO);
}

static void stack_dims(mae_stack *st, int D, int L, int H, int dh, int mlp) {
    st->D = D;
    st->L = L;
    st->H = H;
    st->dh = dh;
    st->mlp = mlp;
}

ap_status mae_layout_init(mae_layout *L, const ap_mae_config *c, ap_error *err) {
    memset(L, 0, sizeof *L);
    L->N = c->max_length;
    L->p = c->patch_size;
    L->g = L->N / L->p;
    L->P2 = L->p * L->p;
    L->T = L->g * (L->g + 1) / 2;
    L->G2 = L->g * L->g;
    L->eps = c->layer_norm_eps;
    stack_dims(&L->enc, c->encoder_dim, c->encoder_layers, c->encoder_heads, c->encoder_dim_head,
               c->encoder_mlp_dim);
    stack_dims(&L->dec, c->decoder_dim, c->decoder_layers, c->decoder_heads, c->decoder_dim_head,
               c->decoder_mlp_dim);
    size_t cap = 16 + 13 * (size_t)(c->encoder_layers + c->decoder_layers);
    builder bd = {L, ap_calloc(cap, 1, err), cap, err, AP_OK};
    L->tensors = ap_calloc(cap, sizeof *L->tensors, err);
    L->enc.blocks = ap_calloc((size_t)c->encoder_layers, sizeof(mae_block), err);
    L->dec.blocks = ap_calloc((size_t)c->decoder_layers, sizeof(mae_block), err);
    L->tril = ap_malloc((size_t)L->T * sizeof(int), err);
    L->all = ap_malloc((size_t)L->G2 * sizeof(int), err);
    if (!bd.kinds || !L->tensors || !L->enc.blocks || !L->dec.blocks || !L->tril || !L->all) {
        free(bd.kinds);
        mae_layout_free(L);
        return AP_ERR_NOMEM;
    }
    for (int k = 0, t = 0; k < L->G2; k++) {
        L->all[k] = k;
        if (k / L->g >= k % L->g) L->tril[t++] = k;
    }
    const int De = L->enc.D, Dd = L->dec.D;
    L->enc_pos = add(&bd, "encoder.pos_embedding", 3, 1, L->G2 + 1, De, INIT_NORMAL);
    L->enc_cls = add(&bd, "encoder.cls_token", 3, 1, 1, De, INIT_ZERO);
    L->pe_ln1_w = add(&bd, "encoder.patches_to_embedding.0.weight", 1, L->P2, 0, 0, INIT_ONE);
    L->pe_ln1_b = add(&bd, "encoder.patches_to_embedding.0.bias", 1, L->P2, 0, 0, INIT_ZERO);
    L->pe_w = add(&bd, "encoder.patches_to_embedding.1.weight", 2, De, L->P2, 0, INIT_XAVIER);
    L->pe_b = add(&bd, "encoder.patches_to_embedding.1.bias", 1, De, 0, 0, INIT_BIAS);
    L->pe_ln2_w = add(&bd, "encoder.patches_to_embedding.2.weight", 1, De, 0, 0, INIT_ONE);
    L->pe_ln2_b = add(&bd, "encoder.patches_to_embedding.2.bias", 1, De, 0, 0, INIT_ZERO);
    add_stack(&bd, &L->enc, "encoder", c->qkv_bias);
    L->e2d_w = L->e2d_b = MAE_NONE;
    if (De != Dd) {
        L->e2d_w = add(&bd, "decoder.enc_to_dec.weight", 2, Dd, De, 0, INIT_XAVIER);
        L->e2d_b = add(&bd, "decoder.enc_to_dec.bias", 1, Dd, 0, 0, INIT_BIAS);
    }
    L->mask_token = add(&bd, "decoder.mask_token", 1, Dd, 0, 0, INIT_NORMAL);
    L->dec_pos = add(&bd, "decoder.pos_embedding", 3, 1, L->G2 + 1, Dd, INIT_NORMAL);
    add_stack(&bd, &L->dec, "decoder", c->qkv_bias);
    L->pix_w = add(&bd, "decoder.to_pixels.weight", 2, L->P2, Dd, 0, INIT_XAVIER);
    L->pix_b = add(&bd, "decoder.to_pixels.bias", 1, L->P2, 0, 0, INIT_BIAS);
    if (bd.st != AP_OK) {
        free(bd.kinds);
        mae_layout_free(L);
        return bd.st;
    }
    L->init_kinds = bd.kinds;
    return AP_OK;
}

void mae_layout_free(mae_layout *L) {
    if (L->tensors)
        for (size_t i = 0; i < L->ntensors; i++) free((char *)L->tensors[i].name);
    free(L->tensors);
    free(L->enc.blocks);
    free(L->dec.blocks);
    free(L->tril);
    free(L->all);
    free(L->init_kinds);
    memset(L, 0, sizeof *L);
}

void mae_layout_init_params(const mae_layout *L, float *P, ap_rng *rng) {
    for (size_t i = 0; i < L->ntensors; i++) {
        const ap_mae_tensor_info *t = &L->tensors[i];
        float *x = P + t->offset;
        switch (L->init_kinds[i]) {
        case INIT_ZERO: memset(x, 0, t->numel * sizeof *x); break;
        case INIT_ONE:
            for (size_t k = 0; k < t->numel; k++) x[k] = 1.0f;
            break;
        case INIT_BIAS:
            for (size_t k = 0; k < t->numel; k++) x[k] = 0.01f;
            break;
        case INIT_NORMAL:
            for (size_t k = 0; k < t->numel; k++) x[k] = (float)ap_rng_normal(rng);
            break;
        case INIT_XAVIER: {
            /* PyTorch's xavier_uniform_ on [out, in]: U(-a, a), a = sqrt(6 / (in + out)). */
            double a = sqrt(6.0 / (double)(t->shape[0] + t->shape[1]));
            for (size_t k = 0; k < t->numel; k++) x[k] = (float)((2.0 * ap_rng_uniform(rng) - 1.0) * a);
            break;
        }
        }
    }
}

/* ---- Activation plan ------------------------------------------------------ */

/* Offsets rounded to 16 elements keep every array 64-byte aligned. */
static size_t carve(size_t *cur, size_t n) {
    size_t off = *cur;
    *cur += (n + 15) & ~(size_t)15;
    return off;
}

static void stack_plan(mae_stack_plan *sp, const mae_stack *st, int B, int S, size_t *cur) {
    const size_t n = (size_t)B * S, D = (size_t)st->D, L = (size_t)st->L, Ch = (size_t)st->H * st->dh;
    sp->S = S;
    sp->x = carve(cur, (L + 1) * n * D);
    sp->ln1 = carve(cur, L * n * D);
    sp->ln1_mean = carve(cur, L * n);
    sp->ln1_rstd = carve(cur, L * n);
    sp->qkv = carve(cur, L * n * 3 * Ch);
    sp->att = carve(cur, L * (size_t)B * st->H * S * S);
    sp->atty = carve(cur, L * n * Ch);
    sp->xmid = carve(cur, L * n * D);
    sp->ln2 = carve(cur, L * n * D);
    sp->ln2_mean = carve(cur, L * n);
    sp->ln2_rstd = carve(cur, L * n);
    sp->fch = carve(cur, L * n * st->mlp);
    sp->fcg = carve(cur, L * n * st->mlp);
    sp->out = carve(cur, n * D);
    sp->out_mean = carve(cur, n);
    sp->out_rstd = carve(cur, n);
}

static size_t max2(size_t a, size_t b) { return a > b ? a : b; }

/* The widest per-token buffer a stack's backward needs (qkv, mlp, heads). */
static size_t stack_width(const mae_stack *st) {
    return max2((size_t)3 * st->H * st->dh, (size_t)st->mlp);
}

void mae_plan_init(mae_plan *pl, const mae_layout *L, int B, int Se, int M, int with_dec) {
    memset(pl, 0, sizeof *pl);
    size_t cur = 0;
    const size_t V = (size_t)Se - 1, P2 = (size_t)L->P2, De = (size_t)L->enc.D, Dd = (size_t)L->dec.D;
    pl->B = B;
    pl->Se = Se;
    pl->M = M;
    pl->with_dec = with_dec;
    pl->xp = carve(&cur, B * V * P2);
    pl->pe_ln1 = carve(&cur, B * V * P2);
    pl->pe_ln1_mean = carve(&cur, B * V);
    pl->pe_ln1_rstd = carve(&cur, B * V);
    pl->pe_lin = carve(&cur, B * V * De);
    pl->pe_ln2 = carve(&cur, B * V * De);
    pl->pe_ln2_mean = carve(&cur, B * V);
    pl->pe_ln2_rstd = carve(&cur, B * V);
    stack_plan(&pl->enc, &L->enc, B, Se, &cur);
    if (with_dec) {
        const int Sd = 1 + L->G2;
        if (L->e2d_w != MAE_NONE) pl->h0 = carve(&cur, (size_t)B * Se * Dd);
        stack_plan(&pl->dec, &L->dec, B, Sd, &cur);
        pl->gm = carve(&cur, (size_t)B * M * Dd);
        pl->pred = carve(&cur, (size_t)B * M * P2);
        pl->tgt = carve(&cur, (size_t)B * M * P2);
        /* Backward scratch, sized for the largest use (see mae_backward). */
        const size_t Smax = max2((size_t)Se, (size_t)Sd), Dmax = max2(De, Dd);
        const size_t tok = (size_t)B * Smax * Dmax;
        size_t big = max2((size_t)B * Sd * stack_width(&L->dec), (size_t)B * Se * stack_width(&L->enc));
        big = max2(big, max2((size_t)B * M * P2, B * V * max2(De, P2)));
        pl->d_a = carve(&cur, tok);
        pl->d_b = carve(&cur, tok);
        pl->d_ln = carve(&cur, tok);
        pl->d_big = carve(&cur, big);
        pl->d_big2 = carve(&cur, big);
        pl->d_att = carve(&cur, ap_nn_attention_scratch((int)Smax));
    }
    pl->total = cur;
}

void mae_visible_ids(const mae_layout *L, const int64_t *masked, int B, int M, int *vis) {
    const int V = L->T - M;
    for (int b = 0; b < B; b++) {
        int j = 0;
        for (int t = 0; t < L->T; t++) {
            int hit = 0;
            for (int i = 0; i < M && !hit; i++) hit = masked[(size_t)b * M + i] == L->tril[t];
            if (!hit && j < V) vis[(size_t)b * V + j++] = L->tril[t];
        }
    }
}
