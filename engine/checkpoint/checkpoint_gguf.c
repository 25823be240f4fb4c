/* checkpoint_gguf.c — the GGUF side of engine/checkpoint/checkpoint.h: llama, gemma3 and qwen3next
 * hyper-parameters from the file's metadata, tensors read by the names the architecture's table gives, and
 * one layout difference from the engine: llama.cpp's converter reorders the rows of
 * some tensors (Llama's query and key projections; the table says which) so that
 * rotary pairs are adjacent (x[2i], x[2i+1]), while the engine rotates halves
 * (x[i], x[i + head_dim/2]); rows are put back here. */
#include "engine/checkpoint/checkpoint_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/ggml_dequant.h"
#include "engine/checkpoint/gguf.h"
#include "core/fatal.h"

/* Bounds of the shape keys, as the Hugging Face reader has them (hf_config.c): every
 * product the engine forms from them stays in range, and the depth fits the engine's
 * per-layer tables (UP_MAX_LAYERS). */
#define GGUF_MAX_WIDTH (1 << 20)
#define GGUF_MAX_FFN (1 << 24)
#define GGUF_MAX_HEADS (1 << 12)
#define GGUF_MAX_VOCAB (1 << 24)

/* An integer key in [1, max]; out untouched when the key is absent and not required.
 * A key that is present must hold such a value: 0 must not quietly mean "default". */
static bool get_count(const up_gguf *g, const char *key, bool required, int64_t max, int32_t *out, char *err,
                      size_t err_size) {
  if (!up_gguf_has_key(g, key)) {
    if (!required) return true;
    snprintf(err, err_size, "%s: metadata '%s' is missing", up_gguf_name(g), key);
    return false;
  }
  uint32_t v = 0;
  if (!up_gguf_get_u32(g, key, &v) || v == 0 || v > (uint64_t)max) {
    if (up_gguf_get_u32(g, key, &v))
      snprintf(err, err_size, "%s: metadata '%s' is %u, outside 1..%lld", up_gguf_name(g), key, v, (long long)max);
    else
      snprintf(err, err_size, "%s: metadata '%s' is not an integer in 1..%lld", up_gguf_name(g), key,
               (long long)max);
    return false;
  }
  *out = (int32_t)v;
  return true;
}

/* A positive finite number key; out untouched when absent. */
static bool get_optional_positive(const up_gguf *g, const char *key, float *out, char *err, size_t err_size) {
  if (!up_gguf_has_key(g, key)) return true;
  float v = 0.0f;
  if (!up_gguf_get_f32(g, key, &v) || !isfinite(v) || !(v > 0.0f)) {
    snprintf(err, err_size, "%s: metadata '%s' must be a positive finite number", up_gguf_name(g), key);
    return false;
  }
  *out = v;
  return true;
}

/* The two key readers, for the architectures' own keys (checkpoint_qwen3_next.c). */
bool up_checkpoint_gguf_count(const up_gguf *g, const char *key, bool required, int64_t max, int32_t *out, char *err,
                              size_t err_size) {
  return get_count(g, key, required, max, out, err, err_size);
}

bool up_checkpoint_gguf_positive(const up_gguf *g, const char *key, float *out, char *err, size_t err_size) {
  return get_optional_positive(g, key, out, err, err_size);
}

/* llama.cpp stores Llama-3.1's rotary scaling as a per-frequency divisor tensor rather
 * than as parameters. The engine computes the divisors from the llama3 parameters, so
 * accept the tensor only when it equals what Llama-3.1's published parameters give. */
