/* layer_memory.h — the one door to what the layers of a model keep per sequence: paged
 * full KV, paged sliding-window KV (blocks wholly behind the window go back to the
 * pool) and fixed-size recurrent state slots, per the model's memory layout
 * (memory_layout.h). The serving code reserves, trims and releases per scheduler slot
 * here, all layers at once and all or nothing; the forward pass reads lengths, block
 * tables and pool slots through up_layer_memory_kv and appends there. Owns host-side
 * indices only: K/V and state storage are backend memory sized from the same layout. */
#ifndef UP_LAYER_MEMORY_H
#define UP_LAYER_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/memory/kv_cache.h"
#include "engine/memory/memory_layout.h"

typedef struct up_layer_memory_capacity {
  int32_t kv_blocks;          /* blocks in the paged pool, shared by every paged layer */
  int32_t max_seqs;           /* sequence slots */
  int32_t max_blocks_per_seq; /* length of one layer's block table */
  int32_t state_slots;        /* recurrent state slots (0 without recurrent layers) */
} up_layer_memory_capacity;

typedef struct up_layer_memory up_layer_memory;

up_layer_memory *up_layer_memory_create(const up_memory_layout *layout, const up_layer_memory_capacity *capacity);
void up_layer_memory_destroy(up_layer_memory *mem);

const up_memory_layout *up_layer_memory_layout(const up_layer_memory *mem);
int32_t up_layer_memory_max_blocks_per_seq(const up_layer_memory *mem);
/* The paged KV bookkeeping the forward pass reads and appends to (kv_cache.h). */
up_kv_cache *up_layer_memory_kv(up_layer_memory *mem);

/* True when a request needing `need` (up_memory_layout_need) fits this memory while it
 * is otherwise empty; else false with the reason (it can never run here). */
bool up_layer_memory_could_hold(const up_layer_memory *mem, const up_memory_need *need, char *why, size_t why_size);

/* --- per scheduler slot ---------------------------------------------------- */
/* A free sequence slot, or -1 when all are in use. */
int32_t up_layer_memory_acquire(up_layer_memory *mem);
/* Room for a sequence whose first step appends first_step_entries and whose life
 * appends total_entries, at every layer, plus a recurrent state slot when the model
 * has recurrent layers: all or nothing (false takes nothing; the slot stays acquired). */
bool up_layer_memory_reserve(up_layer_memory *mem, int32_t slot, int64_t first_step_entries, int64_t total_entries);
/* Lower one layer's reservation to `entries` over the sequence's life (after a
 * prefill: what the layer holds plus the decodes to come). Returns blocks given back. */
int32_t up_layer_memory_trim(up_layer_memory *mem, int32_t slot, int32_t layer, int64_t entries);
/* Give back everything the slot holds, and the slot. */
void up_layer_memory_release(up_layer_memory *mem, int32_t slot);

/* --- per step --------------------------------------------------------------- */
void up_layer_memory_append(up_layer_memory *mem, int32_t slot, int32_t layer, int32_t entries);
int32_t up_layer_memory_len(const up_layer_memory *mem, int32_t slot, int32_t layer);
/* The sequence's recurrent state slot, or -1 when it holds none. */
int32_t up_layer_memory_state_slot(const up_layer_memory *mem, int32_t slot);

/* --- accounting ------------------------------------------------------------- */
/* Entries the layer counts for the records (up_memory_layout_counted_entries). */
int64_t up_layer_memory_counted_entries(const up_layer_memory *mem, int32_t slot, int32_t layer);
int32_t up_layer_memory_blocks_held(const up_layer_memory *mem, int32_t slot, int32_t layer);

typedef struct up_layer_memory_usage {
  int32_t blocks_total;
  int32_t blocks_in_use;
  int32_t blocks_peak;      /* most blocks in use at once so far */
  int64_t blocks_promised;  /* free blocks sliding layers' reservations may still take */
  int64_t bytes_held[UP_MEMORY_KIND_COUNT]; /* blocks held at the kind's layers x block bytes; states */
  int32_t state_slots_total;
  int32_t state_slots_in_use;
  int32_t state_slots_peak;
} up_layer_memory_usage;

up_layer_memory_usage up_layer_memory_usage_now(const up_layer_memory *mem);

#endif
