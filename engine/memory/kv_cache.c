/* kv_cache.c — host-side bookkeeping of the paged KV cache: the sequence slots and, per
 * (slot, layer), the block table, blocks held, entry count and, at sliding-window
 * layers, the claim on the pool that their later blocks come from. Blocks come from
 * one up_block_pool. Never touches K/V storage (that is the backend's up_kv_pool).
 * Bad arguments are program bugs (UP_ASSERT); running out of blocks or slots is a
 * normal outcome. */
#include "engine/memory/kv_cache.h"

#include <stdlib.h>

#include "core/fatal.h"
#include "engine/memory/block_pool.h"

/* One layer of one sequence. Held blocks sit at table indices [first_block, table_end)
 * (at a full layer first_block stays 0 and table_end == blocks_held). */
typedef struct seq_layer {
  int32_t entries;
  int32_t blocks_held;
  int32_t first_block; /* sliding: blocks before it lay wholly behind the window */
  int32_t table_end;
  int32_t claim;       /* sliding: the most blocks it may hold at once (its reservation) */
  int64_t limit;       /* sliding: entries it may append over its life */
} seq_layer;

struct up_kv_cache {
  int32_t block_tokens;
  int32_t n_layers;
  int32_t max_seqs;
  int32_t max_blocks_per_seq;
  int32_t *windows;       /* [n_layers] */
  up_block_pool pool;

