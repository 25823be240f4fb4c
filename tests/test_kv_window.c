/* test_kv_window.c — sliding-window layers of the paged KV cache: the blocks a
 * reservation takes and claims, the blocks given back exactly when they fall wholly
 * behind the window (after a whole prefill, one entry at a time, and after a trim),
 * all-or-nothing reservation against the claims, release, and layers that keep no
 * entries (recurrent ones). Full layers are test_kv_cache.c's. */
#include <criterion/criterion.h>

#include "engine/memory/kv_cache.h"

enum { BT = 4 };

/* One-slot cache whose layers have the given windows; the slot is acquired. */
static up_kv_cache *windowed_cache(int32_t n_blocks, int32_t n_layers, const int32_t *windows, int32_t max_seqs) {
  up_kv_cache *cache = up_kv_cache_create_windowed(n_blocks, BT, n_layers, windows, max_seqs, 16);
  for (int32_t s = 0; s < max_seqs; ++s) cr_assert_eq(up_kv_cache_acquire_slot(cache), s);
  return cache;
}

/* After an append, a sliding layer of window w at length len holds exactly the blocks
 * not wholly before entry len - w, up to the block of the next entry (if the life of
 * `limit` entries has one), and the pool has all others. */
static void expect_window_blocks(const up_kv_cache *cache, int32_t slot, int32_t layer, int32_t w, int64_t limit) {
  const int32_t len = up_kv_cache_len(cache, slot, layer);
  const int32_t *table = up_kv_cache_block_table(cache, slot, layer);
  const int32_t end = len < limit ? len / BT + 1 : (len + BT - 1) / BT;
  int32_t held = 0;
  for (int32_t b = 0; b < 16; ++b) {
    const bool behind = (b + 1) * BT <= len - w;
    const bool expected = !behind && b < end;
    cr_assert_eq(table[b] >= 0, expected, "len %d window %d: block %d is %s", len, w, b,
                 table[b] >= 0 ? "held" : "not held");
    held += expected;
  }
  cr_assert_eq(up_kv_cache_blocks_held(cache, slot, layer), held, "len %d", len);
  /* Every entry in the window maps into a held block. */
  for (int32_t e = len - w > 0 ? len - w : 0; e < len; ++e)
    cr_assert_eq(up_kv_cache_slot_of(cache, slot, layer, e) / BT, table[e / BT]);
}

/* Decode the only layer of slot 0 one entry at a time up to `limit`, checking the
 * window rule after each append and that it holds at most the window's span of 3. */
static void decode_to(up_kv_cache *cache, int32_t w, int64_t limit) {
  while (up_kv_cache_len(cache, 0, 0) < limit) {
    up_kv_cache_append(cache, 0, 0, 1);
    expect_window_blocks(cache, 0, 0, w, limit);
    cr_assert_leq(up_kv_cache_blocks_held(cache, 0, 0), 3);
    cr_assert_eq(up_kv_cache_free_blocks(cache) + up_kv_cache_blocks_held(cache, 0, 0), 16);
    cr_assert_eq(up_kv_cache_promised_blocks(cache), 3 - up_kv_cache_blocks_held(cache, 0, 0));
  }
}

/* Release slot 0 of a 16-block cache: every block and claim comes back. */
static void release_and_destroy(up_kv_cache *cache) {
  up_kv_cache_release_slot(cache, 0);
  cr_assert_eq(up_kv_cache_free_blocks(cache), 16);
  cr_assert_eq(up_kv_cache_promised_blocks(cache), 0);
  up_kv_cache_destroy(cache);
}

/* A 16-block cache with one sliding layer of window 6 and slot 0 reserved for a first
 * step of `first` entries and a life of `total`. */
static up_kv_cache *window6_reserved(int64_t first, int64_t total) {
  const int32_t windows[1] = {6};
  up_kv_cache *cache = windowed_cache(16, 1, windows, 1);
  cr_assert(up_kv_cache_reserve_steps(cache, 0, first, total));
  return cache;
}

