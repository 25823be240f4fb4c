/* sweep.c — the sweep driver (see sweep.h). Data-parallel replicas share each point's
 * requests: closed-loop slot k belongs to replica k % dp, request i to slot i % C; in
 * open-loop and trace workloads request i belongs to replica i % dp at its global
 * arrival time. Either way the union of all replicas' requests is the same for any
 * replica count. A replica is one rank, or with --tp a tensor-parallel group whose
 * leader runs the workload and records (engine/serve/step_sync.h); the records are
 * gathered from the leaders only.
 * A closed-loop point runs its requests in --repetitions rounds after one warm-up, each
 * round split over the ranks the same way (point_rounds.h numbers the rounds' requests).
 * A --tp list runs the whole sweep once per value, in list order, on that value's groups
 * (harness.h made them all) and its shard of the model; tp_scaling.h compares each
 * point with the TP = 1 point of the same shape. */
#include "launcher/sweep/sweep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/serve/point_engine.h"
#include "engine/model/model.h"
#include "workloads/closed_loop.h"
#include "core/fatal.h"
#include "launcher/mpi_check.h"
#include "launcher/sweep/point_gather.h"
#include "launcher/sweep/point_memory.h"
#include "launcher/sweep/point_rounds.h"
#include "launcher/sweep/point_summary.h"
#include "launcher/output/report_table.h"
#include "launcher/output/results_h5.h"
#include "launcher/harness.h"
#include "launcher/run_setup.h"
#include "launcher/step_watchdog.h"
#include "launcher/sweep/tp_scaling.h"
#include "launcher/sweep/workload_plan.h"

/* One point's share on this rank and the engine sizing that follows from it. */
typedef struct point_plan {
  int32_t ctx, concurrency, n_requests; /* ctx 0: lengths vary (open loop, trace) */
  int32_t warmup_len;
  int32_t longest_prompt;               /* of this rank's requests (closed loop: ctx) */
  int32_t output_len;                   /* of the longest request (closed loop: --output-len) */
  int64_t planned_kv_blocks;            /* every sequence's whole life, before fitting */
  const up_method *method;
  int32_t rank_concurrency;
  int32_t rank_requests;
  up_engine_params engine;
} point_plan;

static int32_t rank_slots(int32_t concurrency, int rank, int world) {
  int32_t n = 0;
  for (int32_t k = rank; k < concurrency; k += world) ++n;
  return n;
}

/* Timed workloads (open loop, trace) size the engine from this rank's share of the
 * schedule; the closed loop from its fixed lengths. */
static void plan_point(const up_options *opt, const up_model_config *cfg, up_dtype dtype, const up_topology *topo,
                       const up_workload_plan *wp, int32_t ctx, int32_t concurrency, const up_method *method,
                       point_plan *p) {
  memset(p, 0, sizeof *p);
  const int timed = wp->kind != UP_WORKLOAD_CLOSED_LOOP;
  p->ctx = timed ? 0 : ctx;
  p->concurrency = concurrency;
  p->method = method;
  p->rank_concurrency = rank_slots(concurrency, topo->dp_rank, topo->dp_size);
  up_engine_params *e = &p->engine;
  e->rank = topo->world_rank;
  e->max_seqs = opt->max_seqs > 0 ? opt->max_seqs : (p->rank_concurrency > 0 ? p->rank_concurrency : 1);
  e->max_batch_tokens = opt->max_batch_tokens;
  e->kv_block_tokens = opt->kv_block;
  e->prefill_chunk = up_prefill_chunk_for(method, cfg->n_layers, opt->prefill_chunk);
  int64_t blocks_per_layer = 0, rows_per_step = 0;
  if (timed) {
    up_rank_sizing sz;
    up_workload_plan_rank_sizing(wp, topo->dp_rank, topo->dp_size, e->max_seqs, opt->kv_block, &sz);
    p->n_requests = wp->n_requests;
    p->rank_requests = sz.n_requests;
    p->warmup_len = sz.max_prompt_len;
    p->longest_prompt = sz.max_prompt_len;
    p->output_len = (int32_t)(sz.max_seq_entries - sz.max_prompt_len);
    e->max_seq_entries = sz.max_seq_entries > 0 ? sz.max_seq_entries : 1;
    blocks_per_layer = sz.kv_blocks_per_layer;
    rows_per_step = sz.max_step_rows > 0 ? sz.max_step_rows : 1;
  } else {
    p->n_requests = opt->requests > 0 ? opt->requests : concurrency;
    for (int32_t i = 0; i < p->n_requests; ++i)
      if ((i % concurrency) % topo->dp_size == topo->dp_rank) p->rank_requests++;
    p->warmup_len = ctx;
    p->longest_prompt = ctx < cfg->max_context ? ctx : cfg->max_context;
    p->output_len = opt->output_len;
    /* Requests longer than the context fail at submission: size nothing for them. */
    const int64_t entries = (int64_t)ctx + opt->output_len;
    e->max_seq_entries = entries < cfg->max_context ? entries : cfg->max_context;
    blocks_per_layer = (e->max_seq_entries + opt->kv_block - 1) / opt->kv_block * e->max_seqs;
    rows_per_step = (int64_t)e->max_seqs * (ctx < cfg->max_context ? ctx : cfg->max_context);
  }
  /* Chunked prefill: a step holds at most one chunk per sequence. */
  const int64_t chunk_rows = (int64_t)e->max_seqs * e->prefill_chunk;
  if (e->prefill_chunk > 0 && chunk_rows < rows_per_step) rows_per_step = chunk_rows;
  if (p->warmup_len > 256) p->warmup_len = 256;
  e->kv_blocks = opt->kv_cache_mib > 0 ? up_point_kv_blocks_in_mib(cfg, dtype, opt->kv_cache_mib, opt->kv_block)
                                       : blocks_per_layer * cfg->n_layers;
  e->workspace_tokens = opt->max_batch_tokens > 0 && opt->max_batch_tokens + e->max_seqs < rows_per_step
                            ? opt->max_batch_tokens + e->max_seqs
                            : rows_per_step;
  p->planned_kv_blocks = e->kv_blocks;
}

