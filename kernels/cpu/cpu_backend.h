/* cpu_backend.h — the fp32 CPU reference backend: every op in kernels/ops.h written
 * plainly (GEMMs through OpenBLAS), the yardstick the CUDA backend is tested against. */
#ifndef UP_CPU_BACKEND_H
#define UP_CPU_BACKEND_H

#include "kernels/ops.h"

/* A CPU backend; n_threads <= 0 lets OpenBLAS choose. Never NULL. */
up_backend *up_cpu_backend_create(int n_threads);

/* Copy cache entries [0, n_entries) of one kv head of one sequence into dst
 * [n_entries][head_dim], from the K (which_v == 0) or V (which_v == 1) pool. */
void up_cpu_kv_gather(const up_kv_pool *pool, const int32_t *block_table, int32_t n_entries, int32_t kv_head,
                      int32_t head_dim, int which_v, float *dst);

#endif
