/* kernel_targets.h — the kernel targets of issue 4 and the published references of
 * ../shared/ALGORITHMS.md (measured on one H100), attached to the --kernels cases whose
 * shapes they were set for, and the met / missed verdict once a case is timed. They
 * are GPU targets for the Llama-3.1-8B shapes: a CPU run or another model gets none.
 *   GEMM at 32K tokens: >= 95% of cuBLAS (qkv 782, gate_up 770, down 736 TFLOP/s);
 *   causal prefill attention, 32 q / 8 kv heads, head_dim 128, batch 1: >= 350 TFLOP/s
 *     required, 600 the goal (FlashAttention-2 238 / 343 / 346 at 4K / 16K / 64K);
 *   selection, same heads, block 64, sink 128, last_q 128: <= 0.5 ms at 1x32K,
 *     2 ms at 1x128K, 1 ms at 16x8K (Triton reference 3.96 to 119 ms). */
#ifndef UP_KERNEL_TARGETS_H
#define UP_KERNEL_TARGETS_H

#include <stdbool.h>

#include "kernels/ops.h"
#include "kernels/uniprefill_ops.h"
#include "launcher/kernels/kernel_record.h"

/* Fill the target, goal, reference and basis fields of a described case (NaN, "" and
 * UP_VERDICT_NONE where none applies). select: the selection knobs of the run. */
void up_kernel_targets_attach(up_kernel_record *r, up_kernel_kind kind, const up_select_params *select,
                              bool on_gpu);

/* Set target_met and goal_met from the measured median. */
void up_kernel_targets_judge(up_kernel_record *r);

#endif
