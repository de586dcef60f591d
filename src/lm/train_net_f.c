/* The float instantiation of train_net.inc: what training runs. */
#include "nn/real.h"
#include "train_internal.h"

#include "train_net.inc"
