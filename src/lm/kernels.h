/* Float32 kernels of the StarCoder2 forward pass (internal to src/lm). */
#ifndef APMAE_LM_KERNELS_H
#define APMAE_LM_KERNELS_H

#include "apmae/io.h"

#include <math.h>
#include <stdint.h>

/* exp(x) for float within 2 ulp; exp of anything below -87.3 is 0.
 * Cephes-style: x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6
 * polynomial, 2^n put into the exponent bits. Written branch-free so that
 * `omp simd` loops vectorise it (libm's expf does not vectorise here). */
static inline float lm_fast_expf(float x) {
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


/* y[T,D] = LayerNorm(x[T,D]) * w + b (biased variance, eps). */
void lm_layernorm(float *y, const float *x, const float *w, const float *b, int T, int D, float eps);

/* y[T, ldy] (first `out` columns) = x[T,in] W^T (+ bias), W [out, in] in its
 * stored dtype; weights wider than float32 storage are widened block by block
 * into scratch (scratch_floats floats), so memory stays bounded. */
void lm_linear(float *y, int ldy, const float *x, int T, int in, int out, const void *W, ap_dtype wdt,
               const float *bias, float *scratch, size_t scratch_floats);

/* x = gelu_tanh(x) over n elements. */
void lm_gelu_tanh(float *x, size_t n);

/* Rotate-half RoPE in place on [T, nheads*hd] rows (row stride ld). cos/sin
 * tables are [T, hd/2]. */
void lm_rope(float *x, int ld, int T, int nheads, int hd, const float *cos_t, const float *sin_t);

/* Fill cos/sin tables [T, hd/2] the way Hugging Face does (float32 angles). */
void lm_rope_tables(float *cos_t, float *sin_t, int T, int hd, double theta);

/* Causal (optionally windowed) attention for all heads of one layer.
 * q [T, H*hd], k/v [T, KV*hd]; out [T, H*hd]; P (if non-NULL) [H, T, T]
 * receives the probabilities with zeros where masked. ablate[h] != 0 zeroes
 * that head's output. scratch: T floats per thread. */
void lm_attention(float *out, float *P, const float *q, const float *k, const float *v, int T, int H, int KV,
                  int hd, int window, const uint8_t *ablate, float *scratch);

#endif