/* The most prompt tokens one request puts in a step: its whole prompt, or a chunk. */
static int32_t one_step_prompt(const point_plan *p) {
  const int32_t chunk = p->engine.prefill_chunk;
  return chunk > 0 && chunk < p->longest_prompt ? chunk : p->longest_prompt;
}

/* The point planned, then fitted into budget_bytes (the memory left beside the
 * weights; point_memory.h). --gpu-mem-fraction leaves the pool at 0 here: it takes its
 * share of what is free at run time (size_kv_from_free_memory). False with a message
 * when the point cannot fit. */
static bool plan_point_in_budget(const up_options *opt, const up_model_config *cfg, up_dtype dtype,
                                 const up_topology *topo, const up_workload_plan *wp, int32_t ctx, int32_t concurrency,
                                 const up_method *method, int64_t budget_bytes, point_plan *p, up_point_fit *fit,
                                 char *err, size_t err_size) {
  plan_point(opt, cfg, dtype, topo, wp, ctx, concurrency, method, p);
  if (opt->kv_cache_mib > 0 && !up_point_kv_cache_check(cfg, dtype, opt->kv_cache_mib, opt->kv_block, err, err_size))
    return false;
  const bool kv_from_fraction = opt->gpu_mem_fraction > 0.0f;
  if (kv_from_fraction) p->engine.kv_blocks = 0;
  char why[512];
  if (up_point_memory_fit(cfg, dtype, budget_bytes, one_step_prompt(p), opt->kv_cache_mib > 0 || kv_from_fraction,
                          opt->max_batch_tokens > 0, &p->engine, fit, why, sizeof why))
    return true;
  snprintf(err, err_size, "model %s on the %s: point ctx=%d concurrency=%d does not fit: %s (reduce --ctx, "
           "--concurrency or --layers, or raise --mem-limit-mib)", cfg->name, topo->hostname, (int)p->ctx,
           (int)p->concurrency, why);
  return false;
}

/* Tells the memory sizes a point runs with when fitting or --gpu-mem-fraction chose
 * them (rank 0's sizes): the step budget, the workspace, the KV pool, and which requests
 * the pool can hold, found from the memory layout as admission finds it. */
