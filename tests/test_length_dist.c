/* test_length_dist.c — length distributions: spec parsing and its errors, and the
 * statistics and determinism of draws (uniform bounds and mean, lognormal median). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "workloads/length_dist.h"

#define N_DRAWS 20000

static up_length_dist parse_ok(const char *text) {
  up_length_dist d;
  char err[256] = "";
  cr_assert(up_length_dist_parse(text, &d, err, sizeof err), "'%s' rejected: %s", text, err);
  return d;
}

static void expect_parse_error(const char *text, const char *needle) {
  up_length_dist d;
  char err[256] = "";
  cr_expect(!up_length_dist_parse(text, &d, err, sizeof err), "'%s' accepted", text);
  cr_expect(strstr(err, needle) != NULL, "'%s': message '%s' lacks '%s'", text, err, needle);
}

Test(length_dist, parses_every_form) {
  up_length_dist d = parse_ok("fixed:4096");
  cr_expect_eq(d.kind, UP_LENGTH_FIXED);
  cr_expect_eq(d.value, 4096);
  d = parse_ok("4k");
  cr_expect_eq(d.kind, UP_LENGTH_FIXED);
  cr_expect_eq(d.value, 4096);
  d = parse_ok("uniform:4096:0.5");
  cr_expect_eq(d.kind, UP_LENGTH_UNIFORM);
  cr_expect_float_eq(d.range_ratio, 0.5, 1e-12);
  d = parse_ok("lognormal:2k:0.8");
  cr_expect_eq(d.kind, UP_LENGTH_LOGNORMAL);
  cr_expect_eq(d.value, 2048);
  cr_expect_float_eq(d.sigma, 0.8, 1e-12);
  char text[64];
  up_length_dist_format(&d, text, sizeof text);
  cr_expect_str_eq(text, "lognormal:2048:0.8");
}

Test(length_dist, rejects_malformed_specs) {
  expect_parse_error("", "empty");
  expect_parse_error("gauss:100:1", "'gauss:100:1': unknown distribution");
  expect_parse_error("fixed", "not a length");
  expect_parse_error("fixed:0", "not a length");
  expect_parse_error("fixed:12x", "not a length");
  expect_parse_error("uniform:100", "takes 2 fields");
  expect_parse_error("uniform::0.5", "takes 2 fields");
  expect_parse_error("uniform:100:1.0", "range ratio");
  expect_parse_error("uniform:100:-0.1", "range ratio");
  expect_parse_error(":100", "unknown distribution");
  expect_parse_error("lognormal:100:0", "sigma");
  expect_parse_error("fixed:100:3", "takes 1 field");
}

Test(length_dist, fixed_is_constant) {
  const up_length_dist d = parse_ok("fixed:777");
  for (uint64_t i = 0; i < 100; ++i) cr_assert_eq(up_length_dist_draw(&d, 1, 2, i), 777);
}

Test(length_dist, uniform_bounds_and_mean) {
  const up_length_dist d = parse_ok("uniform:1000:0.5");
  int32_t lo = INT32_MAX, hi = 0;
  double sum = 0.0;
  for (uint64_t i = 0; i < N_DRAWS; ++i) {
    const int32_t v = up_length_dist_draw(&d, 42, 7, i);
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    sum += v;
  }
  cr_expect_geq(lo, 500);
  cr_expect_leq(hi, 1500);
  cr_expect_leq(lo, 505, "the lower end is reached (min %d)", lo);
  cr_expect_geq(hi, 1495, "the upper end is reached (max %d)", hi);
  cr_expect(fabs(sum / N_DRAWS - 1000.0) < 10.0, "mean %.1f", sum / N_DRAWS);
}

static int compare_i32(const void *a, const void *b) {
  const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

Test(length_dist, lognormal_median_and_floor) {
  const up_length_dist d = parse_ok("lognormal:2048:0.8");
  int32_t *v = malloc(sizeof *v * N_DRAWS);
  double log_sum = 0.0, log_sq = 0.0;
  for (uint64_t i = 0; i < N_DRAWS; ++i) {
    v[i] = up_length_dist_draw(&d, 42, 9, i);
    cr_assert_geq(v[i], 1);
    log_sum += log(v[i]);
    log_sq += log(v[i]) * log(v[i]);
  }
  qsort(v, N_DRAWS, sizeof *v, compare_i32);
  const double median = 0.5 * (v[N_DRAWS / 2 - 1] + v[N_DRAWS / 2]);
  cr_expect(fabs(median / 2048.0 - 1.0) < 0.03, "median %.1f", median);
  const double mean_log = log_sum / N_DRAWS, sd_log = sqrt(log_sq / N_DRAWS - mean_log * mean_log);
  cr_expect(fabs(sd_log - 0.8) < 0.02, "sigma of log %.3f", sd_log);
  free(v);
  /* A wide lognormal with a small median still gives lengths >= 1. */
  const up_length_dist tiny = parse_ok("lognormal:1:3");
  for (uint64_t i = 0; i < 1000; ++i) cr_assert_geq(up_length_dist_draw(&tiny, 1, 1, i), 1);
}

Test(length_dist, draws_depend_only_on_seed_stream_index) {
  const up_length_dist d = parse_ok("lognormal:512:1");
  int differ_seed = 0, differ_stream = 0;
  for (uint64_t i = 0; i < 200; ++i) {
    cr_assert_eq(up_length_dist_draw(&d, 5, 3, i), up_length_dist_draw(&d, 5, 3, i));
    differ_seed += up_length_dist_draw(&d, 5, 3, i) != up_length_dist_draw(&d, 6, 3, i);
    differ_stream += up_length_dist_draw(&d, 5, 3, i) != up_length_dist_draw(&d, 5, 4, i);
  }
  /* Reverse order gives the same values: no hidden state. */
  for (uint64_t i = 200; i-- > 0;) cr_assert_eq(up_length_dist_draw(&d, 5, 3, i), up_length_dist_draw(&d, 5, 3, i));
  cr_expect_gt(differ_seed, 150);
  cr_expect_gt(differ_stream, 150);
}
