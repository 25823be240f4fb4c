/* cpu_gated_attention.c — the CPU reference of the gated full attention's helpers of
 * kernels/ops.h (HYBRIDS.md C.7): the per-head query/gate split of the q projection,
 * the sigmoid output gate and rope on the first rotary_dim dims of each head. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/cpu/cpu_moe.h"

void up_cpu_split_query_gate(up_backend *be, void *q, int32_t q_stride, void *gate, const void *qg, int32_t n_tokens,
                             int32_t n_heads, int32_t head_dim) {
  const size_t bytes = sizeof(float) * (size_t)head_dim;
  for (int32_t t = 0; t < n_tokens; ++t)
    for (int32_t h = 0; h < n_heads; ++h) {
      const float *src = (const float *)qg + ((int64_t)t * n_heads + h) * 2 * head_dim;
      memcpy((float *)q + (int64_t)t * q_stride + (int64_t)h * head_dim, src, bytes);
      memcpy((float *)gate + ((int64_t)t * n_heads + h) * head_dim, src + head_dim, bytes);
    }
}

void up_cpu_sigmoid_gate(up_backend *be, void *x, const void *gate, int32_t n_rows, int32_t dim) {
  float *xs = x;
  const float *gs = gate;
  for (int64_t i = 0; i < (int64_t)n_rows * dim; ++i) xs[i] *= 1.0f / (1.0f + expf(-gs[i]));
}

void up_cpu_rope_partial(up_backend *be, void *qkv, const int32_t *positions, const float *inv_freq,
                         int32_t n_tokens, const up_attn_shape *shape, int32_t rotary_dim) {
  const int32_t hd = shape->head_dim, half = rotary_dim / 2;
  if (rotary_dim < 2 || rotary_dim % 2 != 0 || rotary_dim > hd)
    UP_FATAL("rope_partial: rotary dim %d of head_dim %d", (int)rotary_dim, (int)hd);
  const int64_t row_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * hd;
  const int32_t rotated_heads = shape->n_heads + shape->n_kv_heads;
  for (int32_t t = 0; t < n_tokens; ++t) {
    float *row = (float *)qkv + t * row_stride;
    for (int32_t i = 0; i < half; ++i) {
      /* Double angle, as rope: an fp32 product of a large position loses the phase. */
      const double angle = (double)positions[t] * (double)inv_freq[i];
      const float c = (float)cos(angle), s = (float)sin(angle);
      for (int32_t h = 0; h < rotated_heads; ++h) {
        float *x1 = row + (int64_t)h * hd + i, *x2 = x1 + half;
        const float a = *x1, b = *x2;
        *x1 = a * c - b * s;
        *x2 = b * c + a * s;
      }
    }
  }
}
