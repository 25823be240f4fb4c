/* gpu_attention_bench.c — times the CUDA attention op on the shapes of
 * ../shared/ALGORITHMS.md: causal prefill, 32 q / 8 kv heads, head_dim 128, batch 1 at
 * 4K..128K (the op, then each head_dim-128 prefill kernel alone), and decode, 16
 * sequences x 1 row over 32K cached entries. CUDA events around each run, warm-up first, median of the repeats.
 * TFLOP/s counts 2 * 2 * L^2/2 * d per head (the FlashAttention convention); decode
 * GB/s counts the K and V bytes read. Prints a table; writes CSV to argv[1] if given
 * ("-" for none); further arguments pick the prefill paths to time (-1 the op, else a
 * variant of up_cuda_attention_prefill; default all).
 * A benchmark, not a test: run gpu_attention_test for correctness. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cuda/cuda_attention.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "tests/gpu/gpu_check.h"
#include "tests/gpu/attn_inputs.h"

enum { WARMUP = 3, REPEATS = 15, BLOCK_TOKENS = 16 };

/* By path + 1: the op, then the variants of up_cuda_attention_prefill. */
enum { N_PATHS = 5 };
static const char *const PATH_NAMES[N_PATHS] = {"op (default)", "prefill default", "mma.sync v1 16rows/w",
                                                "mma.sync 256-row CTA", "sm90 wgmma"};

static int cmp_float(const void *a, const void *b) {
  const float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* variant < 0: the public op (default tiling, decode path included); else the prefill
 * path alone with that tiling. Returns the median milliseconds. */
static float time_op(cudaStream_t stream, up_backend *be, const attn_problem *p, int variant) {
  up_kv_pool pool;
  up_attn_batch batch;
  attn_problem_device_view(p, &pool, &batch);
  cudaEvent_t start, stop;
  UP_CUDA_CHECK(cudaEventCreate(&start));
  UP_CUDA_CHECK(cudaEventCreate(&stop));
  float ms[REPEATS];
  for (int i = -WARMUP; i < REPEATS; ++i) {
    UP_CUDA_CHECK(cudaEventRecord(start, stream));
    if (variant < 0)
      up_cuda_attention(be, p->out_d, p->qkv_d, &pool, &batch, &p->shape);
    else
      up_cuda_attention_prefill(stream, p->out_d, p->qkv_d, &pool, &batch, &p->shape, variant);
    UP_CUDA_CHECK(cudaEventRecord(stop, stream));
    UP_CUDA_CHECK(cudaEventSynchronize(stop));
    UP_CUDA_CHECK(cudaGetLastError());
    if (i >= 0) UP_CUDA_CHECK(cudaEventElapsedTime(&ms[i], start, stop));
  }
  UP_CUDA_CHECK(cudaEventDestroy(start));
  UP_CUDA_CHECK(cudaEventDestroy(stop));
  qsort(ms, REPEATS, sizeof ms[0], cmp_float);
  return ms[REPEATS / 2];
}

int main(int argc, char **argv) {
  FILE *csv = NULL;
  if (argc > 1 && strcmp(argv[1], "-") != 0) {
    csv = fopen(argv[1], "w");
    if (!csv) UP_FATAL("cannot open %s for writing", argv[1]);
    fprintf(csv, "case,seq_len,batch,path,median_ms,tflops,gbps\n");
  }
  /* The op (default kernel, decode path included), then each head_dim-128 prefill
   * kernel alone (the variants listed in attention_prefill.cu). */
  int paths[N_PATHS], n_paths = 0;
  for (int i = 2; i < argc && n_paths < N_PATHS; ++i) {
    char *end = NULL;
    const long v = strtol(argv[i], &end, 10);
    if (*end != '\0' || v < -1 || v >= N_PATHS - 1) UP_FATAL("bench: path '%s' is not -1..%d", argv[i], N_PATHS - 2);
    paths[n_paths++] = (int)v;
  }
  if (n_paths == 0)
    for (int v = -1; v < N_PATHS - 1; ++v)
      if (v != 0) paths[n_paths++] = v; /* 0 is the op's prefill kernel */
  up_backend *be = gpu_check_cuda_backend(); /* skips (77) where no GPU is visible */
  printf("# gpu_attention_bench on %s: 32 q heads, 8 kv heads, head_dim 128, block_tokens %d, median of %d\n",
         be->device_name, BLOCK_TOKENS, REPEATS);
  printf("%-8s %8s %6s %-22s %12s %10s %10s\n", "case", "seq_len", "batch", "path", "median(ms)", "TFLOP/s",
         "GB/s");
  const cudaStream_t stream = up_cuda_backend_stream(be);
  uint64_t rng = (uint64_t)time(NULL) | 1u;
  const up_attn_shape shape = {32, 8, 128, 1.0f / sqrtf(128.0f)};

  const int32_t lens[] = {4096, 16384, 32768, 65536, 131072};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; ++i) {
    const int32_t L = lens[i];
    size_t free_b = 0, total_b = 0;
    UP_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const double need = (double)L * (6144 + 4096 + 2 * 1024) * 2.0 * 1.1;
    if (need > (double)free_b) {
      printf("# %d skipped: needs %.1f GB, %.1f GB free\n", L, need / 1e9, (double)free_b / 1e9);
      continue;
    }
    attn_problem p;
    attn_problem_make(&p, &rng, &shape, 1, &L, NULL, BLOCK_TOKENS, 0);
    const double flops = 2.0 * 2.0 * (double)L * (double)L / 2.0 * 128.0 * 32.0;
    /* The op (default kernel, decode path included), then each head_dim-128 prefill
     * kernel alone (the variants of attention_prefill.cu). */
    for (int v = 0; v < n_paths; ++v) {
      const float ms = time_op(stream, be, &p, paths[v]);
      const double tflops = flops / (ms * 1e-3) / 1e12;
      printf("%-8s %8d %6d %-22s %12.3f %10.1f %10s\n", "prefill", L, 1, PATH_NAMES[paths[v] + 1], ms, tflops, "-");
      if (csv) fprintf(csv, "prefill,%d,1,%s,%.4f,%.2f,\n", L, PATH_NAMES[paths[v] + 1], ms, tflops);
      fflush(stdout);
    }
    attn_problem_free(&p);
  }

  {
    enum { N_DEC = 16 };
    int32_t rows[N_DEC], prior[N_DEC];
    for (int s = 0; s < N_DEC; ++s) {
      rows[s] = 1;
      prior[s] = 32768 - 1;
    }
    attn_problem p;
    attn_problem_make(&p, &rng, &shape, N_DEC, rows, prior, BLOCK_TOKENS, 0);
    const float ms = time_op(stream, be, &p, -1);
    const double bytes = (double)N_DEC * 32768.0 * 1024.0 * 2.0 * 2.0;
    const double gbps = bytes / (ms * 1e-3) / 1e9;
    printf("%-8s %8d %6d %-22s %12.3f %10s %10.1f\n", "decode", 32768, N_DEC, "op (split-K)", ms, "-", gbps);
    if (csv) fprintf(csv, "decode,32768,%d,op (split-K),%.4f,,%.1f\n", N_DEC, ms, gbps);
    attn_problem_free(&p);
  }
  be->ops->destroy(be);
  if (csv) fclose(csv);
  return 0;
}
