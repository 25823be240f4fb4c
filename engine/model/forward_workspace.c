/* forward_workspace.c — creating, sizing and freeing the forward pass's per-step
 * buffers (forward_workspace.h): everything a step touches is allocated here once,
 * for a token and sequence capacity, so no step allocates. */
#include "engine/model/forward_workspace.h"

#include <stdlib.h>

#include "core/fatal.h"

static void *ws_alloc(up_forward_workspace *ws, size_t bytes, const char *what) {
  ws->bytes += (int64_t)bytes;
  return ws->be->ops->alloc(ws->be, bytes, what);
}

void *up_forward_workspace_alloc(up_forward_workspace *ws, size_t bytes, const char *what) {
  return ws_alloc(ws, bytes, what);
}

up_forward_workspace *up_forward_workspace_create(const up_model *model, int64_t max_tokens, int32_t max_seqs,
                                                  int32_t max_blocks_per_seq) {
  UP_ASSERT(max_tokens >= 1 && max_seqs >= 1 && max_blocks_per_seq >= 1, "bad workspace size");
  const up_model_config *cfg = &model->cfg;
  up_forward_workspace *ws = up_calloc_or_die(1, sizeof *ws, "forward workspace");
  ws->be = model->be;
  ws->max_tokens = max_tokens;
  ws->max_seqs = max_seqs;
  ws->max_blocks_per_seq = max_blocks_per_seq;
  const size_t es = up_dtype_size(model->be->act_dtype), T = (size_t)max_tokens, S = (size_t)max_seqs;
  const size_t h = (size_t)cfg->hidden;
  ws->residual = ws_alloc(ws, T * h * es, "residual stream");
  ws->normed = ws_alloc(ws, T * h * es, "normed hidden state");
  ws->delta = ws_alloc(ws, T * h * es, "sub-block output");
  ws->spare_residual = ws_alloc(ws, T * h * es, "compacted residual");
  ws->spare_normed = ws_alloc(ws, T * h * es, "compacted hidden state");
  /* Head- and intermediate-sized buffers hold this rank's shard (model_shard.h). */
  const up_model_shard *shard = &model->shard;
  ws->qkv = ws_alloc(ws, T * (size_t)up_model_shard_qkv_dim(shard, cfg) * es, "QKV activations");
  ws->attn = ws_alloc(ws, T * (size_t)shard->n_heads * cfg->head_dim * es, "attention output");
  ws->gate_up = ws_alloc(ws, T * 2 * (size_t)shard->intermediate * es, "gate/up activations");
  ws->mlp_act = ws_alloc(ws, T * (size_t)shard->intermediate * es, "SwiGLU output");
  ws->last_residual = ws_alloc(ws, S * h * es, "last-row residual");
  ws->last_delta = ws_alloc(ws, S * h * es, "last-row sub-block output");
  ws->last_normed = ws_alloc(ws, S * h * es, "last-row final norm");
  ws->logits = ws_alloc(ws, S * (size_t)cfg->vocab * es, "logits");
  if (shard->tp_size > 1) {
    /* The rank's vocabulary slice of the logits, every rank's gathered (rank-major),
     * and the row order that puts them back sequence-major. */
    ws->logits_shard = ws_alloc(ws, S * (size_t)shard->vocab * es, "logits of this rank's vocabulary");
    ws->logits_gathered = ws_alloc(ws, S * (size_t)cfg->vocab * es, "gathered logits");
    ws->logit_rows = ws_alloc(ws, S * (size_t)shard->tp_size * sizeof(int32_t), "logit row order");
  }
  const size_t i4 = sizeof(int32_t);
  ws->tokens = ws_alloc(ws, T * i4, "token ids");
  ws->positions = ws_alloc(ws, T * i4, "positions");
  ws->spare_positions = ws_alloc(ws, T * i4, "compacted positions");
  ws->slot_mapping = ws_alloc(ws, T * i4, "KV slot mapping");
  ws->keep_rows = ws_alloc(ws, T * i4, "kept rows");
  ws->cu_seqlens = ws_alloc(ws, (S + 1) * i4, "sequence offsets");
  ws->kv_lens = ws_alloc(ws, S * i4, "KV lengths");
  ws->last_rows = ws_alloc(ws, S * i4, "last rows");
  ws->block_tables = ws_alloc(ws, S * (size_t)max_blocks_per_seq * i4, "block tables");
  ws->h_tokens = up_malloc_or_die(T * i4, "token ids");
  ws->h_positions = up_malloc_or_die(T * i4, "positions");
  ws->h_slot_mapping = up_malloc_or_die(T * i4, "KV slot mapping");
  ws->h_cu_seqlens = up_malloc_or_die((S + 1) * i4, "sequence offsets");
  ws->h_new_cu_seqlens = up_malloc_or_die((S + 1) * i4, "sequence offsets");
  ws->h_kv_lens = up_malloc_or_die(S * i4, "KV lengths");
  ws->h_last_rows = up_malloc_or_die(S * i4, "last rows");
  ws->h_block_tables = up_malloc_or_die(S * (size_t)max_blocks_per_seq * i4, "block tables");
  ws->h_is_candidate = up_malloc_or_die(S, "selection candidates");
  up_forward_workspace_create_hybrid(ws, cfg, shard);
  ws->h_slots = up_malloc_or_die(S * i4, "sequence KV slots");
  return ws;
}

void up_forward_workspace_destroy(up_forward_workspace *ws) {
  if (!ws) return;
  up_forward_workspace_destroy_hybrid(ws);
  up_backend *be = ws->be;
  void *dev[] = {ws->residual, ws->normed, ws->delta, ws->spare_residual, ws->spare_normed, ws->qkv, ws->attn,
                 ws->gate_up, ws->mlp_act, ws->last_residual, ws->last_delta, ws->last_normed, ws->logits,
                 ws->tokens, ws->positions, ws->spare_positions, ws->slot_mapping, ws->keep_rows, ws->cu_seqlens,
                 ws->kv_lens, ws->last_rows, ws->block_tables, ws->logits_shard, ws->logits_gathered, ws->logit_rows};
  for (size_t i = 0; i < sizeof dev / sizeof dev[0]; ++i)
    if (dev[i]) be->ops->free(be, dev[i]);
  void *host[] = {ws->h_tokens, ws->h_positions, ws->h_slot_mapping, ws->h_cu_seqlens, ws->h_new_cu_seqlens,
                  ws->h_kv_lens, ws->h_last_rows, ws->h_block_tables, ws->h_is_candidate, ws->h_slots};
  for (size_t i = 0; i < sizeof host / sizeof host[0]; ++i) free(host[i]);
  free(ws);
}

int64_t up_forward_workspace_bytes(const up_forward_workspace *ws) { return ws->bytes; }

