/* point_engine.c — one sweep point on one rank: the loop that moves requests from the
 * workload into the scheduler, executes each planned step through the forward pass,
 * and records requests and steps with monotonic engine-clock timestamps. Owns the KV
 * pool and the workspace for the point's lifetime: nothing is allocated per step
 * except the growing record arrays. */
#include "engine/serve/point_engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/memory/layer_memory.h"
#include "engine/model/layer_cost.h"
#include "engine/serve/scheduler.h"
#include "engine/serve/step_sync.h"
#include "core/clock.h"
#include "core/fatal.h"

static double monotonic_s(void) { return up_clock_monotonic_s(); }

static void sleep_s(double seconds) {
  if (seconds <= 0.0) return;
  struct timespec ts = {.tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - floor(seconds)) * 1e9)};
  nanosleep(&ts, NULL);
}

void up_request_to_record(const up_request *req, int32_t rank, const up_kv_geometry *kv, up_request_record *rec) {
  memset(rec, 0, sizeof *rec);
  rec->id = req->id;
  rec->rank = rank;
  rec->status = (int32_t)req->status;
  rec->prompt_len = req->prompt_len;
  rec->kept_len = req->kept_len;
  rec->output_len = req->n_generated;
  rec->first_token = req->first_token;
  rec->prefill_steps = req->prefill_steps;
  rec->arrival_s = req->arrival_s;
  rec->admitted_s = req->admitted_s;
  rec->first_token_s = req->first_token_s;
  rec->finish_s = req->finish_s;
  const bool has_first = req->n_generated >= 1;
  rec->ttft_ms = has_first ? 1e3 * (req->first_token_s - req->arrival_s) : NAN;
  rec->tpot_ms = req->n_generated > 1 ? 1e3 * (req->finish_s - req->first_token_s) / (req->n_generated - 1) : NAN;
  rec->e2e_ms = 1e3 * (req->finish_s - req->arrival_s);
  /* A request that ran holds its recurrent state slot (linear-attention layers) beside its KV. */
  const int64_t state = req->kv_entries > 0 ? up_model_recurrent_state_bytes(kv->cfg, kv->dtype) : 0;
  rec->kv_bytes = req->kv_entries * kv->entry_bytes + state;
  rec->kv_held_bytes = req->kv_blocks * kv->block_tokens * kv->entry_bytes + state;
  rec->kv_dense_bytes = up_model_dense_kv_bytes(kv->cfg, kv->dtype, req->prompt_len);
  _Static_assert(sizeof rec->error == sizeof req->error, "request and record error lengths differ");
  memcpy(rec->error, req->error, sizeof rec->error);
  rec->error[sizeof rec->error - 1] = '\0';
}

void up_point_result_free(up_point_result *res) {
  free(res->requests);
  free(res->request_layer_tokens);
  free(res->steps);
  free(res->step_layer_tokens);
  free(res->step_layer_attn);
  free(res->token_offsets);
  free(res->token_times);
  memset(res, 0, sizeof *res);
}

/* Growable arrays of the point's records. */
typedef struct record_sink {
  up_point_result *res;
  up_kv_geometry kv;
  int32_t cap_requests;
  int32_t cap_steps;
  int32_t cap_offsets;     /* entries of res->token_offsets: one more than the requests */
  int64_t cap_token_times;
} record_sink;

/* Grow two parallel record arrays together when `used` reaches the capacity. */
static void grow_records(void **records, size_t record_bytes, void **layer_rows, size_t layer_bytes, int32_t used,
                         int32_t *cap, const char *what) {
  if (used < *cap) return;
  *cap = *cap ? 2 * *cap : 64;
  *records = realloc(*records, record_bytes * (size_t)*cap);
  *layer_rows = realloc(*layer_rows, layer_bytes * (size_t)*cap);
  if (!*records || !*layer_rows) UP_FATAL("out of host memory for %s records", what);
}

