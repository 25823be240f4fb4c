/* test_layer_cost.c — engine/model/layer_cost.h against the formulas it replaced, on
 * every Llama preset (tiny-llama, llama-3.1-8b, llama-3.1-70b): parameter counts, the dense
 * prefill FLOPs (model_config.c's count), KV entry, block and dense bytes (the point
 * engine's records and point_memory.c), each layer's GEMM shapes (kernel_cases.c's
 * four GEMMs) and the speed model's per-request FLOPs — the same numbers, compared
 * for equality, not within a tolerance. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "engine/model/layer_cost.h"
#include "engine/model/model_config.h"
#include "engine/serve/request.h"
#include "launcher/sweep/point_memory.h"
#include "launcher/sweep/speed_model.h"

/* --- the formulas as they were written before layer_cost.c --------------------- */

static int64_t old_body_params(const up_model_config *cfg) {
  const int64_t h = cfg->hidden;
  const int64_t per_layer = 2 * h + h * up_model_config_qkv_dim(cfg) + h * (int64_t)cfg->n_heads * cfg->head_dim +
                            3 * h * cfg->intermediate;
  return per_layer * cfg->n_layers + h;
}

static double old_prefill_flops(const up_model_config *cfg, int64_t prompt_len) {
  const double L = (double)prompt_len;
  return 2.0 * (double)old_body_params(cfg) * L + 2.0 * cfg->hidden * (double)cfg->vocab +
         (double)cfg->n_layers * 2.0 * L * L * cfg->n_heads * cfg->head_dim;
}

static double old_request_flops(const up_model_config *cfg, const int32_t *entering, int32_t kept_after_last) {
  const double h = cfg->hidden, q_dim = (double)cfg->n_heads * cfg->head_dim;
  const double attn_block_params = h * up_model_config_qkv_dim(cfg) + h * q_dim;
  const double mlp_params = 3.0 * h * cfg->intermediate;
  double flops = 2.0 * h * cfg->vocab;
  for (int32_t l = 0; l < cfg->n_layers; ++l) {
    const double n = entering[l];
    const double after = l + 1 < cfg->n_layers ? entering[l + 1] : kept_after_last;
    flops += 2.0 * attn_block_params * n + 2.0 * n * n * q_dim + 2.0 * mlp_params * after;
  }
  return flops;
}

/* The formulas above are Llama's; Gemma 3's costs are test_gemma3.c's. */
static bool is_llama(const up_model_config *c) { return strcmp(c->architecture, "llama") == 0; }

static const int64_t prompt_lengths[] = {1, 2, 7, 1000, 4097, 8192, 32768, 100003, 131071, 131072};
enum { N_LENGTHS = sizeof prompt_lengths / sizeof prompt_lengths[0] };

Test(layer_cost, parameters_and_prefill_flops_as_before) {
  for (int32_t i = 0; i < up_model_preset_count(); ++i) {
    const up_model_config *c = up_model_preset_at(i);
    if (!is_llama(c)) continue;
    cr_assert_eq(up_model_body_params(c), old_body_params(c), "%s", c->name);
    cr_assert_eq(up_model_total_params(c), old_body_params(c) + 2 * (int64_t)c->vocab * c->hidden, "%s", c->name);
    for (int32_t k = 0; k < N_LENGTHS; ++k) {
      const double now = up_model_prefill_flops(c, prompt_lengths[k]), before = old_prefill_flops(c, prompt_lengths[k]);
      cr_assert(now == before, "%s at %lld tokens: %.17g FLOPs, before %.17g", c->name, (long long)prompt_lengths[k],
                now, before);
    }
  }
}

