/* tp_probe.h — the start-up probe of each tensor-parallel group (../shared/PARALLEL.md
 * 1.4, 1.6): an all-reduce at the message size of one prefill step's layer output
 * (tokens x hidden in the activation dtype), warm-up calls, then a timed loop, reported
 * as nccl-tests reports it: size, count, type, time, algbw = size / time and
 * busbw = algbw x 2(n-1)/n. Rows are gathered to rank 0 in group order. Owns the probe's
 * buffer and timing; prints nothing but its table. */
#ifndef UP_TP_PROBE_H
#define UP_TP_PROBE_H

#include <stdint.h>
#include <stdio.h>

#include "engine/parallel/tp_comm.h"
#include "kernels/ops.h"
#include "launcher/topology.h"

enum { UP_TP_PROBE_WARMUP = 2, UP_TP_PROBE_ITERS = 10, UP_TP_PROBE_MAX_TOKENS = 32768 };

/* One group's result: a row of the run file's /tp_probe table (results/README.md). */
typedef struct up_tp_probe_row {
  int32_t group;       /* the group's dp index */
  int32_t ranks;       /* its size, the TP degree */
  char transport[8];   /* "mpi", "nccl", ... */
  char type[8];        /* element type: "f32", "bf16" */
  int64_t tokens;      /* the message is tokens x hidden elements */
  int64_t hidden;
  int64_t count;       /* elements */
  int64_t bytes;       /* count x element size */
  int32_t iters;       /* timed calls (after UP_TP_PROBE_WARMUP untimed) */
  double time_us;      /* mean time per call, of the group's slowest rank */
  double algbw_gbps;   /* bytes / time, GB/s (1e9) */
  double busbw_gbps;   /* algbw x 2(n-1)/n */
} up_tp_probe_row;

/* Tokens of the probe's message: the longest --ctx, within any step-size limit
 * (max_batch_tokens, prefill_chunk; 0: none), at most UP_TP_PROBE_MAX_TOKENS. */
int64_t up_tp_probe_tokens(const int32_t *ctx, int32_t n_ctx, int64_t max_batch_tokens, int32_t prefill_chunk);

/* Collective over MPI_COMM_WORLD (every rank, every group at once). rows receives one row
 * per group on rank 0 (topo->dp_size rows; NULL elsewhere is fine). */
void up_tp_probe_run(up_tp_comm *comm, up_backend *be, const up_topology *topo, int64_t tokens, int64_t hidden,
                     up_tp_probe_row *rows);

/* Rank 0's table, nccl-tests style, each line starting with '#' (the preamble's). */
void up_tp_probe_print(FILE *out, const up_tp_probe_row *rows, int32_t n_rows);

#endif