/* Append a request's output-token times to the flat array and close its offset range. */
static void sink_token_times(record_sink *sink, const up_request *req) {
  up_point_result *res = sink->res;
  if (res->n_requests + 2 > sink->cap_offsets) {
    sink->cap_offsets = sink->cap_requests + 1;
    res->token_offsets = realloc(res->token_offsets, sizeof(int64_t) * (size_t)sink->cap_offsets);
    if (!res->token_offsets) UP_FATAL("out of host memory for token offsets");
    if (res->n_requests == 0) res->token_offsets[0] = 0;
  }
  const int64_t start = res->token_offsets[res->n_requests];
  const int64_t end = start + req->n_generated;
  if (end > sink->cap_token_times) {
    while (end > sink->cap_token_times)
      sink->cap_token_times = sink->cap_token_times ? 2 * sink->cap_token_times : 256;
    res->token_times = realloc(res->token_times, sizeof(double) * (size_t)sink->cap_token_times);
    if (!res->token_times) UP_FATAL("out of host memory for token times");
  }
  if (req->n_generated > 0)
    memcpy(res->token_times + start, req->token_times_s, sizeof(double) * (size_t)req->n_generated);
  res->token_offsets[res->n_requests + 1] = end;
}

static void sink_request(record_sink *sink, const up_request *req, int32_t rank) {
  up_point_result *res = sink->res;
  const size_t layer_bytes = sizeof(int32_t) * (size_t)res->n_layers;
  grow_records((void **)&res->requests, sizeof(up_request_record), (void **)&res->request_layer_tokens, layer_bytes,
               res->n_requests, &sink->cap_requests, "request");
  up_request_to_record(req, rank, &sink->kv, &res->requests[res->n_requests]);
  memcpy(res->request_layer_tokens + (size_t)res->n_requests * res->n_layers, req->kept_per_layer, layer_bytes);
  sink_token_times(sink, req);
  res->n_requests++;
}

static void sink_step(record_sink *sink, const up_step_record *step, const int64_t *layer_rows,
                      const up_attn_work *layer_attn) {
  up_point_result *res = sink->res;
  const size_t L = (size_t)res->n_layers;
  const int32_t cap = sink->cap_steps;
  grow_records((void **)&res->steps, sizeof(up_step_record), (void **)&res->step_layer_tokens, sizeof(int64_t) * L,
               res->n_steps, &sink->cap_steps, "step");
  if (sink->cap_steps != cap) {
    res->step_layer_attn = realloc(res->step_layer_attn, sizeof(up_attn_work) * L * (size_t)sink->cap_steps);
    if (!res->step_layer_attn) UP_FATAL("out of host memory for step records");
  }
  res->steps[res->n_steps] = *step;
  memcpy(res->step_layer_tokens + (size_t)res->n_steps * L, layer_rows, sizeof(int64_t) * L);
  memcpy(res->step_layer_attn + (size_t)res->n_steps * L, layer_attn, sizeof(up_attn_work) * L);
  res->n_steps++;
}

typedef struct id_order {
  int64_t id;
  int32_t index;
} id_order;

static int compare_id_order(const void *a, const void *b) {
  const id_order *x = a, *y = b;
  return (x->id > y->id) - (x->id < y->id);
}

void up_point_result_sort_requests(up_point_result *res) {
  const int32_t n = res->n_requests, L = res->n_layers;
  if (n < 2) return;
  id_order *order = up_malloc_or_die(sizeof(id_order) * (size_t)n, "request order");
  for (int32_t i = 0; i < n; ++i) order[i] = (id_order){res->requests[i].id, i};
  qsort(order, (size_t)n, sizeof(id_order), compare_id_order);
  up_request_record *records = up_malloc_or_die(sizeof(up_request_record) * (size_t)n, "sorted records");
  int32_t *layers = up_malloc_or_die(sizeof(int32_t) * (size_t)n * L, "sorted layer rows");
  UP_ASSERT(res->token_offsets != NULL, "%d requests without token offsets", (int)n);
  const int64_t n_times = res->token_offsets[n];
  int64_t *offsets = up_malloc_or_die(sizeof(int64_t) * (size_t)(n + 1), "sorted token offsets");
  double *times = up_malloc_or_die(sizeof(double) * (size_t)(n_times > 0 ? n_times : 1), "sorted token times");
  offsets[0] = 0;
  for (int32_t i = 0; i < n; ++i) {
    const int32_t from = order[i].index;
    records[i] = res->requests[from];
    memcpy(layers + (size_t)i * L, res->request_layer_tokens + (size_t)from * L, sizeof(int32_t) * (size_t)L);
    const int64_t count = res->token_offsets[from + 1] - res->token_offsets[from];
    if (count > 0)
      memcpy(times + offsets[i], res->token_times + res->token_offsets[from], sizeof(double) * (size_t)count);
    offsets[i + 1] = offsets[i] + count;
  }
  free(res->requests);
  free(res->request_layer_tokens);
  free(res->token_offsets);
  free(res->token_times);
  res->requests = records;
  res->request_layer_tokens = layers;
  res->token_offsets = offsets;
  res->token_times = times;
  free(order);
}

