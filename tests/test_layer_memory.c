/* test_layer_memory.c — the layer-memory door over its three kinds: full KV through the
 * door hands out the same blocks as the bare cache (Llama's behaviour), what
 * up_memory_layout_need says a request needs is what a reservation takes, the reasons
 * a request can never fit, recurrent state slots (exhaustion, all or nothing with the
 * blocks, reuse), counted entries, and the accounting (peak, bytes per kind). */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/memory/layer_memory.h"

enum { BT = 4, ENTRY_BYTES = 8, STATE_BYTES = 1000 };

/* Layers: full, sliding (W = 6), recurrent, full, sliding (W = 6). */
static up_memory_layout hybrid_layout(void) {
  up_memory_layout layout = {.n_layers = 5, .block_tokens = BT, .kv_entry_bytes = ENTRY_BYTES};
  const up_memory_kind kinds[5] = {UP_MEMORY_FULL_KV, UP_MEMORY_SLIDING_KV, UP_MEMORY_RECURRENT, UP_MEMORY_FULL_KV,
                                   UP_MEMORY_SLIDING_KV};
  for (int32_t l = 0; l < 5; ++l) {
    layout.kind[l] = kinds[l];
    if (kinds[l] == UP_MEMORY_SLIDING_KV) layout.window[l] = 6;
    if (kinds[l] == UP_MEMORY_RECURRENT) layout.state_bytes[l] = STATE_BYTES;
  }
  return layout;
}

static up_layer_memory *make_memory(const up_memory_layout *layout, int32_t kv_blocks, int32_t max_seqs,
                                    int32_t state_slots) {
  const up_layer_memory_capacity capacity = {.kv_blocks = kv_blocks, .max_seqs = max_seqs,
                                             .max_blocks_per_seq = 32, .state_slots = state_slots};
  return up_layer_memory_create(layout, &capacity);
}

Test(layer_memory, full_kv_hands_out_the_bare_caches_blocks) {
  const up_memory_layout layout = {.n_layers = 3, .block_tokens = BT, .kv_entry_bytes = ENTRY_BYTES};
  up_layer_memory *mem = make_memory(&layout, 40, 3, 0);
  up_kv_cache *bare = up_kv_cache_create(40, BT, 3, 3, 32);
  /* The scheduler's pattern: admit, prefill (with a drop at layer 2), trim, finish. */
  const int32_t prompts[3] = {9, 17, 5}, outputs[3] = {4, 2, 6}, kept[3] = {9, 6, 5};
  for (int32_t r = 0; r < 3; ++r) {
    const int32_t a = up_layer_memory_acquire(mem), b = up_kv_cache_acquire_slot(bare);
    cr_assert_eq(a, b);
    const int64_t life = prompts[r] + outputs[r] - 1;
    cr_assert(up_layer_memory_reserve(mem, a, prompts[r], life));
    cr_assert(up_kv_cache_reserve(bare, b, life));
    for (int32_t l = 0; l < 3; ++l) {
      const int32_t rows = l == 2 ? kept[r] : prompts[r];
      up_layer_memory_append(mem, a, l, rows);
      up_kv_cache_append(bare, b, l, rows);
      cr_assert_eq(up_layer_memory_trim(mem, a, l, rows + outputs[r] - 1),
                   up_kv_cache_trim(bare, b, l, rows + outputs[r] - 1));
    }
    if (r == 1) {
      up_layer_memory_release(mem, 0);
      up_kv_cache_release_slot(bare, 0);
    }
  }
  /* Slot 0 now holds the third request, in the blocks the first gave back. */
  const up_kv_cache *view = up_layer_memory_kv(mem);
  for (int32_t s = 0; s < 3; ++s)
    for (int32_t l = 0; l < 3; ++l)
      cr_assert_arr_eq(up_kv_cache_block_table(view, s, l), up_kv_cache_block_table(bare, s, l),
                       sizeof(int32_t) * 32, "slot %d layer %d", s, l);
  cr_assert_eq(up_kv_cache_free_blocks(view), up_kv_cache_free_blocks(bare));
  cr_assert_eq(up_layer_memory_state_slot(mem, 1), -1);
  up_kv_cache_destroy(bare);
  up_layer_memory_destroy(mem);
}

