/* test_point_summary.c — per-point metrics against hand-computed values: failed
 * requests are counted apart and never enter TTFT statistics, percentiles interpolate,
 * and speedups pair each row with the dense row of the same point. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/serve/request.h"
#include "engine/model/layer_cost.h"
#include "engine/model/model_config.h"
#include "launcher/sweep/point_summary.h"
#include "launcher/sweep/speed_model.h"

static up_request_record ok_record(int64_t id, double arrival, double first, int32_t prompt, int32_t kept) {
  up_request_record r;
  memset(&r, 0, sizeof r);
  r.id = id;
  r.status = UP_REQUEST_FINISHED;
  r.prompt_len = prompt;
  r.kept_len = kept;
  r.arrival_s = arrival;
  r.first_token_s = first;
  r.ttft_ms = 1e3 * (first - arrival);
  return r;
}

Test(point_summary, failures_are_counted_not_averaged) {
  up_request_record recs[4] = {
      ok_record(0, 0.0, 0.1, 1000, 400), ok_record(1, 0.0, 0.3, 1000, 300), ok_record(2, 0.5, 1.0, 2000, 800),
  };
  memset(&recs[3], 0, sizeof recs[3]);
  recs[3].id = 3;
  recs[3].status = UP_REQUEST_ERROR;
  recs[3].prompt_len = 9999;
  recs[3].ttft_ms = NAN;
  up_point_summary s;
  memset(&s, 0, sizeof s);
  up_point_summary_compute(&s, recs, 4, NULL, NULL, NULL, NULL, 2.0);
  cr_assert_eq(s.n_requests, 4);
  cr_assert_eq(s.n_ok, 3);
  cr_assert_eq(s.n_failed, 1);
  cr_assert_float_eq(s.ttft_mean_ms, (100.0 + 300.0 + 500.0) / 3.0, 1e-9);
  cr_assert_float_eq(s.ttft_p50_ms, 300.0, 1e-9);
  cr_assert_float_eq(s.ttft_p99_ms, 300.0 + 0.98 * 200.0, 1e-9);
  cr_assert_float_eq(s.kept_fraction, 1500.0 / 4000.0, 1e-12);
  /* 4000 prompt tokens from the first arrival (0.0) to the last first token (1.0). */
  cr_assert_float_eq(s.prefill_tokens_per_s, 4000.0, 1e-9);
  cr_assert(isnan(s.speedup_vs_dense));
  /* No token times and no SLO: no ITL, no goodput, and the SLO columns say so. */
  cr_assert(isnan(s.itl_mean_ms) && isnan(s.goodput_requests_per_s));
  cr_assert(isnan(s.slo_ttft_ms) && isnan(s.slo_tpot_ms));
  cr_assert_eq(s.n_good, 0);
}

Test(point_summary, all_failed_gives_nan_statistics) {
  up_request_record r;
  memset(&r, 0, sizeof r);
  r.status = UP_REQUEST_ERROR;
  up_point_summary s;
  up_point_summary_compute(&s, &r, 1, NULL, NULL, NULL, NULL, 1.0);
  cr_assert_eq(s.n_failed, 1);
  cr_assert(isnan(s.ttft_mean_ms) && isnan(s.ttft_p50_ms) && isnan(s.prefill_tokens_per_s));
}

Test(point_summary, percentile_interpolates) {
  const double v[5] = {5, 1, 4, 2, 3};
  cr_assert_float_eq(up_percentile(v, 5, 0.0), 1.0, 1e-12);
  cr_assert_float_eq(up_percentile(v, 5, 50.0), 3.0, 1e-12);
  cr_assert_float_eq(up_percentile(v, 5, 90.0), 4.6, 1e-12);
  cr_assert_float_eq(up_percentile(v, 5, 100.0), 5.0, 1e-12);
  cr_assert(isnan(up_percentile(v, 0, 50.0)));
}

