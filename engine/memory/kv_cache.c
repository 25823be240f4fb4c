/* kv_cache.c — host-side bookkeeping of the paged KV cache: the free-block stack, the
 * sequence slots, and per (slot, layer) the block table, blocks held and entry count.
 * Never touches K/V storage (that is the backend's up_kv_pool). Bad arguments are
 * program bugs (UP_ASSERT); running out of blocks or slots is a normal outcome. */
#include "engine/memory/kv_cache.h"

#include <stdlib.h>

#include "core/fatal.h"

struct up_kv_cache {
  int32_t n_blocks;
  int32_t block_tokens;
  int32_t n_layers;
  int32_t max_seqs;
  int32_t max_blocks_per_seq;

  /* Free blocks as a stack: take and return are O(1). */
  int32_t *free_stack;
  int32_t n_free;

  bool *slot_in_use;  /* [max_seqs] */
  /* Per (slot, layer), indexed slot * n_layers + layer. */
  int32_t *tables;       /* [max_seqs * n_layers * max_blocks_per_seq], -1 where unused */
  int32_t *blocks_held;  /* [max_seqs * n_layers] */
  int32_t *entries;      /* [max_seqs * n_layers] */
};

static size_t seq_layer_index(const up_kv_cache *cache, int32_t slot, int32_t layer) {
  UP_ASSERT(slot >= 0 && slot < cache->max_seqs, "slot %d out of range [0, %d)", slot, cache->max_seqs);
  UP_ASSERT(layer >= 0 && layer < cache->n_layers, "layer %d out of range [0, %d)", layer, cache->n_layers);
  return (size_t)slot * (size_t)cache->n_layers + (size_t)layer;
}

static int32_t *table_of(const up_kv_cache *cache, size_t seq_layer) {
  return cache->tables + seq_layer * (size_t)cache->max_blocks_per_seq;
}

static void assert_slot_in_use(const up_kv_cache *cache, int32_t slot) {
  UP_ASSERT(slot >= 0 && slot < cache->max_seqs, "slot %d out of range [0, %d)", slot, cache->max_seqs);
  UP_ASSERT(cache->slot_in_use[slot], "slot %d is not in use", slot);
}

up_kv_cache *up_kv_cache_create(int32_t n_blocks, int32_t block_tokens, int32_t n_layers, int32_t max_seqs,
                                int32_t max_blocks_per_seq) {
  UP_ASSERT(n_blocks >= 1 && block_tokens >= 1 && n_layers >= 1 && max_seqs >= 1 && max_blocks_per_seq >= 1,
            "kv cache needs positive sizes (blocks %d, block tokens %d, layers %d, seqs %d, blocks per seq %d)",
            n_blocks, block_tokens, n_layers, max_seqs, max_blocks_per_seq);
  up_kv_cache *cache = up_calloc_or_die(1, sizeof *cache, "kv cache");
  cache->n_blocks = n_blocks;
  cache->block_tokens = block_tokens;
  cache->n_layers = n_layers;
  cache->max_seqs = max_seqs;
  cache->max_blocks_per_seq = max_blocks_per_seq;

  cache->free_stack = up_malloc_or_die(sizeof(int32_t) * (size_t)n_blocks, "kv cache free blocks");
  /* Lowest ids on top, so a fresh cache hands out blocks 0, 1, 2, ... */
  for (int32_t i = 0; i < n_blocks; ++i) cache->free_stack[i] = n_blocks - 1 - i;
  cache->n_free = n_blocks;

  const size_t seq_layers = (size_t)max_seqs * (size_t)n_layers;
  cache->slot_in_use = up_calloc_or_die((size_t)max_seqs, sizeof(bool), "kv cache slots");
  cache->tables = up_malloc_or_die(sizeof(int32_t) * seq_layers * (size_t)max_blocks_per_seq, "kv cache block tables");
  for (size_t i = 0; i < seq_layers * (size_t)max_blocks_per_seq; ++i) cache->tables[i] = -1;
  cache->blocks_held = up_calloc_or_die(seq_layers, sizeof(int32_t), "kv cache blocks held");
  cache->entries = up_calloc_or_die(seq_layers, sizeof(int32_t), "kv cache entry counts");
  return cache;
}

void up_kv_cache_destroy(up_kv_cache *cache) {
  if (!cache) return;
  free(cache->free_stack);
  free(cache->slot_in_use);
  free(cache->tables);
  free(cache->blocks_held);
  free(cache->entries);
  free(cache);
}

int32_t up_kv_cache_block_tokens(const up_kv_cache *cache) { return cache->block_tokens; }
int32_t up_kv_cache_total_blocks(const up_kv_cache *cache) { return cache->n_blocks; }
int32_t up_kv_cache_free_blocks(const up_kv_cache *cache) { return cache->n_free; }
int32_t up_kv_cache_max_blocks_per_seq(const up_kv_cache *cache) { return cache->max_blocks_per_seq; }
int32_t up_kv_cache_layers(const up_kv_cache *cache) { return cache->n_layers; }