static bool check_rope_freqs(const up_gguf *g, up_model_config *cfg, char *err, size_t err_size) {
  const up_gguf_tensor *t = up_gguf_find_tensor(g, "rope_freqs.weight");
  if (!t) return true;
  const int32_t half = cfg->head_dim / 2;
  if (t->n_elements != half) {
    snprintf(err, err_size, "%s: tensor 'rope_freqs.weight' has %lld elements, expected head_dim/2 = %d",
             up_gguf_name(g), (long long)t->n_elements, (int)half);
    return false;
  }
  float *divisors = up_malloc_or_die(sizeof(float) * (size_t)half, "rope_freqs");
  float *plain = up_malloc_or_die(sizeof(float) * (size_t)half, "rope frequencies");
  float *scaled = up_malloc_or_die(sizeof(float) * (size_t)half, "rope frequencies");
  bool ok = up_gguf_tensor_to_f32(t, divisors, err, err_size);
  if (ok) {
    up_model_config probe = *cfg;
    probe.rope_scaling = UP_ROPE_SCALING_NONE;
    up_model_config_rope_inv_freq(&probe, plain);
    probe.rope_scaling = UP_ROPE_SCALING_LLAMA3;
    probe.rope_factor = 8.0f;
    probe.rope_low_freq_factor = 1.0f;
    probe.rope_high_freq_factor = 4.0f;
    probe.rope_original_context = 8192;
    up_model_config_rope_inv_freq(&probe, scaled);
    for (int32_t i = 0; ok && i < half; ++i) {
      const double expected = (double)plain[i] / (double)scaled[i];
      if (!(fabs((double)divisors[i] - expected) <= 1e-3 * expected)) {
        snprintf(err, err_size, "%s: tensor 'rope_freqs.weight' holds rotary divisors (entry %d = %g) other than "
                 "Llama-3.1's llama3 scaling (%g); other rope scalings are not supported yet",
                 up_gguf_name(g), (int)i, (double)divisors[i], expected);
        ok = false;
      }
    }
    if (ok) *cfg = probe;
  }
  free(divisors);
  free(plain);
  free(scaled);
  return ok;
}

/* "<arch>.<suffix>": the architecture's own metadata key. */
static const char *arch_key(char *buf, size_t size, const char *arch, const char *suffix) {
  snprintf(buf, size, "%s.%s", arch, suffix);
  return buf;
}

/* Gemma 3's keys beyond Llama's (../shared/HYBRIDS.md A.2, A.7): the window, and the
 * pattern and local RoPE base that older conversions leave out (llama.cpp then uses 6
 * and 10,000), linear RoPE scaling of the global layers; llama.cpp's attention scale
 * (1/sqrt(head_dim), but 1/sqrt(hidden / heads) for the 62-layer 27B). Norm weights
 * already hold the converter's + 1, so the architecture's table reads them as they are. */
static bool gemma3_config(const up_gguf *g, up_model_config *cfg, char *err, size_t err_size) {
  int32_t window = 0, period = 6;
  if (!get_count(g, "gemma3.attention.sliding_window", true, INT32_MAX, &window, err, err_size) ||
      !get_count(g, "gemma3.attention.sliding_window_pattern", false, UP_MAX_LAYERS, &period, err, err_size))
    return false;
  cfg->sliding_window = window;
  up_model_config_set_sliding_pattern(cfg, period);
  for (int32_t l = 0; l < cfg->n_layers; ++l) cfg->mlp_kind[l] = UP_MLP_GEGLU_TANH;
  cfg->rope_sliding_theta = 10000.0f;
  cfg->rope_theta = 1000000.0f;
  if (!get_optional_positive(g, "gemma3.rope.freq_base_swa", &cfg->rope_sliding_theta, err, err_size) ||
      !get_optional_positive(g, "gemma3.rope.freq_base", &cfg->rope_theta, err, err_size))
    return false;
  up_gguf_str scaling;
  if (up_gguf_get_str(g, "gemma3.rope.scaling.type", &scaling) &&
      !(scaling.len == 4 && memcmp(scaling.data, "none", 4) == 0)) {
    if (!(scaling.len == 6 && memcmp(scaling.data, "linear", 6) == 0)) {
      snprintf(err, err_size, "%s: gemma3 rope scaling '%.*s' is not supported (linear or none)", up_gguf_name(g),
               (int)(scaling.len > 32 ? 32 : scaling.len), scaling.data);
      return false;
    }
    cfg->rope_scaling = UP_ROPE_SCALING_LINEAR;
    if (!up_gguf_has_key(g, "gemma3.rope.scaling.factor")) {
      snprintf(err, err_size, "%s: linear rope scaling without 'gemma3.rope.scaling.factor'", up_gguf_name(g));
      return false;
    }
    if (!get_optional_positive(g, "gemma3.rope.scaling.factor", &cfg->rope_factor, err, err_size)) return false;
  }
  if (up_gguf_has_key(g, "gemma3.final_logit_softcapping") &&
      !get_optional_positive(g, "gemma3.final_logit_softcapping", &cfg->final_logit_softcap, err, err_size))
    return false;
  cfg->query_pre_attn_scalar =
      cfg->n_layers == 62 ? (float)cfg->hidden / (float)cfg->n_heads : (float)cfg->head_dim;
  cfg->scale_embeddings = true;
  up_model_config_gemma3_uniprefill_defaults(cfg);
  return true;
}

