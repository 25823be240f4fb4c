/* topology.h — where each rank sits: world rank and size, the ranks sharing its host
 * (found by hashing hostnames, so each local rank can take its own GPU and its share of
 * the cores), and the data-parallel x tensor-parallel grouping (tensor parallel size 1
 * until tensor parallelism exists). */
#ifndef UP_TOPOLOGY_H
#define UP_TOPOLOGY_H

#include <mpi.h>
#include <stdint.h>

typedef struct up_topology {
  int world_rank;
  int world_size;
  int local_rank;   /* index among ranks on the same host */
  int local_size;
  int tp_size;      /* ranks per tensor-parallel group */
  int tp_rank;
  int dp_size;      /* number of data-parallel replicas */
  int dp_rank;
  char hostname[256];
} up_topology;

/* Collective over MPI_COMM_WORLD. tp_size must divide the world size. */
void up_topology_init(up_topology *topo, int tp_size);

/* Collective: rank 0 receives "s0,s1,..." (one string per rank, malloc'd); others NULL. */
char *up_topology_gather_strings(const up_topology *topo, const char *mine);

#endif
