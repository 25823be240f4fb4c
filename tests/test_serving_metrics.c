/* test_serving_metrics.c — the vLLM / MLPerf serving metrics against a hand-computed
 * point: three finished requests (3, 2 and 1 output tokens) and one failed request that
 * has token times of its own. Checks that failures stay out of every latency statistic
 * and throughput, ITL pools the gaps of all requests, TPOT skips the one-token request,
 * std is the population std, goodput follows each SLO part, and the summary row copies
 * it all. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "engine/serve/request.h"
#include "launcher/sweep/point_summary.h"
#include "launcher/sweep/serving_metrics.h"

#define N_REQ 4
#define EPS 1e-9

/* r0: arrives 0.0, tokens at 0.1 0.3 0.4 -> TTFT 100, E2E 400, TPOT 150, gaps 200 100
 * r1: arrives 0.2, tokens at 0.5 0.6     -> TTFT 300, E2E 400, TPOT 100, gap 100
 * r2: arrives 0.5, token at 1.0          -> TTFT 500, E2E 500, no TPOT, no gap
 * r3: failed, arrives 0.1, finishes 0.9, token times 0.2 0.9 (a 700 ms gap that must
 *     not be pooled). Duration: last finish 1.0 - first arrival 0.0 = 1 s. */
static const double token_times[] = {0.1, 0.3, 0.4, 0.5, 0.6, 1.0, 0.2, 0.9};
static const int64_t token_offsets[N_REQ + 1] = {0, 3, 5, 6, 8};

static up_request_record finished(int64_t id, double arrival, const double *times, int32_t n_out, int32_t prompt) {
  up_request_record r;
  memset(&r, 0, sizeof r);
  r.id = id;
  r.status = UP_REQUEST_FINISHED;
  r.prompt_len = prompt;
  r.kept_len = prompt;
  r.output_len = n_out;
  r.arrival_s = arrival;
  r.first_token_s = times[0];
  r.finish_s = times[n_out - 1];
  r.ttft_ms = 1e3 * (r.first_token_s - arrival);
  r.e2e_ms = 1e3 * (r.finish_s - arrival);
  r.tpot_ms = n_out > 1 ? (r.e2e_ms - r.ttft_ms) / (n_out - 1) : NAN;
  return r;
}

static void make_records(up_request_record *recs) {
  recs[0] = finished(0, 0.0, token_times + 0, 3, 1000);
  recs[1] = finished(1, 0.2, token_times + 3, 2, 2000);
  recs[2] = finished(2, 0.5, token_times + 5, 1, 500);
  memset(&recs[3], 0, sizeof recs[3]);
  recs[3].id = 3;
  recs[3].status = UP_REQUEST_ERROR;
  recs[3].prompt_len = 9000;
  recs[3].output_len = 2;
  recs[3].arrival_s = 0.1;
  recs[3].first_token_s = 0.2;
  recs[3].finish_s = 0.9;
  recs[3].ttft_ms = 100.0; /* would pull every TTFT statistic if it were mixed in */
  recs[3].e2e_ms = 800.0;
}

static void expect_stats(const up_latency_stats *s, int32_t n, double mean, double median, double std, double p90,
                         double p99, const char *what) {
  cr_expect_eq(s->n, n, "%s n", what);
  cr_expect_float_eq(s->mean, mean, EPS, "%s mean %.12g", what, s->mean);
  cr_expect_float_eq(s->median, median, EPS, "%s median %.12g", what, s->median);
  cr_expect_float_eq(s->std, std, EPS, "%s std %.12g", what, s->std);
  cr_expect_float_eq(s->p90, p90, EPS, "%s p90 %.12g", what, s->p90);
  cr_expect_float_eq(s->p99, p99, EPS, "%s p99 %.12g", what, s->p99);
}

