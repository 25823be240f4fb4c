/* request_source.h — the interface the engine takes its requests from. The sources
 * themselves live in workloads/ (closed loop, open loop, trace replay) and depend on
 * this header, never the other way round. A source owns the clock of arrivals: the
 * engine asks it which requests have arrived and submits them. */
#ifndef UP_REQUEST_SOURCE_H
#define UP_REQUEST_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/serve/request.h"

typedef struct up_workload up_workload;

typedef struct up_workload_ops {
  const char *name;
  /* Requests that have arrived by now_s, given in_flight of this source's requests not
   * yet finished; writes up to max newly allocated requests (arrival_s set) to out. */
  int32_t (*poll)(up_workload *w, double now_s, int32_t in_flight, up_request **out, int32_t max);
  /* When the next request arrives if nothing finishes first; INFINITY when arrivals wait on completions. */
  double (*next_arrival_s)(const up_workload *w);
  /* Every request has been handed out. */
  bool (*done)(const up_workload *w);
  void (*destroy)(up_workload *w);
} up_workload_ops;

struct up_workload {
  const up_workload_ops *ops;
  void *impl;
};

#endif