/* Move finished requests into the records (a tensor-parallel follower only frees
 * them: its group's leader records) and free them. */
static void drain_finished(up_scheduler *sched, record_sink *sink, int32_t rank, up_request **buf, int32_t cap,
                           bool record) {
  int32_t n;
  while ((n = up_scheduler_take_finished(sched, buf, cap)) > 0) {
    for (int32_t i = 0; i < n; ++i) {
      if (record) sink_request(sink, buf[i], rank);
      up_request_free(buf[i]);
      free(buf[i]);
    }
  }
}

int32_t up_prefill_chunk_for(const up_method *m, int32_t n_layers, int32_t requested) {
  if (requested <= 0 || up_method_drops_tokens(m, n_layers) || m->ops->attention) return 0;
  return requested;
}

/* The scheduler's token budget per step: the one asked for, and never more rows than
 * the workspace holds (at least a decode token per sequence, which the scheduler always
 * plans; a workspace below that serves fewer requests than sequences, whose steps stay
 * within it). */
static int64_t step_token_budget(const up_engine_params *params) {
  int64_t budget = params->workspace_tokens;
  if (params->max_batch_tokens > 0 && params->max_batch_tokens < budget) budget = params->max_batch_tokens;
  return budget > params->max_seqs ? budget : params->max_seqs;
}

