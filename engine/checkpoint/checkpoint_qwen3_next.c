/* checkpoint_qwen3_next.c — what a qwen3next GGUF holds that the architecture's table
 * (engine/model/arch/qwen3_next.c) does not say: its hyper-parameter keys, the legacy
 * layout (llama.cpp's first converter stored each DeltaNet layer's in_proj_qkvz whole,
 * as blk.N.ssm_in in Hugging Face's per-key-head order, where newer converters split it
 * into attn_qkv and attn_gate), and ssm_a, which the converter stores as A = -exp(A_log)
 * while the engine keeps A_log (../shared/HYBRIDS.md C.10). Norm weights need nothing
 * here: the converter added 1 to every norm but the DeltaNet output norm, which is the
 * engine's convention already. Owns these conversions only; reading bytes is
 * checkpoint_gguf.c's. */
#include "engine/checkpoint/checkpoint_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/checkpoint/gguf.h"

static bool is_qwen3next(const up_model_config *cfg) { return strcmp(cfg->architecture, "qwen3next") == 0; }

bool up_checkpoint_gguf_qwen3_next_config(const up_gguf *g, up_model_config *cfg, char *err, size_t err_size) {
  enum { MAX_COUNT = 1 << 20 };
  int32_t key_dim = 0, inner = 0;
  cfg->full_attention_interval = 4; /* llama.cpp's default when the key is absent */
  if (!up_checkpoint_gguf_count(g, "qwen3next.expert_count", true, MAX_COUNT, &cfg->n_experts, err, err_size) ||
      !up_checkpoint_gguf_count(g, "qwen3next.expert_used_count", true, MAX_COUNT, &cfg->n_experts_per_token, err,
                                err_size) ||
      !up_checkpoint_gguf_count(g, "qwen3next.expert_feed_forward_length", true, MAX_COUNT, &cfg->moe_intermediate,
                                err, err_size) ||
      !up_checkpoint_gguf_count(g, "qwen3next.expert_shared_feed_forward_length", true, MAX_COUNT,
                                &cfg->shared_expert_intermediate, err, err_size) ||
      !up_checkpoint_gguf_count(g, "qwen3next.ssm.conv_kernel", true, MAX_COUNT, &cfg->linear_conv_width, err,
                                err_size) ||
      !up_checkpoint_gguf_count(g, "qwen3next.ssm.state_size", true, MAX_COUNT, &key_dim, err, err_size) ||
      !up_checkpoint_gguf_count(g, "qwen3next.ssm.group_count", true, MAX_COUNT, &cfg->linear_key_heads, err,
                                err_size) ||
      !up_checkpoint_gguf_count(g, "qwen3next.ssm.time_step_rank", true, MAX_COUNT, &cfg->linear_value_heads, err,
                                err_size) ||
      !up_checkpoint_gguf_count(g, "qwen3next.ssm.inner_size", true, INT32_MAX, &inner, err, err_size) ||
      !up_checkpoint_gguf_count(g, "qwen3next.full_attention_interval", false, UP_MAX_LAYERS,
                                &cfg->full_attention_interval, err, err_size) ||
      !up_checkpoint_gguf_positive(g, "qwen3next.rope.freq_base", &cfg->rope_theta, err, err_size))
    return false;
  /* ssm.inner_size is value heads x value head dim; the engine's heads have dk = dv. */
  if ((int64_t)cfg->linear_value_heads * key_dim != inner)
    return up_error(err, err_size, "%s: qwen3next.ssm.inner_size %d is not ssm.time_step_rank %d x ssm.state_size %d "
                    "(value heads of the key heads' size, as the engine's DeltaNet has them)", up_gguf_name(g),
                    (int)inner, (int)cfg->linear_value_heads, (int)key_dim);
  up_gguf_str scaling;
  if (up_gguf_get_str(g, "qwen3next.rope.scaling.type", &scaling) &&
      !(scaling.len == 4 && memcmp(scaling.data, "none", 4) == 0))
    return up_error(err, err_size, "%s: qwen3next rope scaling '%.*s' is not supported (none)", up_gguf_name(g),
                    (int)(scaling.len > 32 ? 32 : scaling.len), scaling.data);
  cfg->linear_head_dim = key_dim;
  /* llama.cpp's qwen3next graph: softmax router, top-k renormalised, gated output. */
  cfg->moe_renormalize = true;
  cfg->attn_output_gate = true;
  up_model_config_qwen3_next_layers(cfg);
  return true;
}

/* The layer of a "blk.N.<stem>.weight" name whose stem is `stem`; -1 otherwise. */
static int32_t layer_of(const char *name, const char *stem) {
  int layer = -1, used = 0;
  char rest[64];
  if (sscanf(name, "blk.%d.%63[^.].weight%n", &layer, rest, &used) != 2 || name[used] != '\0') return -1;
  return strcmp(rest, stem) == 0 ? layer : -1;
}

bool up_checkpoint_gguf_qwen3_next_fallback(const up_model_config *cfg, const up_file_tensor *tensor, char *name,
                                            size_t name_size, up_row_order *order) {
  if (!is_qwen3next(cfg) || tensor->role != UP_TENSOR_GDN_QKVZ || tensor->layer < 0) return false;
  snprintf(name, name_size, "blk.%d.ssm_in.weight", (int)tensor->layer);
  *order = tensor->part == 0 ? UP_ROWS_GDN_QKV : UP_ROWS_GDN_Z;
  return true;
}

bool up_checkpoint_gguf_qwen3_next_values(const up_gguf *g, const up_model_config *cfg, const up_file_tensor *tensor,
                                          float *values, int64_t count, char *err, size_t err_size) {
  if (!is_qwen3next(cfg) || tensor->role != UP_TENSOR_GDN_A_LOG) return true;
  for (int64_t i = 0; i < count; ++i) {
    /* A = -exp(A_log) < 0: a value that is not is no converter's output. */
    if (!(values[i] < 0.0f) || !isfinite(values[i]))
      return up_error(err, err_size, "%s: tensor '%s' entry %lld is %g; a qwen3next file stores A = -exp(A_log), "
                      "which is negative", up_gguf_name(g), tensor->gguf_name, (long long)i, (double)values[i]);
    values[i] = logf(-values[i]);
  }
  return true;
}

bool up_checkpoint_gguf_qwen3_next_alias(const up_model_config *cfg, const char *name) {
  if (!is_qwen3next(cfg)) return false;
  const int32_t layer = layer_of(name, "ssm_in");
  return layer >= 0 && layer < cfg->n_layers && cfg->layer_kind[layer] == UP_LAYER_LINEAR_ATTENTION;
}
