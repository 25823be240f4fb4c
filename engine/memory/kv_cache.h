/* kv_cache.h — bookkeeping of the paged KV cache: a pool of fixed-size blocks shared by
 * all layers, and for each sequence slot one block table and one entry count per layer
 * (UniPrefill leaves later layers with fewer entries than earlier ones). Owns only
 * host-side indices; the K/V storage itself is an up_kv_pool in backend memory. */
#ifndef UP_KV_CACHE_H
#define UP_KV_CACHE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct up_kv_cache up_kv_cache;

/* A cache of n_blocks blocks of block_tokens entries for n_layers layers and at most
 * max_seqs concurrent sequences, each at most max_blocks_per_seq blocks per layer. */
up_kv_cache *up_kv_cache_create(int32_t n_blocks, int32_t block_tokens, int32_t n_layers, int32_t max_seqs,
                                int32_t max_blocks_per_seq);
void up_kv_cache_destroy(up_kv_cache *cache);

int32_t up_kv_cache_block_tokens(const up_kv_cache *cache);
int32_t up_kv_cache_total_blocks(const up_kv_cache *cache);
int32_t up_kv_cache_free_blocks(const up_kv_cache *cache);
int32_t up_kv_cache_max_blocks_per_seq(const up_kv_cache *cache);
int32_t up_kv_cache_layers(const up_kv_cache *cache);
int32_t up_kv_cache_blocks_for(const up_kv_cache *cache, int64_t entries);

/* Take a free sequence slot, or -1 when all max_seqs are in use. */
int32_t up_kv_cache_acquire_slot(up_kv_cache *cache);
/* Reserve room for `entries` entries at every layer of the slot: all or nothing.
 * Returns false (taking nothing) when the pool lacks blocks or a table would overflow. */
bool up_kv_cache_reserve(up_kv_cache *cache, int32_t slot, int64_t entries);
/* Give back the blocks of one layer beyond what `entries` entries need. Returns the
 * number of blocks returned to the pool. */
int32_t up_kv_cache_trim(up_kv_cache *cache, int32_t slot, int32_t layer, int64_t entries);
/* Free all blocks of the slot and the slot itself. */
void up_kv_cache_release_slot(up_kv_cache *cache, int32_t slot);

/* Entries stored at a layer, and the append that records new ones (must fit the reservation). */
int32_t up_kv_cache_len(const up_kv_cache *cache, int32_t slot, int32_t layer);
void up_kv_cache_append(up_kv_cache *cache, int32_t slot, int32_t layer, int32_t entries);
/* Blocks held at a layer and the table itself (max_blocks_per_seq entries, unused ones -1). */
int32_t up_kv_cache_blocks_held(const up_kv_cache *cache, int32_t slot, int32_t layer);
const int32_t *up_kv_cache_block_table(const up_kv_cache *cache, int32_t slot, int32_t layer);
/* Pool slot (block * block_tokens + offset) of entry `index` at a layer. */
int32_t up_kv_cache_slot_of(const up_kv_cache *cache, int32_t slot, int32_t layer, int32_t index);

#endif