Test(kv_window, peak_blocks_cover_the_first_step_or_the_window) {
  /* W = 6 over blocks of 4: 7 consecutive entries touch at most 3 blocks. */
  cr_assert_eq(up_kv_window_peak_blocks(BT, 6, 10, 20), 3);
  cr_assert_eq(up_kv_window_peak_blocks(BT, 6, 40, 50), 10); /* the prompt's blocks */
  cr_assert_eq(up_kv_window_peak_blocks(BT, 6, 2, 3), 1);    /* the whole life fits one block */
  cr_assert_eq(up_kv_window_peak_blocks(BT, 4, 1, 100), 2);  /* W + 1 = 5 entries: 2 blocks */
  cr_assert_eq(up_kv_window_peak_blocks(BT, 5, 1, 100), 3);  /* 6 entries may straddle 3 */
  cr_assert_eq(up_kv_window_peak_blocks(BT, 6, 0, 20), 3);   /* resident after a prefill */
}

Test(kv_window, blocks_return_exactly_when_wholly_behind_the_window) {
  up_kv_cache *cache = window6_reserved(10, 40);
  /* The prefill's 3 blocks are taken, the claim (3) is covered: nothing promised. */
  cr_assert_eq(up_kv_cache_blocks_held(cache, 0, 0), 3);
  cr_assert_eq(up_kv_cache_free_blocks(cache), 13);
  cr_assert_eq(up_kv_cache_promised_blocks(cache), 0);

  up_kv_cache_append(cache, 0, 0, 10);
  /* Entries 0..3 lie wholly before 10 - 6 = 4: block 0 goes back; block 1 (4..7) stays. */
  cr_assert_eq(up_kv_cache_block_table(cache, 0, 0)[0], -1);
  cr_assert_eq(up_kv_cache_free_blocks(cache), 14);
  cr_assert_eq(up_kv_cache_promised_blocks(cache), 1, "the claim keeps its share of the returned block");
  expect_window_blocks(cache, 0, 0, 6, 40);

  decode_to(cache, 6, 40);
  release_and_destroy(cache);
}

Test(kv_window, trim_after_a_dropping_prefill_keeps_the_rule) {
  up_kv_cache *cache = window6_reserved(10, 20);
  /* The prefill kept 7 of its 10 entries: none is behind the window yet (7 - 6 = 1). */
  up_kv_cache_append(cache, 0, 0, 7);
  cr_assert_eq(up_kv_cache_blocks_held(cache, 0, 0), 3);
  /* 7 kept + 12 decodes to come: the block of entries 8..11 is not needed yet. */
  cr_assert_eq(up_kv_cache_trim(cache, 0, 0, 19), 1);
  cr_assert_eq(up_kv_cache_block_table(cache, 0, 0)[2], -1);
  cr_assert_eq(up_kv_cache_blocks_held(cache, 0, 0), 2);
  cr_assert_eq(up_kv_cache_promised_blocks(cache), 1, "claim 3 = the window's span, 2 held");
  expect_window_blocks(cache, 0, 0, 6, 19);
  decode_to(cache, 6, 19);
  release_and_destroy(cache);
}

Test(kv_window, trim_lowers_the_claim_to_the_window) {
  up_kv_cache *cache = window6_reserved(40, 50); /* prefill peak: 10 blocks */
  cr_assert_eq(up_kv_cache_free_blocks(cache), 6);
  up_kv_cache_append(cache, 0, 0, 40);
  /* Blocks 0..7 (entries 0..31) lie wholly before 34 and return; 8 and 9 stay, and
   * block 10 is taken for the next entry. */
  cr_assert_eq(up_kv_cache_blocks_held(cache, 0, 0), 3);
  cr_assert_eq(up_kv_cache_free_blocks(cache), 13);
  cr_assert_eq(up_kv_cache_promised_blocks(cache), 7, "before the trim the claim is the prefill's 10");
  cr_assert_eq(up_kv_cache_trim(cache, 0, 0, 49), 0);
  cr_assert_eq(up_kv_cache_promised_blocks(cache), 0, "after it, the window's span of 3, all held");
  decode_to(cache, 6, 50);
  release_and_destroy(cache);
}