bool up_checkpoint_gguf_config(const up_gguf *g, up_model_config *cfg, char *err, size_t err_size) {
  memset(cfg, 0, sizeof *cfg);
  up_gguf_str arch_str;
  if (!up_gguf_get_str(g, "general.architecture", &arch_str)) {
    snprintf(err, err_size, "%s: metadata 'general.architecture' is missing", up_gguf_name(g));
    return false;
  }
  const bool llama = arch_str.len == 5 && memcmp(arch_str.data, "llama", 5) == 0;
  const bool gemma3 = arch_str.len == 6 && memcmp(arch_str.data, "gemma3", 6) == 0;
  const bool qwen3next = arch_str.len == 9 && memcmp(arch_str.data, "qwen3next", 9) == 0;
  if (!llama && !gemma3 && !qwen3next) {
    snprintf(err, err_size, "%s: architecture '%.*s' is not supported (llama, gemma3 and qwen3next are)",
             up_gguf_name(g), (int)(arch_str.len > 64 ? 64 : arch_str.len), arch_str.data);
    return false;
  }
  const char *arch = llama ? "llama" : gemma3 ? "gemma3" : "qwen3next";
  char k[96];
  snprintf(cfg->architecture, sizeof cfg->architecture, "%s", arch);
  if (!get_count(g, arch_key(k, sizeof k, arch, "block_count"), true, UP_MAX_LAYERS, &cfg->n_layers, err, err_size) ||
      !get_count(g, arch_key(k, sizeof k, arch, "embedding_length"), true, GGUF_MAX_WIDTH, &cfg->hidden, err,
                 err_size) ||
      !get_count(g, arch_key(k, sizeof k, arch, "feed_forward_length"), true, GGUF_MAX_FFN, &cfg->intermediate, err,
                 err_size) ||
      !get_count(g, arch_key(k, sizeof k, arch, "attention.head_count"), true, GGUF_MAX_HEADS, &cfg->n_heads, err,
                 err_size))
    return false;
  cfg->n_kv_heads = cfg->n_heads;
  cfg->head_dim = cfg->hidden / cfg->n_heads;
  int32_t rope_dims = 0, value_dim = 0;
  if (!get_count(g, arch_key(k, sizeof k, arch, "attention.head_count_kv"), false, GGUF_MAX_HEADS, &cfg->n_kv_heads,
                 err, err_size) ||
      !get_count(g, arch_key(k, sizeof k, arch, "attention.key_length"), false, GGUF_MAX_HEADS, &cfg->head_dim, err,
                 err_size) ||
      !get_count(g, arch_key(k, sizeof k, arch, "attention.value_length"), false, GGUF_MAX_HEADS, &value_dim, err,
                 err_size) ||
      !get_count(g, arch_key(k, sizeof k, arch, "rope.dimension_count"), false, GGUF_MAX_HEADS, &rope_dims, err,
                 err_size))
    return false;
  if (rope_dims == 0) rope_dims = cfg->head_dim;
  if (qwen3next) cfg->rotary_dim = rope_dims; /* partial rotary: checked against head_dim on validation */
  else if (rope_dims != cfg->head_dim) {
    snprintf(err, err_size, "%s: %s.rope.dimension_count %d differs from head_dim %d (partial rotary embeddings "
             "are not supported)", up_gguf_name(g), arch, (int)rope_dims, (int)cfg->head_dim);
    return false;
  }
  if (value_dim != 0 && value_dim != cfg->head_dim) {
    snprintf(err, err_size, "%s: %s.attention.value_length %d differs from key_length %d (the engine's heads have "
             "one size)", up_gguf_name(g), arch, (int)value_dim, (int)cfg->head_dim);
    return false;
  }
  cfg->max_context = 4096;
  cfg->norm_eps = 1e-5f;
  cfg->rope_theta = 10000.0f;
  if (!get_count(g, arch_key(k, sizeof k, arch, "context_length"), false, INT32_MAX, &cfg->max_context, err,
                 err_size) ||
      !get_optional_positive(g, arch_key(k, sizeof k, arch, "attention.layer_norm_rms_epsilon"), &cfg->norm_eps, err,
                             err_size))
    return false;
  if (llama) {
    up_gguf_str scaling;
    if (!get_optional_positive(g, "llama.rope.freq_base", &cfg->rope_theta, err, err_size)) return false;
    if (up_gguf_get_str(g, "llama.rope.scaling.type", &scaling) &&
        !(scaling.len == 4 && memcmp(scaling.data, "none", 4) == 0)) {
      snprintf(err, err_size, "%s: rope scaling '%.*s' is not supported yet", up_gguf_name(g),
               (int)(scaling.len > 32 ? 32 : scaling.len), scaling.data);
      return false;
    }
  }
  const up_gguf_tensor *embd = up_gguf_find_tensor(g, "token_embd.weight");
  if (!embd || embd->n_dims != 2) {
    snprintf(err, err_size, "%s: tensor 'token_embd.weight' is missing or not 2-D", up_gguf_name(g));
    return false;
  }
  if (embd->dims[1] > GGUF_MAX_VOCAB) {
    snprintf(err, err_size, "%s: tensor 'token_embd.weight' has %lld rows, more than the %d tokens a vocabulary may "
             "have", up_gguf_name(g), (long long)embd->dims[1], GGUF_MAX_VOCAB);
    return false;
  }
  cfg->vocab = (int32_t)embd->dims[1];
  if (!get_count(g, arch_key(k, sizeof k, arch, "vocab_size"), false, GGUF_MAX_VOCAB, &cfg->vocab, err, err_size))
    return false;
  cfg->tie_word_embeddings = up_gguf_find_tensor(g, "output.weight") == NULL;
  if (!check_rope_freqs(g, cfg, err, err_size)) return false;
  const char *slash = strrchr(up_gguf_name(g), '/');
  const char *base = slash ? slash + 1 : up_gguf_name(g);
  snprintf(cfg->name, sizeof cfg->name, "%.*s", (int)(strlen(base) > 5 && strcmp(base + strlen(base) - 5, ".gguf") == 0
                                                           ? strlen(base) - 5 : strlen(base)), base);
  cfg->n_drop_layers = up_model_config_drop_layers_by_depth(cfg->n_layers, cfg->drop_layers);
  cfg->default_top_p = 0.99f;
  if (qwen3next) return up_checkpoint_gguf_qwen3_next_config(g, cfg, err, err_size);
  return gemma3 ? gemma3_config(g, cfg, err, err_size) : true;
}

