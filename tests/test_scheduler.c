/* test_scheduler.c — continuous batching driven by a fake engine (no model): each step
 * appends the planned KV entries at every layer, optionally simulating a UniPrefill
 * drop on prefills, and reports made-up tokens. Checks the step limits, FIFO admission,
 * prefill-decode co-scheduling, failure of impossible requests, and that trimming
 * after a drop lets more requests in. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/rng.h"
#include "engine/serve/scheduler.h"

typedef struct fake_engine {
  up_layer_memory *memory;
  up_kv_cache *cache; /* the memory's KV bookkeeping, which the fake forward appends to */
  up_scheduler *sched;
  up_scheduler_limits limits;
  int32_t n_layers;
  /* Simulated drop: prefills keep only kept_tokens entries at layers >= drop_from_layer
   * (0: no drop). */
  int32_t drop_from_layer;
  int32_t kept_tokens;
  /* Simulated non-finite logits: the forward reports -1 for request non_finite_id[k]
   * at its output token non_finite_at[k] (ids -1: none). */
  int64_t non_finite_id[2];
  int32_t non_finite_at[2];

  up_request *reqs;       /* id == index */
  int32_t n_reqs;
  int32_t *times_taken;   /* per request, how often take_finished returned it */
  int64_t step;
  int32_t steps_with_decode_and_prefill;
  int32_t *prompt_rows_run; /* per request, prompt rows the fake forward has run */
} fake_engine;

/* Layer memory of n_layers full-attention layers (Llama's kind), 2 bytes per entry;
 * with odd_window > 0 the odd layers are sliding-window layers of that window. */
static up_layer_memory *test_memory(int32_t n_blocks, int32_t block_tokens, int32_t n_layers, int32_t odd_window,
                                    int32_t max_seqs, int32_t max_blocks_per_seq) {
  up_memory_layout layout = {.n_layers = n_layers, .block_tokens = block_tokens, .kv_entry_bytes = 2};
  for (int32_t l = 1; odd_window > 0 && l < n_layers; l += 2) {
    layout.kind[l] = UP_MEMORY_SLIDING_KV;
    layout.window[l] = odd_window;
  }
  const up_layer_memory_capacity capacity = {.kv_blocks = n_blocks, .max_seqs = max_seqs,
                                             .max_blocks_per_seq = max_blocks_per_seq};
  return up_layer_memory_create(&layout, &capacity);
}

static void fake_engine_init_windowed(fake_engine *fe, int32_t max_seqs, int64_t max_batch_tokens,
                                      int32_t max_context, int32_t n_blocks, int32_t block_tokens, int32_t n_layers,
                                      int32_t odd_window, int32_t max_blocks_per_seq, int32_t n_reqs) {
  memset(fe, 0, sizeof *fe);
  fe->limits = (up_scheduler_limits){.max_seqs = max_seqs, .max_batch_tokens = max_batch_tokens,
                                     .max_context = max_context};
  fe->n_layers = n_layers;
  fe->non_finite_id[0] = fe->non_finite_id[1] = -1;
  fe->memory = test_memory(n_blocks, block_tokens, n_layers, odd_window, max_seqs, max_blocks_per_seq);
  fe->cache = up_layer_memory_kv(fe->memory);
  fe->sched = up_scheduler_create(&fe->limits, fe->memory);
  fe->reqs = calloc((size_t)n_reqs, sizeof *fe->reqs);
  fe->times_taken = calloc((size_t)n_reqs, sizeof *fe->times_taken);
  fe->prompt_rows_run = calloc((size_t)n_reqs, sizeof *fe->prompt_rows_run);
  fe->n_reqs = n_reqs;
}

static void fake_engine_init(fake_engine *fe, int32_t max_seqs, int64_t max_batch_tokens, int32_t max_context,
                             int32_t n_blocks, int32_t block_tokens, int32_t n_layers, int32_t max_blocks_per_seq,
                             int32_t n_reqs) {
  fake_engine_init_windowed(fe, max_seqs, max_batch_tokens, max_context, n_blocks, block_tokens, n_layers, 0,
                            max_blocks_per_seq, n_reqs);
}

