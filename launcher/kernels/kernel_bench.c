/* kernel_bench.c — the --kernels mode (see kernel_bench.h): inputs for each case in
 * backend memory, the timing loop, the per-kernel gather to rank 0, the /kernels table
 * and the terminal table. The case list and its work counts are kernel_cases.c's. */
#include "launcher/kernels/kernel_bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fatal.h"
#include "core/rng.h"
#include "launcher/backend_select.h"
#include "launcher/kernels/kernel_cases.h"
#include "launcher/kernels/kernel_targets.h"
#include "launcher/mpi_check.h"
#include "launcher/sweep/point_gather.h"
#include "launcher/output/report_table.h"
#include "launcher/output/results_h5.h"
#include "launcher/harness.h"
#include "launcher/run_setup.h"

/* Random streams of the inputs (core/rng.h), one per buffer. */
enum {
  UP_STREAM_GEMM_A = 1,
  UP_STREAM_GEMM_W,
  UP_STREAM_QKV,
  UP_STREAM_POOL_K,
  UP_STREAM_POOL_V,
  UP_STREAM_BLOCKS,
  UP_STREAM_FLUSH, /* + repeat index */
};

/* Queries at twice the keys' range: scores of a few units, a softmax far from uniform. */
#define UP_QUERY_BOUND 2.0f
#define UP_VALUE_BOUND 1.0f

/* One case's backend buffers: a GEMM's operands, or a packed batch over a paged pool. */
typedef struct up_case_inputs {
  void *a, *w, *out;
  void *qkv;
  up_kv_pool pool;
  up_attn_batch batch;
  int32_t *cu_seqlens, *kv_lens, *block_tables, *keep_rows; /* backend int32 */
  int32_t *new_cu_seqlens_host;
  uint8_t *is_candidate_host;
} up_case_inputs;

static void *up_alloc_filled(up_backend *be, size_t n, size_t elem_size, float bound, uint64_t seed, uint64_t stream,
                             const char *what) {
  void *p = be->ops->alloc(be, n * elem_size, what);
  be->ops->fill_uniform(be, p, 0, n, bound, seed, stream);
  return p;
}

static int32_t *up_upload_index(up_backend *be, const int32_t *host, size_t n, const char *what) {
  int32_t *dev = be->ops->alloc(be, sizeof(int32_t) * n, what);
  be->ops->upload_i32(be, dev, host, n);
  return dev;
}

/* A packed batch of record->batch sequences, every one with seq_len cached entries:
 * prefill and selection rows are the whole sequence, decode one new row each. Blocks are
 * handed out in a shuffled order, as a pool that has served other requests would. */
