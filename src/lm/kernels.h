/* Float32 kernels of the StarCoder2 forward pass (internal to src/lm) that
 * the shared kernels of apmae/nn.h cannot serve: products with weights in
 * their stored dtype, RoPE, and the inference attention. LayerNorm, GELU,
 * softmax rows and residual adds are apmae/nn.h's. */
#ifndef APMAE_LM_KERNELS_H
#define APMAE_LM_KERNELS_H

#include "apmae/io.h"

#include <stdint.h>

/* y[T, out] = x[T,in] W^T (+ bias), W [out, in] in its stored dtype. Aligned
 * float32 weights are ap_nn_linear_fwd_f's; others are widened block by block
 * into scratch (scratch_floats floats), so memory stays bounded. */
void lm_linear(float *y, const float *x, int T, int in, int out, const void *W, ap_dtype wdt, const float *bias,
               float *scratch, size_t scratch_floats);

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
