/* block_pool.h — the pool of KV block ids that every paged layer draws from: a free
 * stack, the blocks promised to reservations but not yet taken (a sliding-window layer
 * takes its blocks as its sequence grows), and the in-use peak. Ids only: the K/V
 * storage is the backend's up_kv_pool. Knows nothing of layers or sequences. */
#ifndef UP_BLOCK_POOL_H
#define UP_BLOCK_POOL_H

#include <stdint.h>

typedef struct up_block_pool {
  int32_t n_blocks;
  int32_t *free_stack; /* [n_blocks]; the top is handed out next */
  int32_t n_free;
  int64_t n_promised;  /* free blocks that reservations may still take */
  int32_t peak_in_use;
} up_block_pool;

/* A pool of n_blocks ids, handing out 0, 1, 2, ... while nothing is given back. */
void up_block_pool_init(up_block_pool *pool, int32_t n_blocks);
void up_block_pool_free(up_block_pool *pool);

/* Free blocks no reservation has a claim on: what a new reservation may count on. */
int64_t up_block_pool_unpromised(const up_block_pool *pool);
int32_t up_block_pool_in_use(const up_block_pool *pool);

/* Take the block on top of the free stack (there must be one) / give one back on top. */
int32_t up_block_pool_take(up_block_pool *pool);
void up_block_pool_give(up_block_pool *pool, int32_t block);

/* Add (delta > 0) or withdraw (delta < 0) claims on free blocks. */
void up_block_pool_promise(up_block_pool *pool, int64_t delta);

#endif
