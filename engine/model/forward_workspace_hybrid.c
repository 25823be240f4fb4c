/* forward_workspace_hybrid.c — the forward workspace's buffers for linear-attention
 * hybrids (Qwen3-Next): the gated attention's gate, the Gated DeltaNet activations and
 * gates, the recurrent state storage the layer memory's state slots index, and the MoE
 * routing, permuted expert rows and shared expert. Sized once from the config, like
 * the rest of the workspace (forward_workspace.c), at the rank's shard under tensor
 * parallelism (its gate heads, DeltaNet heads and states, expert columns); nothing here
 * for other models. */
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "core/parse_number.h"
#include "engine/model/forward_workspace.h"
#include "engine/model/layer_cost.h"

typedef struct hybrid_sizes {
  bool gate, linear, moe;
  int64_t gate_dim, qkvz, ba, conv, value, heads, experts, top_k, moe_inter, shared_inter, hidden;
} hybrid_sizes;

static hybrid_sizes sizes_of(const up_model_config *cfg, const up_model_shard *shard) {
  hybrid_sizes z = {.gate = cfg->attn_output_gate, .hidden = cfg->hidden};
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    z.linear = z.linear || cfg->layer_kind[l] == UP_LAYER_LINEAR_ATTENTION;
    z.moe = z.moe || cfg->mlp_kind[l] == UP_MLP_MOE;
  }
  z.gate_dim = z.gate ? (int64_t)shard->n_heads * cfg->head_dim : 0;
  if (z.linear) {
    z.conv = up_model_shard_dim(shard, cfg, UP_DIM_GDN_CONV);
    z.value = up_model_shard_dim(shard, cfg, UP_DIM_GDN_VALUE);
    z.qkvz = z.conv + z.value;
    z.heads = shard->n_linear_value_heads;
    z.ba = 2 * z.heads;
  }
  if (z.moe) {
    z.experts = cfg->n_experts;
    z.top_k = cfg->n_experts_per_token;
    z.moe_inter = shard->moe_intermediate;
    z.shared_inter = shard->shared_intermediate;
  }
  return z;
}

/* Memory estimates are the whole model's (a shard needs less). */
int64_t up_forward_workspace_hybrid_row_bytes(const up_model_config *cfg, up_dtype dtype) {
  const up_model_shard whole = up_model_shard_of(cfg, 0, 1);
  const hybrid_sizes z = sizes_of(cfg, &whole);
  const int64_t es = (int64_t)up_dtype_size(dtype);
  int64_t values = z.gate_dim, bytes = 0;
  if (z.linear) {
    values += z.qkvz + z.ba + z.conv + 2 * z.value;
    bytes += 2 * z.heads * (int64_t)sizeof(float);
  }
  return values * es + bytes;
}

int64_t up_forward_workspace_moe_row_bytes(const up_model_config *cfg, up_dtype dtype) {
  const up_model_shard whole = up_model_shard_of(cfg, 0, 1);
  const hybrid_sizes z = sizes_of(cfg, &whole);
  if (!z.moe) return 0;
  /* per row: router logits, the shared expert's buffers and gate logit; per (row, choice):
   * the gathered input, gate/up, activation and output */
  const int64_t values = z.experts + 3 * z.shared_inter + z.hidden + 1 + z.top_k * (2 * z.hidden + 3 * z.moe_inter);
  return values * (int64_t)up_dtype_size(dtype) + z.top_k * (int64_t)(sizeof(float) + 3 * sizeof(int32_t));
}

/* The chunk: UP_MOE_CHUNK_ROWS, or the environment's smaller value, read once per
 * process (the memory fit asks at every point). */
static int64_t moe_chunk_rows(void) {
  static int64_t chunk;
  if (!chunk) {
    chunk = UP_MOE_CHUNK_ROWS;
    const char *asked = getenv("UP_MOE_CHUNK_ROWS");
    int64_t n = 0;
    if (asked && !up_parse_int64(asked, 1, INT64_MAX, &n, NULL))
      UP_FATAL("UP_MOE_CHUNK_ROWS=%s: expected a positive row count (a value below %d lowers the chunk)", asked,
               UP_MOE_CHUNK_ROWS);
    if (asked && n < chunk) chunk = n;
  }
  return chunk;
}

int64_t up_forward_workspace_moe_rows(int64_t max_tokens) {
  const int64_t chunk = moe_chunk_rows();
  return max_tokens < chunk ? max_tokens : chunk;
}

int64_t up_forward_workspace_hybrid_seq_bytes(const up_model_config *cfg, up_dtype dtype) {
  int64_t bytes = 0;
  for (int32_t l = 0; l < cfg->n_layers; ++l) bytes += up_layer_recurrent_state_bytes(cfg, dtype, l);
  return bytes > 0 ? bytes + 2 * (int64_t)sizeof(int32_t) : 0;
}

