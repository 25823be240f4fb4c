/* gpu_select_bench.c — times the CUDA uniprefill_select op on the shapes of
 * ../shared/ALGORITHMS.md (32 q / 8 kv heads, head_dim 128, random bf16 q/k, every
 * sequence a candidate, p = 0.99, block 64, sink 128, last_q 128) and prints each
 * median against the target of the issue and the reference Triton operator's H100
 * time. CUDA events around each call (the op ends with its one device-to-host copy and
 * a stream synchronisation, both inside the interval), warm-up first, median of
 * REPEATS. GFLOP counts the two score passes: 2 x 2 x head_dim x n_heads x last_q
 * x tokens. Writes CSV to argv[1] if given. A benchmark, not a test: gpu_select_test
 * checks correctness. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/uniprefill_select.h"
#include "kernels/cuda/cuda_check.h"
#include "tests/gpu/gpu_check.h"
#include "tests/gpu/attn_inputs.h"

enum { WARMUP = 3, REPEATS = 15, BLOCK_TOKENS = 16, MAX_SEQS = 16 };

static int cmp_float(const void *a, const void *b) {
  const float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

typedef struct bench_case {
  int32_t batch, seq_len;
  double target_ms;    /* the target; 0: none */
  double reference_ms; /* the reference operator on one H100 */
} bench_case;

static const bench_case CASES[] = {
    {1, 8192, 0.0, 3.96},   {1, 32768, 0.5, 26.9}, {1, 131072, 2.0, 119.0},
    {4, 8192, 0.0, 11.3},   {16, 8192, 1.0, 50.1}, {4, 32768, 0.0, 60.9},
};

int main(int argc, char **argv) {
  FILE *csv = argc > 1 ? fopen(argv[1], "w") : NULL;
  if (argc > 1 && !csv) UP_FATAL("cannot open %s for writing", argv[1]);
  if (csv)
    fprintf(csv, "batch,seq_len,median_ms,min_ms,target_ms,reference_ms,speedup_vs_reference,gflop,tflops,kept_frac\n");
  up_backend *be = gpu_check_cuda_backend(); /* skips (77) where no GPU is visible */
  printf("# gpu_select_bench on %s: 32 q heads, 8 kv heads, head_dim 128, p 0.99, block 64, sink 128, last_q 128, "
         "block_tokens %d, median of %d\n",
         be->device_name, BLOCK_TOKENS, REPEATS);
  printf("%6s %8s %11s %9s %10s %13s %9s %8s %9s %6s\n", "batch", "seq_len", "median(ms)", "min(ms)", "target(ms)",
         "reference(ms)", "vs ref", "GFLOP", "TFLOP/s", "kept");
  const up_attn_shape shape = {32, 8, 128, 1.0f / sqrtf(128.0f)};
  const up_select_params prm = {.top_p = 0.99f, .keep_fraction = 0.0f, .block = 64, .sink = 128, .last_q = 128};
  uint64_t rng = 0x5e1ec7ull; /* fixed inputs: runs compare */
  const cudaStream_t stream = up_cuda_backend_stream(be);

  for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; ++c) {
    const bench_case *bc = &CASES[c];
    int32_t rows[MAX_SEQS];
    uint8_t cand[MAX_SEQS];
    for (int32_t s = 0; s < bc->batch; ++s) {
      rows[s] = bc->seq_len;
      cand[s] = 1;
    }
    attn_problem p;
    attn_problem_make(&p, &rng, &shape, bc->batch, rows, NULL, BLOCK_TOKENS, 0);
    up_kv_pool pool;
    up_attn_batch batch;
    attn_problem_device_view(&p, &pool, &batch);
    int32_t *keep_d = NULL, cu[MAX_SEQS + 1];
    UP_CUDA_CHECK(cudaMalloc((void **)&keep_d, sizeof(int32_t) * (size_t)p.n_tokens));
    cudaEvent_t start, stop;
    UP_CUDA_CHECK(cudaEventCreate(&start));
    UP_CUDA_CHECK(cudaEventCreate(&stop));
    float ms[REPEATS];
    int32_t kept = 0;
    for (int i = -WARMUP; i < REPEATS; ++i) {
      UP_CUDA_CHECK(cudaEventRecord(start, stream));
      kept = be->ops->uniprefill_select(be, keep_d, cu, p.qkv_d, &pool, &batch, &shape, cand, &prm);
      UP_CUDA_CHECK(cudaEventRecord(stop, stream));
      UP_CUDA_CHECK(cudaEventSynchronize(stop));
      if (i >= 0) UP_CUDA_CHECK(cudaEventElapsedTime(&ms[i], start, stop));
    }
    qsort(ms, REPEATS, sizeof ms[0], cmp_float);
    const double med = ms[REPEATS / 2];
    const double gflop = 2.0 * 2.0 * 128.0 * 32.0 * 128.0 * (double)p.n_tokens / 1e9;
    const double kept_frac = (double)kept / (double)p.n_tokens;
    char target[16];
    if (bc->target_ms > 0.0)
      snprintf(target, sizeof target, "%.2f", bc->target_ms);
    else
      snprintf(target, sizeof target, "-");
    printf("%6d %8d %11.3f %9.3f %10s %13.2f %8.1fx %8.1f %9.1f %6.3f\n", bc->batch, bc->seq_len, med, (double)ms[0],
           target, bc->reference_ms, bc->reference_ms / med, gflop, gflop / med, kept_frac);
    if (csv)
      fprintf(csv, "%d,%d,%.4f,%.4f,%s,%.2f,%.2f,%.2f,%.2f,%.4f\n", bc->batch, bc->seq_len, med, (double)ms[0],
              bc->target_ms > 0.0 ? target : "", bc->reference_ms, bc->reference_ms / med, gflop, gflop / med,
              kept_frac);
    fflush(stdout);
    UP_CUDA_CHECK(cudaEventDestroy(start));
    UP_CUDA_CHECK(cudaEventDestroy(stop));
    UP_CUDA_CHECK(cudaFree(keep_d));
    attn_problem_free(&p);
  }
  be->ops->destroy(be);
  if (csv) fclose(csv);
  return 0;
}
