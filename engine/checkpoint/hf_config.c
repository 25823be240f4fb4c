/* hf_config.c — config.json to up_model_config (see hf_config.h): dispatch on
 * model_type, then the llama, gemma3_text or qwen3_next mapper reads each field with its Hugging
 * Face default where the library has one the task allows, checks it, and the result
 * goes through up_model_config_validate. */
#include "engine/checkpoint/hf_config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/checkpoint/checkpoint_internal.h"
#include "engine/checkpoint/json_input.h"

/* What a mapper gets: the parsed file and where to report. */
typedef struct config_reader {
  const cJSON *root;
  const char *source;
  char *err;
  size_t err_size;
} config_reader;

static bool reader_fail(const config_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool reader_fail(const config_reader *r, const char *fmt, ...) {
  if (!r->err || !r->err_size) return false;
  const int n = snprintf(r->err, r->err_size, "%s: ", r->source);
  if (n >= 0 && (size_t)n < r->err_size) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err + n, r->err_size - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return false;
}

/* An integer field in [min, max]; absent: *out = fallback when has_fallback, else an error. */
static bool read_int(const config_reader *r, const cJSON *obj, const char *key, int64_t min, int64_t max,
                     bool has_fallback, int64_t fallback, int64_t *out) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!item || (has_fallback && cJSON_IsNull(item))) {
    if (!has_fallback) return reader_fail(r, "missing field '%s'", key);
    *out = fallback;
    return true;
  }
  if (!up_json_integer(item, min, max, out))
    return reader_fail(r, "'%s' must be an integer in %lld..%lld", key, (long long)min, (long long)max);
  return true;
}

/* A positive finite number field; absent: fallback when has_fallback, else an error. */
static bool read_positive(const config_reader *r, const cJSON *obj, const char *key, bool has_fallback,
                          double fallback, float *out) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!item) {
    if (!has_fallback) return reader_fail(r, "missing field '%s'", key);
    *out = (float)fallback;
    return true;
  }
  if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble <= 0.0 ||
      !isfinite((float)item->valuedouble) || (float)item->valuedouble <= 0.0f)
    return reader_fail(r, "'%s' must be a positive number", key);
  *out = (float)item->valuedouble;
  return true;
}

static bool read_bool(const config_reader *r, const cJSON *obj, const char *key, bool fallback, bool *out) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
  if (!item || cJSON_IsNull(item)) {
    *out = fallback;
    return true;
  }
  if (!cJSON_IsBool(item)) return reader_fail(r, "'%s' must be true or false", key);
  *out = cJSON_IsTrue(item);
  return true;
}

/* An optional string field: NULL when absent, an error when present but not a string. */
static bool read_optional_string(const config_reader *r, const cJSON *obj, const char *key, const char **out) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
  *out = NULL;
  if (!item || cJSON_IsNull(item)) return true;
  if (!cJSON_IsString(item)) return reader_fail(r, "'%s' must be a string", key);
  *out = item->valuestring;
  return true;
}

/* RoPE scaling: transformers < 5 writes rope_theta at the top and "rope_scaling"
 * (null, or an object whose "rope_type", formerly "type", names the scheme);
 * transformers 5 writes both into one "rope_parameters" object. */
