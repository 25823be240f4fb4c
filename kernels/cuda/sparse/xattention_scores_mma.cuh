/* xattention_scores_mma.cuh — XAttention's block scores W on tensor cores
 * (xattention_scores_mma.cu), called by xattention_estimate.cu in place of its first
 * scoring kernel (the default since an H100 run timed it at 11.6x the first kernel;
 * UP_XA_SCORES=v1 keeps the first). Owns
 * only the scoring step: the walk, the ranges and the method's rules are
 * xattention_estimate.cu's. Included by .cu files only. */
#ifndef UP_XATTENTION_SCORES_MMA_CUH
#define UP_XATTENTION_SCORES_MMA_CUH

#include <stdint.h>

#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/sparse/sparse_estimate_common.cuh"

/* What the scoring step reads and where it writes W: w[list row][kb] for kb <= the
 * row's query block (the first scoring kernel's layout, max_nq entries a row). */
typedef struct up_xa_scores_args {
  const void *qkv;
  const up_kv_pool *pool;
  const up_attn_batch *batch;
  const up_attn_shape *shape;
  const up_sparse_pattern *pattern;
  int32_t stride;
  int32_t max_nq;
  float *w;
  up_cuda_index_error *error;
} up_xa_scores_args;

/* UP_XA_SCORES: unset or "mma" for the tensor-core scores, "v1" for the first kernel
 * (fp32 CUDA-core dots, two passes); any other value is refused by name. */
bool up_xa_scores_v1_selected(void);

/* Launches the tensor-core scoring on the scratch's stream (its partial maxima and sums
 * come from the scratch). Returns false, launching nothing, when the stride or the
 * shape is not one it takes (strides 4, 8 and 16; the chunk's rows in shared memory):
 * the caller then runs the first kernel. */
bool up_xa_scores_mma(up_sparse_scratch *scratch, const up_xa_scores_args *args);

#endif
