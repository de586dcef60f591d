/* The double instantiation of train_net.inc: the reference the gradient
 * checks compare with finite differences (and the float code with). */
#define AP_NN_REAL_DOUBLE
#include "nn/real.h"
#include "train_internal.h"

#include "train_net.inc"