/* GGUF row 2i + j of a head holds rotate-half row j*half + i. */
static void unpermute_rotary_rows(const float *src, float *dst, int64_t rows, int64_t cols, int32_t head_dim) {
  const int32_t half = head_dim / 2;
  for (int64_t head_start = 0; head_start < rows; head_start += head_dim)
    for (int32_t i = 0; i < half; ++i)
      for (int32_t j = 0; j < 2; ++j)
        memcpy(dst + (head_start + (int64_t)j * half + i) * cols, src + (head_start + 2 * (int64_t)i + j) * cols,
               sizeof(float) * (size_t)cols);
}

/* The stored tensor (the table's, or one a qwen3next file holds it in instead) and
 * where the part's rows are in it; NULL with a message naming both when the file holds
 * neither. */
static const up_gguf_tensor *find_stored(const up_gguf *g, const up_model_config *cfg, const up_file_tensor *tensor,
                                         up_stored_source *source, char *err, size_t err_size) {
  *source = (up_stored_source){.order = tensor->gguf_order,
                             .stored_rows = up_checkpoint_stored_rows(cfg, tensor->gguf_order, tensor->rows)};
  snprintf(source->name, sizeof source->name, "%s", tensor->gguf_name);
  const up_gguf_tensor *t = up_gguf_find_tensor(g, source->name);
  if (t) return t;
  if (!up_checkpoint_gguf_qwen3_next_fallback(cfg, tensor, source)) {
    up_error(err, err_size, "%s: tensor '%s' is missing", up_gguf_name(g), tensor->gguf_name);
    return NULL;
  }
  t = up_gguf_find_tensor(g, source->name);
  if (!t)
    up_error(err, err_size, "%s: tensor '%s' is missing (and so is '%s', which may hold it instead)", up_gguf_name(g),
             tensor->gguf_name, source->name);
  return t;
}

