/* point_gather.c — MPI gathers of one point's records and output-token times (as bytes:
 * every rank runs the same binary on the same architecture) over the data-parallel
 * replicas' leaders, and their merge on the first; the byte gather itself is shared
 * with the kernel benchmark. */
#include "launcher/sweep/point_gather.h"

#include <stdlib.h>
#include <string.h>

#include "launcher/mpi_check.h"

/* up_gather_items over comm (every member takes part; its rank 0 receives). */
static void *gather_items_on(MPI_Comm comm, const void *items, int32_t n_items, size_t item_bytes,
                             const int32_t *counts) {
  int rank, size;
  UP_CHECK_MPI(MPI_Comm_rank(comm, &rank));
  UP_CHECK_MPI(MPI_Comm_size(comm, &size));
  const int root = rank == 0;
  int *byte_counts = NULL, *displs = NULL;
  char *all = NULL;
  if (root) {
    byte_counts = up_calloc_or_die((size_t)size, sizeof(int), "gather counts");
    displs = up_calloc_or_die((size_t)size, sizeof(int), "gather offsets");
    size_t total = 0;
    for (int r = 0; r < size; ++r) {
      const size_t bytes = (size_t)counts[r] * item_bytes;
      UP_ASSERT(total + bytes < (size_t)INT32_MAX, "point records exceed 2 GiB");
      displs[r] = (int)total;
      byte_counts[r] = (int)bytes;
      total += bytes;
    }
    all = up_malloc_or_die(total, "gathered records");
  }
  UP_CHECK_MPI(MPI_Gatherv(items, (int)((size_t)n_items * item_bytes), MPI_BYTE, all, byte_counts, displs, MPI_BYTE,
                           0, comm));
  free(byte_counts);
  free(displs);
  return all;
}

void *up_gather_items(const up_topology *topo, const void *items, int32_t n_items, size_t item_bytes,
                      const int32_t *counts) {
  (void)topo; /* every rank of the job */
  return gather_items_on(MPI_COMM_WORLD, items, n_items, item_bytes, counts);
}

void up_point_gather(MPI_Comm leaders, const up_point_result *mine, up_point_result *merged) {
  memset(merged, 0, sizeof *merged);
  if (leaders == MPI_COMM_NULL) return; /* a follower: its leader holds the group's records */
  int rank, size;
  UP_CHECK_MPI(MPI_Comm_rank(leaders, &rank));
  UP_CHECK_MPI(MPI_Comm_size(leaders, &size));
  const int root = rank == 0;
  if (root) {
    int world_rank;
    UP_CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank));
    UP_ASSERT(world_rank == 0, "the first replica leader is world rank %d, not the rank that writes", world_rank);
  }
  const int32_t L = mine->n_layers;
  const int64_t my_times = mine->n_requests > 0 ? mine->token_offsets[mine->n_requests] : 0;
  UP_ASSERT(my_times <= INT32_MAX, "%lld output tokens on one rank", (long long)my_times);
  int32_t my_counts[3] = {mine->n_requests, mine->n_steps, (int32_t)my_times};
  int32_t *counts = root ? up_calloc_or_die((size_t)size * 3, sizeof(int32_t), "record counts") : NULL;
  UP_CHECK_MPI(MPI_Gather(my_counts, 3, MPI_INT32_T, counts, 3, MPI_INT32_T, 0, leaders));
  int32_t *request_counts = NULL, *step_counts = NULL, *time_counts = NULL;
  if (root) {
    request_counts = up_calloc_or_die((size_t)size, sizeof(int32_t), "request counts");
    step_counts = up_calloc_or_die((size_t)size, sizeof(int32_t), "step counts");
    time_counts = up_calloc_or_die((size_t)size, sizeof(int32_t), "token time counts");
    for (int r = 0; r < size; ++r) {
      request_counts[r] = counts[3 * r];
      step_counts[r] = counts[3 * r + 1];
      time_counts[r] = counts[3 * r + 2];
      merged->n_requests += request_counts[r];
      merged->n_steps += step_counts[r];
    }
  }
  merged->requests =
      gather_items_on(leaders, mine->requests, mine->n_requests, sizeof(up_request_record), request_counts);
  merged->request_layer_tokens = gather_items_on(leaders, mine->request_layer_tokens, mine->n_requests,
                                                 sizeof(int32_t) * (size_t)L, request_counts);
  merged->steps = gather_items_on(leaders, mine->steps, mine->n_steps, sizeof(up_step_record), step_counts);
  merged->step_layer_tokens =
      gather_items_on(leaders, mine->step_layer_tokens, mine->n_steps, sizeof(int64_t) * (size_t)L, step_counts);
  merged->step_layer_attn =
      gather_items_on(leaders, mine->step_layer_attn, mine->n_steps, sizeof(up_attn_work) * (size_t)L, step_counts);
  /* Token times travel flat; offsets are rank-local, so each request's token count
   * travels instead and rank 0 rebuilds the offsets over the merged order. */
  int64_t *my_token_counts = up_malloc_or_die(sizeof(int64_t) * (size_t)(mine->n_requests + 1), "token counts");
  for (int32_t i = 0; i < mine->n_requests; ++i)
    my_token_counts[i] = mine->token_offsets[i + 1] - mine->token_offsets[i];
  int64_t *token_counts = gather_items_on(leaders, my_token_counts, mine->n_requests, sizeof(int64_t), request_counts);
  free(my_token_counts);
  merged->token_times = gather_items_on(leaders, mine->token_times, (int32_t)my_times, sizeof(double), time_counts);
  if (root) {
    merged->token_offsets = up_malloc_or_die(sizeof(int64_t) * (size_t)(merged->n_requests + 1), "token offsets");
    merged->token_offsets[0] = 0;
    for (int32_t i = 0; i < merged->n_requests; ++i)
      merged->token_offsets[i + 1] = merged->token_offsets[i] + token_counts[i];
  }
  free(token_counts);

  double wall = 0.0;
  UP_CHECK_MPI(MPI_Reduce(&mine->wall_s, &wall, 1, MPI_DOUBLE, MPI_MAX, 0, leaders));
  /* Each replica has its own pool: totals, peaks and residents add up over replicas. */
  int64_t kv_in[3] = {mine->kv_blocks_total, mine->kv_blocks_peak, mine->max_resident}, kv_sum[3] = {0, 0, 0};
  UP_CHECK_MPI(MPI_Reduce(kv_in, kv_sum, 3, MPI_INT64_T, MPI_SUM, 0, leaders));
  if (root) {
    merged->n_layers = L;
    merged->wall_s = wall;
    merged->kv_block_bytes = mine->kv_block_bytes;
    merged->kv_blocks_total = kv_sum[0];
    merged->kv_blocks_peak = kv_sum[1];
    merged->max_resident = (int32_t)kv_sum[2];
    up_point_result_sort_requests(merged);
  }
  free(counts);
  free(request_counts);
  free(step_counts);
  free(time_counts);
}
