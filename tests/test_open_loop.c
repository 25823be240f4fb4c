/* test_open_loop.c — open-loop schedules and the timed source: rate and inter-arrival
 * CV for Poisson and bursty gamma arrivals, determinism by seed, duration and infinite
 * rate, length fitting, the rank split, and the concurrency cap that holds a request
 * back while keeping its scheduled arrival time. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "workloads/open_loop.h"

#define N_REQUESTS 20000

static up_open_loop_params params(double rate, double burstiness, int32_t n, uint64_t seed) {
  return (up_open_loop_params){.request_rate = rate, .burstiness = burstiness, .max_requests = n, .seed = seed,
                               .prompt_len = {.kind = UP_LENGTH_UNIFORM, .value = 1000, .range_ratio = 0.5},
                               .output_len = {.kind = UP_LENGTH_FIXED, .value = 8}};
}

/* Mean rate (requests per second after the first) and CV of the inter-arrival gaps. */
static void gap_stats(const up_timed_request *r, int32_t n, double *rate, double *cv) {
  double sum = 0.0, sq = 0.0;
  for (int32_t i = 1; i < n; ++i) {
    const double g = r[i].arrival_s - r[i - 1].arrival_s;
    cr_assert_geq(g, 0.0);
    sum += g;
    sq += g * g;
  }
  const double mean = sum / (n - 1);
  *rate = 1.0 / mean;
  *cv = sqrt(sq / (n - 1) - mean * mean) / mean;
}

Test(open_loop, poisson_rate_and_cv) {
  const up_open_loop_params p = params(10.0, 1.0, N_REQUESTS, 42);
  int32_t n = 0;
  up_timed_request *r = up_open_loop_schedule(&p, &n);
  cr_assert_eq(n, N_REQUESTS);
  cr_expect_eq(r[0].arrival_s, 0.0);
  double rate, cv;
  gap_stats(r, n, &rate, &cv);
  cr_expect(fabs(rate / 10.0 - 1.0) < 0.03, "rate %.3f", rate);
  cr_expect(fabs(cv - 1.0) < 0.05, "cv %.3f", cv);
  free(r);
}

Test(open_loop, gamma_burstiness_sets_cv) {
  const double shapes[] = {0.25, 4.0};
  for (int s = 0; s < 2; ++s) {
    const up_open_loop_params p = params(5.0, shapes[s], N_REQUESTS, 7);
    int32_t n = 0;
    up_timed_request *r = up_open_loop_schedule(&p, &n);
    double rate, cv;
    gap_stats(r, n, &rate, &cv);
    const double want = 1.0 / sqrt(shapes[s]);
    cr_expect(fabs(rate / 5.0 - 1.0) < 0.04, "B=%g rate %.3f", shapes[s], rate);
    cr_expect(fabs(cv / want - 1.0) < 0.06, "B=%g cv %.3f, expected %.3f", shapes[s], cv, want);
    free(r);
  }
}

Test(open_loop, same_seed_same_schedule) {
  const up_open_loop_params a = params(3.0, 0.5, 500, 11), b = params(3.0, 0.5, 500, 12);
  int32_t na, na2, nb;
  up_timed_request *ra = up_open_loop_schedule(&a, &na), *ra2 = up_open_loop_schedule(&a, &na2),
                   *rb = up_open_loop_schedule(&b, &nb);
  cr_assert_eq(na, na2);
  cr_assert(memcmp(ra, ra2, sizeof *ra * (size_t)na) == 0);
  int differ = 0;
  for (int32_t i = 1; i < na; ++i) differ += ra[i].arrival_s != rb[i].arrival_s || ra[i].prompt_len != rb[i].prompt_len;
  cr_expect_gt(differ, 490);
  /* A shorter schedule is a prefix of a longer one: arrivals depend on the index alone. */
  const up_open_loop_params shorter = params(3.0, 0.5, 100, 11);
  int32_t ns;
  up_timed_request *rs = up_open_loop_schedule(&shorter, &ns);
  cr_assert(memcmp(rs, ra, sizeof *rs * (size_t)ns) == 0);
  free(ra);
  free(ra2);
  free(rb);
  free(rs);
}

Test(open_loop, duration_and_infinite_rate) {
  up_open_loop_params p = params(100.0, 1.0, 0, 3);
  p.duration_s = 20.0;
  int32_t n = 0;
  up_timed_request *r = up_open_loop_schedule(&p, &n);
  cr_expect(abs(n - 2000) < 200, "%d arrivals in 20 s at 100/s", n);
  cr_expect_lt(r[n - 1].arrival_s, 20.0);
  free(r);
  p.max_requests = 50; /* the count limit wins when it comes first */
  r = up_open_loop_schedule(&p, &n);
  cr_expect_eq(n, 50);
  free(r);
  const up_open_loop_params all_at_once = params(INFINITY, 1.0, 64, 3);
  r = up_open_loop_schedule(&all_at_once, &n);
  cr_assert_eq(n, 64);
  for (int32_t i = 0; i < n; ++i) cr_assert_eq(r[i].arrival_s, 0.0);
  free(r);
}

