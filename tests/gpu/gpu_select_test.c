/* gpu_select_test.c — the CUDA uniprefill_select op beyond what gpu_ops_test checks
 * (there every selection case of the shared op-case list must keep the CPU's rows,
 * exactly, or differ only on a near tie):
 *   - block scores: for every selection case of the list, the GPU's fp32 block scores
 *     of the call against the CPU's (double) ones, and each scored sequence's scores
 *     adding up to what a softmax gives (one per scoring row and query head); p = 1
 *     hands back every row. The GPU has no token scores on its by-block path (block
 *     sizes a multiple of a warp's 32 or 16 keys), so block scores are what both paths
 *     share;
 *   - block sizes the list does not reach on the by-block path (its cases use 64, and
 *     48 / 1 by token): 32 (one warp per unit), 96 (three units per block), 320 (blocks
 *     across chunk boundaries), 512 (two chunks per block), 16 and 48 at head_dim 256
 *     (16-key warps): block scores as above and kept rows equal to the CPU's, a
 *     difference on a near tie of the CPU's block scores flagged, not counted;
 *   - ties: five blocks whose keys every scoring query sees alike (all other keys far
 *     below them, so their probabilities underflow to exactly 0 on both backends) score
 *     bitwise alike, and both backends keep the lower block indices first.
 * Inputs are drawn on the GPU (seed printed; UP_GPU_TEST_SEED repeats one) and read back
 * by the CPU. CTest runs it twice, the second time under UP_SELECT_PATH=by_token (the
 * two-pass path at every block, tests/gpu/select.cmake). Exits 77 without a GPU. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/uniprefill_select.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/selection/uniprefill_select.h"
#include "kernels/op_cases/case_selection.h"
#include "kernels/op_cases/op_check.h"
#include "launcher/kernels/op_case_list.h"
#include "tests/gpu/gpu_check.h"

static up_backend *cpu, *gpu;

/* CPU token scores of every scored sequence of the reference's batch (0 elsewhere). */
static double *cpu_token_scores(const up_op_host_batch *hb, const up_attn_shape *shape, const up_select_params *prm) {
  const int32_t stride = (shape->n_heads + 2 * shape->n_kv_heads) * shape->head_dim;
  double *scores = up_calloc_or_die((size_t)hb->batch.n_tokens + 1, sizeof(double), "cpu token scores");
  for (int32_t s = 0; s < hb->batch.n_seqs; ++s) {
    const int32_t first = hb->cu_seqlens[s], n = hb->cu_seqlens[s + 1] - first;
    if (!hb->candidate[s] || n <= prm->sink + prm->last_q) continue;
    up_select_token_scores(hb->qkv + (size_t)first * (size_t)stride, n, &hb->pool,
                           hb->block_tables + (size_t)s * (size_t)hb->batch.max_blocks_per_seq, shape, prm->last_q,
                           scores + first);
  }
  return scores;
}

/* Blocks of every sequence, one after another (the diagnostic's layout). */
static int32_t blocks_of_batch(const int32_t *cu_seqlens, int32_t n_seqs, int32_t block) {
  int32_t nb = 0;
  for (int32_t s = 0; s < n_seqs; ++s) nb += (cu_seqlens[s + 1] - cu_seqlens[s] + block - 1) / block;
  return nb;
}

/* The GPU's block scores against the CPU's token scores summed per block, both in
 * the diagnostic's layout. Tolerance: the GPU computes the same bf16 products in fp32
 * in another order, its exponentials with ex2.approx (2 ulp) and its sums in fp32; a
 * logit of L (log2 units) rounded at 2^-24 moves its probability by L x 2^-24 x ln 2
 * relative, a few 1e-6 at the |L| <= ~100 of these cases, so 1e-3 in the relative rms
 * leaves two orders of magnitude (the token scores of v1 and v2 met 2e-7), while any
 * wrong mask, offset, unit or block boundary moves whole probabilities (errors of 1e-2
 * and more). The per-sequence total is a second, CPU-free check: every scoring row's
 * softmax sums to 1, so a scored sequence's block scores add up to n_heads x last_q;
 * 1e-4 relative again leaves ~30x over the per-probability errors above, which
 * average out in the sum. The reference batch is the whole batch (selection cases
 * sample no sequences), so both sides share the offsets. */