static void note_point_memory(const up_options *opt, const up_model_config *cfg, up_dtype dtype, const point_plan *p,
                              const up_point_fit *fit, int64_t budget_bytes) {
  const up_engine_params *e = &p->engine;
  const double gib = 1073741824.0;
  char before[32] = "unlimited", now[32] = "unlimited", why[128], outcome[192];
  if (fit->max_batch_tokens_before > 0) snprintf(before, sizeof before, "%lld", (long long)fit->max_batch_tokens_before);
  if (e->max_batch_tokens > 0) snprintf(now, sizeof now, "%lld", (long long)e->max_batch_tokens);
  if (opt->gpu_mem_fraction > 0.0f)
    snprintf(why, sizeof why, "takes --gpu-mem-fraction %g of the memory free beside the weights",
             (double)opt->gpu_mem_fraction);
  else
    snprintf(why, sizeof why, "does not fit the %.2f GiB beside the weights at full size", (double)budget_bytes / gib);
  const int64_t room = up_point_requests_resident(cfg, dtype, e, p->longest_prompt, p->output_len);
  const int32_t runnable = up_point_longest_runnable_prompt(cfg, dtype, e, p->longest_prompt, p->output_len,
                                                            e->prefill_chunk > 0);
  if (room > 0)
    snprintf(outcome, sizeof outcome, "room for %lld request(s) at once, the others wait for KV", (long long)room);
  else if (runnable < 1 || p->ctx > 0)
    snprintf(outcome, sizeof outcome, "no request fits: each fails with an error status");
  else
    snprintf(outcome, sizeof outcome, "prompts above %d tokens fail with an error status, shorter ones run",
             (int)runnable);
  up_engine_params workspace_only = *e;
  workspace_only.kv_blocks = 0;
  fprintf(stderr,
          "uniprefill-bench: note: %s ctx=%d concurrency=%d %s: step budget %s tokens (was %s), workspace %lld rows "
          "= %.3g GiB, KV pool %.3g GiB = %lld blocks (planned %lld): %s\n",
          p->method->spec.label, (int)p->ctx, (int)p->concurrency, why, now, before, (long long)e->workspace_tokens,
          (double)up_point_memory_bytes(cfg, dtype, &workspace_only) / gib,
          (double)e->kv_blocks * (double)up_point_kv_block_bytes(cfg, dtype, e->kv_block_tokens) / gib,
          (long long)e->kv_blocks, (long long)fit->kv_blocks_before, outcome);
}

/* --gpu-mem-fraction: the KV pool takes that share of what the backend has free now
 * (weights loaded, the previous point's buffers released; at most the budget beside the
 * weights, for --mem-limit-mib) once this point's workspace is set aside; the workspace
 * gives way to one prompt's step when the planned one would starve the pool
 * (point_memory.h). Fewer blocks than a request needs fails that request, not the run. */
static void size_kv_from_free_memory(const up_options *opt, const up_model_config *cfg, up_backend *be,
                                     int64_t point_budget, point_plan *p, up_point_fit *fit) {
  const int64_t free_now = (int64_t)be->ops->memory_available(be);
  const bool shrunk_before = fit->shrunk;
  const int64_t batch_before = fit->max_batch_tokens_before;
  up_point_memory_fit_fraction(cfg, be->act_dtype, free_now < point_budget ? free_now : point_budget,
                               (double)opt->gpu_mem_fraction, one_step_prompt(p), p->planned_kv_blocks,
                               opt->max_batch_tokens > 0, &p->engine, fit);
  fit->shrunk = fit->shrunk || shrunk_before;
  if (shrunk_before) fit->max_batch_tokens_before = batch_before;
}

static void run_warmup(const up_model *model, const point_plan *p, const up_options *opt) {
  if (opt->warmup <= 0 || p->rank_requests == 0) return;
  int64_t *ids = up_malloc_or_die(sizeof(int64_t) * (size_t)opt->warmup, "warm-up ids");
  for (int32_t i = 0; i < opt->warmup; ++i) ids[i] = -1 - i; /* never a measured id */
  const int32_t len = p->warmup_len;
  up_closed_loop_params wl = {.concurrency = 1, .n_requests = opt->warmup, .request_ids = ids, .prompt_len = len,
                              .output_len = 2, .vocab = model->cfg.vocab, .n_layers = model->cfg.n_layers,
                              .seed = opt->seed};
  up_workload *w = up_workload_closed_loop_create(&wl);
  up_engine_params e = p->engine;
  e.max_seq_entries = len + 2;
  up_point_result res;
  up_engine_run_point(model, &e, p->method, w, &res);
  up_point_result_free(&res);
  w->ops->destroy(w);
  free(ids);
}

/* This rank's requests of round r (point_rounds.h numbers them): a closed loop over its
 * slots, or the timed workload's schedule, which runs in one round. */
static up_workload *round_workload(const up_options *opt, const up_workload_plan *wp, const point_plan *p,
                                   const up_model_config *cfg, const up_topology *topo, int32_t round) {
  const int32_t rank_cap = p->rank_concurrency > 0 ? p->rank_concurrency : 1;
  if (wp->kind != UP_WORKLOAD_CLOSED_LOOP)
    return up_workload_plan_source(wp, topo->dp_rank, topo->dp_size, rank_cap, cfg->n_layers);
  int64_t *ids = up_malloc_or_die(sizeof(int64_t) * (size_t)(p->rank_requests + 1), "request ids");
  int32_t n_ids = 0;
  for (int32_t i = 0; i < p->n_requests; ++i)
    if ((i % p->concurrency) % topo->dp_size == topo->dp_rank)
      ids[n_ids++] = up_round_request_id(round, p->n_requests, i);
  up_closed_loop_params wl = {.concurrency = rank_cap, .n_requests = n_ids, .request_ids = ids,
                              .prompt_len = p->ctx, .output_len = opt->output_len, .vocab = cfg->vocab,
                              .n_layers = cfg->n_layers, .seed = opt->seed, .prompts = &wp->prompts};
  up_workload *w = up_workload_closed_loop_create(&wl);
  free(ids);
  return w;
}