static void fake_engine_destroy(fake_engine *fe) {
  for (int32_t i = 0; i < fe->n_reqs; ++i) up_request_free(&fe->reqs[i]);
  free(fe->reqs);
  free(fe->times_taken);
  free(fe->prompt_rows_run);
  up_scheduler_destroy(fe->sched);
  up_layer_memory_destroy(fe->memory);
}

/* Initialise request `id` and hand it to the scheduler at the current step. */
static up_request *submit(fake_engine *fe, int32_t id, int32_t prompt_len, int32_t output_len) {
  up_request *req = &fe->reqs[id];
  up_request_init(req, id, prompt_len, output_len, fe->n_layers, (double)fe->step);
  up_scheduler_submit(fe->sched, req, (double)fe->step);
  return req;
}

/* Entries a prefill leaves at a layer under the simulated drop. */
static int32_t prefill_entries_at(const fake_engine *fe, const up_request *req, int32_t layer) {
  if (fe->drop_from_layer > 0 && layer >= fe->drop_from_layer && req->prompt_len > fe->kept_tokens)
    return fe->kept_tokens;
  return req->prompt_len;
}

static void take_finished(fake_engine *fe) {
  up_request *out[8];
  int32_t n;
  while ((n = up_scheduler_take_finished(fe->sched, out, 8)) > 0) {
    for (int32_t i = 0; i < n; ++i) {
      cr_assert(out[i]->status == UP_REQUEST_FINISHED || out[i]->status == UP_REQUEST_ERROR);
      cr_assert_eq(out[i]->slot, -1);
      ++fe->times_taken[out[i]->id];
    }
  }
}

/* Plan, check the plan's limits, execute it on the fake model, complete it. Returns
 * the number of entries. */
static int32_t run_step(fake_engine *fe) {
  up_step_plan plan;
  const double plan_time = (double)fe->step;
  const int32_t n = up_scheduler_plan_step(fe->sched, &plan, plan_time);
  cr_assert_eq(n, plan.n_entries);
  cr_assert_leq(n, fe->limits.max_seqs, "step %lld has %d entries, cap %d", (long long)fe->step, n,
                fe->limits.max_seqs);
  cr_assert_leq(up_scheduler_running(fe->sched), fe->limits.max_seqs);

  int64_t prefill = 0, decode = 0;
  bool seen_prefill = false;
  for (int32_t i = 0; i < n; ++i) {
    const up_step_entry *e = &plan.entries[i];
    cr_assert_eq(e->req->status, UP_REQUEST_RUNNING);
    cr_assert_geq(e->req->slot, 0);
    if (e->is_prefill) {
      seen_prefill = true;
      if (fe->limits.prefill_chunk > 0) {
        /* A chunk: where the prompt's progress stands, at most one chunk, none past the end. */
        cr_assert_eq(e->prompt_offset, e->req->prefilled);
        cr_assert_eq(e->prompt_offset, fe->prompt_rows_run[e->req->id]);
        cr_assert_leq(e->n_tokens, fe->limits.prefill_chunk);
        cr_assert_leq(e->prompt_offset + e->n_tokens, e->req->prompt_len);
        cr_assert_geq(e->n_tokens, 1);
      } else {
        cr_assert_eq(e->n_tokens, e->req->prompt_len);
      }
      cr_assert_eq(e->req->n_generated, 0);
      prefill += e->n_tokens;
    } else {
      cr_assert_not(seen_prefill, "decode entry after a prefill entry");
      cr_assert_eq(e->n_tokens, 1);
      decode += 1;
    }
  }
  cr_assert_eq(plan.prefill_tokens, prefill);
  cr_assert_eq(plan.decode_tokens, decode);
  if (fe->limits.max_batch_tokens > 0)
    cr_assert_leq(prefill + decode, fe->limits.max_batch_tokens, "step %lld runs %lld tokens, budget %lld",
                  (long long)fe->step, (long long)(prefill + decode), (long long)fe->limits.max_batch_tokens);
  if (prefill > 0 && decode > 0) ++fe->steps_with_decode_and_prefill;

  int32_t *tokens = calloc((size_t)(n > 0 ? n : 1), sizeof *tokens);
  for (int32_t i = 0; i < n; ++i) {
    up_request *req = plan.entries[i].req;
    const bool chunk = plan.entries[i].is_prefill && plan.entries[i].n_tokens < req->prompt_len;
    if (plan.entries[i].is_prefill) fe->prompt_rows_run[req->id] += plan.entries[i].n_tokens;
    for (int32_t layer = 0; layer < fe->n_layers; ++layer) {
      const int32_t count = chunk ? plan.entries[i].n_tokens
                                  : plan.entries[i].is_prefill ? prefill_entries_at(fe, req, layer) : 1;
      if (plan.entries[i].is_prefill) req->kept_per_layer[layer] = count;
      up_kv_cache_append(fe->cache, req->slot, layer, count);
    }
    if (plan.entries[i].is_prefill) req->kept_len = req->kept_per_layer[fe->n_layers - 1];
    tokens[i] = (int32_t)(req->id * 1000 + req->n_generated);
    for (int k = 0; k < 2; ++k)
      if (req->id == fe->non_finite_id[k] && req->n_generated == fe->non_finite_at[k]) tokens[i] = -1;
  }
  up_scheduler_complete_step(fe->sched, &plan, tokens, plan_time + 0.5);
  free(tokens);
  take_finished(fe);
  ++fe->step;
  return n;
}

