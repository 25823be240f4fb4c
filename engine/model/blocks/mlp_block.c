/* mlp_block.c — the gated MLP block: fused gate/up GEMM, silu(gate) * up (SwiGLU) or
 * gelu_tanh(gate) * up (GeGLU) by the layer's MLP kind, down GEMM (row-parallel under
 * TP: its partial sums all-reduced over the group), and the post-norm where the layer
 * has one (Gemma). Its input norm and residual add are the layer
 * loop's (model.c). */
#include "engine/model/blocks/mlp_block.h"

void up_mlp_block(up_forward_step *step, int32_t layer) {
  const up_model *model = step->model;
  const up_model_config *cfg = &model->cfg;
  up_forward_workspace *ws = step->ws;
  up_backend *be = model->be;
  const up_backend_ops *ops = be->ops;
  const int32_t n_rows = step->n_rows, h = cfg->hidden;
  const int32_t inter = model->shard.intermediate; /* this rank's columns (all at TP = 1) */

  up_forward_mark(be, UP_PHASE_GEMM);
  ops->matmul(be, ws->gate_up, step->normed, up_model_weight(model, UP_TENSOR_MLP_GATE_UP, layer), n_rows,
              2 * inter, h);
  up_forward_mark(be, UP_PHASE_OTHER);
  if (cfg->mlp_kind[layer] == UP_MLP_GEGLU_TANH)
    ops->geglu(be, ws->mlp_act, ws->gate_up, n_rows, inter);
  else
    ops->swiglu(be, ws->mlp_act, ws->gate_up, n_rows, inter);
  up_forward_mark(be, UP_PHASE_GEMM);
  ops->matmul(be, ws->delta, ws->mlp_act, up_model_weight(model, UP_TENSOR_MLP_DOWN, layer), n_rows, h, inter);
  up_forward_mark(be, UP_PHASE_OTHER);
  up_forward_all_reduce_rows(step, ws->delta, n_rows, layer, "MLP output all-reduce");
  const void *post_norm = up_model_weight(model, UP_TENSOR_MLP_POST_NORM, layer);
  if (post_norm) ops->rmsnorm(be, ws->delta, ws->delta, post_norm, n_rows, h, cfg->norm_eps);
}