static bool read_rope(const config_reader *r, up_model_config *cfg) {
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(r->root, "rope_parameters");
  const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(r->root, "rope_scaling");
  const char *scaling_key = "rope_scaling";
  const cJSON *theta_holder = r->root;
  if (params && !cJSON_IsNull(params)) {
    if (!cJSON_IsObject(params)) return reader_fail(r, "'rope_parameters' must be an object");
    scaling = params;
    scaling_key = "rope_parameters";
    if (cJSON_GetObjectItemCaseSensitive(params, "rope_theta")) theta_holder = params;
  }
  if (!read_positive(r, theta_holder, "rope_theta", true, 10000.0, &cfg->rope_theta)) return false;
  cfg->rope_scaling = UP_ROPE_SCALING_NONE;
  if (!scaling || cJSON_IsNull(scaling)) return true;
  if (!cJSON_IsObject(scaling)) return reader_fail(r, "'%s' must be null or an object", scaling_key);
  const char *dup = up_json_duplicate_key(scaling);
  if (dup) return reader_fail(r, "'%s' has key '%s' twice", scaling_key, dup);

  const cJSON *type = cJSON_GetObjectItemCaseSensitive(scaling, "rope_type");
  if (!type) type = cJSON_GetObjectItemCaseSensitive(scaling, "type");
  if (!cJSON_IsString(type)) return reader_fail(r, "'%s' has no 'rope_type' string", scaling_key);
  if (strcmp(type->valuestring, "default") == 0) return true;
  if (strcmp(type->valuestring, "llama3") != 0)
    return reader_fail(r, "%s type '%.40s' is not supported (llama3, default or none)", scaling_key,
                       type->valuestring);

  int64_t original;
  if (!read_positive(r, scaling, "factor", false, 0.0, &cfg->rope_factor) ||
      !read_positive(r, scaling, "low_freq_factor", false, 0.0, &cfg->rope_low_freq_factor) ||
      !read_positive(r, scaling, "high_freq_factor", false, 0.0, &cfg->rope_high_freq_factor) ||
      !read_int(r, scaling, "original_max_position_embeddings", 1, INT32_MAX, false, 0, &original))
    return false;
  /* The blend between the two wavelengths divides by their factors' difference. */
  if (!(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor))
    return reader_fail(r, "llama3 rope scaling needs high_freq_factor > low_freq_factor (got %g and %g)",
                       (double)cfg->rope_high_freq_factor, (double)cfg->rope_low_freq_factor);
  cfg->rope_original_context = (int32_t)original;
  cfg->rope_scaling = UP_ROPE_SCALING_LLAMA3;
  return true;
}

/* Features of LlamaConfig the engine's layer does not have: refused, not ignored. */
static bool check_llama_features(const config_reader *r) {
  const cJSON *archs = cJSON_GetObjectItemCaseSensitive(r->root, "architectures");
  if (archs && !cJSON_IsNull(archs)) {
    if (!cJSON_IsArray(archs)) return reader_fail(r, "'architectures' must be an array of strings");
    bool causal_lm = false;
    const cJSON *a = NULL;
    cJSON_ArrayForEach(a, archs) {
      if (!cJSON_IsString(a)) return reader_fail(r, "'architectures' must be an array of strings");
      if (strcmp(a->valuestring, "LlamaForCausalLM") == 0) causal_lm = true;
    }
    if (!causal_lm) return reader_fail(r, "'architectures' does not list LlamaForCausalLM (only a causal LM runs)");
  }
  const char *act;
  if (!read_optional_string(r, r->root, "hidden_act", &act)) return false;
  if (act && strcmp(act, "silu") != 0)
    return reader_fail(r, "hidden_act '%.40s' is not supported (silu: SwiGLU MLP)", act);
  static const char *const biases[] = {"attention_bias", "mlp_bias"};
  for (int i = 0; i < 2; ++i) {
    bool bias = false;
    if (!read_bool(r, r->root, biases[i], false, &bias)) return false;
    if (bias) return reader_fail(r, "'%s' is true; the engine's layers have no bias terms", biases[i]);
  }
  const char *dtype; /* informational: weights are converted to the backend's dtype */
  return read_optional_string(r, r->root, "torch_dtype", &dtype) && read_optional_string(r, r->root, "dtype", &dtype);
}