/* Run until nothing is in flight; a step that plans nothing while requests wait is a hang. */
static void run_to_end(fake_engine *fe) {
  take_finished(fe);
  while (up_scheduler_in_flight(fe->sched) > 0) {
    cr_assert_lt(fe->step, 100000, "run did not end");
    const int32_t n = run_step(fe);
    cr_assert(n > 0 || up_scheduler_in_flight(fe->sched) == 0, "nothing planned while %d requests wait",
              up_scheduler_waiting(fe->sched));
  }
}

/* Everything finished or failed exactly once, and the cache is whole again. */
static void assert_all_done(const fake_engine *fe) {
  for (int32_t i = 0; i < fe->n_reqs; ++i) {
    const up_request *req = &fe->reqs[i];
    cr_assert_eq(fe->times_taken[i], 1, "request %d taken %d times", i, fe->times_taken[i]);
    if (req->status == UP_REQUEST_FINISHED) {
      cr_assert_eq(req->n_generated, req->output_len);
      cr_assert_eq(req->first_token, (int32_t)(req->id * 1000));
      cr_assert_eq(req->last_token, (int32_t)(req->id * 1000 + req->output_len - 1));
      cr_assert(req->arrival_s <= req->admitted_s && req->admitted_s <= req->first_token_s);
      cr_assert_eq(req->token_times_s[0], req->first_token_s);
      for (int32_t t = 1; t < req->output_len; ++t) cr_assert_gt(req->token_times_s[t], req->token_times_s[t - 1]);
      cr_assert_eq(req->finish_s, req->token_times_s[req->output_len - 1]);
    } else {
      cr_assert_eq(req->status, UP_REQUEST_ERROR, "request %d ended %s", i, up_request_status_name(req->status));
      cr_assert_neq(req->error[0], '\0');
    }
  }
  cr_assert_eq(up_scheduler_in_flight(fe->sched), 0);
  cr_assert_eq(up_scheduler_running(fe->sched), 0);
  cr_assert_eq(up_kv_cache_free_blocks(fe->cache), up_kv_cache_total_blocks(fe->cache));
}

/* Admission follows submit order among the requests that ran. */
static void assert_fifo_admission(const fake_engine *fe) {
  double last = -1.0;
  for (int32_t i = 0; i < fe->n_reqs; ++i) {
    if (fe->reqs[i].status != UP_REQUEST_FINISHED) continue;
    cr_assert_geq(fe->reqs[i].admitted_s, last, "request %d admitted before an earlier one", i);
    last = fe->reqs[i].admitted_s;
  }
}

