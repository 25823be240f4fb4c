/* cuda_backend.h — the CUDA op backend (C-callable): bf16 activations and weights in
 * GPU memory, fp32 arithmetic, one stream per backend on which every op is queued. */
#ifndef UP_CUDA_BACKEND_H
#define UP_CUDA_BACKEND_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "kernels/ops.h"

/* A backend on GPU `device` (made current for the calling thread), or NULL with the
 * reason in err when the device cannot be used. */
up_backend *up_cuda_backend_create(int device, char *err, size_t err_size);

/* The head_dim-128 prefill attention kernel `be` runs from now on, by the `variant`
 * numbers of up_cuda_attention_prefill (cuda_attention.h; 0: the default choice). */
void up_cuda_backend_set_attention_variant(up_backend *be, int variant);

/* The stream every op of `be` runs on, for tools that time ops with CUDA events and for
 * the tensor-parallel transport, whose collectives queue behind the ops on it. */
cudaStream_t up_cuda_backend_stream(up_backend *be);

/* The GPU `be` runs on (its cudaSetDevice index). */
int up_cuda_backend_device(up_backend *be);

/* Copy bytes between two buffers of device memory on be's stream (ordered with its
 * ops); be passed as void * so it serves as a tensor-parallel copy function. */
void up_cuda_backend_copy_device(void *be, void *dst, const void *src, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
