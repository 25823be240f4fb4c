/* test_gated_deltanet.c — the CPU Gated DeltaNet ops (kernels/cpu/cpu_deltanet.h) against
 * their definitions: the chunked delta rule equals the token-by-token recurrence over
 * packed batches of lengths that are and are not multiples of the chunk, with and
 * without initial states; a prefill split in two (the second continuing from the
 * state) and decode steps after a prefill equal one pass over the whole; the causal
 * conv with its state equals the conv over the concatenated sequence; the gates, the
 * conv's orientation and the gated RMSNorm on hand-worked values. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_deltanet.h"

/* fp32 chunked against fp32 per-token: only the order of the sums differs. */
#define TIGHT 2e-5

static float *random_values(size_t n, float bound, uint64_t stream) {
  float *v = malloc(sizeof(float) * (n ? n : 1));
  cr_assert_not_null(v);
  for (size_t i = 0; i < n; ++i) v[i] = bound * up_rng_symmetric(77, stream, i);
  return v;
}

static double normalised_error(const float *got, const float *want, size_t n) {
  double diff = 0.0, ref = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (!isfinite(got[i])) return INFINITY;
    diff += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
    ref += (double)want[i] * want[i];
  }
  return ref > 0.0 ? sqrt(diff / ref) : sqrt(diff);
}

/* A packed batch's inputs: q|k|v rows (the convolved row), gates from random a, b
 * through gdn_gates, and a random starting state in every slot. */
typedef struct gdn_case {
  up_gdn_shape shape;
  int32_t n_seqs, n_tokens;
  int32_t cu[9], slots[8], initial[8];
  float *qkv, *g, *beta, *state;
} gdn_case;

static gdn_case make_case(int32_t hk, int32_t hv, int32_t d, int32_t n_seqs, const int32_t *lens,
                          const int32_t *initial, uint64_t stream) {
  gdn_case c = {.shape = {hk, hv, d, (2 * hk + hv) * d, 1.0f / sqrtf((float)d)}, .n_seqs = n_seqs};
  for (int32_t s = 0; s < n_seqs; ++s) {
    c.cu[s + 1] = c.cu[s] + lens[s];
    c.slots[s] = n_seqs - 1 - s; /* slots in another order than the sequences */
    c.initial[s] = initial ? initial[s] : 0;
  }
  c.n_tokens = c.cu[n_seqs];
  c.qkv = random_values((size_t)c.n_tokens * c.shape.qkv_stride, 1.0f, stream);
  float *ab = random_values((size_t)c.n_tokens * 2 * hv, 3.0f, stream + 1);
  float *a_log = random_values((size_t)hv, 1.0f, stream + 2), *dt_bias = random_values((size_t)hv, 1.0f, stream + 3);
  c.g = malloc(sizeof(float) * (size_t)c.n_tokens * hv);
  c.beta = malloc(sizeof(float) * (size_t)c.n_tokens * hv);
  up_cpu_gdn_gates(NULL, c.g, c.beta, ab, ab + hv, 2 * hv, a_log, dt_bias, c.n_tokens, hv);
  c.state = random_values((size_t)n_seqs * hv * d * d, 0.5f, stream + 4);
  free(ab);
  free(a_log);
  free(dt_bias);
  return c;
}

static void free_case(gdn_case *c) {
  free(c->qkv);
  free(c->g);
  free(c->beta);
  free(c->state);
}

static up_recurrent_batch batch_of(const gdn_case *c) {
  return (up_recurrent_batch){c->n_seqs, c->n_tokens, c->cu, c->slots, c->initial};
}

typedef void (*gdn_fn)(up_backend *, void *, const void *, const void *, const void *, const float *, const float *,
                       float *, const up_recurrent_batch *, const up_gdn_shape *);

/* Runs fn on c (a copy of its states), returning the output; *state_out the states after. */
static float *run(gdn_fn fn, const gdn_case *c, float **state_out) {
  const int32_t hk = c->shape.n_key_heads, hv = c->shape.n_value_heads, d = c->shape.head_dim;
  const size_t state_n = (size_t)c->n_seqs * hv * d * d;
  float *out = malloc(sizeof(float) * (size_t)c->n_tokens * hv * d + 1);
  float *state = malloc(sizeof(float) * state_n);
  memcpy(state, c->state, sizeof(float) * state_n);
  const up_recurrent_batch b = batch_of(c);
  fn(NULL, out, c->qkv, c->qkv + hk * d, c->qkv + 2 * hk * d, c->g, c->beta, state, &b, &c->shape);
  *state_out = state;
  return out;
}

