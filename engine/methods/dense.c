/* dense.c — dense prefill, the reference every other method is compared with: every
 * token enters every layer and attends every earlier one. No options and no hooks:
 * the forward pass's own path is dense. */
#include "engine/methods/method.h"

const up_method_ops up_method_dense = {
    .name = "dense",
    .usage = "dense",
    .summary = "every token through every layer with causal attention (the reference; no options)",
};
