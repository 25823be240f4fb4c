/* cuda_grouped_matmul.cu — the grouped_matmul op of kernels/ops.h on the GPU: every group
 * with rows (an MoE layer's experts) in one cublasGemmGroupedBatchedEx call, bf16
 * operands and output, fp32 accumulation, each group its own GEMM of the matmul op's
 * layout (cuda_matmul.cu: row-major out[m][n] = a[m][k] w[n][k]^T as column-major
 * out^T = W^T a^T, "TN"). The state (a cuBLAS handle on the backend's stream, the host
 * arrays of shapes and the device arrays of operand pointers cuBLAS reads) is made on
 * the first call and grows with the group count. Owns nothing else: matmul stays
 * cuBLASLt's (cuda_matmul.cu). */
#include <cublas_v2.h>
#include <stdlib.h>

#include "kernels/cuda/cuda_backend_impl.h"

struct up_cuda_grouped_state {
  cublasHandle_t blas;
  int32_t capacity;               /* groups the arrays hold */
  cublasOperation_t *trans_w, *trans_a;
  int *m, *n, *k, *ld_w, *ld_a, *ld_out, *group_size;
  float *alpha, *beta;
  const void **ptrs_host;         /* [3][capacity]: w, a, out of each group */
  const void **ptrs;              /* device copy of ptrs_host */
};

static void *grow(void *p, size_t bytes, const char *what) {
  void *q = realloc(p, bytes);
  if (!q) UP_FATAL("grouped_matmul: out of host memory for %s (%zu bytes)", what, bytes);
  return q;
}

static up_cuda_grouped_state *grouped_state(up_cuda_backend *cb, int32_t groups) {
  up_cuda_grouped_state *st = cb->grouped_state;
  if (!st) {
    st = (up_cuda_grouped_state *)calloc(1, sizeof *st);
    if (!st) UP_FATAL("grouped_matmul: out of host memory for its state");
    UP_CUBLAS_CHECK(cublasCreate(&st->blas));
    UP_CUBLAS_CHECK(cublasSetStream(st->blas, cb->stream));
    cb->grouped_state = st;
  }
  if (groups <= st->capacity) return st;
  const size_t g = (size_t)groups;
  st->trans_w = (cublasOperation_t *)grow(st->trans_w, g * sizeof *st->trans_w, "transposes");
  st->trans_a = (cublasOperation_t *)grow(st->trans_a, g * sizeof *st->trans_a, "transposes");
  int **ints[] = {&st->m, &st->n, &st->k, &st->ld_w, &st->ld_a, &st->ld_out, &st->group_size};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; ++i) *ints[i] = (int *)grow(*ints[i], g * sizeof(int), "shapes");
  st->alpha = (float *)grow(st->alpha, g * sizeof(float), "scales");
  st->beta = (float *)grow(st->beta, g * sizeof(float), "scales");
  st->ptrs_host = (const void **)grow(st->ptrs_host, 3 * g * sizeof(void *), "operand pointers");
  if (st->ptrs) UP_CUDA_CHECK(cudaFree(st->ptrs)); /* waits for the calls that read it */
  UP_CUDA_CHECK(cudaMalloc((void **)&st->ptrs, 3 * g * sizeof(void *)));
  st->capacity = groups;
  return st;
}

extern "C" void up_cuda_grouped_matmul(up_backend *be, void *out, const void *a, const void *w,
                                       const int32_t *offsets_host, int32_t n_groups, int32_t n, int32_t k) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (n_groups < 0 || n < 0 || k < 0) UP_FATAL("grouped_matmul: %d groups of n=%d k=%d", n_groups, n, k);
  const int32_t rows_all = n_groups > 0 ? offsets_host[n_groups] - offsets_host[0] : 0;
  if (rows_all == 0 || n == 0) return;
  if (k == 0) { /* the empty sum, as matmul */
    UP_CUDA_CHECK(cudaMemsetAsync((__nv_bfloat16 *)out + (size_t)offsets_host[0] * n, 0,
                                  (size_t)rows_all * (size_t)n * sizeof(__nv_bfloat16), cb->stream));
    return;
  }
  up_cuda_grouped_state *st = grouped_state(cb, n_groups);
  int32_t used = 0;
  for (int32_t g = 0; g < n_groups; ++g) {
    const int32_t first = offsets_host[g], rows = offsets_host[g + 1] - first;
    if (rows < 0) UP_FATAL("grouped_matmul: group %d has offsets %d .. %d", g, first, offsets_host[g + 1]);
    if (rows == 0) continue;
    st->trans_w[used] = CUBLAS_OP_T;
    st->trans_a[used] = CUBLAS_OP_N;
    st->m[used] = n;
    st->n[used] = rows;
    st->k[used] = k;
    st->ld_w[used] = k;
    st->ld_a[used] = k;
    st->ld_out[used] = n;
    st->group_size[used] = 1;
    st->alpha[used] = 1.0f;
    st->beta[used] = 0.0f;
    st->ptrs_host[used] = (const __nv_bfloat16 *)w + (size_t)g * n * k;
    st->ptrs_host[n_groups + used] = (const __nv_bfloat16 *)a + (size_t)first * k;
    st->ptrs_host[2 * n_groups + used] = (__nv_bfloat16 *)out + (size_t)first * n;
    ++used;
  }
  /* Pageable source: copied out before the call returns, so the next call may refill it;
   * the device copy is ordered on the stream after the GEMMs that read the last one. */
  UP_CUDA_CHECK(cudaMemcpyAsync((void *)st->ptrs, st->ptrs_host, 3 * (size_t)n_groups * sizeof(void *),
                                cudaMemcpyHostToDevice, cb->stream));
  UP_CUBLAS_CHECK(cublasGemmGroupedBatchedEx(
      st->blas, st->trans_w, st->trans_a, st->m, st->n, st->k, st->alpha, st->ptrs, CUDA_R_16BF, st->ld_w,
      st->ptrs + n_groups, CUDA_R_16BF, st->ld_a, st->beta, (void *const *)(st->ptrs + 2 * n_groups), CUDA_R_16BF,
      st->ld_out, used, st->group_size, CUBLAS_COMPUTE_32F));
}

extern "C" void up_cuda_grouped_matmul_release(up_cuda_backend *cb) {
  up_cuda_grouped_state *st = cb->grouped_state;
  if (!st) return;
  if (st->blas) UP_CUBLAS_CHECK(cublasDestroy(st->blas));
  if (st->ptrs) UP_CUDA_CHECK(cudaFree(st->ptrs));
  void *host[] = {st->trans_w, st->trans_a, st->m, st->n, st->k, st->ld_w, st->ld_a, st->ld_out, st->group_size,
                  st->alpha, st->beta, (void *)st->ptrs_host};
  for (size_t i = 0; i < sizeof host / sizeof host[0]; ++i) free(host[i]);
  free(st);
  cb->grouped_state = NULL;
}
