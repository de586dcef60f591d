/* The double instantiation of net.inc: the reference the unit tests check
 * against finite differences (and the float code against). */
#define AP_NN_REAL_DOUBLE
#include "internal.h"
#include "nn/real.h"

#include "net.inc"