Test(open_loop, fit_clamps_and_counts) {
  up_timed_request r[4] = {
      {.id = 0, .prompt_len = 5000, .output_len = 10},
      {.id = 1, .prompt_len = 100, .output_len = 0},
      {.id = 2, .prompt_len = 0, .output_len = 3},
      {.id = 3, .prompt_len = 4086, .output_len = 10},
  };
  up_workload_stats stats = {0};
  up_timed_requests_fit(r, 4, 4096, &stats);
  cr_expect_eq(r[0].prompt_len, 4086);
  cr_expect_eq(r[1].output_len, 1);
  cr_expect_eq(r[2].prompt_len, 1);
  cr_expect_eq(r[3].prompt_len, 4086);
  cr_expect_eq(stats.prompts_clamped, 1);
  cr_expect_eq(stats.outputs_raised, 1);
  cr_expect_eq(stats.prompts_raised, 1);
}

/* Every request handed out by every rank's source, by id: each exactly once. */
Test(open_loop, rank_split_covers_every_request_once) {
  const up_open_loop_params p = params(50.0, 1.0, 101, 5);
  int32_t n = 0;
  up_timed_request *sched = up_open_loop_schedule(&p, &n);
  const up_random_prompts prompts = {.seed = 5, .vocab = 1000};
  up_request *out[128];
  for (int32_t world = 1; world <= 4; ++world) {
    int seen[101] = {0};
    for (int32_t rank = 0; rank < world; ++rank) {
      const up_timed_source_params sp = {.requests = sched, .n_requests = n, .rank = rank, .world = world,
                                         .max_concurrency = 1000, .n_layers = 2, .fill = up_random_prompts_fill,
                                         .fill_ctx = &prompts};
      up_workload *w = up_workload_timed_create(&sp);
      const int32_t got = w->ops->poll(w, 1e9, 0, out, 128);
      cr_assert(w->ops->done(w));
      for (int32_t i = 0; i < got; ++i) {
        cr_assert_eq(out[i]->id % world, rank);
        cr_assert_eq(out[i]->arrival_s, sched[out[i]->id].arrival_s, "global arrival time kept");
        seen[out[i]->id]++;
        up_request_free(out[i]);
        free(out[i]);
      }
      w->ops->destroy(w);
    }
    for (int32_t i = 0; i < n; ++i) cr_assert_eq(seen[i], 1, "world %d: request %d seen %d times", world, i, seen[i]);
  }
  free(sched);
}

Test(open_loop, source_releases_on_time_and_under_the_cap) {
  const up_timed_request sched[3] = {
      {.id = 0, .arrival_s = 0.0, .prompt_len = 4, .output_len = 1},
      {.id = 1, .arrival_s = 1.0, .prompt_len = 4, .output_len = 1},
      {.id = 2, .arrival_s = 2.0, .prompt_len = 4, .output_len = 1},
  };
  const up_random_prompts prompts = {.seed = 1, .vocab = 100};
  const up_timed_source_params sp = {.requests = sched, .n_requests = 3, .rank = 0, .world = 1, .max_concurrency = 1,
                                     .n_layers = 1, .fill = up_random_prompts_fill, .fill_ctx = &prompts};
  up_workload *w = up_workload_timed_create(&sp);
  up_request *out[4];
  cr_assert_eq(w->ops->poll(w, 0.5, 0, out, 4), 1);
  cr_expect_eq(w->ops->next_arrival_s(w), 1.0);
  up_request *first = out[0];
  /* Request 1 has arrived but one is in flight: held back. */
  cr_expect_eq(w->ops->poll(w, 1.5, 1, out, 4), 0);
  /* Released once the first finishes, still stamped with its scheduled arrival. */
  cr_assert_eq(w->ops->poll(w, 1.8, 0, out, 4), 1);
  cr_expect_eq(out[0]->id, 1);
  cr_expect_eq(out[0]->arrival_s, 1.0);
  cr_expect(!w->ops->done(w));
  up_request_free(first);
  free(first);
  up_request_free(out[0]);
  free(out[0]);
  cr_assert_eq(w->ops->poll(w, 5.0, 0, out, 4), 1);
  cr_expect(w->ops->done(w));
  cr_expect(isinf(w->ops->next_arrival_s(w)));
  up_request_free(out[0]);
  free(out[0]);
  w->ops->destroy(w);
}
