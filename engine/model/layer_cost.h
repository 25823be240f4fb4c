/* layer_cost.h — the one place a model's geometry and cost are computed from: per
 * layer, the memory a request holds (KV entry bytes, window, recurrent state) and the
 * work a token does (GEMM parameters, attention FLOPs); per model, the parameter
 * counts, the KV pool's entry, a prompt's dense KV bytes and its dense prefill FLOPs
 * as ../shared/ALGORITHMS.md counts them. Weights come from the architecture's tensor
 * table (arch.h), so the engine's records, the memory fit, the speed model and
 * --kernels agree with the weights the forward pass allocates. Arithmetic only. */
#ifndef UP_LAYER_COST_H
#define UP_LAYER_COST_H

#include <stdint.h>

#include "core/dtype.h"
#include "engine/model/arch.h"
#include "engine/model/model_config.h"

typedef struct up_layer_cost {
  int64_t mixer_gemm_params; /* matrices of the token mixer (attention: the QKV and output projections) */
  int64_t ffn_gemm_params;   /* matrices of the feed-forward block (gate, up, down; every expert of an MoE) */
  int64_t ffn_active_params; /* of those, the ones each token multiplies: an MoE's router, its top-k experts
                              * and its shared expert; all of them in a dense MLP */
  double mixer_token_flops;  /* a linear-attention mixer's FLOPs per token beyond its GEMMs (conv, delta rule) */
  int64_t vector_params;     /* norm weights: no GEMM, but parameters */
  int64_t kv_entry_bytes;    /* K and V of one token (0: the layer keeps no KV) */
  int32_t window;            /* KV entries kept per sequence (0: all) */
  int64_t state_bytes;       /* fixed recurrent state per sequence (0: none) */
} up_layer_cost;

void up_layer_cost_of(const up_model_config *cfg, up_dtype dtype, int32_t layer, up_layer_cost *out);

/* Cache entries each query of `layer` sees (itself and the window - 1 before it); 0 for
 * full attention. The attention op, the layer memory and the cost all take it from here. */
int32_t up_layer_window(const up_model_config *cfg, int32_t layer);
/* K and V of one token at an attention layer (any window): 2 x kv heads x head_dim x dtype. */
int64_t up_attention_kv_entry_bytes(const up_model_config *cfg, up_dtype dtype);

/* Attention FLOPs of q_len queries, the last of k_len causal positions, at one layer,
 * counted as ALGORITHMS.md does: two matmuls of 2 head_dim FLOPs per score per query
 * head, over q_len k_len - q_len^2 / 2 scores (a prompt's L^2 / 2 triangle, diagonal
 * not counted); so a whole prompt of L tokens costs 2 L^2 n_heads head_dim. */
double up_layer_attention_flops(const up_model_config *cfg, int32_t layer, int64_t q_len, int64_t k_len);

/* Gated DeltaNet FLOPs per token at a linear-attention layer beyond its projections:
 * the conv (2 width per channel) and, per value head of d = dk = dv dims, the chunked
 * delta rule with chunks of C = 64 (HYBRIDS.md C.4) counted as 6 d^2 (state read-out,
 * correction and update) + 5 C d (the intra-chunk K K^T, T V, T K and masked Q K^T V'
 * products over each chunk's lower triangle); 0 at other layers. A decode step's
 * recurrence (7 d^2 per head) is within the same count. */
double up_layer_linear_attention_flops(const up_model_config *cfg, int32_t layer);
/* Bytes of one sequence's recurrent state at a linear-attention layer: the conv state
 * (width - 1 inputs of every q, k, v channel, activation dtype) and the fp32 delta-rule
 * state (value heads x d x d); 0 at other layers. */
int64_t up_layer_recurrent_state_bytes(const up_model_config *cfg, up_dtype dtype, int32_t layer);

/* One GEMM of a layer: out[m][n] = in[m][k] x weight[n][k]^T, m being the token count. */
typedef struct up_gemm_shape {
  const char *name; /* the weight's short name in its architecture's table ("qkv") */
  int64_t n, k;
} up_gemm_shape;

/* The GEMMs a token runs through at `layer`, in forward order; returns how many. */
int32_t up_layer_gemm_shapes(const up_model_config *cfg, int32_t layer, up_gemm_shape out[UP_MAX_LAYER_TENSORS]);

/* Parameters, counted as ALGORITHMS.md does: all but the input embedding and LM head. */
int64_t up_model_body_params(const up_model_config *cfg);
/* Every parameter, embedding and LM head included (for memory sizing). */
int64_t up_model_total_params(const up_model_config *cfg);

/* Bytes of one KV-pool entry (one token's K and V at one layer): the largest of any layer's. */
int64_t up_model_kv_entry_bytes(const up_model_config *cfg, up_dtype dtype);
/* KV bytes a prompt of prompt_len tokens holds at every layer when nothing is dropped. */
int64_t up_model_dense_kv_bytes(const up_model_config *cfg, up_dtype dtype, int64_t prompt_len);

/* Dense prefill FLOPs of one prompt of L tokens: 2 x body parameters x L + the LM head
 * on the last token + each layer's attention over the prompt. UniPrefill runs are
 * credited the same dense FLOPs, so their rate reads as an effective rate. For an MoE
 * model the body parameters are the active ones (router, top-k and shared experts), and
 * linear-attention layers add their per-token delta-rule FLOPs. */
double up_model_prefill_flops(const up_model_config *cfg, int64_t prompt_len);

#endif
