/* The float kernels of apmae/nn.h: what the tool runs. */
#include "nn/real.h"

#include <stdint.h>

/* The erf GELU's Phi(x) = (1 + erf(x/sqrt 2))/2 and phi(x) = exp(-x^2/2)/sqrt(2 pi)
 * to float resolution: erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7,
 * as good as erff) sharing its exp(-x^2/2) with phi. glibc's erff does not
 * vectorise and was a sixth of an AP-MAE training step. */
static inline void erf_gelu_parts_f(float x, float *cdf, float *pdf) {
    /* a = min(|x|, 13) on the bits (non-negative floats order as integers;
     * a float compare here would stop the vectoriser); exp(-a^2/2) is 0 in
     * float beyond 13 anyway. */
    union {
        float f;
        uint32_t u;
    } a = {.f = x};
    a.u &= 0x7fffffffu;
    a.u = a.u < 0x41500000u ? a.u : 0x41500000u;
    const float e = ap_nn_fast_expf(-0.5f * a.f * a.f);
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

#include "kernels.inc"
