/* attention_block.c — the attention block every architecture with attention layers
 * shares: the batch described to the backend at this layer's cache lengths, fused QKV
 * GEMM, per-head q/k norms (where the layer has their weights), RoPE with the layer's
 * frequencies (on the first rotary_dim dims of each head where the config says), KV
 * store, attention over the layer's window (the method's hook when it has one), cache
 * append, the sigmoid output gate (where the layer has its projection: Qwen3-Next),
 * output GEMM, the all-reduce of its partial sums over the tensor-parallel group, and
 * its post-norm (where the layer has one). Under TP every head count is the rank's
 * (model_shard.h).
 * Its input norm and residual add are the layer loop's (model.c). */
#include "engine/model/blocks/attention_block.h"

#include <string.h>

#include "engine/model/block_trace.h"
#include "engine/model/layer_cost.h"

/* Describe layer `layer` of the batch to the backend: entry counts including this
 * step's rows, where each row's K/V go, and the block tables. The sequence offsets
 * change only at a drop: the loop uploads them then, not per layer. */
static void upload_layer_view(up_forward_step *step, int32_t layer) {
  up_forward_workspace *ws = step->ws;
  up_backend *be = ws->be;
  const int32_t maxb = ws->max_blocks_per_seq;
  for (int32_t s = 0; s < step->n_seqs; ++s) {
    const int32_t slot = step->seqs[s].slot;
    const int32_t cached = up_kv_cache_len(step->cache, slot, layer);
    const int32_t rows = up_forward_seq_rows(ws, s);
    ws->h_kv_lens[s] = cached + rows;
    for (int32_t t = 0; t < rows; ++t)
      ws->h_slot_mapping[ws->h_cu_seqlens[s] + t] = up_kv_cache_slot_of(step->cache, slot, layer, cached + t);
    memcpy(ws->h_block_tables + (size_t)s * maxb, up_kv_cache_block_table(step->cache, slot, layer),
           sizeof(int32_t) * (size_t)maxb);
  }
  be->ops->upload_i32(be, ws->kv_lens, ws->h_kv_lens, (size_t)step->n_seqs);
  be->ops->upload_i32(be, ws->slot_mapping, ws->h_slot_mapping, (size_t)step->n_rows);
  be->ops->upload_i32(be, ws->block_tables, ws->h_block_tables, (size_t)step->n_seqs * maxb);
  step->view = (up_attn_batch){.n_seqs = step->n_seqs, .n_tokens = step->n_rows, .cu_seqlens = ws->cu_seqlens,
                               .kv_lens = ws->kv_lens, .block_tables = ws->block_tables, .max_blocks_per_seq = maxb};
}

void up_attention_block(up_forward_step *step, int32_t layer) {
  const up_model *model = step->model;
  const up_model_config *cfg = &model->cfg;
  up_forward_workspace *ws = step->ws;
  up_backend *be = model->be;
  const up_backend_ops *ops = be->ops;
  const up_method *method = step->method;
  const int32_t n_rows = step->n_rows, h = cfg->hidden;
  /* This rank's heads (model_shard.h): all of them at TP = 1. */
  const up_model_shard *shard = &model->shard;
  const int32_t qkv_dim = up_model_shard_qkv_dim(shard, cfg), q_dim = shard->n_heads * cfg->head_dim;

  upload_layer_view(step, layer);
  up_forward_mark(be, UP_PHASE_GEMM);
  ops->matmul(be, ws->qkv, step->normed, up_model_weight(model, UP_TENSOR_ATTN_QKV, layer), n_rows, qkv_dim, h);
  const void *gate = up_model_weight(model, UP_TENSOR_ATTN_GATE, layer);
  if (gate) ops->matmul(be, ws->attn_gate, step->normed, gate, n_rows, q_dim, h);
  up_forward_mark(be, UP_PHASE_OTHER);
  const void *q_norm = up_model_weight(model, UP_TENSOR_ATTN_Q_NORM, layer);
  const void *k_norm = up_model_weight(model, UP_TENSOR_ATTN_K_NORM, layer);
  if (q_norm)
    ops->head_rmsnorm(be, ws->qkv, q_norm, n_rows, qkv_dim, 0, shard->n_heads, cfg->head_dim, cfg->norm_eps);
  if (k_norm)
    ops->head_rmsnorm(be, ws->qkv, k_norm, n_rows, qkv_dim, q_dim, shard->n_kv_heads, cfg->head_dim, cfg->norm_eps);
  if (cfg->rotary_dim > 0 && cfg->rotary_dim < cfg->head_dim)
    ops->rope_partial(be, ws->qkv, step->positions, up_model_rope_inv_freq(model, layer), n_rows, &step->shape,
                      cfg->rotary_dim);
  else
    ops->rope(be, ws->qkv, step->positions, up_model_rope_inv_freq(model, layer), n_rows, &step->shape);
  ops->kv_store(be, step->pool, ws->qkv, ws->slot_mapping, n_rows, &step->shape);
  up_block_trace(be, ws->steps_run, layer, "attn_qkv", ws->qkv, n_rows, qkv_dim);
  up_forward_mark(be, UP_PHASE_ATTENTION);
  const int32_t window = up_layer_window(cfg, layer);
  step->at = (up_method_layer){.layer = layer, .n_seqs = step->n_seqs, .is_prefill_host = ws->h_is_candidate,
                                .cu_seqlens_host = ws->h_cu_seqlens, .kv_lens_host = ws->h_kv_lens, .qkv = ws->qkv,
                                .pool = step->pool, .batch = &step->view, .shape = &step->shape,
                                .window = window, .positions = step->positions, .slots_host = ws->h_slots,
                                .tp = model->tp, .first_head = shard->first_head, .step = ws->steps_run,
                                .tp_check_every = model->tp_check_every};
  up_attn_work work = {.causal = up_method_causal_pairs(&step->at)};
  if (method->ops->attention) {
    method->ops->attention(method, be, &step->at, ws->attn, &work);
  } else {
    ops->attention(be, ws->attn, ws->qkv, step->pool, &step->view, &step->shape, window);
    /* dense causal attention computes every causal pair; a window, those it reaches */
    work.computed = work.tiles = up_method_window_pairs(&step->at, window);
  }
  if (step->layer_attn) step->layer_attn[layer] = work;
  for (int32_t s = 0; s < step->n_seqs; ++s)
    up_kv_cache_append(step->cache, step->seqs[s].slot, layer, up_forward_seq_rows(ws, s));
  up_forward_mark(be, UP_PHASE_OTHER);
  up_block_trace(be, ws->steps_run, layer, "attn_core", ws->attn, n_rows, q_dim);
  if (gate) ops->sigmoid_gate(be, ws->attn, ws->attn_gate, n_rows, q_dim);
  up_forward_mark(be, UP_PHASE_GEMM);
  ops->matmul(be, ws->delta, ws->attn, up_model_weight(model, UP_TENSOR_ATTN_OUT, layer), n_rows, h, q_dim);
  up_forward_mark(be, UP_PHASE_OTHER);
  /* Row-parallel output projection: each rank holds its heads' share of the sum. */
  up_forward_all_reduce_rows(step, ws->delta, n_rows, layer, "attention output all-reduce");
  const void *post_norm = up_model_weight(model, UP_TENSOR_ATTN_POST_NORM, layer);
  if (post_norm) ops->rmsnorm(be, ws->delta, ws->delta, post_norm, n_rows, h, cfg->norm_eps);
}