/* The parameter fields of a summary row (the metrics are point_rounds.c's). */
static void label_row(up_point_summary *row, int32_t index, const char *method, int32_t ctx, int32_t concurrency,
                      int32_t output_len) {
  row->point_index = index;
  snprintf(row->method, sizeof row->method, "%s", method);
  row->ctx = ctx;
  row->concurrency = concurrency;
  row->output_len = output_len;
}

/* The point attributes top_p .. drop_layers predate the method description: each
 * holds the method option that names it as its run_file_attr, NaN / 0 / "" where the
 * method has none. */
static float method_real_attr(const up_method_spec *m, const char *attr) {
  const up_method_option *o = up_method_spec_option_for_attr(m, attr);
  return o ? (float)up_method_spec_number(m, o) : NAN;
}

static int32_t method_int_attr(const up_method_spec *m, const char *attr) {
  const up_method_option *o = up_method_spec_option_for_attr(m, attr);
  return o ? (int32_t)up_method_spec_number(m, o) : 0;
}

static void method_layers_attr(const up_method_spec *m, const char *attr, char *buf, size_t size) {
  const up_method_option *o = up_method_spec_option_for_attr(m, attr);
  const up_layer_list *layers = o ? up_method_spec_layers(m, o) : NULL;
  size_t used = 0;
  buf[0] = '\0';
  for (int32_t i = 0; layers && i < layers->n && used + 1 < size; ++i)
    used += (size_t)snprintf(buf + used, size - used, "%s%d", i ? "," : "", (int)layers->layers[i]);
}

static void fill_point_params(const up_options *opt, const up_workload_plan *wp, const point_plan *p,
                              const up_point_result *merged, int32_t index, char *layers_buf, size_t layers_size,
                              char *spec_buf, size_t spec_size, up_point_params *pp) {
  const up_method_spec *m = &p->method->spec;
  method_layers_attr(m, "drop_layers", layers_buf, layers_size);
  if (!up_method_spec_describe(m, spec_buf, spec_size))
    UP_FATAL("method %s: its description is longer than %zu characters", m->label, spec_size - 1);
  *pp = (up_point_params){
      .index = index, .method = m->label, .ctx = p->ctx, .concurrency = p->concurrency,
      .output_len = wp->kind == UP_WORKLOAD_CLOSED_LOOP ? opt->output_len : 0, .n_requests = p->n_requests,
      .seed = opt->seed, .workload = wp->description, .prompt_source = wp->prompts.spec, .prompts_clamped = wp->stats.prompts_clamped,
      .prompts_raised = wp->stats.prompts_raised, .outputs_raised = wp->stats.outputs_raised,
      .lines_skipped = wp->stats.lines_skipped,
      .top_p = method_real_attr(m, "top_p"), .keep_fraction = method_real_attr(m, "keep_fraction"),
      .block = method_int_attr(m, "block"), .sink = method_int_attr(m, "sink"), .last_q = method_int_attr(m, "last_q"),
      .drop_layers = layers_buf, .method_spec = spec_buf, .max_seqs = p->engine.max_seqs,
      .max_batch_tokens = p->engine.max_batch_tokens,
      .kv_block_tokens = p->engine.kv_block_tokens, .kv_blocks_total = merged->kv_blocks_total,
      .kv_blocks_peak = merged->kv_blocks_peak, .kv_block_bytes = merged->kv_block_bytes,
      .max_resident = merged->max_resident, .prefill_chunk = p->engine.prefill_chunk,
  };
}

/* What every point of a run shares. */
typedef struct sweep_run {
  const up_options *opt;
  up_harness *h;
  const up_model_config *cfg;
  const up_workload_plan *wp;
  up_method *methods;
  const up_report_identity *identity;
  up_step_watchdog *watchdog;
  up_point_summary *rows; /* rank 0: one per point, in point order */
  int32_t n_points, n_rounds;
  int progress, timed;
} sweep_run;

/* The summary row's parameters and TP scaling inputs, the point's rows and its rounds'.
 * comm_ms: the point's collective time summed over the groups' leaders. */