static bool map_llama(const config_reader *r, up_model_config *cfg) {
  if (!check_llama_features(r)) return false;
  int64_t layers, hidden, heads, kv_heads, head_dim, intermediate, vocab, context;
  /* Bounds keep every product the engine forms (qkv_dim, parameter counts) in range. */
  if (!read_int(r, r->root, "num_hidden_layers", 1, UP_MAX_LAYERS, false, 0, &layers) ||
      !read_int(r, r->root, "hidden_size", 1, 1 << 20, false, 0, &hidden) ||
      !read_int(r, r->root, "num_attention_heads", 1, 1 << 12, false, 0, &heads) ||
      !read_int(r, r->root, "num_key_value_heads", 1, 1 << 12, true, heads, &kv_heads) ||
      !read_int(r, r->root, "intermediate_size", 1, 1 << 24, false, 0, &intermediate) ||
      !read_int(r, r->root, "vocab_size", 2, 1 << 24, false, 0, &vocab) ||
      !read_int(r, r->root, "max_position_embeddings", 1, INT32_MAX, false, 0, &context))
    return false;
  const cJSON *head_dim_item = cJSON_GetObjectItemCaseSensitive(r->root, "head_dim");
  if ((!head_dim_item || cJSON_IsNull(head_dim_item)) && hidden % heads != 0)
    return reader_fail(r, "no 'head_dim', and hidden_size %lld is not a multiple of num_attention_heads %lld",
                       (long long)hidden, (long long)heads);
  if (!read_int(r, r->root, "head_dim", 1, 1 << 12, true, hidden / heads, &head_dim) ||
      !read_positive(r, r->root, "rms_norm_eps", false, 0.0, &cfg->norm_eps) ||
      !read_bool(r, r->root, "tie_word_embeddings", false, &cfg->tie_word_embeddings) || !read_rope(r, cfg))
    return false;
  snprintf(cfg->architecture, sizeof cfg->architecture, "llama");
  cfg->n_layers = (int32_t)layers;
  cfg->hidden = (int32_t)hidden;
  cfg->n_heads = (int32_t)heads;
  cfg->n_kv_heads = (int32_t)kv_heads;
  cfg->head_dim = (int32_t)head_dim;
  cfg->intermediate = (int32_t)intermediate;
  cfg->vocab = (int32_t)vocab;
  cfg->max_context = (int32_t)context;
  return true; /* layer_kind / mlp_kind stay zero: full attention and SwiGLU everywhere */
}

/* --- Gemma 3 (text), ../shared/HYBRIDS.md B.1 ----------------------------------- */

/* A linear scaling object (or null / "default"): factor into cfg, full-attention layers only. */
static bool read_gemma3_scaling(const config_reader *r, const cJSON *scaling, const char *key, up_model_config *cfg) {
  cfg->rope_scaling = UP_ROPE_SCALING_NONE;
  if (!scaling || cJSON_IsNull(scaling)) return true;
  if (!cJSON_IsObject(scaling)) return reader_fail(r, "'%s' must be null or an object", key);
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(scaling, "rope_type");
  if (!type) type = cJSON_GetObjectItemCaseSensitive(scaling, "type");
  if (!cJSON_IsString(type)) return reader_fail(r, "'%s' has no 'rope_type' string", key);
  if (strcmp(type->valuestring, "default") == 0) return true;
  if (strcmp(type->valuestring, "linear") != 0)
    return reader_fail(r, "%s type '%.40s' is not supported for gemma3 (linear, default or none)", key,
                       type->valuestring);
  cfg->rope_scaling = UP_ROPE_SCALING_LINEAR;
  return read_positive(r, scaling, "factor", false, 0.0, &cfg->rope_factor);
}

/* transformers 5: "rope_parameters": {"full_attention": {...}, "sliding_attention": {...}};
 * before: rope_theta, rope_local_base_freq and rope_scaling (global layers only). */
