/* uniprefill_tp.c — UniPrefill's selection on a tensor-parallel group, so that every
 * rank keeps the same rows (../shared/PARALLEL.md 3.5): each rank scores the blocks
 * with its own query heads (the backend's per-head kernel, fp32), the group
 * all-gathers those scores into global head order, and every rank sums them over the
 * heads in ascending order (fp64) and runs the same block choice and token mask (the
 * CPU reference's, kernels/cpu/uniprefill_select.h) on the host. The kept rows and the
 * new offsets come from that one mask; a 64-bit hash of them is compared across the
 * group (every tp_check_every steps) and a mismatch is fatal, naming layer and step.
 * The score buffers live as long as the method instance (up_uniprefill_tp_buffers),
 * grown to the largest layer seen, so a forward allocates nothing per drop layer.
 * Owns nothing of the whole-model selection (uniprefill.c calls the kernel there). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/methods/uniprefill.h"
#include "kernels/cpu/uniprefill_select.h"

/* The rank whose partial scores the next selections perturb by one ulp (-1: none). */
static int32_t g_fault_rank = -1;

void up_uniprefill_tp_inject_ulp(int32_t rank) { g_fault_rank = rank; }

struct up_uniprefill_tp_buffers {
  up_backend *be;           /* owns the backend buffers */
  float *local, *gathered;  /* backend: this rank's per-head scores, the group's */
  float *host;              /* the group's, on the host */
  double *block_scores;     /* host: summed over the heads */
  size_t local_bytes, gathered_bytes, host_bytes, block_score_bytes; /* capacities */
};

up_uniprefill_tp_buffers *up_uniprefill_tp_buffers_create(up_backend *be) {
  up_uniprefill_tp_buffers *b = up_calloc_or_die(1, sizeof *b, "UniPrefill group selection buffers");
  b->be = be;
  return b;
}

void up_uniprefill_tp_buffers_destroy(up_uniprefill_tp_buffers *b) {
  if (!b) return;
  if (b->local) b->be->ops->free(b->be, b->local);
  if (b->gathered) b->be->ops->free(b->be, b->gathered);
  free(b->host);
  free(b->block_scores);
  free(b);
}

/* A backend buffer of at least `bytes`; the old contents are not kept (every call
 * writes what it reads). */
static void *grow_backend(up_backend *be, void *buffer, size_t *capacity, size_t bytes, const char *what) {
  if (bytes <= *capacity) return buffer;
  if (buffer) be->ops->free(be, buffer);
  *capacity = bytes;
  return be->ops->alloc(be, bytes, what);
}

static void *grow_host(void *buffer, size_t *capacity, size_t bytes, const char *what) {
  if (bytes <= *capacity) return buffer;
  free(buffer);
  *capacity = bytes;
  return up_malloc_or_die(bytes, what);
}

/* FNV-1a over a run of int32 values, continuing from h. */
static uint64_t hash_i32(uint64_t h, const int32_t *v, int64_t n) {
  const unsigned char *bytes = (const unsigned char *)v;
  for (int64_t i = 0; i < n * (int64_t)sizeof(int32_t); ++i) h = (h ^ bytes[i]) * 0x100000001b3ull;
  return h;
}

/* One ulp more on the first of this rank's scores (the fault-injection test). */
static void perturb_first_score(up_backend *be, float *scores) {
  float first;
  be->ops->download_bytes(be, &first, scores, sizeof first);
  first = nextafterf(first, INFINITY);
  be->ops->upload_bytes(be, scores, &first, sizeof first);
}

/* Every sequence's blocks in the concatenated score rows: a candidate's
 * ceil(n / block), nobody else's. Returns the total. */
static int32_t block_offsets(const up_method_layer *at, const up_select_params *params, int32_t *offsets) {
  offsets[0] = 0;
  for (int32_t s = 0; s < at->n_seqs; ++s) {
    const int32_t n = at->cu_seqlens_host[s + 1] - at->cu_seqlens_host[s];
    const bool candidate = at->is_prefill_host[s] && n > params->sink + params->last_q;
    UP_ASSERT(!candidate || at->kv_lens_host[s] == n,
              "selection needs a whole-prompt prefill: sequence %d has %d cached entries for %d rows", (int)s,
              (int)at->kv_lens_host[s], (int)n);
    offsets[s + 1] = offsets[s] + (candidate ? (n + params->block - 1) / params->block : 0);
  }
  return offsets[at->n_seqs];
}

/* The block scores of the whole group: sum over global heads, ascending, in fp64. */
static void sum_heads(const float *gathered, int32_t n_heads, int32_t total, double *block_scores) {
  for (int32_t b = 0; b < total; ++b) {
    double sum = 0.0;
    for (int32_t h = 0; h < n_heads; ++h) sum += (double)gathered[(size_t)h * total + b];
    block_scores[b] = sum;
  }
}

