/* point_summary.c — per-point metrics from request records: TTFT statistics over the
 * successful requests (failures are counted beside them, never mixed in), prefill
 * throughput, kept-token fraction, and the speedup over dense at the same point. */
#include "launcher/point_summary.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/request.h"
#include "kernels/fatal.h"

static int compare_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double up_percentile(const double *values, int32_t n, double pct) {
  if (n <= 0) return NAN;
  double *sorted = up_malloc_or_die(sizeof(double) * (size_t)n, "percentile buffer");
  memcpy(sorted, values, sizeof(double) * (size_t)n);
  qsort(sorted, (size_t)n, sizeof(double), compare_double);
  const double rank = pct / 100.0 * (double)(n - 1);
  const int32_t lo = (int32_t)floor(rank);
  const int32_t hi = lo + 1 < n ? lo + 1 : lo;
  const double v = sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - (double)lo);
  free(sorted);
  return v;
}

void up_point_summary_compute(up_point_summary *sum, const up_request_record *records, int32_t n, double wall_s) {
  double *ttft = up_malloc_or_die(sizeof(double) * (size_t)(n > 0 ? n : 1), "ttft values");
  int32_t n_ok = 0;
  double ttft_sum = 0.0, prompt_tokens = 0.0, kept_tokens = 0.0;
  double first_arrival = INFINITY, last_first_token = -INFINITY;
  for (int32_t i = 0; i < n; ++i) {
    if (records[i].status != UP_REQUEST_FINISHED) continue;
    first_arrival = fmin(first_arrival, records[i].arrival_s);
    last_first_token = fmax(last_first_token, records[i].first_token_s);
    ttft[n_ok++] = records[i].ttft_ms;
    ttft_sum += records[i].ttft_ms;
    prompt_tokens += records[i].prompt_len;
    kept_tokens += records[i].kept_len;
  }
  sum->n_requests = n;
  sum->n_ok = n_ok;
  sum->n_failed = n - n_ok;
  sum->ttft_mean_ms = n_ok ? ttft_sum / n_ok : NAN;
  sum->ttft_p50_ms = up_percentile(ttft, n_ok, 50.0);
  sum->ttft_p99_ms = up_percentile(ttft, n_ok, 99.0);
  /* Prefill throughput over the span in which prompts were being prefilled, not the
   * point's wall time, which also holds the decode tail. */
  const double prefill_span = last_first_token - first_arrival;
  sum->prefill_tokens_per_s = (n_ok && prefill_span > 0.0) ? prompt_tokens / prefill_span : NAN;
  sum->kept_fraction = prompt_tokens > 0.0 ? kept_tokens / prompt_tokens : NAN;
  sum->speedup_vs_dense = NAN;
  sum->wall_s = wall_s;
  free(ttft);
}

void up_point_summary_fill_speedups(up_point_summary *rows, int32_t n_rows) {
  for (int32_t i = 0; i < n_rows; ++i) {
    rows[i].speedup_vs_dense = NAN;
    for (int32_t j = 0; j < n_rows; ++j) {
      if (strcmp(rows[j].method, "dense") != 0) continue;
      if (rows[j].ctx != rows[i].ctx || rows[j].concurrency != rows[i].concurrency ||
          rows[j].output_len != rows[i].output_len)
        continue;
      if (rows[i].ttft_mean_ms > 0.0) rows[i].speedup_vs_dense = rows[j].ttft_mean_ms / rows[i].ttft_mean_ms;
      break;
    }
  }
}
