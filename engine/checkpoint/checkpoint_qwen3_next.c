/* checkpoint_qwen3_next.c — what a Qwen3-Next checkpoint may hold that the
 * architecture's table (engine/model/arch/qwen3_next.c) does not say. In a qwen3next
 * GGUF: its hyper-parameter keys; the other tensors llama.cpp reads a part from when the
 * table's is absent (the legacy layout, where the first converter stored each DeltaNet
 * layer's in_proj_qkvz whole as blk.N.ssm_in in Hugging Face's per-key-head order, which
 * newer converters split into attn_qkv and attn_gate; a full-attention layer's fused
 * attn_qkv for attn_q/attn_k/attn_v; the experts' fused ffn_gate_up_exps for
 * ffn_gate_exps/ffn_up_exps); and ssm_a, which the converter stores as A = -exp(A_log)
 * while the engine keeps A_log (../shared/HYBRIDS.md C.10). Norm weights need nothing
 * here: the converter added 1 to every norm but the DeltaNet output norm, which is the
 * engine's convention already. In a Hugging Face directory: the experts stacked as
 * transformers 5 keeps them in memory, in place of one tensor per expert. Owns these
 * conversions only; reading bytes is checkpoint_gguf.c's and checkpoint_hf.c's. */
#include "engine/checkpoint/checkpoint_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/checkpoint/gguf.h"
#include "engine/checkpoint/hf_checkpoint.h"

static bool is_qwen3next(const up_model_config *cfg) { return strcmp(cfg->architecture, "qwen3next") == 0; }

int32_t up_checkpoint_qwen3_next_period(const bool *full, int32_t n_layers, int32_t *breaking) {
  int32_t period = n_layers + 1;
  for (int32_t l = 0; l < n_layers && period > n_layers; ++l)
    if (full[l]) period = l + 1;
  for (int32_t l = 0; l < n_layers; ++l)
    if (full[l] != ((l + 1) % period == 0)) {
      *breaking = l;
      return -1;
    }
  return period;
}

/* llama.cpp takes the layer kinds from attention.recurrent_layers (one bool per layer,
 * or one for all; entries past block_count are multi-token-prediction layers) before
 * full_attention_interval: when present, it must be the interval pattern, and gives it. */
static bool read_recurrent_layers(const up_gguf *g, up_model_config *cfg, char *err, size_t err_size) {
  const char *key = "qwen3next.attention.recurrent_layers";
  if (!up_gguf_has_key(g, key)) return true;
  bool recurrent[UP_MAX_LAYERS + 8], full[UP_MAX_LAYERS], all;
  up_gguf_value_type type;
  uint64_t count = 0;
  if (up_gguf_get_bool(g, key, &all)) {
    for (int32_t l = 0; l < cfg->n_layers; ++l) recurrent[l] = all;
  } else if (!up_gguf_get_array_info(g, key, &type, &count) || count < (uint64_t)cfg->n_layers ||
             count > sizeof recurrent / sizeof recurrent[0] || !up_gguf_get_array_bool(g, key, recurrent, count)) {
    return up_error(err, err_size, "%s: %s must be a bool or an array of at least block_count (%d) bools",
                    up_gguf_name(g), key, (int)cfg->n_layers);
  }
  for (int32_t l = 0; l < cfg->n_layers; ++l) full[l] = !recurrent[l];
  int32_t breaking = -1;
  const int32_t period = up_checkpoint_qwen3_next_period(full, cfg->n_layers, &breaking);
  if (period < 0)
    return up_error(err, err_size, "%s: %s is not full attention every n-th layer and linear attention between "
                    "(layer %d breaks the pattern): the engine runs that pattern only", up_gguf_name(g), key,
                    (int)breaking);
  cfg->full_attention_interval = period;
  return true;
}

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
      !up_checkpoint_gguf_positive(g, "qwen3next.rope.freq_base", &cfg->rope_theta, err, err_size) ||
      !read_recurrent_layers(g, cfg, err, err_size))
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

static void set_source(up_stored_source *s, int32_t layer, const char *stem, up_row_order order, int64_t first_row,
                       int64_t stored_rows) {
  snprintf(s->name, sizeof s->name, "blk.%d.%s.weight", (int)layer, stem);
  s->order = order;
  s->first_row = first_row;
  s->stored_rows = stored_rows;
}

