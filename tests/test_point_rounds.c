/* test_point_rounds.c — a point run in rounds (--repetitions) on fixed records: round
 * ids follow each other, the joined result keeps each request's and step's round and
 * its token times, the point's TTFT mean and rates are the mean of the rounds' with the
 * sample standard deviation beside them, percentiles are pooled over every request,
 * the fewer-than-20 mark follows the successful requests, a round without a finished
 * request stays out of the means, one round leaves the row as it was, and the attention
 * phase's in-model rate pools the steps. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/model_config.h"
#include "engine/serve/request.h"
#include "launcher/sweep/point_rounds.h"
#include "launcher/sweep/serving_metrics.h"

#define N_LAYERS 2

/* One round as the gather gives it: requests with the given TTFTs (NaN: failed), all
 * arriving at 0 on the round's clock, each with one output token at its first token;
 * one engine step; wall time 1 s + round. */
static up_point_result make_round(int32_t round, const double *ttft_ms, int32_t n) {
  up_point_result r;
  memset(&r, 0, sizeof r);
  r.n_layers = N_LAYERS;
  r.n_requests = n;
  r.requests = calloc((size_t)n, sizeof *r.requests);
  r.request_layer_tokens = calloc((size_t)n * N_LAYERS, sizeof(int32_t));
  r.token_offsets = calloc((size_t)n + 1, sizeof(int64_t));
  r.token_times = calloc((size_t)n, sizeof(double));
  cr_assert(r.requests && r.request_layer_tokens && r.token_offsets && r.token_times);
  int32_t n_times = 0;
  for (int32_t i = 0; i < n; ++i) {
    up_request_record *rec = &r.requests[i];
    rec->id = up_round_request_id(round, n, i);
    rec->prompt_len = rec->kept_len = 100;
    rec->arrival_s = 0.0;
    if (isnan(ttft_ms[i])) {
      rec->status = UP_REQUEST_ERROR;
      rec->ttft_ms = rec->e2e_ms = NAN;
      rec->first_token_s = NAN;
      rec->finish_s = 0.05;
    } else {
      rec->status = UP_REQUEST_FINISHED;
      rec->output_len = 1;
      rec->ttft_ms = rec->e2e_ms = ttft_ms[i];
      rec->first_token_s = rec->finish_s = ttft_ms[i] / 1e3;
      r.token_times[n_times++] = rec->first_token_s;
    }
    r.token_offsets[i + 1] = n_times;
    for (int32_t l = 0; l < N_LAYERS; ++l) r.request_layer_tokens[i * N_LAYERS + l] = 100;
  }
  r.n_steps = 1;
  r.steps = calloc(1, sizeof *r.steps);
  r.step_layer_tokens = calloc(N_LAYERS, sizeof(int64_t));
  r.step_layer_attn = calloc(N_LAYERS, sizeof(up_attn_work));
  cr_assert(r.steps && r.step_layer_tokens && r.step_layer_attn);
  r.steps[0].index = 0;
  r.wall_s = 1.0 + round;
  r.max_resident = 1 + round;
  r.kv_blocks_total = 64;
  r.kv_blocks_peak = 10 + round;
  return r;
}

/* rounds[r] holds n TTFTs each; the joined point and its rows. */
static void run_rounds(const double *ttft, int32_t n_rounds, int32_t n, up_point_rounds *joined,
                       up_point_summary *round_rows, up_point_summary *point) {
  up_point_rounds_init(joined, N_LAYERS);
  for (int32_t r = 0; r < n_rounds; ++r) {
    up_point_result round = make_round(r, ttft + (size_t)r * (size_t)n, n);
    up_point_rounds_add(joined, &round);
    up_point_result_free(&round);
  }
  up_point_rounds_summarize(joined, NULL, NULL, round_rows, point);
}

Test(point_rounds, round_ids_follow_each_other) {
  cr_expect_eq(up_round_request_id(0, 4, 3), 3);
  cr_expect_eq(up_round_request_id(1, 4, 0), 4);
  cr_expect_eq(up_round_request_id(2, 4, 1), 9);
  /* Wide enough for the largest point: 1000 rounds of 10M requests. */
  cr_expect_eq(up_round_request_id(999, 10000000, 9999999), 9999999999ll);
}

