/* kv_cache.h — bookkeeping of the paged KV cache: one pool of fixed-size blocks shared
 * by all layers, and for each sequence slot one block table and one entry count per
 * layer (UniPrefill leaves later layers with fewer entries than earlier ones). A layer
 * keeps either every entry (full attention), only its last W entries (sliding window:
 * blocks wholly behind the window go back to the pool after each append), or no entry
 * at all (a recurrent layer: appends are counted, its state lives elsewhere). Owns only
 * host-side indices; the K/V storage itself is an up_kv_pool in backend memory. The
 * forward pass reads lengths, tables and slots from here; the serving code reaches it
 * through the layer-memory door (layer_memory.h). */
#ifndef UP_KV_CACHE_H
#define UP_KV_CACHE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct up_kv_cache up_kv_cache;

/* Per-layer window values: 0 keeps every entry, W > 0 the last W, and this one none. */
#define UP_KV_WINDOW_FULL 0
#define UP_KV_WINDOW_NO_ENTRIES (-1)

/* A cache of n_blocks blocks of block_tokens entries for n_layers full-attention layers
 * and at most max_seqs concurrent sequences, each at most max_blocks_per_seq blocks per
 * layer. */
up_kv_cache *up_kv_cache_create(int32_t n_blocks, int32_t block_tokens, int32_t n_layers, int32_t max_seqs,
                                int32_t max_blocks_per_seq);
/* The same with each layer's window (UP_KV_WINDOW_FULL, W > 0, UP_KV_WINDOW_NO_ENTRIES). */
up_kv_cache *up_kv_cache_create_windowed(int32_t n_blocks, int32_t block_tokens, int32_t n_layers,
                                         const int32_t *layer_windows, int32_t max_seqs, int32_t max_blocks_per_seq);
void up_kv_cache_destroy(up_kv_cache *cache);

int32_t up_kv_cache_block_tokens(const up_kv_cache *cache);
int32_t up_kv_cache_total_blocks(const up_kv_cache *cache);
int32_t up_kv_cache_free_blocks(const up_kv_cache *cache);
int32_t up_kv_cache_max_blocks_per_seq(const up_kv_cache *cache);
int32_t up_kv_cache_layers(const up_kv_cache *cache);
int32_t up_kv_cache_window(const up_kv_cache *cache, int32_t layer);
int32_t up_kv_cache_blocks_for(const up_kv_cache *cache, int64_t entries);

/* Blocks that hold `entries` entries from index 0 (saturating at INT32_MAX). */
int32_t up_kv_blocks_for_entries(int32_t block_tokens, int64_t entries);
/* The most blocks a sliding-window layer holds at once for a sequence whose first step
 * appends first_step_entries entries (all stored before attention reads them) and whose
 * life appends total_entries, one per step after the first. */
int32_t up_kv_window_peak_blocks(int32_t block_tokens, int32_t window, int64_t first_step_entries,
                                 int64_t total_entries);

/* Take a free sequence slot, or -1 when all max_seqs are in use. */
int32_t up_kv_cache_acquire_slot(up_kv_cache *cache);
/* Reserve room for `entries` entries at every layer of the slot: all or nothing.
 * Returns false (taking nothing) when the pool lacks blocks or a table would overflow.
 * The same as up_kv_cache_reserve_steps(cache, slot, entries, entries). */
bool up_kv_cache_reserve(up_kv_cache *cache, int32_t slot, int64_t entries);
/* Reserve for a sequence whose first step appends first_step_entries and whose life
 * appends total_entries: full layers take the blocks of all total_entries now (and a
 * second call grows them); a sliding layer (which must be empty) takes the blocks of
 * its first step and a claim on the pool for its peak (up_kv_window_peak_blocks),
 * and takes further blocks from that claim as entries are appended. All or nothing. */
bool up_kv_cache_reserve_steps(up_kv_cache *cache, int32_t slot, int64_t first_step_entries, int64_t total_entries);
/* Lower one layer's reservation to `entries` entries over the sequence's life (no fewer
 * than it stores): a full layer gives back the blocks beyond them; a sliding layer the
 * blocks beyond its next entry, and its claim down to the peak of one entry per step.
 * Returns the number of blocks given back to the pool. */
int32_t up_kv_cache_trim(up_kv_cache *cache, int32_t slot, int32_t layer, int64_t entries);
/* Free all blocks and claims of the slot and the slot itself. */
void up_kv_cache_release_slot(up_kv_cache *cache, int32_t slot);

/* Entries appended at a layer (a sliding layer counts those behind its window too), and
 * the append that records new ones (they must fit the reservation). At a sliding layer
 * the append then gives back the blocks that lie wholly before entry len - W and takes
 * the block of the next entry when the reservation has one. */
int32_t up_kv_cache_len(const up_kv_cache *cache, int32_t slot, int32_t layer);
void up_kv_cache_append(up_kv_cache *cache, int32_t slot, int32_t layer, int32_t entries);
/* Blocks held at a layer and the table itself (max_blocks_per_seq entries indexed by
 * entry / block_tokens; -1 where no block is held: not yet taken, or behind a window). */
int32_t up_kv_cache_blocks_held(const up_kv_cache *cache, int32_t slot, int32_t layer);
const int32_t *up_kv_cache_block_table(const up_kv_cache *cache, int32_t slot, int32_t layer);
/* Pool slot (block * block_tokens + offset) of entry `index` at a layer. */
int32_t up_kv_cache_slot_of(const up_kv_cache *cache, int32_t slot, int32_t layer, int32_t index);

/* Accounting: blocks held at a layer summed over sequences, the most blocks ever in use
 * at once, and blocks claimed by reservations but not yet taken. */
int64_t up_kv_cache_layer_blocks_held(const up_kv_cache *cache, int32_t layer);
int32_t up_kv_cache_peak_blocks(const up_kv_cache *cache);
int64_t up_kv_cache_promised_blocks(const up_kv_cache *cache);

#endif
