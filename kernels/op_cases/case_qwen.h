/* case_qwen.h — the op-case drivers of the Qwen3-Next ops (kernels/ops.h, issue 14):
 * case_deltanet.c (causal_conv1d, gdn_gates, gated_deltanet, gated_rmsnorm), case_moe.c
 * (moe_route, moe_sort, moe_combine), case_moe_experts.c (the experts' GEMMs) and
 * case_moe_attention.c (split_query_gate,
 * sigmoid_gate, rope_partial), and the helpers they share. Kept beside op_case.h
 * rather than in it so these ops' cases join without touching the shared header; the
 * dims they read are op_case.h's, mapped as follows:
 *   causal_conv1d, gated_deltanet: batch — shape.n_heads value heads, shape.n_kv_heads
 *     key heads, shape.head_dim; per-sequence rows; prior[s] > 0: the sequence starts
 *     from a stored state (a cached prefix, or a decode step when rows[s] is 1).
 *     The conv runs over the (2 key + value) heads' channels, width 4.
 *   gdn_gates: rows — rows tokens, dim value heads.
 *   gated_rmsnorm: rows — rows tokens, dim head_dim, src_rows heads.
 *   moe_route, moe_sort: rows — rows tokens, dim experts, src_rows top-k.
 *   moe_combine: gemm — m tokens, n dim, k top-k, a_offset 1: with the shared expert.
 *   split_query_gate, sigmoid_gate, rope_partial: rope — shape and n_tokens (positions
 *     from first_position); rope_partial rotates a quarter of each head (Qwen3-Next's
 *     64 of 256) with theta 1e7 frequencies unless inv_freq is given. */
#ifndef UP_CASE_QWEN_H
#define UP_CASE_QWEN_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/op_cases/op_case.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const up_op_driver up_op_causal_conv1d;
extern const up_op_driver up_op_gdn_gates;
extern const up_op_driver up_op_gated_deltanet;
extern const up_op_driver up_op_gated_rmsnorm;
extern const up_op_driver up_op_moe_route;
extern const up_op_driver up_op_moe_sort;
extern const up_op_driver up_op_moe_combine;
extern const up_op_driver up_op_split_query_gate;
extern const up_op_driver up_op_sigmoid_gate;
extern const up_op_driver up_op_rope_partial;
/* The routed experts' GEMMs and SwiGLU as the MoE block runs them (kernels/moe_expert_gemms.h):
 * moe dims; tokens routed uniformly at random, so each expert holds about tokens x top_k /
 * n_experts rows. One expert of inter x top_k with top_k 1 is the dense MLP of the same
 * active FLOPs. */
extern const up_op_driver up_op_moe_experts;
/* The same with each projection one grouped_matmul call. */
extern const up_op_driver up_op_moe_experts_grouped;

#ifdef __cplusplus
}
#endif

#endif
