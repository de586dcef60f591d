/* The scalar type of a source written once over R and compiled twice: float
 * (what the tool runs) and double (what the gradient checks compare with
 * finite differences). The project's one such mechanism: a source `x.inc` is
 * compiled by `x_f.c`
 *     #include "nn/real.h"
 *     #include "x.inc"
 * and by `x_d.c`, which defines AP_NN_REAL_DOUBLE before the same two lines.
 * This header provides
 *   R         the scalar type
 *   FN(name)  name with the type's suffix _f / _d (so FN(ap_nn_linear_fwd) is
 *             the apmae/nn.h kernel of the same type)
 *   GEMM      cblas_sgemm / cblas_dgemm
 *   R_EXP     ap_nn_fast_expf / exp: the float code's exp is the fast one, in
 *             training as in inference, so the two compute the same softmax */
#ifndef APMAE_NN_REAL_H
#define APMAE_NN_REAL_H

#include "apmae/nn.h"

#include <cblas.h>
#include <math.h>

#ifdef AP_NN_REAL_DOUBLE
#define R double
#define FN(name) name##_d
#define GEMM cblas_dgemm
#define R_EXP exp
#else
#define R float
#define FN(name) name##_f
#define GEMM cblas_sgemm
#define R_EXP ap_nn_fast_expf
#endif

#endif
