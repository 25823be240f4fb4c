/* uniprefill_ops.h — UniPrefill's kernel: the token selection op, its knobs, and how a
 * caller reaches it on a backend (by name through the `method_kernel` op of
 * kernels/ops.h, which carries no UniPrefill type). Implemented by the CPU reference
 * (kernels/cpu/uniprefill_select.c) and the CUDA backend
 * (kernels/cuda/selection/uniprefill_select.cu), each listed in its backend's
 * method-kernel table. The method itself (options, drop layers) is
 * engine/methods/uniprefill.c. */
#ifndef UP_UNIPREFILL_OPS_H
#define UP_UNIPREFILL_OPS_H

#include <stdint.h>

#include "core/fatal.h"
#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* UniPrefill selection knobs (see ../shared/ALGORITHMS.md). */
typedef struct up_select_params {
  float top_p;          /* cumulative block-score share kept; 1 keeps every block */
  float keep_fraction;  /* > 0: fixed-budget mode, keep the top ceil(F * blocks) blocks instead of top-p */
  int32_t block;        /* tokens per scoring block (64) */
  int32_t sink;         /* first tokens always kept (128) */
  int32_t last_q;       /* last tokens: the scoring queries, always kept (128) */
} up_select_params;

/* The selection's name in the backends' method-kernel tables. */
#define UP_UNIPREFILL_SELECT_KERNEL "uniprefill_select"

/* Token selection over a packed batch (conventions in kernels/ops.h). Sequences with
 * is_candidate_host[s] == 0 (decode rows) keep every row, and so do candidates of at
 * most sink + last_q rows (the algorithm leaves short requests alone). For the others:
 * score blocks by the attention that the sequence's last last_q rows pay each cached
 * entry, keep by top-p (or fixed budget) plus sinks and last queries, per
 * ../shared/ALGORITHMS.md; ties in block score go to the lower block index. A candidate
 * with a NaN or infinite block score (non-finite queries or keys) keeps every row: its
 * logits then carry the non-finite values, and argmax_rows flags it. Writes the
 * packed row indices that survive, in order, to keep_rows (backend memory, capacity
 * n_tokens) and the new per-sequence offsets to new_cu_seqlens_host; returns the
 * number of kept rows. A candidate's cache must hold exactly its current rows
 * (whole-prompt prefill). */
typedef int32_t (*up_uniprefill_select_fn)(up_backend *be, int32_t *keep_rows, int32_t *new_cu_seqlens_host,
                                           const void *qkv, const up_kv_pool *pool, const up_attn_batch *batch,
                                           const up_attn_shape *shape, const uint8_t *is_candidate_host,
                                           const up_select_params *params);

/* The per-head half of the selection, for tensor parallelism (../shared/PARALLEL.md
 * 3.5): each rank scores the blocks with its own query heads, the group all-gathers
 * the scores and every rank sums them in global head order and chooses the same blocks
 * (engine/methods/uniprefill_tp.c). For every query head h of `shape` (the rank's) and
 * every block b of sequence s with block_offsets_host[s + 1] > block_offsets_host[s]
 * (a candidate: whole-prompt prefill, its blocks of params->block tokens, the last
 * possibly short), head_scores[h * total + block_offsets_host[s] + b] (fp32, backend
 * memory, total = block_offsets_host[n_seqs]) is the sum over the sequence's last
 * last_q rows and the block's keys of head h's causal softmax, the scale
 * shape->scale. Summed over heads in ascending order it is the block score the
 * selection kernel ranks (up to the fp32 rounding of each head's sum). The CPU
 * reference (kernels/cpu/uniprefill_select.c) and the CUDA backend
 * (kernels/cuda/selection/uniprefill_select.cu, blocks a multiple of a warp's keys) have
 * it; a call's sums are in a fixed order, so the same inputs give the same bits. */
#define UP_UNIPREFILL_HEAD_SCORES_KERNEL "uniprefill_head_scores"
typedef void (*up_uniprefill_head_scores_fn)(up_backend *be, float *head_scores, const void *qkv,
                                             const up_kv_pool *pool, const up_attn_batch *batch,
                                             const up_attn_shape *shape, const int32_t *block_offsets_host,
                                             const up_select_params *params);

/* The backend's per-head scores kernel; NULL when it has none (then UniPrefill does
 * not run under TP > 1 there). */
static inline up_uniprefill_head_scores_fn up_uniprefill_head_scores_kernel(up_backend *be) {
  return (up_uniprefill_head_scores_fn)be->ops->method_kernel(be, UP_UNIPREFILL_HEAD_SCORES_KERNEL);
}

/* The backend's selection kernel; NULL when it has none. */
static inline up_uniprefill_select_fn up_uniprefill_select_kernel(up_backend *be) {
  return (up_uniprefill_select_fn)be->ops->method_kernel(be, UP_UNIPREFILL_SELECT_KERNEL);
}

/* Run the backend's selection kernel; a backend without one is a caller's error
 * (callers check up_uniprefill_select_kernel first, as the method's supports() does). */
static inline int32_t up_uniprefill_select(up_backend *be, int32_t *keep_rows, int32_t *new_cu_seqlens_host,
                                           const void *qkv, const up_kv_pool *pool, const up_attn_batch *batch,
                                           const up_attn_shape *shape, const uint8_t *is_candidate_host,
                                           const up_select_params *params) {
  const up_uniprefill_select_fn select = up_uniprefill_select_kernel(be);
  if (!select) UP_FATAL("the %s backend has no %s kernel", be->ops->name, UP_UNIPREFILL_SELECT_KERNEL);
  return select(be, keep_rows, new_cu_seqlens_host, qkv, pool, batch, shape, is_candidate_host, params);
}

/* Attention in which each row brings its own first visible cache entry: packed row r,
 * at cache index i of its sequence, attends entries first_entry[r]..i (first_entry:
 * backend int32 [n_tokens], 0 <= first_entry[r] <= i, non-decreasing within a
 * sequence; blocks before a sequence's first row's entry may be -1 and are not read).
 * Otherwise the attention op's contract (kernels/ops.h). UniPrefill's window=original
 * uses it on sliding layers after a drop, where a window of W original positions
 * starts at the first kept entry whose position is within W of the row's. The CPU
 * reference (kernels/cpu/cpu_attention.c) and the CUDA backend
 * (kernels/cuda/selection/uniprefill_bounded_attention.cu) have it; a backend without
 * it makes the method refuse the option. */
typedef void (*up_bounded_attention_fn)(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                                        const up_attn_batch *batch, const up_attn_shape *shape,
                                        const int32_t *first_entry);

#define UP_UNIPREFILL_BOUNDED_ATTENTION_KERNEL "uniprefill_bounded_attention"

/* The backend's bounded attention; NULL when it has none. */
static inline up_bounded_attention_fn up_bounded_attention_kernel(up_backend *be) {
  return (up_bounded_attention_fn)be->ops->method_kernel(be, UP_UNIPREFILL_BOUNDED_ATTENTION_KERNEL);
}

#ifdef __cplusplus
}
#endif

#endif
