/* test_gated_deltanet_fixture.c — the CPU Gated DeltaNet ops chained as the layer runs
 * them (causal_conv1d, gdn_gates, gated_deltanet, gated_rmsnorm) against the fixture of
 * tests/reference/gated_deltanet_reference.py, an independent numpy model of the
 * transformers torch fallback (HYBRIDS.md C.6): from zero states over 80 tokens (a full
 * chunk and a short one), and 20 more tokens continuing given conv and recurrent
 * states. Outputs, final recurrent states and conv states must agree to fp32 rounding. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_deltanet.h"

#define FIXTURE UP_TEST_DATA_DIR "/gated_deltanet/fixture.txt"
/* Both sides fp32; exp, the triangular solve and the sums run in different orders. */
#define FP32_ORDER 1e-5

static float *read_array(FILE *f, const char *name, size_t want) {
  char got[64];
  size_t n = 0;
  cr_assert_eq(fscanf(f, "%63s %zu", got, &n), 2, "fixture: no array where %s was due", name);
  cr_assert_str_eq(got, name, "fixture: %s where %s was due", got, name);
  cr_assert_eq(n, want, "fixture: %s holds %zu values, %zu expected", name, n, want);
  float *x = malloc(sizeof(float) * n);
  for (size_t i = 0; i < n; ++i) cr_assert_eq(fscanf(f, "%f", &x[i]), 1, "fixture: %s value %zu", name, i);
  return x;
}

static double normalised_error(const float *got, const float *want, size_t n) {
  double diff = 0.0, ref = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (!isfinite(got[i])) return INFINITY;
    diff += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
    ref += (double)want[i] * want[i];
  }
  return sqrt(diff / (ref > 0.0 ? ref : 1.0));
}

Test(gated_deltanet_fixture, cpu_ops_match_the_numpy_torch_fallback_model) {
  FILE *f = fopen(FIXTURE, "r");
  cr_assert_not_null(f, "cannot open %s (tests/reference/gated_deltanet_reference.py writes it)", FIXTURE);
  int hk, hv, d, width;
  cr_assert_eq(fscanf(f, " shape %d %d %d %d", &hk, &hv, &d, &width), 4, "fixture: no shape line");
  const int key_dim = hk * d, value_dim = hv * d, conv_dim = 2 * key_dim + value_dim;
  float *conv_w = read_array(f, "conv_weight", (size_t)conv_dim * width);
  float *a_log = read_array(f, "a_log", (size_t)hv), *dt_bias = read_array(f, "dt_bias", (size_t)hv);
  float *norm_w = read_array(f, "norm_weight", (size_t)d);
  const up_gdn_shape shape = {hk, hv, d, conv_dim, 1.0f / sqrtf((float)d)};
  int cases = 0;
  char name[32];
  int T, with_state;
  while (fscanf(f, " case %31s %d %d", name, &T, &with_state) == 3) {
    float *mixed = read_array(f, "mixed", (size_t)T * conv_dim);
    float *a = read_array(f, "a", (size_t)T * hv), *b = read_array(f, "b", (size_t)T * hv);
    float *z = read_array(f, "z", (size_t)T * value_dim);
    float *conv_state = read_array(f, "conv_state_in", (size_t)(width - 1) * conv_dim);
    float *state = read_array(f, "state_in", (size_t)hv * d * d);
    float *want_out = read_array(f, "out", (size_t)T * value_dim);
    float *want_state = read_array(f, "state_out", (size_t)hv * d * d);
    float *want_conv_state = read_array(f, "conv_state_out", (size_t)(width - 1) * conv_dim);
    int32_t cu[2] = {0, T}, slot[1] = {0}, initial[1] = {with_state};
    const up_recurrent_batch batch = {1, T, cu, slot, initial};
    float *conv_out = malloc(sizeof(float) * (size_t)T * conv_dim);
    float *g = malloc(sizeof(float) * (size_t)T * hv), *beta = malloc(sizeof(float) * (size_t)T * hv);
    float *o = malloc(sizeof(float) * (size_t)T * value_dim), *y = malloc(sizeof(float) * (size_t)T * value_dim);
    up_cpu_causal_conv1d(NULL, conv_out, mixed, conv_dim, conv_w, conv_state, &batch, conv_dim, width);
    up_cpu_gdn_gates(NULL, g, beta, a, b, hv, a_log, dt_bias, T, hv);
    up_cpu_gated_deltanet(NULL, o, conv_out, conv_out + key_dim, conv_out + 2 * key_dim, g, beta, state, &batch,
                          &shape);
    up_cpu_gated_rmsnorm(NULL, y, o, z, value_dim, norm_w, T, hv, d, 1e-6f);
    const double out_err = normalised_error(y, want_out, (size_t)T * value_dim);
    const double state_err = normalised_error(state, want_state, (size_t)hv * d * d);
    const double conv_err = normalised_error(conv_state, want_conv_state, (size_t)(width - 1) * conv_dim);
    cr_log_info("%s (%d tokens): output %.3e, state %.3e, conv state %.3e", name, T, out_err, state_err, conv_err);
    cr_expect_leq(out_err, FP32_ORDER, "%s: output error %.3e", name, out_err);
    cr_expect_leq(state_err, FP32_ORDER, "%s: final state error %.3e", name, state_err);
    cr_expect_leq(conv_err, 0.0, "%s: the conv state holds the last inputs exactly (%.3e)", name, conv_err);
    float *const owned[] = {mixed, a, b, z, conv_state, state, want_out, want_state, want_conv_state,
                            conv_out, g, beta, o, y};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; ++i) free(owned[i]);
    ++cases;
  }
  cr_expect_eq(cases, 2, "fixture: %d cases read, 2 expected", cases);
  free(conv_w);
  free(a_log);
  free(dt_bias);
  free(norm_w);
  fclose(f);
}