static void expect_chunked_equals_recurrent(int32_t hk, int32_t hv, int32_t d, int32_t n_seqs, const int32_t *lens,
                                            const int32_t *initial, uint64_t stream) {
  gdn_case c = make_case(hk, hv, d, n_seqs, lens, initial, stream);
  float *state_chunked, *state_recurrent;
  float *chunked = run(up_cpu_gated_deltanet, &c, &state_chunked);
  float *recurrent = run(up_cpu_gated_deltanet_recurrent, &c, &state_recurrent);
  const size_t out_n = (size_t)c.n_tokens * hv * d, state_n = (size_t)n_seqs * hv * d * d;
  const double out_err = normalised_error(chunked, recurrent, out_n);
  const double state_err = normalised_error(state_chunked, state_recurrent, state_n);
  cr_expect_leq(out_err, TIGHT, "%d/%d heads x %d, %d tokens: output error %.3e", hk, hv, d, c.n_tokens, out_err);
  cr_expect_leq(state_err, TIGHT, "%d/%d heads x %d: final state error %.3e", hk, hv, d, state_err);
  /* The outputs are not trivially small: the comparison means something. */
  double norm = 0.0;
  for (size_t i = 0; i < out_n; ++i) norm += (double)recurrent[i] * recurrent[i];
  cr_expect_gt(sqrt(norm / (double)out_n), 1e-3);
  free(chunked);
  free(recurrent);
  free(state_chunked);
  free(state_recurrent);
  free_case(&c);
}

Test(gated_deltanet, chunked_equals_recurrence_packed_without_state) {
  const int32_t lens[5] = {64, 1, 100, 130, 128};
  expect_chunked_equals_recurrent(2, 4, 16, 5, lens, NULL, 1);
}

Test(gated_deltanet, chunked_equals_recurrence_packed_with_initial_states) {
  const int32_t lens[4] = {63, 192, 1, 65}, initial[4] = {1, 0, 1, 1};
  expect_chunked_equals_recurrent(2, 4, 16, 4, lens, initial, 10);
}

Test(gated_deltanet, chunked_equals_recurrence_at_qwen3_next_head_size) {
  const int32_t lens[2] = {150, 64}, initial[2] = {0, 1};
  expect_chunked_equals_recurrent(1, 2, 128, 2, lens, initial, 20);
}

/* A sequence of n rows whose state continues into the same sequence's next rows. */
static void slice_case(gdn_case *dst, const gdn_case *src, int32_t first, int32_t n, int32_t initial) {
  *dst = *src;
  dst->n_seqs = 1;
  dst->n_tokens = n;
  dst->cu[0] = 0;
  dst->cu[1] = n;
  dst->slots[0] = 0;
  dst->initial[0] = initial;
  dst->qkv = src->qkv + (int64_t)first * src->shape.qkv_stride;
  dst->g = src->g + (int64_t)first * src->shape.n_value_heads;
  dst->beta = src->beta + (int64_t)first * src->shape.n_value_heads;
}

/* 170 rows at once; then 100 rows and 70 more from the state (a cached prefix); then
 * 100 rows and 70 one-row decode steps. Same outputs, same final state. */
Test(gated_deltanet, continuing_from_the_state_equals_one_pass) {
  const int32_t lens[1] = {170}, hv = 4, d = 16;
  gdn_case whole = make_case(2, hv, d, 1, lens, NULL, 30);
  float *state_whole;
  float *out_whole = run(up_cpu_gated_deltanet_recurrent, &whole, &state_whole);
  const size_t row = (size_t)hv * d, state_n = (size_t)hv * d * d;
  for (int decode = 0; decode < 2; ++decode) {
    gdn_case part;
    slice_case(&part, &whole, 0, 100, 0);
    float *state;
    float *out = run(up_cpu_gated_deltanet, &part, &state);
    float *joined = malloc(sizeof(float) * 170 * row);
    memcpy(joined, out, sizeof(float) * 100 * row);
    free(out);
    for (int32_t t = 100; t < 170; t += decode ? 1 : 70) {
      slice_case(&part, &whole, t, decode ? 1 : 70, 1);
      memcpy(part.state = malloc(sizeof(float) * state_n), state, sizeof(float) * state_n);
      free(state);
      out = run(up_cpu_gated_deltanet, &part, &state);
      memcpy(joined + (size_t)t * row, out, sizeof(float) * (size_t)part.n_tokens * row);
      free(out);
      free(part.state);
    }
    const double out_err = normalised_error(joined, out_whole, 170 * row);
    const double state_err = normalised_error(state, state_whole, state_n);
    cr_expect_leq(out_err, TIGHT, "%s: output error %.3e", decode ? "decode steps" : "continued prefill", out_err);
    cr_expect_leq(state_err, TIGHT, "%s: state error %.3e", decode ? "decode steps" : "continued prefill", state_err);
    free(joined);
    free(state);
  }
  free(out_whole);
  free(state_whole);
  free_case(&whole);
}

/* One channel, w = e_j: the output at t is silu(x[t - 3 + j]), so w[3] multiplies the
 * current token and w[0] the token three back (PyTorch conv1d with padding 3). */