Test(layer_memory, need_is_what_a_reservation_takes) {
  const up_memory_layout layout = hybrid_layout();
  /* 30 prompt + 11 output tokens: 40 entries, 10 blocks per full layer; a sliding
   * layer peaks at its prompt's 8 blocks and keeps the window's 3 while decoding. */
  const up_memory_need need = up_memory_layout_need(&layout, 30, 11);
  cr_assert_eq(need.table_blocks, 10);
  cr_assert_eq(need.blocks[UP_MEMORY_FULL_KV], 20);
  cr_assert_eq(need.blocks[UP_MEMORY_SLIDING_KV], 16);
  cr_assert_eq(need.blocks[UP_MEMORY_RECURRENT], 0);
  cr_assert_eq(need.resident_blocks[UP_MEMORY_FULL_KV], 20);
  cr_assert_eq(need.resident_blocks[UP_MEMORY_SLIDING_KV], 6);
  cr_assert_eq(need.bytes[UP_MEMORY_FULL_KV], 20 * BT * ENTRY_BYTES);
  cr_assert_eq(need.bytes[UP_MEMORY_SLIDING_KV], 16 * BT * ENTRY_BYTES);
  cr_assert_eq(need.bytes[UP_MEMORY_RECURRENT], STATE_BYTES);
  cr_assert_eq(need.state_slots, 1);

  up_layer_memory *mem = make_memory(&layout, 64, 2, 2);
  const int32_t slot = up_layer_memory_acquire(mem);
  cr_assert(up_layer_memory_reserve(mem, slot, 30, 40));
  const up_layer_memory_usage u = up_layer_memory_usage_now(mem);
  cr_assert_eq(u.blocks_in_use + u.blocks_promised, 36);
  cr_assert_eq(u.state_slots_in_use, 1);
  cr_assert_eq(up_layer_memory_state_slot(mem, slot), 0);
  up_layer_memory_destroy(mem);
}

Test(layer_memory, could_hold_names_what_is_too_small) {
  char why[256];
  const up_memory_layout full = {.n_layers = 4, .block_tokens = 16, .kv_entry_bytes = ENTRY_BYTES};
  up_layer_memory *mem = make_memory(&full, 64, 2, 0);
  up_memory_need need = up_memory_layout_need(&full, 400, 10); /* 26 blocks x 4 layers */
  cr_assert_not(up_layer_memory_could_hold(mem, &need, why, sizeof why));
  cr_assert_str_eq(why, "request needs 104 KV blocks (26 per layer x 4 layers), more than the 64 in the cache");
  need = up_memory_layout_need(&full, 100, 10);
  cr_assert(up_layer_memory_could_hold(mem, &need, why, sizeof why));
  up_layer_memory_destroy(mem);

  const up_memory_layout hybrid = hybrid_layout();
  mem = make_memory(&hybrid, 30, 2, 1);
  need = up_memory_layout_need(&hybrid, 30, 11); /* 20 full + 16 sliding */
  cr_assert_not(up_layer_memory_could_hold(mem, &need, why, sizeof why));
  cr_assert(strstr(why, "36 KV blocks at once") && strstr(why, "20 at 2 full-attention layers") &&
            strstr(why, "16 at 2 sliding-window layers") && strstr(why, "30 in the cache"), "%s", why);
  need = up_memory_layout_need(&hybrid, 130, 1); /* 33 blocks per table > 32 */
  cr_assert_not(up_layer_memory_could_hold(mem, &need, why, sizeof why));
  cr_assert(strstr(why, "33 KV blocks per layer") && strstr(why, "32 a sequence may hold"), "%s", why);
  up_layer_memory_destroy(mem);

  mem = make_memory(&hybrid, 64, 2, 0);
  need = up_memory_layout_need(&hybrid, 8, 2);
  cr_assert_not(up_layer_memory_could_hold(mem, &need, why, sizeof why));
  cr_assert(strstr(why, "recurrent-state slot"), "%s", why);
  up_layer_memory_destroy(mem);
}