Test(layer_cost, per_layer_parameters_split_by_block) {
  for (int32_t i = 0; i < up_model_preset_count(); ++i) {
    const up_model_config *c = up_model_preset_at(i);
    if (!is_llama(c)) continue;
    const int64_t h = c->hidden, q = (int64_t)c->n_heads * c->head_dim;
    for (int32_t l = 0; l < c->n_layers; ++l) {
      up_layer_cost cost;
      up_layer_cost_of(c, UP_DTYPE_BF16, l, &cost);
      cr_assert_eq(cost.mixer_gemm_params, h * up_model_config_qkv_dim(c) + h * q, "%s layer %d", c->name, (int)l);
      cr_assert_eq(cost.ffn_gemm_params, 3 * h * c->intermediate);
      cr_assert_eq(cost.vector_params, 2 * h);
      cr_assert_eq(cost.window, 0);
      cr_assert_eq(cost.state_bytes, 0);
    }
  }
}

Test(layer_cost, kv_bytes_as_before) {
  static const up_dtype dtypes[] = {UP_DTYPE_F32, UP_DTYPE_BF16};
  for (int32_t i = 0; i < up_model_preset_count(); ++i) {
    const up_model_config *c = up_model_preset_at(i);
    if (!is_llama(c)) continue;
    for (int32_t d = 0; d < 2; ++d) {
      const int64_t es = (int64_t)up_dtype_size(dtypes[d]);
      const int64_t entry = 2 * (int64_t)c->n_kv_heads * c->head_dim * es;
      cr_assert_eq(up_model_kv_entry_bytes(c, dtypes[d]), entry, "%s", c->name);
      for (int32_t l = 0; l < c->n_layers; ++l) {
        up_layer_cost cost;
        up_layer_cost_of(c, dtypes[d], l, &cost);
        cr_assert_eq(cost.kv_entry_bytes, entry);
      }
      /* point_memory.c: 2 x block_tokens x n_kv_heads x head_dim x element size. */
      for (int32_t bt = 1; bt <= 256; bt *= 4)
        cr_assert_eq(up_point_kv_block_bytes(c, dtypes[d], bt),
                     2 * (int64_t)bt * c->n_kv_heads * c->head_dim * es);
      /* point_engine.c: prompt x layers x entry. */
      for (int32_t k = 0; k < N_LENGTHS; ++k)
        cr_assert_eq(up_model_dense_kv_bytes(c, dtypes[d], prompt_lengths[k]),
                     prompt_lengths[k] * c->n_layers * entry);
    }
  }
}

Test(layer_cost, gemm_shapes_are_the_four_llama_gemms) {
  for (int32_t i = 0; i < up_model_preset_count(); ++i) {
    const up_model_config *c = up_model_preset_at(i);
    if (!is_llama(c)) continue;
    const struct { const char *name; int64_t n, k; } want[] = {
        {"qkv", up_model_config_qkv_dim(c), c->hidden},
        {"o", c->hidden, (int64_t)c->n_heads * c->head_dim},
        {"gate_up", 2LL * c->intermediate, c->hidden},
        {"down", c->hidden, c->intermediate},
    };
    for (int32_t l = 0; l < c->n_layers; ++l) {
      up_gemm_shape g[UP_MAX_LAYER_TENSORS];
      cr_assert_eq(up_layer_gemm_shapes(c, l, g), 4, "%s layer %d", c->name, (int)l);
      for (int32_t k = 0; k < 4; ++k) {
        cr_assert_str_eq(g[k].name, want[k].name);
        cr_assert_eq(g[k].n, want[k].n, "%s %s n", c->name, want[k].name);
        cr_assert_eq(g[k].k, want[k].k, "%s %s k", c->name, want[k].name);
      }
    }
  }
}

