/* layer_cost.c — geometry and cost from the architecture's tables (see layer_cost.h).
 * Parameters are summed over the weights the tensor table gives each layer; what a
 * block keeps per token or per sequence follows the layer's kind. */
#include "engine/model/layer_cost.h"

#include <string.h>

#include "core/fatal.h"

static bool layer_runs(const up_model_config *cfg, int32_t layer, up_block_kind block) {
  up_block_kind blocks[UP_MAX_LAYER_BLOCKS];
  const int32_t n = up_arch_layer_blocks(cfg, layer, blocks);
  for (int32_t i = 0; i < n; ++i)
    if (blocks[i] == block) return true;
  return false;
}

void up_layer_cost_of(const up_model_config *cfg, up_dtype dtype, int32_t layer, up_layer_cost *out) {
  memset(out, 0, sizeof *out);
  up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
  const int32_t n = up_arch_layer_tensors(cfg, layer, tensors);
  for (int32_t i = 0; i < n; ++i) {
    const int64_t params = tensors[i].rows * tensors[i].cols;
    if (tensors[i].spec->rows == UP_DIM_ONE) {
      out->vector_params += params;
      continue;
    }
    switch (tensors[i].spec->block) {
      case UP_BLOCK_ATTENTION:
      case UP_BLOCK_DELTANET: out->mixer_gemm_params += params; break;
      case UP_BLOCK_MLP:
      case UP_BLOCK_MOE:
        out->ffn_gemm_params += params;
        /* A token runs top-k of a stack of experts. */
        out->ffn_active_params += tensors[i].n_experts == 0
                                      ? params
                                      : params / tensors[i].n_experts * cfg->n_experts_per_token;
        break;
      case UP_BLOCK_MODEL: UP_FATAL("layer %d lists the model weight '%s'", (int)layer, tensors[i].spec->name);
    }
  }
  out->mixer_token_flops = up_layer_linear_attention_flops(cfg, layer);
  out->state_bytes = up_layer_recurrent_state_bytes(cfg, dtype, layer);
  if (layer_runs(cfg, layer, UP_BLOCK_ATTENTION)) {
    UP_ASSERT(cfg->layer_kind[layer] == UP_LAYER_FULL_ATTENTION || cfg->layer_kind[layer] == UP_LAYER_SLIDING_WINDOW,
              "layer %d: only full and sliding-window attention have a KV geometry so far", (int)layer);
    out->kv_entry_bytes = up_attention_kv_entry_bytes(cfg, dtype);
    out->window = up_layer_window(cfg, layer);
  }
}

enum { GDN_CHUNK_ROWS = 64 }; /* the chunk of the chunked delta rule (kernels/ops.h) */

double up_layer_linear_attention_flops(const up_model_config *cfg, int32_t layer) {
  if (!layer_runs(cfg, layer, UP_BLOCK_DELTANET)) return 0.0;
  const double d = cfg->linear_head_dim;
  const double conv = 2.0 * cfg->linear_conv_width * (double)up_dim_size(cfg, UP_DIM_GDN_CONV);
  return conv + (double)cfg->linear_value_heads * (6.0 * d * d + 5.0 * GDN_CHUNK_ROWS * d);
}

int64_t up_layer_recurrent_state_bytes(const up_model_config *cfg, up_dtype dtype, int32_t layer) {
  if (!layer_runs(cfg, layer, UP_BLOCK_DELTANET)) return 0;
  const int64_t conv = (int64_t)(cfg->linear_conv_width - 1) * up_dim_size(cfg, UP_DIM_GDN_CONV) *
                       (int64_t)up_dtype_size(dtype);
  const int64_t d = cfg->linear_head_dim;
  return conv + (int64_t)cfg->linear_value_heads * d * d * (int64_t)sizeof(float);
}

int64_t up_attention_kv_entry_bytes(const up_model_config *cfg, up_dtype dtype) {
  return 2 * (int64_t)cfg->n_kv_heads * cfg->head_dim * (int64_t)up_dtype_size(dtype);
}

int32_t up_layer_window(const up_model_config *cfg, int32_t layer) {
  return cfg->layer_kind[layer] == UP_LAYER_SLIDING_WINDOW ? cfg->sliding_window : 0;
}

/* Keys the queries at cache indices k_len - q_len .. k_len - 1 see when each sees at
 * most `window` (itself included): exact, as integers. */
static double windowed_keys(int64_t q_len, int64_t k_len, int64_t window) {
  const int64_t first = k_len - q_len;
  /* Queries at index i < window see i + 1 keys, the rest see window. */
  const int64_t growing_end = window < k_len ? window : k_len; /* exclusive */
  const int64_t n_growing = growing_end > first ? growing_end - first : 0;
  const double growing = (double)n_growing * (double)(first + 1) + 0.5 * (double)n_growing * (double)(n_growing - 1);
  return growing + (double)(q_len - n_growing) * (double)window;
}

