/* block_pool.c — the free stack of KV block ids with its promise and peak counters
 * (see block_pool.h). Taking more than is free, or promising more than is free, is a
 * program bug: the callers check up_block_pool_unpromised first. */
#include "engine/memory/block_pool.h"

#include <stdlib.h>

#include "core/fatal.h"

void up_block_pool_init(up_block_pool *pool, int32_t n_blocks) {
  UP_ASSERT(n_blocks >= 1, "block pool needs at least one block (got %d)", n_blocks);
  pool->n_blocks = n_blocks;
  pool->free_stack = up_malloc_or_die(sizeof(int32_t) * (size_t)n_blocks, "kv cache free blocks");
  /* Lowest ids on top, so a fresh pool hands out blocks 0, 1, 2, ... */
  for (int32_t i = 0; i < n_blocks; ++i) pool->free_stack[i] = n_blocks - 1 - i;
  pool->n_free = n_blocks;
  pool->n_promised = 0;
  pool->peak_in_use = 0;
}

void up_block_pool_free(up_block_pool *pool) {
  free(pool->free_stack);
  pool->free_stack = NULL;
}

int64_t up_block_pool_unpromised(const up_block_pool *pool) { return pool->n_free - pool->n_promised; }

int32_t up_block_pool_in_use(const up_block_pool *pool) { return pool->n_blocks - pool->n_free; }

int32_t up_block_pool_take(up_block_pool *pool) {
  UP_ASSERT(pool->n_free > 0, "take from an empty block pool of %d blocks", pool->n_blocks);
  const int32_t block = pool->free_stack[--pool->n_free];
  const int32_t in_use = up_block_pool_in_use(pool);
  if (in_use > pool->peak_in_use) pool->peak_in_use = in_use;
  return block;
}

void up_block_pool_give(up_block_pool *pool, int32_t block) {
  UP_ASSERT(block >= 0 && block < pool->n_blocks && pool->n_free < pool->n_blocks,
            "block %d given back to a pool of %d blocks with %d free", block, pool->n_blocks, pool->n_free);
  pool->free_stack[pool->n_free++] = block;
}

void up_block_pool_promise(up_block_pool *pool, int64_t delta) {
  pool->n_promised += delta;
  UP_ASSERT(pool->n_promised >= 0 && pool->n_promised <= pool->n_free,
            "block pool promises %lld blocks with %d free", (long long)pool->n_promised, pool->n_free);
}