Test(scheduler, random_workload_keeps_every_limit) {
  fake_engine fe;
  const int32_t n = 60;
  fake_engine_init(&fe, 5, 300, 1024, 160, 16, 3, 64, n);
  fe.drop_from_layer = 2;
  fe.kept_tokens = 40;
  for (int32_t i = 0; i < n; ++i) {
    const int32_t prompt = 1 + (int32_t)(up_rng_u64(7, 1, (uint64_t)i) % 280);
    const int32_t output = 1 + (int32_t)(up_rng_u64(7, 2, (uint64_t)i) % 20);
    submit(&fe, i, prompt, output);
    /* Trickle arrivals in: two requests, then one step. */
    if (i % 2 == 1) run_step(&fe);
  }
  run_to_end(&fe);
  assert_all_done(&fe);
  assert_fifo_admission(&fe);
  for (int32_t i = 0; i < n; ++i) cr_assert_eq(fe.reqs[i].status, UP_REQUEST_FINISHED);
  cr_assert_gt(fe.steps_with_decode_and_prefill, 0);
  fake_engine_destroy(&fe);
}

Test(scheduler, big_request_at_the_head_is_not_overtaken) {
  fake_engine fe;
  /* 1 layer, 16-entry blocks, 20 blocks. A holds 10, so B (needs 15) waits for A. */
  fake_engine_init(&fe, 4, 0, 4096, 20, 16, 1, 32, 4);
  up_request *a = submit(&fe, 0, 150, 10);   /* 159 entries: 10 blocks */
  run_step(&fe);
  up_request *b = submit(&fe, 1, 230, 10);   /* 239 entries: 15 blocks */
  up_request *c = submit(&fe, 2, 16, 1);     /* 1 block: would fit beside A */
  up_request *d = submit(&fe, 3, 16, 1);
  while (a->status == UP_REQUEST_RUNNING) {
    run_step(&fe);
    cr_assert_eq(b->status, UP_REQUEST_WAITING);
    cr_assert_eq(c->status, UP_REQUEST_WAITING, "a small request overtook the waiting head");
    cr_assert_eq(d->status, UP_REQUEST_WAITING);
  }
  run_to_end(&fe);
  assert_all_done(&fe);
  assert_fifo_admission(&fe);
  cr_assert_geq(b->admitted_s, a->finish_s);
  cr_assert_geq(c->admitted_s, b->admitted_s);
  fake_engine_destroy(&fe);
}

