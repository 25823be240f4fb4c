/* test_moe_ops.c — the CPU MoE routing ops and gated-attention helpers
 * (kernels/cpu/cpu_moe.h) on hand-worked inputs: the router's top-k with ties and its
 * renormalisation, the grouping by expert and the combination back (a round trip
 * through identity experts gives each token back, scaled by its weights, plus the
 * gated shared expert), the per-head query/gate split, the sigmoid gate and rope on
 * part of each head. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "core/rng.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_moe.h"

static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Logits (1, 3, 3, 2): the tied experts 1 and 2 come lower index first. */
Test(moe_ops, router_top_k_with_ties_on_hand_worked_values) {
  const float logits[8] = {1, 3, 3, 2, /* token 1: */ 0, 0, 0, 0};
  float w[6];
  int32_t e[6];
  up_cpu_moe_route(NULL, w, e, logits, 2, 4, 3, 1);
  const float z = expf(3) + expf(3) + expf(2);
  cr_expect_eq(e[0], 1);
  cr_expect_eq(e[1], 2);
  cr_expect_eq(e[2], 3);
  cr_expect_float_eq(w[0], expf(3) / z, 1e-6f);
  cr_expect_float_eq(w[1], expf(3) / z, 1e-6f);
  cr_expect_float_eq(w[2], expf(2) / z, 1e-6f);
  /* All tied: the three lowest experts, a third each after renormalising. */
  for (int j = 0; j < 3; ++j) {
    cr_expect_eq(e[3 + j], j);
    cr_expect_float_eq(w[3 + j], 1.0f / 3.0f, 1e-6f);
  }
  /* Without renormalising the weights are the softmax probabilities themselves. */
  up_cpu_moe_route(NULL, w, e, logits, 1, 4, 2, 0);
  const float all = expf(1) + 2 * expf(3) + expf(2);
  cr_expect_float_eq(w[0], expf(3) / all, 1e-6f);
  cr_expect_float_eq(w[1], expf(3) / all, 1e-6f);
}

/* Large logits (softmax must subtract the maximum) and top 1 of 1. */
Test(moe_ops, router_is_stable_and_allows_one_expert) {
  const float logits[3] = {1000.0f, 999.0f, -1000.0f};
  float w[2];
  int32_t e[2];
  up_cpu_moe_route(NULL, w, e, logits, 1, 3, 2, 0);
  cr_expect_eq(e[0], 0);
  cr_expect_eq(e[1], 1);
  cr_expect_float_eq(w[0], 1.0f / (1.0f + expf(-1.0f)), 1e-6f);
  up_cpu_moe_route(NULL, w, e, logits + 2, 1, 1, 1, 1);
  cr_expect_eq(e[0], 0);
  cr_expect_float_eq(w[0], 1.0f, 0.0f);
}

/* 7 tokens, top 3 of 5 experts (expert 4 never chosen): stable grouping, then back. */
Test(moe_ops, sort_and_combine_round_trip) {
  enum { T = 7, K = 3, E = 5, D = 4 };
  const int32_t experts[T * K] = {0, 1, 2, 2, 0, 3, 1, 2, 0, 3, 2, 1, 0, 3, 1, 2, 1, 0, 3, 0, 2};
  int32_t rows[T * K], slot_of[T * K], offsets[E + 1];
  up_cpu_moe_sort(NULL, rows, slot_of, offsets, experts, T, K, E);
  const int32_t want_offsets[E + 1] = {0, 6, 11, 17, 21, 21};
  for (int e = 0; e <= E; ++e) cr_expect_eq(offsets[e], want_offsets[e], "offset of expert %d", e);
  for (int32_t p = 0; p < T * K; ++p) {
    const int32_t slot = slot_of[p], e = experts[p];
    cr_expect(slot >= offsets[e] && slot < offsets[e + 1], "pair %d sits in expert %d's range", p, e);
    cr_expect_eq(rows[slot], p / K, "slot %d holds token %d", slot, p / K);
  }
  for (int e = 0; e < E; ++e)
    for (int32_t i = offsets[e] + 1; i < offsets[e + 1]; ++i)
      cr_expect_lt(rows[i - 1], rows[i], "expert %d keeps token order", e);
  /* The experts' inputs by gather_rows; an identity expert leaves them as they are. */
  float x[T * D], grouped[T * K * D], w[T * K], shared[T * D], gate[T], out[T * D];
  for (int i = 0; i < T * D; ++i) x[i] = up_rng_symmetric(5, 1, (uint64_t)i), shared[i] = up_rng_symmetric(5, 2, i);
  for (int i = 0; i < T * K; ++i) w[i] = 0.1f + (float)(i % 4) * 0.2f;
  for (int t = 0; t < T; ++t) gate[t] = (float)t - 3.0f;
  up_backend *cpu = up_cpu_backend_create(1);
  cpu->ops->gather_rows(cpu, grouped, x, rows, T * K, D);
  up_cpu_moe_combine(NULL, out, grouped, slot_of, w, NULL, NULL, T, K, D);
  for (int t = 0; t < T; ++t) {
    const float wsum = w[t * K] + w[t * K + 1] + w[t * K + 2];
    for (int i = 0; i < D; ++i) cr_expect_float_eq(out[t * D + i], wsum * x[t * D + i], 1e-6f, "token %d", t);
  }
  up_cpu_moe_combine(NULL, out, grouped, slot_of, w, shared, gate, T, K, D);
  for (int t = 0; t < T; ++t) {
    const float wsum = w[t * K] + w[t * K + 1] + w[t * K + 2];
    for (int i = 0; i < D; ++i)
      cr_expect_float_eq(out[t * D + i], wsum * x[t * D + i] + sigmoid(gate[t]) * shared[t * D + i], 1e-6f,
                         "token %d with the shared expert", t);
  }
  cpu->ops->destroy(cpu);
}