static void label_point_rows(const sweep_run *run, const up_tp_degree *degree, const point_plan *p,
                             const up_point_rounds *rounds, int32_t index, double comm_ms, up_point_summary *row,
                             up_point_summary *round_rows) {
  const int32_t output_len = run->timed ? 0 : run->opt->output_len;
  const char *label = p->method->spec.label;
  const int32_t tp = degree->topo.tp_size;
  label_row(row, index, label, p->ctx, p->concurrency, output_len);
  for (int32_t r = 0; r < run->n_rounds; ++r) {
    label_row(&round_rows[r], index, label, p->ctx, p->concurrency, output_len);
    round_rows[r].tp = tp;
    round_rows[r].attention_tflops /= tp; /* counted over every head; a rank computes 1/tp of them */
    round_rows[r].dp = degree->topo.dp_size;
    round_rows[r].tp_speedup = round_rows[r].tp_efficiency = NAN;
    round_rows[r].tp_comm_model_ms = round_rows[r].tp_efficiency_model = NAN;
    round_rows[r].tp_comm_ms = round_rows[r].tp_comm_share = NAN;
  }
  if (run->opt->prefill_chunk > 0) {
    if (p->engine.prefill_chunk > 0) snprintf(row->prefill, sizeof row->prefill, "chunk %d", (int)p->engine.prefill_chunk);
    else snprintf(row->prefill, sizeof row->prefill, "whole");
  }
  row->tp = tp;
  row->attention_tflops /= tp;
  row->dp = degree->topo.dp_size;
  row->tp_comm_model_ms =
      up_tp_scaling_comm_model_ms(run->cfg, rounds->all.requests, rounds->all.request_layer_tokens,
                                  rounds->all.n_requests, tp, run->h->tp_probe, run->h->n_tp_probe);
  row->tp_comm_ms = comm_ms;
  row->tp_comm_share = up_tp_scaling_comm_share(comm_ms, rounds->all.steps, rounds->all.n_steps);
  up_point_summary_fill_speedups(run->rows, index + 1);
  up_tp_scaling_fill(run->rows, index + 1);
}

/* Collective over the degree's ranks: every rank reads its communicator's collective
 * time (nccl: the events' times, the stream already waited on after the last step);
 * the groups' leaders' sum reaches world rank 0 (a leader's is what its requests waited
 * on; a follower's also holds its waits for the leader's step descriptor). */
static double leaders_comm_ms(const up_tp_degree *degree) {
  up_tp_comm *comm = degree->groups.comm;
  const up_tp_comm_time mine = comm->ops->time_read(comm);
  double total = 0.0;
  if (degree->groups.dp_leaders != MPI_COMM_NULL)
    UP_CHECK_MPI(MPI_Reduce(&mine.ms, &total, 1, MPI_DOUBLE, MPI_SUM, 0, degree->groups.dp_leaders));
  return total;
}

/* Collective: one point (ctx, concurrency, method m) on degree t's groups and model,
 * its rounds gathered from the groups' leaders, written by rank 0. false on every rank
 * when rank 0 could not write it (the message printed). */