void up_forward_workspace_create_hybrid(up_forward_workspace *ws, const up_model_config *cfg,
                                        const up_model_shard *shard) {
  const hybrid_sizes z = sizes_of(cfg, shard);
  const size_t es = up_dtype_size(ws->be->act_dtype), T = (size_t)ws->max_tokens, S = (size_t)ws->max_seqs;
  const size_t f4 = sizeof(float), i4 = sizeof(int32_t);
  for (int32_t l = 0; l < UP_MAX_LAYERS; ++l) ws->linear_index[l] = -1;
  if (z.gate) ws->attn_gate = up_forward_workspace_alloc(ws, T * (size_t)z.gate_dim * es, "attention gate");
  if (z.linear) {
    ws->gdn_qkvz = up_forward_workspace_alloc(ws, T * (size_t)z.qkvz * es, "DeltaNet q/k/v/z");
    ws->gdn_ba = up_forward_workspace_alloc(ws, T * (size_t)z.ba * es, "DeltaNet b/a");
    ws->gdn_conv = up_forward_workspace_alloc(ws, T * (size_t)z.conv * es, "DeltaNet conv output");
    ws->gdn_out = up_forward_workspace_alloc(ws, T * (size_t)z.value * es, "DeltaNet output");
    ws->gdn_normed = up_forward_workspace_alloc(ws, T * (size_t)z.value * es, "DeltaNet gated norm");
    ws->gdn_g = up_forward_workspace_alloc(ws, T * (size_t)z.heads * f4, "DeltaNet decays");
    ws->gdn_beta = up_forward_workspace_alloc(ws, T * (size_t)z.heads * f4, "DeltaNet betas");
    ws->state_slots = up_forward_workspace_alloc(ws, S * i4, "recurrent state slots");
    ws->has_state = up_forward_workspace_alloc(ws, S * i4, "recurrent state flags");
    ws->h_state_slots = up_malloc_or_die(S * i4, "recurrent state slots");
    ws->h_has_state = up_malloc_or_die(S * i4, "recurrent state flags");
    for (int32_t l = 0; l < cfg->n_layers; ++l)
      if (cfg->layer_kind[l] == UP_LAYER_LINEAR_ATTENTION) ws->linear_index[l] = ws->n_linear_layers++;
    const size_t layers = (size_t)ws->n_linear_layers, d = (size_t)cfg->linear_head_dim;
    ws->conv_states = up_forward_workspace_alloc(
        ws, layers * S * (size_t)(cfg->linear_conv_width - 1) * (size_t)z.conv * es, "DeltaNet conv states");
    ws->ssm_states =
        up_forward_workspace_alloc(ws, layers * S * (size_t)z.heads * d * d * f4, "DeltaNet recurrent states");
  }
  if (z.moe) {
    /* the block's chunk of rows, not the step's (model.h, UP_MOE_CHUNK_ROWS) */
    ws->moe_rows = up_forward_workspace_moe_rows(ws->max_tokens);
    const size_t M = (size_t)ws->moe_rows, pairs = M * (size_t)z.top_k, h = (size_t)z.hidden;
    ws->router_logits = up_forward_workspace_alloc(ws, M * (size_t)z.experts * es, "router logits");
    ws->route_weights = up_forward_workspace_alloc(ws, pairs * f4, "router weights");
    ws->route_experts = up_forward_workspace_alloc(ws, pairs * i4, "routed experts");
    ws->moe_source_rows = up_forward_workspace_alloc(ws, pairs * i4, "expert rows' tokens");
    ws->moe_slot_of = up_forward_workspace_alloc(ws, pairs * i4, "token choices' expert rows");
    ws->moe_x = up_forward_workspace_alloc(ws, pairs * h * es, "expert inputs");
    ws->moe_gate_up = up_forward_workspace_alloc(ws, pairs * 2 * (size_t)z.moe_inter * es, "expert gate/up");
    ws->moe_act = up_forward_workspace_alloc(ws, pairs * (size_t)z.moe_inter * es, "expert SwiGLU");
    ws->moe_out = up_forward_workspace_alloc(ws, pairs * h * es, "expert outputs");
    ws->h_expert_offsets = up_malloc_or_die(sizeof(int32_t) * (size_t)(z.experts + 1), "expert offsets");
    ws->shared_gate_up = up_forward_workspace_alloc(ws, M * 2 * (size_t)z.shared_inter * es, "shared gate/up");
    ws->shared_act = up_forward_workspace_alloc(ws, M * (size_t)z.shared_inter * es, "shared SwiGLU");
    ws->shared_out = up_forward_workspace_alloc(ws, M * h * es, "shared expert output");
    ws->shared_logit = up_forward_workspace_alloc(ws, M * es, "shared expert gate logits");
  }
}

void up_forward_workspace_destroy_hybrid(up_forward_workspace *ws) {
  up_backend *be = ws->be;
  void *dev[] = {ws->attn_gate, ws->gdn_qkvz, ws->gdn_ba, ws->gdn_conv, ws->gdn_out, ws->gdn_normed, ws->gdn_g,
                 ws->gdn_beta, ws->state_slots, ws->has_state, ws->conv_states, ws->ssm_states,
                 ws->router_logits, ws->route_weights, ws->route_experts, ws->moe_source_rows, ws->moe_slot_of,
                 ws->moe_x, ws->moe_gate_up, ws->moe_act, ws->moe_out, ws->shared_gate_up, ws->shared_act,
                 ws->shared_out, ws->shared_logit};
  for (size_t i = 0; i < sizeof dev / sizeof dev[0]; ++i)
    if (dev[i]) be->ops->free(be, dev[i]);
  free(ws->h_state_slots);
  free(ws->h_has_state);
  free(ws->h_expert_offsets);
}
