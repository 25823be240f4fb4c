/* time_account.h — where one prompt's prefill time goes, predicted from the --kernels
 * rows (issue 14: "a FLOP and byte account of where the time goes"): at each prompt
 * length the plan timed, every layer's timed work summed by block kind over the
 * model's layers. Owns the sum and its markdown table only: the rows are kernel_bench.c's
 * measurements of kernel_cases.c's cases, and the layer list is the model config's.
 *
 * Per layer: its mixer's own kernel (the "deltanet 1xL" row at a linear-attention layer,
 * "attention 1xL" at its window elsewhere) and its mixer projections' "gemm" rows; its
 * feed-forward block's GEMMs ("gemm" rows: an MoE's router and shared expert, a dense
 * MLP's gate/up and down) and, at an MoE layer, the routed experts as the forward runs
 * them (the "moe ... grouped" row). GEMM and MoE rows are timed at --kernel-tokens T
 * rows and scaled linearly to L (pass --kernel-tokens L to time them at L); their
 * FLOPs and bytes are recounted at L (weights once). The floor is each part's own
 * (FLOPs or bytes at the device's peaks, the larger) summed.
 *
 * Not timed, so not in the total: norms, the DeltaNet conv, gates and gated norm, the
 * attention's q/gate split, q/k norms, rope and output gate, the MoE routing (route,
 * sort with its host round trip, gather, combine), residual adds, the embedding and the
 * LM head: a measured TTFT minus the timed total is their share. */
#ifndef UP_TIME_ACCOUNT_H
#define UP_TIME_ACCOUNT_H

#include <stdio.h>

#include "engine/model/model_config.h"
#include "launcher/cli.h"
#include "launcher/kernels/kernel_cases.h"

/* Prints the account of each prompt length the plan timed (attention or deltanet cases
 * of one prompt), in markdown only: CSV and JSON keep stdout to the kernels table. A
 * length whose rows the plan lacks (--kernel-cases left a kind out) gets a line naming
 * them instead of a table. */
void up_time_account_print(FILE *out, up_output_format format, const up_kernel_plan *plan,
                           const up_model_config *cfg);

#endif
