/* layer_memory.c — the layer-memory door (see layer_memory.h): a paged KV cache whose
 * layers carry the layout's windows (recurrent layers keep no entries there) and a
 * pool of recurrent state slots, booked together per sequence slot. */
#include "engine/memory/layer_memory.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/fatal.h"
#include "engine/memory/state_pool.h"

struct up_layer_memory {
  up_memory_layout layout;
  bool has_recurrent;
  up_kv_cache *kv;
  up_state_pool *states;
  int32_t *state_of_slot; /* [max_seqs], -1 where none */
  int32_t max_seqs;
};

up_layer_memory *up_layer_memory_create(const up_memory_layout *layout, const up_layer_memory_capacity *capacity) {
  UP_ASSERT(layout->n_layers >= 1 && layout->n_layers <= UP_MAX_LAYERS, "layer memory of %d layers",
            layout->n_layers);
  up_layer_memory *mem = up_calloc_or_die(1, sizeof *mem, "layer memory");
  mem->layout = *layout;
  mem->max_seqs = capacity->max_seqs;
  int32_t windows[UP_MAX_LAYERS];
  for (int32_t l = 0; l < layout->n_layers; ++l) {
    switch (layout->kind[l]) {
      case UP_MEMORY_FULL_KV: windows[l] = UP_KV_WINDOW_FULL; break;
      case UP_MEMORY_SLIDING_KV:
        UP_ASSERT(layout->window[l] >= 1, "sliding layer %d has window %d", l, layout->window[l]);
        windows[l] = layout->window[l];
        break;
      case UP_MEMORY_RECURRENT:
        UP_ASSERT(layout->state_bytes[l] >= 1, "recurrent layer %d has a state of %lld bytes", l,
                  (long long)layout->state_bytes[l]);
        windows[l] = UP_KV_WINDOW_NO_ENTRIES;
        mem->has_recurrent = true;
        break;
      default: UP_FATAL("layer memory: layer %d has unknown kind %d", l, (int)layout->kind[l]);
    }
  }
  mem->kv = up_kv_cache_create_windowed(capacity->kv_blocks, layout->block_tokens, layout->n_layers, windows,
                                        capacity->max_seqs, capacity->max_blocks_per_seq);
  mem->states = up_state_pool_create(capacity->state_slots);
  mem->state_of_slot = up_malloc_or_die(sizeof(int32_t) * (size_t)capacity->max_seqs, "state slot per sequence");
  for (int32_t s = 0; s < capacity->max_seqs; ++s) mem->state_of_slot[s] = -1;
  return mem;
}

void up_layer_memory_destroy(up_layer_memory *mem) {
  if (!mem) return;
  up_kv_cache_destroy(mem->kv);
  up_state_pool_destroy(mem->states);
  free(mem->state_of_slot);
  free(mem);
}

const up_memory_layout *up_layer_memory_layout(const up_layer_memory *mem) { return &mem->layout; }
int32_t up_layer_memory_max_blocks_per_seq(const up_layer_memory *mem) { return up_kv_cache_max_blocks_per_seq(mem->kv); }
up_kv_cache *up_layer_memory_kv(up_layer_memory *mem) { return mem->kv; }

bool up_layer_memory_could_hold(const up_layer_memory *mem, const up_memory_need *need, char *why, size_t why_size) {
  const int32_t max_per_seq = up_kv_cache_max_blocks_per_seq(mem->kv);
  if (need->table_blocks > max_per_seq)
    return up_error(why, why_size, "request needs %d KV blocks per layer, more than the %d a sequence may hold",
                    need->table_blocks, max_per_seq);
  const int64_t full = need->blocks[UP_MEMORY_FULL_KV], sliding = need->blocks[UP_MEMORY_SLIDING_KV];
  const int32_t pool = up_kv_cache_total_blocks(mem->kv);
  if (full + sliding > pool) {
    const int32_t n_full = up_memory_layout_layers_of(&mem->layout, UP_MEMORY_FULL_KV);
    const int32_t n_sliding = up_memory_layout_layers_of(&mem->layout, UP_MEMORY_SLIDING_KV);
    if (n_sliding == 0)
      return up_error(why, why_size, "request needs %lld KV blocks (%d per layer x %d layers), more than the %d in "
                      "the cache", (long long)full, need->table_blocks, n_full, pool);
    return up_error(why, why_size, "request needs %lld KV blocks at once (%lld at %d full-attention layers, %lld at "
                    "%d sliding-window layers), more than the %d in the cache", (long long)(full + sliding),
                    (long long)full, n_full, (long long)sliding, n_sliding, pool);
  }
  if (need->state_slots > up_state_pool_capacity(mem->states))
    return up_error(why, why_size, "request needs a recurrent-state slot, and the state pool has %d",
                    up_state_pool_capacity(mem->states));
  return true;
}

