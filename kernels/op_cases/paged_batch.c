/* paged_batch.c — building the batch ops' inputs (paged_batch.h) and their host copy. */
#include "kernels/op_cases/paged_batch.h"

#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "core/rng.h"
#include "kernels/op_cases/op_check.h"

/* Random streams (core/rng.h): the values --kernels has always timed. */
enum {
  UP_STREAM_QKV = 3,
  UP_STREAM_POOL_K = 4,
  UP_STREAM_POOL_V = 5,
  UP_STREAM_BLOCKS = 6,
};
/* Queries drawn apart from the rest of their row: two streams per row from here. */
#define UP_STREAM_ROW_PARTS (1ull << 32)
#define UP_SPARE_BLOCKS 3

int32_t up_op_batch_rows(const up_op_batch_dims *d, int32_t s) { return d->per_sequence ? d->rows[s] : d->rows_each; }

int32_t up_op_batch_prior(const up_op_batch_dims *d, int32_t s) {
  return d->per_sequence ? d->prior[s] : d->prior_each;
}

int32_t up_op_batch_window_start(int32_t index, int32_t window) {
  return window > 0 && index - window + 1 > 0 ? index - window + 1 : 0;
}

/* Blocks of sequence s that lie wholly before the first entry its first row sees: the
 * layer-memory door gives them back to the pool, so they get no pool block here and
 * -1 in the table (kernels/ops.h). None without a window. */
static int32_t blocks_behind_window(const up_op_batch_dims *d, int32_t s) {
  return up_op_batch_window_start(up_op_batch_prior(d, s), d->window) / d->block_tokens;
}

static void fill_qkv(up_backend *be, const up_op_batch_dims *d, uint64_t seed, up_op_paged_batch *pb) {
  const size_t n = (size_t)pb->n_tokens * (size_t)pb->qkv_dim;
  pb->qkv = be->ops->alloc(be, (n ? n : 1) * up_dtype_size(be->act_dtype), "op case qkv rows");
  if (d->query_bound == d->qkv_bound) {
    be->ops->fill_uniform(be, pb->qkv, 0, n, d->qkv_bound, seed, UP_STREAM_QKV);
    return;
  }
  const size_t q_cols = (size_t)d->shape.n_heads * (size_t)d->shape.head_dim;
  for (int32_t t = 0; t < pb->n_tokens; ++t) {
    const size_t row = (size_t)t * (size_t)pb->qkv_dim;
    const uint64_t stream = UP_STREAM_ROW_PARTS + 2 * (uint64_t)t;
    be->ops->fill_uniform(be, pb->qkv, row, q_cols, d->query_bound, seed, stream);
    be->ops->fill_uniform(be, pb->qkv, row + q_cols, (size_t)pb->qkv_dim - q_cols, d->qkv_bound, seed, stream + 1);
  }
}

/* Pool rows no sequence owns become NaN: an op that reads one shows it. */
static void poison_unowned_rows(up_backend *be, up_op_paged_batch *pb) {
  const int64_t rows = (int64_t)pb->n_blocks * pb->block_tokens;
  uint8_t *owned = up_calloc_or_die((size_t)rows, 1, "owned pool rows");
  for (int32_t s = 0; s < pb->n_seqs; ++s)
    for (int32_t e = 0; e < pb->kv_lens[s]; ++e) {
      const int32_t block = pb->block_tables[(int64_t)s * pb->max_blocks_per_seq + e / pb->block_tokens];
      if (block >= 0) owned[(int64_t)block * pb->block_tokens + e % pb->block_tokens] = 1;
    }
  for (int64_t r = 0; r < rows; ++r) {
    if (owned[r]) continue;
    int64_t end = r;
    while (end < rows && !owned[end]) ++end; /* one upload per run of unowned rows */
    up_op_fill_nan(be, pb->pool.k, (size_t)(r * pb->kv_dim), (size_t)((end - r) * pb->kv_dim));
    up_op_fill_nan(be, pb->pool.v, (size_t)(r * pb->kv_dim), (size_t)((end - r) * pb->kv_dim));
    r = end;
  }
  free(owned);
}

