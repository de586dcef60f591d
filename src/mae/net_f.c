/* The float instantiation of net.inc: what the tool runs. */
#include "internal.h"
#include "nn/real.h"

#include "net.inc"