bool up_checkpoint_gguf_read(const up_gguf *g, const up_model_config *cfg, const up_file_tensor *tensor, float *out,
                             char *err, size_t err_size) {
  up_stored_source src;
  const up_gguf_tensor *t = find_stored(g, cfg, tensor, &src, err, err_size);
  if (!t) return false;
  const int64_t rows = tensor->rows, cols = tensor->cols, experts = tensor->experts > 0 ? tensor->experts : 1;
  /* ggml order: dims[0] is the contiguous one, so a [rows][cols] matrix is {cols, rows}
   * and a stack of experts {cols, rows, experts}. */
  const int64_t want[3] = {cols, src.stored_rows, experts};
  const int32_t n_want = tensor->experts > 0 ? 3 : 2;
  if (!up_checkpoint_dims_match(t->dims, t->n_dims, want, n_want)) {
    char got[128], need[128];
    up_checkpoint_format_dims(t->dims, t->n_dims, got, sizeof got);
    up_checkpoint_format_dims(want, n_want, need, sizeof need);
    return up_error(err, err_size, "%s: tensor '%s' has ggml dims [%s], the config needs [%s]", up_gguf_name(g),
                    t->name, got, need);
  }
  const bool plain = src.order == UP_ROWS_AS_STORED && src.stored_rows == rows && tensor->gguf_rotary_head_dim <= 0;
  float *stored = plain ? out : up_malloc_or_die(sizeof(float) * (size_t)t->n_elements, "checkpoint tensor rows");
  bool ok = up_gguf_tensor_to_f32(t, stored, err, err_size);
  for (int64_t e = 0; ok && !plain && e < experts; ++e) {
    const float *from = stored + (e * src.stored_rows + src.first_row) * cols;
    float *to = out + e * rows * cols;
    if (tensor->gguf_rotary_head_dim > 0) unpermute_rotary_rows(from, to, rows, cols, tensor->gguf_rotary_head_dim);
    else up_checkpoint_take_rows(cfg, src.order, from, to, rows, cols);
  }
  if (!plain) free(stored);
  return ok && up_checkpoint_gguf_qwen3_next_values(g, cfg, tensor, out, experts * rows * cols, err, err_size);
}