static bool read_gemma3_rope(const config_reader *r, up_model_config *cfg) {
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(r->root, "rope_parameters");
  if (params && !cJSON_IsNull(params)) {
    if (!cJSON_IsObject(params)) return reader_fail(r, "'rope_parameters' must be an object");
    const cJSON *full = cJSON_GetObjectItemCaseSensitive(params, "full_attention");
    const cJSON *sliding = cJSON_GetObjectItemCaseSensitive(params, "sliding_attention");
    if (!cJSON_IsObject(full) || !cJSON_IsObject(sliding))
      return reader_fail(r, "'rope_parameters' needs 'full_attention' and 'sliding_attention' objects");
    const cJSON *sliding_type = cJSON_GetObjectItemCaseSensitive(sliding, "rope_type");
    if (sliding_type && !(cJSON_IsString(sliding_type) && strcmp(sliding_type->valuestring, "default") == 0))
      return reader_fail(r, "rope_parameters.sliding_attention must be unscaled (rope_type default)");
    return read_positive(r, full, "rope_theta", true, 1000000.0, &cfg->rope_theta) &&
           read_positive(r, sliding, "rope_theta", true, 10000.0, &cfg->rope_sliding_theta) &&
           read_gemma3_scaling(r, full, "rope_parameters.full_attention", cfg);
  }
  return read_positive(r, r->root, "rope_theta", true, 1000000.0, &cfg->rope_theta) &&
         read_positive(r, r->root, "rope_local_base_freq", true, 10000.0, &cfg->rope_sliding_theta) &&
         read_gemma3_scaling(r, cJSON_GetObjectItemCaseSensitive(r->root, "rope_scaling"), "rope_scaling", cfg);
}

/* layer_types when listed, else the period (sliding_window_pattern, default 6). */
static bool read_gemma3_layer_types(const config_reader *r, up_model_config *cfg) {
  const cJSON *types = cJSON_GetObjectItemCaseSensitive(r->root, "layer_types");
  if (!types || cJSON_IsNull(types)) {
    int64_t period;
    if (!read_int(r, r->root, "sliding_window_pattern", 1, UP_MAX_LAYERS, true, 6, &period)) return false;
    up_model_config_set_sliding_pattern(cfg, (int32_t)period);
    return true;
  }
  if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != cfg->n_layers)
    return reader_fail(r, "'layer_types' must list one type per layer (%d)", (int)cfg->n_layers);
  int32_t l = 0;
  const cJSON *t = NULL;
  cJSON_ArrayForEach(t, types) {
    if (cJSON_IsString(t) && strcmp(t->valuestring, "sliding_attention") == 0)
      cfg->layer_kind[l] = UP_LAYER_SLIDING_WINDOW;
    else if (cJSON_IsString(t) && strcmp(t->valuestring, "full_attention") == 0)
      cfg->layer_kind[l] = UP_LAYER_FULL_ATTENTION;
    else
      return reader_fail(r, "layer_types[%d] must be \"sliding_attention\" or \"full_attention\"", (int)l);
    ++l;
  }
  return true;
}

/* Gemma3TextConfig features the engine's layer does not have: refused, not ignored. */
static bool check_gemma3_features(const config_reader *r, up_model_config *cfg) {
  const char *act;
  if (!read_optional_string(r, r->root, "hidden_activation", &act)) return false;
  if (act && strcmp(act, "gelu_pytorch_tanh") != 0)
    return reader_fail(r, "hidden_activation '%.40s' is not supported (gelu_pytorch_tanh: GeGLU)", act);
  bool flag = false;
  if (!read_bool(r, r->root, "attention_bias", false, &flag)) return false;
  if (flag) return reader_fail(r, "'attention_bias' is true; the engine's layers have no bias terms");
  if (!read_bool(r, r->root, "use_bidirectional_attention", false, &flag)) return false;
  if (flag) return reader_fail(r, "'use_bidirectional_attention' is true (EmbeddingGemma); only causal LMs run");
  const cJSON *cap = cJSON_GetObjectItemCaseSensitive(r->root, "final_logit_softcapping");
  if (cap && !cJSON_IsNull(cap) && !read_positive(r, r->root, "final_logit_softcapping", false, 0.0,
                                                  &cfg->final_logit_softcap))
    return false;
  const char *dtype; /* informational: weights are converted to the backend's dtype */
  return read_optional_string(r, r->root, "torch_dtype", &dtype) && read_optional_string(r, r->root, "dtype", &dtype);
}

