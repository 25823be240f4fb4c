/* moe_expert_gemms.h — the routed experts' GEMMs of an MoE block over rows already
 * grouped by expert (moe_sort's order): each expert's gate/up GEMM over its rows, one
 * SwiGLU over all of them, each expert's down GEMM: one grouped_matmul per projection,
 * or one matmul call per expert that has rows, sized from moe_sort's host offsets. The one place this loop lives, so the
 * forward (engine/model/blocks/moe_block.c) and --kernels (the "moe" op case,
 * kernels/op_cases/case_moe_experts.c) time the same calls, and a grouped GEMM that
 * replaces the loop replaces it for both (grouped_matmul, the alternative measured
 * beside it). Backend-generic: only up_backend_ops calls.
 * Header-only (static inline), as kernels/uniprefill_ops.h's wrapper. */
#ifndef UP_MOE_EXPERT_GEMMS_H
#define UP_MOE_EXPERT_GEMMS_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The activation buffers of the grouped rows (backend memory, activation dtype). */
typedef struct up_moe_expert_rows {
  const void *x;  /* [pairs][hidden] inputs, grouped by expert */
  void *gate_up;  /* [pairs][2 inter] */
  void *act;      /* [pairs][inter] */
  void *out;      /* [pairs][hidden] */
} up_moe_expert_rows;

/* The weight stacks: expert e's gate/up rows [2 inter][hidden] at e * 2 inter * hidden,
 * its down rows [hidden][inter] at e * hidden * inter. */
typedef struct up_moe_expert_weights {
  const void *gate_up;
  const void *down;
  int32_t n_experts, hidden, inter;
} up_moe_expert_weights;

/* Backend memory `values` activation values past p. */
static inline void *up_moe_act_at(const up_backend *be, const void *p, int64_t values) {
  return (char *)p + values * (int64_t)up_dtype_size(be->act_dtype);
}

/* offsets_host[e] .. [e + 1]: expert e's rows (n_experts + 1 values, from moe_sort).
 * grouped: each projection in one grouped_matmul call instead of one matmul per expert
 * with rows (the forward's choice; --kernels times both). mark: the
 * phase clock (NULL: none), GEMMs apart from the SwiGLU. */
static inline void up_moe_expert_gemms(up_backend *be, const up_moe_expert_rows *rows,
                                       const up_moe_expert_weights *w, const int32_t *offsets_host, bool grouped,
                                       void (*mark)(up_backend *, up_phase)) {
  const up_backend_ops *ops = be->ops;
  const int64_t h = w->hidden, inter = w->inter;
  const int32_t pairs = offsets_host[w->n_experts];
  if (mark) mark(be, UP_PHASE_GEMM);
  if (grouped)
    ops->grouped_matmul(be, rows->gate_up, rows->x, w->gate_up, offsets_host, w->n_experts, (int32_t)(2 * inter),
                        (int32_t)h);
  for (int32_t e = 0; !grouped && e < w->n_experts; ++e) {
    const int32_t n = offsets_host[e + 1] - offsets_host[e];
    if (n > 0)
      ops->matmul(be, up_moe_act_at(be, rows->gate_up, offsets_host[e] * 2 * inter),
                  up_moe_act_at(be, rows->x, offsets_host[e] * h), up_moe_act_at(be, w->gate_up, e * 2 * inter * h), n,
                  (int32_t)(2 * inter), (int32_t)h);
  }
  if (mark) mark(be, UP_PHASE_OTHER);
  ops->swiglu(be, rows->act, rows->gate_up, pairs, (int32_t)inter);
  if (mark) mark(be, UP_PHASE_GEMM);
  if (grouped)
    ops->grouped_matmul(be, rows->out, rows->act, w->down, offsets_host, w->n_experts, (int32_t)h, (int32_t)inter);
  for (int32_t e = 0; !grouped && e < w->n_experts; ++e) {
    const int32_t n = offsets_host[e + 1] - offsets_host[e];
    if (n > 0)
      ops->matmul(be, up_moe_act_at(be, rows->out, offsets_host[e] * h),
                  up_moe_act_at(be, rows->act, offsets_host[e] * inter), up_moe_act_at(be, w->down, e * h * inter), n,
                  (int32_t)h, (int32_t)inter);
  }
}

#ifdef __cplusplus
}
#endif

#endif
