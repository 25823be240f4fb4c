/* block_trace.h — an opt-in tap on the forward pass for telling two backends apart on
 * one prompt: with UP_TRACE_BLOCKS=DIR in the environment, every forward step writes the
 * embedding rows and each block's output (the delta it adds to the residual stream) as
 * raw little-endian fp32 (and, inside the blocks, the intermediate results worth
 * comparing: projections, the token mixer's output, router logits), so a CPU run and a
 * GPU run of the same prompt can be compared block by block (tests/tools/checkpoint_logits.c
 * `compare`, or tests/tools/block_trace_diff.sh). Unset, each tap is one test of a pointer
 * (the environment is read once per process). */
#ifndef UP_ENGINE_MODEL_BLOCK_TRACE_H
#define UP_ENGINE_MODEL_BLOCK_TRACE_H

#include <stdint.h>

#include "kernels/ops.h"

/* With UP_TRACE_BLOCKS=DIR set, writes rows x dim activations at src (backend memory,
 * the activation dtype) to DIR/step<step>_layer<layer>_<what>.f32 (layer -1: the
 * embedding); otherwise does nothing. Exits with a message naming the file when it
 * cannot be written. */
void up_block_trace(up_backend *be, int64_t step, int32_t layer, const char *what, const void *src, int32_t rows,
                    int32_t dim);

#endif
