/* kernel_bench.c — the --kernels mode (see kernel_bench.h): each case's check against
 * the CPU reference and its timing loop, the per-kernel gather to rank 0, the /kernels
 * table and the terminal table. The case list and its work counts are kernel_cases.c's;
 * making inputs, running the op and comparing are its op case's (kernels/op_cases). */
#include "launcher/kernels/kernel_bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fatal.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/op_cases/op_check.h"
#include "launcher/backend_select.h"
#include "launcher/kernels/kernel_cases.h"
#include "launcher/kernels/kernel_targets.h"
#include "launcher/kernels/time_account.h"
#include "launcher/mpi_check.h"
#include "launcher/sweep/point_gather.h"
#include "launcher/output/report_table.h"
#include "launcher/output/results_h5.h"
#include "launcher/harness.h"
#include "launcher/run_setup.h"

/* The L2 flush's random stream (+ repeat index), apart from the cases' input streams. */
#define UP_STREAM_FLUSH 7

/* A sample of the case's outputs against the CPU reference, on the inputs that are then
 * timed: the record's error and its limit. The CPU backend is the reference itself
 * (ref NULL): error 0. A rank that times on another backend says when a case is off. */
static void up_validate_case(up_backend *be, up_backend *ref, up_kernel_case *c, void *inputs,
                             const up_topology *topo) {
  up_kernel_record *r = &c->record;
  r->error_limit = c->op.tolerance;
  if (!ref) {
    r->error = 0.0;
    return;
  }
  if (c->unchecked) {
    r->error = NAN;
    fprintf(stderr, "uniprefill-bench: note: %s is timed without its CPU check (the reference would take minutes)\n",
            r->label);
    return;
  }
  up_op_check check;
  up_op_case_validate(&c->op, be, inputs, ref, &check);
  r->error = check.error;
  if (check.passed) return;
  char who[32] = "";
  if (topo->world_size > 1) snprintf(who, sizeof who, "rank %d: ", topo->world_rank);
  fprintf(stderr, "uniprefill-bench: %swarning: %s: the %s backend differs from the CPU reference by %.3g (limit "
          "%.3g): %s\n", who, r->label, be->ops->name, check.error, c->op.tolerance, check.detail);
}

static up_phase up_phase_of(up_kernel_kind kind) {
  if (kind == UP_KERNEL_GEMM || kind == UP_KERNEL_MOE) return UP_PHASE_GEMM;
  return kind == UP_KERNEL_SELECTION ? UP_PHASE_SELECTION : UP_PHASE_ATTENTION;
}

static int up_cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The validation, warm-up calls, then timed repeats, each preceded by the L2 flush (when there is a
 * flush buffer) and timed alone by the backend's phase clock. Fills the record's times
 * and the figures that follow from them. */
static void up_time_case(up_backend *be, up_backend *ref, const up_kernel_plan *plan, up_kernel_case *c, void *flush,
                         uint64_t seed, const up_topology *topo) {
  up_kernel_record *r = &c->record;
  const up_op_driver *op = c->op.driver;
  void *in = op->make(be, &c->op, seed);
  up_validate_case(be, ref, c, in, topo);
  for (int32_t i = 0; i < plan->warmup; ++i) op->run(be, &c->op, in);
  const up_phase phase = up_phase_of(c->kind);
  const size_t flush_n = (size_t)plan->flush_bytes / plan->elem_size;
  double *ms = up_malloc_or_die(sizeof(double) * (size_t)plan->repeats, "kernel case times");
  int32_t kept = 0;
  for (int32_t i = 0; i < plan->repeats; ++i) {
    if (flush) be->ops->fill_uniform(be, flush, 0, flush_n, 1.0f, seed, UP_STREAM_FLUSH + (uint64_t)i);
    double phase_ms[UP_PHASE_COUNT] = {0};
    be->ops->phase_mark(be, phase);
    kept = (int32_t)op->run(be, &c->op, in);
    be->ops->phase_collect(be, phase_ms);
    ms[i] = phase_ms[phase];
  }
  be->ops->synchronize(be); /* reports an error a kernel recorded */
  op->destroy(be, in);

  const int32_t n = plan->repeats;
  qsort(ms, (size_t)n, sizeof ms[0], up_cmp_double);
  r->median_ms = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
  r->min_ms = ms[0];
  r->max_ms = ms[n - 1];
  free(ms);
  const double seconds = r->median_ms * 1e-3;
  r->tflops_per_s = r->flop / seconds / 1e12;
  r->gb_per_s = r->bytes / seconds / 1e9;
  r->floor_fraction = r->floor_ms / r->median_ms;
  if (c->kind == UP_KERNEL_SELECTION) r->kept_fraction = (double)kept / (double)r->tokens;
  up_kernel_targets_judge(r);
}

