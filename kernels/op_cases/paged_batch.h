/* paged_batch.h — the inputs of the batch ops (kv_store, attention, selection): a packed
 * batch of sequences over a paged KV pool whose blocks are handed out in shuffled
 * order, as a pool that has served other requests would, drawn on the backend under
 * test; and the host copy of part of it that the CPU reference runs on. Streams and
 * bounds are fixed here so that --kernels times the same values on every run. */
#ifndef UP_OP_PAGED_BATCH_H
#define UP_OP_PAGED_BATCH_H

#include <stdint.h>

#include "kernels/op_cases/op_case.h"

typedef struct up_op_paged_batch {
  int32_t n_seqs, n_tokens;
  int32_t n_blocks, max_blocks_per_seq, block_tokens;
  int32_t kv_dim, qkv_dim; /* values per cache entry, per fused qkv row */
  int32_t *cu_seqlens;     /* host [n_seqs + 1] */
  int32_t *kv_lens;        /* host [n_seqs] */
  int32_t *block_tables;   /* host [n_seqs * max_blocks_per_seq]; -1 past a sequence's blocks, and (window > 0)
                              for the blocks wholly before the first entry its first row sees */
  uint8_t *candidate;      /* host [n_seqs] */
  void *qkv;               /* backend [n_tokens][qkv_dim] */
  up_kv_pool pool;         /* backend */
  up_attn_batch batch;     /* backend index arrays */
} up_op_paged_batch;

/* Rows and cached entries before them of sequence s of a case. */
int32_t up_op_batch_rows(const up_op_batch_dims *d, int32_t s);
int32_t up_op_batch_prior(const up_op_batch_dims *d, int32_t s);
/* The first cache entry the row at cache index `index` sees under a sliding window of
 * `window` entries (0: full causal, the first entry), as kernels/ops.h defines it. */
int32_t up_op_batch_window_start(int32_t index, int32_t window);

/* Draw the batch of d on be from seed. With d->window > 0 the blocks behind each
 * sequence's window are -1 in its table and absent from the pool, as the engine leaves
 * them, so a kernel that reads one fails or shows NaN (poison_unowned). */
void up_op_paged_batch_make(up_backend *be, const up_op_batch_dims *d, uint64_t seed, up_op_paged_batch *pb);
void up_op_paged_batch_free(up_backend *be, up_op_paged_batch *pb);

/* Part of a batch as host fp32 for the reference: its pool holds only the blocks of the
 * sequences it covers, renumbered from 0. */
typedef struct up_op_host_batch {
  float *qkv;                   /* [batch.n_tokens][qkv_dim] */
  up_kv_pool pool;
  int32_t *cu_seqlens, *kv_lens, *block_tables;
  uint8_t *candidate;
  up_attn_batch batch;          /* over the host arrays above */
  int32_t *source_seq;          /* each host sequence's index in the backend batch */
  int32_t *source_first_row;    /* the backend row of each host sequence's first row */
} up_op_host_batch;

/* Whole sequences seqs[0 .. n) with every row. */
void up_op_host_batch_of_sequences(up_backend *be, const up_op_paged_batch *pb, const int32_t *seqs, int32_t n,
                                   up_op_host_batch *hb);

/* Backend rows rows[0 .. n), each a one-row sequence over the entries its row attends
 * to (the first prior + t + 1 of its sequence): the same outputs as in the batch. */
void up_op_host_batch_of_rows(up_backend *be, const up_op_paged_batch *pb, const int64_t *rows, int32_t n,
                              up_op_host_batch *hb);

/* The compared rows rows[0 .. n) of a batch (ascending): the whole batch as it is where
 * they are all its rows, else each row on its own (up_op_host_batch_of_rows). */
void up_op_host_batch_of_compared(up_backend *be, const up_op_paged_batch *pb, const int64_t *rows, int32_t n,
                                  up_op_host_batch *hb);

void up_op_host_batch_free(up_op_host_batch *hb);

#endif
