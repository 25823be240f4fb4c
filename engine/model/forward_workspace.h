/* forward_workspace.h — the per-step buffers of the forward pass (up_forward_workspace,
 * created and sized by forward_workspace.c through model.h's API): activations, the
 * backend index arrays and their host mirrors. Visible to the layer loop (model.c)
 * and the shared blocks (engine/model/blocks/); nothing outside engine/model. */
#ifndef UP_FORWARD_WORKSPACE_H
#define UP_FORWARD_WORKSPACE_H

#include <stdint.h>

#include "engine/model/model.h"

struct up_forward_workspace {
  up_backend *be;
  int64_t max_tokens;
  int32_t max_seqs;
  int32_t max_blocks_per_seq;
  int64_t bytes;
  int64_t steps_run; /* forwards run on this workspace: the step a TP mask check names */
  /* activations */
  void *residual, *normed, *delta, *spare_residual, *spare_normed;
  void *qkv, *attn, *gate_up, *mlp_act;
  void *last_residual, *last_delta, *last_normed, *logits;
  void *logits_shard, *logits_gathered; /* TP > 1 only (else NULL) */
  int32_t *logit_rows;                  /* TP > 1 only */
  /* backend index arrays */
  int32_t *tokens, *positions, *spare_positions, *slot_mapping, *cu_seqlens, *kv_lens, *block_tables;
  int32_t *keep_rows, *last_rows;
  /* host mirrors */
  int32_t *h_tokens, *h_positions, *h_slot_mapping, *h_cu_seqlens, *h_new_cu_seqlens, *h_kv_lens;
  int32_t *h_block_tables, *h_last_rows;
  uint8_t *h_is_candidate;
};

/* Rows of sequence s in the current (possibly compacted) batch. */
static inline int32_t up_forward_seq_rows(const up_forward_workspace *ws, int32_t s) {
  return ws->h_cu_seqlens[s + 1] - ws->h_cu_seqlens[s];
}

#endif
