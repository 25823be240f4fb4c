/* mlp_block.h — the shared gated MLP block (mlp_block.c). */
#ifndef UP_MLP_BLOCK_H
#define UP_MLP_BLOCK_H

#include "engine/model/blocks/forward_step.h"

/* Layer `layer`'s MLP over the batch's rows: down(act(gate x) * up x) into ws->delta,
 * act being silu or tanh-GELU by the layer's MLP kind; post-normed where the layer has it. */
void up_mlp_block(up_forward_step *step, int32_t layer);

#endif