/* Two heads of 3: [q0 | g0 | q1 | g1] per row; q lands in a row of stride 8. */
Test(moe_ops, query_gate_split_and_sigmoid_gate) {
  float qg[2 * 12], q[2 * 8] = {0}, gate[2 * 6];
  for (int i = 0; i < 24; ++i) qg[i] = (float)i;
  up_cpu_split_query_gate(NULL, q, 8, gate, qg, 2, 2, 3);
  for (int t = 0; t < 2; ++t)
    for (int h = 0; h < 2; ++h)
      for (int c = 0; c < 3; ++c) {
        cr_expect_eq(q[t * 8 + h * 3 + c], qg[t * 12 + h * 6 + c]);
        cr_expect_eq(gate[t * 6 + h * 3 + c], qg[t * 12 + h * 6 + 3 + c]);
      }
  float x[3] = {2.0f, -1.0f, 4.0f};
  const float g[3] = {0.0f, 1.0f, -2.0f};
  up_cpu_sigmoid_gate(NULL, x, g, 1, 3);
  cr_expect_float_eq(x[0], 1.0f, 1e-7f);
  cr_expect_float_eq(x[1], -sigmoid(1.0f), 1e-7f);
  cr_expect_float_eq(x[2], 4.0f * sigmoid(-2.0f), 1e-6f);
}

/* head_dim 8, rotary dim 4 (pairs (0, 2), (1, 3)); dims 4..7 and the values pass. With
 * the rotary dim the whole head it is the rope op itself. */
Test(moe_ops, partial_rope_rotates_only_the_first_dims) {
  const up_attn_shape shape = {2, 1, 8, 1.0f};
  enum { ROW = (2 + 2 * 1) * 8 };
  float qkv[2 * ROW], before[2 * ROW];
  for (int i = 0; i < 2 * ROW; ++i) before[i] = qkv[i] = up_rng_symmetric(9, 1, (uint64_t)i);
  const int32_t pos[2] = {3, 100000};
  const float inv_freq[2] = {1.0f, 0.01f};
  up_cpu_rope_partial(NULL, qkv, pos, inv_freq, 2, &shape, 4);
  for (int t = 0; t < 2; ++t)
    for (int h = 0; h < 4; ++h) {
      const float *b = before + t * ROW + h * 8, *a = qkv + t * ROW + h * 8;
      for (int i = 0; i < 2; ++i) {
        const double angle = (double)pos[t] * inv_freq[i];
        const float c = (float)cos(angle), s = (float)sin(angle);
        const float x1 = h < 3 ? b[i] * c - b[i + 2] * s : b[i], x2 = h < 3 ? b[i + 2] * c + b[i] * s : b[i + 2];
        cr_expect_float_eq(a[i], x1, 1e-6f, "token %d head %d dim %d", t, h, i);
        cr_expect_float_eq(a[i + 2], x2, 1e-6f, "token %d head %d dim %d", t, h, i + 2);
      }
      for (int i = 4; i < 8; ++i) cr_expect_eq(a[i], b[i], "token %d head %d dim %d passes", t, h, i);
    }
  up_backend *cpu = up_cpu_backend_create(1);
  const float freq4[4] = {1.0f, 0.3f, 0.01f, 0.001f};
  float full[2 * ROW];
  for (int i = 0; i < 2 * ROW; ++i) full[i] = qkv[i] = before[i];
  up_cpu_rope_partial(NULL, qkv, pos, freq4, 2, &shape, 8);
  cpu->ops->rope(cpu, full, pos, freq4, 2, &shape);
  for (int i = 0; i < 2 * ROW; ++i) cr_expect_eq(qkv[i], full[i], "value %d", i);
  cpu->ops->destroy(cpu);
}
