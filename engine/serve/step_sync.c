/* step_sync.c — the tensor-parallel group's step descriptor (step_sync.h): the
 * leader's clock, arrivals (with their prompts), end decisions and sampled tokens
 * broadcast to the followers, the group's minimum of a size, and the hash that checks
 * every rank planned the same step. Owns its staging buffer; touches no scheduler
 * state (the serving loop feeds the scheduler what arrives here). */
#include "engine/serve/step_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

struct up_step_sync {
  up_tp_comm *tp;
  up_backend *be;
  int32_t n_layers;
  void *staging;         /* backend memory */
  size_t staging_bytes;
};

/* One request's spec as the descriptor carries it (its prompt follows). */
typedef struct arrival_header {
  int64_t id;
  double arrival_s;
  int32_t prompt_len;
  int32_t output_len;
} arrival_header;

up_step_sync *up_step_sync_create(up_tp_comm *tp, up_backend *be, int32_t n_layers) {
  up_step_sync *sync = up_calloc_or_die(1, sizeof *sync, "step synchronisation");
  *sync = (up_step_sync){.tp = tp, .be = be, .n_layers = n_layers};
  return sync;
}

void up_step_sync_destroy(up_step_sync *sync) {
  if (!sync) return;
  if (sync->staging) sync->be->ops->free(sync->be, sync->staging);
  free(sync);
}

bool up_step_sync_is_leader(const up_step_sync *sync) { return sync->tp->rank == 0; }

/* Staging for `bytes` (rounded up to whole int32 words, the unit the copies move). */
static void *staging(up_step_sync *sync, size_t bytes) {
  if (bytes > sync->staging_bytes) {
    if (sync->staging) sync->be->ops->free(sync->be, sync->staging);
    sync->staging_bytes = bytes > 4096 ? bytes : 4096;
    sync->staging = sync->be->ops->alloc(sync->be, sync->staging_bytes, "step descriptor staging");
  }
  return sync->staging;
}

/* The leader's `bytes` of host memory at buf to every rank's buf. */
static void broadcast_host(up_step_sync *sync, void *buf, size_t bytes, const char *what) {
  if (sync->tp->size == 1 || bytes == 0) return;
  const size_t words = (bytes + 3) / 4;
  int32_t *host = up_calloc_or_die(words, sizeof(int32_t), "step descriptor");
  memcpy(host, buf, bytes);
  int32_t *dev = staging(sync, words * 4);
  if (sync->tp->rank == 0) sync->be->ops->upload_i32(sync->be, dev, host, words);
  sync->tp->ops->broadcast(sync->tp, dev, words, UP_COMM_I32, 0, what);
  sync->be->ops->download_i32(sync->be, host, dev, words);
  memcpy(buf, host, bytes);
  free(host);
}

int64_t up_step_sync_min_i64(up_step_sync *sync, int64_t value, const char *what) {
  const int32_t n = sync->tp->size;
  if (n == 1) return value;
  int64_t *all = up_malloc_or_die(sizeof(int64_t) * (size_t)n, "group values");
  int32_t *dev = staging(sync, sizeof(int64_t) * (size_t)(n + 1));
  int32_t *mine = dev + 2 * n; /* after the gathered values */
  sync->be->ops->upload_i32(sync->be, mine, (const int32_t *)(const void *)&value, 2);
  sync->tp->ops->all_gather(sync->tp, mine, dev, 1, UP_COMM_U64, what);
  sync->be->ops->download_i32(sync->be, (int32_t *)(void *)all, dev, 2 * (size_t)n);
  int64_t least = all[0];
  for (int32_t r = 1; r < n; ++r) least = all[r] < least ? all[r] : least;
  free(all);
  return least;
}