Test(layer_cost, qwen3_next_gemms_and_delta_rule_flops) {
  const up_model_config *c = up_model_preset_find("tiny-qwen3-next");
  up_gemm_shape g[UP_MAX_LAYER_TENSORS];
  /* layer 0: DeltaNet then MoE; the conv's taps are no GEMM, the expert stacks one expert's */
  const char *deltanet[] = {"qkvz", "ba", "gdn_out", "router", "experts_gate_up", "experts_down", "shared_gate_up",
                            "shared_down"};
  cr_assert_eq(up_layer_gemm_shapes(c, 0, g), 8);
  for (int32_t i = 0; i < 8; ++i) cr_expect_str_eq(g[i].name, deltanet[i]);
  cr_expect_eq(g[4].n, 2 * c->moe_intermediate);
  cr_expect_eq(g[4].k, c->hidden);
  cr_expect_eq(g[4].experts, c->n_experts);
  cr_expect_eq(g[4].per_token, c->n_experts_per_token);
  cr_expect_eq(g[5].n, c->hidden);
  cr_expect_eq(g[0].experts, 0);
  cr_expect_eq(g[0].per_token, 0);
  /* layer 3: gated attention (query and gate apart) then MoE */
  cr_assert_eq(up_layer_gemm_shapes(c, 3, g), 8);
  cr_expect_str_eq(g[0].name, "qkv");
  cr_expect_str_eq(g[1].name, "gate");
  cr_expect_eq(g[1].n, (int64_t)c->n_heads * c->head_dim);
  cr_expect_str_eq(g[2].name, "o");
  /* the delta rule's share of a DeltaNet layer's mixer FLOPs: all but the conv's */
  const double d = c->linear_head_dim, conv = 2.0 * c->linear_conv_width * (2.0 * c->linear_key_heads + c->linear_value_heads) * d;
  cr_expect_float_eq(up_delta_rule_token_flops(c), c->linear_value_heads * (6.0 * d * d + 5.0 * 64 * d), 1e-9);
  cr_expect_float_eq(up_layer_linear_attention_flops(c, 0), conv + up_delta_rule_token_flops(c), 1e-9);
  cr_expect(up_layer_linear_attention_flops(c, 3) == 0.0, "a full-attention layer");
}

Test(layer_cost, attention_flops_count_the_causal_half) {
  const up_model_config *c = up_model_preset_find("llama-3.1-8b");
  const double hd = (double)c->n_heads * c->head_dim;
  for (int32_t k = 0; k < N_LENGTHS; ++k) {
    const double L = (double)prompt_lengths[k];
    cr_assert(up_layer_attention_flops(c, 0, prompt_lengths[k], prompt_lengths[k]) == 2.0 * L * L * hd);
  }
  /* One query over 1000 keys: 999.5 scores, two matmuls of 2 head_dim FLOPs each per head. */
  cr_assert(up_layer_attention_flops(c, 3, 1, 1000) == 4.0 * 999.5 * hd);
}

/* The speed model over requests whose layers saw different token counts: the same
 * dense and dropped FLOPs as the formula it replaced, so the same ratio. */
Test(layer_cost, speed_model_flops_as_before) {
  for (int32_t i = 0; i < up_model_preset_count(); ++i) {
    const up_model_config *c = up_model_preset_at(i);
    if (!is_llama(c)) continue;
    enum { N_REQ = 3 };
    up_request_record recs[N_REQ];
    int32_t rows[N_REQ * UP_MAX_LAYERS];
    const int32_t prompts[N_REQ] = {8192, 1000, 131071};
    double dense = 0.0, dropped = 0.0;
    for (int32_t r = 0; r < N_REQ; ++r) {
      memset(&recs[r], 0, sizeof recs[r]);
      recs[r].status = UP_REQUEST_FINISHED;
      recs[r].prompt_len = prompts[r];
      int32_t n = prompts[r];
      for (int32_t l = 0; l < c->n_layers; ++l) {
        rows[r * c->n_layers + l] = n;
        if (l % 3 == 1) n = n / 2 + 1; /* a drop after every third layer */
      }
      recs[r].kept_len = n;
      int32_t all[UP_MAX_LAYERS];
      for (int32_t l = 0; l < c->n_layers; ++l) all[l] = prompts[r];
      dense += old_request_flops(c, all, prompts[r]);
      dropped += old_request_flops(c, rows + r * c->n_layers, n);
    }
    const double now = up_speed_model_predicted_speedup(c, recs, rows, N_REQ);
    cr_assert(now == dense / dropped, "%s: %.17g, before %.17g", c->name, now, dense / dropped);
    cr_assert_gt(now, 1.0);
  }
}