/* read_int into an int32 field (max <= INT32_MAX). */
static bool read_int32(const config_reader *r, const char *key, int64_t min, int64_t max, bool has_fallback,
                       int64_t fallback, int32_t *out) {
  int64_t v;
  if (!read_int(r, r->root, key, min, max, has_fallback, fallback, &v)) return false;
  *out = (int32_t)v;
  return true;
}

static bool map_gemma3_text(const config_reader *r, up_model_config *cfg) {
  if (!read_int32(r, "num_hidden_layers", 1, UP_MAX_LAYERS, false, 0, &cfg->n_layers) ||
      !read_int32(r, "hidden_size", 1, 1 << 20, false, 0, &cfg->hidden) ||
      !read_int32(r, "num_attention_heads", 1, 1 << 12, false, 0, &cfg->n_heads) ||
      !read_int32(r, "num_key_value_heads", 1, 1 << 12, false, 0, &cfg->n_kv_heads) ||
      !read_int32(r, "head_dim", 1, 1 << 12, true, 256, &cfg->head_dim) ||
      !read_int32(r, "intermediate_size", 1, 1 << 24, false, 0, &cfg->intermediate) ||
      !read_int32(r, "vocab_size", 2, 1 << 24, false, 0, &cfg->vocab) ||
      !read_int32(r, "max_position_embeddings", 1, INT32_MAX, true, 131072, &cfg->max_context) ||
      !read_int32(r, "sliding_window", 1, INT32_MAX, true, 4096, &cfg->sliding_window) ||
      !read_positive(r, r->root, "rms_norm_eps", true, 1e-6, &cfg->norm_eps) ||
      !read_positive(r, r->root, "query_pre_attn_scalar", true, 256.0, &cfg->query_pre_attn_scalar) ||
      !read_bool(r, r->root, "tie_word_embeddings", true, &cfg->tie_word_embeddings) ||
      !check_gemma3_features(r, cfg) || !read_gemma3_rope(r, cfg))
    return false;
  snprintf(cfg->architecture, sizeof cfg->architecture, "gemma3");
  cfg->scale_embeddings = true;
  for (int32_t l = 0; l < cfg->n_layers; ++l) cfg->mlp_kind[l] = UP_MLP_GEGLU_TANH;
  if (!read_gemma3_layer_types(r, cfg)) return false;
  up_model_config_gemma3_uniprefill_defaults(cfg);
  return true;
}

/* The multimodal Gemma3ForConditionalGeneration (4B, 12B, 27B): its language model's
 * tensors are named under language_model and a vision tower sits beside them. */
static bool map_gemma3_multimodal(const config_reader *r, up_model_config *cfg) {
  (void)cfg;
  return reader_fail(r, "model_type gemma3 is the multimodal Gemma 3 (a vision tower, and the language model's "
                        "tensors under language_model.*): only text-only gemma3_text checkpoints load (270M, 1B); "
                        "use the gemma-3-4b/12b/27b presets for those shapes");
}

/* --- Qwen3-Next, ../shared/HYBRIDS.md C.1 ------------------------------------------ */

/* A RoPE number from rope_parameters or, where that lacks it, the top level (transformers
 * 5 files may keep partial_rotary_factor there); two different values are refused. */
static bool read_rope_number(const config_reader *r, const cJSON *params, const char *key, double fallback,
                             float *out) {
  if (!params || !cJSON_GetObjectItemCaseSensitive(params, key))
    return read_positive(r, r->root, key, true, fallback, out);
  float outer = 0.0f;
  const bool top = cJSON_GetObjectItemCaseSensitive(r->root, key) != NULL;
  if (!read_positive(r, params, key, false, 0, out) || (top && !read_positive(r, r->root, key, false, 0, &outer)))
    return false;
  if (top && outer != *out)
    return reader_fail(r, "'%s' is %g at the top level and %g in 'rope_parameters'", key, (double)outer, (double)*out);
  return true;
}