void up_step_sync_arrivals(up_step_sync *sync, double *now_s, up_request **arrivals, int32_t *n, int32_t cap) {
  if (sync->tp->size == 1) return;
  const bool leader = up_step_sync_is_leader(sync);
  struct {
    double now_s;
    int32_t n;
    int32_t prompt_tokens;
  } head = {*now_s, *n, 0};
  if (leader)
    for (int32_t i = 0; i < *n; ++i) head.prompt_tokens += arrivals[i]->prompt_len;
  broadcast_host(sync, &head, sizeof head, "step descriptor");
  UP_ASSERT(head.n <= cap, "the leader sent %d arrivals for room of %d", (int)head.n, (int)cap);
  *now_s = head.now_s;
  *n = head.n;
  if (head.n == 0) return;
  const size_t header_bytes = sizeof(arrival_header) * (size_t)head.n;
  const size_t bytes = header_bytes + sizeof(int32_t) * (size_t)head.prompt_tokens;
  unsigned char *payload = up_malloc_or_die(bytes, "arrivals");
  arrival_header *headers = (arrival_header *)(void *)payload;
  int32_t *tokens = (int32_t *)(void *)(payload + header_bytes);
  if (leader) {
    int64_t at = 0;
    for (int32_t i = 0; i < head.n; ++i) {
      const up_request *r = arrivals[i];
      headers[i] = (arrival_header){r->id, r->arrival_s, r->prompt_len, r->output_len};
      memcpy(tokens + at, r->prompt, sizeof(int32_t) * (size_t)r->prompt_len);
      at += r->prompt_len;
    }
  }
  broadcast_host(sync, payload, bytes, "step descriptor arrivals");
  if (!leader) {
    int64_t at = 0;
    for (int32_t i = 0; i < head.n; ++i) {
      up_request *r = up_calloc_or_die(1, sizeof *r, "request");
      up_request_init(r, headers[i].id, headers[i].prompt_len, headers[i].output_len, sync->n_layers,
                      headers[i].arrival_s);
      memcpy(r->prompt, tokens + at, sizeof(int32_t) * (size_t)headers[i].prompt_len);
      at += headers[i].prompt_len;
      arrivals[i] = r;
    }
  }
  free(payload);
}

bool up_step_sync_flag(up_step_sync *sync, bool flag) {
  int32_t value = flag;
  broadcast_host(sync, &value, sizeof value, "step descriptor end flag");
  return value != 0;
}

void up_step_sync_outcome(up_step_sync *sync, int32_t *next_tokens, int32_t n, double *end_s) {
  if (sync->tp->size == 1) return;
  const size_t bytes = sizeof(double) + sizeof(int32_t) * (size_t)n;
  unsigned char *payload = up_malloc_or_die(bytes, "step outcome");
  memcpy(payload, end_s, sizeof(double));
  memcpy(payload + sizeof(double), next_tokens, sizeof(int32_t) * (size_t)n);
  broadcast_host(sync, payload, bytes, "step descriptor sampled tokens");
  memcpy(end_s, payload, sizeof(double));
  memcpy(next_tokens, payload + sizeof(double), sizeof(int32_t) * (size_t)n);
  free(payload);
}

/* FNV-1a over bytes, continuing from h. */
static uint64_t hash_bytes(uint64_t h, const void *data, size_t n) {
  const unsigned char *b = data;
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

void up_step_sync_check_plan(up_step_sync *sync, const up_step_plan *plan, up_kv_cache *cache, int64_t step,
                             int32_t check_every) {
  if (sync->tp->size == 1 || check_every <= 0 || step % check_every != 0) return;
  const int32_t maxb = up_kv_cache_max_blocks_per_seq(cache), paged_layers = up_kv_cache_layers(cache);
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t i = 0; i < plan->n_entries; ++i) {
    const up_step_entry *e = &plan->entries[i];
    const int64_t fields[5] = {e->req->id, e->req->slot, e->n_tokens, e->prompt_offset, e->is_prefill};
    h = hash_bytes(h, fields, sizeof fields);
    for (int32_t l = 0; l < paged_layers; ++l)
      h = hash_bytes(h, up_kv_cache_block_table(cache, e->req->slot, l), sizeof(int32_t) * (size_t)maxb);
  }
  char what[64];
  snprintf(what, sizeof what, "step %lld plan hash", (long long)step);
  if (!sync->tp->ops->all_equal_u64(sync->tp, h, what))
    UP_FATAL("the tensor-parallel group planned different steps at step %lld (rank %d of %d: %d entries)",
             (long long)step, sync->tp->rank, sync->tp->size, (int)plan->n_entries);
}
