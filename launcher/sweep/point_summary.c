/* point_summary.c — one summary row per point: the serving metrics (serving_metrics.c)
 * copied into the row's flat fields, plus what only this benchmark reports: prefill
 * throughput, kept-token fraction, KV footprint per request, and the speedup over
 * dense at the same point; and, for a point run in rounds, the mean and spread of each
 * round's means and rates. */
#include "launcher/sweep/point_summary.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/model/layer_cost.h"
#include "engine/serve/request.h"

/* The per-round values a repeated point reports as mean and spread: each mean or rate
 * of the row and the field holding its standard deviation over rounds. */
typedef struct up_round_value {
  size_t value_offset;
  size_t round_std_offset;
} up_round_value;

#define UP_ROUND_VALUE(value, spread) {offsetof(up_point_summary, value), offsetof(up_point_summary, spread)}
static const up_round_value up_round_values[] = {
    UP_ROUND_VALUE(ttft_mean_ms, ttft_mean_round_std_ms),
    UP_ROUND_VALUE(tpot_mean_ms, tpot_mean_round_std_ms),
    UP_ROUND_VALUE(itl_mean_ms, itl_mean_round_std_ms),
    UP_ROUND_VALUE(e2e_mean_ms, e2e_mean_round_std_ms),
    UP_ROUND_VALUE(prefill_tokens_per_s, prefill_tokens_per_s_round_std),
    UP_ROUND_VALUE(model_tflops_per_s, model_tflops_per_s_round_std),
    UP_ROUND_VALUE(duration_s, duration_round_std_s),
    UP_ROUND_VALUE(requests_per_s, requests_per_s_round_std),
    UP_ROUND_VALUE(input_tokens_per_s, input_tokens_per_s_round_std),
    UP_ROUND_VALUE(output_tokens_per_s, output_tokens_per_s_round_std),
    UP_ROUND_VALUE(total_tokens_per_s, total_tokens_per_s_round_std),
    UP_ROUND_VALUE(goodput_requests_per_s, goodput_requests_per_s_round_std),
};
#undef UP_ROUND_VALUE
#define UP_N_ROUND_VALUES (sizeof up_round_values / sizeof up_round_values[0])

static double *value_field(up_point_summary *row, const up_round_value *v) {
  return (double *)((char *)row + v->value_offset);
}

static const double *value_field_const(const up_point_summary *row, const up_round_value *v) {
  return (const double *)((const char *)row + v->value_offset);
}

static double *round_std_field(up_point_summary *row, const up_round_value *v) {
  return (double *)((char *)row + v->round_std_offset);
}

void up_point_summary_compute(up_point_summary *sum, const up_request_record *records, int32_t n,
                              const double *token_times, const int64_t *token_offsets, const up_slo *slo,
                              const up_model_config *model, double wall_s) {
  up_serving_metrics m;
  up_serving_metrics_compute(&m, records, n, token_times, token_offsets, slo);
  double prompt_tokens = 0.0, kept_tokens = 0.0, model_flops = 0.0;
  double kv_bytes = 0.0, kv_held_bytes = 0.0, kv_dense_bytes = 0.0;
  double first_arrival = INFINITY, last_first_token = -INFINITY;
  for (int32_t i = 0; i < n; ++i) {
    if (records[i].status != UP_REQUEST_FINISHED) continue;
    first_arrival = fmin(first_arrival, records[i].arrival_s);
    last_first_token = fmax(last_first_token, records[i].first_token_s);
    prompt_tokens += records[i].prompt_len;
    kept_tokens += records[i].kept_len;
    kv_bytes += (double)records[i].kv_bytes;
    kv_held_bytes += (double)records[i].kv_held_bytes;
    kv_dense_bytes += (double)records[i].kv_dense_bytes;
    if (model) model_flops += up_model_prefill_flops(model, records[i].prompt_len);
  }
  sum->n_requests = m.n_requests;
  sum->n_ok = m.n_ok;
  sum->n_failed = m.n_failed;
  sum->ttft_mean_ms = m.ttft.mean;
  sum->ttft_p50_ms = m.ttft.median;
  sum->ttft_p99_ms = m.ttft.p99;
  /* Prefill throughput over the span in which prompts were being prefilled, not the
   * point's duration, which also holds the decode tail. */
  const double prefill_span = last_first_token - first_arrival;
  sum->prefill_tokens_per_s = (m.n_ok && prefill_span > 0.0) ? prompt_tokens / prefill_span : NAN;
  sum->model_tflops_per_s = (model && m.n_ok && prefill_span > 0.0) ? model_flops / prefill_span / 1e12 : NAN;
  sum->kept_fraction = prompt_tokens > 0.0 ? kept_tokens / prompt_tokens : NAN;
  sum->speedup_vs_dense = NAN;
  sum->wall_s = wall_s;
  sum->ttft_std_ms = m.ttft.std;
  sum->ttft_p90_ms = m.ttft.p90;
  sum->tpot_mean_ms = m.tpot.mean;
  sum->tpot_p50_ms = m.tpot.median;
  sum->tpot_std_ms = m.tpot.std;
  sum->tpot_p90_ms = m.tpot.p90;
  sum->tpot_p99_ms = m.tpot.p99;
  sum->itl_mean_ms = m.itl.mean;
  sum->itl_p50_ms = m.itl.median;
  sum->itl_std_ms = m.itl.std;
  sum->itl_p90_ms = m.itl.p90;
  sum->itl_p99_ms = m.itl.p99;
  sum->e2e_mean_ms = m.e2e.mean;
  sum->e2e_p50_ms = m.e2e.median;
  sum->e2e_std_ms = m.e2e.std;
  sum->e2e_p90_ms = m.e2e.p90;
  sum->e2e_p99_ms = m.e2e.p99;
  sum->duration_s = m.duration_s;
  sum->requests_per_s = m.request_throughput;
  sum->input_tokens_per_s = m.input_tokens_per_s;
  sum->output_tokens_per_s = m.output_tokens_per_s;
  sum->total_tokens_per_s = m.total_tokens_per_s;
  const up_slo none = up_slo_none();
  const up_slo *given = slo != NULL ? slo : &none;
  sum->slo_ttft_ms = given->ttft_ms;
  sum->slo_tpot_ms = given->tpot_ms;
  sum->n_good = m.n_good;
  sum->goodput_requests_per_s = m.goodput;
  sum->kv_bytes_per_request = m.n_ok ? kv_bytes / m.n_ok : NAN;
  sum->kv_held_bytes_per_request = m.n_ok ? kv_held_bytes / m.n_ok : NAN;
  sum->kv_dense_bytes_per_request = m.n_ok ? kv_dense_bytes / m.n_ok : NAN;
  sum->kv_fraction_of_dense = kv_dense_bytes > 0.0 ? kv_bytes / kv_dense_bytes : NAN;
  /* One round until up_point_summary_combine_rounds says otherwise. */
  sum->repetitions = 1;
  sum->percentiles_few_requests = m.n_ok < UP_PERCENTILE_MIN_REQUESTS;
  for (size_t k = 0; k < UP_N_ROUND_VALUES; ++k) *round_std_field(sum, &up_round_values[k]) = NAN;
}

