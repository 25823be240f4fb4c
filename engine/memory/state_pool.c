/* state_pool.c — the recurrent state slots (see state_pool.h): a flag per slot and
 * the in-use peak. Releasing a slot that is not taken is a program bug. */
#include "engine/memory/state_pool.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/fatal.h"

struct up_state_pool {
  int32_t capacity;
  bool *taken;  /* [capacity] */
  int32_t in_use;
  int32_t peak;
};

up_state_pool *up_state_pool_create(int32_t capacity) {
  UP_ASSERT(capacity >= 0, "state pool of %d slots", capacity);
  up_state_pool *pool = up_calloc_or_die(1, sizeof *pool, "state pool");
  pool->capacity = capacity;
  pool->taken = up_calloc_or_die(capacity > 0 ? (size_t)capacity : 1, sizeof(bool), "state slots");
  return pool;
}

void up_state_pool_destroy(up_state_pool *pool) {
  if (!pool) return;
  free(pool->taken);
  free(pool);
}

int32_t up_state_pool_acquire(up_state_pool *pool) {
  for (int32_t i = 0; i < pool->capacity; ++i) {
    if (pool->taken[i]) continue;
    pool->taken[i] = true;
    if (++pool->in_use > pool->peak) pool->peak = pool->in_use;
    return i;
  }
  return -1;
}

void up_state_pool_release(up_state_pool *pool, int32_t state_slot) {
  UP_ASSERT(state_slot >= 0 && state_slot < pool->capacity && pool->taken[state_slot],
            "state slot %d released but not taken (pool of %d)", state_slot, pool->capacity);
  pool->taken[state_slot] = false;
  --pool->in_use;
}

int32_t up_state_pool_capacity(const up_state_pool *pool) { return pool->capacity; }
int32_t up_state_pool_in_use(const up_state_pool *pool) { return pool->in_use; }
int32_t up_state_pool_peak(const up_state_pool *pool) { return pool->peak; }