Test(scheduler, decodes_share_a_step_with_new_prefills) {
  fake_engine fe;
  fake_engine_init(&fe, 4, 512, 4096, 128, 16, 2, 32, 3);
  up_request *a = submit(&fe, 0, 100, 5);
  up_step_plan plan;
  cr_assert_eq(up_scheduler_plan_step(fe.sched, &plan, 0.0), 1);
  cr_assert(plan.entries[0].is_prefill);
  for (int32_t layer = 0; layer < 2; ++layer) up_kv_cache_append(fe.cache, a->slot, layer, 100);
  const int32_t first[1] = {0};
  up_scheduler_complete_step(fe.sched, &plan, first, 0.5);
  cr_assert_eq(a->n_generated, 1);
  cr_assert_eq(a->first_token, 0);
  cr_assert_eq(a->last_token, 0);

  up_request *b = submit(&fe, 1, 200, 3);
  up_request *c = submit(&fe, 2, 320, 3);  /* 1 + 200 + 320 > 512: waits for the next step */
  cr_assert_eq(up_scheduler_plan_step(fe.sched, &plan, 1.0), 2);
  cr_assert_eq(plan.entries[0].req, a);
  cr_assert_not(plan.entries[0].is_prefill);
  cr_assert_eq(plan.entries[1].req, b);
  cr_assert(plan.entries[1].is_prefill);
  cr_assert_eq(plan.decode_tokens, 1);
  cr_assert_eq(plan.prefill_tokens, 200);
  cr_assert_eq(c->status, UP_REQUEST_WAITING);
  cr_assert_eq(up_scheduler_waiting(fe.sched), 1);
  cr_assert_eq(up_scheduler_running(fe.sched), 2);
  cr_assert_eq(up_scheduler_in_flight(fe.sched), 3);
  up_kv_cache_append(fe.cache, a->slot, 0, 1);
  up_kv_cache_append(fe.cache, a->slot, 1, 1);
  up_kv_cache_append(fe.cache, b->slot, 0, 200);
  up_kv_cache_append(fe.cache, b->slot, 1, 200);
  const int32_t second[2] = {1, 1000};
  up_scheduler_complete_step(fe.sched, &plan, second, 1.5);
  fe.step = 2;
  cr_assert_eq(a->n_generated, 2);
  cr_assert_eq(a->last_token, 1);
  cr_assert_eq(b->first_token, 1000);
  cr_assert_eq(b->first_token_s, 1.5);

  /* Now a and b decode while c prefills: 2 + 320 tokens. */
  cr_assert_eq(up_scheduler_plan_step(fe.sched, &plan, 2.0), 3);
  cr_assert_eq(plan.decode_tokens, 2);
  cr_assert_eq(plan.prefill_tokens, 320);
  cr_assert_eq(plan.entries[2].req, c);
  for (int32_t i = 0; i < 3; ++i) {
    for (int32_t layer = 0; layer < 2; ++layer)
      up_kv_cache_append(fe.cache, plan.entries[i].req->slot, layer, plan.entries[i].n_tokens);
  }
  const int32_t third[3] = {2, 1001, 2000};
  up_scheduler_complete_step(fe.sched, &plan, third, 2.5);
  fe.step = 3;
  run_to_end(&fe);
  assert_all_done(&fe);
  cr_assert_eq(c->status, UP_REQUEST_FINISHED);
  fake_engine_destroy(&fe);
}

Test(scheduler, impossible_requests_fail_while_others_finish) {
  fake_engine fe;
  /* Context 1024, budget 512; 4 layers x 16-entry blocks, 64 blocks in the pool, so a
   * request may hold at most 16 blocks (256 entries) at each layer. */
  fake_engine_init(&fe, 4, 512, 1024, 64, 16, 4, 48, 7);
  submit(&fe, 0, 100, 10);
  up_request *too_long = submit(&fe, 1, 1000, 100);
  submit(&fe, 2, 50, 5);
  up_request *over_budget = submit(&fe, 3, 600, 10);
  up_request *over_cache = submit(&fe, 4, 400, 10);  /* 26 blocks x 4 layers = 104 > 64 */
  up_request *over_table = submit(&fe, 5, 480, 400); /* 55 blocks at one layer > 48 */
  submit(&fe, 6, 200, 3);
  /* Failures are immediate and reported by the next take_finished. */
  cr_assert_eq(too_long->status, UP_REQUEST_ERROR);
  cr_assert_eq(up_scheduler_waiting(fe.sched), 3);
  cr_assert_eq(up_scheduler_in_flight(fe.sched), 7);
  run_to_end(&fe);
  assert_all_done(&fe);
  assert_fifo_admission(&fe);

  cr_assert_eq(too_long->status, UP_REQUEST_ERROR);
  cr_assert(strstr(too_long->error, "1000") && strstr(too_long->error, "1024"), "message: %s", too_long->error);
  cr_assert_eq(over_budget->status, UP_REQUEST_ERROR);
  cr_assert(strstr(over_budget->error, "600") && strstr(over_budget->error, "512"), "message: %s",
            over_budget->error);
  cr_assert_eq(over_cache->status, UP_REQUEST_ERROR);
  cr_assert(strstr(over_cache->error, "104") && strstr(over_cache->error, "64"), "message: %s", over_cache->error);
  cr_assert_eq(over_table->status, UP_REQUEST_ERROR);
  cr_assert(strstr(over_table->error, "55") && strstr(over_table->error, "48"), "message: %s", over_table->error);
  cr_assert_eq(over_table->finish_s, 0.0);
  const int32_t runnable[3] = {0, 2, 6};
  for (int32_t i = 0; i < 3; ++i) cr_assert_eq(fe.reqs[runnable[i]].status, UP_REQUEST_FINISHED);
  fake_engine_destroy(&fe);
}