/* Mean and sample standard deviation of the finite values (llama-bench's spread of
 * repeated runs); the deviation is NaN below two values, the mean NaN with none. */
static void round_mean_std(const double *values, int32_t n, double *mean, double *std) {
  double sum = 0.0;
  int32_t k = 0;
  for (int32_t i = 0; i < n; ++i)
    if (isfinite(values[i])) {
      sum += values[i];
      ++k;
    }
  *mean = k > 0 ? sum / k : NAN;
  double sq = 0.0;
  for (int32_t i = 0; i < n; ++i)
    if (isfinite(values[i])) sq += (values[i] - *mean) * (values[i] - *mean);
  *std = k > 1 ? sqrt(sq / (k - 1)) : NAN;
}

void up_point_summary_combine_rounds(up_point_summary *pooled, const up_point_summary *rounds, int32_t n_rounds) {
  double *values = up_malloc_or_die(sizeof(double) * (size_t)(n_rounds > 0 ? n_rounds : 1), "round values");
  for (size_t k = 0; k < UP_N_ROUND_VALUES; ++k) {
    const up_round_value *v = &up_round_values[k];
    for (int32_t r = 0; r < n_rounds; ++r) values[r] = *value_field_const(&rounds[r], v);
    double mean, std;
    round_mean_std(values, n_rounds, &mean, &std);
    /* One round: its value as it was, not recomputed (a NaN stays NaN either way). */
    if (n_rounds > 1) *value_field(pooled, v) = mean;
    *round_std_field(pooled, v) = std;
  }
  double wall = 0.0;
  for (int32_t r = 0; r < n_rounds; ++r) wall += rounds[r].wall_s;
  if (n_rounds > 1) pooled->wall_s = wall;
  pooled->repetitions = n_rounds;
  pooled->percentiles_few_requests = pooled->n_ok < UP_PERCENTILE_MIN_REQUESTS;
  free(values);
}

void up_point_summary_fill_speedups(up_point_summary *rows, int32_t n_rows) {
  for (int32_t i = 0; i < n_rows; ++i) {
    rows[i].speedup_vs_dense = NAN;
    for (int32_t j = 0; j < n_rows; ++j) {
      if (strcmp(rows[j].method, "dense") != 0) continue;
      if (rows[j].ctx != rows[i].ctx || rows[j].concurrency != rows[i].concurrency ||
          rows[j].output_len != rows[i].output_len || rows[j].tp != rows[i].tp)
        continue;
      if (rows[i].ttft_mean_ms > 0.0) rows[i].speedup_vs_dense = rows[j].ttft_mean_ms / rows[i].ttft_mean_ms;
      break;
    }
  }
}
