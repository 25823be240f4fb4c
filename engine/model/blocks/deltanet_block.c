/* deltanet_block.c — the Gated DeltaNet block (../shared/HYBRIDS.md C.3-C.5): one GEMM
 * for q, k, v and z (engine rows: every q, every k, every v, then every z), one for b
 * and a; the causal depthwise conv with SiLU over q|k|v from each sequence's conv
 * state; the gates; the chunked delta rule from each sequence's recurrent state (the
 * op l2-normalises q and k and scales q); the gated RMSNorm with silu(z) (plain w);
 * the output GEMM, whose partial sums are all-reduced over the tensor-parallel group.
 * Under TP every dimension is the rank's: whole key heads with their value heads,
 * their conv channels and their states (model_shard.h, PARALLEL.md 2.6).
 * Decode rows are one-row sequences of the same ops. Its input norm and
 * residual add are the layer loop's (model.c); the state slots come from the layer
 * memory through each sequence (up_forward_seq.state_slot). */
#include "engine/model/blocks/deltanet_block.h"

#include <math.h>

#include "core/fatal.h"
#include "engine/model/block_trace.h"

void up_deltanet_block(up_forward_step *step, int32_t layer) {
  const up_model *model = step->model;
  const up_model_config *cfg = &model->cfg;
  up_forward_workspace *ws = step->ws;
  up_backend *be = model->be;
  const up_backend_ops *ops = be->ops;
  const int32_t n_rows = step->n_rows, h = cfg->hidden;
  const up_model_shard *shard = &model->shard;
  const int32_t key = (int32_t)up_model_shard_dim(shard, cfg, UP_DIM_GDN_KEY);
  const int32_t value = (int32_t)up_model_shard_dim(shard, cfg, UP_DIM_GDN_VALUE);
  const int32_t conv = (int32_t)up_model_shard_dim(shard, cfg, UP_DIM_GDN_CONV), qkvz = conv + value;
  const int32_t heads = shard->n_linear_value_heads, d = cfg->linear_head_dim, width = cfg->linear_conv_width;
  const int32_t li = ws->linear_index[layer];
  UP_ASSERT(li >= 0, "layer %d runs a DeltaNet block without a recurrent state in the workspace", (int)layer);
  const size_t slots = (size_t)ws->max_seqs;
  void *conv_state = up_forward_act_at(be, ws->conv_states, (int64_t)li * (int64_t)slots * (width - 1) * conv);
  float *ssm_state = ws->ssm_states + (size_t)li * slots * (size_t)heads * (size_t)d * (size_t)d;
  const up_recurrent_batch batch = {.n_seqs = step->n_seqs, .n_tokens = n_rows, .cu_seqlens = ws->cu_seqlens,
                                    .state_slots = ws->state_slots, .has_initial_state = ws->has_state};

  up_forward_mark(be, UP_PHASE_GEMM);
  ops->matmul(be, ws->gdn_qkvz, step->normed, up_model_weight(model, UP_TENSOR_GDN_QKVZ, layer), n_rows, qkvz, h);
  ops->matmul(be, ws->gdn_ba, step->normed, up_model_weight(model, UP_TENSOR_GDN_BA, layer), n_rows, 2 * heads, h);
  up_block_trace(be, ws->steps_run, layer, "gdn_qkvz", ws->gdn_qkvz, n_rows, qkvz);
  up_block_trace(be, ws->steps_run, layer, "gdn_ba", ws->gdn_ba, n_rows, 2 * heads);
  /* The delta rule is this layer's token mixer: its time counts as attention. */
  up_forward_mark(be, UP_PHASE_ATTENTION);
  ops->causal_conv1d(be, ws->gdn_conv, ws->gdn_qkvz, qkvz, up_model_weight(model, UP_TENSOR_GDN_CONV, layer),
                     conv_state, &batch, conv, width);
  up_block_trace(be, ws->steps_run, layer, "gdn_conv", ws->gdn_conv, n_rows, conv);
  ops->gdn_gates(be, ws->gdn_g, ws->gdn_beta, up_forward_act_at(be, ws->gdn_ba, heads), ws->gdn_ba, 2 * heads,
                 up_model_weight(model, UP_TENSOR_GDN_A_LOG, layer),
                 up_model_weight(model, UP_TENSOR_GDN_DT_BIAS, layer), n_rows, heads);
  const up_gdn_shape shape = {.n_key_heads = shard->n_linear_key_heads, .n_value_heads = heads, .head_dim = d,
                              .qkv_stride = conv, .scale = 1.0f / sqrtf((float)d)};
  ops->gated_deltanet(be, ws->gdn_out, ws->gdn_conv, up_forward_act_at(be, ws->gdn_conv, key),
                      up_forward_act_at(be, ws->gdn_conv, 2 * (int64_t)key), ws->gdn_g, ws->gdn_beta, ssm_state, &batch,
                      &shape);
  up_block_trace(be, ws->steps_run, layer, "gdn_core", ws->gdn_out, n_rows, value);
  up_forward_mark(be, UP_PHASE_OTHER);
  ops->gated_rmsnorm(be, ws->gdn_normed, ws->gdn_out, up_forward_act_at(be, ws->gdn_qkvz, conv), qkvz,
                     up_model_weight(model, UP_TENSOR_GDN_NORM, layer), n_rows, heads, d, cfg->norm_eps);
  up_block_trace(be, ws->steps_run, layer, "gdn_normed", ws->gdn_normed, n_rows, value);
  up_forward_mark(be, UP_PHASE_GEMM);
  ops->matmul(be, ws->delta, ws->gdn_normed, up_model_weight(model, UP_TENSOR_GDN_OUT, layer), n_rows, h, value);
  up_forward_mark(be, UP_PHASE_OTHER);
  /* Row-parallel output projection: each rank holds its value heads' share of the sum. */
  up_forward_all_reduce_rows(step, ws->delta, n_rows, layer, "DeltaNet output all-reduce");
}