Test(serving_metrics, hand_computed_point) {
  up_request_record recs[N_REQ];
  make_records(recs);
  up_serving_metrics m;
  up_serving_metrics_compute(&m, recs, N_REQ, token_times, token_offsets, NULL);
  cr_expect_eq(m.n_requests, 4);
  cr_expect_eq(m.n_ok, 3);
  cr_expect_eq(m.n_failed, 1);
  expect_stats(&m.ttft, 3, 300.0, 300.0, sqrt(80000.0 / 3.0), 460.0, 496.0, "ttft");
  /* TPOT: r0 150, r1 100; r2 has one output token and no TPOT. */
  expect_stats(&m.tpot, 2, 125.0, 125.0, 25.0, 145.0, 149.5, "tpot");
  /* ITL pools 200, 100 (r0) and 100 (r1); r3's 700 ms gap stays out. */
  expect_stats(&m.itl, 3, 400.0 / 3.0, 100.0, sqrt(20000.0 / 9.0), 180.0, 198.0, "itl");
  expect_stats(&m.e2e, 3, 1300.0 / 3.0, 400.0, sqrt(20000.0 / 9.0), 480.0, 498.0, "e2e");
  cr_expect_float_eq(m.duration_s, 1.0, EPS);
  cr_expect_float_eq(m.request_throughput, 3.0, EPS);
  cr_expect_float_eq(m.input_tokens_per_s, 3500.0, EPS);
  cr_expect_float_eq(m.output_tokens_per_s, 6.0, EPS);
  cr_expect_float_eq(m.total_tokens_per_s, 3506.0, EPS);
  cr_expect(isnan(m.goodput), "no SLO: no goodput");
  cr_expect_eq(m.n_good, 0);
}