/* Kept rows of every sequence from the group's block scores; returns the count. */
static int32_t choose_rows(const up_method_layer *at, const up_select_params *params, const int32_t *offsets,
                           const double *block_scores, int32_t *keep_rows_host, int32_t *new_cu_seqlens_host) {
  int32_t max_rows = 1;
  for (int32_t s = 0; s < at->n_seqs; ++s) {
    const int32_t n = at->cu_seqlens_host[s + 1] - at->cu_seqlens_host[s];
    max_rows = n > max_rows ? n : max_rows;
  }
  uint8_t *keep_block = up_malloc_or_die((size_t)max_rows, "block mask");
  uint8_t *keep_token = up_malloc_or_die((size_t)max_rows, "token mask");
  int32_t out = 0;
  new_cu_seqlens_host[0] = 0;
  for (int32_t s = 0; s < at->n_seqs; ++s) {
    const int32_t first = at->cu_seqlens_host[s], n = at->cu_seqlens_host[s + 1] - first;
    const int32_t n_blocks = offsets[s + 1] - offsets[s];
    if (n_blocks == 0) {
      for (int32_t t = 0; t < n; ++t) keep_rows_host[out++] = first + t;
    } else {
      up_select_blocks(block_scores + offsets[s], n_blocks, params->top_p, params->keep_fraction, keep_block);
      out = up_select_append_rows(keep_block, first, n, params, keep_token, keep_rows_host, out);
    }
    new_cu_seqlens_host[s + 1] = out;
  }
  free(keep_block);
  free(keep_token);
  return out;
}

int32_t up_uniprefill_select_tp(up_uniprefill_tp_buffers *buffers, up_backend *be, const up_method_layer *at,
                                const up_attn_shape *scoring, const up_select_params *params, int32_t *keep_rows,
                                int32_t *new_cu_seqlens_host) {
  UP_ASSERT(buffers->be == be, "UniPrefill's group selection buffers belong to another backend");
  up_tp_comm *tp = at->tp;
  const up_uniprefill_head_scores_fn head_scores = up_uniprefill_head_scores_kernel(be);
  UP_ASSERT(head_scores, "the %s backend has no %s kernel", be->ops->name, UP_UNIPREFILL_HEAD_SCORES_KERNEL);
  int32_t *offsets = up_malloc_or_die(sizeof(int32_t) * (size_t)(at->n_seqs + 1), "block offsets");
  const int32_t total = block_offsets(at, params, offsets);
  const int32_t n_rows = at->cu_seqlens_host[at->n_seqs];
  int32_t *keep_host = up_malloc_or_die(sizeof(int32_t) * (size_t)(n_rows > 0 ? n_rows : 1), "kept rows");
  const int32_t local_heads = scoring->n_heads, n_heads = local_heads * tp->size;
  /* Every rank has the same candidates (the step is the group's), so all of them skip
   * the collective together when there is nothing to score. */
  double *block_scores = buffers->block_scores =
      grow_host(buffers->block_scores, &buffers->block_score_bytes, sizeof(double) * (size_t)(total > 0 ? total : 1),
                "block scores");
  if (total > 0) {
    const size_t local_bytes = sizeof(float) * (size_t)local_heads * (size_t)total;
    const size_t gathered_bytes = local_bytes * (size_t)tp->size;
    float *local = buffers->local =
        grow_backend(be, buffers->local, &buffers->local_bytes, local_bytes, "per-head block scores");
    float *gathered = buffers->gathered =
        grow_backend(be, buffers->gathered, &buffers->gathered_bytes, gathered_bytes, "gathered block scores");
    head_scores(be, local, at->qkv, at->pool, at->batch, scoring, offsets, params);
    if (g_fault_rank == tp->rank) perturb_first_score(be, local);
    char what[96];
    snprintf(what, sizeof what, "layer %d UniPrefill block scores all-gather", (int)at->layer);
    tp->ops->all_gather(tp, local, gathered, (size_t)local_heads * total, UP_COMM_F32, what);
    /* Device transports queue the gather on the backend's stream: wait through the
     * communicator, which names a failed or hung collective, not through the copy. */
    tp->ops->synchronize(tp, what);
    float *host = buffers->host =
        grow_host(buffers->host, &buffers->host_bytes, gathered_bytes, "gathered block scores (host)");
    be->ops->download_bytes(be, host, gathered, gathered_bytes);
    sum_heads(host, n_heads, total, block_scores);
  }
  const int32_t kept = choose_rows(at, params, offsets, block_scores, keep_host, new_cu_seqlens_host);
  if (at->tp_check_every > 0 && at->step % at->tp_check_every == 0) {
    const uint64_t h = hash_i32(hash_i32(0xcbf29ce484222325ull, keep_host, kept), new_cu_seqlens_host,
                                at->n_seqs + 1);
    char what[96];
    snprintf(what, sizeof what, "layer %d UniPrefill mask hash", (int)at->layer);
    if (!tp->ops->all_equal_u64(tp, h, what))
      UP_FATAL("UniPrefill's kept rows differ across the tensor-parallel group at layer %d of step %lld (rank %d "
               "of %d kept %d rows)", (int)at->layer, (long long)at->step, tp->rank, tp->size, (int)kept);
  }
  be->ops->upload_i32(be, keep_rows, keep_host, (size_t)kept);
  free(keep_host);
  free(offsets);
  return kept;
}
