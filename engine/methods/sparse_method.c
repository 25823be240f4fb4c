/* sparse_method.c — the shared frame of the sparse-attention baselines
 * (sparse_method.h): layer resolution, pattern buffers, and the attention hook that
 * decides per sequence between the method's pattern and dense attention. Owns no
 * method's rule: each method's estimation call comes in through its kind. */
#include "engine/methods/sparse_method.h"

#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

typedef struct sparse_buffer {
  void *ptr;
  int64_t count; /* int32 entries */
} sparse_buffer;

typedef struct sparse_state {
  up_backend *be; /* the backend the buffers came from */
  void *extra;    /* the method's own state (malloc'd), freed with this */
  int32_t *qblock_start_host;
  int32_t host_cap;
  sparse_buffer qblock_start, range_ptr, range_start, column_ptr, column_index;
} sparse_state;

void up_sparse_layers_resolve(up_sparse_layers *layers, const up_model_config *cfg) {
  memset(layers, 0, sizeof *layers);
  for (int32_t l = 0; l < cfg->n_layers; ++l) layers->full[l] = cfg->layer_kind[l] == UP_LAYER_FULL_ATTENTION;
  layers->sliding_window = cfg->sliding_window;
  layers->n_layers = cfg->n_layers;
  layers->n_heads = cfg->n_heads;
  layers->head_dim = cfg->head_dim;
}

bool up_sparse_method_supports(up_backend *be, const char *estimator, const up_sparse_layers *layers, char *why,
                               size_t why_size) {
  const char *missing = !be->ops->method_kernel(be, UP_SPARSE_ATTENTION_KERNEL) ? UP_SPARSE_ATTENTION_KERNEL
                        : !be->ops->method_kernel(be, estimator)                ? estimator
                                                                                 : NULL;
  if (missing) {
    snprintf(why, why_size, "the %s backend has no %s kernel yet (the sparse baselines run on the cpu backend)",
             be->ops->name, missing);
    return false;
  }
  /* the CUDA sparse attention kernel is built for these three (kernels/cuda/sparse/
   * sparse_attention.cu): refused here rather than at the first layer of a run */
  if (strcmp(be->ops->name, "cuda") == 0 && layers->head_dim != 64 && layers->head_dim != 128 &&
      layers->head_dim != 256) {
    snprintf(why, why_size, "the cuda backend's %s kernel takes head_dim 64, 128 or 256, the model has %d (use the "
             "cpu backend)", UP_SPARSE_ATTENTION_KERNEL, (int)layers->head_dim);
    return false;
  }
  return true;
}

bool up_sparse_method_init(up_method *m, up_backend *be, void *extra, char *err, size_t err_size) {
  sparse_state *st = calloc(1, sizeof(sparse_state));
  if (!st) {
    free(extra);
    return up_error(err, err_size, "out of memory for the sparse method's state");
  }
  st->be = be;
  st->extra = extra;
  m->state = st;
  return true;
}

static void release(up_backend *be, sparse_buffer *b) {
  if (b->ptr) be->ops->free(be, b->ptr);
  *b = (sparse_buffer){0};
}

/* Buffers stay with the instance between layers and steps, grown to the largest batch. */
static void *reserve(up_backend *be, sparse_buffer *b, int64_t count, const char *what) {
  if (count < 1) count = 1;
  if (b->count < count) {
    release(be, b);
    b->ptr = be->ops->alloc(be, sizeof(int32_t) * (size_t)count, what);
    b->count = count;
  }
  return b->ptr;
}

static sparse_state *state_of(const up_method *m) { return (sparse_state *)m->state; }

void *up_sparse_method_extra(const up_method *m) { return state_of(m)->extra; }

void up_sparse_method_destroy(up_method *m) {
  sparse_state *st = m->state;
  if (!st) return;
  free(st->qblock_start_host);
  release(st->be, &st->qblock_start);
  release(st->be, &st->range_ptr);
  release(st->be, &st->range_start);
  release(st->be, &st->column_ptr);
  release(st->be, &st->column_index);
  free(st->extra);
  free(st);
  m->state = NULL;
}

static double dense_pairs(const up_method_layer *at, int32_t s) {
  const double rows = at->cu_seqlens_host[s + 1] - at->cu_seqlens_host[s];
  const double before = at->kv_lens_host[s] - rows;
  return rows * before + rows * (rows + 1.0) / 2.0;
}