Test(serving_metrics, goodput_per_slo_part) {
  up_request_record recs[N_REQ];
  make_records(recs);
  struct {
    up_slo slo;
    int32_t n_good;
  } cases[] = {
      /* TTFT <= 300: r0 (100) and r1 (300, the bound is inclusive); the failed r3 never counts. */
      {{.ttft_ms = 300.0, .tpot_ms = NAN}, 2},
      /* TPOT <= 120: r1 (100), and r2 whose single token has no TPOT to miss; r0 (150) misses. */
      {{.ttft_ms = NAN, .tpot_ms = 120.0}, 2},
      /* Both: only r1 meets every part. */
      {{.ttft_ms = 300.0, .tpot_ms = 120.0}, 1},
      /* Loose: every successful request. */
      {{.ttft_ms = 1e6, .tpot_ms = 1e6}, 3},
      /* Tight: none, a goodput of zero (not NaN: an SLO was set). */
      {{.ttft_ms = 1.0, .tpot_ms = NAN}, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    up_serving_metrics m;
    up_serving_metrics_compute(&m, recs, N_REQ, token_times, token_offsets, &cases[i].slo);
    cr_expect_eq(m.n_good, cases[i].n_good, "case %zu: %d good", i, m.n_good);
    cr_expect_float_eq(m.goodput, cases[i].n_good / 1.0, EPS, "case %zu", i);
  }
  const up_slo none = up_slo_none();
  cr_expect(!up_slo_is_set(&none));
  cr_expect(!up_slo_is_set(NULL));
  cr_expect(!up_slo_met(&none, &recs[3]), "a failed request never meets an SLO");
  cr_expect(up_slo_met(&none, &recs[0]));
}

Test(serving_metrics, one_output_token_has_nan_tpot_and_no_itl) {
  up_request_record r = finished(0, 0.0, token_times + 5, 1, 100);
  const int64_t offsets[2] = {0, 1};
  up_serving_metrics m;
  up_serving_metrics_compute(&m, &r, 1, token_times + 5, offsets, NULL);
  cr_expect_eq(m.tpot.n, 0);
  cr_expect(isnan(m.tpot.mean) && isnan(m.tpot.median) && isnan(m.tpot.std) && isnan(m.tpot.p99));
  cr_expect_eq(m.itl.n, 0);
  cr_expect(isnan(m.itl.mean));
  cr_expect_eq(m.ttft.n, 1);
  cr_expect_float_eq(m.ttft.std, 0.0, EPS);
}

Test(serving_metrics, all_failed_and_no_token_times) {
  up_request_record recs[N_REQ];
  make_records(recs);
  for (int i = 0; i < N_REQ; i++) recs[i].status = UP_REQUEST_ERROR;
  up_serving_metrics m;
  const up_slo slo = {.ttft_ms = 1e6, .tpot_ms = NAN};
  up_serving_metrics_compute(&m, recs, N_REQ, token_times, token_offsets, &slo);
  cr_expect_eq(m.n_failed, 4);
  cr_expect(isnan(m.ttft.mean) && isnan(m.e2e.p99) && isnan(m.itl.mean));
  /* The failures still took a second of the run: throughputs are zero, not missing. */
  cr_expect_float_eq(m.request_throughput, 0.0, EPS);
  cr_expect_float_eq(m.goodput, 0.0, EPS);

  make_records(recs);
  up_serving_metrics_compute(&m, recs, N_REQ, NULL, NULL, NULL);
  cr_expect_eq(m.itl.n, 0, "no token times: no ITL");
  cr_expect_eq(m.ttft.n, 3);

  up_serving_metrics_compute(&m, NULL, 0, NULL, NULL, NULL);
  cr_expect_eq(m.n_requests, 0);
  cr_expect(isnan(m.duration_s) && isnan(m.request_throughput));
}

Test(serving_metrics, population_std) {
  const double v[8] = {2, 4, 4, 4, 5, 5, 7, 9};
  up_latency_stats s;
  up_latency_stats_compute(&s, v, 8);
  cr_expect_float_eq(s.mean, 5.0, EPS);
  cr_expect_float_eq(s.std, 2.0, EPS);
  cr_expect_float_eq(s.median, 4.5, EPS);
  up_latency_stats_compute(&s, v, 0);
  cr_expect(isnan(s.mean) && isnan(s.std) && s.n == 0);
}

Test(serving_metrics, summary_row_carries_every_metric) {
  up_request_record recs[N_REQ];
  make_records(recs);
  const up_slo slo = {.ttft_ms = 300.0, .tpot_ms = 120.0};
  up_point_summary s;
  memset(&s, 0, sizeof s);
  up_point_summary_compute(&s, recs, N_REQ, token_times, token_offsets, &slo, NULL, 1.5);
  cr_expect_eq(s.n_failed, 1);
  cr_expect_float_eq(s.ttft_mean_ms, 300.0, EPS);
  cr_expect_float_eq(s.ttft_p50_ms, 300.0, EPS);
  cr_expect_float_eq(s.ttft_p90_ms, 460.0, EPS);
  cr_expect_float_eq(s.ttft_p99_ms, 496.0, EPS);
  cr_expect_float_eq(s.ttft_std_ms, sqrt(80000.0 / 3.0), EPS);
  cr_expect_float_eq(s.tpot_mean_ms, 125.0, EPS);
  cr_expect_float_eq(s.tpot_p99_ms, 149.5, EPS);
  cr_expect_float_eq(s.itl_p50_ms, 100.0, EPS);
  cr_expect_float_eq(s.itl_p90_ms, 180.0, EPS);
  cr_expect_float_eq(s.e2e_mean_ms, 1300.0 / 3.0, EPS);
  cr_expect_float_eq(s.duration_s, 1.0, EPS);
  cr_expect_float_eq(s.requests_per_s, 3.0, EPS);
  cr_expect_float_eq(s.total_tokens_per_s, 3506.0, EPS);
  cr_expect_float_eq(s.slo_ttft_ms, 300.0, EPS);
  cr_expect_float_eq(s.slo_tpot_ms, 120.0, EPS);
  cr_expect_eq(s.n_good, 1);
  cr_expect_float_eq(s.goodput_requests_per_s, 1.0, EPS);
  cr_expect_float_eq(s.wall_s, 1.5, EPS);
  /* Prefill throughput keeps its own span: 3500 prompt tokens, first arrival 0.0 to last first token 1.0. */
  cr_expect_float_eq(s.prefill_tokens_per_s, 3500.0, EPS);
}
