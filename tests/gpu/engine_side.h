/* engine_side.h — what the GPU forward tests hold per backend to run the same steps on
 * the CPU reference and on the CUDA backend: a seeded random model, a paged KV cache
 * with its pool, and a forward workspace; the normalized error their logits are
 * compared by; and their main, over the two models they cover. Header-only: each test
 * program is one translation unit. */
#ifndef UP_ENGINE_SIDE_H
#define UP_ENGINE_SIDE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/memory/kv_cache.h"
#include "engine/model/model.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/gpu/gpu_check.h"

enum { ENGINE_SIDE_MAX_SEQS = 8, ENGINE_SIDE_BLOCK_TOKENS = 16, ENGINE_SIDE_SEED = 2026 };

typedef struct engine_side {
  up_backend *be;
  up_model *model;
  up_kv_cache *cache;
  up_kv_pool pool;
  up_forward_workspace *ws;
  int32_t slots[ENGINE_SIDE_MAX_SEQS];
} engine_side;

/* Room for max_seqs sequences of max_entries entries at every layer, and steps of up to
 * workspace_tokens rows. The same seed gives both backends the same weights (each
 * draws them with its own fill_uniform). */
static inline void engine_side_init(engine_side *e, up_backend *be, const up_model_config *cfg, int32_t max_seqs,
                                    int32_t max_entries, int64_t workspace_tokens) {
  e->be = be;
  e->model = up_model_create_random(cfg, be, ENGINE_SIDE_SEED);
  const int32_t maxb = (max_entries + ENGINE_SIDE_BLOCK_TOKENS - 1) / ENGINE_SIDE_BLOCK_TOKENS;
  const int32_t n_blocks = maxb * cfg->n_layers * max_seqs;
  e->cache = up_kv_cache_create(n_blocks, ENGINE_SIDE_BLOCK_TOKENS, cfg->n_layers, max_seqs, maxb);
  const int32_t kv_dim = cfg->n_kv_heads * cfg->head_dim;
  const size_t bytes = (size_t)n_blocks * ENGINE_SIDE_BLOCK_TOKENS * kv_dim * up_dtype_size(be->act_dtype);
  e->pool = (up_kv_pool){.k = be->ops->alloc(be, bytes, "K pool"), .v = be->ops->alloc(be, bytes, "V pool"),
                         .n_blocks = n_blocks, .block_tokens = ENGINE_SIDE_BLOCK_TOKENS, .kv_dim = kv_dim};
  e->ws = up_forward_workspace_create(e->model, workspace_tokens, max_seqs, maxb);
}

static inline void engine_side_free(engine_side *e) {
  up_forward_workspace_destroy(e->ws);
  e->be->ops->free(e->be, e->pool.k);
  e->be->ops->free(e->be, e->pool.v);
  up_kv_cache_destroy(e->cache);
  up_model_destroy(e->model);
}

/* ||a - ref|| / ||ref|| over n values; infinite when a holds a non-finite value. */
static inline double logits_rel_err(const float *a, const float *ref, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (!isfinite(a[i])) return INFINITY;
    num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
    den += (double)ref[i] * ref[i];
  }
  return sqrt(num / (den > 0.0 ? den : 1.0));
}

/* A GPU forward test's main: `test` on tiny-llama, then on Llama-3.1-8B cut to 2 layers
 * (its preset drop layers all lie deeper, so it has none); exits 77 without a GPU. */
typedef void (*engine_side_test)(const char *label, const up_model_config *cfg, up_backend *cpu, up_backend *gpu);
static inline int engine_side_main(engine_side_test test) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  up_backend *gpu = gpu_check_cuda_backend();
  up_backend *cpu = up_cpu_backend_create(0);
  test("tiny-llama", up_model_preset_find("tiny-llama"), cpu, gpu);
  up_model_config two = *up_model_preset_find("llama-3.1-8b");
  up_model_config_truncate(&two, 2);
  test("llama-3.1-8b-2layers", &two, cpu, gpu);
  cpu->ops->destroy(cpu);
  gpu->ops->destroy(gpu);
  return gpu_check_finish();
}

#endif
