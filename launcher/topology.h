/* topology.h — where each rank sits: world rank and size, the ranks sharing its host
 * (found by hashing hostname and boot id, so each local rank can take its own GPU and
 * its share of the cores), and the data-parallel x tensor-parallel grouping: groups of
 * --tp ranks built from the host table, so that a group stays inside one host whatever
 * order the launcher numbered the ranks in (../shared/PARALLEL.md 6.1). */
#ifndef UP_TOPOLOGY_H
#define UP_TOPOLOGY_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct up_topology {
  int world_rank;
  int world_size;
  int local_rank;   /* index among ranks on the same host */
  int local_size;
  int tp_size;      /* ranks per tensor-parallel group */
  int tp_rank;      /* this rank's index in its group: its shard of every split weight */
  int dp_size;      /* number of data-parallel replicas (tensor-parallel groups) */
  int dp_rank;      /* this rank's group, numbered by the groups' lowest world ranks */
  bool tp_spans_hosts; /* some group holds ranks of two hosts (only with --tp-cross-node) */
  char hostname[256];
} up_topology;

/* Collective over MPI_COMM_WORLD: placement, with every rank its own group of one
 * (tp_size 1, which must be what is passed until up_topology_set_tp is called). */
void up_topology_init(up_topology *topo, int tp_size);

/* Collective: group the ranks into tensor-parallel groups of tp_size. Each host's ranks
 * form groups in local-rank order (tp_rank = local_rank % tp_size); where some host's rank
 * count is not a multiple of tp_size that cannot be, and the call fails naming the host,
 * unless allow_cross_node, which then groups consecutive world ranks. Fails too when
 * tp_size does not divide the world. On failure the message (the same on every rank)
 * is in err and topo is unchanged. */
bool up_topology_set_tp(up_topology *topo, int tp_size, bool allow_cross_node, char *err, size_t err_size);

/* Collective: rank 0 receives "s0,s1,..." (one string per rank, malloc'd); others NULL. */
char *up_topology_gather_strings(const up_topology *topo, const char *mine);

#endif