/* The largest backend footprint of the plan: its biggest case, a sixteenth more for
 * the ops' own workspaces (decode partials, GEMM plans), and the flush buffer. */
static int64_t up_plan_bytes(const up_kernel_plan *plan) {
  int64_t worst = 0;
  for (int32_t i = 0; i < plan->n_cases; ++i) {
    const int64_t bytes = up_kernel_case_bytes(plan, &plan->cases[i]);
    worst = bytes > worst ? bytes : worst;
  }
  return worst + worst / 16 + plan->flush_bytes;
}

/* Collective: whether this rank times kernels, i.e. no lower rank runs on the same
 * device (same host, same device key). */
static int up_first_on_device(const up_topology *topo, const up_backend *be) {
  enum { KEY_SIZE = 384 };
  char device[64], mine[KEY_SIZE];
  up_backend_device_key(be, device, sizeof device);
  snprintf(mine, sizeof mine, "%s|%s", topo->hostname, device);
  char *all = up_malloc_or_die((size_t)KEY_SIZE * (size_t)topo->world_size, "device keys");
  UP_CHECK_MPI(MPI_Allgather(mine, KEY_SIZE, MPI_CHAR, all, KEY_SIZE, MPI_CHAR, MPI_COMM_WORLD));
  int first = 1;
  for (int r = 0; r < topo->world_rank; ++r) first = first && strcmp(all + (size_t)r * KEY_SIZE, mine) != 0;
  free(all);
  return first;
}

/* Rank 0's table of every gathered row. */
typedef struct up_kernel_rows {
  up_kernel_record *rows;
  int32_t n, capacity;
} up_kernel_rows;

static void up_rows_append(up_kernel_rows *all, const up_kernel_record *rows, int32_t n) {
  if (all->n + n > all->capacity) {
    all->capacity = 2 * (all->n + n);
    all->rows = realloc(all->rows, sizeof *all->rows * (size_t)all->capacity);
    if (!all->rows) UP_FATAL("out of host memory for %d kernel rows", (int)all->capacity);
  }
  memcpy(all->rows + all->n, rows, sizeof *rows * (size_t)n);
  all->n += n;
}

/* Collective: returns once every rank got here, polling with sleeps instead of a
 * blocking barrier, which Open MPI implements by spinning a core: ranks that only wait
 * must not take CPU from the ones timing (the CPU backend, the GPU's host threads). */