static void up_make_batch(up_backend *be, const up_kernel_plan *plan, const up_kernel_case *c, uint64_t seed,
                          up_case_inputs *in) {
  const up_kernel_record *r = &c->record;
  const int32_t n_seqs = r->batch, rows = c->kind == UP_KERNEL_DECODE ? 1 : r->seq_len;
  const int32_t blocks_per_seq = (r->seq_len + plan->block_tokens - 1) / plan->block_tokens;
  const int32_t n_blocks = up_kernel_case_pool_blocks(plan, c);
  const size_t e = plan->elem_size;
  const int32_t kv_dim = plan->shape.n_kv_heads * plan->shape.head_dim;
  const int64_t qkv_dim = (int64_t)(plan->shape.n_heads + 2 * plan->shape.n_kv_heads) * plan->shape.head_dim;

  int32_t *cu = up_malloc_or_die(sizeof(int32_t) * ((size_t)n_seqs + 1), "kernel case offsets");
  int32_t *kv_lens = up_malloc_or_die(sizeof(int32_t) * (size_t)n_seqs, "kernel case cache lengths");
  int32_t *tables = up_malloc_or_die(sizeof(int32_t) * (size_t)n_blocks, "kernel case block tables");
  for (int32_t s = 0; s <= n_seqs; ++s) cu[s] = s * rows;
  for (int32_t s = 0; s < n_seqs; ++s) kv_lens[s] = r->seq_len;
  for (int32_t i = 0; i < n_blocks; ++i) tables[i] = i;
  for (int32_t i = n_blocks - 1; i > 0; --i) { /* Fisher-Yates */
    const int32_t j = (int32_t)(up_rng_u64(seed, UP_STREAM_BLOCKS, (uint64_t)i) % (uint64_t)(i + 1));
    const int32_t t = tables[i];
    tables[i] = tables[j];
    tables[j] = t;
  }
  in->cu_seqlens = up_upload_index(be, cu, (size_t)n_seqs + 1, "kernel case offsets");
  in->kv_lens = up_upload_index(be, kv_lens, (size_t)n_seqs, "kernel case cache lengths");
  in->block_tables = up_upload_index(be, tables, (size_t)n_blocks, "kernel case block tables");
  free(cu);
  free(kv_lens);
  free(tables);

  const size_t pool_n = (size_t)n_blocks * (size_t)plan->block_tokens * (size_t)kv_dim;
  in->pool = (up_kv_pool){
      .k = up_alloc_filled(be, pool_n, e, UP_VALUE_BOUND, seed, UP_STREAM_POOL_K, "kernel case K pool"),
      .v = up_alloc_filled(be, pool_n, e, UP_VALUE_BOUND, seed, UP_STREAM_POOL_V, "kernel case V pool"),
      .n_blocks = n_blocks, .block_tokens = plan->block_tokens, .kv_dim = kv_dim};
  in->batch = (up_attn_batch){.n_seqs = n_seqs, .n_tokens = (int32_t)r->tokens, .cu_seqlens = in->cu_seqlens,
                              .kv_lens = in->kv_lens, .block_tables = in->block_tables,
                              .max_blocks_per_seq = blocks_per_seq};
  in->qkv = up_alloc_filled(be, (size_t)r->tokens * (size_t)qkv_dim, e, UP_QUERY_BOUND, seed, UP_STREAM_QKV,
                            "kernel case qkv rows");
  if (c->kind == UP_KERNEL_SELECTION) {
    in->keep_rows = be->ops->alloc(be, sizeof(int32_t) * (size_t)r->tokens, "kernel case kept rows");
    in->new_cu_seqlens_host = up_malloc_or_die(sizeof(int32_t) * ((size_t)n_seqs + 1), "kernel case new offsets");
    in->is_candidate_host = up_malloc_or_die((size_t)n_seqs, "kernel case candidates");
    memset(in->is_candidate_host, 1, (size_t)n_seqs);
  } else {
    const size_t out_n = (size_t)r->tokens * (size_t)plan->shape.n_heads * (size_t)plan->shape.head_dim;
    in->out = be->ops->alloc(be, out_n * e, "kernel case attention output");
  }
}

static void up_inputs_make(up_backend *be, const up_kernel_plan *plan, const up_kernel_case *c, uint64_t seed,
                           up_case_inputs *in) {
  memset(in, 0, sizeof *in);
  const up_kernel_record *r = &c->record;
  if (c->kind == UP_KERNEL_GEMM) {
    /* Random operands, never zeros: a GEMM on zeros runs faster than on real data. */
    in->a = up_alloc_filled(be, (size_t)(r->m * r->k), plan->elem_size, UP_VALUE_BOUND, seed, UP_STREAM_GEMM_A,
                            "kernel case GEMM activations");
    in->w = up_alloc_filled(be, (size_t)(r->n * r->k), plan->elem_size, UP_VALUE_BOUND, seed, UP_STREAM_GEMM_W,
                            "kernel case GEMM weights");
    in->out = be->ops->alloc(be, (size_t)(r->m * r->n) * plan->elem_size, "kernel case GEMM output");
    return;
  }
  up_make_batch(be, plan, c, seed, in);
}