static void check_block_scores(const up_op_case *c, uint64_t seed, bool compare_rows) {
  void *inputs = c->driver->make(gpu, c, seed);
  void *reference = c->driver->reference(gpu, c, inputs, cpu);
  const int64_t kept = c->driver->run(gpu, c, inputs);
  const up_op_host_batch *hb = up_op_selection_reference_batch(reference);
  const up_select_params *prm = &c->batch.select;
  const int32_t n = hb->batch.n_tokens, n_seqs = hb->batch.n_seqs, block = prm->block;
  double *token = cpu_token_scores(hb, &c->batch.shape, prm);
  const int32_t nb = blocks_of_batch(hb->cu_seqlens, n_seqs, block);
  double *want = up_calloc_or_die((size_t)nb + 1, sizeof(double), "cpu block scores");
  float *got = up_malloc_or_die(sizeof(float) * (size_t)(nb + 1), "gpu block scores");
  const up_op_paged_batch *pb = up_op_selection_batch(inputs);
  CHECK(pb->n_seqs == n_seqs && pb->n_tokens == n, "%.160s: the reference holds the whole batch", c->label);
  const int32_t got_n =
      pb->n_seqs == n_seqs ? up_cuda_uniprefill_select_block_scores(gpu, got, pb->cu_seqlens, n_seqs) : -1;
  CHECK(got_n == nb, "%.160s: the diagnostic hands back %d block scores (expected %d)", c->label, got_n, nb);
  double num = 0.0, den = 0.0, worst_total = 0.0;
  int32_t bad = got_n == nb ? 0 : 1, worst_seq = -1, at = 0;
  for (int32_t s = 0; s < n_seqs && got_n == nb; ++s) {
    const int32_t first = hb->cu_seqlens[s], rows = hb->cu_seqlens[s + 1] - first;
    const int32_t seq_blocks = (rows + block - 1) / block;
    double total = 0.0;
    for (int32_t b = 0; b < seq_blocks; ++b, ++at) {
      const int32_t end = (b + 1) * block < rows ? (b + 1) * block : rows;
      for (int32_t t = b * block; t < end; ++t) want[at] += token[first + t];
      if (!isfinite(got[at]) || got[at] < 0.0f) ++bad;
      const double d = (double)got[at] - want[at];
      num += d * d;
      den += want[at] * want[at];
      total += got[at];
    }
    if (!hb->candidate[s] || rows <= prm->sink + prm->last_q) continue;
    const double softmax_rows = (double)c->batch.shape.n_heads * prm->last_q;
    const double total_err = fabs(total - softmax_rows) / softmax_rows;
    if (total_err > worst_total || worst_seq < 0) {
      worst_total = total_err;
      worst_seq = s;
    }
  }
  const double err = bad ? INFINITY : (den > 0.0 ? sqrt(num / den) : sqrt(num));
  CHECK_REL_ERR(err, 1e-3, "%.160s: block scores vs CPU (%d non-finite or negative)", c->label, bad);
  if (worst_seq >= 0)
    CHECK_REL_ERR(worst_total, 1e-4, "%.140s: block scores of sequence %d add up to n_heads x last_q", c->label,
                  worst_seq);
  if (prm->top_p >= 1.0f && prm->keep_fraction <= 0.0f)
    CHECK(kept == n, "%s: p = 1 keeps all %d rows on the GPU (kept %lld)", c->label, n, (long long)kept);
  if (compare_rows) {
    up_op_check check = {0};
    c->driver->compare(gpu, c, inputs, reference, &check);
    if (check.error != 0.0 && check.near_tie)
      printf("FLAG %s: kept rows differ on a near tie of the CPU's block scores, not counted (%s)\n", c->label,
             check.detail);
    else
      CHECK(check.error == 0.0, "%s: kept rows equal to the CPU's (%s)", c->label, check.detail);
  }
  free(token);
  free(want);
  free(got);
  c->driver->free_reference(reference);
  c->driver->destroy(gpu, inputs);
}

