/* qwen3_next_harness.h — the tiny-qwen3-next preset on the CPU backend as the Qwen3-Next
 * tests run it: a seeded model, its layer memory (paged KV for the full-attention
 * layers, a recurrent state slot per sequence), the KV pool and a workspace; sequences
 * admitted through the memory door, forwards with a method, and the normalised logit
 * difference the tests bound. */
#ifndef UP_TESTS_QWEN3_NEXT_HARNESS_H
#define UP_TESTS_QWEN3_NEXT_HARNESS_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "engine/memory/layer_memory.h"
#include "engine/methods/method.h"
#include "engine/model/model.h"
#include "kernels/cpu/cpu_backend.h"

enum { QN_BLOCK = 16, QN_MAX_SEQS = 4, QN_MAX_ENTRIES = 512 };

typedef struct qn_harness {
  up_model_config cfg;
  up_backend *be;
  up_model *model;
  up_layer_memory *mem;
  up_kv_pool pool;
  up_forward_workspace *ws;
} qn_harness;

/* The dense method: no hooks. */
static const up_method_ops qn_dense_ops = {.name = "dense"};
static const up_method qn_dense = {.ops = &qn_dense_ops};

static inline void qn_init(qn_harness *h) {
  h->cfg = *up_model_preset_find("tiny-qwen3-next");
  h->be = up_cpu_backend_create(1);
  h->model = up_model_create_random(&h->cfg, h->be, 4242);
  up_memory_layout layout;
  char err[256];
  cr_assert(up_memory_layout_from_config(&h->cfg, h->be->act_dtype, QN_BLOCK, &layout, err, sizeof err), "%s", err);
  const int32_t maxb = QN_MAX_ENTRIES / QN_BLOCK, n_blocks = maxb * h->cfg.n_layers * QN_MAX_SEQS;
  const up_layer_memory_capacity capacity = {.kv_blocks = n_blocks, .max_seqs = QN_MAX_SEQS,
                                             .max_blocks_per_seq = maxb, .state_slots = QN_MAX_SEQS};
  h->mem = up_layer_memory_create(&layout, &capacity);
  const int32_t kv_dim = h->cfg.n_kv_heads * h->cfg.head_dim;
  const size_t bytes = sizeof(float) * (size_t)n_blocks * QN_BLOCK * (size_t)kv_dim;
  h->pool = (up_kv_pool){.n_blocks = n_blocks, .block_tokens = QN_BLOCK, .kv_dim = kv_dim};
  h->pool.k = h->be->ops->alloc(h->be, bytes, "test K");
  h->pool.v = h->be->ops->alloc(h->be, bytes, "test V");
  h->ws = up_forward_workspace_create(h->model, QN_MAX_SEQS * QN_MAX_ENTRIES, QN_MAX_SEQS, maxb);
}

static inline void qn_free(qn_harness *h) {
  up_forward_workspace_destroy(h->ws);
  h->be->ops->free(h->be, h->pool.k);
  h->be->ops->free(h->be, h->pool.v);
  up_layer_memory_destroy(h->mem);
  up_model_destroy(h->model);
  h->be->ops->destroy(h->be);
}

/* A sequence slot with room for `entries` at every layer and a recurrent state slot. */
static inline int32_t qn_admit(qn_harness *h, int32_t first_step, int32_t entries) {
  const int32_t slot = up_layer_memory_acquire(h->mem);
  cr_assert_geq(slot, 0);
  cr_assert(up_layer_memory_reserve(h->mem, slot, first_step, entries), "reserve %d entries", (int)entries);
  cr_assert_geq(up_layer_memory_state_slot(h->mem, slot), 0);
  return slot;
}

static inline up_forward_seq qn_seq(const qn_harness *h, int32_t slot, const int32_t *tokens, int32_t n,
                                    int32_t first_position) {
  return (up_forward_seq){.slot = slot, .n_tokens = n, .tokens = tokens, .first_position = first_position,
                          .is_prefill = first_position == 0,
                          .state_slot = up_layer_memory_state_slot(h->mem, slot)};
}

/* One forward of the batch; logits [n][vocab]; kept rows per sequence when asked. */
static inline void qn_forward(qn_harness *h, const up_method *method, const up_forward_seq *seqs, int32_t n,
                              float *logits, int32_t *kept) {
  int32_t next[QN_MAX_SEQS];
  up_forward_out out = {.next_tokens = next, .logits = logits, .seq_kept_rows = kept};
  up_forward(h->model, h->ws, up_layer_memory_kv(h->mem), &h->pool, method, seqs, n, &out);
}

/* n tokens of a xorshift stream drawn from seed, below vocab. */
static inline void qn_prompt(int32_t *tokens, int32_t n, uint32_t seed, int32_t vocab) {
  uint32_t x = seed * 2654435761u + 7;
  for (int32_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    tokens[i] = (int32_t)(x % (uint32_t)vocab);
  }
}

/* max |a - b| / max |b| over n values. */
static inline double qn_rel_diff(const float *a, const float *b, int32_t n) {
  double diff = 0.0, scale = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    diff = fmax(diff, fabs((double)a[i] - (double)b[i]));
    scale = fmax(scale, fabs((double)b[i]));
  }
  return scale > 0.0 ? diff / scale : diff;
}

#endif
