/* point_summary.h — one row per sweep point: the point's parameters and the metrics
 * the terminal table and the HDF5 summary table show, computed on rank 0 from the
 * gathered request records. */
#ifndef UP_POINT_SUMMARY_H
#define UP_POINT_SUMMARY_H

#include <stdint.h>

#include "engine/records.h"

typedef struct up_point_summary {
  int32_t point_index;
  char method[64];           /* method label, e.g. "uniprefill:keep=0.3" */
  int32_t ctx;               /* prompt tokens per request */
  int32_t concurrency;
  int32_t output_len;
  int32_t n_requests;
  int32_t n_ok;
  int32_t n_failed;
  double ttft_mean_ms;       /* over successful requests; NaN when none */
  double ttft_p50_ms;
  double ttft_p99_ms;
  double prefill_tokens_per_s; /* prompt tokens of successful requests / (last first token - first arrival) */
  double kept_fraction;      /* sum kept_len / sum prompt_len over successful requests */
  double speedup_vs_dense;   /* dense mean TTFT / this mean TTFT at the same ctx and concurrency; NaN when no dense */
  double wall_s;             /* longest rank's point duration */
} up_point_summary;

/* Fill everything but speedup_vs_dense from the point's records. */
void up_point_summary_compute(up_point_summary *sum, const up_request_record *records, int32_t n, double wall_s);

/* Set speedup_vs_dense of every row from the dense row with the same ctx, concurrency and output length. */
void up_point_summary_fill_speedups(up_point_summary *rows, int32_t n_rows);

/* Linear-interpolated percentile (0..100) of n values (sorted copy inside); NaN when n == 0. */
double up_percentile(const double *values, int32_t n, double pct);

#endif
