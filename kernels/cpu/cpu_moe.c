/* cpu_moe.c — the CPU reference of the MoE routing ops of kernels/ops.h (HYBRIDS.md
 * C.8): the fp32 softmax router's top-k, the grouping of (token, choice) pairs by
 * expert, and the weighted combination back per token with the sigmoid-gated shared
 * expert; the experts' grouped matmul, the matmul op once per group with rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/cpu/cpu_moe.h"
#include "kernels/cpu/cpu_ops.h"

void up_cpu_moe_route(up_backend *be, float *weights, int32_t *experts, const void *logits, int32_t n_tokens,
                      int32_t n_experts, int32_t top_k, int32_t renormalize) {
  if (top_k < 1 || top_k > n_experts) UP_FATAL("moe_route: top %d of %d experts", (int)top_k, (int)n_experts);
  float *p = up_malloc_or_die(sizeof(float) * (size_t)n_experts, "router probabilities");
  for (int32_t t = 0; t < n_tokens; ++t) {
    const float *row = (const float *)logits + (int64_t)t * n_experts;
    float max = row[0], sum = 0.0f;
    for (int32_t e = 1; e < n_experts; ++e) max = row[e] > max ? row[e] : max;
    for (int32_t e = 0; e < n_experts; ++e) sum += p[e] = expf(row[e] - max);
    for (int32_t e = 0; e < n_experts; ++e) p[e] /= sum;
    /* Repeated selection of the largest left: the lower index wins a tie; a taken
     * expert is marked -1, below every probability. */
    float *w = weights + (int64_t)t * top_k, chosen = 0.0f;
    int32_t *ex = experts + (int64_t)t * top_k;
    for (int32_t j = 0; j < top_k; ++j) {
      int32_t best = -1;
      for (int32_t e = 0; e < n_experts; ++e)
        if (p[e] >= 0.0f && (best < 0 || p[e] > p[best])) best = e;
      ex[j] = best;
      w[j] = p[best];
      chosen += p[best];
      p[best] = -1.0f;
    }
    if (renormalize)
      for (int32_t j = 0; j < top_k; ++j) w[j] /= chosen;
  }
  free(p);
}

void up_cpu_moe_sort(up_backend *be, int32_t *source_rows, int32_t *slot_of, int32_t *expert_offsets_host,
                     const int32_t *experts, int32_t n_tokens, int32_t top_k, int32_t n_experts) {
  const int64_t pairs = (int64_t)n_tokens * top_k;
  memset(expert_offsets_host, 0, sizeof(int32_t) * ((size_t)n_experts + 1));
  for (int64_t i = 0; i < pairs; ++i) {
    if (experts[i] < 0 || experts[i] >= n_experts)
      UP_FATAL("moe_sort: pair %lld names expert %d of %d", (long long)i, (int)experts[i], (int)n_experts);
    ++expert_offsets_host[experts[i] + 1];
  }
  for (int32_t e = 0; e < n_experts; ++e) expert_offsets_host[e + 1] += expert_offsets_host[e];
  int32_t *next = up_malloc_or_die(sizeof(int32_t) * (size_t)(n_experts ? n_experts : 1), "moe_sort cursors");
  memcpy(next, expert_offsets_host, sizeof(int32_t) * (size_t)n_experts);
  for (int64_t i = 0; i < pairs; ++i) {
    const int32_t slot = next[experts[i]]++;
    source_rows[slot] = (int32_t)(i / top_k);
    slot_of[i] = slot;
  }
  free(next);
}

void up_cpu_moe_combine(up_backend *be, void *out, const void *expert_out, const int32_t *slot_of,
                        const float *weights, const void *shared_out, const void *shared_gate, int32_t n_tokens,
                        int32_t top_k, int32_t dim) {
  const float *eo = expert_out, *so = shared_out, *sg = shared_gate;
  for (int32_t t = 0; t < n_tokens; ++t) {
    float *o = (float *)out + (int64_t)t * dim;
    const float gate = so ? 1.0f / (1.0f + expf(-sg[t])) : 0.0f;
    for (int32_t i = 0; i < dim; ++i) o[i] = so ? gate * so[(int64_t)t * dim + i] : 0.0f;
    for (int32_t j = 0; j < top_k; ++j) {
      const int64_t pair = (int64_t)t * top_k + j;
      const float w = weights[pair], *row = eo + (int64_t)slot_of[pair] * dim;
      for (int32_t i = 0; i < dim; ++i) o[i] += w * row[i];
    }
  }
}

void up_cpu_grouped_matmul(up_backend *be, void *out, const void *a, const void *w, const int32_t *offsets_host,
                           int32_t n_groups, int32_t n, int32_t k) {
  if (n_groups < 0 || n < 0 || k < 0) UP_FATAL("grouped_matmul: %d groups of n=%d k=%d", (int)n_groups, (int)n, (int)k);
  for (int32_t g = 0; g < n_groups; ++g) {
    const int32_t first = offsets_host[g], rows = offsets_host[g + 1] - first;
    if (rows < 0) UP_FATAL("grouped_matmul: group %d has offsets %d .. %d", (int)g, (int)first, (int)offsets_host[g + 1]);
    if (rows > 0)
      up_cpu_matmul(be, (float *)out + (int64_t)first * n, (const float *)a + (int64_t)first * k,
                    (const float *)w + (int64_t)g * n * k, rows, n, k);
  }
}
