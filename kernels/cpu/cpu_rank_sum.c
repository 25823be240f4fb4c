/* cpu_rank_sum.c — the rank-order sum of gathered slices on the host (see
 * cpu_rank_sum.h). Each element starts from rank 0's value and adds the others in rank
 * order, one rounding per addition, so the result does not depend on how the slices
 * arrived. */
#include "kernels/cpu/cpu_rank_sum.h"

#include <stdint.h>

#include "core/float16.h"

void up_cpu_sum_rank_slices(const void *slices, void *out, size_t count, int ranks, bool bf16) {
  if (!bf16) {
    const float *g = slices;
    float *o = out;
    for (size_t i = 0; i < count; ++i) {
      float acc = g[i];
      for (int r = 1; r < ranks; ++r) acc += g[(size_t)r * count + i];
      o[i] = acc;
    }
    return;
  }
  const uint16_t *g = slices;
  uint16_t *o = out;
  for (size_t i = 0; i < count; ++i) {
    float acc = up_bf16_to_f32(g[i]);
    for (int r = 1; r < ranks; ++r) acc += up_bf16_to_f32(g[(size_t)r * count + i]);
    o[i] = up_f32_to_bf16(acc);
  }
}