/* transformers 5: "rope_parameters" {rope_theta, partial_rotary_factor, rope_type}; the
 * released config.json (transformers 4): rope_theta, partial_rotary_factor and
 * rope_scaling at the top. Only unscaled RoPE (the released models have none). */
static bool read_qwen3_next_rope(const config_reader *r, up_model_config *cfg) {
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(r->root, "rope_parameters");
  const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(r->root, "rope_scaling");
  if (params && cJSON_IsNull(params)) params = NULL;
  if (params) {
    if (!cJSON_IsObject(params)) return reader_fail(r, "'rope_parameters' must be an object");
    scaling = params;
  }
  if (scaling && !cJSON_IsNull(scaling)) {
    if (!cJSON_IsObject(scaling)) return reader_fail(r, "'rope_scaling' must be null or an object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(scaling, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(scaling, "type");
    if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "default") == 0))
      return reader_fail(r, "qwen3_next rope scaling '%.40s' is not supported (only the default, unscaled RoPE)",
                         cJSON_IsString(type) ? type->valuestring : "(not a string)");
  }
  float partial = 0.25f; /* Qwen3NextConfig's default */
  if (!read_rope_number(r, params, "rope_theta", 10000.0, &cfg->rope_theta) ||
      !read_rope_number(r, params, "partial_rotary_factor", 0.25, &partial))
    return false;
  /* transformers rotates int(head_dim * factor) dims. */
  const double rotated = (double)cfg->head_dim * (double)partial;
  if (partial > 1.0f || (int32_t)rotated < 2 || (int32_t)rotated % 2 != 0)
    return reader_fail(r, "partial_rotary_factor %g of head_dim %d does not rotate an even number of dims",
                       (double)partial, (int)cfg->head_dim);
  cfg->rotary_dim = (int32_t)rotated;
  return true;
}

/* layer_types when listed (it must be the period pattern the engine runs), else the
 * period full_attention_interval (default 4). */
static bool read_qwen3_next_layer_types(const config_reader *r, up_model_config *cfg) {
  int64_t period;
  if (!read_int(r, r->root, "full_attention_interval", 1, UP_MAX_LAYERS, true, 4, &period)) return false;
  const cJSON *types = cJSON_GetObjectItemCaseSensitive(r->root, "layer_types");
  if (types && !cJSON_IsNull(types)) {
    if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != cfg->n_layers)
      return reader_fail(r, "'layer_types' must list one type per layer (%d)", (int)cfg->n_layers);
    int32_t l = 0, breaking = -1;
    const cJSON *t = NULL;
    bool full[UP_MAX_LAYERS];
    cJSON_ArrayForEach(t, types) {
      const bool is_full = cJSON_IsString(t) && strcmp(t->valuestring, "full_attention") == 0;
      if (!is_full && !(cJSON_IsString(t) && strcmp(t->valuestring, "linear_attention") == 0))
        return reader_fail(r, "layer_types[%d] must be \"linear_attention\" or \"full_attention\"", (int)l);
      full[l++] = is_full;
    }
    period = up_checkpoint_qwen3_next_period(full, cfg->n_layers, &breaking);
    if (period < 0)
      return reader_fail(r, "layer_types is not full attention every n-th layer and linear attention between "
                            "(layer %d breaks the pattern): the engine runs that pattern only", (int)breaking);
  }
  cfg->full_attention_interval = (int32_t)period;
  up_model_config_qwen3_next_layers(cfg);
  return true;
}

