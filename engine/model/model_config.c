/* model_config.c — the preset registry and config arithmetic (RoPE frequencies with
 * llama3 or linear scaling, per layer type; validation; parameter counts are
 * layer_cost.c's). Shapes follow each model's published config.json; drop layers
 * follow the UniPrefill reference code where it gives them. */
#include "engine/model/model_config.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/model/arch.h"

/* A preset whose drop layers come from up_model_config_drop_layers_by_depth, filled in
 * on first access to the registry. */
#define DROP_LAYERS_BY_DEPTH .n_drop_layers = -1

/* Llama-3.1 RoPE: theta 500000 with llama3 scaling (factor 8, low 1, high 4, original 8192). */
#define LLAMA31_ROPE                                                                        \
  .rope_theta = 500000.0f, .rope_scaling = UP_ROPE_SCALING_LLAMA3, .rope_factor = 8.0f,     \
  .rope_low_freq_factor = 1.0f, .rope_high_freq_factor = 4.0f, .rope_original_context = 8192

/* Gemma 3 (../shared/HYBRIDS.md B.2): the period-6 pattern, the GeGLU MLPs and the
 * UniPrefill defaults (up_model_config_gemma3_uniprefill_defaults) are filled in on first
 * access (presets_fill); RoPE base 1e6 on the global layers and 1e4 on the sliding ones,
 * softmax scale from query_pre_attn_scalar, embeddings x sqrt(hidden), tied head. */
#define GEMMA3_COMMON                                                                             \
  .architecture = "gemma3", .norm_eps = 1e-6f, .rope_theta = 1000000.0f, .rope_sliding_theta = 10000.0f, \
  .scale_embeddings = true, .tie_word_embeddings = true
#define GEMMA3_LINEAR_X8 .rope_scaling = UP_ROPE_SCALING_LINEAR, .rope_factor = 8.0f

/* Qwen3-Next (../shared/HYBRIDS.md C.1): full attention every 4th layer with an output
 * gate, partial RoPE and q/k norms; Gated DeltaNet elsewhere; MoE in every layer. The
 * layer kinds and UniPrefill defaults are filled in on first access (presets_fill). */
#define QWEN3_NEXT_COMMON                                                                                  \
  .architecture = "qwen3next", .norm_eps = 1e-6f, .attn_output_gate = true, .full_attention_interval = 4, \
  .moe_renormalize = true

