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
  /* Linear-attention hybrids (forward_workspace_hybrid.c); NULL for models without them. */
  void *attn_gate;                 /* [T][n_heads * head_dim]: the gated attention's gate */
  void *gdn_qkvz, *gdn_ba, *gdn_conv, *gdn_out, *gdn_normed;
  float *gdn_g, *gdn_beta;         /* [T][linear value heads], fp32 */
  int32_t *state_slots, *has_state; /* [S] each sequence's recurrent state slot, and whether it continues */
  int32_t *h_state_slots, *h_has_state;
  /* Recurrent state storage for the layer memory's state slots 0 .. max_seqs - 1 (its
   * state pool has max_seqs slots wherever a workspace serves it): per linear-attention
   * layer (linear_index), conv states [slots][width - 1][channels] in the activation
   * dtype and delta-rule states [slots][value heads][d][d] in fp32. */
  void *conv_states;
  float *ssm_states;
  int32_t linear_index[UP_MAX_LAYERS]; /* -1 at layers without a recurrent state */
  int32_t n_linear_layers;
  void *router_logits, *moe_x, *moe_gate_up, *moe_act, *moe_out;
  float *route_weights;
  int32_t *route_experts, *moe_source_rows, *moe_slot_of;
  int32_t *h_expert_offsets;       /* [n_experts + 1] */
  int64_t moe_rows;                /* rows the MoE buffers hold: the block's chunk (model.h) */
  void *shared_gate_up, *shared_act, *shared_out, *shared_logit;
  int32_t *h_slots; /* [max_seqs] each sequence's KV slot (the method hooks see it) */
};

/* Backend memory of the workspace, counted in its bytes. */
void *up_forward_workspace_alloc(up_forward_workspace *ws, size_t bytes, const char *what);
/* Allocate (free) the hybrid buffers above that the model's layers need, at the rank's shard. */
void up_forward_workspace_create_hybrid(up_forward_workspace *ws, const up_model_config *cfg,
                                        const up_model_shard *shard);
void up_forward_workspace_destroy_hybrid(up_forward_workspace *ws);


/* Rows of sequence s in the current (possibly compacted) batch. */
static inline int32_t up_forward_seq_rows(const up_forward_workspace *ws, int32_t s) {
  return ws->h_cu_seqlens[s + 1] - ws->h_cu_seqlens[s];
}

#endif
