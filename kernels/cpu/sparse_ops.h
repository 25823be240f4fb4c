/* sparse_ops.h — the CPU reference of the sparse baselines' kernels
 * (kernels/sparse_attention_ops.h), listed in the CPU backend's method-kernel table,
 * and the pieces of each estimation exposed so tests can check them against
 * hand-worked examples and the fixtures of the independent NumPy port
 * (tests/reference/sparse_estimates.py). Private to kernels/cpu and its tests. */
#ifndef UP_CPU_SPARSE_OPS_H
#define UP_CPU_SPARSE_OPS_H

#include <stdint.h>

#include "kernels/ops.h"
#include "kernels/sparse_attention_ops.h"

/* ---- the kernels (sparse_attention.c, sparse_minference.c, sparse_flexprefill.c,
 * sparse_xattention.c) ----------------------------------------------------------- */
void up_cpu_sparse_attention(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                             const up_attn_batch *batch, const up_attn_shape *shape, const up_sparse_pattern *pattern);
double up_cpu_minference_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv, const up_kv_pool *pool,
                                  const up_attn_batch *batch, const up_attn_shape *shape,
                                  const up_minference_params *params);
double up_cpu_flexprefill_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv,
                                   const up_kv_pool *pool, const up_attn_batch *batch, const up_attn_shape *shape,
                                   const up_flexprefill_params *params);
double up_cpu_xattention_estimate(up_backend *be, up_sparse_pattern *pattern, const void *qkv, const up_kv_pool *pool,
                                  const up_attn_batch *batch, const up_attn_shape *shape,
                                  const up_xattention_params *params);

/* ---- shared pieces (sparse_common.c) --------------------------------------------- */

/* An index with its score, and scores[0..n) ranked descending, ties to the lower index
 * (malloc'd; the caller frees it). */
typedef struct up_sparse_ranked {
  double score;
  int32_t index;
} up_sparse_ranked;
up_sparse_ranked *up_sparse_rank(const double *scores, int32_t n);

/* x rounded to the nearest bfloat16 (ties to even), as an fp32 value; NaN stays NaN. */
float up_sparse_round_bf16(float x);

/* The lists of one sparse sequence before they are written into a pattern: per local
 * row lr = b * n_heads + h (query block b, head h), key-range starts and extra keys. */
typedef struct up_sparse_rows {
  int32_t n_qblocks, n_heads;
  int32_t *n_ranges, *n_columns;  /* [n_qblocks * n_heads] */
  int32_t **ranges, **columns;    /* growable per row */
  int32_t *range_cap, *column_cap;
} up_sparse_rows;

/* Query blocks of sequence s in the pattern (0: the pattern leaves it dense), after
 * checking that it is a whole-prompt prefill of the pattern's shape (kv_lens == rows,
 * ceil(rows / block) query blocks); its first row and row count go to *first and *n.
 * `kernel` names the estimator in the fatal message. */
int32_t up_sparse_sequence(const char *kernel, const up_sparse_pattern *pattern, const up_attn_batch *batch,
                           int32_t s, int32_t block, int32_t *first, int32_t *n);
void up_sparse_rows_init(up_sparse_rows *rows, int32_t n_qblocks, int32_t n_heads);
void up_sparse_rows_free(up_sparse_rows *rows);
void up_sparse_rows_add_range(up_sparse_rows *rows, int32_t qblock, int32_t head, int32_t start);
void up_sparse_rows_add_column(up_sparse_rows *rows, int32_t qblock, int32_t head, int32_t key);

/* Causal pairs the rows cover for a sequence of n rows (block_q rows per query block,
 * ranges block_k keys wide): sum over rows t and heads of |K(t)| (the header's
 * definition, assuming no key twice in a list row). */
double up_sparse_rows_pairs(const up_sparse_rows *rows, int32_t n, int32_t block_q, int32_t block_k);

/* Append sequence s's rows to the pattern at its list rows (sequences must be written in
 * order, each once); UP_FATAL on a capacity overflow. *next_range / *next_column are the
 * running fill levels, starting at 0. Also closes the ptr arrays of the list rows
 * written so far. */
void up_sparse_rows_write(const up_sparse_rows *rows, up_sparse_pattern *pattern, int32_t s, int64_t *next_range,
                          int64_t *next_column);