static bool run_point(sweep_run *run, int32_t t, const up_model *model, int64_t point_budget, int32_t index,
                      int32_t ctx, int32_t concurrency, int32_t m) {
  const up_options *opt = run->opt;
  const up_model_config *cfg = run->cfg;
  const up_tp_degree *degree = &run->h->degrees[t];
  up_backend *be = run->h->be;
  const int root = degree->topo.world_rank == 0;
  up_method *method = &run->methods[m];
  char err[1024] = "";
  point_plan p;
  up_point_fit fit;
  /* Fitted before the run started, so it fits again: same plan, same budget. */
  if (!plan_point_in_budget(opt, cfg, be->act_dtype, &degree->topo, run->wp, ctx, concurrency, method, point_budget,
                            &p, &fit, err, sizeof err))
    UP_FATAL("%s", err);
  if (opt->gpu_mem_fraction > 0.0f) size_kv_from_free_memory(opt, cfg, be, point_budget, &p, &fit);
  if (root && (fit.shrunk || opt->gpu_mem_fraction > 0.0f) && !opt->quiet)
    note_point_memory(opt, cfg, be->act_dtype, &p, &fit, point_budget);
  if (run->progress)
    fprintf(stderr, "[%d/%d] %s ctx=%d concurrency=%d tp=%d ...", (int)index + 1, (int)run->n_points,
            method->spec.label, (int)p.ctx, (int)p.concurrency, (int)degree->topo.tp_size);
  run_warmup(model, &p, opt);
  /* The point's collective time starts after its warm-up, as its records do. */
  degree->groups.comm->ops->time_reset(degree->groups.comm);
  up_point_rounds rounds;
  double comm_ms = 0.0;
  if (root) up_point_rounds_init(&rounds, cfg->n_layers);
  for (int32_t r = 0; r < run->n_rounds; ++r) {
    up_workload *w = round_workload(opt, run->wp, &p, cfg, &degree->topo, r);
    up_point_result mine, merged;
    /* Ranks start each round together: timed arrivals are on each rank's engine clock from here. */
    up_step_watchdog_sync(run->watchdog, "the start of a round");
    up_engine_run_point(model, &p.engine, method, w, &mine);
    w->ops->destroy(w);
    if (opt->step_timeout_s > 0.0) up_step_watchdog_sync(run->watchdog, "the record gather");
    up_step_watchdog_arm(run->watchdog, "the record gather");
    up_point_gather(degree->groups.dp_leaders, &mine, &merged);
    if (r == run->n_rounds - 1) comm_ms = leaders_comm_ms(degree); /* the point's collectives are done */
    up_step_watchdog_disarm(run->watchdog);
    up_point_result_free(&mine);
    if (root) up_point_rounds_add(&rounds, &merged);
    up_point_result_free(&merged);
  }
  int write_failed = 0;
  if (root) {
    up_point_summary *row = &run->rows[index];
    up_point_summary *round_rows = up_calloc_or_die((size_t)run->n_rounds, sizeof *round_rows, "round rows");
    up_point_rounds_summarize(&rounds, &opt->slo, cfg, round_rows, row);
    label_point_rows(run, degree, &p, &rounds, index, comm_ms, row, round_rows);
    char layers[512], method_spec[UP_METHOD_TEXT_MAX];
    up_point_params pp;
    fill_point_params(opt, run->wp, &p, &rounds.all, index, layers, sizeof layers, method_spec, sizeof method_spec,
                      &pp);
    pp.n_requests = p.n_requests * run->n_rounds; /* issued in every round: the rows of the requests table */
    pp.repetitions = run->n_rounds;
    pp.request_rounds = rounds.request_round;
    pp.step_rounds = rounds.step_round;
    pp.round_rows = round_rows;
    pp.n_round_rows = run->n_rounds;
    pp.tp = degree->topo.tp_size;
    pp.dp = degree->topo.dp_size;
    pp.tp_transport = up_tp_transport_name(degree->groups.transport);
    write_failed = up_results_write_point(run->h->results, &pp, row, &rounds.all, err, sizeof err) != 0;
    if (!write_failed && opt->format == UP_FORMAT_JSONL) up_report_point_jsonl(stdout, run->identity, row);
    if (run->progress)
      fprintf(stderr, " ttft %.1f ms, kept %.3f%s\n", row->ttft_mean_ms, row->kept_fraction,
              row->n_failed ? ", some requests failed" : "");
    free(round_rows);
    up_point_rounds_free(&rounds);
  }
  /* The point's end agrees on the write across ranks: watched like a round's gather. */
  if (opt->step_timeout_s > 0.0) up_step_watchdog_sync(run->watchdog, "the end of a point");
  up_step_watchdog_arm(run->watchdog, "the end of a point");
  const bool point_failed = up_harness_failed(run->h, write_failed, err);
  up_step_watchdog_disarm(run->watchdog);
  return !point_failed;
}

/* Every method instance made so far, released: a run that stops on bad input after the
 * methods exist must not leave their state behind (the sanitizer pass checks exits). */
static void release_methods(up_method *methods, int32_t n) {
  for (int32_t m = 0; m < n; ++m) up_method_destroy(&methods[m]);
}

/* The model config (preset, reduced depth) and the resolved methods; false with a
 * message when the options name something this model or backend cannot run, or cannot
 * run split over the tensor-parallel groups of some --tp value (model_shard.h,
 * up_method_supports_tp). */
static bool resolve_model_and_methods(const up_options *opt, up_backend *be, up_model_config *cfg,
                                      up_method *methods, char *err, size_t err_size) {
  if (!up_run_resolve_model(opt, be, cfg, err, err_size)) return false;
  for (int32_t t = 0; t < opt->n_tp; ++t)
    if (opt->tp[t] > 1 && !up_model_shard_check(cfg, opt->tp[t], err, err_size)) return false;
  for (int32_t i = 0; i < opt->n_methods; ++i) {
    up_method_spec spec = opt->methods[i];
    char why[512];
    bool usable = up_method_spec_resolve(&spec, cfg, why, sizeof why);
    for (int32_t t = 0; usable && t < opt->n_tp; ++t)
      usable = up_method_supports_tp(&spec, be, opt->tp[t], why, sizeof why);
    if (!usable) snprintf(err, err_size, "--method: %s", why);
    else if (!up_method_init(&methods[i], &spec, be, why, sizeof why)) {
      snprintf(err, err_size, "--method %s: %s", spec.label, why);
      usable = false;
    }
    if (!usable) {
      release_methods(methods, i);
      return false;
    }
  }
  return true;
}

