/* cuda_causal_conv.cu — causal_conv1d (kernels/ops.h) on the GPU: the Gated DeltaNet's
 * depthwise causal conv with SiLU over a packed batch. One thread per (row, channel)
 * reads its width inputs (history rows from the sequence's conv-state slot), then a
 * second kernel, ordered after it on the stream, writes each sequence's last width - 1
 * inputs back into the slot, so no output reads a history already replaced. */
#include "kernels/cuda/deltanet/deltanet_ops.h"

enum { CONV_MAX_WIDTH = 8 };

static __global__ void causal_conv_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *x, int32_t x_stride,
                                          const __nv_bfloat16 *w, const __nv_bfloat16 *states, const int32_t *cu,
                                          const int32_t *slots, const int32_t *initial, int32_t n_seqs,
                                          int32_t n_tokens, int32_t channels, int32_t width) {
  const int64_t n = (int64_t)n_tokens * channels;
  const int32_t hist = width - 1;
  for (int64_t u = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; u < n; u += (int64_t)gridDim.x * blockDim.x) {
    const int32_t t = (int32_t)(u / channels), c = (int32_t)(u % channels);
    const int32_t s = up_deltanet_seq_of(cu, n_seqs, t), first = cu[s];
    const __nv_bfloat16 *state = states + (int64_t)slots[s] * hist * channels;
    float acc = 0.0f;
    for (int32_t j = 0; j < width; ++j) {
      const int32_t src = t - hist + j;
      float v = 0.0f;
      if (src >= first)
        v = __bfloat162float(x[(int64_t)src * x_stride + c]);
      else if (initial[s])
        v = __bfloat162float(state[(int64_t)(hist + src - first) * channels + c]);
      acc += __bfloat162float(w[(int64_t)c * width + j]) * v;
    }
    out[u] = __float2bfloat16_rn(acc / (1.0f + __expf(-acc)));
  }
}

/* The last hist inputs of (old history, the sequence's rows): all read before any write. */
static __global__ void conv_state_kernel(__nv_bfloat16 *states, const __nv_bfloat16 *x, int32_t x_stride,
                                         const int32_t *cu, const int32_t *slots, const int32_t *initial,
                                         int32_t n_seqs, int32_t channels, int32_t width) {
  const int64_t n = (int64_t)n_seqs * channels;
  const int32_t hist = width - 1;
  for (int64_t u = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; u < n; u += (int64_t)gridDim.x * blockDim.x) {
    const int32_t s = (int32_t)(u / channels), c = (int32_t)(u % channels);
    const int32_t first = cu[s], rows = cu[s + 1] - first;
    __nv_bfloat16 *state = states + (int64_t)slots[s] * hist * channels;
    __nv_bfloat16 kept[CONV_MAX_WIDTH];
    for (int32_t i = 0; i < hist; ++i) {
      const int32_t p = rows + i; /* index into history ++ rows */
      kept[i] = p >= hist ? x[(int64_t)(first + p - hist) * x_stride + c]
                          : (initial[s] ? state[(int64_t)p * channels + c] : __float2bfloat16_rn(0.0f));
    }
    for (int32_t i = 0; i < hist; ++i) state[(int64_t)i * channels + c] = kept[i];
  }
}

extern "C" void up_cuda_causal_conv1d(up_backend *be, void *out, const void *x, int32_t x_stride, const void *weight,
                                      void *conv_state, const up_recurrent_batch *batch, int32_t channels,
                                      int32_t width) {
  if (width < 1 || width > CONV_MAX_WIDTH || channels < 1 || x_stride < channels)
    UP_FATAL("causal_conv1d: width %d (1 to %d here), %d channels, x stride %d", (int)width, CONV_MAX_WIDTH,
             (int)channels, (int)x_stride);
  if (batch->n_seqs <= 0) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  const __nv_bfloat16 *xs = (const __nv_bfloat16 *)x;
  __nv_bfloat16 *states = (__nv_bfloat16 *)conv_state;
  if (batch->n_tokens > 0) {
    causal_conv_kernel<<<up_deltanet_blocks((int64_t)batch->n_tokens * channels), 256, 0, cb->stream>>>(
        (__nv_bfloat16 *)out, xs, x_stride, (const __nv_bfloat16 *)weight, states, batch->cu_seqlens,
        batch->state_slots, batch->has_initial_state, batch->n_seqs, batch->n_tokens, channels, width);
    UP_CUDA_CHECK_LAUNCH();
  }
  if (width > 1) {
    conv_state_kernel<<<up_deltanet_blocks((int64_t)batch->n_seqs * channels), 256, 0, cb->stream>>>(
        states, xs, x_stride, batch->cu_seqlens, batch->state_slots, batch->has_initial_state, batch->n_seqs,
        channels, width);
    UP_CUDA_CHECK_LAUNCH();
  }
}