static up_model_config g_presets[] = {
    {
        /* A shrunken Llama-3.1 for CPU runs: GQA (2 query heads per kv head), head_dim 64,
         * the same RoPE and context, 8 layers. Drop layers stand in proportionally for
         * Llama-3.1-8B's 7..27 of 32 (first drop a quarter in, then every quarter); at 8
         * layers the depth rule would drop after six of the eight. */
        .name = "tiny-llama", .architecture = "llama",
        .n_layers = 8, .hidden = 256, .n_heads = 4, .n_kv_heads = 2, .head_dim = 64,
        .intermediate = 704, .vocab = 32000, .max_context = 131072, .norm_eps = 1e-5f,
        LLAMA31_ROPE,
        .n_drop_layers = 3, .drop_layers = {1, 3, 5}, .default_top_p = 0.99f,
    },
    {
        .name = "llama-3.1-8b", .architecture = "llama",
        .n_layers = 32, .hidden = 4096, .n_heads = 32, .n_kv_heads = 8, .head_dim = 128,
        .intermediate = 14336, .vocab = 128256, .max_context = 131072, .norm_eps = 1e-5f,
        LLAMA31_ROPE,
        DROP_LAYERS_BY_DEPTH, .default_top_p = 0.99f, /* the reference layers themselves */
    },
    {
        /* The reference code gives no 70B drop layers: 8B's scaled by depth (x2.5). */
        .name = "llama-3.1-70b", .architecture = "llama",
        .n_layers = 80, .hidden = 8192, .n_heads = 64, .n_kv_heads = 8, .head_dim = 128,
        .intermediate = 28672, .vocab = 128256, .max_context = 131072, .norm_eps = 1e-5f,
        LLAMA31_ROPE,
        DROP_LAYERS_BY_DEPTH, .default_top_p = 0.99f,
    },
    {
        /* Globals 5, 11, 17: drops at 5 and 11 (the suite's choice: the reference runs
         * the 270M dense), so UniPrefill can be measured on a real Gemma 3 checkpoint. */
        .name = "gemma-3-270m", GEMMA3_COMMON,
        .n_layers = 18, .hidden = 640, .n_heads = 4, .n_kv_heads = 1, .head_dim = 256,
        .intermediate = 2048, .vocab = 262144, .max_context = 32768, .sliding_window = 512,
        .query_pre_attn_scalar = 256.0f,
    },
    {
        /* Globals 5, 11, 17, 23: drops at 5, 11, 17 (the suite's choice, as for the 270M). */
        .name = "gemma-3-1b", GEMMA3_COMMON,
        .n_layers = 26, .hidden = 1152, .n_heads = 4, .n_kv_heads = 1, .head_dim = 256,
        .intermediate = 6912, .vocab = 262144, .max_context = 32768, .sliding_window = 512,
        .query_pre_attn_scalar = 256.0f,
    },
    {
        /* Of the reference's 29, 35, 41 only 29 exists in 34 layers. */
        .name = "gemma-3-4b", GEMMA3_COMMON, GEMMA3_LINEAR_X8,
        .n_layers = 34, .hidden = 2560, .n_heads = 8, .n_kv_heads = 4, .head_dim = 256,
        .intermediate = 10240, .vocab = 262208, .max_context = 131072, .sliding_window = 1024,
        .query_pre_attn_scalar = 256.0f,
    },
    {
        .name = "gemma-3-12b", GEMMA3_COMMON, GEMMA3_LINEAR_X8,
        .n_layers = 48, .hidden = 3840, .n_heads = 16, .n_kv_heads = 8, .head_dim = 256,
        .intermediate = 15360, .vocab = 262208, .max_context = 131072, .sliding_window = 1024,
        .query_pre_attn_scalar = 256.0f,
    },
    {
        .name = "gemma-3-27b", GEMMA3_COMMON, GEMMA3_LINEAR_X8,
        .n_layers = 62, .hidden = 5376, .n_heads = 32, .n_kv_heads = 16, .head_dim = 128,
        .intermediate = 21504, .vocab = 262208, .max_context = 131072, .sliding_window = 1024,
        .query_pre_attn_scalar = 168.0f,
    },
    {
        /* Qwen/Qwen3-Next-80B-A3B-Instruct's config.json; --layers 4k keeps the 3:1 pattern. */
        .name = "qwen3-next-80b-a3b", QWEN3_NEXT_COMMON,
        .n_layers = 48, .hidden = 2048, .n_heads = 16, .n_kv_heads = 2, .head_dim = 256, .rotary_dim = 64,
        .rope_theta = 10000000.0f, .intermediate = 5120, .vocab = 151936, .max_context = 262144,
        .linear_key_heads = 16, .linear_value_heads = 32, .linear_head_dim = 128, .linear_conv_width = 4,
        .n_experts = 512, .n_experts_per_token = 10, .moe_intermediate = 512, .shared_expert_intermediate = 512,
    },
    {
        /* Qwen3-Next's shape at CPU-test size: both layer kinds twice, 8 experts, small dims. */
        .name = "tiny-qwen3-next", QWEN3_NEXT_COMMON,
        .n_layers = 8, .hidden = 64, .n_heads = 4, .n_kv_heads = 2, .head_dim = 32, .rotary_dim = 16,
        .rope_theta = 10000000.0f, .intermediate = 96, .vocab = 512, .max_context = 262144,
        .linear_key_heads = 2, .linear_value_heads = 4, .linear_head_dim = 16, .linear_conv_width = 4,
        .n_experts = 8, .n_experts_per_token = 2, .moe_intermediate = 32, .shared_expert_intermediate = 32,
    },
};

int32_t up_model_config_drop_layers_by_depth(int32_t n_layers, int32_t drop_layers[UP_MAX_LAYERS]) {
  static const int32_t reference[] = {7, 11, 15, 19, 23, 27}; /* Llama-3.1-8B, UniPrefill reference code */
  const int32_t reference_depth = 32;
  UP_ASSERT(n_layers >= 1 && n_layers <= UP_MAX_LAYERS, "%d layers", (int)n_layers);
  int32_t n = 0;
  for (size_t i = 0; i < sizeof reference / sizeof reference[0]; ++i) {
    const int32_t layer = (int32_t)((int64_t)reference[i] * n_layers / reference_depth);
    if (n == 0 || layer > drop_layers[n - 1]) drop_layers[n++] = layer;
  }
  return n;
}

static pthread_once_t g_presets_once = PTHREAD_ONCE_INIT;

