/* kv_gather.c — reads one kv head of one sequence out of the paged KV pool into a
 * contiguous array, so the CPU attention and selection ops can hand it to BLAS. */
#include "kernels/cpu/cpu_backend.h"

#include <string.h>

void up_cpu_kv_gather(const up_kv_pool *pool, const int32_t *block_table, int32_t n_entries, int32_t kv_head,
                      int32_t head_dim, int which_v, float *dst) {
  const float *base = (const float *)(which_v ? pool->v : pool->k);
  const int32_t bt = pool->block_tokens;
  for (int32_t e = 0; e < n_entries; ++e) {
    const int64_t slot = (int64_t)block_table[e / bt] * bt + e % bt;
    memcpy(dst + (int64_t)e * head_dim, base + slot * pool->kv_dim + (int64_t)kv_head * head_dim,
           sizeof(float) * (size_t)head_dim);
  }
}
