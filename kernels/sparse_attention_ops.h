/* sparse_attention_ops.h — the contract of the sparse-attention baselines' kernels
 * (MInference, FlexPrefill, XAttention; ../shared/BASELINES.md): one block-sparse
 * attention kernel driven by per (sequence, head, query block) key lists, and one
 * estimation kernel per method that writes those lists. Reached like every method
 * kernel, by name through the backend's `method_kernel` op (kernels/method_kernels.h),
 * so kernels/ops.h carries none of these types. The CPU reference is kernels/cpu/
 * (sparse_attention.c, sparse_estimate_*.c); a CUDA backend implements the same names
 * and must produce the same lists (ties aside) and the same attention to its dtype's
 * tolerance. The methods (options, which layers, batching) are engine/methods/. */
#ifndef UP_SPARSE_ATTENTION_OPS_H
#define UP_SPARSE_ATTENTION_OPS_H

#include <stdint.h>

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the pattern ------------------------------------------------------------------
 *
 * A pattern describes, for one layer of a packed batch (kernels/ops.h conventions),
 * which keys each query row of each *sparse sequence* attends to. A sparse sequence is
 * a whole-prompt prefill: its cache holds exactly its n rows at this layer
 * (kv_lens[s] == n), so row t is cache entry t and "key j" means cache entry j of that
 * sequence. Every other sequence (decode rows, sequences a method leaves dense) has no
 * query blocks in the pattern and gets ordinary dense causal attention (window 0) from
 * the attention kernel, so one call covers the whole batch.
 *
 * Query blocks. Sparse sequence s has n_qblocks(s) = ceil(n / block_q) query blocks;
 * block b covers its rows [b*block_q, min((b+1)*block_q, n)). qblock_start[s] is the
 * number of query blocks of sequences before s (qblock_start[0] = 0, non-sparse
 * sequences add 0), so sequence s is sparse iff qblock_start[s+1] > qblock_start[s],
 * and then qblock_start[s+1] - qblock_start[s] == n_qblocks(s) exactly.
 *
 * List rows. The key lists are kept per list row
 *     r = (qblock_start[s] + b) * n_heads + h        (h = query head)
 * for r < n_list_rows = qblock_start[n_seqs] * n_heads, in CSR form:
 * - key ranges (the first, "block" pass): range_start[range_ptr[r] .. range_ptr[r+1])
 *   are start keys a; each stands for the block_k keys [a, a + block_k). a >= 0; a need
 *   not be a multiple of block_k (MInference's slash ranges are not aligned), and a
 *   range may reach past a row's causal limit or past n: those keys are masked, never
 *   read as data.
 * - extra keys (the second, gathered pass; MInference's vertical columns, empty for the
 *   block methods): column_index[column_ptr[r] .. column_ptr[r+1]) are single keys j,
 *   0 <= j < n.
 * range_ptr[0] = column_ptr[0] = 0 and both are non-decreasing; the entries of one list
 * row may come in any order.
 *
 * What row t (of query block b, head h) attends: the keys
 *     K(t) = { j <= t : j in some range of list row r, or j in its extra keys }
 * with the causal mask applied element-wise in both passes (the kernel masks j > t and
 * j >= n; the estimators still never emit an extra key >= the block's first row when
 * they follow MInference, so the gathered pass needs no mask there, but the kernel
 * may not rely on it). The ranges and extra keys of one list row must not overlap (no
 * key twice): the kernel does not deduplicate, and a repeated key would be counted twice
 * in the softmax. Every estimator puts the diagonal in every list row, so every row sees
 * at least itself; a row that saw no key would get zeros.
 *
 * GQA: query head h reads kv head h / (n_heads / n_kv_heads) (ops.h); the lists are per
 * query head (all three methods decide per query head, none shared in a group).
 * Softmax: scale * q.k over K(t), fp32 accumulation; the output row is
 * sum_j softmax_j * v_j (n_heads * head_dim values per row, like ops->attention).
 *
 * Memory. The struct lives on the host; the pointers marked (backend) are backend
 * memory (device memory on CUDA), the _host ones host memory. The caller (the method)
 * allocates every array and sets the capacities and qblock_start/_host; an estimator
 * fills range_ptr, range_start, column_ptr and column_index (and n_ranges, n_columns)
 * and fails loudly (UP_FATAL) rather than write past a capacity. Sizes: range_ptr and column_ptr hold
 * n_list_rows + 1 entries. */
typedef struct up_sparse_pattern {
  int32_t n_seqs;
  int32_t n_heads;
  int32_t block_q;                  /* query rows per query block: 64 (MInference) or 128 */
  int32_t block_k;                  /* keys per range: 64 (MInference) or 128 */
  const int32_t *qblock_start_host; /* [n_seqs + 1] (host) */
  const int32_t *qblock_start;      /* [n_seqs + 1] (backend) the same values */
  int32_t *range_ptr;               /* [n_list_rows + 1] (backend) */
  int32_t *range_start;             /* [range_capacity] (backend) */
  int32_t *column_ptr;              /* [n_list_rows + 1] (backend) */
  int32_t *column_index;            /* [column_capacity] (backend); may be NULL when column_capacity is 0 */
  int64_t range_capacity;
  int64_t column_capacity;
  /* Set by the estimator on the host: the key ranges and extra keys it wrote in all
   * (range_ptr[n_list_rows], column_ptr[n_list_rows]; the GPU's come back in the layer's
   * one host copy). The speed model counts the kernel's work from them in whole tiles
   * (../shared/BASELINES.md 4). */
  int64_t n_ranges;
  int64_t n_columns;
} up_sparse_pattern;

/* List rows of a pattern. */
static inline int64_t up_sparse_pattern_list_rows(const up_sparse_pattern *p) {
  return (int64_t)p->qblock_start_host[p->n_seqs] * p->n_heads;
}

/* ---- the attention kernel ----------------------------------------------------------- */

#define UP_SPARSE_ATTENTION_KERNEL "sparse_attention"

/* Attention of every row of the batch into out: rows of sparse sequences over K(t) of
 * their list row (above), rows of other sequences dense causal (ops->attention with
 * window 0). Same arguments as ops->attention otherwise. A sparse sequence whose cache
 * does not hold exactly its rows, or whose query-block count does not match, is a
 * caller's bug (UP_FATAL). */
typedef void (*up_sparse_attention_fn)(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                                       const up_attn_batch *batch, const up_attn_shape *shape,
                                       const up_sparse_pattern *pattern);

/* ---- the estimation kernels ------------------------------------------------------------
 *
 * Each writes a pattern for the batch's sparse sequences (those with query blocks in
 * pattern->qblock_start_host) from this layer's queries (qkv rows) and keys (the pool),
 * following ../shared/BASELINES.md, and returns the causal query-key pairs the pattern
 * covers summed over sparse sequences and heads, i.e. sum over rows t and heads of
 * |K(t)|: the `computed` side of the layer's attention work (engine/methods/method.h)
 * before the non-sparse sequences' dense pairs are added. On a GPU this count is the one
 * small host copy per layer. (Pairs are summed over heads here; the method divides by
 * n_heads to record pairs per row as engine/methods/method.h counts them.) Queries and
 * keys are read as bf16 (rounded to nearest even where the backend holds fp32), as the
 * authors' tensors are, so the CPU and GPU estimates see the same values; each
 * estimator then rounds to bf16 where the authors' bf16 products do (below) and keeps
 * probabilities in fp32. Selections break exact ties by the lower index (the
 * authors' torch.topk/sort leave tie order unspecified); real options arrive as float
 * (0.9f, not the authors' double 0.9).
 *
 * Density cap (all three): with 0 < density_cap < 1, each (sequence, head) keeps at most
 * floor(density_cap * C) of its C causal key blocks of the method's block size (C =
 * nq*(nq+1)/2 for nq query blocks): the forced blocks (key block 0 and the diagonal)
 * always stay, and the rest of the method's selection is ranked by the method's own
 * block score (below) and cut to the remaining budget, ties to the lower (query block,
 * key block). density_cap == 1 means no cap. A speed-study knob (random weights make
 * FlexPrefill and XAttention select almost everything), not part of the authors' code. */

/* MInference vertical-slash (BASELINES.md 1.3-1.4). block_q = block_k = 64. Per
 * (sequence, head) with n rows: lq = min(last_q, n) last queries; A = q.k rounded to
 * bf16, times 1/sqrt(head_dim) rounded to bf16; causal mask inside the last lq x lq
 * square; fp32 softmax over keys. Vertical score sv[j] = sum of the lq rows' P[., j],
 * forced to +inf for j < forced_columns; slash score of offset o = sum of P over the
 * entries with i - j = o, forced +inf for o < forced_diagonals. Keep the top
 * min(n, max(v, 30)) columns and the top min(n, max(s, 50)) offsets (v, s per head), then
 * convert to ranges and extra keys exactly as the authors' convert_vertical_slash_indexes
 * (per 64-row block [m0, m0+64): offsets o >= m0+64 skipped; offset o -> range ending at
 * max(m0+64-o, 64); ranges merged in descending-offset order with the extend-by-64 rule;
 * a column becomes an extra key iff it lies before the current range's start). Density
 * cap: MInference's budgets are fixed sizes, so its cap scales them down instead:
 * v and s become at most floor(density_cap * n) (never below the forced 30/100). */
#define UP_MINFERENCE_ESTIMATE_KERNEL "minference_estimate"

typedef struct up_minference_params {
  int32_t last_q;             /* 64 */
  int32_t forced_columns;     /* 30 */
  int32_t forced_diagonals;   /* 100 */
  const int32_t *vertical_host; /* [n_heads] v of each query head at this layer (512) */
  const int32_t *slash_host;    /* [n_heads] s of each query head at this layer (2048) */
  float density_cap;          /* (0, 1]; 1 = none */
} up_minference_params;

typedef double (*up_minference_estimate_fn)(up_backend *be, up_sparse_pattern *pattern, const void *qkv,
                                            const up_kv_pool *pool, const up_attn_batch *batch,
                                            const up_attn_shape *shape, const up_minference_params *params);

/* FlexPrefill (BASELINES.md 2.3). block_q = block_k = block (128). Per (sequence, head):
 * the last `block` queries scaled by 1/sqrt(d) in bf16, bf16 q.k, causal mask in the last
 * square, fp32 softmax; token-level vertical and slash distributions; gamma-coverage
 * token counts k -> k // 128 + 1 blocks, clamped to [ceil(min_budget/block),
 * max_budget blocks]; right-padded 128-sum pools; the Jensen-Shannon query-aware test
 * against softmax(mean q . mean-pooled K (bf16)); query-aware heads use
 * ceil(min_budget/block) verticals and slashes and add the global gamma*nq cover of the
 * block-causal pooled attention; key block 0 and the block diagonal always kept.
 * Sequences of n <= max(2*block, ceil(min_budget/block)*block) rows are the caller's to
 * leave dense (no query blocks). Cap score of block (i, j): vertB[j] + slashB[i - j]. */
#define UP_FLEXPREFILL_ESTIMATE_KERNEL "flexprefill_estimate"

typedef struct up_flexprefill_params {
  float gamma;        /* (0, 1]: 0.95 */
  float tau;          /* [0, 1]: 0.1; 0 = no head is query-aware */
  int32_t min_budget; /* tokens, >= 0: 1024 */
  int32_t max_budget; /* tokens, 0 = unlimited */
  int32_t block;      /* 128 */
  float density_cap;  /* (0, 1]; 1 = none */
} up_flexprefill_params;

typedef double (*up_flexprefill_estimate_fn)(up_backend *be, up_sparse_pattern *pattern, const void *qkv,
                                             const up_kv_pool *pool, const up_attn_batch *batch,
                                             const up_attn_shape *shape, const up_flexprefill_params *params);

/* XAttention (BASELINES.md 3.2, Triton-path semantics). block_q = block_k = 128. Per
 * (sequence, head) with stride S: reshaped scores R[r][c] = sum_{i<S} q[rS+S-1-i].k[cS+i]
 * (fp32 dot, rounded to bf16; tokens past n read as zeros), logits R / (sqrt(d)*S) and a
 * row softmax over c <= r (reshaped-level causality), block sums of the (128/S)^2
 * sub-grids rounded to bf16 -> W[qb][kb]; per query block, in float64: key block 0 and the
 * diagonal forced, the other causal blocks sorted descending (ties: lower index), each
 * kept while the mass before it (forced mass first) is < threshold * row total (so the
 * crossing block is kept). Rows 1 .. up_xattention_first_chunk_blocks(n) - 1 (the authors'
 * first estimation chunk) differ as the authors' code does: only the diagonal's mass is
 * forced, key block 0 is ranked with the others, and one block past the crossing one is
 * kept as well (block 0 stays kept). threshold_host may give one threshold per query head
 * (NULL: `threshold` for all). Cap score: W. */
#define UP_XATTENTION_ESTIMATE_KERNEL "xattention_estimate"

#ifdef __CUDACC__
#define UP_XATTENTION_HOST_DEVICE __host__ __device__
#else
#define UP_XATTENTION_HOST_DEVICE
#endif

/* The query-block rows of XAttention's first estimation chunk for a whole prompt of n
 * tokens: Xattention_prefill's chunk of max(min(max(2048, P), 2^28 / P), 2048) tokens, P
 * the next power of two >= n (BASELINES.md 3.2, line 210), in 128-token blocks. In that
 * chunk find_blocks_chunked's diagonal (an identity written over columns 0 .. chunk-1)
 * overwrites the forced key block 0, which shifts its running sum by one block
 * (xattn/src/utils.py L99-145; docs/kernels/sparse_attention.md, "Against the authors'
 * estimators"). */
static inline UP_XATTENTION_HOST_DEVICE int32_t up_xattention_first_chunk_blocks(int32_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  int64_t chunk = p > 2048 ? p : 2048;
  if (chunk > ((int64_t)1 << 28) / p) chunk = ((int64_t)1 << 28) / p;
  if (chunk < 2048) chunk = 2048;
  return (int32_t)(chunk / 128);
}

typedef struct up_xattention_params {
  int32_t stride;                /* 8 or 16 */
  float threshold;               /* (0, 1]: 0.9 */
  const float *threshold_host;   /* [n_heads] or NULL */
  float density_cap;             /* (0, 1]; 1 = none */
} up_xattention_params;

typedef double (*up_xattention_estimate_fn)(up_backend *be, up_sparse_pattern *pattern, const void *qkv,
                                            const up_kv_pool *pool, const up_attn_batch *batch,
                                            const up_attn_shape *shape, const up_xattention_params *params);

/* ---- lookup -------------------------------------------------------------------------- */

/* The backend's kernel of that name, cast to its type; NULL when it has none (a method's
 * supports() asks before a forward pass runs). */
static inline up_sparse_attention_fn up_sparse_attention_kernel(up_backend *be) {
  return (up_sparse_attention_fn)be->ops->method_kernel(be, UP_SPARSE_ATTENTION_KERNEL);
}
static inline up_minference_estimate_fn up_minference_estimate_kernel(up_backend *be) {
  return (up_minference_estimate_fn)be->ops->method_kernel(be, UP_MINFERENCE_ESTIMATE_KERNEL);
}
static inline up_flexprefill_estimate_fn up_flexprefill_estimate_kernel(up_backend *be) {
  return (up_flexprefill_estimate_fn)be->ops->method_kernel(be, UP_FLEXPREFILL_ESTIMATE_KERNEL);
}
static inline up_xattention_estimate_fn up_xattention_estimate_kernel(up_backend *be) {
  return (up_xattention_estimate_fn)be->ops->method_kernel(be, UP_XATTENTION_ESTIMATE_KERNEL);
}

#ifdef __cplusplus
}
#endif

#endif
