/* arch/qwen3_next.c — Qwen3-Next: its weight table and its layers, Gated DeltaNet or
 * gated full attention (by the layer's kind), then the MoE block, in every layer
 * (../shared/HYBRIDS.md C.2). Names are Hugging Face's qwen3_next safetensors (C.10) and
 * llama.cpp's qwen3next GGUF with the newer attn_qkv/attn_gate DeltaNet layout; the
 * legacy ssm_in layout, GGUF's ssm_a (already -exp(A_log)) and the per-expert
 * safetensors are the loader's to convert. Every norm but the DeltaNet output norm is
 * (1 + w) in Hugging Face (hf_one_plus). Engine row orders keep apart what the
 * checkpoints interleave (arch.h's up_row_order). Owns nothing else: the blocks are
 * shared (engine/model/blocks/). */
#include "engine/model/arch.h"

#include "core/fatal.h"

/* A norm weight of one vector: ones when seeded; one_plus: Hugging Face stores w of 1 + w. */
#define QN_NORM(role, block, name, what, dim, gguf, hf, one_plus)                                              \
  {role, block, name, what, UP_DIM_ONE, dim, UP_INIT_ONES, UP_STREAM_NONE, 1,                                \
   {{UP_DIM_ONE, gguf, hf, false, one_plus}}}
/* A one-part weight stored as is in both formats. */
#define QN_PART(rows, gguf, hf) {rows, gguf, hf, false, false}