void up_op_paged_batch_make(up_backend *be, const up_op_batch_dims *d, uint64_t seed, up_op_paged_batch *pb) {
  memset(pb, 0, sizeof *pb);
  const int32_t n_seqs = d->n_seqs, bt = d->block_tokens;
  pb->n_seqs = n_seqs;
  pb->block_tokens = bt;
  pb->kv_dim = d->shape.n_kv_heads * d->shape.head_dim;
  pb->qkv_dim = (d->shape.n_heads + 2 * d->shape.n_kv_heads) * d->shape.head_dim;
  pb->cu_seqlens = up_calloc_or_die((size_t)n_seqs + 1, sizeof(int32_t), "op case offsets");
  pb->kv_lens = up_calloc_or_die((size_t)n_seqs, sizeof(int32_t), "op case cache lengths");
  pb->candidate = up_malloc_or_die((size_t)n_seqs, "op case candidates");
  int32_t used_blocks = 0;
  for (int32_t s = 0; s < n_seqs; ++s) {
    pb->cu_seqlens[s + 1] = pb->cu_seqlens[s] + up_op_batch_rows(d, s);
    pb->kv_lens[s] = up_op_batch_rows(d, s) + up_op_batch_prior(d, s);
    pb->candidate[s] = d->per_sequence ? d->candidate[s] : 1;
    const int32_t blocks = (pb->kv_lens[s] + bt - 1) / bt;
    used_blocks += blocks - blocks_behind_window(d, s);
    if (blocks > pb->max_blocks_per_seq) pb->max_blocks_per_seq = blocks;
  }
  pb->n_tokens = pb->cu_seqlens[n_seqs];
  pb->n_blocks = used_blocks + (d->spare_blocks ? UP_SPARE_BLOCKS : 0);
  if (d->spare_blocks) pb->max_blocks_per_seq += 1; /* a -1 slot past every sequence's last block */

  int32_t *perm = up_malloc_or_die(sizeof(int32_t) * (size_t)pb->n_blocks, "op case block order");
  for (int32_t i = 0; i < pb->n_blocks; ++i) perm[i] = i;
  for (int32_t i = pb->n_blocks - 1; i > 0; --i) { /* Fisher-Yates */
    const int32_t j = (int32_t)(up_rng_u64(seed, UP_STREAM_BLOCKS, (uint64_t)i) % (uint64_t)(i + 1));
    const int32_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  const size_t table_n = (size_t)n_seqs * (size_t)pb->max_blocks_per_seq;
  pb->block_tables = up_malloc_or_die(sizeof(int32_t) * table_n, "op case block tables");
  for (int32_t s = 0, next = 0; s < n_seqs; ++s) {
    const int32_t behind = blocks_behind_window(d, s);
    for (int32_t b = 0; b < pb->max_blocks_per_seq; ++b)
      pb->block_tables[(int64_t)s * pb->max_blocks_per_seq + b] =
          b >= behind && b * bt < pb->kv_lens[s] ? perm[next++] : -1;
  }
  free(perm);

  fill_qkv(be, d, seed, pb);
  const size_t pool_n = (size_t)pb->n_blocks * (size_t)bt * (size_t)pb->kv_dim;
  pb->pool = (up_kv_pool){
      .k = up_op_alloc_filled(be, pool_n, d->pool_bound, seed, UP_STREAM_POOL_K, "op case K pool"),
      .v = up_op_alloc_filled(be, pool_n, d->pool_bound, seed, UP_STREAM_POOL_V, "op case V pool"),
      .n_blocks = pb->n_blocks, .block_tokens = bt, .kv_dim = pb->kv_dim};
  if (d->poison_unowned) poison_unowned_rows(be, pb);
  pb->batch = (up_attn_batch){
      .n_seqs = n_seqs, .n_tokens = pb->n_tokens,
      .cu_seqlens = up_op_upload_i32(be, pb->cu_seqlens, (size_t)n_seqs + 1, "op case offsets"),
      .kv_lens = up_op_upload_i32(be, pb->kv_lens, (size_t)n_seqs, "op case cache lengths"),
      .block_tables = up_op_upload_i32(be, pb->block_tables, table_n, "op case block tables"),
      .max_blocks_per_seq = pb->max_blocks_per_seq};
}

void up_op_paged_batch_free(up_backend *be, up_op_paged_batch *pb) {
  void *const buffers[] = {pb->qkv, pb->pool.k, pb->pool.v, (void *)pb->batch.cu_seqlens, (void *)pb->batch.kv_lens,
                           (void *)pb->batch.block_tables};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
    if (buffers[i]) be->ops->free(be, buffers[i]);
  free(pb->cu_seqlens);
  free(pb->kv_lens);
  free(pb->block_tables);
  free(pb->candidate);
  memset(pb, 0, sizeof *pb);
}

/* Host blocks for the listed backend sequences (each once): host_table[k *
 * max_blocks_per_seq + b] is the host block of block b of seqs[k]. */
static void copy_blocks(up_backend *be, const up_op_paged_batch *pb, const int32_t *seqs, int32_t n,
                        up_op_host_batch *hb, int32_t *host_table) {
  const int32_t bt = pb->block_tokens, maxb = pb->max_blocks_per_seq;
  const size_t block_n = (size_t)bt * (size_t)pb->kv_dim;
  int32_t n_blocks = 0; /* the blocks the tables name (none behind a window) */
  for (int32_t k = 0; k < n; ++k)
    for (int32_t b = 0; b * bt < pb->kv_lens[seqs[k]]; ++b)
      n_blocks += pb->block_tables[(int64_t)seqs[k] * maxb + b] >= 0;
  hb->pool = (up_kv_pool){.k = up_malloc_or_die(sizeof(float) * block_n * (size_t)(n_blocks ? n_blocks : 1), "K"),
                          .v = up_malloc_or_die(sizeof(float) * block_n * (size_t)(n_blocks ? n_blocks : 1), "V"),
                          .n_blocks = n_blocks, .block_tokens = bt, .kv_dim = pb->kv_dim};
  for (int32_t k = 0, next = 0; k < n; ++k)
    for (int32_t b = 0; b < maxb; ++b) {
      const int32_t src = pb->block_tables[(int64_t)seqs[k] * maxb + b];
      const int owned = b * bt < pb->kv_lens[seqs[k]] && src >= 0;
      host_table[(int64_t)k * maxb + b] = owned ? next : -1;
      if (!owned) continue;
      be->ops->download_f32(be, (float *)hb->pool.k + (size_t)next * block_n, pb->pool.k, (size_t)src * block_n,
                            block_n);
      be->ops->download_f32(be, (float *)hb->pool.v + (size_t)next * block_n, pb->pool.v, (size_t)src * block_n,
                            block_n);
      ++next;
    }
}

static void host_batch_alloc(up_op_host_batch *hb, int32_t n_seqs, int32_t maxb) {
  memset(hb, 0, sizeof *hb);
  hb->cu_seqlens = up_calloc_or_die((size_t)n_seqs + 1, sizeof(int32_t), "reference offsets");
  hb->kv_lens = up_calloc_or_die((size_t)n_seqs + 1, sizeof(int32_t), "reference cache lengths");
  hb->block_tables = up_calloc_or_die((size_t)n_seqs * (size_t)maxb + 1, sizeof(int32_t), "reference tables");
  hb->candidate = up_calloc_or_die((size_t)n_seqs + 1, 1, "reference candidates");
  hb->source_seq = up_calloc_or_die((size_t)n_seqs + 1, sizeof(int32_t), "reference sources");
  hb->source_first_row = up_calloc_or_die((size_t)n_seqs + 1, sizeof(int32_t), "reference source rows");
}

static void host_batch_finish(up_op_host_batch *hb, int32_t n_seqs, int32_t maxb) {
  hb->batch = (up_attn_batch){.n_seqs = n_seqs, .n_tokens = hb->cu_seqlens[n_seqs], .cu_seqlens = hb->cu_seqlens,
                              .kv_lens = hb->kv_lens, .block_tables = hb->block_tables, .max_blocks_per_seq = maxb};
}

void up_op_host_batch_of_sequences(up_backend *be, const up_op_paged_batch *pb, const int32_t *seqs, int32_t n,
                                   up_op_host_batch *hb) {
  const int32_t maxb = pb->max_blocks_per_seq;
  host_batch_alloc(hb, n, maxb);
  copy_blocks(be, pb, seqs, n, hb, hb->block_tables);
  for (int32_t k = 0; k < n; ++k) {
    const int32_t s = seqs[k];
    hb->cu_seqlens[k + 1] = hb->cu_seqlens[k] + (pb->cu_seqlens[s + 1] - pb->cu_seqlens[s]);
    hb->kv_lens[k] = pb->kv_lens[s];
    hb->candidate[k] = pb->candidate[s];
    hb->source_seq[k] = s;
    hb->source_first_row[k] = pb->cu_seqlens[s];
  }
  hb->qkv = up_malloc_or_die(sizeof(float) * (size_t)pb->qkv_dim * (size_t)(hb->cu_seqlens[n] + 1), "reference qkv");
  for (int32_t k = 0; k < n; ++k) {
    const int32_t s = seqs[k], rows = hb->cu_seqlens[k + 1] - hb->cu_seqlens[k];
    be->ops->download_f32(be, hb->qkv + (size_t)hb->cu_seqlens[k] * pb->qkv_dim, pb->qkv,
                          (size_t)pb->cu_seqlens[s] * pb->qkv_dim, (size_t)rows * pb->qkv_dim);
  }
  host_batch_finish(hb, n, maxb);
}

/* The sequence a backend row belongs to. */
static int32_t sequence_of_row(const up_op_paged_batch *pb, int64_t row) {
  int32_t lo = 0, hi = pb->n_seqs - 1;
  while (lo < hi) { /* the last s with cu_seqlens[s] <= row */
    const int32_t mid = (lo + hi + 1) / 2;
    if (pb->cu_seqlens[mid] <= row) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

void up_op_host_batch_of_rows(up_backend *be, const up_op_paged_batch *pb, const int64_t *rows, int32_t n,
                              up_op_host_batch *hb) {
  const int32_t maxb = pb->max_blocks_per_seq;
  host_batch_alloc(hb, n, maxb);
  /* The distinct sequences the rows come from, in order (rows are ascending). */
  int32_t *seqs = up_malloc_or_die(sizeof(int32_t) * (size_t)(n ? n : 1), "sampled sequences");
  int32_t *seq_slot = up_malloc_or_die(sizeof(int32_t) * (size_t)(n ? n : 1), "sampled row's sequence");
  int32_t n_seqs = 0;
  for (int32_t i = 0; i < n; ++i) {
    const int32_t s = sequence_of_row(pb, rows[i]);
    if (n_seqs == 0 || seqs[n_seqs - 1] != s) seqs[n_seqs++] = s;
    seq_slot[i] = n_seqs - 1;
  }
  int32_t *seq_tables = up_malloc_or_die(sizeof(int32_t) * (size_t)(n_seqs ? n_seqs : 1) * (size_t)maxb,
                                         "sampled sequences' tables");
  copy_blocks(be, pb, seqs, n_seqs, hb, seq_tables);
  hb->qkv = up_malloc_or_die(sizeof(float) * (size_t)pb->qkv_dim * (size_t)(n ? n : 1), "reference qkv rows");
  for (int32_t i = 0; i < n; ++i) {
    const int32_t s = seqs[seq_slot[i]];
    const int32_t t = (int32_t)(rows[i] - pb->cu_seqlens[s]);
    const int32_t prior = pb->kv_lens[s] - (pb->cu_seqlens[s + 1] - pb->cu_seqlens[s]);
    hb->cu_seqlens[i + 1] = i + 1;
    hb->kv_lens[i] = prior + t + 1;
    hb->candidate[i] = pb->candidate[s];
    hb->source_seq[i] = s;
    hb->source_first_row[i] = (int32_t)rows[i];
    memcpy(hb->block_tables + (int64_t)i * maxb, seq_tables + (int64_t)seq_slot[i] * maxb, sizeof(int32_t) * maxb);
    be->ops->download_f32(be, hb->qkv + (size_t)i * pb->qkv_dim, pb->qkv, (size_t)rows[i] * pb->qkv_dim,
                          (size_t)pb->qkv_dim);
  }
  free(seqs);
  free(seq_slot);
  free(seq_tables);
  host_batch_finish(hb, n, maxb);
}

void up_op_host_batch_of_compared(up_backend *be, const up_op_paged_batch *pb, const int64_t *rows, int32_t n,
                                  up_op_host_batch *hb) {
  if (n < pb->n_tokens) {
    up_op_host_batch_of_rows(be, pb, rows, n, hb);
    return;
  }
  int32_t *all = up_malloc_or_die(sizeof(int32_t) * (size_t)(pb->n_seqs + 1), "every sequence");
  for (int32_t s = 0; s < pb->n_seqs; ++s) all[s] = s;
  up_op_host_batch_of_sequences(be, pb, all, pb->n_seqs, hb);
  free(all);
}

void up_op_host_batch_free(up_op_host_batch *hb) {
  free(hb->qkv);
  free(hb->pool.k);
  free(hb->pool.v);
  free(hb->cu_seqlens);
  free(hb->kv_lens);
  free(hb->block_tables);
  free(hb->candidate);
  free(hb->source_seq);
  free(hb->source_first_row);
  memset(hb, 0, sizeof *hb);
}