int32_t up_layer_memory_acquire(up_layer_memory *mem) { return up_kv_cache_acquire_slot(mem->kv); }

bool up_layer_memory_reserve(up_layer_memory *mem, int32_t slot, int64_t first_step_entries, int64_t total_entries) {
  UP_ASSERT(slot >= 0 && slot < mem->max_seqs && mem->state_of_slot[slot] < 0,
            "reserve for slot %d, which is out of range or already holds a state", slot);
  /* The state slot is checked before and taken after the blocks, so a failure of
   * either takes nothing. */
  if (mem->has_recurrent && up_state_pool_in_use(mem->states) >= up_state_pool_capacity(mem->states)) return false;
  if (!up_kv_cache_reserve_steps(mem->kv, slot, first_step_entries, total_entries)) return false;
  if (mem->has_recurrent) mem->state_of_slot[slot] = up_state_pool_acquire(mem->states);
  return true;
}

int32_t up_layer_memory_trim(up_layer_memory *mem, int32_t slot, int32_t layer, int64_t entries) {
  return up_kv_cache_trim(mem->kv, slot, layer, entries);
}

void up_layer_memory_release(up_layer_memory *mem, int32_t slot) {
  up_kv_cache_release_slot(mem->kv, slot);
  if (mem->state_of_slot[slot] >= 0) up_state_pool_release(mem->states, mem->state_of_slot[slot]);
  mem->state_of_slot[slot] = -1;
}

void up_layer_memory_append(up_layer_memory *mem, int32_t slot, int32_t layer, int32_t entries) {
  up_kv_cache_append(mem->kv, slot, layer, entries);
}

int32_t up_layer_memory_len(const up_layer_memory *mem, int32_t slot, int32_t layer) {
  return up_kv_cache_len(mem->kv, slot, layer);
}

int32_t up_layer_memory_state_slot(const up_layer_memory *mem, int32_t slot) {
  UP_ASSERT(slot >= 0 && slot < mem->max_seqs, "slot %d out of range [0, %d)", slot, mem->max_seqs);
  return mem->state_of_slot[slot];
}

int64_t up_layer_memory_counted_entries(const up_layer_memory *mem, int32_t slot, int32_t layer) {
  return up_memory_layout_counted_entries(&mem->layout, layer, up_kv_cache_len(mem->kv, slot, layer));
}

int32_t up_layer_memory_blocks_held(const up_layer_memory *mem, int32_t slot, int32_t layer) {
  return up_kv_cache_blocks_held(mem->kv, slot, layer);
}

up_layer_memory_usage up_layer_memory_usage_now(const up_layer_memory *mem) {
  up_layer_memory_usage u = {
      .blocks_total = up_kv_cache_total_blocks(mem->kv),
      .blocks_in_use = up_kv_cache_total_blocks(mem->kv) - up_kv_cache_free_blocks(mem->kv),
      .blocks_peak = up_kv_cache_peak_blocks(mem->kv),
      .blocks_promised = up_kv_cache_promised_blocks(mem->kv),
      .state_slots_total = up_state_pool_capacity(mem->states),
      .state_slots_in_use = up_state_pool_in_use(mem->states),
      .state_slots_peak = up_state_pool_peak(mem->states),
  };
  const int64_t block_bytes = up_memory_layout_block_bytes(&mem->layout);
  for (int32_t l = 0; l < mem->layout.n_layers; ++l)
    if (mem->layout.kind[l] != UP_MEMORY_RECURRENT)
      u.bytes_held[mem->layout.kind[l]] += up_kv_cache_layer_blocks_held(mem->kv, l) * block_bytes;
  u.bytes_held[UP_MEMORY_RECURRENT] = (int64_t)u.state_slots_in_use * up_memory_layout_state_bytes(&mem->layout);
  return u;
}