Test(layer_memory, recurrent_slots_run_out_and_are_reused) {
  const up_memory_layout layout = hybrid_layout();
  up_layer_memory *mem = make_memory(&layout, 64, 3, 2);
  int32_t slots[3];
  for (int32_t i = 0; i < 3; ++i) slots[i] = up_layer_memory_acquire(mem);
  cr_assert(up_layer_memory_reserve(mem, slots[0], 8, 10));
  cr_assert(up_layer_memory_reserve(mem, slots[1], 8, 10));
  cr_assert_eq(up_layer_memory_state_slot(mem, slots[0]), 0);
  cr_assert_eq(up_layer_memory_state_slot(mem, slots[1]), 1);
  const up_layer_memory_usage before = up_layer_memory_usage_now(mem);
  /* Blocks are plentiful, state slots are not: the third takes nothing at all. */
  cr_assert_not(up_layer_memory_reserve(mem, slots[2], 8, 10));
  const up_layer_memory_usage after = up_layer_memory_usage_now(mem);
  cr_assert_eq(after.blocks_in_use, before.blocks_in_use);
  cr_assert_eq(after.blocks_promised, before.blocks_promised);
  cr_assert_eq(up_layer_memory_state_slot(mem, slots[2]), -1);
  cr_assert_eq(up_layer_memory_blocks_held(mem, slots[2], 0), 0);

  up_layer_memory_release(mem, slots[0]);
  cr_assert(up_layer_memory_reserve(mem, slots[2], 8, 10));
  cr_assert_eq(up_layer_memory_state_slot(mem, slots[2]), 0, "the released state slot is reused");
  const up_layer_memory_usage u = up_layer_memory_usage_now(mem);
  cr_assert_eq(u.state_slots_in_use, 2);
  cr_assert_eq(u.state_slots_peak, 2);
  cr_assert_eq(u.bytes_held[UP_MEMORY_RECURRENT], 2 * STATE_BYTES);
  up_layer_memory_release(mem, slots[1]);
  up_layer_memory_release(mem, slots[2]);
  cr_assert_eq(up_layer_memory_usage_now(mem).state_slots_in_use, 0);
  up_layer_memory_destroy(mem);
}

Test(layer_memory, blocks_run_out_before_the_state_is_taken) {
  const up_memory_layout layout = hybrid_layout();
  up_layer_memory *mem = make_memory(&layout, 14, 2, 2);
  const int32_t a = up_layer_memory_acquire(mem), b = up_layer_memory_acquire(mem);
  cr_assert(up_layer_memory_reserve(mem, a, 8, 16)); /* full 2 x 4, sliding 2 x the window's 3 */
  cr_assert_eq(up_layer_memory_usage_now(mem).blocks_in_use + up_layer_memory_usage_now(mem).blocks_promised, 14);
  cr_assert_not(up_layer_memory_reserve(mem, b, 1, 1));
  cr_assert_eq(up_layer_memory_state_slot(mem, b), -1, "a failed block reservation takes no state slot");
  cr_assert_eq(up_layer_memory_usage_now(mem).state_slots_in_use, 1);
  up_layer_memory_release(mem, b);
  up_layer_memory_release(mem, a);
  up_layer_memory_destroy(mem);
}