static void presets_fill(void) {
  for (size_t i = 0; i < sizeof g_presets / sizeof g_presets[0]; ++i) {
    if (g_presets[i].n_drop_layers < 0)
      g_presets[i].n_drop_layers = up_model_config_drop_layers_by_depth(g_presets[i].n_layers, g_presets[i].drop_layers);
    if (strcmp(g_presets[i].architecture, "gemma3") == 0) {
      up_model_config_set_sliding_pattern(&g_presets[i], 6);
      for (int32_t l = 0; l < g_presets[i].n_layers; ++l) g_presets[i].mlp_kind[l] = UP_MLP_GEGLU_TANH;
      up_model_config_gemma3_uniprefill_defaults(&g_presets[i]);
    }
    if (strcmp(g_presets[i].architecture, "qwen3next") == 0) up_model_config_qwen3_next_layers(&g_presets[i]);
  }
}

void up_model_config_qwen3_next_layers(up_model_config *cfg) {
  const int32_t period = cfg->full_attention_interval;
  UP_ASSERT(period >= 1 && cfg->n_layers <= UP_MAX_LAYERS, "Qwen3-Next layers of interval %d", (int)period);
  for (int32_t l = 0; l < UP_MAX_LAYERS; ++l) {
    cfg->layer_kind[l] = (l + 1) % period == 0 ? UP_LAYER_FULL_ATTENTION : UP_LAYER_LINEAR_ATTENTION;
    cfg->mlp_kind[l] = UP_MLP_MOE;
  }
  /* The reference's list (HYBRIDS.md D.4: every full-attention layer of 48 but the
   * first and last), where this depth has them. */
  cfg->n_drop_layers = 0;
  for (int32_t l = 7; l <= 43 && l < cfg->n_layers; l += 4)
    if (cfg->layer_kind[l] == UP_LAYER_FULL_ATTENTION) cfg->drop_layers[cfg->n_drop_layers++] = l;
  cfg->default_top_p = 0.99f;
  cfg->drop_min_rows = 0;
}

void up_model_config_gemma3_uniprefill_defaults(up_model_config *cfg) {
  static const int32_t reference[] = {29, 35, 41}; /* UniPrefill reference, Gemma 3 12B/27B (HYBRIDS.md D.3) */
  cfg->n_drop_layers = 0;
  for (size_t i = 0; i < sizeof reference / sizeof reference[0]; ++i)
    if (reference[i] < cfg->n_layers && cfg->layer_kind[reference[i]] == UP_LAYER_FULL_ATTENTION)
      cfg->drop_layers[cfg->n_drop_layers++] = reference[i];
  if (cfg->n_drop_layers == 0) {
    int32_t last_global = -1;
    for (int32_t l = 0; l < cfg->n_layers; ++l)
      if (cfg->layer_kind[l] == UP_LAYER_FULL_ATTENTION) last_global = l;
    for (int32_t l = 0; l < last_global; ++l)
      if (cfg->layer_kind[l] == UP_LAYER_FULL_ATTENTION) cfg->drop_layers[cfg->n_drop_layers++] = l;
  }
  cfg->default_top_p = 0.975f;
  cfg->drop_min_rows = 1024;
}

void up_model_config_set_sliding_pattern(up_model_config *cfg, int32_t period) {
  UP_ASSERT(period >= 1 && cfg->n_layers <= UP_MAX_LAYERS, "sliding pattern of period %d", (int)period);
  for (int32_t l = 0; l < UP_MAX_LAYERS; ++l)
    cfg->layer_kind[l] = l >= cfg->n_layers || (l + 1) % period == 0 ? UP_LAYER_FULL_ATTENTION : UP_LAYER_SLIDING_WINDOW;
}

static const up_model_config *presets(void) {
  const int rc = pthread_once(&g_presets_once, presets_fill);
  UP_ASSERT(rc == 0, "pthread_once for the preset registry failed (%d)", rc);
  return g_presets;
}

int32_t up_model_preset_count(void) { return (int32_t)(sizeof g_presets / sizeof g_presets[0]); }

const up_model_config *up_model_preset_at(int32_t index) {
  return (index >= 0 && index < up_model_preset_count()) ? &presets()[index] : NULL;
}

const up_model_config *up_model_preset_find(const char *name) {
  for (int32_t i = 0; i < up_model_preset_count(); ++i)
    if (strcmp(presets()[i].name, name) == 0) return &presets()[i];
  return NULL;
}

static bool breaks_layer_pattern(const up_model_config *cfg, int32_t n_layers) {
  return cfg->full_attention_interval > 0 && n_layers % cfg->full_attention_interval != 0;
}