Test(point_rounds, joined_result_keeps_rounds_and_token_times) {
  const double ttft[3][3] = {{100, 110, 120}, {200, 210, 220}, {300, 310, 320}};
  up_point_rounds joined;
  up_point_summary rows[3], point;
  run_rounds(&ttft[0][0], 3, 3, &joined, rows, &point);
  const up_point_result *all = &joined.all;
  cr_assert_eq(all->n_requests, 9);
  cr_assert_eq(all->n_steps, 3);
  for (int32_t i = 0; i < 9; ++i) {
    cr_expect_eq(all->requests[i].id, i, "rows in id order");
    cr_expect_eq(joined.request_round[i], i / 3);
    /* Each request's one token time, found through the joined offsets. */
    cr_expect_eq(all->token_offsets[i + 1] - all->token_offsets[i], 1);
    cr_expect_float_eq(all->token_times[all->token_offsets[i]], ttft[i / 3][i % 3] / 1e3, 1e-12);
  }
  for (int32_t s = 0; s < 3; ++s) cr_expect_eq(joined.step_round[s], s);
  cr_expect_eq(joined.round_begin[3], 9);
  /* Pool figures: each round's most; durations add up. */
  cr_expect_eq(all->max_resident, 3);
  cr_expect_eq(all->kv_blocks_peak, 12);
  cr_expect_eq(all->kv_blocks_total, 64);
  cr_expect_float_eq(all->wall_s, 1.0 + 2.0 + 3.0, 1e-12);
  up_point_rounds_free(&joined);
}

Test(point_rounds, mean_and_stddev_of_round_means_and_pooled_percentiles) {
  const double ttft[3][3] = {{100, 110, 120}, {200, 210, 220}, {300, 310, 320}};
  up_point_rounds joined;
  up_point_summary rows[3], point;
  run_rounds(&ttft[0][0], 3, 3, &joined, rows, &point);
  cr_expect_float_eq(rows[0].ttft_mean_ms, 110.0, 1e-9);
  cr_expect_float_eq(rows[1].ttft_mean_ms, 210.0, 1e-9);
  cr_expect_float_eq(rows[2].ttft_mean_ms, 310.0, 1e-9);
  cr_expect_eq(rows[1].n_requests, 3);
  cr_expect_float_eq(rows[2].wall_s, 3.0, 1e-12);
  cr_expect_eq(rows[2].max_resident, 3);
  /* Mean of the round means; sample stddev: sqrt((100^2 + 0 + 100^2) / 2) = 100. */
  cr_expect_float_eq(point.ttft_mean_ms, 210.0, 1e-9);
  cr_expect_float_eq(point.ttft_mean_round_std_ms, 100.0, 1e-9);
  cr_expect_eq(point.repetitions, 3);
  cr_expect_eq(point.n_requests, 9);
  cr_expect_eq(point.n_ok, 9);
  /* Percentiles over all nine requests: the median is the middle one, p99 interpolates
   * 0.92 of the way from 310 to 320; the request-level std is pooled too. */
  cr_expect_float_eq(point.ttft_p50_ms, 210.0, 1e-9);
  cr_expect_float_eq(point.ttft_p99_ms, 319.2, 1e-9);
  double all_ttft[9];
  memcpy(all_ttft, ttft, sizeof all_ttft);
  cr_expect_float_eq(point.ttft_p90_ms, up_percentile(all_ttft, 9, 90.0), 1e-9);
  up_latency_stats pooled;
  up_latency_stats_compute(&pooled, all_ttft, 9);
  cr_expect_float_eq(point.ttft_std_ms, pooled.std, 1e-9);
  /* A rate: round r served 3 requests in (the last finish) 0.12, 0.22, 0.32 s. */
  const double rates[3] = {3 / 0.12, 3 / 0.22, 3 / 0.32};
  const double mean_rate = (rates[0] + rates[1] + rates[2]) / 3;
  double sq = 0.0;
  for (int r = 0; r < 3; ++r) sq += (rates[r] - mean_rate) * (rates[r] - mean_rate);
  cr_expect_float_eq(point.requests_per_s, mean_rate, 1e-9);
  cr_expect_float_eq(point.requests_per_s_round_std, sqrt(sq / 2), 1e-9);
  cr_expect_float_eq(point.wall_s, 6.0, 1e-12);
  cr_expect_eq(point.max_resident, 3);
  /* No model, no SLO: no FLOP figures, no goodput, and so no spread of them. */
  cr_expect(isnan(point.model_tflops_per_s_round_std) && isnan(point.goodput_requests_per_s_round_std));
  /* Nine requests: the percentiles rest on fewer than 20. */
  cr_expect_eq(point.percentiles_few_requests, 1);
  up_point_rounds_free(&joined);
}

