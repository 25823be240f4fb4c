/* state_pool.h — the fixed-size recurrent states of linear-attention layers: a pool of
 * state slots, one per sequence that holds any (each slot has room for that sequence's
 * state at every recurrent layer). Indices only: the state storage is backend memory
 * sized capacity x bytes per slot, addressed by these indices. Running out of slots is
 * a normal outcome, like running out of KV blocks. */
#ifndef UP_STATE_POOL_H
#define UP_STATE_POOL_H

#include <stdint.h>

typedef struct up_state_pool up_state_pool;

/* A pool of `capacity` state slots (0: a model without recurrent layers). */
up_state_pool *up_state_pool_create(int32_t capacity);
void up_state_pool_destroy(up_state_pool *pool);

/* The lowest free state slot, or -1 when all are taken. */
int32_t up_state_pool_acquire(up_state_pool *pool);
void up_state_pool_release(up_state_pool *pool, int32_t state_slot);

int32_t up_state_pool_capacity(const up_state_pool *pool);
int32_t up_state_pool_in_use(const up_state_pool *pool);
int32_t up_state_pool_peak(const up_state_pool *pool);

#endif
