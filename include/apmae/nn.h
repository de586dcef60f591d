/* apmae/nn.h — the tensor kernels the models share (docs/architecture.md):
 * LayerNorm, linear layers over BLAS, the tanh and the erf GELU, softmax
 * rows, causal and unmasked multi-head attention, embedding and residual
 * adds, forward and backward; AdamW and gradient clipping over a parameter
 * block; the fast exp.
 *
 * The kernels are written once (src/nn/kernels.inc) and compiled for float
 * (suffix _f: what the tool runs) and double (_d: what the gradient checks
 * compare with finite differences).
 *
 * Conventions (llm.c style, no hidden state: scratch is the caller's):
 *   - arrays are row-major; [n, C] is n rows of C. A batch of B sequences of
 *     T tokens has row b*T + t. Linear weights are PyTorch's [out, in].
 *   - *_fwd overwrite their outputs. In *_bwd, parameter gradients (dw, db,
 *     dE) accumulate; the input gradient is overwritten, except that
 *     layernorm_bwd adds to it (it is the residual stream's gradient) and
 *     linear_bwd does with `accumulate` set. NULL skips an optional output.
 *   - rows are independent and sums over rows run in a fixed order, so the
 *     results do not depend on the thread count (BLAS aside). Loops too small
 *     to pay for waking the thread team run on the calling thread. */