Test(scheduler, empty_prompt_or_output_fails) {
  fake_engine fe;
  fake_engine_init(&fe, 2, 0, 1024, 16, 16, 1, 16, 3);
  submit(&fe, 0, 0, 4);
  submit(&fe, 1, 8, 0);
  submit(&fe, 2, 8, 2);
  run_to_end(&fe);
  assert_all_done(&fe);
  cr_assert_eq(fe.reqs[0].status, UP_REQUEST_ERROR);
  cr_assert_eq(fe.reqs[1].status, UP_REQUEST_ERROR);
  cr_assert_eq(fe.reqs[2].status, UP_REQUEST_FINISHED);
  fake_engine_destroy(&fe);
}

/* Two requests of 256 prompt + 8 output tokens on 2 layers: each reserves 17 blocks per
 * layer, 34 in all, and the pool of 56 cannot hold both. Returns when the second was
 * admitted relative to the first's finish (negative: while the first still ran). */
static double second_admission_minus_first_finish(int32_t drop_from_layer) {
  fake_engine fe;
  fake_engine_init(&fe, 4, 0, 4096, 56, 16, 2, 32, 2);
  fe.drop_from_layer = drop_from_layer;
  fe.kept_tokens = 64;
  up_request *a = submit(&fe, 0, 256, 8);
  up_request *b = submit(&fe, 1, 256, 8);
  run_step(&fe);
  if (drop_from_layer > 0) {
    /* Layer 1 now holds 64 + 7 entries: 5 blocks instead of 17. */
    cr_assert_eq(up_kv_cache_blocks_held(fe.cache, a->slot, 0), 17);
    cr_assert_eq(up_kv_cache_blocks_held(fe.cache, a->slot, 1), 5);
    cr_assert_eq(up_kv_cache_free_blocks(fe.cache), 56 - 22);
    /* The scheduler leaves the engine's kept counts alone. */
    cr_assert_eq(a->kept_per_layer[0], 256);
    cr_assert_eq(a->kept_per_layer[1], 64);
    cr_assert_eq(a->kept_len, 64);
  } else {
    cr_assert_eq(up_kv_cache_free_blocks(fe.cache), 56 - 34);
  }
  run_to_end(&fe);
  assert_all_done(&fe);
  const double gap = b->admitted_s - a->finish_s;
  fake_engine_destroy(&fe);
  return gap;
}

Test(scheduler, trimming_after_a_drop_admits_more) {
  cr_assert_geq(second_admission_minus_first_finish(0), 0.0, "without a drop both should not fit");
  cr_assert_lt(second_admission_minus_first_finish(1), 0.0, "after the drop the second should fit at once");
}

Test(scheduler, sliding_window_layers_let_more_requests_in) {
  /* As above, but layer 1 keeps a 32-entry window: admission reserves its prompt's 16
   * blocks there (17 + 16 = 33 per request, two do not fit 56), and after the prefill
   * it keeps 3 (the window's 2 and the next entry's), so the second request starts
   * while the first still decodes. */
  fake_engine fe;
  fake_engine_init_windowed(&fe, 4, 0, 4096, 56, 16, 2, 32, 32, 2);
  up_request *a = submit(&fe, 0, 256, 8);
  up_request *b = submit(&fe, 1, 256, 8);
  run_step(&fe);
  cr_assert_eq(b->status, UP_REQUEST_WAITING);
  cr_assert_eq(up_kv_cache_blocks_held(fe.cache, a->slot, 0), 17);
  cr_assert_eq(up_kv_cache_blocks_held(fe.cache, a->slot, 1), 3);
  cr_assert_eq(a->kv_entries, 256 + 32, "the sliding layer counts its window");
  cr_assert_eq(a->kv_blocks, 20);
  run_step(&fe);
  cr_assert_eq(b->status, UP_REQUEST_RUNNING);
  cr_assert_eq(a->status, UP_REQUEST_RUNNING);
  run_to_end(&fe);
  assert_all_done(&fe);
  cr_assert_lt(b->admitted_s, a->finish_s);
  fake_engine_destroy(&fe);
}

