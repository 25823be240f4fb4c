/* cpu_gemma_ops.c — the CPU reference of the ops Gemma 3's layer adds to the interface
 * (kernels/ops.h): GeGLU with the tanh GELU, per-head RMSNorm on the fused qkv rows,
 * and the in-place scale of the embeddings. Plain fp32 loops, the norm's sum of
 * squares in double as cpu_ops.c's rmsnorm has it. */
#include <math.h>

#include "core/fatal.h"
#include "kernels/cpu/cpu_ops.h"

/* tanh-approximated GELU; the constant is sqrt(2/pi). */
static float gelu_tanh(float x) {
  const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanhf(inner));
}

void up_cpu_geglu(up_backend *be, void *out, const void *gate_up, int32_t n_rows, int32_t inter) {
  for (int32_t r = 0; r < n_rows; ++r) {
    const float *gate = (const float *)gate_up + (int64_t)r * 2 * inter, *up = gate + inter;
    float *dst = (float *)out + (int64_t)r * inter;
    for (int32_t i = 0; i < inter; ++i) dst[i] = gelu_tanh(gate[i]) * up[i];
  }
}

void up_cpu_head_rmsnorm(up_backend *be, void *x, const void *weight, int32_t n_rows, int32_t row_stride,
                         int32_t first_col, int32_t n_heads, int32_t head_dim, float eps) {
  if (head_dim < 1 || first_col < 0 || (int64_t)first_col + (int64_t)n_heads * head_dim > row_stride)
    UP_FATAL("head_rmsnorm: %d heads of %d from column %d do not fit rows of %d", n_heads, head_dim, first_col,
             row_stride);
  const float *w = (const float *)weight;
  for (int32_t r = 0; r < n_rows; ++r)
    for (int32_t h = 0; h < n_heads; ++h) {
      float *v = (float *)x + (int64_t)r * row_stride + first_col + (int64_t)h * head_dim;
      double sum_sq = 0.0;
      for (int32_t i = 0; i < head_dim; ++i) sum_sq += (double)v[i] * v[i];
      const float inv_rms = (float)(1.0 / sqrt(sum_sq / head_dim + eps));
      for (int32_t i = 0; i < head_dim; ++i) v[i] = v[i] * inv_rms * w[i];
    }
}

void up_cpu_scale(up_backend *be, void *x, size_t n, float factor) {
  float *v = (float *)x;
  for (size_t i = 0; i < n; ++i) v[i] *= factor;
}
