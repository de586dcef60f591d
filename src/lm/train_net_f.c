/* The float instantiation of train_net.inc: what training runs. Its exp is
 * the inference kernels' lm_fast_expf, so the training forward computes what
 * ap_lm_forward does. */
#include "kernels.h"
#include "train_internal.h"

#define R float
#define FN(name) name##_f
#define GEMM cblas_sgemm
#define R_EXP lm_fast_expf
#include "train_net.inc"
