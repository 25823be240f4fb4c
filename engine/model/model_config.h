/* model_config.h — model shapes: the preset registry (real published shapes plus the
 * tiny CPU default) and the per-layer description (attention kind, MLP kind, where
 * UniPrefill drops) that lets hybrid models slot in without reshaping the engine. */
#ifndef UP_MODEL_CONFIG_H
#define UP_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UP_MAX_LAYERS 128

typedef enum up_layer_kind {
  UP_LAYER_FULL_ATTENTION = 0,
  UP_LAYER_SLIDING_WINDOW = 1,   /* Gemma 3 local layers: attention over the last sliding_window entries */
  UP_LAYER_LINEAR_ATTENTION = 2, /* Qwen3-Next Gated DeltaNet: a recurrent state per sequence, no KV */
} up_layer_kind;

typedef enum up_mlp_kind {
  UP_MLP_SWIGLU = 0,
  UP_MLP_MOE = 1, /* Qwen3-Next: routed SwiGLU experts plus a sigmoid-gated shared expert */
  UP_MLP_GEGLU_TANH = 2, /* Gemma: gelu_tanh(gate) * up (transformers' gelu_pytorch_tanh) */
} up_mlp_kind;

typedef enum up_rope_scaling {
  UP_ROPE_SCALING_NONE = 0,
  UP_ROPE_SCALING_LLAMA3 = 1,
  UP_ROPE_SCALING_LINEAR = 2, /* every frequency divided by rope_factor (positions / factor) */
} up_rope_scaling;

typedef struct up_model_config {
  char name[64];
  char architecture[32]; /* "llama", "gemma3", "qwen3next" */
  int32_t n_layers;
  int32_t hidden;
  int32_t n_heads;
  int32_t n_kv_heads;
  int32_t head_dim;
  int32_t intermediate;
  int32_t vocab;
  int32_t max_context;
  float norm_eps;
  float rope_theta;
  up_rope_scaling rope_scaling;
  float rope_factor;           /* llama3: 8 */
  float rope_low_freq_factor;  /* llama3: 1 */
  float rope_high_freq_factor; /* llama3: 4 */
  int32_t rope_original_context; /* llama3: 8192 */
  /* UP_LAYER_SLIDING_WINDOW layers' own RoPE: base rope_sliding_theta, never scaled (Gemma 3:
   * 10,000 while the full-attention layers use rope_theta with rope_scaling). 0: the
   * sliding layers share the full layers' frequencies. */
  float rope_sliding_theta;
  /* Softmax scale is query_pre_attn_scalar^-1/2 (Gemma 3 27B: 168); 0 means head_dim. */
  float query_pre_attn_scalar;
  /* Token embeddings are multiplied by sqrt(hidden) before the first layer (Gemma); the
   * tied LM head still reads the unscaled table. */
  bool scale_embeddings;
  /* logits = cap * tanh(logits / cap) when > 0 (Gemma 2 style; no Gemma 3 release sets it). */
  float final_logit_softcap;
  up_layer_kind layer_kind[UP_MAX_LAYERS];
  int32_t sliding_window; /* UP_LAYER_SLIDING_WINDOW layers: cache entries each query sees (itself and the
                            W-1 before it, kernels/ops.h); 0 when the model has none */
  up_mlp_kind mlp_kind[UP_MAX_LAYERS];
  bool tie_word_embeddings; /* the LM head is the input embedding (no lm_head tensor in a checkpoint) */
  int32_t n_drop_layers;                /* UniPrefill preset drop layers, ascending */
  int32_t drop_layers[UP_MAX_LAYERS];
  float default_top_p;
  /* UniPrefill skips a drop layer when the step has at most this many rows left (the
   * reference's Gemma 3 rule: 1024); 0: never skips for length. */
  int32_t drop_min_rows;
  /* Linear-attention hybrids (Qwen3-Next, ../shared/HYBRIDS.md C.1); 0 where the model has none. */
  int32_t rotary_dim;      /* dims of each head RoPE rotates (partial rotary, pairs (i, i + rotary_dim/2)); 0: all */
  bool attn_output_gate;   /* full attention multiplies its output by sigmoid(gate) before o_proj */
  int32_t full_attention_interval; /* layer l is full attention iff (l + 1) % interval == 0, the rest linear */
  int32_t linear_key_heads, linear_value_heads, linear_head_dim; /* Gated DeltaNet heads (dk = dv) */
  int32_t linear_conv_width;       /* causal depthwise conv taps over q, k, v */
  int32_t n_experts, n_experts_per_token; /* routed experts; chosen per token (top-k) */
  int32_t moe_intermediate;        /* each routed expert's SwiGLU width */
  int32_t shared_expert_intermediate; /* the shared expert's SwiGLU width; 0: no shared expert */
  bool moe_renormalize;            /* top-k router weights divided by their sum (norm_topk_prob) */
} up_model_config;

