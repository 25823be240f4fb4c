/* cuda_grouped_matmul.cu — the grouped_matmul op of kernels/ops.h on the GPU: every group
 * with rows (an MoE layer's experts) in one cublasGemmGroupedBatchedEx call, bf16
 * operands and output, fp32 accumulation, each group its own GEMM of the matmul op's
 * layout (cuda_matmul.cu: row-major out[m][n] = a[m][k] w[n][k]^T as column-major
 * out^T = W^T a^T, "TN"). The state (a cuBLAS handle on the backend's stream, the host
 * arrays of shapes and the device arrays of operand pointers cuBLAS reads) is made on
 * the first call and grows with the group count. The pointers travel from pinned host
 * slots (two, used in turn, each refilled only once the copy out of it has run), so
 * the upload never waits for the GPU: from pageable memory the driver may first drain
 * the stream, which between an MoE block's two projections stalled the host for the
 * whole gate/up GEMM. Owns nothing else: matmul stays cuBLASLt's (cuda_matmul.cu). */
#include <cublas_v2.h>
#include <stdlib.h>

#include "kernels/cuda/cuda_backend_impl.h"

struct up_cuda_grouped_state {
  cublasHandle_t blas;
  int32_t capacity;               /* groups the arrays hold */
  cublasOperation_t *trans_w, *trans_a;
  int *m, *n, *k, *ld_w, *ld_a, *ld_out, *group_size;
  float *alpha, *beta;
  const void **ptrs_host[2];      /* pinned slots, each [3][capacity]: w, a, out of each group */
  cudaEvent_t copied[2];          /* recorded after the upload out of each slot */
  int32_t next_slot;
  const void **ptrs[2];           /* device copies, one per slot */
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
    for (int i = 0; i < 2; ++i) UP_CUDA_CHECK(cudaEventCreateWithFlags(&st->copied[i], cudaEventDisableTiming));
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
  for (int i = 0; i < 2; ++i) { /* both free calls wait for the work that reads them */
    if (st->ptrs_host[i]) UP_CUDA_CHECK(cudaFreeHost((void *)st->ptrs_host[i]));
    UP_CUDA_CHECK(cudaMallocHost((void **)&st->ptrs_host[i], 3 * g * sizeof(void *)));
    if (st->ptrs[i]) UP_CUDA_CHECK(cudaFree(st->ptrs[i]));
    UP_CUDA_CHECK(cudaMalloc((void **)&st->ptrs[i], 3 * g * sizeof(void *)));
  }
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
  const int32_t slot = st->next_slot;
  st->next_slot = 1 - slot;
  UP_CUDA_CHECK(cudaEventSynchronize(st->copied[slot])); /* the upload of two calls ago, long done */
  const void **host = st->ptrs_host[slot], **dev = st->ptrs[slot];
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
    host[used] = (const __nv_bfloat16 *)w + (size_t)g * n * k;
    host[n_groups + used] = (const __nv_bfloat16 *)a + (size_t)first * k;
    host[2 * n_groups + used] = (__nv_bfloat16 *)out + (size_t)first * n;
    ++used;
  }
  /* The device slot is rewritten on the stream after the GEMMs that read it two calls ago. */
  UP_CUDA_CHECK(cudaMemcpyAsync((void *)dev, host, 3 * (size_t)n_groups * sizeof(void *), cudaMemcpyHostToDevice,
                                cb->stream));
  UP_CUDA_CHECK(cudaEventRecord(st->copied[slot], cb->stream));
  UP_CUBLAS_CHECK(cublasGemmGroupedBatchedEx(st->blas, st->trans_w, st->trans_a, st->m, st->n, st->k, st->alpha, dev,
                                             CUDA_R_16BF, st->ld_w, dev + n_groups, CUDA_R_16BF, st->ld_a, st->beta,
                                             (void *const *)(dev + 2 * n_groups), CUDA_R_16BF, st->ld_out, used,
                                             st->group_size, CUBLAS_COMPUTE_32F));
}

extern "C" void up_cuda_grouped_matmul_release(up_cuda_backend *cb) {
  up_cuda_grouped_state *st = cb->grouped_state;
  if (!st) return;
  if (st->blas) UP_CUBLAS_CHECK(cublasDestroy(st->blas));
  for (int i = 0; i < 2; ++i) {
    if (st->ptrs[i]) UP_CUDA_CHECK(cudaFree(st->ptrs[i]));
    if (st->ptrs_host[i]) UP_CUDA_CHECK(cudaFreeHost((void *)st->ptrs_host[i]));
    UP_CUDA_CHECK(cudaEventDestroy(st->copied[i]));
  }
  void *host[] = {st->trans_w, st->trans_a, st->m, st->n, st->k, st->ld_w, st->ld_a, st->ld_out, st->group_size,
                  st->alpha, st->beta};
  for (size_t i = 0; i < sizeof host / sizeof host[0]; ++i) free(host[i]);
  free(st);
  cb->grouped_state = NULL;
}
