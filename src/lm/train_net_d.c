/* The double instantiation of train_net.inc: the reference the gradient
 * checks compare with finite differences (and the float code with). */
#include "train_internal.h"

#include <math.h>

#define R double
#define FN(name) name##_d
#define GEMM cblas_dgemm
#define R_EXP exp
#include "train_net.inc"
