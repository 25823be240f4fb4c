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
 * before one all-reduce. Its input norm and residual add are the layer loop's (model.c). */
#include "engine/model/blocks/moe_block.h"

#include "engine/model/block_trace.h"
#include "kernels/moe_expert_gemms.h"

void up_moe_block(up_forward_step *step, int32_t layer) {
  const up_model *model = step->model;
  const up_model_config *cfg = &model->cfg;
  up_forward_workspace *ws = step->ws;
  up_backend *be = model->be;
  const up_backend_ops *ops = be->ops;
  const int32_t n_rows = step->n_rows, h = cfg->hidden;
  const int32_t n_experts = cfg->n_experts, top_k = cfg->n_experts_per_token;
  /* this rank's intermediate columns (all at TP = 1) */
  const int32_t inter = model->shard.moe_intermediate, shared = model->shard.shared_intermediate;
  const int32_t pairs = n_rows * top_k;
  up_forward_mark(be, UP_PHASE_GEMM);
  ops->matmul(be, ws->router_logits, step->normed, up_model_weight(model, UP_TENSOR_MOE_ROUTER, layer), n_rows,
              n_experts, h);
  up_block_trace(be, ws->steps_run, layer, "moe_router", ws->router_logits, n_rows, n_experts);
  up_forward_mark(be, UP_PHASE_OTHER);
  ops->moe_route(be, ws->route_weights, ws->route_experts, ws->router_logits, n_rows, n_experts, top_k,
                 cfg->moe_renormalize ? 1 : 0);
  ops->moe_sort(be, ws->moe_source_rows, ws->moe_slot_of, ws->h_expert_offsets, ws->route_experts, n_rows, top_k,
                n_experts);
  ops->gather_rows(be, ws->moe_x, step->normed, ws->moe_source_rows, pairs, h);
  const up_moe_expert_rows rows = {.x = ws->moe_x, .gate_up = ws->moe_gate_up, .act = ws->moe_act, .out = ws->moe_out};
  const up_moe_expert_weights experts = {.gate_up = up_model_weight(model, UP_TENSOR_MOE_GATE_UP, layer),
                                         .down = up_model_weight(model, UP_TENSOR_MOE_DOWN, layer),
                                         .n_experts = n_experts, .hidden = h, .inter = inter};
  /* Grouped, not one matmul per expert: the experts' row counts all differ, so the loop's
   * 2 x n_experts cuBLASLt calls per layer each missed the GEMM plan cache (keyed by the
   * row count) and paid a heuristic query on the host (docs/kernels/gated_deltanet.md). */
  up_moe_expert_gemms(be, &rows, &experts, ws->h_expert_offsets, true, up_forward_mark);
  /* grouped by expert, stable within one: the same row order on every backend */
  up_block_trace(be, ws->steps_run, layer, "moe_experts", ws->moe_out, pairs, h);
  ops->matmul(be, ws->shared_gate_up, step->normed, up_model_weight(model, UP_TENSOR_SHARED_GATE_UP, layer), n_rows,
              2 * shared, h);
  ops->matmul(be, ws->shared_logit, step->normed, up_model_weight(model, UP_TENSOR_SHARED_GATE, layer), n_rows, 1, h);
  up_forward_mark(be, UP_PHASE_OTHER);
  ops->swiglu(be, ws->shared_act, ws->shared_gate_up, n_rows, shared);
  up_forward_mark(be, UP_PHASE_GEMM);
  ops->matmul(be, ws->shared_out, ws->shared_act, up_model_weight(model, UP_TENSOR_SHARED_DOWN, layer), n_rows, h,
              shared);
  up_forward_mark(be, UP_PHASE_OTHER);
  up_block_trace(be, ws->steps_run, layer, "moe_shared", ws->shared_out, n_rows, h);
  up_block_trace(be, ws->steps_run, layer, "moe_shared_gate", ws->shared_logit, n_rows, 1);
  ops->moe_combine(be, ws->delta, ws->moe_out, ws->moe_slot_of, ws->route_weights, ws->shared_out, ws->shared_logit,
                   n_rows, top_k, h);
  /* The combine is linear in the expert outputs: the sum of the ranks' combined partials
   * is the combined sum. */
  up_forward_all_reduce_rows(step, ws->delta, n_rows, layer, "MoE output all-reduce");
}
