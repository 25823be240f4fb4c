/* test_qwen3_next.c — the Qwen3-Next forward on the CPU backend (tiny-qwen3-next:
 * DeltaNet layers 0-2 and 4-6, gated attention at 3 and 7, MoE everywhere): prefill then
 * decode gives the logits of prefilling the longer prompt; a packed batch mixing
 * prefill and decode gives each request its logits alone; one prefill (the chunked
 * delta rule) gives the logits of feeding the prompt token by token (the recurrence);
 * the recurrent state slots as the layer memory books them; configs the architecture
 * does not allow are refused with a message. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/memory/memory_layout.h"
#include "engine/model/layer_cost.h"
#include "tests/qwen3_next_harness.h"

/* fp32 throughout: the chunked and token-wise orders differ by rounding only. */
#define QN_TOL 2e-4

Test(qwen3_next, prefill_then_decode_equals_longer_prefill) {
  qn_harness h;
  qn_init(&h);
  const int32_t n = 130, V = h.cfg.vocab; /* past two chunks of 64 */
  int32_t tokens[132];
  qn_prompt(tokens, n + 2, 11, V);
  float *decoded = malloc(sizeof(float) * (size_t)V), *whole = malloc(sizeof(float) * (size_t)V);
  const int32_t a = qn_admit(&h, n, n + 4);
  up_forward_seq seq = qn_seq(&h, a, tokens, n, 0);
  qn_forward(&h, &qn_dense, &seq, 1, decoded, NULL);
  for (int32_t t = n; t < n + 2; ++t) {
    seq = qn_seq(&h, a, &tokens[t], 1, t);
    qn_forward(&h, &qn_dense, &seq, 1, decoded, NULL);
  }
  const int32_t b = qn_admit(&h, n + 2, n + 4);
  seq = qn_seq(&h, b, tokens, n + 2, 0);
  qn_forward(&h, &qn_dense, &seq, 1, whole, NULL);
  const double d = qn_rel_diff(decoded, whole, V);
  cr_assert_lt(d, QN_TOL, "decode after prefill differs from the longer prefill by %g", d);
  free(decoded);
  free(whole);
  qn_free(&h);
}

Test(qwen3_next, prefill_equals_token_by_token) {
  qn_harness h;
  qn_init(&h);
  const int32_t n = 150, V = h.cfg.vocab;
  int32_t tokens[150];
  qn_prompt(tokens, n, 5, V);
  float *chunked = malloc(sizeof(float) * (size_t)V), *stepped = malloc(sizeof(float) * (size_t)V);
  const int32_t a = qn_admit(&h, n, n + 1);
  up_forward_seq seq = qn_seq(&h, a, tokens, n, 0);
  qn_forward(&h, &qn_dense, &seq, 1, chunked, NULL);
  const int32_t b = qn_admit(&h, 1, n + 1);
  for (int32_t t = 0; t < n; ++t) {
    seq = qn_seq(&h, b, &tokens[t], 1, t);
    qn_forward(&h, &qn_dense, &seq, 1, stepped, NULL);
  }
  const double d = qn_rel_diff(chunked, stepped, V);
  cr_assert_lt(d, QN_TOL, "chunked prefill differs from the token-by-token recurrence by %g", d);
  for (int32_t i = 0; i < V; ++i) cr_assert(isfinite(chunked[i]));
  free(chunked);
  free(stepped);
  qn_free(&h);
}

/* Three requests: A prefills 70 tokens, B decodes after a 40-token prefill, C prefills
 * 131 tokens; together in one step, then each alone in a fresh harness. */