/* Qwen3NextConfig features the engine's layers do not have: refused, not ignored. */
static bool check_qwen3_next_features(const config_reader *r) {
  const char *act, *dtype;
  if (!read_optional_string(r, r->root, "hidden_act", &act)) return false;
  if (act && strcmp(act, "silu") != 0)
    return reader_fail(r, "hidden_act '%.40s' is not supported (silu: SwiGLU experts)", act);
  bool bias = false;
  if (!read_bool(r, r->root, "attention_bias", false, &bias)) return false;
  if (bias) return reader_fail(r, "'attention_bias' is true; the engine's layers have no bias terms");
  int64_t step;
  if (!read_int(r, r->root, "decoder_sparse_step", 1, UP_MAX_LAYERS, true, 1, &step)) return false;
  const cJSON *dense = cJSON_GetObjectItemCaseSensitive(r->root, "mlp_only_layers");
  if (step != 1)
    return reader_fail(r, "decoder_sparse_step %lld gives some layers a dense MLP; the engine runs qwen3_next with "
                          "MoE in every layer (decoder_sparse_step 1)", (long long)step);
  if (dense && !cJSON_IsNull(dense) && (!cJSON_IsArray(dense) || cJSON_GetArraySize(dense) != 0))
    return reader_fail(r, "mlp_only_layers is not empty: it gives some layers a dense MLP; the engine runs "
                          "qwen3_next with MoE in every layer");
  return read_optional_string(r, r->root, "torch_dtype", &dtype) && read_optional_string(r, r->root, "dtype", &dtype);
}

static bool map_qwen3_next(const config_reader *r, up_model_config *cfg) {
  int32_t value_head_dim = 0;
  if (!check_qwen3_next_features(r) ||
      !read_int32(r, "num_hidden_layers", 1, UP_MAX_LAYERS, false, 0, &cfg->n_layers) ||
      !read_int32(r, "hidden_size", 1, 1 << 20, false, 0, &cfg->hidden) ||
      !read_int32(r, "num_attention_heads", 1, 1 << 12, false, 0, &cfg->n_heads) ||
      !read_int32(r, "num_key_value_heads", 1, 1 << 12, false, 0, &cfg->n_kv_heads) ||
      !read_int32(r, "head_dim", 1, 1 << 12, true, 256, &cfg->head_dim) ||
      !read_int32(r, "intermediate_size", 1, 1 << 24, true, 5632, &cfg->intermediate) ||
      !read_int32(r, "vocab_size", 2, 1 << 24, false, 0, &cfg->vocab) ||
      !read_int32(r, "max_position_embeddings", 1, INT32_MAX, true, 32768, &cfg->max_context) ||
      !read_positive(r, r->root, "rms_norm_eps", true, 1e-6, &cfg->norm_eps) ||
      !read_bool(r, r->root, "tie_word_embeddings", false, &cfg->tie_word_embeddings) ||
      !read_int32(r, "linear_num_key_heads", 1, 1 << 12, true, 16, &cfg->linear_key_heads) ||
      !read_int32(r, "linear_num_value_heads", 1, 1 << 12, true, 32, &cfg->linear_value_heads) ||
      !read_int32(r, "linear_key_head_dim", 1, 1 << 12, true, 128, &cfg->linear_head_dim) ||
      !read_int32(r, "linear_value_head_dim", 1, 1 << 12, true, 128, &value_head_dim) ||
      !read_int32(r, "linear_conv_kernel_dim", 1, 1 << 12, true, 4, &cfg->linear_conv_width) ||
      !read_int32(r, "num_experts", 1, 1 << 20, true, 512, &cfg->n_experts) ||
      !read_int32(r, "num_experts_per_tok", 1, 1 << 20, true, 10, &cfg->n_experts_per_token) ||
      !read_int32(r, "moe_intermediate_size", 1, 1 << 24, true, 512, &cfg->moe_intermediate) ||
      !read_int32(r, "shared_expert_intermediate_size", 1, 1 << 24, true, 512, &cfg->shared_expert_intermediate) ||
      !read_bool(r, r->root, "norm_topk_prob", true, &cfg->moe_renormalize) || !read_qwen3_next_rope(r, cfg) ||
      !read_qwen3_next_layer_types(r, cfg))
    return false;
  if (value_head_dim != cfg->linear_head_dim)
    return reader_fail(r, "linear_value_head_dim %d differs from linear_key_head_dim %d (the engine's DeltaNet heads "
                       "have one size)", (int)value_head_dim, (int)cfg->linear_head_dim);
  if (cfg->linear_value_heads % cfg->linear_key_heads != 0)
    return reader_fail(r, "linear_num_value_heads %d is not a multiple of linear_num_key_heads %d",
                       (int)cfg->linear_value_heads, (int)cfg->linear_key_heads);
  if (cfg->n_experts_per_token > cfg->n_experts)
    return reader_fail(r, "num_experts_per_tok %d is more than num_experts %d", (int)cfg->n_experts_per_token,
                       (int)cfg->n_experts);
  snprintf(cfg->architecture, sizeof cfg->architecture, "qwen3next");
  cfg->attn_output_gate = true; /* Qwen3NextAttention always gates its output */
  return true;
}