static const up_tensor_spec qwen3_next_tensors[] = {
    {UP_TENSOR_EMBED, UP_BLOCK_MODEL, "embed", "embedding table", UP_DIM_VOCAB, UP_DIM_HIDDEN, UP_INIT_UNIT,
     UP_STREAM_EMBED, 1, {QN_PART(UP_DIM_VOCAB, "token_embd", "model.embed_tokens")}},
    {UP_TENSOR_LM_HEAD, UP_BLOCK_MODEL, "lm_head", "LM head", UP_DIM_VOCAB, UP_DIM_HIDDEN, UP_INIT_FAN_IN,
     UP_STREAM_LM_HEAD, 1, {QN_PART(UP_DIM_VOCAB, "output", "lm_head")}},
    QN_NORM(UP_TENSOR_FINAL_NORM, UP_BLOCK_MODEL, "final_norm", "final norm", UP_DIM_HIDDEN, "output_norm",
            "model.norm", true),

    /* gated full attention (C.7): q_proj's rows are [query | gate] per head */
    QN_NORM(UP_TENSOR_ATTN_NORM, UP_BLOCK_ATTENTION, "attn_norm", "attention norm", UP_DIM_HIDDEN, "attn_norm",
            "input_layernorm", true),
    {UP_TENSOR_ATTN_QKV, UP_BLOCK_ATTENTION, "qkv", "QKV projection", UP_DIM_QKV, UP_DIM_HIDDEN, UP_INIT_FAN_IN,
     UP_STREAM_WQKV, 3,
     {QN_PART(UP_DIM_Q, "attn_q", "self_attn.q_proj"),
      QN_PART(UP_DIM_KV, "attn_k", "self_attn.k_proj"), QN_PART(UP_DIM_KV, "attn_v", "self_attn.v_proj")}},
    {UP_TENSOR_ATTN_GATE, UP_BLOCK_ATTENTION, "gate", "attention output gate projection", UP_DIM_Q, UP_DIM_HIDDEN,
     UP_INIT_FAN_IN, UP_STREAM_ATTN_GATE, 1,
     {QN_PART(UP_DIM_Q, "attn_q", "self_attn.q_proj")}},
    QN_NORM(UP_TENSOR_ATTN_Q_NORM, UP_BLOCK_ATTENTION, "q_norm", "query head norm", UP_DIM_HEAD, "attn_q_norm",
            "self_attn.q_norm", true),
    QN_NORM(UP_TENSOR_ATTN_K_NORM, UP_BLOCK_ATTENTION, "k_norm", "key head norm", UP_DIM_HEAD, "attn_k_norm",
            "self_attn.k_norm", true),
    {UP_TENSOR_ATTN_OUT, UP_BLOCK_ATTENTION, "o", "output projection", UP_DIM_HIDDEN, UP_DIM_Q, UP_INIT_RESIDUAL,
     UP_STREAM_WO, 1, {QN_PART(UP_DIM_HIDDEN, "attn_output", "self_attn.o_proj")}},

    /* Gated DeltaNet (C.3): in_proj_qkvz is [q|k|v|z] per key head, in_proj_ba [b|a] */
    QN_NORM(UP_TENSOR_ATTN_NORM, UP_BLOCK_DELTANET, "attn_norm", "DeltaNet input norm", UP_DIM_HIDDEN, "attn_norm",
            "input_layernorm", true),
    {UP_TENSOR_GDN_QKVZ, UP_BLOCK_DELTANET, "qkvz", "DeltaNet q/k/v/z projection", UP_DIM_GDN_QKVZ, UP_DIM_HIDDEN,
     UP_INIT_FAN_IN, UP_STREAM_GDN_QKVZ, 2,
     {QN_PART(UP_DIM_GDN_CONV, "attn_qkv", "linear_attn.in_proj_qkvz"),
      QN_PART(UP_DIM_GDN_VALUE, "attn_gate", "linear_attn.in_proj_qkvz")}},
    {UP_TENSOR_GDN_BA, UP_BLOCK_DELTANET, "ba", "DeltaNet beta/decay projection", UP_DIM_GDN_BA, UP_DIM_HIDDEN,
     UP_INIT_FAN_IN, UP_STREAM_GDN_BA, 2,
     {QN_PART(UP_DIM_GDN_HEADS, "ssm_ba", "linear_attn.in_proj_ba"),
      QN_PART(UP_DIM_GDN_HEADS, "ssm_ba", "linear_attn.in_proj_ba")}},
    {UP_TENSOR_GDN_CONV, UP_BLOCK_DELTANET, "conv", "DeltaNet causal conv", UP_DIM_GDN_CONV, UP_DIM_CONV_WIDTH,
     UP_INIT_FAN_IN, UP_STREAM_GDN_CONV, 1, {QN_PART(UP_DIM_GDN_CONV, "ssm_conv1d", "linear_attn.conv1d")}},
    /* Seeded A_log and dt_bias are Uniform(-sqrt 3, sqrt 3): decays from slow to fast across heads. */
    {UP_TENSOR_GDN_A_LOG, UP_BLOCK_DELTANET, "a_log", "DeltaNet A_log", UP_DIM_ONE, UP_DIM_GDN_HEADS, UP_INIT_UNIT,
     UP_STREAM_GDN_A_LOG, 1,
     {QN_PART(UP_DIM_ONE, "ssm_a", "linear_attn.A_log")}},
    {UP_TENSOR_GDN_DT_BIAS, UP_BLOCK_DELTANET, "dt_bias", "DeltaNet dt_bias", UP_DIM_ONE, UP_DIM_GDN_HEADS,
     UP_INIT_UNIT, UP_STREAM_GDN_DT_BIAS, 1,
     {QN_PART(UP_DIM_ONE, "ssm_dt.bias", "linear_attn.dt_bias")}},
    QN_NORM(UP_TENSOR_GDN_NORM, UP_BLOCK_DELTANET, "gdn_norm", "DeltaNet gated output norm", UP_DIM_GDN_HEAD_DIM,
            "ssm_norm", "linear_attn.norm", false),
    {UP_TENSOR_GDN_OUT, UP_BLOCK_DELTANET, "gdn_out", "DeltaNet output projection", UP_DIM_HIDDEN, UP_DIM_GDN_VALUE,
     UP_INIT_RESIDUAL, UP_STREAM_GDN_OUT, 1, {QN_PART(UP_DIM_HIDDEN, "ssm_out", "linear_attn.out_proj")}},

    /* MoE (C.8): router, stacked experts [gate; up] and down, the gated shared expert */
    QN_NORM(UP_TENSOR_MLP_NORM, UP_BLOCK_MOE, "mlp_norm", "MoE norm", UP_DIM_HIDDEN, "post_attention_norm",
            "post_attention_layernorm", true),
    {UP_TENSOR_MOE_ROUTER, UP_BLOCK_MOE, "router", "MoE router", UP_DIM_EXPERTS, UP_DIM_HIDDEN, UP_INIT_FAN_IN,
     UP_STREAM_MOE_ROUTER, 1, {QN_PART(UP_DIM_EXPERTS, "ffn_gate_inp", "mlp.gate")}},
    {UP_TENSOR_MOE_GATE_UP, UP_BLOCK_MOE, "experts_gate_up", "experts' gate/up projections", UP_DIM_MOE_GATE_UP,
     UP_DIM_HIDDEN, UP_INIT_FAN_IN, UP_STREAM_MOE_GATE_UP, 2,
     {QN_PART(UP_DIM_MOE_INTER, "ffn_gate_exps", "mlp.experts.*.gate_proj"),
      QN_PART(UP_DIM_MOE_INTER, "ffn_up_exps", "mlp.experts.*.up_proj")}},
    {UP_TENSOR_MOE_DOWN, UP_BLOCK_MOE, "experts_down", "experts' down projections", UP_DIM_HIDDEN, UP_DIM_MOE_INTER,
     UP_INIT_RESIDUAL, UP_STREAM_MOE_DOWN, 1, {QN_PART(UP_DIM_HIDDEN, "ffn_down_exps", "mlp.experts.*.down_proj")}},
    {UP_TENSOR_SHARED_GATE_UP, UP_BLOCK_MOE, "shared_gate_up", "shared expert gate/up projection",
     UP_DIM_SHARED_GATE_UP, UP_DIM_HIDDEN, UP_INIT_FAN_IN, UP_STREAM_SHARED_GATE_UP, 2,
     {QN_PART(UP_DIM_SHARED_INTER, "ffn_gate_shexp", "mlp.shared_expert.gate_proj"),
      QN_PART(UP_DIM_SHARED_INTER, "ffn_up_shexp", "mlp.shared_expert.up_proj")}},
    {UP_TENSOR_SHARED_DOWN, UP_BLOCK_MOE, "shared_down", "shared expert down projection", UP_DIM_HIDDEN,
     UP_DIM_SHARED_INTER, UP_INIT_RESIDUAL, UP_STREAM_SHARED_DOWN, 1,
     {QN_PART(UP_DIM_HIDDEN, "ffn_down_shexp", "mlp.shared_expert.down_proj")}},
    {UP_TENSOR_SHARED_GATE, UP_BLOCK_MOE, "shared_gate", "shared expert gate", UP_DIM_ONE, UP_DIM_HIDDEN,
     UP_INIT_FAN_IN, UP_STREAM_SHARED_GATE, 1, {QN_PART(UP_DIM_ONE, "ffn_gate_inp_shexp", "mlp.shared_expert_gate")}},
};