#ifndef APMAE_NN_H
#define APMAE_NN_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* exp(x) for float within 2 ulp; exp of anything below -87.3 is 0.
 * Cephes-style: x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6
 * polynomial, 2^n put into the exponent bits. Written branch-free so that
 * `omp simd` loops vectorise it (libm's expf does not vectorise here). The
 * float kernels' softmax and GELUs use it. */
static inline float ap_nn_fast_expf(float x) {
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    /* ternaries, not fminf/fmaxf: those stay libm calls and block vectorising */
    x = x < 88.37f ? x : 88.37f;
    float lo_mask = x < -87.3f ? 0.0f : 1.0f;
    x = x > -87.3f ? x : -87.3f;
    float n = rintf(x * 1.44269504088896341f);
    float r = x - n * ln2_hi - n * ln2_lo;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    union {
        int32_t i;
        float f;
    } scale = {.i = ((int32_t)n + 127) << 23};
    return p * scale.f * lo_mask;
}

/* The attention's `window` argument: AP_NN_UNMASKED, every query sees every
 * key (AP-MAE's encoder and decoder); 0, causal (query i sees keys 0..i);
 * w > 0, causal within a sliding window (keys i-w+1..i). */
#define AP_NN_UNMASKED (-1)

/* Elements of scratch ap_nn_attention_bwd_* needs for sequences of T tokens:
 * one T x T block per thread of the current team size. */
size_t ap_nn_attention_scratch(int T);

#define AP_NN_DECLARE(R, SUF)                                                                                     \
    /* out [n,C] = (inp - mean) * rstd * w + b per row, w and b [C]; mean and rstd [n] are kept for the       \
     * backward (NULL: not kept). The statistics accumulate in double whatever R is. */                        \
    void ap_nn_layernorm_fwd_##SUF(R *out, R *mean, R *rstd, const R *inp, const R *w, const R *b, int n, int C, \
                                   double eps);                                                                 \
    /* From dout [n,C] and the forward's mean, rstd: dinp [n,C] += (NULL: skipped), dw and db [C] +=. */        \
    void ap_nn_layernorm_bwd_##SUF(R *dinp, R *dw, R *db, const R *dout, const R *inp, const R *w, const R *mean, \
                                   const R *rstd, int n, int C);                                                \
    /* out [n,cout] = inp [n,cin] w^T + b, w [cout,cin], b [cout] or NULL. */                                    \
    void ap_nn_linear_fwd_##SUF(R *out, const R *inp, const R *w, const R *b, int n, int cin, int cout);          \
    /* dinp [n,cin] = (+= with accumulate) dout w; dw [cout,cin] += dout^T inp; db [cout] += column sums. */     \
    void ap_nn_linear_bwd_##SUF(R *dinp, int accumulate, R *dw, R *db, const R *dout, const R *inp, const R *w,   \
                                int n, int cin, int cout);                                                      \
    /* out [n,C] += b [C] on every row. */                                                                      \
    void ap_nn_add_bias_##SUF(R *out, const R *b, int n, int C);                                                 \
    /* y [n] += x [n] (a residual connection). */                                                               \
    void ap_nn_add_##SUF(R *y, const R *x, size_t n);                                                            \
    /* GELU, tanh form (StarCoder2): out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) over n; out may be   \
     * inp. bwd: dinp = dout * gelu'(inp); dinp may be dout. */                                                 \
    void ap_nn_gelu_tanh_fwd_##SUF(R *out, const R *inp, size_t n);                                              \
    void ap_nn_gelu_tanh_bwd_##SUF(R *dinp, const R *inp, const R *dout, size_t n);                              \
    /* GELU, exact erf form (AP-MAE): out = x Phi(x); same aliasing rules. */                                   \
    void ap_nn_gelu_erf_fwd_##SUF(R *out, const R *inp, size_t n);                                               \
    void ap_nn_gelu_erf_bwd_##SUF(R *dinp, const R *inp, const R *dout, size_t n);                               \
    /* p [n] = softmax(p) in place, n >= 1: exp(p - max) / sum, the sum in vector lanes. */                     \
    void ap_nn_softmax_row_##SUF(R *p, int n);                                                                   \
    /* Multi-head attention over B sequences of T tokens. Head h of row r is q[r*ldq + h*hd ..+hd]; it shares \
     * KV head g = h / (H/KV), k and v[r*ldkv + g*hd ..+hd], with the other heads of its group (H % KV == 0).  \
     * out [B*T, H*hd] the heads' P v side by side; att [B,H,T,T] the probabilities P, 0 where masked.          \
     * window: AP_NN_UNMASKED, 0 (causal) or a sliding window (above). Scores are scaled by 1/sqrt(hd). */     \
    void ap_nn_attention_fwd_##SUF(R *out, R *att, const R *q, const R *k, const R *v, int ldq, int ldkv, int B,  \
                                   int T, int H, int KV, int hd, int window);                                   \
    /* dq (stride ldq), dk and dv (stride ldkv) overwritten from dout [B*T, H*hd] and the forward's att.         \
     * scratch: ap_nn_attention_scratch(T) elements. */                                                        \
    void ap_nn_attention_bwd_##SUF(R *dq, R *dk, R *dv, R *scratch, const R *dout, const R *q, const R *k,       \
                                   const R *v, const R *att, int ldq, int ldkv, int B, int T, int H, int KV,     \
                                   int hd, int window);                                                         \
    /* out [n,D] = rows ids[n] of E [V,D]; bwd: dE rows += dout rows, in position order. */                     \
    void ap_nn_embedding_fwd_##SUF(R *out, const int32_t *ids, const R *E, int n, int D);                        \
    void ap_nn_embedding_bwd_##SUF(R *dE, const int32_t *ids, const R *dout, int n, int D);

AP_NN_DECLARE(float, f)
AP_NN_DECLARE(double, d)

/* ---- optimiser (float parameter blocks) ---------------------------------------------------- */

typedef struct ap_nn_adamw {
    double beta1, beta2, eps, weight_decay;
} ap_nn_adamw;

/* One step of PyTorch's AdamW over n parameters p with gradients g and
 * moments m, v (zero before the first step): p *= 1 - lr * weight_decay
 * (decoupled decay; pass weight_decay 0 for tensors without), then the Adam
 * step with bias correction. step counts from 1. The gradients are only read,
 * so a data-parallel caller reduces them across ranks before this call. */
void ap_nn_adamw_step(const ap_nn_adamw *opt, float *p, const float *g, float *m, float *v, size_t n, int64_t step,
                      double lr);
/* sqrt of the sum of squares of g [n], accumulated in double in a fixed order. */
double ap_nn_grad_norm(const float *g, size_t n);
/* g [n] *= s (gradient clipping). */
void ap_nn_scale(float *g, size_t n, float s);

#endif
