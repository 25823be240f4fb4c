/* tp_probe.c — the tensor-parallel start-up probe (see tp_probe.h). */
#include "launcher/parallel/tp_probe.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/fatal.h"
#include "launcher/mpi_check.h"

int64_t up_tp_probe_tokens(const int32_t *ctx, int32_t n_ctx, int64_t max_batch_tokens, int32_t prefill_chunk) {
  int64_t tokens = 1;
  for (int32_t i = 0; i < n_ctx; ++i)
    if (ctx[i] > tokens) tokens = ctx[i];
  if (max_batch_tokens > 0 && max_batch_tokens < tokens) tokens = max_batch_tokens;
  if (prefill_chunk > 0 && prefill_chunk < tokens) tokens = prefill_chunk;
  return tokens < UP_TP_PROBE_MAX_TOKENS ? tokens : UP_TP_PROBE_MAX_TOKENS;
}

void up_tp_probe_run(up_tp_comm *comm, up_backend *be, const up_topology *topo, int64_t tokens, int64_t hidden,
                     up_tp_probe_row *rows) {
  const up_comm_elem elem = be->act_dtype == UP_DTYPE_BF16 ? UP_COMM_BF16 : UP_COMM_F32;
  const size_t count = (size_t)(tokens * hidden);
  const size_t bytes = count * up_comm_elem_size(elem);
  void *buf = be->ops->alloc(be, bytes, "the tensor-parallel probe's message");
  /* Small values: the sums of repeated in-place all-reduces stay finite. */
  be->ops->fill_uniform(be, buf, 0, count, 1e-3f, 0x7b70, (uint64_t)topo->tp_rank);
  const char *what = "the start-up probe's all-reduce";
  for (int i = 0; i < UP_TP_PROBE_WARMUP; ++i) comm->ops->all_reduce_sum(comm, buf, buf, count, elem, what);
  comm->ops->synchronize(comm, what);
  be->ops->synchronize(be);
  UP_CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
  const double start = up_clock_monotonic_s();
  for (int i = 0; i < UP_TP_PROBE_ITERS; ++i) comm->ops->all_reduce_sum(comm, buf, buf, count, elem, what);
  comm->ops->synchronize(comm, what);
  be->ops->synchronize(be);
  const double mine_s = (up_clock_monotonic_s() - start) / UP_TP_PROBE_ITERS;
  be->ops->free(be, buf);

  /* The group's time is its slowest rank's: a collective ends when the last rank does.
   * The world-wide max over the group's members goes through a max per dp index. */
  double *slowest = up_calloc_or_die((size_t)topo->dp_size, sizeof(double), "probe times");
  double *mine = up_calloc_or_die((size_t)topo->dp_size, sizeof(double), "probe times");
  mine[topo->dp_rank] = mine_s;
  UP_CHECK_MPI(MPI_Allreduce(mine, slowest, topo->dp_size, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
  if (topo->world_rank == 0) {
    const int n = comm->size;
    for (int g = 0; g < topo->dp_size; ++g) {
      up_tp_probe_row *row = &rows[g];
      memset(row, 0, sizeof *row);
      row->group = g;
      row->ranks = n;
      snprintf(row->transport, sizeof row->transport, "%s", comm->ops->name);
      snprintf(row->type, sizeof row->type, "%s", up_comm_elem_name(elem));
      row->tokens = tokens;
      row->hidden = hidden;
      row->count = (int64_t)count;
      row->bytes = (int64_t)bytes;
      row->iters = UP_TP_PROBE_ITERS;
      row->time_us = slowest[g] * 1e6;
      row->algbw_gbps = slowest[g] > 0 ? (double)bytes / slowest[g] / 1e9 : 0;
      row->busbw_gbps = row->algbw_gbps * 2.0 * (n - 1) / n;
    }
  }
  free(slowest);
  free(mine);
}

void up_tp_probe_print(FILE *out, const up_tp_probe_row *rows, int32_t n_rows) {
  if (n_rows <= 0) return;
  fprintf(out,
          "# Tensor-parallel probe: all_reduce_sum of one prefill step's layer output (%lld tokens x %lld hidden), "
          "%d warm-up + %d timed calls per group; time: the group's slowest rank, busbw = algbw x 2(n-1)/n\n",
          (long long)rows[0].tokens, (long long)rows[0].hidden, UP_TP_PROBE_WARMUP, rows[0].iters);
  fprintf(out, "#  group  ranks  transport          size       count  type        time     algbw     busbw\n");
  fprintf(out, "#                                    (B)  (elements)              (us)    (GB/s)    (GB/s)\n");
  for (int32_t g = 0; g < n_rows; ++g) {
    const up_tp_probe_row *r = &rows[g];
    fprintf(out, "# %6d %6d  %-9s %12lld %11lld  %-4s %11.1f %9.2f %9.2f\n", r->group, r->ranks, r->transport,
            (long long)r->bytes, (long long)r->count, r->type, r->time_us, r->algbw_gbps, r->busbw_gbps);
  }
  fflush(out);
}