void up_engine_run_point(const up_model *model, const up_engine_params *requested, const up_method *method,
                         up_workload *workload, up_point_result *out) {
  const up_model_config *cfg = &model->cfg;
  up_backend *be = model->be;
  const int32_t L = cfg->n_layers;
  /* Under tensor parallelism the group's leader runs the workload and records; every
   * rank plans the same steps from its inputs (step_sync.h), with the pool and the
   * workspace the rank with the least memory can hold (PARALLEL.md 2.7). */
  up_step_sync *sync = up_step_sync_create(model->tp, be, L);
  const bool leader = up_step_sync_is_leader(sync);
  up_engine_params group_params = *requested;
  group_params.kv_blocks = up_step_sync_min_i64(sync, requested->kv_blocks, "KV pool size of the group");
  group_params.workspace_tokens =
      up_step_sync_min_i64(sync, requested->workspace_tokens, "workspace size of the group");
  const up_engine_params *params = &group_params;
  memset(out, 0, sizeof *out);
  out->n_layers = L;
  record_sink sink = {.res = out};

  const int32_t bt = params->kv_block_tokens;
  const int32_t max_blocks_per_seq = (int32_t)((params->max_seq_entries + bt - 1) / bt);
  UP_ASSERT(params->kv_blocks >= 1 && params->kv_blocks <= INT32_MAX, "bad KV block count %lld",
            (long long)params->kv_blocks);
  up_memory_layout layout;
  char why[256];
  if (!up_memory_layout_from_config(cfg, be->act_dtype, bt, &layout, why, sizeof why)) UP_FATAL("%s", why);
  const up_layer_memory_capacity capacity = {
      .kv_blocks = (int32_t)params->kv_blocks, .max_seqs = params->max_seqs,
      .max_blocks_per_seq = max_blocks_per_seq > 0 ? max_blocks_per_seq : 1,
      .state_slots = up_memory_layout_layers_of(&layout, UP_MEMORY_RECURRENT) > 0 ? params->max_seqs : 0};
  up_layer_memory *memory = up_layer_memory_create(&layout, &capacity);
  const int32_t kv_dim = up_model_kv_dim(model); /* this rank's KV heads */
  const size_t block_bytes = (size_t)bt * kv_dim * up_dtype_size(be->act_dtype);
  up_kv_pool pool = {.n_blocks = (int32_t)params->kv_blocks, .block_tokens = bt, .kv_dim = kv_dim};
  pool.k = be->ops->alloc(be, block_bytes * (size_t)params->kv_blocks, "KV cache keys");
  pool.v = be->ops->alloc(be, block_bytes * (size_t)params->kv_blocks, "KV cache values");
  /* A block's bytes for the whole model, as the records count KV (a shard holds its
   * KV heads' part; a replicated head counts once). */
  out->kv_block_bytes = 2 * (int64_t)bt * cfg->n_kv_heads * cfg->head_dim * (int64_t)up_dtype_size(be->act_dtype);
  out->kv_blocks_total = params->kv_blocks;
  sink.kv = (up_kv_geometry){.cfg = cfg, .dtype = be->act_dtype, .block_tokens = bt,
                             .entry_bytes = up_model_kv_entry_bytes(cfg, be->act_dtype)};

  const up_scheduler_limits limits = {.max_seqs = params->max_seqs,
                                      .max_batch_tokens = step_token_budget(params),
                                      .max_context = cfg->max_context, .prefill_chunk = params->prefill_chunk};
  up_scheduler *sched = up_scheduler_create(&limits, memory);
  up_forward_workspace *ws = up_forward_workspace_create(model, params->workspace_tokens, params->max_seqs,
                                                         up_layer_memory_max_blocks_per_seq(memory));
  const int32_t cap = params->max_seqs > 16 ? params->max_seqs : 16;
  up_request **arrivals = up_calloc_or_die((size_t)cap, sizeof(up_request *), "arrival buffer");
  up_forward_seq *seqs = up_calloc_or_die((size_t)params->max_seqs, sizeof(up_forward_seq), "forward batch");
  int32_t *next_tokens = up_calloc_or_die((size_t)params->max_seqs, sizeof(int32_t), "next tokens");
  int32_t *seq_layer_rows = up_calloc_or_die((size_t)params->max_seqs * L, sizeof(int32_t), "rows per layer");
  int32_t *seq_kept_rows = up_calloc_or_die((size_t)params->max_seqs, sizeof(int32_t), "kept rows");
  int64_t *layer_rows = up_calloc_or_die((size_t)L, sizeof(int64_t), "rows per layer");
  up_attn_work *layer_attn = up_calloc_or_die((size_t)L, sizeof(up_attn_work), "attention work per layer");

  const double t0 = monotonic_s();
  up_step_plan plan;
  int64_t steps_run = 0;
  for (;;) {
    /* Followers take the leader's clock and arrivals (nothing is sent in a group of one). */
    double now = leader ? monotonic_s() - t0 : 0.0;
    for (;;) {
      int32_t n_new = leader ? workload->ops->poll(workload, now, up_scheduler_in_flight(sched), arrivals, cap) : 0;
      up_step_sync_arrivals(sync, &now, arrivals, &n_new, cap);
      if (n_new <= 0) break;
      for (int32_t i = 0; i < n_new; ++i) up_scheduler_submit(sched, arrivals[i], now);
    }

    const int32_t n_entries = up_scheduler_plan_step(sched, &plan, now);
    if (up_scheduler_running(sched) > out->max_resident) out->max_resident = up_scheduler_running(sched);
    if (n_entries == 0) {
      drain_finished(sched, &sink, params->rank, arrivals, cap, leader);
      const bool end = leader && workload->ops->done(workload) && up_scheduler_in_flight(sched) == 0;
      if (up_step_sync_flag(sync, end)) break;
      if (!leader) continue;
      const double next = workload->ops->next_arrival_s(workload);
      if (isinf(next)) {
        /* Closed loop with nothing runnable: only possible when requests are waiting
         * that the scheduler will never admit, which submit() rules out. */
        UP_ASSERT(up_scheduler_in_flight(sched) == 0, "scheduler stalled with %d requests waiting",
                  (int)up_scheduler_waiting(sched));
        continue;
      }
      sleep_s(next - (monotonic_s() - t0));
      continue;
    }
    up_step_sync_check_plan(sync, &plan, up_layer_memory_kv(memory), steps_run, model->tp_check_every);

    for (int32_t i = 0; i < n_entries; ++i) {
      const up_step_entry *e = &plan.entries[i];
      up_request *req = e->req;
      seqs[i] = (up_forward_seq){
          .slot = req->slot,
          .n_tokens = e->n_tokens,
          .tokens = e->is_prefill ? req->prompt + e->prompt_offset : &req->last_token,
          .first_position = e->is_prefill ? e->prompt_offset : req->prompt_len + req->n_generated - 1,
          /* Only a whole prompt on an empty cache is one the method may drop from. */
          .is_prefill = e->is_prefill && e->prompt_offset == 0 && e->n_tokens == req->prompt_len,
          .state_slot = up_layer_memory_state_slot(memory, req->slot),
      };
    }
    up_step_record step = {.index = out->n_steps, .rank = params->rank, .n_seqs = n_entries,
                           .prefill_tokens = plan.prefill_tokens, .decode_tokens = plan.decode_tokens};
    step.start_s = monotonic_s() - t0;
    up_forward_out fout = {.next_tokens = next_tokens, .seq_layer_rows = seq_layer_rows, .layer_rows = layer_rows,
                           .seq_kept_rows = seq_kept_rows, .layer_attn = layer_attn};
    up_forward(model, ws, up_layer_memory_kv(memory), &pool, method, seqs, n_entries, &fout);
    double phase_ms[UP_PHASE_COUNT] = {0};
    if (be->ops->phase_collect) be->ops->phase_collect(be, phase_ms);
    be->ops->synchronize(be);
    step.end_s = monotonic_s() - t0;
    /* The leader's tokens and clock go on: every rank completes the same step. */
    up_step_sync_outcome(sync, next_tokens, n_entries, &step.end_s);
    steps_run += 1;
    const int timed = be->ops->phase_collect != NULL;
    step.gemm_ms = timed ? phase_ms[UP_PHASE_GEMM] : NAN;
    step.attention_ms = timed ? phase_ms[UP_PHASE_ATTENTION] : NAN;
    step.selection_ms = timed ? phase_ms[UP_PHASE_SELECTION] : NAN;
    step.other_ms = timed ? phase_ms[UP_PHASE_OTHER] : NAN;
    if (leader) sink_step(&sink, &step, layer_rows, layer_attn);

    /* A chunked prompt's rows per layer add up over its chunks. */
    for (int32_t i = 0; i < n_entries; ++i) {
      if (!plan.entries[i].is_prefill) continue;
      up_request *req = plan.entries[i].req;
      const bool first_chunk = plan.entries[i].prompt_offset == 0;
      for (int32_t l = 0; l < L; ++l)
        req->kept_per_layer[l] = (first_chunk ? 0 : req->kept_per_layer[l]) + seq_layer_rows[(size_t)i * L + l];
      req->kept_len = (first_chunk ? 0 : req->kept_len) + seq_kept_rows[i];
    }
    up_scheduler_complete_step(sched, &plan, next_tokens, step.end_s);
    drain_finished(sched, &sink, params->rank, arrivals, cap, leader);
  }
  out->wall_s = monotonic_s() - t0;
  out->kv_blocks_peak = up_layer_memory_usage_now(memory).blocks_peak;
  if (!leader) {
    /* A follower's pool mirrors its leader's: the group counts once, at the leader. */
    out->kv_blocks_total = out->kv_blocks_peak = 0;
    out->max_resident = 0;
  }
  up_point_result_sort_requests(out);
  free(arrivals);
  free(seqs);
  free(next_tokens);
  free(seq_layer_rows);
  free(seq_kept_rows);
  free(layer_rows);
  free(layer_attn);
  up_forward_workspace_destroy(ws);
  up_scheduler_destroy(sched);
  be->ops->free(be, pool.k);
  be->ops->free(be, pool.v);
  up_layer_memory_destroy(memory);
  up_step_sync_destroy(sync);
}