double up_layer_attention_flops(const up_model_config *cfg, int32_t layer, int64_t q_len, int64_t k_len) {
  if (!layer_runs(cfg, layer, UP_BLOCK_ATTENTION)) return 0.0;
  UP_ASSERT((cfg->layer_kind[layer] == UP_LAYER_FULL_ATTENTION || cfg->layer_kind[layer] == UP_LAYER_SLIDING_WINDOW) &&
                q_len <= k_len,
            "layer %d: attention FLOPs of %lld queries over %lld keys", (int)layer, (long long)q_len,
            (long long)k_len);
  const double q = (double)q_len, k = (double)k_len;
  double scores = q * k - 0.5 * q * q;
  const int32_t window = up_layer_window(cfg, layer);
  /* A window only matters once some query could see more keys than it holds. The full
   * count leaves out half the diagonal (q/2 scores); the windowed one does the same. */
  if (window > 0 && window < k_len) scores = windowed_keys(q_len, k_len, window) - 0.5 * q;
  return 4.0 * scores * (double)up_dim_size(cfg, UP_DIM_Q);
}

int32_t up_layer_gemm_shapes(const up_model_config *cfg, int32_t layer, up_gemm_shape out[UP_MAX_LAYER_TENSORS]) {
  up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
  const int32_t n = up_arch_layer_tensors(cfg, layer, tensors);
  int32_t n_gemms = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (tensors[i].spec->rows == UP_DIM_ONE) continue;
    up_gemm_shape *g = &out[n_gemms++];
    g->name = tensors[i].spec->name;
    g->n = tensors[i].rows;
    g->k = tensors[i].cols;
  }
  return n_gemms;
}

/* Parameters of the model-wide weights, with or without the embedding and LM head. */
static int64_t model_wide_params(const up_model_config *cfg, bool with_vocab_matrices) {
  up_tensor_desc tensors[UP_MAX_LAYER_TENSORS];
  const int32_t n = up_arch_layer_tensors(cfg, -1, tensors);
  int64_t params = 0;
  for (int32_t i = 0; i < n; ++i) {
    const bool vocab_matrix = tensors[i].role == UP_TENSOR_EMBED || tensors[i].role == UP_TENSOR_LM_HEAD;
    /* A tied head is the embedding: stored once (model.c allocates it once). */
    if (tensors[i].role == UP_TENSOR_LM_HEAD && cfg->tie_word_embeddings) continue;
    if (with_vocab_matrices || !vocab_matrix) params += tensors[i].rows * tensors[i].cols;
  }
  return params;
}

static int64_t layers_params(const up_model_config *cfg) {
  int64_t params = 0;
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    up_layer_cost c;
    up_layer_cost_of(cfg, UP_DTYPE_F32, l, &c);
    params += c.mixer_gemm_params + c.ffn_gemm_params + c.vector_params;
  }
  return params;
}

int64_t up_model_body_params(const up_model_config *cfg) { return layers_params(cfg) + model_wide_params(cfg, false); }

int64_t up_model_total_params(const up_model_config *cfg) { return layers_params(cfg) + model_wide_params(cfg, true); }

int64_t up_model_kv_entry_bytes(const up_model_config *cfg, up_dtype dtype) {
  int64_t largest = 0;
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    up_layer_cost c;
    up_layer_cost_of(cfg, dtype, l, &c);
    if (c.kv_entry_bytes > largest) largest = c.kv_entry_bytes;
  }
  return largest;
}

int64_t up_model_dense_kv_bytes(const up_model_config *cfg, up_dtype dtype, int64_t prompt_len) {
  int64_t bytes = 0;
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    up_layer_cost c;
    up_layer_cost_of(cfg, dtype, l, &c);
    const int64_t kept = c.window > 0 && c.window < prompt_len ? c.window : prompt_len;
    bytes += kept * c.kv_entry_bytes + c.state_bytes;
  }
  return bytes;
}

double up_model_prefill_flops(const up_model_config *cfg, int64_t prompt_len) {
  const double L = (double)prompt_len;
  double mixing = 0.0, inactive = 0.0;
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    up_layer_cost c;
    up_layer_cost_of(cfg, UP_DTYPE_F32, l, &c);
    mixing += up_layer_attention_flops(cfg, l, prompt_len, prompt_len) + c.mixer_token_flops * L;
    inactive += (double)(c.ffn_gemm_params - c.ffn_active_params);
  }
  const double lm_head = 2.0 * (double)up_dim_size(cfg, UP_DIM_HIDDEN) * (double)up_dim_size(cfg, UP_DIM_VOCAB);
  return 2.0 * ((double)up_model_body_params(cfg) - inactive) * L + lm_head + mixing;
}
