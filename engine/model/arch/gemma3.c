/* arch/gemma3.c — Gemma 3 (text): its weight table and its layer, attention (full or
 * sliding-window by the layer's kind, with per-head q/k RMSNorm and a post-norm on its
 * output) then a GeGLU MLP (with its post-norm). Names are those llama.cpp's converter
 * writes to GGUF (../shared/HYBRIDS.md A.4) and transformers' Gemma3ForCausalLM writes
 * to safetensors (B.3). The converter does not permute Gemma's q/k rows (Gemma rotates
 * halves, as the engine does, A.7), and it has already added 1 to every norm weight,
 * which Hugging Face stores as w for a norm that multiplies by 1 + w (B.6). Owns
 * nothing else: the blocks are shared (engine/model/blocks/). */
#include "engine/model/arch.h"

#include "core/fatal.h"

/* A norm weight of one vector: ones when seeded (a GGUF-convention weight of 1, HF 0). */
#define GEMMA3_NORM(role, block, name, what, dim, gguf, hf)                                                   \
  {role, block, name, what, UP_DIM_ONE, dim, UP_INIT_ONES, UP_STREAM_NONE, 1, {{UP_DIM_ONE, gguf, hf, false, true}}}

static const up_tensor_spec gemma3_tensors[] = {
    {UP_TENSOR_EMBED, UP_BLOCK_MODEL, "embed", "embedding table", UP_DIM_VOCAB, UP_DIM_HIDDEN, UP_INIT_UNIT,
     UP_STREAM_EMBED, 1, {{UP_DIM_VOCAB, "token_embd", "model.embed_tokens", false, false}}},
    {UP_TENSOR_LM_HEAD, UP_BLOCK_MODEL, "lm_head", "LM head", UP_DIM_VOCAB, UP_DIM_HIDDEN, UP_INIT_FAN_IN,
     UP_STREAM_LM_HEAD, 1, {{UP_DIM_VOCAB, "output", "lm_head", false, false}}},
    GEMMA3_NORM(UP_TENSOR_FINAL_NORM, UP_BLOCK_MODEL, "final_norm", "final norm", UP_DIM_HIDDEN, "output_norm",
                "model.norm"),

    GEMMA3_NORM(UP_TENSOR_ATTN_NORM, UP_BLOCK_ATTENTION, "attn_norm", "attention norm", UP_DIM_HIDDEN, "attn_norm",
                "input_layernorm"),
    {UP_TENSOR_ATTN_QKV, UP_BLOCK_ATTENTION, "qkv", "QKV projection", UP_DIM_QKV, UP_DIM_HIDDEN, UP_INIT_FAN_IN,
     UP_STREAM_WQKV, 3,
     {{UP_DIM_Q, "attn_q", "self_attn.q_proj", false, false},
      {UP_DIM_KV, "attn_k", "self_attn.k_proj", false, false},
      {UP_DIM_KV, "attn_v", "self_attn.v_proj", false, false}}},
    GEMMA3_NORM(UP_TENSOR_ATTN_Q_NORM, UP_BLOCK_ATTENTION, "q_norm", "query head norm", UP_DIM_HEAD, "attn_q_norm",
                "self_attn.q_norm"),
    GEMMA3_NORM(UP_TENSOR_ATTN_K_NORM, UP_BLOCK_ATTENTION, "k_norm", "key head norm", UP_DIM_HEAD, "attn_k_norm",
                "self_attn.k_norm"),
    {UP_TENSOR_ATTN_OUT, UP_BLOCK_ATTENTION, "o", "output projection", UP_DIM_HIDDEN, UP_DIM_Q, UP_INIT_RESIDUAL,
     UP_STREAM_WO, 1, {{UP_DIM_HIDDEN, "attn_output", "self_attn.o_proj", false, false}}},
    GEMMA3_NORM(UP_TENSOR_ATTN_POST_NORM, UP_BLOCK_ATTENTION, "attn_post_norm", "post-attention norm",
                UP_DIM_HIDDEN, "post_attention_norm", "post_attention_layernorm"),

    GEMMA3_NORM(UP_TENSOR_MLP_NORM, UP_BLOCK_MLP, "mlp_norm", "MLP norm", UP_DIM_HIDDEN, "ffn_norm",
                "pre_feedforward_layernorm"),
    {UP_TENSOR_MLP_GATE_UP, UP_BLOCK_MLP, "gate_up", "gate/up projection", UP_DIM_GATE_UP, UP_DIM_HIDDEN,
     UP_INIT_FAN_IN, UP_STREAM_GATE_UP, 2,
     {{UP_DIM_INTERMEDIATE, "ffn_gate", "mlp.gate_proj", false, false},
      {UP_DIM_INTERMEDIATE, "ffn_up", "mlp.up_proj", false, false}}},
    {UP_TENSOR_MLP_DOWN, UP_BLOCK_MLP, "down", "down projection", UP_DIM_HIDDEN, UP_DIM_INTERMEDIATE,
     UP_INIT_RESIDUAL, UP_STREAM_DOWN, 1, {{UP_DIM_HIDDEN, "ffn_down", "mlp.down_proj", false, false}}},
    GEMMA3_NORM(UP_TENSOR_MLP_POST_NORM, UP_BLOCK_MLP, "mlp_post_norm", "post-MLP norm", UP_DIM_HIDDEN,
                "post_ffw_norm", "post_feedforward_layernorm"),
};

static bool gemma3_check_config(const up_model_config *cfg, char *err, size_t err_size) {
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    if (cfg->layer_kind[l] != UP_LAYER_FULL_ATTENTION && cfg->layer_kind[l] != UP_LAYER_SLIDING_WINDOW)
      return up_error(err, err_size, "model %s: gemma3 layer %d is neither full nor sliding-window attention",
                      cfg->name, (int)l);
    if (cfg->mlp_kind[l] != UP_MLP_GEGLU_TANH)
      return up_error(err, err_size, "model %s: gemma3 layer %d does not have a GeGLU (tanh) MLP", cfg->name, (int)l);
  }
  return true;
}

/* Every layer runs attention (full or sliding by its kind) then the MLP; the kinds were
 * checked when the config was validated (gemma3_check_config). */
static int32_t gemma3_layer_blocks(const up_model_config *cfg, int32_t layer,
                                   up_block_kind blocks[UP_MAX_LAYER_BLOCKS]) {
  (void)cfg;
  (void)layer;
  blocks[0] = UP_BLOCK_ATTENTION;
  blocks[1] = UP_BLOCK_MLP;
  return 2;
}

const up_arch up_arch_gemma3 = {
    .name = "gemma3",
    .hf_layer_prefix = "model.layers.",
    .tensors = gemma3_tensors,
    .n_tensors = (int32_t)(sizeof gemma3_tensors / sizeof gemma3_tensors[0]),
    .layer_blocks = gemma3_layer_blocks,
    .check_config = gemma3_check_config,
};