void up_model_config_truncate_error(const up_model_config *cfg, int32_t n_layers, char *err, size_t err_size) {
  if (breaks_layer_pattern(cfg, n_layers))
    snprintf(err, err_size, "--layers %d breaks model %s's layer pattern (full attention every %d layers, linear "
             "attention between): give a multiple of %d up to %d", (int)n_layers, cfg->name,
             (int)cfg->full_attention_interval, (int)cfg->full_attention_interval, (int)cfg->n_layers);
  else
    snprintf(err, err_size, "--layers %d: model %s has %d layers", (int)n_layers, cfg->name, (int)cfg->n_layers);
}

bool up_model_config_truncate(up_model_config *cfg, int32_t n_layers) {
  if (n_layers < 1 || n_layers > cfg->n_layers || breaks_layer_pattern(cfg, n_layers)) return false;
  if (n_layers == cfg->n_layers) return true;
  cfg->n_layers = n_layers;
  int32_t kept = 0;
  for (int32_t i = 0; i < cfg->n_drop_layers; ++i)
    if (cfg->drop_layers[i] < n_layers) cfg->drop_layers[kept++] = cfg->drop_layers[i];
  cfg->n_drop_layers = kept;
  char name[sizeof cfg->name];
  snprintf(name, sizeof name, "%s", cfg->name);
  snprintf(cfg->name, sizeof cfg->name, "%.40s-%dlayers", name, (int)n_layers);
  return true;
}

int32_t up_model_config_qkv_dim(const up_model_config *cfg) {
  return (cfg->n_heads + 2 * cfg->n_kv_heads) * cfg->head_dim;
}

float up_model_config_attention_scale(const up_model_config *cfg) {
  const float scalar = cfg->query_pre_attn_scalar > 0.0f ? cfg->query_pre_attn_scalar : (float)cfg->head_dim;
  return 1.0f / sqrtf(scalar);
}

bool up_model_config_has_sliding_rope(const up_model_config *cfg) { return cfg->rope_sliding_theta > 0.0f; }

void up_model_config_rope_inv_freq_sliding(const up_model_config *cfg, float *inv_freq) {
  UP_ASSERT(up_model_config_has_sliding_rope(cfg), "model %s has no RoPE base of its own for sliding layers",
            cfg->name);
  for (int32_t i = 0; i < cfg->head_dim / 2; ++i)
    inv_freq[i] = (float)(1.0 / pow((double)cfg->rope_sliding_theta, (double)(2 * i) / (double)cfg->head_dim));
}

void up_model_config_rope_inv_freq(const up_model_config *cfg, float *inv_freq) {
  const int32_t rotated = cfg->rotary_dim > 0 ? cfg->rotary_dim : cfg->head_dim;
  const double pi = 3.14159265358979323846;
  for (int32_t i = rotated / 2; i < cfg->head_dim / 2; ++i) inv_freq[i] = 0.0f;
  for (int32_t i = 0; i < rotated / 2; ++i) {
    double freq = 1.0 / pow((double)cfg->rope_theta, (double)(2 * i) / (double)rotated);
    if (cfg->rope_scaling == UP_ROPE_SCALING_LINEAR) freq /= cfg->rope_factor;
    if (cfg->rope_scaling == UP_ROPE_SCALING_LLAMA3) {
      /* Long wavelengths are slowed by the factor, short ones kept, the band between blended. */
      const double old_ctx = cfg->rope_original_context;
      const double low_wavelen = old_ctx / cfg->rope_low_freq_factor;
      const double high_wavelen = old_ctx / cfg->rope_high_freq_factor;
      const double wavelen = 2.0 * pi / freq;
      if (wavelen > low_wavelen) {
        freq /= cfg->rope_factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_ctx / wavelen - cfg->rope_low_freq_factor) /
                              (cfg->rope_high_freq_factor - cfg->rope_low_freq_factor);
        freq = (1.0 - smooth) * freq / cfg->rope_factor + smooth * freq;
      }
    }
    inv_freq[i] = (float)freq;
  }
}