int32_t up_kv_cache_blocks_for(const up_kv_cache *cache, int64_t entries) {
  UP_ASSERT(entries >= 0, "negative entry count %lld", (long long)entries);
  const int64_t blocks = (entries + cache->block_tokens - 1) / cache->block_tokens;
  /* Saturate: a count this large can never be reserved anyway, and callers compare it. */
  return blocks > INT32_MAX ? INT32_MAX : (int32_t)blocks;
}

int32_t up_kv_cache_acquire_slot(up_kv_cache *cache) {
  for (int32_t slot = 0; slot < cache->max_seqs; ++slot) {
    if (!cache->slot_in_use[slot]) {
      cache->slot_in_use[slot] = true;
      return slot;
    }
  }
  return -1;
}

bool up_kv_cache_reserve(up_kv_cache *cache, int32_t slot, int64_t entries) {
  assert_slot_in_use(cache, slot);
  const int32_t wanted = up_kv_cache_blocks_for(cache, entries);
  if (wanted > cache->max_blocks_per_seq) return false;

  /* Count first so that a failure takes nothing. */
  int64_t missing = 0;
  for (int32_t layer = 0; layer < cache->n_layers; ++layer) {
    const int32_t held = cache->blocks_held[seq_layer_index(cache, slot, layer)];
    if (wanted > held) missing += wanted - held;
  }
  if (missing > cache->n_free) return false;

  for (int32_t layer = 0; layer < cache->n_layers; ++layer) {
    const size_t sl = seq_layer_index(cache, slot, layer);
    int32_t *table = table_of(cache, sl);
    while (cache->blocks_held[sl] < wanted) table[cache->blocks_held[sl]++] = cache->free_stack[--cache->n_free];
  }
  return true;
}

int32_t up_kv_cache_trim(up_kv_cache *cache, int32_t slot, int32_t layer, int64_t entries) {
  assert_slot_in_use(cache, slot);
  const size_t sl = seq_layer_index(cache, slot, layer);
  UP_ASSERT(entries >= cache->entries[sl], "trim of slot %d layer %d to %lld entries would drop stored ones (%d)",
            slot, layer, (long long)entries, cache->entries[sl]);
  const int32_t keep = up_kv_cache_blocks_for(cache, entries);
  int32_t *table = table_of(cache, sl);
  int32_t returned = 0;
  while (cache->blocks_held[sl] > keep) {
    const int32_t last = --cache->blocks_held[sl];
    cache->free_stack[cache->n_free++] = table[last];
    table[last] = -1;
    ++returned;
  }
  return returned;
}

void up_kv_cache_release_slot(up_kv_cache *cache, int32_t slot) {
  assert_slot_in_use(cache, slot);
  for (int32_t layer = 0; layer < cache->n_layers; ++layer) {
    const size_t sl = seq_layer_index(cache, slot, layer);
    cache->entries[sl] = 0;
    up_kv_cache_trim(cache, slot, layer, 0);
  }
  cache->slot_in_use[slot] = false;
}

int32_t up_kv_cache_len(const up_kv_cache *cache, int32_t slot, int32_t layer) {
  return cache->entries[seq_layer_index(cache, slot, layer)];
}

void up_kv_cache_append(up_kv_cache *cache, int32_t slot, int32_t layer, int32_t entries) {
  assert_slot_in_use(cache, slot);
  const size_t sl = seq_layer_index(cache, slot, layer);
  UP_ASSERT(entries >= 0, "negative append of %d entries", entries);
  const int64_t new_len = (int64_t)cache->entries[sl] + entries;
  UP_ASSERT(new_len <= (int64_t)cache->blocks_held[sl] * cache->block_tokens,
            "append of %d entries to slot %d layer %d (len %d) exceeds its %d reserved blocks", entries, slot, layer,
            cache->entries[sl], cache->blocks_held[sl]);
  cache->entries[sl] = (int32_t)new_len;
}

int32_t up_kv_cache_blocks_held(const up_kv_cache *cache, int32_t slot, int32_t layer) {
  return cache->blocks_held[seq_layer_index(cache, slot, layer)];
}

const int32_t *up_kv_cache_block_table(const up_kv_cache *cache, int32_t slot, int32_t layer) {
  return table_of(cache, seq_layer_index(cache, slot, layer));
}

int32_t up_kv_cache_slot_of(const up_kv_cache *cache, int32_t slot, int32_t layer, int32_t index) {
  const size_t sl = seq_layer_index(cache, slot, layer);
  UP_ASSERT(index >= 0 && (int64_t)index < (int64_t)cache->blocks_held[sl] * cache->block_tokens,
            "entry %d of slot %d layer %d lies outside its %d blocks", index, slot, layer, cache->blocks_held[sl]);
  return table_of(cache, sl)[index / cache->block_tokens] * cache->block_tokens + index % cache->block_tokens;
}