int up_sweep_run(const up_options *opt, int argc, char **argv, const up_topology *topo) {
  const int root = topo->world_rank == 0;
  char err[1024] = "";

  /* The backend first: the default model depends on it. */
  up_harness h;
  if (!up_harness_begin(&h, "sweep", opt, argc, argv, topo)) return 2;
  up_backend *be = h.be;

  /* Model and methods: the same check on every rank. */
  up_model_config cfg;
  up_method methods[UP_MAX_SWEEP];
  if (up_harness_check_failed(&h, !resolve_model_and_methods(opt, be, &cfg, methods, err, sizeof err), err))
    return up_harness_end(&h, 2);

  /* The workload (a trace is read and checked here), before anything is written. */
  up_workload_plan wp;
  const int plan_failed = up_workload_plan_init(&wp, opt, &cfg, err, sizeof err) != 0;
  if (up_harness_failed(&h, plan_failed, err)) {
    release_methods(methods, opt->n_methods);
    return up_harness_end(&h, 2);
  }
  const int timed = wp.kind != UP_WORKLOAD_CLOSED_LOOP;
  /* Timed workloads bring their own lengths: one ctx entry, recorded as 0. */
  /* Without --ctx, a GPU sweeps prompt lengths worth measuring there. */
  static const int32_t gpu_default_ctx[] = {8192, 32768};
  const int gpu_defaults = !opt->ctx_given && up_run_on_gpu(be);
  const int32_t *ctx_list = gpu_defaults ? gpu_default_ctx : opt->ctx;
  const int32_t n_ctx = timed ? 1 : (gpu_defaults ? 2 : opt->n_ctx);
  if (root && !opt->quiet && timed)
    fprintf(stderr,
            "uniprefill-bench: workload %s: %d requests; %lld prompts clamped to the context, %lld empty prompts "
            "and %lld outputs < 1 raised to 1, %lld bad trace lines skipped\n",
            wp.description, (int)wp.n_requests, (long long)wp.stats.prompts_clamped,
            (long long)wp.stats.prompts_raised, (long long)wp.stats.outputs_raised, (long long)wp.stats.lines_skipped);
  if (root && !opt->quiet) fprintf(stderr, "# prompts: %s\n", wp.prompt_note);
  char gap_warning[1024];
  if (root && wp.trace && up_trace_long_gap(wp.trace, opt->trace_path, gap_warning, sizeof gap_warning))
    fprintf(stderr, "uniprefill-bench: warning: %s\n", gap_warning);

  /* This rank's weights (its shard under each --tp value) must fit its memory (at most
   * --mem-limit-mib); every point is then fitted into what is left beside them
   * (point_memory.h, which sizes the KV pool and workspace of the whole model: a
   * shard's are smaller), before anything is written. The loop below plans each point
   * again against the same budget. */
  int64_t available = (int64_t)be->ops->memory_available(be);
  const int limited = opt->mem_limit_mib > 0 && opt->mem_limit_mib * 1048576 < available;
  if (limited) available = opt->mem_limit_mib * 1048576;
  int64_t point_budget[UP_MAX_SWEEP];
  int weights_too_big = 0;
  for (int32_t t = 0; t < h.n_degrees && !weights_too_big; ++t) {
    const int32_t tp = h.degrees[t].topo.tp_size;
    const int64_t weight_bytes = up_model_shard_weight_bytes(&cfg, be->act_dtype, tp);
    point_budget[t] = available - weight_bytes;
    weights_too_big = weight_bytes >= available;
    char per_rank[64] = "";
    if (tp > 1) snprintf(per_rank, sizeof per_rank, " per rank of its --tp %d group", (int)tp);
    snprintf(err, sizeof err, "model %s needs %.2f GiB of weights%s on the %s backend, but only %.2f GiB is %s "
             "(use --layers for a shallower variant)", cfg.name, weight_bytes / 1073741824.0, per_rank,
             be->ops->name, available / 1073741824.0, limited ? "allowed by --mem-limit-mib" : "available");
  }
  if (up_harness_failed(&h, weights_too_big, err)) {
    release_methods(methods, opt->n_methods);
    up_workload_plan_free(&wp);
    return up_harness_end(&h, 2);
  }
  int plan_error = 0;
  for (int32_t t = 0; t < h.n_degrees && !plan_error; ++t)
    for (int32_t c = 0; c < n_ctx && !plan_error; ++c)
      for (int32_t k = 0; k < opt->n_concurrency && !plan_error; ++k) {
        const up_topology *grouped = &h.degrees[t].topo;
        point_plan p;
        up_point_fit fit;
        plan_point(opt, &cfg, be->act_dtype, grouped, &wp, ctx_list[c], opt->concurrency[k], &methods[0], &p);
        if (opt->max_batch_tokens > 0 && opt->max_batch_tokens < p.engine.max_seqs) {
          snprintf(err, sizeof err, "--max-batch-tokens %lld is below the %d sequences a step may hold: decode "
                   "tokens alone could not fit (raise it or lower --max-seqs)", (long long)opt->max_batch_tokens,
                   (int)p.engine.max_seqs);
          plan_error = 1;
        } else if (!plan_point_in_budget(opt, &cfg, be->act_dtype, grouped, &wp, ctx_list[c], opt->concurrency[k],
                                         &methods[0], point_budget[t], &p, &fit, err, sizeof err)) {
          plan_error = 1;
        }
      }
  if (up_harness_failed(&h, plan_error, err)) {
    release_methods(methods, opt->n_methods);
    up_workload_plan_free(&wp);
    return up_harness_end(&h, 2);
  }

  /* The results file (rank 0), then the model. */
  if (!up_harness_open_results(&h, cfg.name)) {
    release_methods(methods, opt->n_methods);
    up_workload_plan_free(&wp);
    return up_harness_end(&h, 2);
  }

  const int32_t n_shape_points = n_ctx * opt->n_concurrency * opt->n_methods;
  const int32_t n_points = h.n_degrees * n_shape_points;
  /* JSONL lines carry the run's identity: every rank's device, gathered once. */
  char *device_names = opt->format == UP_FORMAT_JSONL ? up_topology_gather_strings(topo, be->device_name) : NULL;
  const up_report_identity identity = {.tool_version = UNIPREFILL_VERSION, .git_commit = UNIPREFILL_GIT_COMMIT,
                                       .backend = be->ops->name, .device_names = device_names, .model = cfg.name,
                                       .world_size = topo->world_size};
  up_step_watchdog watchdog;
  up_step_watchdog_init(&watchdog, opt->step_timeout_s);
  sweep_run run = {.opt = opt, .h = &h, .cfg = &cfg, .wp = &wp, .methods = methods, .identity = &identity,
                   .watchdog = &watchdog, .n_points = n_points, .n_rounds = up_options_repetitions(opt),
                   .progress = root && !opt->quiet && isatty(STDERR_FILENO), .timed = timed};
  run.rows = root ? up_calloc_or_die((size_t)n_points, sizeof(up_point_summary), "summary rows") : NULL;
  int exit_code = 0;
  if (root && !opt->quiet && opt->step_timeout_s > 0.0)
    fprintf(stderr, "# step timeout: %g s (a rank silent that long at a round's start, gather or end aborts the job)\n",
            opt->step_timeout_s);
  /* Degree by degree (--tp order): each one's shard of the model through its groups,
   * then every point of the sweep on it. */
  for (int32_t t = 0; t < h.n_degrees; ++t) {
    /* A checkpoint that cannot load (a tensor's shape, a missing tensor) is bad input:
     * closing the results file before its first point leaves nothing at -o. */
    char model_err[1024] = "";
    up_model *model = up_run_create_model(opt, &cfg, be, h.degrees[t].groups.comm, model_err, sizeof model_err);
    if (up_harness_failed(&h, model == NULL, model_err)) {
      exit_code = t == 0 ? 2 : 1;
      goto done;
    }
    bool point_failed = false;
    int32_t index = t * n_shape_points;
    for (int32_t c = 0; c < n_ctx && !point_failed; ++c)
      for (int32_t k = 0; k < opt->n_concurrency && !point_failed; ++k)
        for (int32_t m = 0; m < opt->n_methods && !point_failed; ++m, ++index)
          point_failed = !run_point(&run, t, model, point_budget[t], index, ctx_list[c], opt->concurrency[k], m);
    up_model_destroy(model);
    if (point_failed) {
      exit_code = 1;
      goto done;
    }
  }
  if (root) {
    /* The last point's pass already set every row's speedup_vs_dense and TP scaling. */
    if (up_results_update_speedups(h.results, run.rows, n_points, err, sizeof err) != 0) {
      fprintf(stderr, "uniprefill-bench: error: %s\n", err);
      exit_code = 1;
    }
    /* JSONL streamed each point as it finished. */
    if (opt->format != UP_FORMAT_JSONL) up_report_table_print(stdout, opt->format, run.rows, n_points);
    fflush(stdout);
    up_harness_note_written(&h);
  }
done:
  up_step_watchdog_free(&watchdog);
  free(run.rows);
  free(device_names);
  release_methods(methods, opt->n_methods);
  up_workload_plan_free(&wp);
  return up_harness_end(&h, exit_code);
}
