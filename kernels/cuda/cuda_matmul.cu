/* cuda_matmul.cu — the backend's GEMM through cuBLASLt: bf16 operands and output, fp32
 * accumulation, one 32 MiB workspace, and the heuristic's algorithm cached per shape
 * and pointer alignment so a step pays the heuristic only for shapes it has not seen.
 *
 * Row-major out[m][n] = a[m][k] * w[n][k]^T maps onto column-major cuBLAS as
 * out^T (n x m, ld n) = W (n x k) * a^T (k x m): the stored w is column-major k x n
 * (ld k), so it enters as matrix A with op T; the stored a is column-major k x m
 * (ld k) and enters as matrix B with op N ("TN", cuBLAS's fastest layout). */
#include <stdio.h>
#include <string.h>

#include "kernels/cuda/cuda_backend_impl.h"

enum { MATMUL_WORKSPACE_BYTES = 32 << 20 };

extern "C" int up_cuda_matmul_init(up_cuda_backend *cb, char *err, size_t err_size) {
  cublasStatus_t st = cublasLtMatmulDescCreate(&cb->matmul_desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  const cublasOperation_t trans_w = CUBLAS_OP_T, trans_a = CUBLAS_OP_N;
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulDescSetAttribute(cb->matmul_desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_w, sizeof trans_w);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulDescSetAttribute(cb->matmul_desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_a, sizeof trans_a);
  if (st != CUBLAS_STATUS_SUCCESS) {
    snprintf(err, err_size, "cuBLASLt matmul descriptor: %s", cublasGetStatusString(st));
    return -1;
  }
  const cudaError_t rc = cudaMalloc(&cb->lt_workspace, MATMUL_WORKSPACE_BYTES);
  if (rc != cudaSuccess) {
    snprintf(err, err_size, "cuBLASLt workspace of %d MiB: %s", MATMUL_WORKSPACE_BYTES >> 20,
             cudaGetErrorString(rc));
    return -1;
  }
  cb->lt_workspace_bytes = MATMUL_WORKSPACE_BYTES;
  return 0;
}

static void plan_clear(up_cuda_matmul_plan *p) {
  if (!p->used) return;
  UP_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->w_layout));
  UP_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->a_layout));
  UP_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(p->out_layout));
  memset(p, 0, sizeof *p);
}

extern "C" void up_cuda_matmul_release(up_cuda_backend *cb) {
  for (int i = 0; i < UP_CUDA_MATMUL_PLANS; ++i) plan_clear(&cb->plans[i]);
  if (cb->matmul_desc) UP_CUBLAS_CHECK(cublasLtMatmulDescDestroy(cb->matmul_desc));
  cb->matmul_desc = NULL;
  if (cb->lt_workspace) UP_CUDA_CHECK(cudaFree(cb->lt_workspace));
  cb->lt_workspace = NULL;
}

/* Largest power of two (at most 256, cuBLASLt's default assumption) dividing the address. */
static uint16_t pointer_alignment(const void *ptr) {
  const uintptr_t addr = (uintptr_t)ptr;
  uint16_t align = 256;
  while (align > 1 && addr % align != 0) align >>= 1;
  return align;
}

static void plan_build(up_cuda_backend *cb, up_cuda_matmul_plan *p, int32_t m, int32_t n, int32_t k,
                       uint16_t align_a, uint16_t align_w, uint16_t align_out) {
  plan_clear(p);
  p->m = m, p->n = n, p->k = k;
  p->align_a = align_a, p->align_w = align_w, p->align_out = align_out;
  UP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->w_layout, CUDA_R_16BF, (uint64_t)k, (uint64_t)n, k));
  UP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a_layout, CUDA_R_16BF, (uint64_t)k, (uint64_t)m, k));
  UP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->out_layout, CUDA_R_16BF, (uint64_t)n, (uint64_t)m, n));
  p->used = 1;

  cublasLtMatmulPreference_t pref;
  UP_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = cb->lt_workspace_bytes;
  const struct { cublasLtMatmulPreferenceAttributes_t attr; uint32_t value; } aligns[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_w},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_out},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_out},
  };
  UP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; ++i)
    UP_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, aligns[i].attr, &aligns[i].value, sizeof(uint32_t)));
  cublasLtMatmulHeuristicResult_t result;
  int returned = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(cb->lt, cb->matmul_desc, p->w_layout, p->a_layout,
                                                            p->out_layout, p->out_layout, pref, 1, &result, &returned);
  UP_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  if (st != CUBLAS_STATUS_NOT_SUPPORTED) UP_CUBLAS_CHECK(st); /* not supported: no algorithm, reported below */
  if (st != CUBLAS_STATUS_SUCCESS || returned < 1)
    UP_FATAL("matmul: cuBLASLt has no bf16 algorithm for m=%d n=%d k=%d (alignments a %u, w %u, out %u bytes)", m,
             n, k, align_a, align_w, align_out);
  p->algo = result.algo;
}

/* The plan for this call: the last hit first (consecutive layers repeat shapes), then a
 * scan; a miss builds into the next round-robin victim. */
static const up_cuda_matmul_plan *plan_find(up_cuda_backend *cb, int32_t m, int32_t n, int32_t k,
                                            const void *a, const void *w, const void *out) {
  const uint16_t align_a = pointer_alignment(a), align_w = pointer_alignment(w), align_out = pointer_alignment(out);
  for (int32_t probe = 0; probe <= UP_CUDA_MATMUL_PLANS; ++probe) {
    const int32_t i = probe == 0 ? cb->last_hit : probe - 1;
    const up_cuda_matmul_plan *p = &cb->plans[i];
    if (p->used && p->m == m && p->n == n && p->k == k && p->align_a == align_a && p->align_w == align_w &&
        p->align_out == align_out) {
      cb->last_hit = i;
      return p;
    }
  }
  const int32_t victim = cb->next_victim;
  cb->next_victim = (victim + 1) % UP_CUDA_MATMUL_PLANS;
  plan_build(cb, &cb->plans[victim], m, n, k, align_a, align_w, align_out);
  cb->last_hit = victim;
  return &cb->plans[victim];
}

extern "C" void up_cuda_matmul(up_backend *be, void *out, const void *a, const void *w, int32_t m, int32_t n,
                               int32_t k) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (m < 0 || n < 0 || k < 0) UP_FATAL("matmul: negative shape m=%d n=%d k=%d", m, n, k);
  if (m == 0 || n == 0) return;
  if (k == 0) { /* the empty sum; cuBLASLt rejects a leading dimension of 0 */
    UP_CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)m * (size_t)n * sizeof(__nv_bfloat16), cb->stream));
    return;
  }
  const up_cuda_matmul_plan *p = plan_find(cb, m, n, k, a, w, out);
  const float alpha = 1.0f, beta = 0.0f;
  UP_CUBLAS_CHECK(cublasLtMatmul(cb->lt, cb->matmul_desc, &alpha, w, p->w_layout, a, p->a_layout, &beta, out,
                                 p->out_layout, out, p->out_layout, &p->algo, cb->lt_workspace,
                                 cb->lt_workspace_bytes, cb->stream));
}