Test(scheduler, random_workload_with_sliding_layers_keeps_every_limit) {
  fake_engine fe;
  const int32_t n = 60;
  fake_engine_init_windowed(&fe, 5, 300, 1024, 120, 16, 4, 40, 64, n);
  fe.drop_from_layer = 2;
  fe.kept_tokens = 40;
  for (int32_t i = 0; i < n; ++i) {
    submit(&fe, i, 1 + (int32_t)(up_rng_u64(9, 1, (uint64_t)i) % 280), 1 + (int32_t)(up_rng_u64(9, 2, (uint64_t)i) % 30));
    if (i % 2 == 1) run_step(&fe);
  }
  run_to_end(&fe);
  assert_all_done(&fe);
  assert_fifo_admission(&fe);
  for (int32_t i = 0; i < n; ++i) cr_assert_eq(fe.reqs[i].status, UP_REQUEST_FINISHED);
  cr_assert_eq(up_kv_cache_promised_blocks(fe.cache), 0);
  fake_engine_destroy(&fe);
}

Test(scheduler, single_output_token_finishes_at_prefill) {
  fake_engine fe;
  fake_engine_init(&fe, 3, 0, 4096, 32, 16, 2, 16, 3);
  for (int32_t i = 0; i < 3; ++i) submit(&fe, i, 40 + i, 1);
  cr_assert_eq(run_step(&fe), 3);
  for (int32_t i = 0; i < 3; ++i) {
    cr_assert_eq(fe.reqs[i].status, UP_REQUEST_FINISHED);
    cr_assert_eq(fe.reqs[i].n_generated, 1);
    cr_assert_eq(fe.reqs[i].finish_s, fe.reqs[i].first_token_s);
  }
  cr_assert_eq(up_scheduler_in_flight(fe.sched), 0);
  assert_all_done(&fe);
  fake_engine_destroy(&fe);
}

/* Issue 18: a sequence whose logits turn NaN or inf (the forward reports -1) fails alone,
 * at its prefill or at a decode step, with a message; its slot comes back and the
 * requests batched with it finish. */
Test(scheduler, non_finite_logits_fail_one_request) {
  fake_engine fe;
  fake_engine_init(&fe, 3, 0, 4096, 64, 16, 2, 16, 3);
  fe.non_finite_id[0] = 1;
  fe.non_finite_at[0] = 2; /* its third output token: a decode step */
  fe.non_finite_id[1] = 2;
  fe.non_finite_at[1] = 0; /* its prefill */
  for (int32_t i = 0; i < 3; ++i) submit(&fe, i, 40 + i, 4);
  cr_assert_eq(run_step(&fe), 3, "all three prefill in one step");
  run_to_end(&fe);
  assert_all_done(&fe);
  cr_assert_eq(fe.reqs[0].status, UP_REQUEST_FINISHED);
  cr_assert_eq(fe.reqs[0].n_generated, 4);
  const up_request *decode = &fe.reqs[1], *prefill = &fe.reqs[2];
  cr_assert_eq(decode->status, UP_REQUEST_ERROR);
  cr_assert_eq(decode->n_generated, 2, "the tokens before the failure stay counted");
  cr_assert_eq(decode->first_token, 1000);
  cr_assert(strstr(decode->error, "non-finite activations: the logits of a decode step held NaN or inf "
                                  "(output token 3)") != NULL, "%s", decode->error);
  cr_assert_eq(prefill->status, UP_REQUEST_ERROR);
  cr_assert_eq(prefill->n_generated, 0);
  cr_assert_eq(prefill->first_token, -1);
  cr_assert(strstr(prefill->error, "the prompt's last position") != NULL, "%s", prefill->error);
  cr_assert_eq(prefill->finish_s, 0.5, "failed when the prefill step completed");
  fake_engine_destroy(&fe);
}