Test(qwen3_next, mixed_batch_equals_each_alone) {
  const int32_t lens[3] = {70, 41, 131};
  int32_t *prompts[3];
  for (int32_t s = 0; s < 3; ++s) {
    prompts[s] = malloc(sizeof(int32_t) * (size_t)lens[s]);
    qn_prompt(prompts[s], lens[s], 20 + (uint32_t)s, 512);
  }
  qn_harness h;
  qn_init(&h);
  const int32_t V = h.cfg.vocab;
  float *batch = malloc(sizeof(float) * 3 * (size_t)V), *alone = malloc(sizeof(float) * (size_t)V);
  int32_t slots[3];
  for (int32_t s = 0; s < 3; ++s) slots[s] = qn_admit(&h, lens[s], lens[s] + 2);
  up_forward_seq seq = qn_seq(&h, slots[1], prompts[1], 40, 0);
  qn_forward(&h, &qn_dense, &seq, 1, batch, NULL);
  const up_forward_seq seqs[3] = {qn_seq(&h, slots[0], prompts[0], 70, 0), qn_seq(&h, slots[1], &prompts[1][40], 1, 40),
                                  qn_seq(&h, slots[2], prompts[2], 131, 0)};
  qn_forward(&h, &qn_dense, seqs, 3, batch, NULL);
  qn_free(&h);
  for (int32_t s = 0; s < 3; ++s) {
    qn_harness one;
    qn_init(&one);
    const int32_t slot = qn_admit(&one, lens[s], lens[s] + 2);
    seq = qn_seq(&one, slot, prompts[s], lens[s], 0);
    qn_forward(&one, &qn_dense, &seq, 1, alone, NULL);
    const double d = qn_rel_diff(batch + (size_t)s * V, alone, V);
    cr_assert_lt(d, QN_TOL, "request %d: batched logits differ from alone by %g", (int)s, d);
    qn_free(&one);
    free(prompts[s]);
  }
  free(batch);
  free(alone);
}

/* Per DeltaNet layer: (width - 1) x (2 key + value) channels in the activation dtype,
 * plus value heads x d x d fp32 (HYBRIDS.md C.5). */
Test(qwen3_next, recurrent_state_slots) {
  const up_model_config *big = up_model_preset_find("qwen3-next-80b-a3b");
  /* 36 DeltaNet layers x (3 x 8192 bf16 + 32 x 128 x 128 fp32) */
  cr_assert_eq(up_model_recurrent_state_bytes(big, UP_DTYPE_BF16), 36LL * (3 * 8192 * 2 + 32 * 128 * 128 * 4));
  up_layer_cost cost;
  up_layer_cost_of(big, UP_DTYPE_BF16, 3, &cost);
  cr_assert_eq(cost.state_bytes, 0);
  cr_assert_eq(cost.kv_entry_bytes, 2 * 2 * 256 * 2, "full-attention layer: K and V of 2 heads of 256");
  up_layer_cost_of(big, UP_DTYPE_BF16, 0, &cost);
  cr_assert_eq(cost.kv_entry_bytes, 0, "DeltaNet layers hold no KV");
  cr_assert_eq(cost.state_bytes, 3 * 8192 * 2 + 32 * 128 * 128 * 4);
  /* active: router 512 x 2048, 10 of 512 experts and the shared one (3 x 512 x 2048 each) */
  cr_assert_eq(cost.ffn_active_params, 512LL * 2048 + 11LL * 3 * 512 * 2048);
  cr_assert_eq(cost.ffn_gemm_params, 512LL * 2048 + 513LL * 3 * 512 * 2048);

  const up_model_config *cfg = up_model_preset_find("tiny-qwen3-next");
  up_memory_layout layout;
  char err[256];
  cr_assert(up_memory_layout_from_config(cfg, UP_DTYPE_F32, QN_BLOCK, &layout, err, sizeof err), "%s", err);
  const int64_t per_layer = 3 * (2 * 2 * 16 + 4 * 16) * 4 + 4 * 16 * 16 * 4;
  cr_assert_eq(up_memory_layout_layers_of(&layout, UP_MEMORY_RECURRENT), 6);
  cr_assert_eq(up_memory_layout_layers_of(&layout, UP_MEMORY_FULL_KV), 2);
  cr_assert_eq(up_memory_layout_state_bytes(&layout), 6 * per_layer);
  const up_memory_need need = up_memory_layout_need(&layout, 100, 10);
  cr_assert_eq(need.state_slots, 1);
  cr_assert_eq(need.bytes[UP_MEMORY_RECURRENT], 6 * per_layer);
  cr_assert_eq(need.blocks[UP_MEMORY_FULL_KV], 2 * 7, "two full layers of ceil(109 / 16) blocks");
  /* Two state slots and room for many more blocks: the third request waits on its state. */
  const up_layer_memory_capacity capacity = {.kv_blocks = 256, .max_seqs = 4, .max_blocks_per_seq = 16,
                                             .state_slots = 2};
  up_layer_memory *mem = up_layer_memory_create(&layout, &capacity);
  int32_t slots[3];
  for (int32_t i = 0; i < 3; ++i) slots[i] = up_layer_memory_acquire(mem);
  cr_assert(up_layer_memory_reserve(mem, slots[0], 100, 110));
  cr_assert(up_layer_memory_reserve(mem, slots[1], 100, 110));
  cr_assert_not(up_layer_memory_reserve(mem, slots[2], 100, 110), "a third state slot from a pool of two");
  up_layer_memory_usage u = up_layer_memory_usage_now(mem);
  cr_assert_eq(u.state_slots_in_use, 2);
  cr_assert_eq(u.bytes_held[UP_MEMORY_RECURRENT], 2 * 6 * per_layer);
  cr_assert_neq(up_layer_memory_state_slot(mem, slots[0]), up_layer_memory_state_slot(mem, slots[1]));
  cr_assert_eq(up_layer_memory_state_slot(mem, slots[2]), -1);
  up_layer_memory_release(mem, slots[0]);
  cr_assert(up_layer_memory_reserve(mem, slots[2], 100, 110), "the released state slot serves the third");
  u = up_layer_memory_usage_now(mem);
  cr_assert_eq(u.state_slots_in_use, 2);
  cr_assert_eq(u.state_slots_peak, 2);
  up_layer_memory_release(mem, slots[1]);
  up_layer_memory_release(mem, slots[2]);
  cr_assert_eq(up_layer_memory_usage_now(mem).state_slots_in_use, 0);
  up_layer_memory_destroy(mem);
}