bool up_checkpoint_gguf_qwen3_next_fallback(const up_model_config *cfg, const up_file_tensor *tensor,
                                            up_stored_source *source) {
  if (!is_qwen3next(cfg) || tensor->layer < 0) return false;
  const int32_t layer = tensor->layer;
  const int64_t q = up_dim_size(cfg, UP_DIM_Q), kv = up_dim_size(cfg, UP_DIM_KV);
  const int64_t inter = up_dim_size(cfg, UP_DIM_MOE_INTER);
  switch (tensor->role) {
    case UP_TENSOR_GDN_QKVZ: /* llama.cpp's first converter: in_proj_qkvz whole, per key head */
      set_source(source, layer, "ssm_in", tensor->part == 0 ? UP_ROWS_GDN_QKV : UP_ROWS_GDN_Z, 0,
                 up_dim_size(cfg, UP_DIM_GDN_QKVZ));
      return true;
    case UP_TENSOR_ATTN_QKV: /* fused [q_proj ([query | gate] per head); k_proj; v_proj] */
      if (tensor->part == 0) set_source(source, layer, "attn_qkv", UP_ROWS_HEAD_PAIR_FIRST, 0, 2 * q + 2 * kv);
      else set_source(source, layer, "attn_qkv", UP_ROWS_AS_STORED, 2 * q + (tensor->part - 1) * kv, 2 * q + 2 * kv);
      return true;
    case UP_TENSOR_ATTN_GATE:
      set_source(source, layer, "attn_qkv", UP_ROWS_HEAD_PAIR_SECOND, 0, 2 * q + 2 * kv);
      return true;
    case UP_TENSOR_MOE_GATE_UP: /* fused: each expert's gate rows, then its up rows */
      set_source(source, layer, "ffn_gate_up_exps", UP_ROWS_AS_STORED, tensor->part * inter, 2 * inter);
      return true;
    default: return false;
  }
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

/* Whether the tensor `name` stands in for parts of layer `layer` that the file lacks:
 * source_of gives where a part may be stored instead, holds whether the file has the
 * part's own tensor. A file holding any of those parts in both forms is no converter's,
 * so there the stand-in stays unknown and the file is refused. */
typedef bool (*source_of_fn)(const up_model_config *cfg, const up_file_tensor *f, up_stored_source *source);
typedef bool (*holds_fn)(const void *file, const up_file_tensor *f);

static bool stands_in_for_a_missing_part(const up_model_config *cfg, int32_t layer, const char *name,
                                         source_of_fn source_of, holds_fn holds, const void *file) {
  if (!is_qwen3next(cfg) || layer < 0 || layer >= cfg->n_layers) return false;
  up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
  const int32_t n = up_arch_layer_tensors(cfg, layer, tensors);
  bool stands_in = false;
  for (int32_t i = 0; i < n; ++i)
    for (int32_t p = 0; p < tensors[i].spec->n_parts; ++p) {
      up_file_tensor f;
      up_stored_source source;
      if (!up_arch_file_tensor(cfg, tensors[i].role, layer, p, &f) || !source_of(cfg, &f, &source) ||
          strcmp(source.name, name) != 0)
        continue;
      if (holds(file, &f)) return false;
      stands_in = true;
    }
  return stands_in;
}

static bool gguf_holds(const void *file, const up_file_tensor *f) {
  return up_gguf_find_tensor(file, f->gguf_name) != NULL;
}

bool up_checkpoint_gguf_qwen3_next_alias(const up_gguf *g, const up_model_config *cfg, const char *name) {
  int layer = -1;
  return sscanf(name, "blk.%d.", &layer) == 1 &&
         stands_in_for_a_missing_part(cfg, layer, name, up_checkpoint_gguf_qwen3_next_fallback, gguf_holds, g);
}

/* --- Hugging Face ------------------------------------------------------------------ */

bool up_checkpoint_hf_qwen3_next_fused_experts(const up_model_config *cfg, const up_file_tensor *tensor,
                                               up_stored_source *source) {
  if (!is_qwen3next(cfg) || tensor->experts <= 0) return false;
  const char *star = strchr(tensor->hf_name, '*'); /* "model.layers.N.mlp.experts.*.gate_proj.weight" */
  const int64_t inter = up_dim_size(cfg, UP_DIM_MOE_INTER);
  if (!star || (tensor->role != UP_TENSOR_MOE_GATE_UP && tensor->role != UP_TENSOR_MOE_DOWN)) return false;
  const bool gate_up = tensor->role == UP_TENSOR_MOE_GATE_UP;
  snprintf(source->name, sizeof source->name, "%.*s%s", (int)(star - tensor->hf_name), tensor->hf_name,
           gate_up ? "gate_up_proj" : "down_proj");
  source->order = UP_ROWS_AS_STORED;
  source->first_row = gate_up ? tensor->part * inter : 0;
  source->stored_rows = gate_up ? 2 * inter : tensor->rows;
  return true;
}

static bool hf_holds(const void *file, const up_file_tensor *f) {
  char first[sizeof f->hf_name + 16];
  return up_checkpoint_expert_name(f->hf_name, 0, first, sizeof first) && up_hf_checkpoint_find(file, first);
}

bool up_checkpoint_hf_qwen3_next_alias(const up_hf_checkpoint *hf, const up_model_config *cfg, const char *name) {
  int layer = -1;
  return sscanf(name, "model.layers.%d.mlp.experts.", &layer) == 1 &&
         stands_in_for_a_missing_part(cfg, layer, name, up_checkpoint_hf_qwen3_next_fused_experts, hf_holds, hf);
}
