/* point_gather.h — brings the records of a sweep point to rank 0 from the leader of
 * every data-parallel replica (every rank without --tp; a tensor-parallel group's
 * followers record nothing): requests merged in id order with their per-layer rows and
 * output-token times, steps in replica order, the longest replica's wall time, and the
 * KV pool figures summed over replicas. */
#ifndef UP_POINT_GATHER_H
#define UP_POINT_GATHER_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/serve/point_engine.h"
#include "launcher/topology.h"

/* Collective over leaders (tp_groups.h's dp_leaders, whose rank 0 is world rank 0;
 * MPI_COMM_NULL on a follower, which returns at once). On rank 0 fills *merged (free
 * with up_point_result_free); elsewhere leaves it zeroed. */
void up_point_gather(MPI_Comm leaders, const up_point_result *mine, up_point_result *merged);

/* Collective: n_items items of item_bytes from each rank, concatenated in rank order
 * into a malloc'd buffer on rank 0 (NULL elsewhere); counts[] holds every rank's item
 * count (read on rank 0 only). */
void *up_gather_items(const up_topology *topo, const void *items, int32_t n_items, size_t item_bytes,
                      const int32_t *counts);

#endif
