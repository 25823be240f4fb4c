/* step_sync.h — how the ranks of a tensor-parallel group run the same serving steps
 * (../shared/PARALLEL.md 7.3): the group's first rank (the leader) owns the workload
 * clock, the arrivals and the sampled tokens, and sends them to the others in a compact
 * step descriptor; every rank feeds the same inputs to its own scheduler and layer
 * memory, so they plan the same steps with the same block ids, which a hash of each
 * plan and its block tables checks. Followers never read their own clock. A group of
 * one sends nothing. Host data travels through a small staging buffer of the
 * backend's memory, where the communicator's buffers live. */
#ifndef UP_STEP_SYNC_H
#define UP_STEP_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/memory/layer_memory.h"
#include "engine/parallel/tp_comm.h"
#include "engine/serve/request.h"
#include "engine/serve/scheduler.h"
#include "kernels/ops.h"

typedef struct up_step_sync up_step_sync;

up_step_sync *up_step_sync_create(up_tp_comm *tp, up_backend *be, int32_t n_layers);
void up_step_sync_destroy(up_step_sync *sync);

/* True on the rank that runs the workload and records (tp rank 0). */
bool up_step_sync_is_leader(const up_step_sync *sync);

/* The smallest value over the group (the KV pool and the workspace are sized as the
 * rank with the least memory allows, so every rank plans the same steps). */
int64_t up_step_sync_min_i64(up_step_sync *sync, int64_t value, const char *what);

/* The leader's arrivals and clock to every rank: on the leader, *now_s and arrivals[0 ..
 * *n) are sent; on a follower they are replaced by the leader's (requests allocated
 * here, as a workload's poll allocates them; at most cap). */
void up_step_sync_arrivals(up_step_sync *sync, double *now_s, up_request **arrivals, int32_t *n, int32_t cap);

/* The leader's flag (its end-of-point decision) to every rank. */
bool up_step_sync_flag(up_step_sync *sync, bool flag);

/* The leader's sampled tokens of a step and its end time to every rank. */
void up_step_sync_outcome(up_step_sync *sync, int32_t *next_tokens, int32_t n, double *end_s);

/* Every check_every-th step (0: never): the plan (request ids, slots, token counts,
 * prompt offsets) and its block tables at every layer hashed and compared over the
 * group; a mismatch is fatal, naming the step. */
void up_step_sync_check_plan(up_step_sync *sync, const up_step_plan *plan, up_kv_cache *cache, int64_t step,
                             int32_t check_every);

#endif