Test(point_rounds, few_requests_mark_counts_successful_requests) {
  /* 3 rounds of 7: 21 requests, not marked; one failure leaves 20, still not; two 19. */
  double ttft[21];
  for (int i = 0; i < 21; ++i) ttft[i] = 100.0 + i;
  const int32_t failures[3] = {0, 1, 2};
  const int32_t expected[3] = {0, 0, 1};
  for (int c = 0; c < 3; ++c) {
    double t[21];
    memcpy(t, ttft, sizeof t);
    for (int k = 0; k < failures[c]; ++k) t[3 * k] = NAN;
    up_point_rounds joined;
    up_point_summary rows[3], point;
    run_rounds(t, 3, 7, &joined, rows, &point);
    cr_expect_eq(point.n_ok, 21 - failures[c]);
    cr_expect_eq(point.percentiles_few_requests, expected[c], "%d failures", failures[c]);
    up_point_rounds_free(&joined);
  }
}

Test(point_rounds, a_round_without_a_finished_request_stays_out_of_the_means) {
  const double ttft[3][2] = {{100, 120}, {NAN, NAN}, {300, 320}};
  up_point_rounds joined;
  up_point_summary rows[3], point;
  run_rounds(&ttft[0][0], 3, 2, &joined, rows, &point);
  cr_expect(isnan(rows[1].ttft_mean_ms));
  cr_expect_float_eq(point.ttft_mean_ms, 210.0, 1e-9);
  cr_expect_float_eq(point.ttft_mean_round_std_ms, sqrt(2.0) * 100.0, 1e-9);
  cr_expect_eq(point.n_failed, 2);
  up_point_rounds_free(&joined);
}

Test(point_rounds, one_round_keeps_the_row_as_computed) {
  const double ttft[4] = {100, 140, 90, 200};
  up_point_rounds joined;
  up_point_summary row, point;
  run_rounds(ttft, 1, 4, &joined, &row, &point);
  up_point_summary direct;
  memset(&direct, 0, sizeof direct);
  up_point_summary_compute(&direct, joined.all.requests, 4, joined.all.token_times, joined.all.token_offsets, NULL,
                           NULL, joined.all.wall_s);
  cr_expect_eq(point.ttft_mean_ms, direct.ttft_mean_ms);
  cr_expect_eq(point.ttft_p99_ms, direct.ttft_p99_ms);
  cr_expect_eq(point.requests_per_s, direct.requests_per_s);
  cr_expect_eq(point.duration_s, direct.duration_s);
  cr_expect_eq(point.wall_s, direct.wall_s);
  cr_expect_eq(point.repetitions, 1);
  cr_expect(isnan(point.ttft_mean_round_std_ms), "no spread with one round");
  up_point_rounds_free(&joined);
}

/* The attention phase's rate in the model (attention_tflops): every step's kernel tiles
 * at 4 q_dim FLOPs a pair over the steps' summed attention time, pooled over the rounds;
 * a step without phase time (NaN) leaves it unknown rather than wrong. */
Test(point_rounds, in_model_attention_rate_pools_the_steps) {
  up_model_config cfg = *up_model_preset_find("llama-3.1-8b");
  cr_assert(up_model_config_truncate(&cfg, N_LAYERS));
  const double ttft[2] = {100, 200};
  for (int with_nan = 0; with_nan < 2; ++with_nan) {
    up_point_rounds joined;
    up_point_summary rows[2], point;
    up_point_rounds_init(&joined, N_LAYERS);
    for (int32_t r = 0; r < 2; ++r) {
      up_point_result round = make_round(r, &ttft[r], 1);
      round.steps[0].attention_ms = with_nan && r == 1 ? NAN : 1.0 + r; /* 1 and 2 ms */
      for (int32_t l = 0; l < N_LAYERS; ++l) round.step_layer_attn[l].tiles = 1e6 * (l + 1);
      up_point_rounds_add(&joined, &round);
      up_point_result_free(&round);
    }
    up_point_rounds_summarize(&joined, NULL, &cfg, rows, &point);
    /* q_dim 4096: a step does (1 + 2) x 1e6 pairs x 4 x 4096 = 4.9152e10 FLOPs. */
    if (with_nan) {
      cr_expect(isnan(point.attention_tflops) && isnan(rows[1].attention_tflops));
      cr_expect_float_eq(rows[0].attention_tflops, 49.152, 1e-9);
    } else {
      cr_expect_float_eq(rows[0].attention_tflops, 49.152, 1e-9);
      cr_expect_float_eq(rows[1].attention_tflops, 24.576, 1e-9);
      cr_expect_float_eq(point.attention_tflops, 2 * 49.152 / 3, 1e-9);
    }
    up_point_rounds_free(&joined);
  }
}