/* Rows the checkpoints interleave, kept apart in the engine (arch.h's up_row_order). */
static const up_tensor_part_layout qwen3_next_part_layouts[] = {
    {UP_TENSOR_ATTN_QKV, 0, UP_ROWS_HEAD_PAIR_FIRST, UP_ROWS_HEAD_PAIR_FIRST, false},
    {UP_TENSOR_ATTN_GATE, 0, UP_ROWS_HEAD_PAIR_SECOND, UP_ROWS_HEAD_PAIR_SECOND, false},
    {UP_TENSOR_GDN_QKVZ, 0, UP_ROWS_AS_STORED, UP_ROWS_GDN_QKV, false},
    {UP_TENSOR_GDN_QKVZ, 1, UP_ROWS_AS_STORED, UP_ROWS_GDN_Z, false},
    {UP_TENSOR_GDN_BA, 0, UP_ROWS_GDN_B, UP_ROWS_GDN_B, false},
    {UP_TENSOR_GDN_BA, 1, UP_ROWS_GDN_A, UP_ROWS_GDN_A, false},
    {UP_TENSOR_GDN_A_LOG, 0, UP_ROWS_AS_STORED, UP_ROWS_AS_STORED, true},
    {UP_TENSOR_GDN_DT_BIAS, 0, UP_ROWS_AS_STORED, UP_ROWS_AS_STORED, true},
};

static const up_tensor_role qwen3_next_expert_stacks[] = {UP_TENSOR_MOE_GATE_UP, UP_TENSOR_MOE_DOWN};

/* The kernels' limits as config limits: the CUDA conv keeps at most 8 taps, the CUDA
 * delta rule heads of at most 128, and its router one row of probabilities in 48 KiB
 * of shared memory (12288 experts). */
enum { QN_MAX_CONV_WIDTH = 8, QN_MAX_LINEAR_HEAD_DIM = 128, QN_MAX_EXPERTS = 12288 };