Test(scheduler, sequence_cap_limits_admission) {
  fake_engine fe;
  fake_engine_init(&fe, 2, 0, 4096, 100, 16, 1, 16, 5);
  for (int32_t i = 0; i < 5; ++i) submit(&fe, i, 10, 4);
  cr_assert_eq(run_step(&fe), 2);
  cr_assert_eq(up_scheduler_running(fe.sched), 2);
  cr_assert_eq(up_scheduler_waiting(fe.sched), 3);
  run_to_end(&fe);
  assert_all_done(&fe);
  assert_fifo_admission(&fe);
  fake_engine_destroy(&fe);
}

Test(scheduler, zero_max_seqs_is_fatal, .exit_code = 1) {
  up_layer_memory *memory = test_memory(8, 4, 1, 0, 1, 4);
  const up_scheduler_limits limits = {.max_seqs = 0, .max_batch_tokens = 0, .max_context = 64};
  up_scheduler_create(&limits, memory);
}

Test(scheduler, budget_below_the_sequence_cap_is_fatal, .exit_code = 1) {
  up_layer_memory *memory = test_memory(8, 4, 1, 0, 4, 4);
  const up_scheduler_limits limits = {.max_seqs = 4, .max_batch_tokens = 3, .max_context = 64};
  up_scheduler_create(&limits, memory);
}

/* Chunked prefill (prefill_chunk 24 within a 64-token budget): each prompt runs in order
 * in chunks of at most 24 tokens, cut to the budget left, beside other requests'
 * decodes; its first token comes only with its last chunk, and a prompt longer than the
 * budget runs instead of failing. Without a budget a prompt takes ceil(len / chunk) steps. */
Test(scheduler, chunked_prefill_spreads_prompts_over_steps_beside_decodes) {
  fake_engine fe;
  fake_engine_init(&fe, 3, 64, 4096, 512, 16, 2, 64, 4);
  up_scheduler_destroy(fe.sched);
  fe.limits.prefill_chunk = 24;
  fe.sched = up_scheduler_create(&fe.limits, fe.memory);
  const int32_t prompts[4] = {50, 70, 10, 200};
  for (int32_t i = 0; i < 4; ++i) submit(&fe, i, prompts[i], 4);
  run_to_end(&fe);
  assert_all_done(&fe);
  assert_fifo_admission(&fe);
  for (int32_t i = 0; i < 4; ++i) {
    cr_expect_eq(fe.reqs[i].status, UP_REQUEST_FINISHED, "request %d: %s", i, fe.reqs[i].error);
    cr_expect_eq(fe.prompt_rows_run[i], prompts[i]);
    cr_expect_eq(fe.reqs[i].prefilled, prompts[i]);
    cr_expect_geq(fe.reqs[i].prefill_steps, (prompts[i] + 23) / 24);
  }
  cr_expect_gt(fe.steps_with_decode_and_prefill, 0);
  fake_engine_destroy(&fe);

  fake_engine_init(&fe, 2, 0, 4096, 512, 16, 2, 64, 2);
  up_scheduler_destroy(fe.sched);
  fe.limits.prefill_chunk = 24;
  fe.sched = up_scheduler_create(&fe.limits, fe.memory);
  submit(&fe, 0, 100, 2);
  submit(&fe, 1, 48, 2);
  run_to_end(&fe);
  assert_all_done(&fe);
  cr_expect_eq(fe.reqs[0].prefill_steps, 5);
  cr_expect_eq(fe.reqs[1].prefill_steps, 2);
  fake_engine_destroy(&fe);
}