  bool *slot_in_use;      /* [max_seqs] */
  seq_layer *seq_layers;  /* [max_seqs * n_layers], indexed slot * n_layers + layer */
  int32_t *tables;        /* [max_seqs * n_layers * max_blocks_per_seq], -1 where unused */
  int64_t *layer_held;    /* [n_layers] blocks held at the layer over all slots */
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

up_kv_cache *up_kv_cache_create_windowed(int32_t n_blocks, int32_t block_tokens, int32_t n_layers,
                                         const int32_t *layer_windows, int32_t max_seqs, int32_t max_blocks_per_seq) {
  UP_ASSERT(n_blocks >= 1 && block_tokens >= 1 && n_layers >= 1 && max_seqs >= 1 && max_blocks_per_seq >= 1,
            "kv cache needs positive sizes (blocks %d, block tokens %d, layers %d, seqs %d, blocks per seq %d)",
            n_blocks, block_tokens, n_layers, max_seqs, max_blocks_per_seq);
  up_kv_cache *cache = up_calloc_or_die(1, sizeof *cache, "kv cache");
  cache->block_tokens = block_tokens;
  cache->n_layers = n_layers;
  cache->max_seqs = max_seqs;
  cache->max_blocks_per_seq = max_blocks_per_seq;
  cache->windows = up_malloc_or_die(sizeof(int32_t) * (size_t)n_layers, "kv cache layer windows");
  for (int32_t layer = 0; layer < n_layers; ++layer) {
    const int32_t w = layer_windows ? layer_windows[layer] : UP_KV_WINDOW_FULL;
    UP_ASSERT(w >= UP_KV_WINDOW_NO_ENTRIES, "layer %d has window %d", layer, w);
    cache->windows[layer] = w;
  }
  up_block_pool_init(&cache->pool, n_blocks);

  const size_t seq_layers = (size_t)max_seqs * (size_t)n_layers;
  cache->slot_in_use = up_calloc_or_die((size_t)max_seqs, sizeof(bool), "kv cache slots");
  cache->seq_layers = up_calloc_or_die(seq_layers, sizeof(seq_layer), "kv cache sequence layers");
  cache->tables = up_malloc_or_die(sizeof(int32_t) * seq_layers * (size_t)max_blocks_per_seq, "kv cache block tables");
  for (size_t i = 0; i < seq_layers * (size_t)max_blocks_per_seq; ++i) cache->tables[i] = -1;
  cache->layer_held = up_calloc_or_die((size_t)n_layers, sizeof(int64_t), "kv cache blocks per layer");
  return cache;
}

up_kv_cache *up_kv_cache_create(int32_t n_blocks, int32_t block_tokens, int32_t n_layers, int32_t max_seqs,
                                int32_t max_blocks_per_seq) {
  return up_kv_cache_create_windowed(n_blocks, block_tokens, n_layers, NULL, max_seqs, max_blocks_per_seq);
}

void up_kv_cache_destroy(up_kv_cache *cache) {
  if (!cache) return;
  up_block_pool_free(&cache->pool);
  free(cache->windows);
  free(cache->slot_in_use);
  free(cache->seq_layers);
  free(cache->tables);
  free(cache->layer_held);
  free(cache);
}

int32_t up_kv_cache_block_tokens(const up_kv_cache *cache) { return cache->block_tokens; }
int32_t up_kv_cache_total_blocks(const up_kv_cache *cache) { return cache->pool.n_blocks; }
int32_t up_kv_cache_free_blocks(const up_kv_cache *cache) { return cache->pool.n_free; }
int32_t up_kv_cache_max_blocks_per_seq(const up_kv_cache *cache) { return cache->max_blocks_per_seq; }
int32_t up_kv_cache_layers(const up_kv_cache *cache) { return cache->n_layers; }
int32_t up_kv_cache_peak_blocks(const up_kv_cache *cache) { return cache->pool.peak_in_use; }
int64_t up_kv_cache_promised_blocks(const up_kv_cache *cache) { return cache->pool.n_promised; }

int32_t up_kv_cache_window(const up_kv_cache *cache, int32_t layer) {
  UP_ASSERT(layer >= 0 && layer < cache->n_layers, "layer %d out of range [0, %d)", layer, cache->n_layers);
  return cache->windows[layer];
}

int64_t up_kv_cache_layer_blocks_held(const up_kv_cache *cache, int32_t layer) {
  UP_ASSERT(layer >= 0 && layer < cache->n_layers, "layer %d out of range [0, %d)", layer, cache->n_layers);
  return cache->layer_held[layer];
}

int32_t up_kv_blocks_for_entries(int32_t block_tokens, int64_t entries) {
  UP_ASSERT(entries >= 0, "negative entry count %lld", (long long)entries);
  const int64_t blocks = (entries + block_tokens - 1) / block_tokens;
  /* Saturate: a count this large can never be reserved anyway, and callers compare it. */
  return blocks > INT32_MAX ? INT32_MAX : (int32_t)blocks;
}

int32_t up_kv_cache_blocks_for(const up_kv_cache *cache, int64_t entries) {
  return up_kv_blocks_for_entries(cache->block_tokens, entries);
}

/* After the first step, a step reads a window of W entries and writes one: W + 1
 * consecutive entries, which touch at most ceil(W / block_tokens) + 1 blocks. */
static int64_t window_span_blocks(int32_t block_tokens, int32_t window) {
  return ((int64_t)window + block_tokens - 1) / block_tokens + 1;
}

int32_t up_kv_window_peak_blocks(int32_t block_tokens, int32_t window, int64_t first_step_entries,
                                 int64_t total_entries) {
  UP_ASSERT(window > 0 && first_step_entries >= 0 && first_step_entries <= total_entries,
            "window peak of window %d over %lld entries first of %lld", window, (long long)first_step_entries,
            (long long)total_entries);
  /* The first step stores all its entries before attention reads them; the later
   * steps hold the window's span, and never more than the whole life. */
  const int32_t first = up_kv_blocks_for_entries(block_tokens, first_step_entries);
  const int64_t span = window_span_blocks(block_tokens, window);
  const int32_t life = up_kv_blocks_for_entries(block_tokens, total_entries);
  const int32_t later = span < life ? (int32_t)span : life;
  return first > later ? first : later;
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

/* Take a block from the pool for table index b (which must be free). */
static void hold_block(up_kv_cache *cache, size_t sl, int32_t layer, int32_t b) {
  int32_t *table = table_of(cache, sl);
  UP_ASSERT(table[b] < 0, "table index %d of layer %d already holds block %d", b, layer, table[b]);
  table[b] = up_block_pool_take(&cache->pool);
  cache->seq_layers[sl].blocks_held++;
  cache->layer_held[layer]++;
}

/* Give the block at table index b back to the pool. */
static void drop_block(up_kv_cache *cache, size_t sl, int32_t layer, int32_t b) {
  int32_t *table = table_of(cache, sl);
  UP_ASSERT(table[b] >= 0, "table index %d of layer %d holds no block", b, layer);
  up_block_pool_give(&cache->pool, table[b]);
  table[b] = -1;
  cache->seq_layers[sl].blocks_held--;
  cache->layer_held[layer]--;
}

bool up_kv_cache_reserve_steps(up_kv_cache *cache, int32_t slot, int64_t first_step_entries, int64_t total_entries) {
  assert_slot_in_use(cache, slot);
  UP_ASSERT(first_step_entries >= 0 && first_step_entries <= total_entries,
            "reserve of %lld entries with a first step of %lld", (long long)total_entries,
            (long long)first_step_entries);
  const int32_t wanted = up_kv_cache_blocks_for(cache, total_entries);
  if (wanted > cache->max_blocks_per_seq) return false;

  /* Count first so that a failure takes nothing. */
  int64_t missing = 0;
  for (int32_t layer = 0; layer < cache->n_layers; ++layer) {
    const seq_layer *s = &cache->seq_layers[seq_layer_index(cache, slot, layer)];
    const int32_t w = cache->windows[layer];
    if (w == UP_KV_WINDOW_FULL) {
      if (wanted > s->blocks_held) missing += wanted - s->blocks_held;
    } else if (w > 0) {
      UP_ASSERT(s->entries == 0 && s->claim == 0, "sliding layer %d of slot %d is reserved a second time", layer,
                slot);
      missing += up_kv_window_peak_blocks(cache->block_tokens, w, first_step_entries, total_entries);
    }
  }
  if (missing > up_block_pool_unpromised(&cache->pool)) return false;

  int64_t claimed = 0;
  for (int32_t layer = 0; layer < cache->n_layers; ++layer) {
    const size_t sl = seq_layer_index(cache, slot, layer);
    seq_layer *s = &cache->seq_layers[sl];
    const int32_t w = cache->windows[layer];
    if (w == UP_KV_WINDOW_FULL) {
      while (s->blocks_held < wanted) hold_block(cache, sl, layer, s->blocks_held);
      s->table_end = s->blocks_held;
    } else if (w > 0) {
      s->claim = up_kv_window_peak_blocks(cache->block_tokens, w, first_step_entries, total_entries);
      s->limit = total_entries;
      /* The first step's entries, or the first entry when the first step is empty. */
      const int64_t first_entries = first_step_entries > 0 || total_entries == 0 ? first_step_entries : 1;
      const int32_t first = up_kv_cache_blocks_for(cache, first_entries);
      while (s->table_end < first) hold_block(cache, sl, layer, s->table_end++);
      claimed += s->claim - s->blocks_held;
    }
  }
  up_block_pool_promise(&cache->pool, claimed);
  return true;
}

bool up_kv_cache_reserve(up_kv_cache *cache, int32_t slot, int64_t entries) {
  return up_kv_cache_reserve_steps(cache, slot, entries, entries);
}

/* Give back the blocks at table indices [keep_end, table_end), last first, so that the
 * pool hands them out again in table order. */
static int32_t drop_tail(up_kv_cache *cache, size_t sl, int32_t layer, int32_t keep_end) {
  seq_layer *s = &cache->seq_layers[sl];
  const int32_t *table = table_of(cache, sl);
  int32_t returned = 0;
  while (s->table_end > keep_end && s->table_end > s->first_block) {
    const int32_t b = --s->table_end;
    if (table[b] < 0) continue;
    drop_block(cache, sl, layer, b);
    ++returned;
  }
  return returned;
}

/* A sliding layer's trim: keep the window and the block of the next entry, and lower
 * the claim to what one entry per step can still need. */
static int32_t trim_sliding(up_kv_cache *cache, size_t sl, int32_t layer, int64_t entries) {
  seq_layer *s = &cache->seq_layers[sl];
  if (entries > s->limit) entries = s->limit; /* a trim never grows the reservation */
  const int64_t outstanding = s->claim - s->blocks_held;
  const int64_t next = s->entries < entries ? (int64_t)s->entries + 1 : s->entries;
  const int32_t returned = drop_tail(cache, sl, layer, up_kv_cache_blocks_for(cache, next));
  s->limit = entries;
  const int64_t span = window_span_blocks(cache->block_tokens, cache->windows[layer]);
  const int64_t life = (int64_t)up_kv_cache_blocks_for(cache, entries) - s->first_block;
  int64_t claim = span < life ? span : life;
  if (claim < s->blocks_held) claim = s->blocks_held;
  s->claim = (int32_t)claim;
  up_block_pool_promise(&cache->pool, (s->claim - s->blocks_held) - outstanding);
  return returned;
}

int32_t up_kv_cache_trim(up_kv_cache *cache, int32_t slot, int32_t layer, int64_t entries) {
  assert_slot_in_use(cache, slot);
  const size_t sl = seq_layer_index(cache, slot, layer);
  seq_layer *s = &cache->seq_layers[sl];
  UP_ASSERT(entries >= s->entries, "trim of slot %d layer %d to %lld entries would drop stored ones (%d)", slot,
            layer, (long long)entries, s->entries);
  const int32_t w = cache->windows[layer];
  if (w > 0) return trim_sliding(cache, sl, layer, entries);
  if (w == UP_KV_WINDOW_NO_ENTRIES) return 0;
  return drop_tail(cache, sl, layer, up_kv_cache_blocks_for(cache, entries));
}

void up_kv_cache_release_slot(up_kv_cache *cache, int32_t slot) {
  assert_slot_in_use(cache, slot);
  int64_t unclaimed = 0;
  for (int32_t layer = 0; layer < cache->n_layers; ++layer) {
    const size_t sl = seq_layer_index(cache, slot, layer);
    seq_layer *s = &cache->seq_layers[sl];
    if (s->claim > 0) unclaimed += s->claim - s->blocks_held;
    drop_tail(cache, sl, layer, 0);
    *s = (seq_layer){0};
  }
  up_block_pool_promise(&cache->pool, -unclaimed);
  cache->slot_in_use[slot] = false;
}

int32_t up_kv_cache_len(const up_kv_cache *cache, int32_t slot, int32_t layer) {
  return cache->seq_layers[seq_layer_index(cache, slot, layer)].entries;
}

/* After an append at a sliding layer: give back the blocks wholly before entry
 * len - W (no later query reads them), keeping their share of the claim for the
 * blocks to come, then take the block of the next entry if the life has one. */
static void slide_window(up_kv_cache *cache, size_t sl, int32_t layer) {
  seq_layer *s = &cache->seq_layers[sl];
  const int64_t behind = (int64_t)s->entries - cache->windows[layer];
  const int32_t dead_end = behind > 0 ? (int32_t)(behind / cache->block_tokens) : 0;
  const int32_t *table = table_of(cache, sl);
  int32_t given = 0;
  for (; s->first_block < dead_end; ++s->first_block) {
    if (table[s->first_block] < 0) continue;
    drop_block(cache, sl, layer, s->first_block);
    ++given;
  }
  up_block_pool_promise(&cache->pool, given);
  const int32_t next_block = s->entries / cache->block_tokens;
  if (s->entries < s->limit && next_block >= s->table_end) {
    UP_ASSERT(s->blocks_held < s->claim && next_block < cache->max_blocks_per_seq,
              "sliding layer %d holds %d blocks of its claim of %d at entry %d", layer, s->blocks_held, s->claim,
              s->entries);
    up_block_pool_promise(&cache->pool, -1);
    hold_block(cache, sl, layer, next_block);
    s->table_end = next_block + 1;
  }
}

void up_kv_cache_append(up_kv_cache *cache, int32_t slot, int32_t layer, int32_t entries) {
  assert_slot_in_use(cache, slot);
  const size_t sl = seq_layer_index(cache, slot, layer);
  seq_layer *s = &cache->seq_layers[sl];
  UP_ASSERT(entries >= 0, "negative append of %d entries", entries);
  const int64_t new_len = (int64_t)s->entries + entries;
  const int32_t w = cache->windows[layer];
  UP_ASSERT(w == UP_KV_WINDOW_NO_ENTRIES || new_len <= (int64_t)s->table_end * cache->block_tokens,
            "append of %d entries to slot %d layer %d (len %d) exceeds its %d reserved blocks", entries, slot, layer,
            s->entries, s->table_end);
  UP_ASSERT(new_len <= INT32_MAX, "slot %d layer %d grows past %d entries", slot, layer, INT32_MAX);
  s->entries = (int32_t)new_len;
  if (w > 0) slide_window(cache, sl, layer);
}

int32_t up_kv_cache_blocks_held(const up_kv_cache *cache, int32_t slot, int32_t layer) {
  return cache->seq_layers[seq_layer_index(cache, slot, layer)].blocks_held;
}

const int32_t *up_kv_cache_block_table(const up_kv_cache *cache, int32_t slot, int32_t layer) {
  return table_of(cache, seq_layer_index(cache, slot, layer));
}

int32_t up_kv_cache_slot_of(const up_kv_cache *cache, int32_t slot, int32_t layer, int32_t index) {
  const size_t sl = seq_layer_index(cache, slot, layer);
  const seq_layer *s = &cache->seq_layers[sl];
  const int32_t bt = cache->block_tokens;
  UP_ASSERT(index >= 0 && index / bt >= s->first_block && index / bt < s->table_end && table_of(cache, sl)[index / bt] >= 0,
            "entry %d of slot %d layer %d lies outside its blocks %d..%d", index, slot, layer, s->first_block,
            s->table_end - 1);
  return table_of(cache, sl)[index / bt] * bt + index % bt;
}
