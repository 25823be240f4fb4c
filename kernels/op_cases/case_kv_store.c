/* case_kv_store.c — the driver of kv_store: this step's keys and values written into a
 * pool of shuffled blocks at each row's slot (one sequence continuing a cache, one
 * starting empty, as the list chooses). Both pools start from the same random contents
 * and are compared whole, so a write to a wrong slot shows as well as a missing one. */
#include <stdio.h>
#include <stdlib.h>

#include "core/fatal.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/op_expected.h"
#include "kernels/op_cases/paged_batch.h"

typedef struct kv_store_inputs {
  up_op_paged_batch pb;
  int32_t *slots, *slots_host;
} kv_store_inputs;

static size_t pool_n(const kv_store_inputs *in) {
  return (size_t)in->pb.n_blocks * (size_t)in->pb.block_tokens * (size_t)in->pb.kv_dim;
}

static void *kv_store_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  kv_store_inputs *in = up_calloc_or_die(1, sizeof *in, "kv_store case");
  up_op_paged_batch *pb = &in->pb;
  up_op_paged_batch_make(be, &c->batch, seed, pb);
  in->slots_host = up_malloc_or_die(sizeof(int32_t) * (size_t)(pb->n_tokens ? pb->n_tokens : 1), "kv_store slots");
  for (int32_t s = 0; s < pb->n_seqs; ++s) {
    const int32_t rows = pb->cu_seqlens[s + 1] - pb->cu_seqlens[s], prior = pb->kv_lens[s] - rows;
    for (int32_t t = 0; t < rows; ++t) {
      const int32_t e = prior + t;
      const int32_t block = pb->block_tables[(int64_t)s * pb->max_blocks_per_seq + e / pb->block_tokens];
      in->slots_host[pb->cu_seqlens[s] + t] = block * pb->block_tokens + e % pb->block_tokens;
    }
  }
  in->slots = up_op_upload_i32(be, in->slots_host, (size_t)pb->n_tokens, "kv_store slots");
  return in;
}

static int64_t kv_store_run(up_backend *be, const up_op_case *c, void *inputs) {
  kv_store_inputs *in = inputs;
  be->ops->kv_store(be, &in->pb.pool, in->pb.qkv, in->slots, in->pb.n_tokens, &c->batch.shape);
  return 0;
}

/* values[0], values[1]: the K and V pools after the store. */
static void *kv_store_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  kv_store_inputs *in = inputs;
  const size_t n = pool_n(in);
  up_op_expected *e = up_op_expected_new(n, n, 0);
  be->ops->download_f32(be, e->values[0], in->pb.pool.k, 0, n);
  be->ops->download_f32(be, e->values[1], in->pb.pool.v, 0, n);
  float *qkv = up_op_download(be, in->pb.qkv, 0, (size_t)in->pb.n_tokens * (size_t)in->pb.qkv_dim, "kv_store rows");
  up_kv_pool pool = in->pb.pool;
  pool.k = e->values[0];
  pool.v = e->values[1];
  ref->ops->kv_store(ref, &pool, qkv, in->slots_host, in->pb.n_tokens, &c->batch.shape);
  free(qkv);
  return e;
}

static void kv_store_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                             up_op_check *check) {
  const kv_store_inputs *in = inputs;
  const up_op_expected *e = reference;
  const double k = up_op_error_of(be, in->pb.pool.k, 0, e->values[0], e->n[0]);
  const double v = up_op_error_of(be, in->pb.pool.v, 0, e->values[1], e->n[1]);
  check->error = k > v ? k : v;
  snprintf(check->detail, sizeof check->detail, "%d rows into %d shuffled blocks: K %.3e, V %.3e",
           (int)in->pb.n_tokens, (int)in->pb.n_blocks, k, v);
}

static void kv_store_destroy(up_backend *be, void *inputs) {
  kv_store_inputs *in = inputs;
  up_op_paged_batch_free(be, &in->pb);
  be->ops->free(be, in->slots);
  free(in->slots_host);
  free(in);
}

static double kv_store_work(const up_op_case *c) {
  double rows = 0.0;
  for (int32_t s = 0; s < c->batch.n_seqs; ++s) rows += c->batch.per_sequence ? c->batch.rows[s] : c->batch.rows_each;
  return rows * 2.0 * c->batch.shape.n_kv_heads * c->batch.shape.head_dim;
}

const up_op_driver up_op_kv_store = {{"kv_store"}, kv_store_make, kv_store_run, kv_store_reference,
                                     kv_store_compare, up_op_expected_free, kv_store_destroy, kv_store_work};
