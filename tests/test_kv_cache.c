/* test_kv_cache.c — the paged KV cache bookkeeping: block accounting under reserve,
 * trim and release, per-layer lengths, table lookups, and the limits it refuses. */
#include <criterion/criterion.h>

#include "engine/memory/kv_cache.h"

/* Blocks held by a slot summed over all layers. */
static int32_t held_by_slot(const up_kv_cache *cache, int32_t slot) {
  int32_t total = 0;
  for (int32_t layer = 0; layer < up_kv_cache_layers(cache); ++layer) total += up_kv_cache_blocks_held(cache, slot, layer);
  return total;
}

/* A cache of two sequence slots, both taken (a = 0, b = 1), each with a reservation
 * of entries_each entries (0: none). */
static up_kv_cache *two_slot_cache(int32_t n_blocks, int32_t block_tokens, int32_t n_layers,
                                   int32_t max_blocks_per_seq, int64_t entries_each, int32_t *a, int32_t *b) {
  up_kv_cache *cache = up_kv_cache_create(n_blocks, block_tokens, n_layers, 2, max_blocks_per_seq);
  *a = up_kv_cache_acquire_slot(cache);
  *b = up_kv_cache_acquire_slot(cache);
  cr_assert(*a == 0 && *b == 1);
  cr_assert(up_kv_cache_reserve(cache, *a, entries_each));
  cr_assert(up_kv_cache_reserve(cache, *b, entries_each));
  return cache;
}

Test(kv_cache, fresh_cache_reports_its_sizes) {
  up_kv_cache *cache = up_kv_cache_create(32, 16, 4, 3, 8);
  cr_assert_eq(up_kv_cache_total_blocks(cache), 32);
  cr_assert_eq(up_kv_cache_free_blocks(cache), 32);
  cr_assert_eq(up_kv_cache_block_tokens(cache), 16);
  cr_assert_eq(up_kv_cache_layers(cache), 4);
  cr_assert_eq(up_kv_cache_max_blocks_per_seq(cache), 8);
  cr_assert_eq(up_kv_cache_blocks_for(cache, 0), 0);
  cr_assert_eq(up_kv_cache_blocks_for(cache, 1), 1);
  cr_assert_eq(up_kv_cache_blocks_for(cache, 16), 1);
  cr_assert_eq(up_kv_cache_blocks_for(cache, 17), 2);
  up_kv_cache_destroy(cache);
}

Test(kv_cache, reserve_takes_blocks_at_every_layer) {
  up_kv_cache *cache = up_kv_cache_create(32, 16, 4, 2, 8);
  const int32_t slot = up_kv_cache_acquire_slot(cache);
  cr_assert_eq(slot, 0);
  cr_assert(up_kv_cache_reserve(cache, slot, 40));  /* 3 blocks per layer */
  cr_assert_eq(up_kv_cache_free_blocks(cache), 32 - 4 * 3);
  for (int32_t layer = 0; layer < 4; ++layer) {
    cr_assert_eq(up_kv_cache_blocks_held(cache, slot, layer), 3);
    const int32_t *table = up_kv_cache_block_table(cache, slot, layer);
    for (int32_t i = 0; i < 3; ++i) cr_assert_geq(table[i], 0);
    for (int32_t i = 3; i < 8; ++i) cr_assert_eq(table[i], -1);
  }
  /* Growing the reservation takes only what each layer lacks. */
  cr_assert(up_kv_cache_reserve(cache, slot, 64));
  cr_assert_eq(up_kv_cache_free_blocks(cache), 32 - 4 * 4);
  /* A smaller reservation takes nothing. */
  cr_assert(up_kv_cache_reserve(cache, slot, 10));
  cr_assert_eq(up_kv_cache_free_blocks(cache), 32 - 4 * 4);
  up_kv_cache_destroy(cache);
}

Test(kv_cache, no_block_is_handed_out_twice) {
  int32_t a, b;
  up_kv_cache *cache = two_slot_cache(24, 4, 3, 8, 16, &a, &b);
  cr_assert_eq(up_kv_cache_free_blocks(cache), 0);
  int seen[24] = {0};
  const int32_t slots[2] = {a, b};
  for (int s = 0; s < 2; ++s) {
    for (int32_t layer = 0; layer < 3; ++layer) {
      const int32_t *table = up_kv_cache_block_table(cache, slots[s], layer);
      for (int32_t i = 0; i < 4; ++i) {
        cr_assert(table[i] >= 0 && table[i] < 24);
        ++seen[table[i]];
      }
    }
  }
  for (int i = 0; i < 24; ++i) cr_assert_eq(seen[i], 1, "block %d handed out %d times", i, seen[i]);
  up_kv_cache_destroy(cache);
}