bool up_model_config_validate(const up_model_config *cfg, char *err, size_t err_size) {
#define FAIL(...) do { snprintf(err, err_size, __VA_ARGS__); return false; } while (0)
  if (!up_arch_find(cfg->architecture))
    FAIL("model %s: architecture '%s' is not registered (engine/model/arch_registry.c)", cfg->name,
         cfg->architecture);
  if (cfg->n_layers < 1 || cfg->n_layers > UP_MAX_LAYERS)
    FAIL("model %s: %d layers (must be 1..%d)", cfg->name, (int)cfg->n_layers, UP_MAX_LAYERS);
  if (cfg->hidden < 1 || cfg->intermediate < 1 || cfg->vocab < 2 || cfg->max_context < 1)
    FAIL("model %s: hidden, intermediate, vocab and context must be positive", cfg->name);
  if (cfg->n_heads < 1 || cfg->n_kv_heads < 1 || cfg->n_heads % cfg->n_kv_heads != 0)
    FAIL("model %s: %d query heads are not a multiple of %d kv heads", cfg->name, (int)cfg->n_heads,
         (int)cfg->n_kv_heads);
  if (cfg->head_dim < 2 || cfg->head_dim % 2 != 0)
    FAIL("model %s: head_dim %d must be even (RoPE pairs)", cfg->name, (int)cfg->head_dim);
  if (cfg->rope_scaling == UP_ROPE_SCALING_LINEAR && !(cfg->rope_factor > 0.0f && isfinite(cfg->rope_factor)))
    FAIL("model %s: linear rope scaling needs a positive factor (rope_factor %g)", cfg->name,
         (double)cfg->rope_factor);
  if (!(cfg->query_pre_attn_scalar >= 0.0f && isfinite(cfg->query_pre_attn_scalar)))
    FAIL("model %s: query_pre_attn_scalar %g must be positive", cfg->name, (double)cfg->query_pre_attn_scalar);
  if (!(cfg->rope_sliding_theta >= 0.0f && isfinite(cfg->rope_sliding_theta)))
    FAIL("model %s: the sliding layers' rope theta %g must be positive", cfg->name, (double)cfg->rope_sliding_theta);
  if (cfg->final_logit_softcap != 0.0f)
    FAIL("model %s: final_logit_softcapping %g is not implemented (no Gemma 3 release sets it)", cfg->name,
         (double)cfg->final_logit_softcap);
  if (cfg->rotary_dim != 0 && (cfg->rotary_dim < 2 || cfg->rotary_dim % 2 != 0 || cfg->rotary_dim > cfg->head_dim))
    FAIL("model %s: rotary dim %d must be even and at most head_dim %d", cfg->name, (int)cfg->rotary_dim,
         (int)cfg->head_dim);
  if (cfg->drop_min_rows < 0) FAIL("model %s: drop_min_rows %d is negative", cfg->name, (int)cfg->drop_min_rows);
  bool any_sliding = false;
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    if (cfg->layer_kind[l] != UP_LAYER_FULL_ATTENTION && cfg->layer_kind[l] != UP_LAYER_SLIDING_WINDOW &&
        cfg->layer_kind[l] != UP_LAYER_LINEAR_ATTENTION)
      FAIL("model %s: layer %d has unknown kind %d", cfg->name, (int)l, (int)cfg->layer_kind[l]);
    any_sliding = any_sliding || cfg->layer_kind[l] == UP_LAYER_SLIDING_WINDOW;
    if (cfg->mlp_kind[l] != UP_MLP_SWIGLU && cfg->mlp_kind[l] != UP_MLP_GEGLU_TANH && cfg->mlp_kind[l] != UP_MLP_MOE)
      FAIL("model %s: layer %d has unknown MLP kind %d", cfg->name, (int)l, (int)cfg->mlp_kind[l]);
  }
  if (any_sliding && cfg->sliding_window < 1)
    FAIL("model %s: sliding-window layers need sliding_window >= 1 (got %d)", cfg->name, (int)cfg->sliding_window);
  if (any_sliding && cfg->sliding_window > cfg->max_context)
    FAIL("model %s: sliding_window %d is larger than the context (max_position_embeddings / context_length %d)",
         cfg->name, (int)cfg->sliding_window, (int)cfg->max_context);
  const up_arch *arch = up_arch_find(cfg->architecture);
  if (arch->check_config && !arch->check_config(cfg, err, err_size)) return false;
  for (int32_t i = 0; i < cfg->n_drop_layers; ++i) {
    const int32_t l = cfg->drop_layers[i];
    if (l < 0 || l >= cfg->n_layers) FAIL("model %s: drop layer %d out of range", cfg->name, (int)l);
    if (cfg->layer_kind[l] != UP_LAYER_FULL_ATTENTION)
      FAIL("model %s: drop layer %d is a %s layer; drop layers must be full-attention (global) layers", cfg->name,
           (int)l, cfg->layer_kind[l] == UP_LAYER_SLIDING_WINDOW ? "sliding-window" : "linear-attention");
    if (i > 0 && l <= cfg->drop_layers[i - 1]) FAIL("model %s: drop layers must ascend", cfg->name);
  }
  return true;
#undef FAIL
}
