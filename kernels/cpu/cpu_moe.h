/* cpu_moe.h — private to kernels/cpu (and the tests that check it): the CPU reference
 * of the MoE routing ops (moe_route, moe_sort, moe_combine), the experts' grouped
 * matmul, and of the gated
 * attention's helpers (split_query_gate, sigmoid_gate, rope_partial) of kernels/ops.h. */
#ifndef UP_CPU_MOE_H
#define UP_CPU_MOE_H

#include "kernels/ops.h"

/* cpu_moe.c */
void up_cpu_moe_route(up_backend *be, float *weights, int32_t *experts, const void *logits, int32_t n_tokens,
                      int32_t n_experts, int32_t top_k, int32_t renormalize);
void up_cpu_moe_sort(up_backend *be, int32_t *source_rows, int32_t *slot_of, int32_t *expert_offsets_host,
                     const int32_t *experts, int32_t n_tokens, int32_t top_k, int32_t n_experts);
void up_cpu_moe_combine(up_backend *be, void *out, const void *expert_out, const int32_t *slot_of,
                        const float *weights, const void *shared_out, const void *shared_gate, int32_t n_tokens,
                        int32_t top_k, int32_t dim);
void up_cpu_grouped_matmul(up_backend *be, void *out, const void *a, const void *w, const int32_t *offsets_host,
                           int32_t n_groups, int32_t n, int32_t k);

/* cpu_gated_attention.c */
void up_cpu_split_query_gate(up_backend *be, void *q, int32_t q_stride, void *gate, const void *qg, int32_t n_tokens,
                             int32_t n_heads, int32_t head_dim);
void up_cpu_sigmoid_gate(up_backend *be, void *x, const void *gate, int32_t n_rows, int32_t dim);
void up_cpu_rope_partial(up_backend *be, void *qkv, const int32_t *positions, const float *inv_freq,
                         int32_t n_tokens, const up_attn_shape *shape, int32_t rotary_dim);

#endif