/* Preset by name ("tiny-llama", "llama-3.1-8b", "llama-3.1-70b"); NULL when unknown. */
const up_model_config *up_model_preset_find(const char *name);
int32_t up_model_preset_count(void);
const up_model_config *up_model_preset_at(int32_t index);

/* UniPrefill drop layers for a model with no reference list of its own: Llama-3.1-8B's
 * reference layers (7, 11, ..., 27 of 32) scaled to n_layers (floor(l x n_layers / 32)),
 * repeats removed. Writes them ascending into drop_layers and returns their count. The
 * 8B and 70B presets and Hugging Face checkpoints take their drop layers from here. */
int32_t up_model_config_drop_layers_by_depth(int32_t n_layers, int32_t drop_layers[UP_MAX_LAYERS]);

/* Gemma 3's UniPrefill defaults, from its layer kinds: the reference's drop layers 29,
 * 35, 41 where they are global layers of this depth (12B, 27B; only 29 on the 4B);
 * where none is (270M, 1B, which the reference runs dense), every global layer but
 * the last, this suite's choice. p 0.975, no drop on a step of 1024 rows or fewer. */
void up_model_config_gemma3_uniprefill_defaults(up_model_config *cfg);

/* Keep only the first n_layers layers (reduced-depth variants, labelled in the name);
 * drop layers beyond the new depth are removed. Returns false if n_layers is out of range
 * or, for a model with a full_attention_interval, not a multiple of it (the layer
 * pattern would break: up_model_config_truncate_error says which). */
bool up_model_config_truncate(up_model_config *cfg, int32_t n_layers);
/* Why up_model_config_truncate refuses n_layers for cfg (before truncating). */
void up_model_config_truncate_error(const up_model_config *cfg, int32_t n_layers, char *err, size_t err_size);

/* Qwen3-Next's layer kinds and UniPrefill defaults from full_attention_interval: every
 * interval-th layer full attention, the rest Gated DeltaNet, MoE in every layer; drop
 * layers the reference's 7, 11, ..., 43 that this depth has (HYBRIDS.md D.4), p 0.99. */
void up_model_config_qwen3_next_layers(up_model_config *cfg);

int32_t up_model_config_qkv_dim(const up_model_config *cfg); /* (n_heads + 2 n_kv_heads) * head_dim */
/* Parameter counts and FLOPs: engine/model/layer_cost.h. */

/* The head_dim/2 RoPE frequencies after the config's scaling (full-attention layers);
 * with a rotary_dim, its rotary_dim/2 frequencies (base over rotary_dim) and zeros after. */
void up_model_config_rope_inv_freq(const up_model_config *cfg, float *inv_freq);
/* True when sliding-window layers rotate with frequencies of their own
 * (rope_sliding_theta set), which up_model_config_rope_inv_freq_sliding gives. */
bool up_model_config_has_sliding_rope(const up_model_config *cfg);
void up_model_config_rope_inv_freq_sliding(const up_model_config *cfg, float *inv_freq);
/* The attention softmax scale: 1/sqrt(query_pre_attn_scalar), or 1/sqrt(head_dim). */
float up_model_config_attention_scale(const up_model_config *cfg);
/* Layers of the period-`period` pattern of Gemma 3: sliding except every period-th
 * (layer l is full attention iff (l + 1) % period == 0). */
void up_model_config_set_sliding_pattern(up_model_config *cfg, int32_t period);

/* Check internal consistency; on failure writes a message to err and returns false. */
bool up_model_config_validate(const up_model_config *cfg, char *err, size_t err_size);

#endif
