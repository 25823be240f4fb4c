/* gpu_attention_test.c — checks up_cuda_attention against the CPU backend's fp32
 * attention on the same bf16-rounded inputs: head_dim 64/128/256, GQA 32/8, 8/8 and
 * 4/1, packed batches of mixed lengths over shuffled paged blocks (block_tokens 16, 64
 * and a non-power-of-two 24), prior cached entries, pure decode, and a long sequence
 * compared on sampled rows. Fresh random inputs every run (seed printed; UP_TEST_SEED
 * repeats one). Each case runs twice on the GPU and must give identical bits: the kernels
 * have no atomics, so a difference means a race. A case that fails, or lands above the
 * bf16 noise level, prints a per-sequence breakdown ("#" lines) that says which sequence,
 * row and head carry the error. Plain C with its own harness: exit 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/attention/cuda_attention.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "tests/gpu/gpu_check.h"
#include "tests/gpu/attn_inputs.h"

#define MAX_ERR 2e-2
/* Above this a passing case still prints its breakdown: the bf16 rounding of the output
 * (and of P in prefill) gives 1.5e-3 to 2.5e-3, so more means something real. */
#define SUSPECT_ERR 5e-3

typedef struct attn_case {
  const char *name;
  int32_t head_dim, n_heads, n_kv_heads, block_tokens;
  int32_t n_seqs;
  int32_t rows[8];
  int32_t prior[8];
  int32_t sampled_rows; /* > 0: one sequence, compare this many of its rows */
  int variant;          /* head_dim-128 prefill kernel; != 0 goes through the internal entry points */
} attn_case;

static const attn_case CASES[] = {
    {"hd128 gqa 32/8 mixed prefill bt16", 128, 32, 8, 16, 6, {1, 17, 64, 100, 1000, 4100}, {0}, 0, 0},
    {"hd64 8/8 mixed chunked bt64", 64, 8, 8, 64, 6, {1, 17, 64, 100, 1000, 4100}, {0, 5, 0, 300, 77, 0}, 0, 0},
    {"hd256 gqa 4/1 mixed chunked bt16", 256, 4, 1, 16, 6, {1, 17, 64, 100, 1000, 4100}, {3000, 0, 40, 0, 0, 1}, 0, 0},
    {"hd128 gqa 32/8 few rows over caches bt24", 128, 32, 8, 24, 6, {2, 3, 4, 5, 6, 130},
     {100, 1000, 0, 17, 4000, 50}, 0, 0},
    {"hd128 gqa 32/8 pure decode bt16", 128, 32, 8, 16, 8, {1, 1, 1, 1, 1, 1, 1, 1},
     {99, 256, 999, 4096, 19999, 0, 32, 6999}, 0, 0},
    {"hd64 8/8 pure decode bt64", 64, 8, 8, 64, 4, {1, 1, 1, 1}, {4999, 63, 64, 11999}, 0, 0},
    {"hd256 gqa 4/1 decode bt16", 256, 4, 1, 16, 3, {1, 4, 1}, {2999, 100, 9998}, 0, 0},
    /* The head_dim-128 mma.sync kernels (the default on Hopper is the wgmma one). */
    {"hd128 gqa 32/8 mixed chunked bt64, mma.sync 16 rows/warp, 32 keys", 128, 32, 8, 64, 6,
     {1, 17, 64, 100, 1000, 4100}, {0, 5, 0, 300, 77, 0}, 0, 1},
    {"hd128 gqa 32/8 mixed chunked bt64, mma.sync 256-row CTAs, 64 keys", 128, 32, 8, 64, 6,
     {1, 17, 64, 100, 1000, 4100}, {0, 5, 0, 300, 77, 0}, 0, 2},
    {"hd128 gqa 32/8 mixed prefill bt16, mma.sync 256-row CTAs, 64 keys", 128, 32, 8, 16, 6,
     {1, 17, 64, 100, 1000, 4100}, {0}, 0, 2},
    {"hd128 gqa 32/8 long 16384 rows bt64 (64 sampled rows)", 128, 32, 8, 64, 1, {16384}, {0}, 64, 0},
    /* Decode over tiny caches: most key splits are empty, and several queries per CTA
     * (group x rows >= 2) put the partials of one split in more than one warp. */
    {"hd128 gqa 32/8 decode over tiny caches bt16", 128, 32, 8, 16, 7, {1, 2, 3, 4, 1, 4, 2},
     {0, 0, 0, 0, 1, 60, 3}, 0, 0},
    {"hd64 8/8 multi-row decode over tiny caches bt64", 64, 8, 8, 64, 5, {2, 3, 4, 4, 2}, {0, 1, 0, 70, 5}, 0, 0},
    /* The Hopper kernels by name, last: a fault there leaves every case above reported (on
     * a Hopper GPU the default cases above run them too: the TMA kernel where the page size
     * divides 128, the cp.async one for bt24). */
    {"hd128 gqa 32/8 mixed chunked bt64, sm90 wgmma cp.async", 128, 32, 8, 64, 6, {1, 17, 64, 100, 1000, 4100},
     {0, 5, 0, 300, 77, 0}, 0, 3},
    {"hd128 gqa 32/8 mixed chunked bt16, sm90 TMA", 128, 32, 8, 16, 6, {1, 17, 64, 100, 1000, 4100},
     {0, 5, 0, 300, 77, 130}, 0, 4},
    {"hd128 gqa 32/8 mixed chunked bt8, sm90 TMA", 128, 32, 8, 8, 6, {5, 130, 64, 255, 1000, 2049},
     {3, 0, 64, 1, 77, 0}, 0, 4},
    {"hd128 gqa 32/8 mixed chunked bt128, sm90 TMA", 128, 32, 8, 128, 6, {1, 129, 64, 127, 1000, 4100},
     {0, 1, 128, 300, 0, 5}, 0, 4},
    {"hd128 gqa 32/8 mixed chunked bt16, sm90 TMA no ping-pong", 128, 32, 8, 16, 6, {1, 17, 64, 100, 1000, 4100},
     {0, 5, 0, 300, 77, 130}, 0, 5},
    {"hd128 gqa 32/8 mixed chunked bt32, sm90 TMA three stages", 128, 32, 8, 32, 6, {1, 17, 64, 100, 1000, 4100},
     {0, 5, 0, 300, 77, 130}, 0, 6},
    {"hd128 gqa 32/8 long 16384 rows bt16, sm90 TMA (64 sampled rows)", 128, 32, 8, 16, 1, {16384}, {0}, 64, 4},
};

