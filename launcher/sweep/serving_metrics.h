/* serving_metrics.h — the serving metrics of one sweep point as vLLM's `bench serve`
 * and MLPerf LoadGen define them: TTFT, TPOT, ITL and E2E latency distributions over
 * the successful requests, request and token throughputs over the point's duration,
 * and goodput under optional TTFT / TPOT service-level objectives. Failed requests are
 * counted, never mixed into a latency statistic. Pure computation on records: no MPI,
 * no I/O. */
#ifndef UP_SERVING_METRICS_H
#define UP_SERVING_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/serve/records.h"

/* One latency distribution, in milliseconds; every value is NaN when n is 0. */
typedef struct up_latency_stats {
  int32_t n;      /* values the statistics are over */
  double mean;
  double median;  /* 50th percentile, linear interpolation */
  double std;     /* population standard deviation (numpy's default, as vLLM reports) */
  double p90;
  double p99;
} up_latency_stats;

/* Service-level objectives for goodput; a NaN part is not set (no constraint). */
typedef struct up_slo {
  double ttft_ms; /* a good request's TTFT is at most this */
  double tpot_ms; /* a good request's TPOT is at most this */
} up_slo;

typedef struct up_serving_metrics {
  int32_t n_requests;
  int32_t n_ok;               /* finished requests: the latency statistics are over these */
  int32_t n_failed;           /* every other request */
  up_latency_stats ttft;      /* arrival to first token */
  up_latency_stats tpot;      /* per request (E2E - TTFT) / (outputs - 1); only requests with > 1 output */
  up_latency_stats itl;       /* pooled gaps between consecutive output tokens of every request */
  up_latency_stats e2e;       /* arrival to last token */
  double duration_s;          /* last finish - first arrival over all requests; NaN when none */
  double request_throughput;  /* n_ok / duration, requests/s */
  double input_tokens_per_s;  /* prompt tokens of successful requests / duration */
  double output_tokens_per_s; /* output tokens of successful requests / duration */
  double total_tokens_per_s;  /* input + output */
  int32_t n_good;             /* successful requests meeting every set SLO part; 0 when no SLO is set */
  double goodput;             /* n_good / duration, requests/s; NaN when no SLO part is set */
} up_serving_metrics;

/* An SLO with no part set. */
up_slo up_slo_none(void);
/* True when at least one part is set. */
bool up_slo_is_set(const up_slo *slo);
/* True when a successful request meets every set part. A request with one output token
 * has no TPOT and so meets a TPOT objective (nothing to miss). */
bool up_slo_met(const up_slo *slo, const up_request_record *rec);

/* Statistics of n values (any order; the array is not modified). */
void up_latency_stats_compute(up_latency_stats *stats, const double *values, int32_t n);

/* Linear-interpolated percentile (0..100) of n values (sorted copy inside); NaN when n == 0. */
double up_percentile(const double *values, int32_t n, double pct);

/* All metrics of a point. token_times / token_offsets are the ragged per-request
 * output-token times (seconds; request i's are token_times[token_offsets[i] ..
 * token_offsets[i + 1]]); both NULL leaves ITL empty (NaN). slo may be NULL. */
void up_serving_metrics_compute(up_serving_metrics *m, const up_request_record *records, int32_t n,
                                const double *token_times, const int64_t *token_offsets, const up_slo *slo);

#endif
