/* Internals of AP-MAE shared by src/mae and its unit tests.
 *
 * The network's forward/backward is written once in net.inc over a scalar
 * type R (nn/real.h) on the shared kernels of apmae/nn.h and compiled twice:
 * float (net_f.c, what the tool runs) and double (net_d.c, what the gradient
 * checks run against finite differences). Parameters and activations live
 * in flat blocks of R; the layout (parameter offsets) and the plan
 * (activation offsets for one batch shape) are type-independent. */
#ifndef APMAE_MAE_INTERNAL_H
#define APMAE_MAE_INTERNAL_H

#include "apmae/mae.h"

#define MAE_NONE ((size_t)-1) /* an absent tensor (to_qkv bias, enc_to_dec) */

/* Parameter offsets of one pre-norm block. */
typedef struct mae_block {
    size_t ln1_w, ln1_b, qkv_w, qkv_b, out_w, out_b;
    size_t ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} mae_block;

/* One transformer (encoder or decoder): blocks, then the final LayerNorm. */
typedef struct mae_stack {
    int D, L, H, dh, mlp;
    mae_block *blocks;
    size_t norm_w, norm_b;
} mae_stack;

typedef struct mae_layout {
    int N, p, g, P2, T, G2; /* image side, patch side, grid, p², tril patches, g² */
    double eps;
    int *tril; /* [T] the lower-triangle patch ids, ascending */
    int *all;  /* [g²] 0, 1, ... (the reference encoding's tokens) */
    size_t enc_pos, enc_cls, pe_ln1_w, pe_ln1_b, pe_w, pe_b, pe_ln2_w, pe_ln2_b;
    mae_stack enc, dec;
    size_t e2d_w, e2d_b; /* MAE_NONE when the widths agree */
    size_t mask_token, dec_pos, pix_w, pix_b;
    ap_mae_tensor_info *tensors;
    unsigned char *init_kinds; /* per tensor, for mae_layout_init_params */
    size_t ntensors, total;
} mae_layout;

ap_status mae_layout_init(mae_layout *L, const ap_mae_config *cfg, ap_error *err);
void mae_layout_free(mae_layout *L);
/* docs/mae.md initialisation of a float parameter block. */
void mae_layout_init_params(const mae_layout *L, float *P, ap_rng *rng);

/* Activation offsets of one transformer for a sequence of S tokens. Per-layer
 * arrays are consecutive: layer l of x is at x + l * B*S*D. x has L+1
 * entries (x[L] feeds the final norm, whose output is out). */
typedef struct mae_stack_plan {
    int S;
    size_t x, ln1, ln1_mean, ln1_rstd, qkv, att, atty, xmid, ln2, ln2_mean, ln2_rstd, fch, fcg;
    size_t out, out_mean, out_rstd;
} mae_stack_plan;

/* Activation offsets for a batch of B images whose encoder sees Se tokens
 * (1 + visible patches) and, with a decoder, M masked patches. */
typedef struct mae_plan {
    int B, Se, M, with_dec;
    size_t xp, pe_ln1, pe_ln1_mean, pe_ln1_rstd, pe_lin, pe_ln2, pe_ln2_mean, pe_ln2_rstd;
    mae_stack_plan enc, dec;
    size_t h0, gm, pred, tgt;
    size_t d_a, d_b, d_ln, d_big, d_big2, d_att; /* backward scratch */
    size_t total; /* elements */
} mae_plan;

void mae_plan_init(mae_plan *pl, const mae_layout *L, int B, int Se, int M, int with_dec);

/* What ap_mae_model keeps besides its parameters. */
struct ap_mae_work {
    mae_layout L;
    mae_plan plan;
    float *acts; /* plan.total floats, 64-byte aligned */
    size_t acts_cap;
    int *vis;
    size_t vis_cap;
    float *scaled, *loss; /* train-step buffers */
    int64_t *masks;
    size_t scaled_cap, loss_cap, masks_cap;
};

/* The visible ids [B, T-M] (ascending) of each image given its masked ids. */
void mae_visible_ids(const mae_layout *L, const int64_t *masked, int B, int M, int *vis);

#define MAE_DECLARE(R, SUF)                                                                                       \
    void mae_forward_##SUF(const mae_layout *L, const mae_plan *pl, int compat, const R *P, R *A,               \
                           const float *scaled, const int64_t *masked, const int *vis, R *loss);                 \
    void mae_backward_##SUF(const mae_layout *L, const mae_plan *pl, int compat, const R *P, R *A,              \
                            const int64_t *masked, const int *vis, R *G);                                         \
    void mae_encode_##SUF(const mae_layout *L, const mae_plan *pl, int compat, const R *P, R *A,                \
                          const float *scaled, R *cls, R *mean);

MAE_DECLARE(float, f)
MAE_DECLARE(double, d)

#endif
