/* topology.c — rank placement: host hashes (hostname and boot id, as nccl-tests
 * hashes them) gathered from every rank give each rank its local index, and the
 * DP x TP grouping is cut from that host table (tp_grouping.h's rule). */
#include "launcher/topology.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launcher/mpi_check.h"
#include "launcher/parallel/tp_grouping.h"

static uint64_t hash_string(uint64_t h, const char *s) {
  for (; *s; ++s) h = (h ^ (uint8_t)*s) * 1099511628211ull; /* FNV-1a */
  return h;
}

/* The hostname up to its first dot, then the kernel's boot id where it can be read:
 * containers that reuse one hostname on different machines stay apart. */
static uint64_t host_hash(const char *hostname) {
  char short_name[256];
  snprintf(short_name, sizeof short_name, "%.*s", (int)strcspn(hostname, "."), hostname);
  uint64_t h = hash_string(1469598103934665603ull, short_name);
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
  if (f) {
    char boot_id[64] = "";
    if (fgets(boot_id, sizeof boot_id, f)) h = hash_string(h, boot_id);
    fclose(f);
  }
  return h;
}

/* Every rank's host hash, in world-rank order (malloc'd). */
static uint64_t *gather_host_hashes(const up_topology *topo) {
  const uint64_t mine = host_hash(topo->hostname);
  uint64_t *all = up_calloc_or_die((size_t)topo->world_size, sizeof(uint64_t), "the host table");
  UP_CHECK_MPI(MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD));
  return all;
}

void up_topology_init(up_topology *topo, int tp_size) {
  memset(topo, 0, sizeof *topo);
  UP_CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &topo->world_rank));
  UP_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &topo->world_size));
  if (gethostname(topo->hostname, sizeof topo->hostname - 1) != 0) strcpy(topo->hostname, "unknown");
  uint64_t *all = gather_host_hashes(topo);
  const uint64_t mine = all[topo->world_rank];
  for (int r = 0; r < topo->world_size; ++r) {
    if (all[r] != mine) continue;
    if (r < topo->world_rank) topo->local_rank++;
    topo->local_size++;
  }
  free(all);
  UP_ASSERT(tp_size == 1, "placement starts with groups of one, not %d (up_topology_set_tp groups)", tp_size);
  topo->tp_size = 1;
  topo->tp_rank = 0;
  topo->dp_size = topo->world_size;
  topo->dp_rank = topo->world_rank;
}

bool up_topology_set_tp(up_topology *topo, int tp_size, bool allow_cross_node, char *err, size_t err_size) {
  if (tp_size < 1 || topo->world_size % tp_size != 0)
    return up_error(err, err_size, "--tp %d does not divide the job's %d rank(s): the world is dp x tp ranks",
                    tp_size, topo->world_size);
  /* Hostnames, for naming the host a group cannot fit on (every rank computes the same verdict). */
  char *names = up_calloc_or_die((size_t)topo->world_size, sizeof topo->hostname, "the host names");
  UP_CHECK_MPI(MPI_Allgather(topo->hostname, (int)sizeof topo->hostname, MPI_CHAR, names,
                             (int)sizeof topo->hostname, MPI_CHAR, MPI_COMM_WORLD));
  uint64_t *hashes = gather_host_hashes(topo);
  up_tp_place place;
  int bad_rank = -1, count = 0;
  const bool ok = up_tp_place_rank(hashes, topo->world_size, tp_size, allow_cross_node, topo->world_rank, &place,
                                   &bad_rank, &count);
  if (ok) {
    topo->tp_size = tp_size;
    topo->tp_rank = place.tp_rank;
    topo->dp_size = topo->world_size / tp_size;
    topo->dp_rank = place.dp_rank;
    topo->tp_spans_hosts = place.spans_hosts;
  } else {
    up_error(err, err_size,
             "--tp %d: host %s runs %d rank(s) of this job, %s, and a tensor-parallel group stays inside one host "
             "(give every host a multiple of %d ranks, e.g. mpirun --map-by ppr:%d:node, or pass --tp-cross-node "
             "to let groups span hosts)",
             tp_size, names + (size_t)bad_rank * sizeof topo->hostname, count,
             count < tp_size ? "fewer than one group" : "not a whole number of groups", tp_size, tp_size);
  }
  free(hashes);
  free(names);
  return ok;
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