/* Dense attention of the whole layer: its pairs are its tiles, nothing estimated. */
static void dense_work(up_attn_work *work, double pairs) {
  work->computed = work->tiles = pairs;
  work->estimate_flops = 0.0;
}

void up_sparse_method_attention(const up_method *m, up_backend *be, const up_method_layer *at, void *out,
                                const up_sparse_method_kind *kind, const up_sparse_layers *layers,
                                up_attn_work *work) {
  const up_backend_ops *ops = be->ops;
  if (!layers->full[at->layer]) {
    ops->attention(be, out, at->qkv, at->pool, at->batch, at->shape, layers->sliding_window);
    dense_work(work, up_method_window_pairs(at, layers->sliding_window));
    return;
  }
  sparse_state *st = state_of(m);
  if (st->host_cap < at->n_seqs + 1) {
    free(st->qblock_start_host);
    st->host_cap = at->n_seqs + 1;
    st->qblock_start_host = up_malloc_or_die(sizeof(int32_t) * (size_t)st->host_cap, "sparse query-block starts");
  }
  /* Which sequences get a pattern, and the worst-case list sizes of those that do. */
  int64_t rows_total = 0, ranges_total = 0;
  double pairs = 0.0, estimate_flops = 0.0;
  st->qblock_start_host[0] = 0;
  for (int32_t s = 0; s < at->n_seqs; ++s) {
    const int32_t n = at->cu_seqlens_host[s + 1] - at->cu_seqlens_host[s];
    const bool sparse = at->is_prefill_host[s] && at->kv_lens_host[s] == n && n > 0 && kind->sparse_sequence(m, n);
    const int32_t nq = sparse ? (n + kind->block - 1) / kind->block : 0;
    st->qblock_start_host[s + 1] = st->qblock_start_host[s] + nq;
    rows_total += (int64_t)nq * at->shape->n_heads;
    ranges_total += ((int64_t)nq * (nq + 1) / 2 + 2 * (int64_t)nq) * at->shape->n_heads;
    if (!sparse) pairs += dense_pairs(at, s);
    if (sparse) estimate_flops += kind->estimate_flops(m, n, at->shape);
  }
  if (rows_total == 0) {
    ops->attention(be, out, at->qkv, at->pool, at->batch, at->shape, 0);
    dense_work(work, up_method_causal_pairs(at));
    return;
  }
  const int64_t columns_total = rows_total * kind->max_columns(m, at->layer);
  up_sparse_pattern pattern = {
      .n_seqs = at->n_seqs,
      .n_heads = at->shape->n_heads,
      .block_q = kind->block,
      .block_k = kind->block,
      .qblock_start_host = st->qblock_start_host,
      .qblock_start = reserve(be, &st->qblock_start, at->n_seqs + 1, "sparse query-block starts"),
      .range_ptr = reserve(be, &st->range_ptr, rows_total + 1, "sparse range offsets"),
      .range_start = reserve(be, &st->range_start, ranges_total, "sparse key ranges"),
      .column_ptr = reserve(be, &st->column_ptr, rows_total + 1, "sparse extra-key offsets"),
      .column_index = reserve(be, &st->column_index, columns_total, "sparse extra keys"),
      .range_capacity = ranges_total,
      .column_capacity = columns_total,
  };
  ops->upload_i32(be, (int32_t *)pattern.qblock_start, st->qblock_start_host, (size_t)at->n_seqs + 1);
  /* estimation time is the method's selection phase, beside the attention it saves */
  if (ops->phase_mark) ops->phase_mark(be, UP_PHASE_SELECTION);
  /* the estimator sums over heads; a layer's work counts pairs per row (method.h), so
   * the sparse sequences contribute the mean over heads */
  const double covered = kind->estimate(m, be, at, &pattern) / at->shape->n_heads;
  if (ops->phase_mark) ops->phase_mark(be, UP_PHASE_ATTENTION);
  up_sparse_attention_kernel(be)(be, out, at->qkv, at->pool, at->batch, at->shape, &pattern);
  /* whole tiles: block_q rows by each range's block_k keys, and by each extra key */
  const double tiles = (double)pattern.block_q *
                       ((double)pattern.block_k * (double)pattern.n_ranges + (double)pattern.n_columns) /
                       at->shape->n_heads;
  work->computed = pairs + covered;
  work->tiles = pairs + tiles;
  work->estimate_flops = estimate_flops;
}