Test(point_summary, speedup_pairs_with_dense_at_the_same_point) {
  up_point_summary rows[4];
  memset(rows, 0, sizeof rows);
  const char *methods[4] = {"uniprefill:keep=0.3", "dense", "dense", "uniprefill"};
  const int32_t ctx[4] = {4096, 4096, 1024, 1024};
  const double ttft[4] = {50.0, 200.0, 30.0, 40.0};
  for (int i = 0; i < 4; ++i) {
    snprintf(rows[i].method, sizeof rows[i].method, "%s", methods[i]);
    rows[i].ctx = ctx[i];
    rows[i].concurrency = 1;
    rows[i].ttft_mean_ms = ttft[i];
  }
  up_point_summary_fill_speedups(rows, 4);
  cr_assert_float_eq(rows[0].speedup_vs_dense, 4.0, 1e-12);
  cr_assert_float_eq(rows[1].speedup_vs_dense, 1.0, 1e-12);
  cr_assert_float_eq(rows[3].speedup_vs_dense, 0.75, 1e-12);
}

Test(point_summary, model_tflops_count_dense_prefill_flops_over_the_prefill_span) {
  const up_model_config *cfg = up_model_preset_find("llama-3.1-8b");
  up_request_record recs[2] = {ok_record(0, 0.0, 0.25, 8192, 8192), ok_record(1, 0.25, 0.5, 8192, 4096)};
  up_point_summary s;
  memset(&s, 0, sizeof s);
  up_point_summary_compute(&s, recs, 2, NULL, NULL, NULL, cfg, 1.0);
  /* Two 8K prefills in 0.5 s; UniPrefill's kept tokens do not change the credited FLOPs. */
  cr_assert_float_eq(s.model_tflops_per_s, 2.0 * up_model_prefill_flops(cfg, 8192) / 0.5 / 1e12, 1e-9);
  up_point_summary_compute(&s, recs, 2, NULL, NULL, NULL, NULL, 1.0);
  cr_assert(isnan(s.model_tflops_per_s), "no model, no FLOP rate");
}

Test(speed_model, no_drop_predicts_one_and_drops_predict_the_flop_ratio) {
  up_model_config cfg = *up_model_preset_find("tiny-llama");
  const int32_t L = cfg.n_layers;
  up_request_record recs[2] = {ok_record(0, 0.0, 0.1, 4096, 4096), ok_record(1, 0.0, 0.1, 4096, 4096)};
  int32_t rows[2 * 8];
  for (int32_t l = 0; l < 2 * L; ++l) rows[l] = 4096;
  cr_assert_float_eq(up_speed_model_predicted_speedup(&cfg, recs, rows, 2), 1.0, 1e-12);
  /* Both requests keep half their tokens from layer 2 on (a drop after layer 1). */
  for (int32_t i = 0; i < 2; ++i) {
    for (int32_t l = 2; l < L; ++l) rows[i * L + l] = 2048;
    recs[i].kept_len = 2048;
  }
  const double h = cfg.hidden, q = cfg.n_heads * cfg.head_dim;
  const double attn_params = h * up_model_config_qkv_dim(&cfg) + h * q, mlp = 3.0 * h * cfg.intermediate;
  const double head = 2.0 * h * cfg.vocab;
  double dropped = head;
  for (int32_t l = 0; l < L; ++l) {
    const double n = l < 2 ? 4096.0 : 2048.0, after = l < 1 ? 4096.0 : 2048.0;
    dropped += 2.0 * attn_params * n + 2.0 * n * n * q + 2.0 * mlp * after;
  }
  double dense = head;
  for (int32_t l = 0; l < L; ++l) dense += 2.0 * attn_params * 4096.0 + 2.0 * 4096.0 * 4096.0 * q + 2.0 * mlp * 4096.0;
  const double expect = dense / dropped;
  cr_assert_float_eq(up_speed_model_predicted_speedup(&cfg, recs, rows, 2), expect, 1e-9);
  cr_assert_gt(expect, 1.5);
}