Test(kv_window, claims_make_reservations_all_or_nothing) {
  /* Layer 0 full, layer 1 sliding (W = 8: a span of 3 blocks). */
  const int32_t windows[2] = {UP_KV_WINDOW_FULL, 8};
  up_kv_cache *cache = windowed_cache(10, 2, windows, 2);
  cr_assert(up_kv_cache_reserve_steps(cache, 0, 4, 12)); /* full 3 blocks, sliding 1 taken + 2 claimed */
  cr_assert_eq(up_kv_cache_free_blocks(cache), 6);
  cr_assert_eq(up_kv_cache_promised_blocks(cache), 2);
  /* Slot 1 would fit the 6 free blocks (3 + 3) but 2 of them are claimed. */
  cr_assert_not(up_kv_cache_reserve_steps(cache, 1, 4, 12));
  cr_assert_eq(up_kv_cache_free_blocks(cache), 6);
  cr_assert_eq(up_kv_cache_promised_blocks(cache), 2);
  cr_assert_eq(up_kv_cache_blocks_held(cache, 1, 0), 0, "a failed reserve takes nothing at the full layer");
  cr_assert_eq(up_kv_cache_blocks_held(cache, 1, 1), 0);
  /* 4 entries: full 1 block, sliding peak min(3, 1) = 1: fits the 4 unclaimed. */
  cr_assert(up_kv_cache_reserve_steps(cache, 1, 4, 4));
  cr_assert_eq(up_kv_cache_free_blocks(cache), 4);
  /* The claimed blocks are still there for slot 0's decodes. */
  up_kv_cache_append(cache, 0, 1, 4);
  up_kv_cache_append(cache, 0, 0, 4);
  for (int32_t i = 0; i < 8; ++i) {
    up_kv_cache_append(cache, 0, 1, 1);
    up_kv_cache_append(cache, 0, 0, 1);
  }
  /* At its last entry (12) block 0 lies behind the window and no next block is due. */
  cr_assert_eq(up_kv_cache_blocks_held(cache, 0, 1), 2);
  cr_assert_eq(up_kv_cache_promised_blocks(cache), 1);
  up_kv_cache_release_slot(cache, 0);
  up_kv_cache_release_slot(cache, 1);
  cr_assert_eq(up_kv_cache_free_blocks(cache), 10);
  cr_assert_eq(up_kv_cache_promised_blocks(cache), 0);
  cr_assert_eq(up_kv_cache_peak_blocks(cache), 8);
  up_kv_cache_destroy(cache);
}

Test(kv_window, layers_without_entries_count_and_hold_nothing) {
  const int32_t windows[2] = {UP_KV_WINDOW_NO_ENTRIES, UP_KV_WINDOW_FULL};
  up_kv_cache *cache = windowed_cache(8, 2, windows, 1);
  cr_assert(up_kv_cache_reserve(cache, 0, 8));
  cr_assert_eq(up_kv_cache_blocks_held(cache, 0, 0), 0);
  cr_assert_eq(up_kv_cache_blocks_held(cache, 0, 1), 2);
  up_kv_cache_append(cache, 0, 0, 8);
  cr_assert_eq(up_kv_cache_len(cache, 0, 0), 8);
  cr_assert_eq(up_kv_cache_trim(cache, 0, 0, 8), 0);
  cr_assert_eq(up_kv_cache_layer_blocks_held(cache, 0), 0);
  cr_assert_eq(up_kv_cache_layer_blocks_held(cache, 1), 2);
  up_kv_cache_release_slot(cache, 0);
  cr_assert_eq(up_kv_cache_len(cache, 0, 0), 0);
  up_kv_cache_destroy(cache);
}

Test(kv_window, reading_an_entry_behind_the_window_is_fatal, .exit_code = 1) {
  up_kv_cache *cache = window6_reserved(10, 20);
  up_kv_cache_append(cache, 0, 0, 10);
  (void)up_kv_cache_slot_of(cache, 0, 0, 3);
}

Test(kv_window, a_second_step_beyond_the_next_block_is_fatal, .exit_code = 1) {
  up_kv_cache *cache = window6_reserved(4, 20);
  up_kv_cache_append(cache, 0, 0, 4); /* takes the block of entries 4..7 */
  up_kv_cache_append(cache, 0, 0, 5); /* entry 8 has no block */
}

Test(kv_window, reserving_a_sliding_layer_twice_is_fatal, .exit_code = 1) {
  up_kv_cache *cache = window6_reserved(4, 20);
  up_kv_cache_reserve_steps(cache, 0, 4, 20);
}
