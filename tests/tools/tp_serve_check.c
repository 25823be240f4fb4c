/* tp_serve_check.c — the serving loop (engine/serve/point_engine.c) on data-parallel x
 * tensor-parallel groups of the ranks of `mpirun -np WORLD`: groups of TP consecutive
 * ranks, each group one model split TP ways whose leader runs a closed-loop share of
 * the requests (ids i with i % groups == group) and sends the steps to its followers
 * (engine/serve/step_sync.c). Rank 0 gathers the leaders' request records and prints
 * one line per request, ordered by id: status, lengths, first token, prefill steps,
 * KV bytes (whole model), kept tokens per layer; no timings. Any two layouts, TP=1
 * included, must print the same lines (the caller diffs them).
 * Fails (exit 1) when a follower recorded anything or a rank's count is off.
 *
 * usage: tp_serve_check TP METHOD N_REQUESTS PROMPT_LEN */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/methods/method.h"
#include "engine/model/model.h"
#include "engine/serve/point_engine.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/tools/tp_test_comm.h"
#include "workloads/closed_loop.h"

enum { SEED = 5, OUTPUT_LEN = 3, CONCURRENCY = 2, MAX_LINE = 320 };

/* One request's line: what must not depend on the layout. */
static void describe(const up_point_result *res, int32_t i, char *line, size_t size) {
  const up_request_record *r = &res->requests[i];
  int used = snprintf(line, size,
                      "request %lld: status %d prompt %d kept %d output %d first token %d prefill steps %d"
                      " kv bytes %lld held %lld layers",
                      (long long)r->id, (int)r->status, (int)r->prompt_len, (int)r->kept_len, (int)r->output_len,
                      (int)r->first_token, (int)r->prefill_steps, (long long)r->kv_bytes,
                      (long long)r->kv_held_bytes);
  for (int32_t l = 0; l < res->n_layers && used < (int)size; ++l)
    used += snprintf(line + used, size - (size_t)used, " %d", (int)res->request_layer_tokens[(size_t)i * res->n_layers + l]);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, world;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (argc != 5 || atoi(argv[1]) < 1 || world % atoi(argv[1]) != 0) {
    fprintf(stderr, "usage: tp_serve_check TP METHOD N_REQUESTS PROMPT_LEN (TP dividing the ranks)\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const int tp_size = atoi(argv[1]), groups = world / tp_size, group = rank / tp_size;
  const int32_t n_total = atoi(argv[3]), prompt_len = atoi(argv[4]);
  MPI_Comm tp_mpi;
  MPI_Comm_split(MPI_COMM_WORLD, group, rank % tp_size, &tp_mpi);
  up_tp_comm *tp = tp_test_comm_create(tp_mpi);

  up_backend *be = up_cpu_backend_create(1);
  const up_model_config *cfg = up_model_preset_find("tiny-llama");
  up_model *model = up_model_create_random_shard(cfg, be, tp, SEED);
  char err[512];
  up_method_spec spec;
  up_method method;
  if (!up_method_spec_parse(argv[2], NULL, &spec, err, sizeof err) ||
      !up_method_spec_resolve(&spec, cfg, err, sizeof err) || !up_method_init(&method, &spec, be, err, sizeof err))
    UP_FATAL("method %s: %s", argv[2], err);

  int64_t *ids = up_malloc_or_die(sizeof(int64_t) * (size_t)n_total, "request ids");
  int32_t n_mine = 0;
  for (int32_t i = 0; i < n_total; ++i)
    if (i % groups == group) ids[n_mine++] = i;
  const up_closed_loop_params wl = {.concurrency = CONCURRENCY, .n_requests = n_mine, .request_ids = ids,
                                    .prompt_len = prompt_len, .output_len = OUTPUT_LEN, .vocab = cfg->vocab,
                                    .n_layers = cfg->n_layers, .seed = SEED};
  up_workload *workload = up_workload_closed_loop_create(&wl);
  /* Followers get a larger pool than the leader: the group must plan with the least. */
  const up_engine_params params = {.max_seqs = CONCURRENCY, .max_batch_tokens = 0, .kv_block_tokens = 16,
                                    .kv_blocks = 256 + 16 * (rank % tp_size), .workspace_tokens = 2 * prompt_len,
                                    .max_seq_entries = prompt_len + OUTPUT_LEN + 1, .rank = rank};
  up_point_result res;
  up_engine_run_point(model, &params, &method, workload, &res);

  const bool leader = rank % tp_size == 0;
  int ok = leader ? res.n_requests == n_mine : res.n_requests == 0 && res.n_steps == 0 && res.kv_blocks_total == 0;
  if (!ok)
    fprintf(stderr, "rank %d (%s of group %d): %d requests, %d steps recorded, %d expected\n", rank,
            leader ? "leader" : "follower", group, (int)res.n_requests, (int)res.n_steps, leader ? (int)n_mine : 0);

  /* Every request's line to rank 0, in id order (lines of the leaders only). */
  char *lines = up_calloc_or_die((size_t)(res.n_requests > 0 ? res.n_requests : 1), MAX_LINE, "lines");
  for (int32_t i = 0; i < res.n_requests; ++i) describe(&res, i, lines + (size_t)i * MAX_LINE, MAX_LINE);
  int n_lines = res.n_requests * MAX_LINE, *counts = NULL, *displs = NULL;
  char *all = NULL;
  if (rank == 0) {
    counts = up_calloc_or_die((size_t)world, sizeof(int), "counts");
    displs = up_calloc_or_die((size_t)world, sizeof(int), "displacements");
  }
  MPI_Gather(&n_lines, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    int total = 0;
    for (int r = 0; r < world; ++r) displs[r] = total, total += counts[r];
    all = up_calloc_or_die((size_t)(total > 0 ? total : 1), 1, "all lines");
  }
  MPI_Gatherv(lines, n_lines, MPI_CHAR, all, counts, displs, MPI_CHAR, 0, MPI_COMM_WORLD);
  int all_ok;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (rank == 0) {
    const int32_t n_got = (displs[world - 1] + counts[world - 1]) / MAX_LINE;
    if (n_got != n_total) {
      fprintf(stderr, "%d request records gathered, %d requests run\n", (int)n_got, (int)n_total);
      all_ok = 0;
    }
    /* In id order: id i is line i of group i % groups. */
    for (int32_t id = 0; id < n_got; ++id) {
      const int32_t g = id % groups, at = id / groups;
      printf("%s\n", all + displs[g * tp_size] + (size_t)at * MAX_LINE);
    }
    free(counts);
    free(displs);
    free(all);
  }
  free(lines);
  free(ids);
  up_point_result_free(&res);
  workload->ops->destroy(workload);
  up_method_destroy(&method);
  up_model_destroy(model);
  tp->ops->destroy(tp);
  MPI_Comm_free(&tp_mpi);
  be->ops->destroy(be);
  MPI_Finalize();
  return all_ok ? 0 : 1;
}
