/* cpu_causal_conv.c — the CPU reference of causal_conv1d (kernels/ops.h): the Gated
 * DeltaNet's depthwise causal conv with SiLU over a packed batch, reading and leaving
 * each sequence's last width - 1 inputs in its conv-state slot. Prefill and decode
 * are one loop: a one-row sequence with a state is the sliding update of HYBRIDS.md C.5. */
#include <math.h>
#include <stdlib.h>

#include "core/fatal.h"
#include "kernels/cpu/cpu_deltanet.h"

void up_cpu_causal_conv1d(up_backend *be, void *out, const void *x, int32_t x_stride, const void *weight,
                          void *conv_state, const up_recurrent_batch *batch, int32_t channels, int32_t width) {
  if (width < 1 || channels < 1 || x_stride < channels)
    UP_FATAL("causal_conv1d: width %d, %d channels, x stride %d", (int)width, (int)channels, (int)x_stride);
  const int32_t hist = width - 1;
  const float *xs = x, *w = weight;
  float *o = out, *states = conv_state;
  /* The history then the sequence's inputs, one channel at a time. */
  float *window = up_malloc_or_die(sizeof(float) * (size_t)width, "conv window");
  for (int32_t s = 0; s < batch->n_seqs; ++s) {
    const int32_t first = batch->cu_seqlens[s], n = batch->cu_seqlens[s + 1] - first;
    if (n < 0) UP_FATAL("causal_conv1d: sequence %d has %d rows", (int)s, (int)n);
    float *state = states + (int64_t)batch->state_slots[s] * hist * channels;
    const int initial = batch->has_initial_state[s] != 0;
    for (int32_t c = 0; c < channels; ++c) {
      for (int32_t j = 0; j < hist; ++j) window[j] = initial ? state[(int64_t)j * channels + c] : 0.0f;
      for (int32_t t = 0; t < n; ++t) {
        window[hist] = xs[(int64_t)(first + t) * x_stride + c];
        float acc = 0.0f;
        for (int32_t j = 0; j < width; ++j) acc += w[(int64_t)c * width + j] * window[j];
        o[(int64_t)(first + t) * channels + c] = acc / (1.0f + expf(-acc));
        for (int32_t j = 0; j < hist; ++j) window[j] = window[j + 1];
      }
      for (int32_t j = 0; j < hist; ++j) state[(int64_t)j * channels + c] = window[j];
    }
  }
  free(window);
}