/* Rows of the long case the CPU recomputes: the ends, both sides of tile edges, random. */
static void pick_rows(uint64_t *rng, int32_t n_rows, int32_t n_pick, int32_t *picked) {
  const int32_t fixed[] = {0, 1, 15, 16, 31, 32, 63, 64, 127, 128, 129, 255, 4095, 4096, n_rows - 2, n_rows - 1};
  int32_t k = 0;
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] && k < n_pick; ++i)
    if (fixed[i] >= 0 && fixed[i] < n_rows) picked[k++] = fixed[i];
  while (k < n_pick) picked[k++] = (int32_t)(attn_rng_next(rng) % (uint64_t)n_rows);
}

/* ||gpu - ref|| / ||ref|| over n rows of width values; non-finite GPU values counted apart. */
static double rel_error(const float *gpu, const float *ref, size_t n, size_t *bad) {
  double num = 0.0, den = 0.0;
  *bad = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!isfinite(gpu[i])) {
      ++*bad;
      continue;
    }
    const double d = (double)gpu[i] - (double)ref[i];
    num += d * d;
    den += (double)ref[i] * (double)ref[i];
  }
  return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

/* Where the error of a case sits: one "#" line per sequence (rows, prior, which path
 * took it, relative error over its rows, the worst row by relative error with its worst
 * head, rows over the limit and where they start and end), then how the (row, head)
 * pairs over the limit spread over the members of a GQA group and over the 16-row
 * slots of a 128-row tile (the prefill kernels' warps). For a sampled case the one
 * sequence's compared rows stand in for all of them. row_of[i] is compared row i's
 * index within its sequence. */
typedef struct attn_acc {
  double num, den;
} attn_acc;

static double acc_rel(attn_acc a) { return a.den > 0.0 ? sqrt(a.num / a.den) : sqrt(a.num); }

static attn_acc acc_span(const float *gpu, const float *ref, size_t n, size_t *bad) {
  attn_acc a = {0.0, 0.0};
  for (size_t i = 0; i < n; ++i) {
    if (!isfinite(gpu[i])) {
      ++*bad;
      continue;
    }
    const double d = (double)gpu[i] - (double)ref[i];
    a.num += d * d;
    a.den += (double)ref[i] * (double)ref[i];
  }
  return a;
}