/* The ties case: 1580 rows (25 blocks of 64, the last 44 long) and a decode row; every
 * query head has the same query and every kv head the same keys, so the GPU's
 * partials of the hot blocks are bitwise alike, and so are its fixed-order sums over
 * them (block 64 takes the by-block path). */
static void run_ties_case(uint64_t seed) {
  enum { HD = 128, N = 1580, LAST_Q = 128 };
  const int32_t hot[5] = {4, 7, 10, 13, 16};
  up_op_case c = {.driver = &up_op_selection, .label = "ties"};
  c.batch = (up_op_batch_dims){.shape = {4, 2, HD, 1.0f / sqrtf((float)HD)}, .block_tokens = 16, .n_seqs = 2,
                               .per_sequence = true, .rows = {N, 1}, .prior = {0, 20}, .candidate = {1, 0},
                               .query_bound = 1.0f, .qkv_bound = 1.0f, .pool_bound = 1.0f, .spare_blocks = true};
  void *inputs = c.driver->make(gpu, &c, seed);
  up_op_paged_batch *pb = up_op_selection_batch(inputs);
  const int32_t kv_dim = pb->kv_dim, q_cols = c.batch.shape.n_heads * HD;
  float *row = up_malloc_or_die(sizeof(float) * (size_t)pb->qkv_dim, "constructed row");
  for (int32_t e = 0; e < N; ++e) {
    int is_hot = 0;
    for (int i = 0; i < 5; ++i) is_hot |= e / 64 == hot[i];
    for (int32_t d = 0; d < kv_dim; ++d) row[d] = d % HD == 0 ? (is_hot ? 128.0f : -128.0f) : 0.0f;
    const int64_t slot = (int64_t)pb->block_tables[e / pb->block_tokens] * pb->block_tokens + e % pb->block_tokens;
    gpu->ops->upload_f32(gpu, pb->pool.k, (size_t)(slot * kv_dim), row, (size_t)kv_dim);
  }
  for (int32_t col = 0; col < q_cols; ++col) row[col] = col % HD == 0 ? 64.0f : 0.0f;
  for (int32_t t = N - LAST_Q; t < N; ++t)
    gpu->ops->upload_f32(gpu, pb->qkv, (size_t)t * (size_t)pb->qkv_dim, row, (size_t)q_cols);
  free(row);

  /* (params, blocks kept by choice): p = 0.5 keeps three of the five equal blocks; the
   * budgets 2 and 9 of 25 blocks keep the lowest-index hot blocks, then the zero-score
   * blocks from index 0 up. */
  const struct {
    up_select_params prm;
    int32_t n_kept;
    int32_t kept[9];
  } expect[] = {
      {{.top_p = 0.5f, .block = 64, .sink = 128, .last_q = LAST_Q}, 3, {4, 7, 10}},
      {{.top_p = 0.99f, .keep_fraction = 0.08f, .block = 64, .sink = 128, .last_q = LAST_Q}, 2, {4, 7}},
      {{.top_p = 0.99f, .keep_fraction = 0.36f, .block = 64, .sink = 128, .last_q = LAST_Q}, 9,
       {4, 7, 10, 13, 16, 0, 1, 2, 3}},
  };
  for (size_t k = 0; k < sizeof expect / sizeof expect[0]; ++k) {
    c.batch.select = expect[k].prm;
    snprintf(c.label, sizeof c.label, "ties, %s %.2f", expect[k].prm.keep_fraction > 0.0f ? "keep" : "top-p",
             (double)(expect[k].prm.keep_fraction > 0.0f ? expect[k].prm.keep_fraction : expect[k].prm.top_p));
    void *reference = c.driver->reference(gpu, &c, inputs, cpu);
    if (k == 0) {
      double *scores = cpu_token_scores(up_op_selection_reference_batch(reference), &c.batch.shape, &c.batch.select);
      double hot_score[5];
      for (int i = 0; i < 5; ++i) {
        hot_score[i] = 0.0;
        for (int32_t t = hot[i] * 64; t < hot[i] * 64 + 64; ++t) hot_score[i] += scores[t];
      }
      CHECK(hot_score[0] > 0.0 && hot_score[0] == hot_score[1] && hot_score[0] == hot_score[4],
            "ties: the five hot blocks score exactly alike on the CPU (%.17g)", hot_score[0]);
      free(scores);
    }
    c.driver->run(gpu, &c, inputs);
    up_op_check check = {0};
    c.driver->compare(gpu, &c, inputs, reference, &check);
    CHECK(check.error == 0.0, "%s: both backends keep the same rows (%s)", c.label, check.detail);
    int32_t kept = 0;
    int32_t *got = up_op_selection_kept_rows(gpu, inputs, &kept);
    int32_t want = 0, wrong = 0;
    for (int32_t t = 0; t < pb->n_tokens; ++t) { /* sinks, the chosen blocks, the last queries, the decode row */
      int keep = t >= N || t < 128 || t >= N - LAST_Q;
      for (int32_t i = 0; i < expect[k].n_kept; ++i) keep |= t < N && t / 64 == expect[k].kept[i];
      if (!keep) continue;
      if (want >= kept || got[want] != t) ++wrong;
      ++want;
    }
    CHECK(kept == want && wrong == 0, "%s: GPU keeps the lower-index blocks among equal scores (%d rows, expected %d, "
          "%d misplaced)", c.label, kept, want, wrong);
    free(got);
    c.driver->free_reference(reference);
  }
  c.driver->destroy(gpu, inputs);
}

