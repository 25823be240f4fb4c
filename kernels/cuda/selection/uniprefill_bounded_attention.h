/* uniprefill_bounded_attention.h — the CUDA backend's bounded attention (an
 * up_bounded_attention_fn of kernels/uniprefill_ops.h, listed in the backend's
 * method-kernel table; uniprefill_bounded_attention.cu): attention in which each row
 * brings its own first visible cache entry, which UniPrefill's window=original uses on
 * sliding layers after a drop. C-callable. */
#ifndef UP_CUDA_UNIPREFILL_BOUNDED_ATTENTION_H
#define UP_CUDA_UNIPREFILL_BOUNDED_ATTENTION_H

#include <stdint.h>

#include "kernels/ops.h"
#include "kernels/uniprefill_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* qkv, out and the pool bf16 in GPU memory; batch arrays and first_entry device int32.
 * head_dim 64, 128 or 256. Queued on the backend's stream, no host wait; a first entry
 * outside 0..the row's own index is reported at the next synchronisation. */
void up_cuda_bounded_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                               const up_attn_batch *batch, const up_attn_shape *shape, const int32_t *first_entry);

#ifdef __cplusplus
}
#endif

#endif