Test(kv_cache, failed_reserve_takes_nothing) {
  int32_t a, b;
  up_kv_cache *cache = two_slot_cache(10, 8, 4, 8, 0, &a, &b);
  cr_assert(up_kv_cache_reserve(cache, a, 8));  /* 4 blocks, 6 left */
  cr_assert_eq(up_kv_cache_free_blocks(cache), 6);
  /* 2 blocks at 4 layers = 8 > 6: refused, and no layer got anything. */
  cr_assert_not(up_kv_cache_reserve(cache, b, 16));
  cr_assert_eq(up_kv_cache_free_blocks(cache), 6);
  cr_assert_eq(held_by_slot(cache, b), 0);
  /* Growing an existing reservation beyond the pool is also all or nothing. */
  cr_assert_not(up_kv_cache_reserve(cache, a, 24));  /* needs 2 more per layer = 8 > 6 */
  cr_assert_eq(up_kv_cache_free_blocks(cache), 6);
  cr_assert_eq(held_by_slot(cache, a), 4);
  /* Exactly what is left still fits. */
  cr_assert(up_kv_cache_reserve(cache, b, 8));
  cr_assert_eq(up_kv_cache_free_blocks(cache), 2);
  up_kv_cache_destroy(cache);
}

Test(kv_cache, table_overflow_is_refused) {
  up_kv_cache *cache = up_kv_cache_create(100, 4, 2, 1, 3);
  const int32_t slot = up_kv_cache_acquire_slot(cache);
  cr_assert(up_kv_cache_reserve(cache, slot, 12));      /* exactly 3 blocks */
  cr_assert_not(up_kv_cache_reserve(cache, slot, 13));  /* 4 blocks > max_blocks_per_seq */
  cr_assert_eq(up_kv_cache_free_blocks(cache), 100 - 2 * 3);
  cr_assert_eq(up_kv_cache_blocks_held(cache, slot, 0), 3);
  up_kv_cache_destroy(cache);
}

Test(kv_cache, trim_returns_blocks_for_reuse) {
  int32_t a, b;
  up_kv_cache *cache = two_slot_cache(8, 4, 2, 8, 0, &a, &b);
  cr_assert(up_kv_cache_reserve(cache, a, 16));  /* 4 blocks at each of 2 layers: the pool */
  cr_assert_eq(up_kv_cache_free_blocks(cache), 0);
  cr_assert_not(up_kv_cache_reserve(cache, b, 4));

  up_kv_cache_append(cache, a, 0, 10);
  up_kv_cache_append(cache, a, 1, 3);
  cr_assert_eq(up_kv_cache_trim(cache, a, 0, 10), 1);  /* 3 blocks stay */
  cr_assert_eq(up_kv_cache_trim(cache, a, 1, 3), 3);   /* 1 block stays */
  cr_assert_eq(up_kv_cache_trim(cache, a, 1, 3), 0);   /* nothing more to give */
  cr_assert_eq(up_kv_cache_free_blocks(cache), 4);
  cr_assert_eq(up_kv_cache_block_table(cache, a, 1)[1], -1);
  cr_assert_eq(up_kv_cache_len(cache, a, 0), 10);

  cr_assert(up_kv_cache_reserve(cache, b, 8));  /* 2 blocks at 2 layers: the freed ones */
  cr_assert_eq(up_kv_cache_free_blocks(cache), 0);
  up_kv_cache_destroy(cache);
}

Test(kv_cache, release_returns_everything) {
  up_kv_cache *cache = up_kv_cache_create(40, 8, 3, 2, 8);
  const int32_t slot = up_kv_cache_acquire_slot(cache);
  cr_assert(up_kv_cache_reserve(cache, slot, 50));
  up_kv_cache_append(cache, slot, 0, 50);
  up_kv_cache_append(cache, slot, 2, 7);
  up_kv_cache_release_slot(cache, slot);
  cr_assert_eq(up_kv_cache_free_blocks(cache), 40);

  /* The slot comes back empty. */
  cr_assert_eq(up_kv_cache_acquire_slot(cache), slot);
  for (int32_t layer = 0; layer < 3; ++layer) {
    cr_assert_eq(up_kv_cache_len(cache, slot, layer), 0);
    cr_assert_eq(up_kv_cache_blocks_held(cache, slot, layer), 0);
    cr_assert_eq(up_kv_cache_block_table(cache, slot, layer)[0], -1);
  }
  up_kv_cache_destroy(cache);
}

