/* cpu_ops.c — the CPU backend's per-token ops (embedding, norms, GEMM, RoPE, SwiGLU,
 * row gathers, argmax): plain fp32 loops, the matmul through OpenBLAS. Attention and
 * the KV cache live in cpu_attention.c. */
#include "kernels/cpu/cpu_ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

void up_cpu_embed(up_backend *be, void *out, const void *table, const int32_t *tokens, int32_t n_tokens,
                  int32_t dim) {
  float *dst = (float *)out;
  const float *src = (const float *)table;
  for (int32_t t = 0; t < n_tokens; ++t) {
    if (tokens[t] < 0) UP_FATAL("embed: token %d of row %d is negative", tokens[t], t);
    memcpy(dst + (int64_t)t * dim, src + (int64_t)tokens[t] * dim, sizeof(float) * (size_t)dim);
  }
}

/* Sum of squares in double: rows are up to tens of thousands wide and fp32 would
 * drift from the formula the CUDA backend is compared against. */
static void rmsnorm_row(float *out, const float *x, const float *weight, int32_t dim, float eps) {
  double sum_sq = 0.0;
  for (int32_t i = 0; i < dim; ++i) sum_sq += (double)x[i] * x[i];
  const float inv_rms = (float)(1.0 / sqrt(sum_sq / dim + eps));
  for (int32_t i = 0; i < dim; ++i) out[i] = x[i] * inv_rms * weight[i];
}

void up_cpu_rmsnorm(up_backend *be, void *out, const void *x, const void *weight, int32_t n_rows, int32_t dim,
                    float eps) {
  for (int32_t r = 0; r < n_rows; ++r)
    rmsnorm_row((float *)out + (int64_t)r * dim, (const float *)x + (int64_t)r * dim, (const float *)weight, dim,
                eps);
}

void up_cpu_add_rmsnorm(up_backend *be, void *out, void *residual, const void *x, const void *weight,
                        int32_t n_rows, int32_t dim, float eps) {
  for (int32_t r = 0; r < n_rows; ++r) {
    float *res = (float *)residual + (int64_t)r * dim;
    const float *add = (const float *)x + (int64_t)r * dim;
    for (int32_t i = 0; i < dim; ++i) res[i] += add[i];
    rmsnorm_row((float *)out + (int64_t)r * dim, res, (const float *)weight, dim, eps);
  }
}

void up_cpu_matmul(up_backend *be, void *out, const void *a, const void *w, int32_t m, int32_t n, int32_t k) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) { /* BLAS rejects a leading dimension of 0; the empty sum is 0 */
    memset(out, 0, sizeof(float) * (size_t)m * (size_t)n);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, (const float *)a, k, (const float *)w, k,
              0.0f, (float *)out, n);
}

void up_cpu_rope(up_backend *be, void *qkv, const int32_t *positions, const float *inv_freq, int32_t n_tokens,
                 const up_attn_shape *shape) {
  const int32_t hd = shape->head_dim, half = hd / 2;
  if (hd % 2 != 0) UP_FATAL("rope: head_dim %d is odd", hd);
  const int32_t row_stride = (shape->n_heads + 2 * shape->n_kv_heads) * hd;
  const int32_t rotated_heads = shape->n_heads + shape->n_kv_heads; /* values are not rotated */
  float *cos_t = up_malloc_or_die(sizeof(float) * (size_t)half, "rope cos table");
  float *sin_t = up_malloc_or_die(sizeof(float) * (size_t)half, "rope sin table");
  for (int32_t t = 0; t < n_tokens; ++t) {
    for (int32_t i = 0; i < half; ++i) {
      /* Double angle: positions reach 131072, where an fp32 product has lost the phase. */
      const double angle = (double)positions[t] * (double)inv_freq[i];
      cos_t[i] = (float)cos(angle);
      sin_t[i] = (float)sin(angle);
    }
    float *row = (float *)qkv + (int64_t)t * row_stride;
    for (int32_t h = 0; h < rotated_heads; ++h) {
      float *x1 = row + (int64_t)h * hd, *x2 = x1 + half;
      for (int32_t i = 0; i < half; ++i) {
        const float a = x1[i], b = x2[i];
        x1[i] = a * cos_t[i] - b * sin_t[i];
        x2[i] = b * cos_t[i] + a * sin_t[i];
      }
    }
  }
  free(cos_t);
  free(sin_t);
}

void up_cpu_swiglu(up_backend *be, void *out, const void *gate_up, int32_t n_rows, int32_t inter) {
  for (int32_t r = 0; r < n_rows; ++r) {
    const float *gate = (const float *)gate_up + (int64_t)r * 2 * inter, *up = gate + inter;
    float *dst = (float *)out + (int64_t)r * inter;
    for (int32_t i = 0; i < inter; ++i) dst[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
  }
}

void up_cpu_gather_rows(up_backend *be, void *dst, const void *src, const int32_t *rows, int32_t n_rows,
                        int32_t dim) {
  for (int32_t r = 0; r < n_rows; ++r) {
    if (rows[r] < 0) UP_FATAL("gather_rows: source row %d of output row %d is negative", rows[r], r);
    memcpy((float *)dst + (int64_t)r * dim, (const float *)src + (int64_t)rows[r] * dim,
           sizeof(float) * (size_t)dim);
  }
}

void up_cpu_gather_i32(up_backend *be, int32_t *dst, const int32_t *src, const int32_t *rows, int32_t n_rows) {
  for (int32_t r = 0; r < n_rows; ++r) {
    if (rows[r] < 0) UP_FATAL("gather_i32: source index %d of output %d is negative", rows[r], r);
    dst[r] = src[rows[r]];
  }
}

void up_cpu_argmax_rows(up_backend *be, int32_t *dst_host, const void *x, int32_t n_rows, int32_t n_cols) {
  if (n_cols <= 0) UP_FATAL("argmax_rows: %d columns", n_cols);
  for (int32_t r = 0; r < n_rows; ++r) {
    const float *row = (const float *)x + (int64_t)r * n_cols;
    int32_t best = 0;
    bool below_inf = row[0] < INFINITY; /* false for NaN and +inf */
    for (int32_t c = 1; c < n_cols; ++c) {
      below_inf = below_inf && row[c] < INFINITY;
      if (row[c] > row[best]) best = c; /* strict: the first of equal maxima wins */
    }
    dst_host[r] = below_inf ? best : -1;
  }
}
