/* topology.c — rank placement: hostname hashes gathered from every rank give each rank
 * its local index (as nccl-tests does), and the DP x TP grouping is derived from the
 * world rank. */
#include "launcher/topology.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launcher/mpi_check.h"

static uint64_t hash_string(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; ++s) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

void up_topology_init(up_topology *topo, int tp_size) {
  memset(topo, 0, sizeof *topo);
  UP_CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &topo->world_rank));
  UP_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &topo->world_size));
  if (gethostname(topo->hostname, sizeof topo->hostname - 1) != 0) strcpy(topo->hostname, "unknown");
  uint64_t mine = hash_string(topo->hostname);
  uint64_t *all = calloc((size_t)topo->world_size, sizeof(uint64_t));
  if (!all) UP_FATAL("out of host memory for the hostname table");
  UP_CHECK_MPI(MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD));
  for (int r = 0; r < topo->world_size; ++r) {
    if (all[r] != mine) continue;
    if (r < topo->world_rank) topo->local_rank++;
    topo->local_size++;
  }
  free(all);
  UP_ASSERT(tp_size >= 1 && topo->world_size % tp_size == 0, "tensor-parallel size %d does not divide %d ranks",
            tp_size, topo->world_size);
  topo->tp_size = tp_size;
  topo->tp_rank = topo->world_rank % tp_size;
  topo->dp_size = topo->world_size / tp_size;
  topo->dp_rank = topo->world_rank / tp_size;
}

char *up_topology_gather_strings(const up_topology *topo, const char *mine) {
  int len = (int)strlen(mine) + 1;
  int *lens = NULL, *displs = NULL;
  char *joined = NULL;
  if (topo->world_rank == 0) {
    lens = calloc((size_t)topo->world_size, sizeof(int));
    displs = calloc((size_t)topo->world_size, sizeof(int));
    if (!lens || !displs) UP_FATAL("out of host memory gathering strings");
  }
  UP_CHECK_MPI(MPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, 0, MPI_COMM_WORLD));
  int total = 0;
  if (topo->world_rank == 0) {
    for (int r = 0; r < topo->world_size; ++r) {
      displs[r] = total;
      total += lens[r];
    }
    joined = malloc((size_t)total);
    if (!joined) UP_FATAL("out of host memory gathering strings");
  }
  UP_CHECK_MPI(MPI_Gatherv(mine, len, MPI_CHAR, joined, lens, displs, MPI_CHAR, 0, MPI_COMM_WORLD));
  if (topo->world_rank == 0) /* NUL separators become commas, the last stays the terminator */
    for (int i = 0; i < total - 1; ++i)
      if (joined[i] == '\0') joined[i] = ',';
  free(lens);
  free(displs);
  return joined;
}