/* The first listed selection case at each head_dim again with other block sizes (the
 * list's kept rows are gpu_ops_test's; these compare them here). */
static void check_block_variants(const up_op_case *cases, int32_t n, uint64_t seed) {
  const struct {
    int32_t head_dim;
    int32_t blocks[4];
  } variants[] = {{128, {32, 96, 320, 512}}, {64, {32}}, {256, {16, 48}}};
  for (size_t v = 0; v < sizeof variants / sizeof variants[0]; ++v) {
    const up_op_case *base = NULL;
    for (int32_t i = 0; i < n && !base; ++i)
      if (cases[i].driver == &up_op_selection && cases[i].batch.shape.head_dim == variants[v].head_dim)
        base = &cases[i];
    CHECK(base != NULL, "the case list has a selection case at head_dim %d", variants[v].head_dim);
    if (!base) continue;
    for (int k = 0; k < 4 && variants[v].blocks[k] > 0; ++k) {
      up_op_case c = *base;
      c.batch.select.block = variants[v].blocks[k];
      snprintf(c.label, sizeof c.label, "selection hd%d block %d (variant of the list)", variants[v].head_dim,
               variants[v].blocks[k]);
      check_block_scores(&c, seed + 131u * v + (uint64_t)k, true);
    }
  }
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  gpu = gpu_check_cuda_backend();
  cpu = up_cpu_backend_create(0);
  const uint64_t seed = gpu_check_seed("gpu_select_test", gpu);

  run_ties_case(seed);
  up_op_case *cases = NULL;
  const int32_t n = up_op_case_list(&cases);
  for (int32_t i = 0; i < n; ++i)
    if (cases[i].driver == &up_op_selection) check_block_scores(&cases[i], seed + 1000003u * (uint64_t)i, false);
  check_block_variants(cases, n, seed + 7777u);
  free(cases);

  cpu->ops->destroy(cpu);
  gpu->ops->destroy(gpu);
  return gpu_check_finish();
}