static void print_breakdown(const attn_case *c, const attn_problem *p, const int32_t *cmp_rows, int32_t n_cmp,
                            const float *gpu, const float *ref) {
  const int32_t hd = c->head_dim, n_heads = c->n_heads, group = c->n_heads / c->n_kv_heads;
  const int64_t stride = p->out_stride;
  const int32_t n_parts = c->sampled_rows > 0 ? 1 : p->n_seqs;
  int64_t bad_by_member[64] = {0}, bad_by_slot[8] = {0};
  printf("# %s: per sequence (rows, prior, path, rel error, worst row t of the sequence with its "
         "error and worst head, rows over %.0e)\n",
         c->name, MAX_ERR);
  for (int32_t s = 0; s < n_parts; ++s) {
    const int32_t n_rows = p->cu_seqlens[s + 1] - p->cu_seqlens[s];
    const int32_t prior = p->kv_lens[s] - n_rows;
    /* Compared rows of this sequence: all of them, or the sampled ones. */
    const int32_t first = c->sampled_rows > 0 ? 0 : p->cu_seqlens[s];
    const int32_t count = c->sampled_rows > 0 ? n_cmp : n_rows;
    attn_acc seq = {0.0, 0.0};
    size_t nonfinite = 0;
    double worst = -1.0, worst_head_err = 0.0;
    int32_t worst_t = -1, worst_head = -1, bad_rows = 0, first_bad = -1, last_bad = -1;
    for (int32_t i = first; i < first + count; ++i) {
      const int32_t t = c->sampled_rows > 0 ? cmp_rows[i] : i - first;
      size_t row_nonfinite = 0;
      double row_worst_head_err = -1.0;
      int32_t row_worst_head = -1;
      attn_acc row = {0.0, 0.0};
      for (int32_t h = 0; h < n_heads; ++h) {
        size_t head_nonfinite = 0;
        const attn_acc a = acc_span(gpu + (int64_t)i * stride + (int64_t)h * hd, ref + (int64_t)i * stride + (int64_t)h * hd,
                                    (size_t)hd, &head_nonfinite);
        const double e = head_nonfinite ? INFINITY : acc_rel(a);
        if (e > row_worst_head_err) {
          row_worst_head_err = e;
          row_worst_head = h;
        }
        if (!(e < MAX_ERR)) {
          ++bad_by_member[h % group < 64 ? h % group : 63];
          ++bad_by_slot[(t % 128) / 16];
        }
        row.num += a.num;
        row.den += a.den;
        row_nonfinite += head_nonfinite;
      }
      seq.num += row.num;
      seq.den += row.den;
      nonfinite += row_nonfinite;
      const double e = row_nonfinite ? INFINITY : acc_rel(row);
      if (e > worst) {
        worst = e;
        worst_t = t;
        worst_head = row_worst_head;
        worst_head_err = row_worst_head_err;
      }
      if (!(e < MAX_ERR)) {
        ++bad_rows;
        if (first_bad < 0) first_bad = t;
        last_bad = t;
      }
    }
    printf("#   seq %d: %d rows, prior %d, %s: rel error %.3e (%zu non-finite); worst row t=%d (cache index %d) "
           "%.3e, its worst head %d (member %d of the group) %.3e; %d rows over, t %d..%d\n",
           s, n_rows, prior, n_rows <= UP_ATTN_DECODE_MAX_ROWS ? "decode" : "prefill", acc_rel(seq), nonfinite,
           worst_t, prior + worst_t, worst, worst_head, worst_head >= 0 ? worst_head % group : -1, worst_head_err,
           bad_rows, first_bad, last_bad);
  }
  printf("#   (row, head) pairs over the limit by group member:");
  for (int32_t g = 0; g < group && g < 64; ++g) printf(" %lld", (long long)bad_by_member[g]);
  printf("\n#   ... by 16-row slot of a 128-row tile (row %% 128 / 16):");
  for (int i = 0; i < 8; ++i) printf(" %lld", (long long)bad_by_slot[i]);
  printf("\n");
  fflush(stdout);
}