static bool qwen3_next_check_config(const up_model_config *cfg, char *err, size_t err_size) {
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    if (cfg->layer_kind[l] != UP_LAYER_FULL_ATTENTION && cfg->layer_kind[l] != UP_LAYER_LINEAR_ATTENTION)
      return up_error(err, err_size, "model %s: qwen3_next layer %d is neither full nor linear attention", cfg->name,
                      (int)l);
    if (cfg->mlp_kind[l] != UP_MLP_MOE)
      return up_error(err, err_size, "model %s: qwen3_next layer %d is not an MoE layer (every layer is: "
                      "decoder_sparse_step 1, no mlp_only_layers)", cfg->name, (int)l);
  }
  if (!cfg->attn_output_gate)
    return up_error(err, err_size, "model %s: qwen3_next full attention without its output gate is not supported",
                    cfg->name);
  if (cfg->linear_key_heads < 1 || cfg->linear_value_heads < cfg->linear_key_heads ||
      cfg->linear_value_heads % cfg->linear_key_heads != 0)
    return up_error(err, err_size, "model %s: %d linear value heads are not a multiple of %d linear key heads",
                    cfg->name, (int)cfg->linear_value_heads, (int)cfg->linear_key_heads);
  if (cfg->linear_head_dim < 1 || cfg->linear_head_dim > QN_MAX_LINEAR_HEAD_DIM)
    return up_error(err, err_size, "model %s: linear head dim %d (must be 1..%d)", cfg->name,
                    (int)cfg->linear_head_dim, QN_MAX_LINEAR_HEAD_DIM);
  if (cfg->linear_conv_width < 1 || cfg->linear_conv_width > QN_MAX_CONV_WIDTH)
    return up_error(err, err_size, "model %s: linear conv kernel of %d taps (must be 1..%d)", cfg->name,
                    (int)cfg->linear_conv_width, QN_MAX_CONV_WIDTH);
  if (cfg->n_experts < 1 || cfg->n_experts > QN_MAX_EXPERTS)
    return up_error(err, err_size, "model %s: %d experts (must be 1..%d)", cfg->name, (int)cfg->n_experts,
                    QN_MAX_EXPERTS);
  if (cfg->n_experts_per_token < 1 || cfg->n_experts_per_token > cfg->n_experts)
    return up_error(err, err_size, "model %s: %d experts per token (top-k) of %d experts (must be 1..%d)", cfg->name,
                    (int)cfg->n_experts_per_token, (int)cfg->n_experts, (int)cfg->n_experts);
  if (cfg->moe_intermediate < 1 || cfg->shared_expert_intermediate < 1)
    return up_error(err, err_size, "model %s: expert intermediate %d and shared expert intermediate %d must be "
                    "positive", cfg->name, (int)cfg->moe_intermediate, (int)cfg->shared_expert_intermediate);
  return true;
}

/* The layer's mixer by its kind (checked by qwen3_next_check_config), then the MoE. */
static int32_t qwen3_next_layer_blocks(const up_model_config *cfg, int32_t layer,
                                       up_block_kind blocks[UP_MAX_LAYER_BLOCKS]) {
  blocks[0] = cfg->layer_kind[layer] == UP_LAYER_LINEAR_ATTENTION ? UP_BLOCK_DELTANET : UP_BLOCK_ATTENTION;
  blocks[1] = UP_BLOCK_MOE;
  return 2;
}

const up_arch up_arch_qwen3_next = {
    .name = "qwen3next", /* GGUF general.architecture; Hugging Face model_type qwen3_next */
    .hf_layer_prefix = "model.layers.",
    .tensors = qwen3_next_tensors,
    .n_tensors = (int32_t)(sizeof qwen3_next_tensors / sizeof qwen3_next_tensors[0]),
    .layer_blocks = qwen3_next_layer_blocks,
    .check_config = qwen3_next_check_config,
    .part_layouts = qwen3_next_part_layouts,
    .n_part_layouts = (int32_t)(sizeof qwen3_next_part_layouts / sizeof qwen3_next_part_layouts[0]),
    .expert_stacks = qwen3_next_expert_stacks,
    .n_expert_stacks = (int32_t)(sizeof qwen3_next_expert_stacks / sizeof qwen3_next_expert_stacks[0]),
};
