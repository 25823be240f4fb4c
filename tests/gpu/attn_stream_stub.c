/* attn_stream_stub.c — the backend-stream accessor for the GPU attention programs while
 * the CUDA backend (kernels/cuda/cuda_backend*.c) is not in this branch: their stand-in
 * backend keeps its stream in impl. Weak, so that the backend's own definition wins
 * once both are linked (the programs must then create the real backend). */
#include "kernels/cuda/cuda_attention.h"

__attribute__((weak)) cudaStream_t up_cuda_backend_stream(up_backend *be) { return (cudaStream_t)be->impl; }
