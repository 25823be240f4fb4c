/* cuda_check.h — checks for CUDA runtime and cuBLAS(Lt) calls and kernel launches in
 * kernels/cuda. A failure is fatal: it reports file, line, the call as written and the
 * library's own message through up_fatal_at, which under the launcher ends the whole
 * job via MPI_Abort (a GPU error leaves nothing a rank could recover). */
#ifndef UP_CUDA_CHECK_H
#define UP_CUDA_CHECK_H

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "core/fatal.h"

#define UP_CUDA_CHECK(call)                                                                              \
  do {                                                                                                   \
    const cudaError_t up_cuda_rc_ = (call);                                                              \
    if (up_cuda_rc_ != cudaSuccess)                                                                      \
      up_fatal_at(__FILE__, __LINE__, "%s failed: %s (%s)", #call, cudaGetErrorString(up_cuda_rc_),     \
                  cudaGetErrorName(up_cuda_rc_));                                                        \
  } while (0)

#define UP_CUBLAS_CHECK(call)                                                                            \
  do {                                                                                                   \
    const cublasStatus_t up_cublas_rc_ = (call);                                                         \
    if (up_cublas_rc_ != CUBLAS_STATUS_SUCCESS)                                                          \
      up_fatal_at(__FILE__, __LINE__, "%s failed: %s (status %d)", #call,                                \
                  cublasGetStatusString(up_cublas_rc_), (int)up_cublas_rc_);                             \
  } while (0)

/* After every kernel launch: catches bad launch configurations at once; faults inside
 * the kernel surface at the next synchronising call, which is checked too. */
#define UP_CUDA_CHECK_LAUNCH() UP_CUDA_CHECK(cudaGetLastError())

#endif