static void expect_refused(const up_model_config *cfg, const char *pattern) {
  char err[512] = "";
  cr_assert_not(up_model_config_validate(cfg, err, sizeof err), "config accepted; expected '%s'", pattern);
  cr_assert(strstr(err, pattern), "message '%s' lacks '%s'", err, pattern);
}

Test(qwen3_next, bad_configs_are_refused) {
  const up_model_config *preset = up_model_preset_find("qwen3-next-80b-a3b");
  char err[512] = "";
  cr_assert(up_model_config_validate(preset, err, sizeof err), "%s", err);
  up_model_config cfg = *preset;
  cfg.n_experts_per_token = 513;
  expect_refused(&cfg, "513 experts per token (top-k) of 512 experts");
  cfg.n_experts_per_token = 0;
  expect_refused(&cfg, "experts per token");
  cfg = *preset;
  cfg.n_experts = 0;
  expect_refused(&cfg, "0 experts");
  cfg = *preset;
  cfg.linear_value_heads = 24;
  cfg.linear_key_heads = 16;
  expect_refused(&cfg, "24 linear value heads are not a multiple of 16");
  cfg = *preset;
  cfg.linear_head_dim = 256;
  expect_refused(&cfg, "linear head dim 256");
  cfg = *preset;
  cfg.mlp_kind[5] = UP_MLP_SWIGLU;
  expect_refused(&cfg, "layer 5 is not an MoE layer");
  cfg = *preset;
  cfg.drop_layers[0] = 6;
  expect_refused(&cfg, "drop layer 6 is a linear-attention layer");
  /* --layers keeps the 3:1 pattern or is refused */
  cfg = *preset;
  cr_assert_not(up_model_config_truncate(&cfg, 6));
  up_model_config_truncate_error(preset, 6, err, sizeof err);
  cr_assert(strstr(err, "--layers 6 breaks model qwen3-next-80b-a3b's layer pattern"), "%s", err);
  cr_assert(up_model_config_truncate(&cfg, 8));
  cr_assert_str_eq(cfg.name, "qwen3-next-80b-a3b-8layers");
  cr_assert(up_model_config_validate(&cfg, err, sizeof err), "%s", err);
  cr_assert_eq(cfg.n_drop_layers, 1, "of the reference's 7, 11, ..., 43 only 7 is within 8 layers");
  cr_assert_eq(cfg.drop_layers[0], 7);
  cr_assert_eq(cfg.layer_kind[7], UP_LAYER_FULL_ATTENTION);
  cr_assert_eq(cfg.layer_kind[6], UP_LAYER_LINEAR_ATTENTION);
}
