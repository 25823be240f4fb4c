/* moe_block.c — the MoE block (../shared/HYBRIDS.md C.8): router GEMM, fp32 softmax and
 * top-k (renormalised where the config says), the (row, choice) pairs grouped by
 * expert, every expert's rows gathered and run through its gate/up GEMM, one SwiGLU
 * over all of them, its down GEMM (kernels/moe_expert_gemms.h: each projection one
 * grouped_matmul over the experts with rows, the sort handing their counts to the host;
 * --kernels times the same calls beside the per-expert loop);
 * the shared expert on every row with its one-logit gate; the weighted sum back in row
 * order. Under TP (PARALLEL.md 2.6, TP of experts): every rank routes every row with the
 * whole router (the same choices on every rank: its input is identical), holds every
 * expert and the shared expert with its share of their intermediate columns, and the
 * combined partial output is all-reduced once, as vLLM sums routed and shared outputs
 * before one all-reduce. A step of more than UP_MOE_CHUNK_ROWS rows runs in chunks of
 * that many rows (model.h: the buffers' size). Its input norm and residual add are the
 * layer loop's (model.c). */
#include "engine/model/blocks/moe_block.h"

#include "engine/model/block_trace.h"
#include "kernels/moe_expert_gemms.h"

/* Rows [r0, r0 + n) of the step through the routed and shared experts into ws->delta;
 * the MoE buffers hold this chunk only. trace: the block trace's taps (one chunk only:
 * the taps name a layer's whole rows). */
static void moe_chunk(up_forward_step *step, int32_t layer, int32_t r0, int32_t n, bool trace) {
  const up_model *model = step->model;
  const up_model_config *cfg = &model->cfg;
  up_forward_workspace *ws = step->ws;
  up_backend *be = model->be;
  const up_backend_ops *ops = be->ops;
  const int32_t h = cfg->hidden;
  const int32_t n_experts = cfg->n_experts, top_k = cfg->n_experts_per_token;
  /* this rank's intermediate columns (all at TP = 1) */
  const int32_t inter = model->shard.moe_intermediate, shared = model->shard.shared_intermediate;
  const int32_t pairs = n * top_k;
  const void *normed = up_forward_act_at(be, step->normed, (int64_t)r0 * h);
  void *delta = up_forward_act_at(be, ws->delta, (int64_t)r0 * h);
  up_forward_mark(be, UP_PHASE_GEMM);
  ops->matmul(be, ws->router_logits, normed, up_model_weight(model, UP_TENSOR_MOE_ROUTER, layer), n, n_experts, h);
  if (trace) up_block_trace(be, ws->steps_run, layer, "moe_router", ws->router_logits, n, n_experts);
  up_forward_mark(be, UP_PHASE_OTHER);
  ops->moe_route(be, ws->route_weights, ws->route_experts, ws->router_logits, n, n_experts, top_k,
                 cfg->moe_renormalize ? 1 : 0);
  ops->moe_sort(be, ws->moe_source_rows, ws->moe_slot_of, ws->h_expert_offsets, ws->route_experts, n, top_k,
                n_experts);
  ops->gather_rows(be, ws->moe_x, normed, ws->moe_source_rows, pairs, h);
  const up_moe_expert_rows rows = {.x = ws->moe_x, .gate_up = ws->moe_gate_up, .act = ws->moe_act, .out = ws->moe_out};
  const up_moe_expert_weights experts = {.gate_up = up_model_weight(model, UP_TENSOR_MOE_GATE_UP, layer),
                                         .down = up_model_weight(model, UP_TENSOR_MOE_DOWN, layer),
                                         .n_experts = n_experts, .hidden = h, .inter = inter};
  /* Grouped, not one matmul per expert: the experts' row counts all differ, so the loop's
   * 2 x n_experts cuBLASLt calls per layer each missed the GEMM plan cache (keyed by the
   * row count) and paid a heuristic query on the host (docs/kernels/gated_deltanet.md). */
  up_moe_expert_gemms(be, &rows, &experts, ws->h_expert_offsets, true, up_forward_mark);
  /* grouped by expert, stable within one: the same row order on every backend */
  if (trace) up_block_trace(be, ws->steps_run, layer, "moe_experts", ws->moe_out, pairs, h);
  ops->matmul(be, ws->shared_gate_up, normed, up_model_weight(model, UP_TENSOR_SHARED_GATE_UP, layer), n, 2 * shared,
              h);
  ops->matmul(be, ws->shared_logit, normed, up_model_weight(model, UP_TENSOR_SHARED_GATE, layer), n, 1, h);
  up_forward_mark(be, UP_PHASE_OTHER);
  ops->swiglu(be, ws->shared_act, ws->shared_gate_up, n, shared);
  up_forward_mark(be, UP_PHASE_GEMM);
  ops->matmul(be, ws->shared_out, ws->shared_act, up_model_weight(model, UP_TENSOR_SHARED_DOWN, layer), n, h, shared);
  up_forward_mark(be, UP_PHASE_OTHER);
  if (trace) {
    up_block_trace(be, ws->steps_run, layer, "moe_shared", ws->shared_out, n, h);
    up_block_trace(be, ws->steps_run, layer, "moe_shared_gate", ws->shared_logit, n, 1);
  }
  ops->moe_combine(be, delta, ws->moe_out, ws->moe_slot_of, ws->route_weights, ws->shared_out, ws->shared_logit, n,
                   top_k, h);
}

void up_moe_block(up_forward_step *step, int32_t layer) {
  const int32_t n_rows = step->n_rows, chunk = (int32_t)step->ws->moe_rows;
  /* Every row's output depends on that row alone, so chunks change nothing but the
   * buffers' size (and each chunk's one host sync for the expert offsets). */
  for (int32_t r0 = 0; r0 < n_rows; r0 += chunk)
    moe_chunk(step, layer, r0, n_rows - r0 < chunk ? n_rows - r0 : chunk, n_rows <= chunk);
  /* The combine is linear in the expert outputs: the sum of the ranks' combined partials
   * is the combined sum. */
  up_forward_all_reduce_rows(step, step->ws->delta, n_rows, layer, "MoE output all-reduce");
}
