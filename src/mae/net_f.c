/* The float instantiation of net.inc: what the tool runs. */
#include "internal.h"

#include <math.h>
#include <stdint.h>

/* exp(y) for y in [-87, 0]: y = k ln2 + r (ln2 split in two for exactness),
 * exp(r) by its degree-7 Taylor polynomial (|r| <= ln2/2: error < 1e-8),
 * 2^k built in the exponent bits. Straight-line, so loops vectorise. */
static inline float exp_nonpos(float y) {
    const float k = -(float)(int32_t)(0.5f - y * 1.44269504f); /* round(y/ln2); the cast floors: 0.5-y/ln2 > 0 */
    const float r = (y - k * 0.693145751953125f) - k * 1.428606765330187e-06f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        int32_t i;
        float f;
    } scale = {.i = ((int32_t)k + 127) << 23};
    return p * scale.f;
}

/* The exact-erf GELU's Φ(x) = (1 + erf(x/√2))/2 and φ(x) = exp(-x²/2)/√(2π)
 * to float resolution: erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7,
 * as good as erff) sharing its exp(-x²/2) with φ. glibc's erff does not
 * vectorise and was a sixth of a training step. */
static inline void gelu_parts_f(float x, float *cdf, float *pdf) {
    /* a = min(|x|, 13) on the bits (non-negative floats order as integers;
     * a float compare here would stop the vectoriser); exp(-a²/2) is 0 in
     * float beyond 13 anyway. */
    union {
        float f;
        uint32_t u;
    } a = {.f = x};
    a.u &= 0x7fffffffu;
    a.u = a.u < 0x41500000u ? a.u : 0x41500000u;
    const float e = exp_nonpos(-0.5f * a.f * a.f);
    const float t = 1.0f / (1.0f + 0.3275911f * (float)M_SQRT1_2 * a.f);
    float q = 1.061405429f;
    q = q * t - 1.453152027f;
    q = q * t + 1.421413741f;
    q = q * t - 0.284496736f;
    q = q * t + 0.254829592f;
    const float erf_abs = 1.0f - q * t * e;
    *cdf = 0.5f + 0.5f * copysignf(erf_abs, x);
    *pdf = e * (float)(0.5 * M_2_SQRTPI * M_SQRT1_2);
}

#define R float
#define FN(name) name##_f
#define GEMM cblas_sgemm
#define R_SQRT sqrtf
#define R_EXP expf
#define GELU_PARTS gelu_parts_f
#include "net.inc"
