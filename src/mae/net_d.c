/* The double instantiation of net.inc: the reference the unit tests check
 * against finite differences (and the float code against). */
#include "internal.h"

#include <math.h>

/* The exact-erf GELU's Φ(x) and φ(x), from libm. */
static inline void gelu_parts_d(double x, double *cdf, double *pdf) {
    *cdf = 0.5 * (1.0 + erf(x * M_SQRT1_2));
    *pdf = exp(-0.5 * x * x) * (0.5 * M_2_SQRTPI * M_SQRT1_2);
}

#define R double
#define FN(name) name##_d
#define GEMM cblas_dgemm
#define R_SQRT sqrt
#define R_EXP exp
#define GELU_PARTS gelu_parts_d
#include "net.inc"
