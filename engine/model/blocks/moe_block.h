/* moe_block.h — the mixture-of-experts block (moe_block.c). */
#ifndef UP_MOE_BLOCK_H
#define UP_MOE_BLOCK_H

#include "engine/model/blocks/forward_step.h"

/* Layer `layer`'s MoE over the batch's rows into ws->delta: each row through its top-k
 * routed SwiGLU experts, weighted by the router, plus the sigmoid-gated shared expert. */
void up_moe_block(up_forward_step *step, int32_t layer);

#endif
