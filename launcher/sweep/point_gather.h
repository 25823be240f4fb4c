/* point_gather.h — brings every rank's records of a sweep point to rank 0: requests
 * merged in id order with their per-layer rows and output-token times, steps in rank
 * order, the longest rank's wall time, and the KV pool figures summed over ranks. */
#ifndef UP_POINT_GATHER_H
#define UP_POINT_GATHER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/serve/point_engine.h"
#include "launcher/topology.h"

/* Collective. On rank 0 fills *merged (free with up_point_result_free); elsewhere leaves it zeroed. */
void up_point_gather(const up_topology *topo, const up_point_result *mine, up_point_result *merged);

/* Collective: n_items items of item_bytes from each rank, concatenated in rank order
 * into a malloc'd buffer on rank 0 (NULL elsewhere); counts[] holds every rank's item
 * count (read on rank 0 only). */
void *up_gather_items(const up_topology *topo, const void *items, int32_t n_items, size_t item_bytes,
                      const int32_t *counts);

#endif