typedef bool (*config_mapper)(const config_reader *r, up_model_config *cfg);

/* model_type -> mapper; NULL marks a type that is planned but not implemented. */
static const struct {
  const char *model_type;
  config_mapper map;
} k_mappers[] = {
    {"llama", map_llama},
    {"gemma3", map_gemma3_multimodal},
    {"gemma3_text", map_gemma3_text},
    {"qwen3_next", map_qwen3_next},
};

static bool config_from_json(const config_reader *r, const char *name, up_model_config *cfg) {
  if (!cJSON_IsObject(r->root)) return reader_fail(r, "not a JSON object");
  const char *dup = up_json_duplicate_key(r->root);
  if (dup) return reader_fail(r, "key '%s' appears twice", dup);
  const char *model_type;
  if (!read_optional_string(r, r->root, "model_type", &model_type)) return false;
  if (!model_type) return reader_fail(r, "missing field 'model_type'");

  config_mapper map = NULL;
  bool known = false;
  for (size_t i = 0; i < sizeof k_mappers / sizeof k_mappers[0]; ++i)
    if (strcmp(k_mappers[i].model_type, model_type) == 0) {
      known = true;
      map = k_mappers[i].map;
    }
  if (!known)
    return reader_fail(r, "model_type '%.40s' is not supported (llama, gemma3_text, qwen3_next)",
                       model_type);
  if (!map) return reader_fail(r, "architecture %s is not supported yet (planned)", model_type);

  memset(cfg, 0, sizeof *cfg);
  snprintf(cfg->name, sizeof cfg->name, "%s", name ? name : "");
  cfg->default_top_p = 0.99f;
  if (!map(r, cfg)) return false;
  if (strcmp(cfg->architecture, "llama") == 0)
    cfg->n_drop_layers = up_model_config_drop_layers_by_depth(cfg->n_layers, cfg->drop_layers);
  char why[256];
  if (!up_model_config_validate(cfg, why, sizeof why)) return reader_fail(r, "%s", why);
  return true;
}

bool up_hf_config_parse(const char *text, size_t len, const char *name, const char *source, up_model_config *cfg,
                        char *err, size_t err_size) {
  cJSON *root = up_json_parse_text(text, len, source, err, err_size);
  if (!root) return false;
  const config_reader r = {root, source, err, err_size};
  const bool ok = config_from_json(&r, name, cfg);
  cJSON_Delete(root);
  return ok;
}

bool up_hf_config_load(const char *path, const char *name, up_model_config *cfg, char *err, size_t err_size) {
  cJSON *root = up_json_parse_file(path, UP_HF_CONFIG_MAX_BYTES, err, err_size);
  if (!root) return false;
  const config_reader r = {root, path, err, err_size};
  const bool ok = config_from_json(&r, name, cfg);
  cJSON_Delete(root);
  return ok;
}