static void up_wait_for_all_ranks(void) {
  MPI_Request request;
  UP_CHECK_MPI(MPI_Ibarrier(MPI_COMM_WORLD, &request));
  const struct timespec pause = {0, 1000000}; /* 1 ms */
  for (int done = 0;;) {
    UP_CHECK_MPI(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    nanosleep(&pause, NULL);
  }
}

/* Collective: every rank's rows of one kernel to rank 0, numbered on from `first`;
 * NULL elsewhere. */
static up_kernel_record *up_gather_rows(const up_topology *topo, const up_kernel_record *mine, int32_t n_mine,
                                        int32_t first, int32_t *n_all) {
  const int root = topo->world_rank == 0;
  int32_t *counts = root ? up_calloc_or_die((size_t)topo->world_size, sizeof(int32_t), "kernel row counts") : NULL;
  UP_CHECK_MPI(MPI_Gather(&n_mine, 1, MPI_INT32_T, counts, 1, MPI_INT32_T, 0, MPI_COMM_WORLD));
  up_kernel_record *all = up_gather_items(topo, mine, n_mine, sizeof *mine, counts);
  *n_all = 0;
  for (int r = 0; root && r < topo->world_size; ++r) *n_all += counts[r];
  for (int32_t i = 0; root && i < *n_all; ++i) all[i].index = first + i;
  free(counts);
  return all;
}

int up_kernel_bench_run(const up_options *opt, int argc, char **argv, const up_topology *topo) {
  const int root = topo->world_rank == 0;
  char err[1024] = "";
  up_harness h;
  if (!up_harness_begin(&h, "kernels", opt, argc, argv, topo)) return 2;
  up_backend *be = h.be;

  /* The model and the checks of the case list depend only on the options and the
   * backend's kind, which every rank shares. */
  up_model_config cfg;
  up_kernel_plan plan;
  const up_kernel_device dev = {.on_gpu = up_run_on_gpu(be), .dtype = be->act_dtype, .name = be->device_name};
  const bool planned = up_run_resolve_model(opt, be, &cfg, err, sizeof err) &&
                       up_kernel_plan_build(&plan, opt, &cfg, &dev, err, sizeof err);
  if (up_harness_check_failed(&h, !planned, err)) {
    if (planned) up_kernel_plan_free(&plan);
    return up_harness_end(&h, 2);
  }

  const int bencher = up_first_on_device(topo, be);
  const int64_t need = up_plan_bytes(&plan), available = (int64_t)be->ops->memory_available(be);
  snprintf(err, sizeof err, "the largest kernel case of model %s needs %.2f GiB on the %s backend, but only %.2f GiB "
           "is available (reduce --ctx, --kernel-tokens or --kernel-batches)",
           cfg.name, need / 1073741824.0, be->ops->name, available / 1073741824.0);
  if (up_harness_failed(&h, bencher && need > available, err)) {
    up_kernel_plan_free(&plan);
    return up_harness_end(&h, 2);
  }

  if (!up_harness_open_results(&h, cfg.name)) {
    up_kernel_plan_free(&plan);
    return up_harness_end(&h, 2);
  }
  up_results_file *results = h.results;
  int n_benchers = 0;
  UP_CHECK_MPI(MPI_Allreduce(&bencher, &n_benchers, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
  if (root && !opt->quiet && n_benchers < topo->world_size)
    fprintf(stderr, "uniprefill-bench: note: %d of %d ranks time kernels (one per device); the others share a "
            "device with them and wait\n", n_benchers, topo->world_size);

  /* The CPU reference every other backend's cases are checked against first. */
  up_backend *ref = bencher && strcmp(be->ops->name, "cpu") != 0 ? up_cpu_backend_create(opt->threads) : NULL;
  void *flush = bencher && plan.flush_bytes > 0 ? be->ops->alloc(be, (size_t)plan.flush_bytes, "L2 flush buffer")
                                                : NULL;
  up_kernel_record *mine = up_malloc_or_die(sizeof *mine * (size_t)(plan.n_cases > 0 ? plan.n_cases : 1),
                                            "kernel rows");
  up_kernel_rows all = {0};
  const up_kernel_table_params table_params = {
      .kv_block_tokens = plan.block_tokens, .top_p = plan.select.top_p, .keep_fraction = plan.select.keep_fraction,
      .block = plan.select.block, .sink = plan.select.sink, .last_q = plan.select.last_q, .seed = opt->seed};
  const int progress = root && !opt->quiet && isatty(STDERR_FILENO);
  int exit_code = 0;
  /* One kernel at a time: its cases on every benching rank, then one gather and one
   * flush, so a later failure keeps what was measured. */
  for (int32_t begin = 0, end = 0; begin < plan.n_cases; begin = end) {
    for (end = begin; end < plan.n_cases && plan.cases[end].kind == plan.cases[begin].kind; ++end) {}
    int32_t n_mine = 0;
    for (int32_t i = begin; bencher && i < end; ++i) {
      up_kernel_case *c = &plan.cases[i];
      if (progress) fprintf(stderr, "[%d/%d] %s ...", (int)i + 1, (int)plan.n_cases, c->record.label);
      up_time_case(be, ref, &plan, c, flush, opt->seed, topo);
      if (progress) fprintf(stderr, " median %.3g ms\n", c->record.median_ms);
      c->record.rank = topo->world_rank;
      mine[n_mine++] = c->record;
    }
    up_wait_for_all_ranks();
    int32_t n_gathered = 0;
    up_kernel_record *gathered = up_gather_rows(topo, mine, n_mine, all.n, &n_gathered);
    int write_failed = 0;
    if (root) {
      write_failed = up_results_append_kernels(results, &table_params, gathered, n_gathered, err, sizeof err) != 0;
      up_rows_append(&all, gathered, n_gathered);
    }
    free(gathered);
    if (up_harness_failed(&h, write_failed, err)) {
      exit_code = 1;
      break;
    }
  }
  if (root && exit_code == 0) {
    up_report_kernels_print(stdout, opt->format, all.rows, all.n);
    up_time_account_print(stdout, opt->format, &plan, &cfg); /* rank 0 times on its own device: its cases */
    fflush(stdout);
    up_harness_note_written(&h);
  }
  free(all.rows);
  free(mine);
  if (flush) be->ops->free(be, flush);
  if (ref) ref->ops->destroy(ref);
  up_kernel_plan_free(&plan);
  return up_harness_end(&h, exit_code);
}