/* Poison the output (0xFFFF is a NaN in bf16), run the GPU op the case asks for, read back. */
static void gpu_run(up_backend *gpu, const attn_case *c, const attn_problem *p, const up_kv_pool *pool_d,
                    const up_attn_batch *batch_d, const up_attn_shape *shape, uint16_t *out_h) {
  const cudaStream_t stream = up_cuda_backend_stream(gpu);
  const size_t out_n = (size_t)p->n_tokens * (size_t)p->out_stride;
  UP_CUDA_CHECK(cudaMemsetAsync(p->out_d, 0xFF, 2 * out_n, stream));
  void *ws = NULL;
  if (c->variant == 0) {
    up_cuda_attention(gpu, p->out_d, p->qkv_d, pool_d, batch_d, shape, 0);
  } else {
    const int32_t splits = up_cuda_attention_decode_splits(pool_d, batch_d, shape, 132);
    UP_CUDA_CHECK(cudaMalloc(&ws, up_cuda_attention_decode_workspace_bytes(batch_d, shape, splits)));
    up_cuda_attention_prefill(stream, p->out_d, p->qkv_d, pool_d, batch_d, shape, c->variant);
    up_cuda_attention_decode(stream, p->out_d, p->qkv_d, pool_d, batch_d, shape, splits, ws);
  }
  UP_CUDA_CHECK(cudaStreamSynchronize(stream));
  UP_CUDA_CHECK(cudaGetLastError());
  if (ws) UP_CUDA_CHECK(cudaFree(ws));
  UP_CUDA_CHECK(cudaMemcpy(out_h, p->out_d, 2 * out_n, cudaMemcpyDeviceToHost));
}

