/* checkpoint_hf.c — the Hugging Face side of engine/checkpoint/checkpoint.h: tensor names as
 * transformers' Llama writes them. Its [out][in] row-major layout and rotate-half
 * rotary order are already the engine's, so weights convert element for element. */
#include "engine/checkpoint/checkpoint_internal.h"

#include <stdio.h>

#include "engine/checkpoint/hf_checkpoint.h"
#include "engine/checkpoint/safetensors.h"

static void hf_tensor_name(up_weight_role role, int32_t layer, char *name, size_t size) {
  static const char *const per_layer[UP_WEIGHT_ROLE_COUNT] = {
      [UP_WEIGHT_ATTN_NORM] = "input_layernorm", [UP_WEIGHT_Q] = "self_attn.q_proj",
      [UP_WEIGHT_K] = "self_attn.k_proj", [UP_WEIGHT_V] = "self_attn.v_proj", [UP_WEIGHT_O] = "self_attn.o_proj",
      [UP_WEIGHT_MLP_NORM] = "post_attention_layernorm", [UP_WEIGHT_GATE] = "mlp.gate_proj",
      [UP_WEIGHT_UP] = "mlp.up_proj", [UP_WEIGHT_DOWN] = "mlp.down_proj",
  };
  switch (role) {
    case UP_WEIGHT_EMBED: snprintf(name, size, "model.embed_tokens.weight"); return;
    case UP_WEIGHT_LM_HEAD: snprintf(name, size, "lm_head.weight"); return;
    case UP_WEIGHT_FINAL_NORM: snprintf(name, size, "model.norm.weight"); return;
    default: snprintf(name, size, "model.layers.%d.%s.weight", (int)layer, per_layer[role]); return;
  }
}

bool up_checkpoint_hf_read(const up_hf_checkpoint *hf, const up_model_config *cfg, up_weight_role role,
                           int32_t layer, float *out, char *err, size_t err_size) {
  if (role == UP_WEIGHT_LM_HEAD && cfg->tie_word_embeddings) role = UP_WEIGHT_EMBED;
  char name[128];
  hf_tensor_name(role, layer, name, sizeof name);
  const up_st_tensor *t = up_hf_checkpoint_find(hf, name);
  if (!t) {
    snprintf(err, err_size, "%s: tensor '%s' is missing", up_hf_checkpoint_dir(hf), name);
    return false;
  }
  int64_t rows, cols;
  up_checkpoint_role_shape(cfg, role, &rows, &cols);
  const bool shape_ok = rows == 1 ? (t->n_dims == 1 && t->shape[0] == cols)
                                  : (t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols);
  if (!shape_ok) {
    snprintf(err, err_size, "%s: tensor '%s' has %d dims (first %lld), the config needs [%lld, %lld]",
             up_hf_checkpoint_dir(hf), name, (int)t->n_dims, (long long)(t->n_dims > 0 ? t->shape[0] : 0),
             (long long)rows, (long long)cols);
    return false;
  }
  return up_safetensors_to_f32(t, out, 0, t->n_elements, err, err_size);
}
