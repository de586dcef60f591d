/* The double kernels of apmae/nn.h: the reference the gradient checks compare
 * with finite differences (and the float kernels with). */
#define AP_NN_REAL_DOUBLE
#include "nn/real.h"

/* The erf GELU's Phi(x) and phi(x), from libm. */
static inline void erf_gelu_parts_d(double x, double *cdf, double *pdf) {
    *cdf = 0.5 * (1.0 + erf(x * M_SQRT1_2));
    *pdf = exp(-0.5 * x * x) * (0.5 * M_2_SQRTPI * M_SQRT1_2);
}

#include "kernels.inc"
