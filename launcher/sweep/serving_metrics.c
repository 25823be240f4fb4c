/* serving_metrics.c — latency distributions, throughputs and goodput of one point (see
 * serving_metrics.h for the definitions). Only successful requests enter latencies and
 * throughputs; the duration spans every request, failed ones included, because the
 * point's load generator spent that time on them too. */
#include "launcher/sweep/serving_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/serve/request.h"
#include "core/fatal.h"

static int compare_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Percentile of an ascending array, interpolating linearly between closest ranks (numpy's default). */
static double percentile_sorted(const double *sorted, int32_t n, double pct) {
  if (n <= 0) return NAN;
  const double rank = pct / 100.0 * (double)(n - 1);
  const int32_t lo = (int32_t)floor(rank);
  const int32_t hi = lo + 1 < n ? lo + 1 : lo;
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - (double)lo);
}

static double *sorted_copy(const double *values, int32_t n) {
  double *sorted = up_malloc_or_die(sizeof(double) * (size_t)(n > 0 ? n : 1), "sorted latencies");
  if (n > 0) memcpy(sorted, values, sizeof(double) * (size_t)n);
  qsort(sorted, (size_t)n, sizeof(double), compare_double);
  return sorted;
}

double up_percentile(const double *values, int32_t n, double pct) {
  if (n <= 0) return NAN;
  double *sorted = sorted_copy(values, n);
  const double v = percentile_sorted(sorted, n, pct);
  free(sorted);
  return v;
}

void up_latency_stats_compute(up_latency_stats *stats, const double *values, int32_t n) {
  *stats = (up_latency_stats){.n = n > 0 ? n : 0, .mean = NAN, .median = NAN, .std = NAN, .p90 = NAN, .p99 = NAN};
  if (n <= 0) return;
  double sum = 0.0;
  for (int32_t i = 0; i < n; ++i) sum += values[i];
  const double mean = sum / n;
  /* Two passes: the deviations are small next to the values (milliseconds apart on
   * seconds of TTFT), where the one-pass formula loses digits. */
  double sq = 0.0;
  for (int32_t i = 0; i < n; ++i) sq += (values[i] - mean) * (values[i] - mean);
  double *sorted = sorted_copy(values, n);
  stats->mean = mean;
  stats->std = sqrt(sq / n);
  stats->median = percentile_sorted(sorted, n, 50.0);
  stats->p90 = percentile_sorted(sorted, n, 90.0);
  stats->p99 = percentile_sorted(sorted, n, 99.0);
  free(sorted);
}

up_slo up_slo_none(void) { return (up_slo){.ttft_ms = NAN, .tpot_ms = NAN}; }

bool up_slo_is_set(const up_slo *slo) { return slo != NULL && (!isnan(slo->ttft_ms) || !isnan(slo->tpot_ms)); }

/* TPOT as vLLM and MLPerf define it, from the request's own latencies; NaN with one output. */
static double request_tpot_ms(const up_request_record *rec) {
  return rec->output_len > 1 ? (rec->e2e_ms - rec->ttft_ms) / (rec->output_len - 1) : NAN;
}

bool up_slo_met(const up_slo *slo, const up_request_record *rec) {
  if (rec->status != UP_REQUEST_FINISHED) return false;
  if (!isnan(slo->ttft_ms) && !(rec->ttft_ms <= slo->ttft_ms)) return false;
  const double tpot = request_tpot_ms(rec);
  if (!isnan(slo->tpot_ms) && !isnan(tpot) && !(tpot <= slo->tpot_ms)) return false;
  return true;
}

/* Gaps between consecutive output tokens of the successful requests, in ms, pooled. */
static int32_t pool_inter_token_gaps(const up_request_record *records, int32_t n, const double *token_times,
                                     const int64_t *token_offsets, double **out) {
  int64_t n_gaps = 0;
  if (token_times != NULL && token_offsets != NULL)
    for (int32_t i = 0; i < n; ++i)
      if (records[i].status == UP_REQUEST_FINISHED && token_offsets[i + 1] - token_offsets[i] > 1)
        n_gaps += token_offsets[i + 1] - token_offsets[i] - 1;
  UP_ASSERT(n_gaps <= INT32_MAX, "%lld inter-token gaps in one point", (long long)n_gaps);
  double *gaps = up_malloc_or_die(sizeof(double) * (size_t)(n_gaps > 0 ? n_gaps : 1), "inter-token gaps");
  int32_t k = 0;
  for (int32_t i = 0; n_gaps > 0 && i < n; ++i) {
    if (records[i].status != UP_REQUEST_FINISHED) continue;
    for (int64_t t = token_offsets[i] + 1; t < token_offsets[i + 1]; ++t)
      gaps[k++] = 1e3 * (token_times[t] - token_times[t - 1]);
  }
  *out = gaps;
  return k;
}

void up_serving_metrics_compute(up_serving_metrics *m, const up_request_record *records, int32_t n,
                                const double *token_times, const int64_t *token_offsets, const up_slo *slo) {
  memset(m, 0, sizeof *m);
  const size_t cap = (size_t)(n > 0 ? n : 1);
  double *ttft = up_malloc_or_die(sizeof(double) * cap, "ttft values");
  double *tpot = up_malloc_or_die(sizeof(double) * cap, "tpot values");
  double *e2e = up_malloc_or_die(sizeof(double) * cap, "e2e values");
  const bool slo_set = up_slo_is_set(slo);
  int32_t n_ok = 0, n_tpot = 0;
  double input_tokens = 0.0, output_tokens = 0.0;
  double first_arrival = INFINITY, last_finish = -INFINITY;
  for (int32_t i = 0; i < n; ++i) {
    const up_request_record *r = &records[i];
    if (isfinite(r->arrival_s)) first_arrival = fmin(first_arrival, r->arrival_s);
    if (isfinite(r->finish_s)) last_finish = fmax(last_finish, r->finish_s);
    if (r->status != UP_REQUEST_FINISHED) continue;
    ttft[n_ok] = r->ttft_ms;
    e2e[n_ok] = r->e2e_ms;
    ++n_ok;
    const double t = request_tpot_ms(r);
    if (!isnan(t)) tpot[n_tpot++] = t;
    input_tokens += r->prompt_len;
    output_tokens += r->output_len;
    if (slo_set && up_slo_met(slo, r)) m->n_good++;
  }
  m->n_requests = n;
  m->n_ok = n_ok;
  m->n_failed = n - n_ok;
  up_latency_stats_compute(&m->ttft, ttft, n_ok);
  up_latency_stats_compute(&m->tpot, tpot, n_tpot);
  up_latency_stats_compute(&m->e2e, e2e, n_ok);
  double *gaps = NULL;
  const int32_t n_gaps = pool_inter_token_gaps(records, n, token_times, token_offsets, &gaps);
  up_latency_stats_compute(&m->itl, gaps, n_gaps);

  const double duration = last_finish - first_arrival;
  m->duration_s = isfinite(duration) ? duration : NAN;
  const bool timed = isfinite(duration) && duration > 0.0;
  m->request_throughput = timed ? n_ok / duration : NAN;
  m->input_tokens_per_s = timed ? input_tokens / duration : NAN;
  m->output_tokens_per_s = timed ? output_tokens / duration : NAN;
  m->total_tokens_per_s = timed ? (input_tokens + output_tokens) / duration : NAN;
  m->goodput = slo_set && timed ? m->n_good / duration : NAN;
  free(ttft);
  free(tpot);
  free(e2e);
  free(gaps);
}