Test(kv_cache, layer_lengths_are_independent) {
  int32_t a, b;
  up_kv_cache *cache = two_slot_cache(64, 4, 3, 16, 20, &a, &b);
  up_kv_cache_append(cache, a, 0, 20);
  up_kv_cache_append(cache, a, 1, 9);
  up_kv_cache_append(cache, a, 2, 2);
  up_kv_cache_append(cache, a, 2, 1);
  up_kv_cache_append(cache, b, 1, 5);
  cr_assert_eq(up_kv_cache_len(cache, a, 0), 20);
  cr_assert_eq(up_kv_cache_len(cache, a, 1), 9);
  cr_assert_eq(up_kv_cache_len(cache, a, 2), 3);
  cr_assert_eq(up_kv_cache_len(cache, b, 0), 0);
  cr_assert_eq(up_kv_cache_len(cache, b, 1), 5);
  cr_assert_eq(up_kv_cache_len(cache, b, 2), 0);
  up_kv_cache_destroy(cache);
}

Test(kv_cache, slot_of_maps_through_the_table) {
  /* Interleave reservations so a's blocks are not contiguous. */
  int32_t a, b;
  up_kv_cache *cache = two_slot_cache(16, 4, 2, 8, 4, &a, &b);
  cr_assert(up_kv_cache_reserve(cache, a, 12));
  for (int32_t layer = 0; layer < 2; ++layer) {
    const int32_t *table = up_kv_cache_block_table(cache, a, layer);
    for (int32_t index = 0; index < 12; ++index) {
      cr_assert_eq(up_kv_cache_slot_of(cache, a, layer, index), table[index / 4] * 4 + index % 4);
    }
    /* Consecutive entries inside a block are adjacent; across a boundary they follow the table. */
    cr_assert_eq(up_kv_cache_slot_of(cache, a, layer, 3), table[0] * 4 + 3);
    cr_assert_eq(up_kv_cache_slot_of(cache, a, layer, 4), table[1] * 4);
    cr_assert_eq(up_kv_cache_slot_of(cache, a, layer, 8), table[2] * 4);
  }
  /* a's second block is not the one after its first: b took that. */
  cr_assert_neq(up_kv_cache_block_table(cache, a, 0)[1], up_kv_cache_block_table(cache, a, 0)[0] + 1);
  up_kv_cache_destroy(cache);
}

Test(kv_cache, slots_run_out) {
  up_kv_cache *cache = up_kv_cache_create(8, 4, 1, 3, 4);
  cr_assert_eq(up_kv_cache_acquire_slot(cache), 0);
  cr_assert_eq(up_kv_cache_acquire_slot(cache), 1);
  cr_assert_eq(up_kv_cache_acquire_slot(cache), 2);
  cr_assert_eq(up_kv_cache_acquire_slot(cache), -1);
  up_kv_cache_release_slot(cache, 1);
  cr_assert_eq(up_kv_cache_acquire_slot(cache), 1);
  cr_assert_eq(up_kv_cache_acquire_slot(cache), -1);
  up_kv_cache_destroy(cache);
}

/* Program bugs end the process (exit 1 through the default abort hook). */
Test(kv_cache, releasing_a_free_slot_is_fatal, .exit_code = 1) {
  up_kv_cache *cache = up_kv_cache_create(8, 4, 1, 2, 4);
  up_kv_cache_release_slot(cache, 0);
}

Test(kv_cache, out_of_range_layer_is_fatal, .exit_code = 1) {
  up_kv_cache *cache = up_kv_cache_create(8, 4, 2, 2, 4);
  const int32_t slot = up_kv_cache_acquire_slot(cache);
  (void)up_kv_cache_len(cache, slot, 2);
}

Test(kv_cache, append_beyond_reservation_is_fatal, .exit_code = 1) {
  up_kv_cache *cache = up_kv_cache_create(8, 4, 1, 2, 4);
  const int32_t slot = up_kv_cache_acquire_slot(cache);
  cr_assert(up_kv_cache_reserve(cache, slot, 4));
  up_kv_cache_append(cache, slot, 0, 5);
}

Test(kv_cache, trim_below_stored_entries_is_fatal, .exit_code = 1) {
  up_kv_cache *cache = up_kv_cache_create(8, 4, 1, 2, 4);
  const int32_t slot = up_kv_cache_acquire_slot(cache);
  cr_assert(up_kv_cache_reserve(cache, slot, 8));
  up_kv_cache_append(cache, slot, 0, 6);
  up_kv_cache_trim(cache, slot, 0, 5);
}
