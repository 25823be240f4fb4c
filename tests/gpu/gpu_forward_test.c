/* gpu_forward_test.c — the whole forward pass on the CUDA backend against the CPU
 * reference: tiny-llama and a 2-layer Llama-3.1-8B-shaped model, a packed batch of
 * mixed prompt lengths, then decode steps of the same requests over the paged cache.
 * Same seed, same weights (drawn by each backend's fill_uniform); the CPU keeps them
 * in fp32, the GPU in bf16, so logits agree to bf16 tolerance. Exits 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/memory/kv_cache.h"
#include "engine/methods/method.h"
#include "engine/model/model.h"
#include "tests/gpu/engine_side.h"
#include "tests/gpu/gpu_check.h"

enum { MAX_SEQS = 4, DECODE_STEPS = 3 };

/* Prefill the prompts together, then DECODE_STEPS decode steps feeding the CPU's
 * greedy tokens to both sides (so both decode the same inputs). */
static void compare_model(const char *label, const up_model_config *cfg, up_backend *cpu_be, up_backend *gpu_be) {
  const int32_t lens[3] = {300, 17, 1000};
  const int32_t n_seqs = 3, max_entries = 1000 + DECODE_STEPS + 1;
  engine_side cpu, gpu;
  engine_side_init(&cpu, cpu_be, cfg, MAX_SEQS, max_entries, (int64_t)MAX_SEQS * max_entries);
  engine_side_init(&gpu, gpu_be, cfg, MAX_SEQS, max_entries, (int64_t)MAX_SEQS * max_entries);
  up_method_spec spec;
  up_method_spec_reference(&spec);
  up_method dense;
  char err[256];
  if (!up_method_init(&dense, &spec, gpu_be, err, sizeof err)) {
    printf("FAIL %s: dense method: %s\n", label, err);
    exit(1);
  }

  int32_t *prompts[3];
  uint32_t x = 12345;
  for (int32_t s = 0; s < n_seqs; ++s) {
    prompts[s] = malloc(sizeof(int32_t) * (size_t)lens[s]);
    for (int32_t i = 0; i < lens[s]; ++i) {
      x = x * 1664525u + 1013904223u;
      prompts[s][i] = (int32_t)(x % (uint32_t)cfg->vocab);
    }
  }
  const size_t n_logits = (size_t)n_seqs * cfg->vocab;
  float *cpu_logits = malloc(sizeof(float) * n_logits), *gpu_logits = malloc(sizeof(float) * n_logits);
  int32_t cpu_next[MAX_SEQS], gpu_next[MAX_SEQS], tokens[MAX_SEQS];
  up_forward_seq seqs[MAX_SEQS];
  engine_side *sides[2] = {&cpu, &gpu};
  for (int k = 0; k < 2; ++k)
    for (int32_t s = 0; s < n_seqs; ++s) {
      sides[k]->slots[s] = up_kv_cache_acquire_slot(sides[k]->cache);
      up_kv_cache_reserve(sides[k]->cache, sides[k]->slots[s], max_entries);
    }

  for (int32_t step = 0; step <= DECODE_STEPS; ++step) {
    for (int k = 0; k < 2; ++k) {
      for (int32_t s = 0; s < n_seqs; ++s) {
        const int prefill = step == 0;
        seqs[s] = (up_forward_seq){.slot = sides[k]->slots[s], .n_tokens = prefill ? lens[s] : 1,
                                   .tokens = prefill ? prompts[s] : &tokens[s],
                                   .first_position = prefill ? 0 : lens[s] + step - 1, .is_prefill = prefill};
      }
      up_forward_out out = {.next_tokens = k == 0 ? cpu_next : gpu_next, .logits = k == 0 ? cpu_logits : gpu_logits};
      up_forward(sides[k]->model, sides[k]->ws, sides[k]->cache, &sides[k]->pool, &dense, seqs, n_seqs, &out);
    }
    int agree = 0;
    for (int32_t s = 0; s < n_seqs; ++s) agree += cpu_next[s] == gpu_next[s];
    CHECK_REL_ERR(logits_rel_err(gpu_logits, cpu_logits, n_logits), 3e-2, "%s %s logits (greedy tokens agree %d/%d)", label,
                  step == 0 ? "prefill 300+17+1000" : "decode step", agree, (int)n_seqs);
    for (int32_t s = 0; s < n_seqs; ++s) tokens[s] = cpu_next[s];
  }
  for (int32_t s = 0; s < n_seqs; ++s) free(prompts[s]);
  free(cpu_logits);
  free(gpu_logits);
  engine_side_free(&cpu);
  engine_side_free(&gpu);
}

int main(void) { return engine_side_main(compare_model); }