Test(gated_deltanet, conv_orientation_on_hand_worked_values) {
  const float x[5] = {1, 2, 3, 4, 5};
  int32_t cu[2] = {0, 5}, slot[1] = {0}, initial[1] = {0};
  const up_recurrent_batch b = {1, 5, cu, slot, initial};
  for (int j = 0; j < 4; ++j) {
    float w[4] = {0}, out[5], state[3];
    w[j] = 1.0f;
    up_cpu_causal_conv1d(NULL, out, x, 1, w, state, &b, 1, 4);
    for (int t = 0; t < 5; ++t) {
      const int src = t - 3 + j;
      const float v = src >= 0 ? x[src] : 0.0f, want = v / (1.0f + expf(-v));
      cr_expect_float_eq(out[t], want, 1e-6f, "w[%d]: out[%d] = %g, want %g", j, t, out[t], want);
    }
    for (int i = 0; i < 3; ++i) cr_expect_eq(state[i], x[2 + i], "state[%d] holds the last inputs", i);
  }
}

/* Packed: sequence A whole (11 rows) beside sequence B split as 5 + 2 + 1 + 1 rows
 * continuing from its state, over strided rows; B's pieces equal B whole. */
Test(gated_deltanet, conv_with_state_equals_conv_over_the_concatenation) {
  enum { C = 6, W = 4, STRIDE = 9, NA = 11, NB = 9 };
  float *x = random_values((size_t)(NA + NB) * STRIDE, 2.0f, 40), *w = random_values(C * W, 1.0f, 41);
  float whole[(NA + NB) * C], states[2 * (W - 1) * C];
  int32_t cu[3] = {0, NA, NA + NB}, slots[2] = {1, 0}, initial[2] = {0, 0};
  up_recurrent_batch b = {2, NA + NB, cu, slots, initial};
  up_cpu_causal_conv1d(NULL, whole, x, STRIDE, w, states, &b, C, W);
  float pieces[NB * C], state[(W - 1) * C];
  const int32_t split[4] = {5, 2, 1, 1};
  int32_t done = 0;
  for (int i = 0; i < 4; ++i) {
    int32_t pcu[2] = {0, split[i]}, pslot[1] = {0}, pinit[1] = {i > 0};
    const up_recurrent_batch pb = {1, split[i], pcu, pslot, pinit};
    up_cpu_causal_conv1d(NULL, pieces + done * C, x + (NA + done) * STRIDE, STRIDE, w, state, &pb, C, W);
    done += split[i];
  }
  cr_expect_leq(normalised_error(pieces, whole + NA * C, NB * C), 1e-7);
  cr_expect_leq(normalised_error(state, states, (W - 1) * C), 0.0, "sequence B's slot (0) holds its last inputs");
  for (int i = 0; i < (W - 1) * C; ++i)
    cr_expect_eq(states[(W - 1) * C + i], x[(NA - (W - 1) + i / C) * STRIDE + i % C], "sequence A's slot, %d", i);
  free(x);
  free(w);
}

/* g = -exp(A_log) softplus(a + dt_bias), softplus(x) = x above 20; beta = sigmoid(b). */
Test(gated_deltanet, gates_on_hand_worked_values) {
  const float a[3] = {0.0f, 25.0f, -1.0f}, b[3] = {0.0f, 2.0f, -3.0f};
  const float a_log[3] = {0.0f, logf(2.0f), 0.0f}, dt_bias[3] = {0.0f, 0.0f, 1.0f};
  float g[3], beta[3];
  up_cpu_gdn_gates(NULL, g, beta, a, b, 3, a_log, dt_bias, 1, 3);
  cr_expect_float_eq(g[0], -logf(2.0f), 1e-6f);
  cr_expect_float_eq(g[1], -50.0f, 1e-5f, "above the threshold softplus is the identity: %g", g[1]);
  cr_expect_float_eq(g[2], -logf(2.0f), 1e-6f, "a + dt_bias = 0: %g", g[2]);
  cr_expect_float_eq(beta[0], 0.5f, 1e-7f);
  cr_expect_float_eq(beta[1], 1.0f / (1.0f + expf(-2.0f)), 1e-7f);
  cr_expect_float_eq(beta[2], 1.0f / (1.0f + expf(3.0f)), 1e-7f);
}

/* x = (3, 4): mean square 12.5; plain weight (2, 1), not 1 + w; z scales by silu(z). */
Test(gated_deltanet, gated_rmsnorm_on_hand_worked_values) {
  const float x[4] = {3, 4, 3, 4}, w[2] = {2, 1};
  const float z[6] = {0, 1, -7, 2, 5, -7}; /* stride 3: the third value of each row is skipped */
  float out[4];
  up_cpu_gated_rmsnorm(NULL, out, x, z, 3, w, 2, 1, 2, 0.0f);
  const float inv = 1.0f / sqrtf(12.5f);
  cr_expect_float_eq(out[0], 0.0f, 1e-7f, "silu(0) = 0");
  cr_expect_float_eq(out[1], 4 * inv * 1 * (1.0f / (1.0f + expf(-1.0f))), 1e-6f);
  cr_expect_float_eq(out[2], 3 * inv * 2 * (2.0f / (1.0f + expf(-2.0f))), 1e-6f);
  cr_expect_float_eq(out[3], 4 * inv * 1 * (5.0f / (1.0f + expf(-5.0f))), 1e-6f);
}