static void up_inputs_free(up_backend *be, up_case_inputs *in) {
  void *const buffers[] = {in->a, in->w, in->out, in->qkv, in->pool.k, in->pool.v, in->cu_seqlens, in->kv_lens,
                           in->block_tables, in->keep_rows};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
    if (buffers[i]) be->ops->free(be, buffers[i]);
  free(in->new_cu_seqlens_host);
  free(in->is_candidate_host);
  memset(in, 0, sizeof *in);
}

/* One call of the case's op; returns the kept rows of a selection (0 otherwise). */
static int32_t up_run_once(up_backend *be, const up_kernel_plan *plan, const up_kernel_case *c, up_case_inputs *in) {
  const up_kernel_record *r = &c->record;
  switch (c->kind) {
    case UP_KERNEL_GEMM:
      be->ops->matmul(be, in->out, in->a, in->w, (int32_t)r->m, (int32_t)r->n, (int32_t)r->k);
      return 0;
    case UP_KERNEL_ATTENTION:
    case UP_KERNEL_DECODE: be->ops->attention(be, in->out, in->qkv, &in->pool, &in->batch, &plan->shape); return 0;
    case UP_KERNEL_SELECTION:
      return be->ops->uniprefill_select(be, in->keep_rows, in->new_cu_seqlens_host, in->qkv, &in->pool, &in->batch,
                                        &plan->shape, in->is_candidate_host, &plan->select);
    case UP_KERNEL_KIND_COUNT: break;
  }
  UP_FATAL("kernel case '%s' has no kind", r->label);
}

static up_phase up_phase_of(up_kernel_kind kind) {
  return kind == UP_KERNEL_GEMM ? UP_PHASE_GEMM : kind == UP_KERNEL_SELECTION ? UP_PHASE_SELECTION : UP_PHASE_ATTENTION;
}

static int up_cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Warm-up calls, then timed repeats, each preceded by the L2 flush (when there is a
 * flush buffer) and timed alone by the backend's phase clock. Fills the record's times
 * and the figures that follow from them. */
static void up_time_case(up_backend *be, const up_kernel_plan *plan, up_kernel_case *c, void *flush,
                         uint64_t seed) {
  up_kernel_record *r = &c->record;
  up_case_inputs in;
  up_inputs_make(be, plan, c, seed, &in);
  for (int32_t i = 0; i < plan->warmup; ++i) up_run_once(be, plan, c, &in);
  const up_phase phase = up_phase_of(c->kind);
  const size_t flush_n = (size_t)plan->flush_bytes / plan->elem_size;
  double *ms = up_malloc_or_die(sizeof(double) * (size_t)plan->repeats, "kernel case times");
  int32_t kept = 0;
  for (int32_t i = 0; i < plan->repeats; ++i) {
    if (flush) be->ops->fill_uniform(be, flush, 0, flush_n, 1.0f, seed, UP_STREAM_FLUSH + (uint64_t)i);
    double phase_ms[UP_PHASE_COUNT] = {0};
    be->ops->phase_mark(be, phase);
    kept = up_run_once(be, plan, c, &in);
    be->ops->phase_collect(be, phase_ms);
    ms[i] = phase_ms[phase];
  }
  be->ops->synchronize(be); /* reports an error a kernel recorded */
  up_inputs_free(be, &in);

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
    return up_harness_end(&h, 1);
  }
  up_results_file *results = h.results;
  int n_benchers = 0;
  UP_CHECK_MPI(MPI_Allreduce(&bencher, &n_benchers, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
  if (root && !opt->quiet && n_benchers < topo->world_size)
    fprintf(stderr, "uniprefill-bench: note: %d of %d ranks time kernels (one per device); the others share a "
            "device with them and wait\n", n_benchers, topo->world_size);

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
      up_time_case(be, &plan, c, flush, opt->seed);
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
    fflush(stdout);
    up_harness_note_written(&h);
  }
  free(all.rows);
  free(mine);
  if (flush) be->ops->free(be, flush);
  up_kernel_plan_free(&plan);
  return up_harness_end(&h, exit_code);
}
