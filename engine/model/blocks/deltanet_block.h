/* deltanet_block.h — the Gated DeltaNet block (deltanet_block.c). */
#ifndef UP_DELTANET_BLOCK_H
#define UP_DELTANET_BLOCK_H

#include "engine/model/blocks/forward_step.h"

/* Layer `layer`'s Gated DeltaNet over the batch's rows, each sequence continuing from
 * its recurrent state slot when it has computed tokens before this step: output
 * projection into ws->delta; the slots end holding the state after each sequence's
 * last row. Rows are the step's current ones: after a drop, each sequence's kept rows
 * run as one contiguous sequence. */
void up_deltanet_block(up_forward_step *step, int32_t layer);

#endif