static void run_case(up_backend *cpu, up_backend *gpu, uint64_t *rng, const attn_case *c) {
  const up_attn_shape shape = {c->n_heads, c->n_kv_heads, c->head_dim, 1.0f / sqrtf((float)c->head_dim)};
  attn_problem p;
  attn_problem_make(&p, rng, &shape, c->n_seqs, c->rows, c->prior, c->block_tokens, 1);
  attn_problem_poison_unused(&p);
  up_kv_pool pool_d;
  up_attn_batch batch_d;
  attn_problem_device_view(&p, &pool_d, &batch_d);

  /* GPU, twice: same inputs, same launch, so the same bits unless something races. */
  const size_t out_n = (size_t)p.n_tokens * (size_t)p.out_stride;
  uint16_t *out_h = up_malloc_or_die(2 * out_n, "gpu out");
  uint16_t *again_h = up_malloc_or_die(2 * out_n, "gpu out, second run");
  gpu_run(gpu, c, &p, &pool_d, &batch_d, &shape, out_h);
  gpu_run(gpu, c, &p, &pool_d, &batch_d, &shape, again_h);
  size_t n_differ = 0;
  int64_t first_differ = -1;
  for (size_t i = 0; i < out_n; ++i)
    if (out_h[i] != again_h[i]) {
      if (first_differ < 0) first_differ = (int64_t)i;
      ++n_differ;
    }
  free(again_h);

  /* CPU reference on the same values. For sampled rows, row t of the sequence is a
   * one-row sequence over the first prior + t + 1 entries of the same block table. */
  const int32_t n_cmp = c->sampled_rows > 0 ? c->sampled_rows : p.n_tokens;
  int32_t *cmp_rows = up_malloc_or_die(sizeof(int32_t) * (size_t)n_cmp, "compared rows");
  up_attn_batch batch_h = {0};
  int32_t *cu_h = NULL, *kv_h = NULL, *bt_h = NULL;
  if (c->sampled_rows > 0) {
    pick_rows(rng, c->rows[0], n_cmp, cmp_rows);
    cu_h = up_malloc_or_die(sizeof(int32_t) * ((size_t)n_cmp + 1), "sample cu");
    kv_h = up_malloc_or_die(sizeof(int32_t) * (size_t)n_cmp, "sample kv");
    bt_h = up_malloc_or_die(sizeof(int32_t) * (size_t)n_cmp * (size_t)p.max_blocks_per_seq, "sample bt");
    for (int32_t i = 0; i <= n_cmp; ++i) cu_h[i] = i;
    for (int32_t i = 0; i < n_cmp; ++i) {
      kv_h[i] = p.kv_lens[0] - p.cu_seqlens[1] + cmp_rows[i] + 1;
      memcpy(bt_h + (int64_t)i * p.max_blocks_per_seq, p.block_tables, sizeof(int32_t) * (size_t)p.max_blocks_per_seq);
    }
    batch_h.n_seqs = n_cmp;
    batch_h.cu_seqlens = cu_h;
    batch_h.kv_lens = kv_h;
    batch_h.block_tables = bt_h;
  } else {
    for (int32_t i = 0; i < n_cmp; ++i) cmp_rows[i] = i;
    batch_h.n_seqs = p.n_seqs;
    batch_h.cu_seqlens = p.cu_seqlens;
    batch_h.kv_lens = p.kv_lens;
    batch_h.block_tables = p.block_tables;
  }
  batch_h.n_tokens = n_cmp;
  batch_h.max_blocks_per_seq = p.max_blocks_per_seq;
  float *qkv_f = up_malloc_or_die(sizeof(float) * (size_t)n_cmp * (size_t)p.qkv_stride, "qkv f32");
  for (int32_t i = 0; i < n_cmp; ++i)
    for (int64_t j = 0; j < p.qkv_stride; ++j)
      qkv_f[(int64_t)i * p.qkv_stride + j] = attn_bf16_to_f32(p.qkv_h[(int64_t)cmp_rows[i] * p.qkv_stride + j]);
  const up_kv_pool pool_h = {p.k_f, p.v_f, p.n_blocks, p.block_tokens, pool_d.kv_dim};
  float *ref = up_malloc_or_die(sizeof(float) * (size_t)n_cmp * (size_t)p.out_stride, "reference out");
  const clock_t t0 = clock();
  cpu->ops->attention(cpu, ref, qkv_f, &pool_h, &batch_h, &shape, 0);
  const double cpu_s = (double)(clock() - t0) / CLOCKS_PER_SEC;

  float *gpu_out = up_malloc_or_die(sizeof(float) * (size_t)n_cmp * (size_t)p.out_stride, "gpu_out out f32");
  for (int32_t i = 0; i < n_cmp; ++i)
    for (int64_t j = 0; j < p.out_stride; ++j)
      gpu_out[(int64_t)i * p.out_stride + j] = attn_bf16_to_f32(out_h[(int64_t)cmp_rows[i] * p.out_stride + j]);
  /* Every element written: the poison is a NaN, so any unwritten element is non-finite. */
  size_t all_bad = 0;
  for (size_t i = 0; i < out_n; ++i)
    if (!isfinite(attn_bf16_to_f32(out_h[i]))) ++all_bad;
  size_t bad = 0;
  const double err = rel_error(gpu_out, ref, (size_t)n_cmp * (size_t)p.out_stride, &bad);
  CHECK(all_bad == 0, "%s: all %zu outputs written and finite (%zu not)", c->name, out_n, all_bad);
  CHECK(n_differ == 0, "%s: two GPU runs bitwise identical (%zu of %zu values differ, first at row %lld head %lld)",
             c->name, n_differ, out_n, first_differ < 0 ? -1ll : (long long)(first_differ / p.out_stride),
             first_differ < 0 ? -1ll : (long long)(first_differ % p.out_stride / c->head_dim));
  CHECK(bad == 0 && err < MAX_ERR, "%s: relative error %.3e over %d rows (limit %.0e; cpu %.1f s)",
             c->name, err, n_cmp, MAX_ERR, cpu_s);
  if (bad != 0 || !(err < SUSPECT_ERR)) print_breakdown(c, &p, cmp_rows, n_cmp, gpu_out, ref);

  free(gpu_out);
  free(ref);
  free(qkv_f);
  free(cmp_rows);
  free(cu_h);
  free(kv_h);
  free(bt_h);
  free(out_h);
  attn_problem_free(&p);
}

int main(void) {
  uint64_t seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
  const char *env = getenv("UP_TEST_SEED");
  if (env) seed = strtoull(env, NULL, 0);
  if (!seed) seed = 1;
  printf("# gpu_attention_test: seed %llu (UP_TEST_SEED repeats it)\n", (unsigned long long)seed);
  uint64_t rng = seed;
  up_backend *gpu = gpu_check_cuda_backend();
  up_backend *cpu = up_cpu_backend_create(0);
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; ++i) run_case(cpu, gpu, &rng, &CASES[i]);
  cpu->ops->destroy(cpu);
  gpu->ops->destroy(gpu);
  return gpu_check_finish();
}
