/* cuda_phase_timing.cu — the per-step time breakdown on the GPU: each phase mark records
 * an event on the backend's stream, and collecting waits for a closing event and adds
 * the time between consecutive marks to the phase of the earlier one. Device time, so
 * the numbers hold however far the host runs ahead. */
#include <string.h>

#include "kernels/cuda/cuda_backend_impl.h"

int up_cuda_phase_init(up_cuda_backend *cb, char *err, size_t err_size) {
  for (int i = 0; i < UP_CUDA_PHASE_EVENTS; ++i) {
    const cudaError_t rc = cudaEventCreate(&cb->phase_events[i]);
    if (rc != cudaSuccess) {
      snprintf(err, err_size, "CUDA device %d: cudaEventCreate for step timing failed: %s", cb->device,
               cudaGetErrorString(rc));
      return -1;
    }
  }
  return 0;
}

void up_cuda_phase_release(up_cuda_backend *cb) {
  for (int i = 0; i < UP_CUDA_PHASE_EVENTS; ++i)
    if (cb->phase_events[i]) UP_CUDA_CHECK(cudaEventDestroy(cb->phase_events[i]));
}

extern "C" void up_cuda_phase_mark(up_backend *be, up_phase phase) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (cb->n_phase_marks >= UP_CUDA_PHASE_EVENTS - 1) return; /* the last phase runs on */
  cb->phase_of[cb->n_phase_marks] = (uint8_t)phase;
  UP_CUDA_CHECK(cudaEventRecord(cb->phase_events[cb->n_phase_marks], cb->stream));
  cb->n_phase_marks++;
}

extern "C" void up_cuda_phase_collect(up_backend *be, double *ms) {
  up_cuda_backend *cb = up_cuda_impl(be);
  const int32_t n = cb->n_phase_marks;
  if (n == 0) return;
  cudaEvent_t closing = cb->phase_events[n];
  UP_CUDA_CHECK(cudaEventRecord(closing, cb->stream));
  UP_CUDA_CHECK(cudaEventSynchronize(closing));
  for (int32_t i = 0; i < n; ++i) {
    float elapsed = 0.0f;
    UP_CUDA_CHECK(cudaEventElapsedTime(&elapsed, cb->phase_events[i], cb->phase_events[i + 1]));
    ms[cb->phase_of[i]] += elapsed;
  }
  cb->n_phase_marks = 0;
}
