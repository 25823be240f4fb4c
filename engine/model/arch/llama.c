/* arch/llama.c — Llama (and the Llama-shaped models it covers: Llama 2/3/3.1, SmolLM2,
 * TinyLlama): its weight table and its layer, attention then a SwiGLU MLP. Names are
 * those llama.cpp's converter writes to GGUF and transformers' LlamaForCausalLM writes
 * to safetensors; GGUF holds the query and key rows with rotary pairs adjacent. Owns
 * nothing else: the blocks are shared (engine/model/blocks/). */
#include "engine/model/arch.h"

#include "core/fatal.h"

static const up_tensor_spec llama_tensors[] = {
    {UP_TENSOR_EMBED, UP_BLOCK_MODEL, "embed", "embedding table", UP_DIM_VOCAB, UP_DIM_HIDDEN, UP_INIT_UNIT,
     UP_STREAM_EMBED, 1, {{UP_DIM_VOCAB, "token_embd", "model.embed_tokens", false, false}}},
    {UP_TENSOR_LM_HEAD, UP_BLOCK_MODEL, "lm_head", "LM head", UP_DIM_VOCAB, UP_DIM_HIDDEN, UP_INIT_FAN_IN,
     UP_STREAM_LM_HEAD, 1, {{UP_DIM_VOCAB, "output", "lm_head", false, false}}},
    {UP_TENSOR_FINAL_NORM, UP_BLOCK_MODEL, "final_norm", "final norm", UP_DIM_ONE, UP_DIM_HIDDEN, UP_INIT_ONES,
     UP_STREAM_NONE, 1, {{UP_DIM_ONE, "output_norm", "model.norm", false, false}}},

    {UP_TENSOR_ATTN_NORM, UP_BLOCK_ATTENTION, "attn_norm", "attention norm", UP_DIM_ONE, UP_DIM_HIDDEN, UP_INIT_ONES,
     UP_STREAM_NONE, 1, {{UP_DIM_ONE, "attn_norm", "input_layernorm", false, false}}},
    {UP_TENSOR_ATTN_QKV, UP_BLOCK_ATTENTION, "qkv", "QKV projection", UP_DIM_QKV, UP_DIM_HIDDEN, UP_INIT_FAN_IN,
     UP_STREAM_WQKV, 3,
     {{UP_DIM_Q, "attn_q", "self_attn.q_proj", true, false},
      {UP_DIM_KV, "attn_k", "self_attn.k_proj", true, false},
      {UP_DIM_KV, "attn_v", "self_attn.v_proj", false, false}}},
    {UP_TENSOR_ATTN_OUT, UP_BLOCK_ATTENTION, "o", "output projection", UP_DIM_HIDDEN, UP_DIM_Q, UP_INIT_RESIDUAL,
     UP_STREAM_WO, 1, {{UP_DIM_HIDDEN, "attn_output", "self_attn.o_proj", false, false}}},

    {UP_TENSOR_MLP_NORM, UP_BLOCK_MLP, "mlp_norm", "MLP norm", UP_DIM_ONE, UP_DIM_HIDDEN, UP_INIT_ONES,
     UP_STREAM_NONE, 1, {{UP_DIM_ONE, "ffn_norm", "post_attention_layernorm", false, false}}},
    {UP_TENSOR_MLP_GATE_UP, UP_BLOCK_MLP, "gate_up", "gate/up projection", UP_DIM_GATE_UP, UP_DIM_HIDDEN,
     UP_INIT_FAN_IN, UP_STREAM_GATE_UP, 2,
     {{UP_DIM_INTERMEDIATE, "ffn_gate", "mlp.gate_proj", false, false},
      {UP_DIM_INTERMEDIATE, "ffn_up", "mlp.up_proj", false, false}}},
    {UP_TENSOR_MLP_DOWN, UP_BLOCK_MLP, "down", "down projection", UP_DIM_HIDDEN, UP_DIM_INTERMEDIATE,
     UP_INIT_RESIDUAL, UP_STREAM_DOWN, 1, {{UP_DIM_HIDDEN, "ffn_down", "mlp.down_proj", false, false}}},
};

static bool llama_check_config(const up_model_config *cfg, char *err, size_t err_size) {
  for (int32_t l = 0; l < cfg->n_layers; ++l)
    if (cfg->layer_kind[l] != UP_LAYER_FULL_ATTENTION || cfg->mlp_kind[l] != UP_MLP_SWIGLU)
      return up_error(err, err_size, "model %s: llama layer %d is not full attention with a SwiGLU MLP", cfg->name,
                      (int)l);
  return true;
}

static int32_t llama_layer_blocks(const up_model_config *cfg, int32_t layer,
                                  up_block_kind blocks[UP_MAX_LAYER_BLOCKS]) {
  /* up_model_config_validate refuses other kinds before a model is built. */
  UP_ASSERT(cfg->layer_kind[layer] == UP_LAYER_FULL_ATTENTION && cfg->mlp_kind[layer] == UP_MLP_SWIGLU,
            "llama layer %d is not full attention with a SwiGLU MLP", (int)layer);
  blocks[0] = UP_BLOCK_ATTENTION;
  blocks[1] = UP_BLOCK_MLP;
  return 2;
}

const up_arch up_arch_llama = {
    .name = "llama",
    .hf_layer_prefix = "model.layers.",
    .tensors = llama_tensors,
    .n_tensors = (int32_t)(sizeof llama_tensors / sizeof llama_tensors[0]),
    .layer_blocks = llama_layer_blocks,
    .check_config = llama_check_config,
};
