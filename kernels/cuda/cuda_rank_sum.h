/* cuda_rank_sum.h — the device half of a deterministic tensor-parallel all-reduce
 * (C-callable): every rank's slice, gathered side by side, summed in rank order in fp32
 * (bf16 rounded once, to nearest even), so every rank computes the same bits whatever
 * the transport's own reduction order would have been. The host reference,
 * kernels/cpu/cpu_rank_sum.h, adds in the same order and rounds the same way. */
#ifndef UP_CUDA_RANK_SUM_H
#define UP_CUDA_RANK_SUM_H

#include <cuda_runtime_api.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[i] = slices[0*count + i] + slices[1*count + i] + ... (ranks slices), on stream.
 * bf16: the elements are bf16 (else fp32). out must not overlap slices. Returns the
 * launch's status, so the caller's error names its rank and collective. */
cudaError_t up_cuda_sum_rank_slices(cudaStream_t stream, const void *slices, void *out, size_t count, int ranks,
                                    bool bf16);

#ifdef __cplusplus
}
#endif

#endif
