/* point_gather.h — brings every rank's records of a sweep point to rank 0: requests
 * merged in id order with their per-layer rows and output-token times, steps in rank
 * order, the longest rank's wall time, and the KV pool figures summed over ranks. */
#ifndef UP_POINT_GATHER_H
#define UP_POINT_GATHER_H

#include "engine/engine.h"
#include "launcher/topology.h"

/* Collective. On rank 0 fills *merged (free with up_point_result_free); elsewhere leaves it zeroed. */
void up_point_gather(const up_topology *topo, const up_point_result *mine, up_point_result *merged);

#endif
