/* attention_block.h — the shared attention block (attention_block.c). */
#ifndef UP_ATTENTION_BLOCK_H
#define UP_ATTENTION_BLOCK_H

#include "engine/model/blocks/forward_step.h"

/* Layer `layer`'s attention over the batch: QKV projection, RoPE at each row's
 * original position, K/V stored at the layer's own cache length, causal GQA attention
 * (the method's, when it has its own), output projection into ws->delta. Leaves the
 * batch view in step->view and the rows' Q/K/V in ws->qkv for the drop hook. */
void up_attention_block(up_forward_step *step, int32_t layer);

#endif
