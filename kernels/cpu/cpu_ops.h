/* cpu_ops.h — private to kernels/cpu: the compute ops that cpu_backend.c puts in the
 * CPU backend's op table. Each follows the contract of its entry in kernels/ops.h. */
#ifndef UP_CPU_OPS_H
#define UP_CPU_OPS_H

#include "kernels/ops.h"

/* cpu_ops.c: per-token ops */
void up_cpu_embed(up_backend *be, void *out, const void *table, const int32_t *tokens, int32_t n_tokens,
                  int32_t dim);
void up_cpu_rmsnorm(up_backend *be, void *out, const void *x, const void *weight, int32_t n_rows, int32_t dim,
                    float eps);
void up_cpu_add_rmsnorm(up_backend *be, void *out, void *residual, const void *x, const void *weight,
                        int32_t n_rows, int32_t dim, float eps);
void up_cpu_matmul(up_backend *be, void *out, const void *a, const void *w, int32_t m, int32_t n, int32_t k);
void up_cpu_rope(up_backend *be, void *qkv, const int32_t *positions, const float *inv_freq, int32_t n_tokens,
                 const up_attn_shape *shape);
void up_cpu_swiglu(up_backend *be, void *out, const void *gate_up, int32_t n_rows, int32_t inter);
void up_cpu_gather_rows(up_backend *be, void *dst, const void *src, const int32_t *rows, int32_t n_rows,
                        int32_t dim);
void up_cpu_gather_i32(up_backend *be, int32_t *dst, const int32_t *src, const int32_t *rows, int32_t n_rows);
void up_cpu_argmax_rows(up_backend *be, int32_t *dst_host, const void *x, int32_t n_rows, int32_t n_cols);

/* cpu_gemma_ops.c: the ops Gemma 3's layer adds */
void up_cpu_geglu(up_backend *be, void *out, const void *gate_up, int32_t n_rows, int32_t inter);
void up_cpu_head_rmsnorm(up_backend *be, void *x, const void *weight, int32_t n_rows, int32_t row_stride,
                         int32_t first_col, int32_t n_heads, int32_t head_dim, float eps);
void up_cpu_scale(up_backend *be, void *x, size_t n, float factor);

/* cpu_attention.c: the paged KV cache and attention over it */
void up_cpu_kv_store(up_backend *be, const up_kv_pool *pool, const void *qkv, const int32_t *slot_mapping,
                     int32_t n_tokens, const up_attn_shape *shape);
void up_cpu_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                      const up_attn_batch *batch, const up_attn_shape *shape, int32_t window);
/* UniPrefill's bounded attention (kernels/uniprefill_ops.h): each row from its own first entry. */
void up_cpu_bounded_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                              const up_attn_batch *batch, const up_attn_shape *shape, const int32_t *first_entry);

#endif