/* A (query block, key block) mask of one head for the block methods: nq x nq bytes. The
 * density cap on it (header): keep key block 0 and the diagonal, and of the other set
 * blocks the floor(cap * nq*(nq+1)/2) - forced highest by score[qb*nq+kb] (ties: lower
 * qb, then lower kb). cap >= 1 leaves the mask alone. */
void up_sparse_block_cap(uint8_t *mask, const double *score, int32_t nq, float cap);

/* Stage a head's block mask as aligned block_k-wide ranges. */
void up_sparse_rows_from_mask(up_sparse_rows *rows, int32_t head, const uint8_t *mask, int32_t nq, int32_t block_k);

/* Query rows of head h of one sequence, bf16-rounded, [n][head_dim]; keys (or values) of
 * kv head g the same way, from the pool. q_rows is the sequence's first fused-QKV row. */
void up_sparse_head_queries(const float *q_rows, int32_t n, const up_attn_shape *shape, int32_t h, float *dst);
void up_sparse_head_keys(const up_kv_pool *pool, const int32_t *block_table, int32_t n, int32_t g,
                         int32_t head_dim, float *dst);

/* The loop every CPU estimator runs: per sparse sequence of the batch, per kv group its
 * bf16 keys, per query head its bf16 queries (the last `last_queries` rows, 0: all),
 * then the method's head step stages that head's lists; the sequence's lists are then
 * counted and written into the pattern. Returns the covered pairs (the estimator's
 * result). begin/end (may be NULL) hold the method's per-sequence buffers. */
typedef struct up_sparse_head_input {
  int32_t n, nq, head, head_dim;
  const float *q; /* [n][head_dim]: the rows asked for are filled, at their positions */
  const float *k; /* [n][head_dim] keys of the head's kv group */
} up_sparse_head_input;

typedef struct up_sparse_estimator {
  const char *kernel; /* named in fatal messages */
  int32_t block;      /* block_q = block_k */
  int32_t last_queries;
  void *ctx;
  void (*begin)(void *ctx, int32_t n, int32_t nq);
  void (*head)(void *ctx, const up_sparse_head_input *in, up_sparse_rows *rows);
  void (*end)(void *ctx);
} up_sparse_estimator;

double up_sparse_estimate_heads(const up_sparse_estimator *est, up_sparse_pattern *pattern, const void *qkv,
                                const up_kv_pool *pool, const up_attn_batch *batch, const up_attn_shape *shape);

/* ---- estimation steps, per (sequence, head), for tests -------------------------------- */

/* MInference: the chosen columns (ascending) and offsets (descending) of one head from
 * its bf16 queries q [n][d] and keys k [n][d] (header rules). Returns the counts through
 * *n_columns and *n_offsets; columns and offsets need room for n entries each. */
void up_minference_head_select(const float *q, const float *k, int32_t n, int32_t d, int32_t last_q,
                               int32_t forced_columns, int32_t forced_diagonals, int32_t v, int32_t s,
                               int32_t *columns, int32_t *n_columns, int32_t *offsets, int32_t *n_offsets);
/* convert_vertical_slash_indexes for one head (64 x 64): stage the ranges and extra keys
 * of every 64-row block of a sequence of n rows. */
void up_minference_convert(up_sparse_rows *rows, int32_t head, int32_t n, const int32_t *columns, int32_t n_columns,
                           const int32_t *offsets, int32_t n_offsets);

/* FlexPrefill: the block mask [nq][nq] of one head (q [n][d], k [n][d] bf16), and the
 * cap score of each block (NULL when not wanted). Returns 1 when the head was
 * query-aware. */
int up_flexprefill_head_mask(const float *q, const float *k, int32_t n, int32_t d, const up_flexprefill_params *p,
                             uint8_t *mask, double *score);

/* XAttention: the block scores W [nq][nq] (bf16-rounded) of one head and its mask; rows
 * 1 .. first_chunk_blocks-1 walk as the authors' first chunk does (0: none;
 * up_xattention_first_chunk_blocks(n) for a prompt of n tokens). */
void up_xattention_head_scores(const float *q, const float *k, int32_t n, int32_t d, int32_t stride, double *w);
void up_xattention_head_mask(const double *w, int32_t nq, double threshold, int32_t first_chunk_blocks,
                             uint8_t *mask);

#endif