Test(layer_memory, accounting_by_kind_and_counted_entries) {
  const up_memory_layout layout = hybrid_layout();
  up_layer_memory *mem = make_memory(&layout, 64, 2, 2);
  const int32_t slot = up_layer_memory_acquire(mem);
  cr_assert(up_layer_memory_reserve(mem, slot, 20, 24));
  for (int32_t l = 0; l < 5; ++l) up_layer_memory_append(mem, slot, l, 20);
  for (int32_t l = 0; l < 5; ++l) up_layer_memory_trim(mem, slot, l, 24);
  /* Full layers: 20 entries in 6 blocks reserved; sliding: the window 14..19 spans
   * blocks 3 and 4, plus block 5 for entry 20. */
  cr_assert_eq(up_layer_memory_counted_entries(mem, slot, 0), 20);
  cr_assert_eq(up_layer_memory_counted_entries(mem, slot, 1), 6);
  cr_assert_eq(up_layer_memory_counted_entries(mem, slot, 2), 0);
  cr_assert_eq(up_layer_memory_len(mem, slot, 2), 20, "a recurrent layer counts the tokens it absorbed");
  cr_assert_eq(up_layer_memory_blocks_held(mem, slot, 0), 6);
  cr_assert_eq(up_layer_memory_blocks_held(mem, slot, 1), 3);
  const up_layer_memory_usage u = up_layer_memory_usage_now(mem);
  cr_assert_eq(u.blocks_in_use, 2 * 6 + 2 * 3);
  cr_assert_eq(u.blocks_peak, 2 * 6 + 2 * 5, "the prefill held the prompt's 5 blocks at each sliding layer");
  cr_assert_eq(u.bytes_held[UP_MEMORY_FULL_KV], 12 * BT * ENTRY_BYTES);
  cr_assert_eq(u.bytes_held[UP_MEMORY_SLIDING_KV], 6 * BT * ENTRY_BYTES);
  cr_assert_eq(u.bytes_held[UP_MEMORY_RECURRENT], STATE_BYTES);
  up_layer_memory_release(mem, slot);
  const up_layer_memory_usage end = up_layer_memory_usage_now(mem);
  cr_assert_eq(end.blocks_in_use, 0);
  cr_assert_eq(end.blocks_promised, 0);
  cr_assert_eq(end.blocks_peak, u.blocks_peak);
  for (int32_t k = 0; k < UP_MEMORY_KIND_COUNT; ++k) cr_assert_eq(end.bytes_held[k], 0);
  up_layer_memory_destroy(mem);
}

Test(layer_memory, layout_from_config_takes_the_window) {
  up_model_config cfg = {.name = "hybrid", .n_layers = 3, .n_kv_heads = 2, .head_dim = 8, .sliding_window = 512};
  cfg.layer_kind[1] = UP_LAYER_SLIDING_WINDOW;
  up_memory_layout layout;
  char err[256];
  cr_assert(up_memory_layout_from_config(&cfg, UP_DTYPE_F32, 16, &layout, err, sizeof err), "%s", err);
  cr_assert_eq(layout.kv_entry_bytes, 2 * 2 * 8 * 4);
  cr_assert_eq(layout.kind[0], UP_MEMORY_FULL_KV);
  cr_assert_eq(layout.kind[1], UP_MEMORY_SLIDING_KV);
  cr_assert_eq(layout.window[1], 512);
  cr_assert_eq(layout.window[2], 0);
  cfg.sliding_window = 0;
  cr_assert_not(up_memory_layout_from_config(&cfg, UP_DTYPE_F32, 16, &layout, err, sizeof err));
  cr_assert(strstr(err, "layer 1") && strstr(err, "no window"), "%s", err);
  cfg.sliding_window = 512;
  cfg.layer_kind[2] = UP_LAYER_LINEAR_ATTENTION;
  cr_assert_not(up_memory_layout_from_config(&cfg, UP_DTYPE_F32, 16, &layout, err, sizeof err));
  cr_assert(strstr(err, "layer 2") && strstr(err, "without a recurrent state"), "%s", err);
  /* with DeltaNet heads: conv state (4 - 1) x (2 x 8 + 16) fp32 and 2 x 8 x 8 fp32 */
  cfg.linear_key_heads = 1;
  cfg.linear_value_heads = 2;
  cfg.linear_head_dim = 8;
  cfg.linear_conv_width = 4;
  cr_assert(up_memory_layout_from_config(&cfg, UP_DTYPE_F32, 16, &layout, err, sizeof err), "%s", err);
  cr_assert_eq(layout.kind[2], UP_MEMORY_RECURRENT);
  cr_assert_eq(layout.state_bytes[2], 3 * (2 * 8 + 16) * 4 + 2 * 8 * 8 * 4);
}
