/* gpu_matmul_bench.c — times the CUDA backend's matmul at the Llama-3.1-8B prefill
 * projections (qkv, o, gate_up, down) for one batch of tokens (32K by default), with
 * CUDA events on the backend's stream: warm-up calls first, then repeats each preceded
 * by a 256 MB write that evicts L2, reporting the median. Inputs are random (never
 * zeros: a GEMM on zeros runs faster than on real data). Not a test: it prints a table
 * and, with --csv PATH, writes the same rows as CSV.
 *
 *   gpu_matmul_bench [--tokens N] [--warmup N] [--repeats N] [--csv PATH] */
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/rng.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "tests/gpu/gpu_check.h"

enum { FLUSH_BYTES = 256 << 20, FILL_CHUNK = 1 << 20, MAX_REPEATS = 1000 };

typedef struct bench_shape {
  const char *name;
  int32_t n, k;
} bench_shape;

/* Fill n bf16 values with a 1M-value random block repeated: random enough for the
 * tensor cores' power and timing, and quick to produce on the host. */
static void fill_random(up_backend *be, void *dst, size_t n, const float *block) {
  for (size_t off = 0; off < n; off += FILL_CHUNK)
    be->ops->upload_f32(be, dst, off, block, n - off < FILL_CHUNK ? n - off : FILL_CHUNK);
}

static int cmp_float(const void *a, const void *b) {
  const float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

static long parse_positive(const char *flag, const char *value, long max) {
  char *end = NULL;
  const long v = value ? strtol(value, &end, 10) : 0;
  if (!value || *end != '\0' || v < 1 || v > max) {
    fprintf(stderr, "gpu_matmul_bench: %s needs an integer in 1..%ld\n", flag, max);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  long tokens = 32768, warmup = 5, repeats = 20;
  const char *csv_path = NULL;
  for (int i = 1; i < argc; ++i) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argv[i], "--tokens") == 0) tokens = parse_positive("--tokens", v, 1L << 20), ++i;
    else if (strcmp(argv[i], "--warmup") == 0) warmup = parse_positive("--warmup", v, MAX_REPEATS), ++i;
    else if (strcmp(argv[i], "--repeats") == 0) repeats = parse_positive("--repeats", v, MAX_REPEATS), ++i;
    else if (strcmp(argv[i], "--csv") == 0 && v) csv_path = v, ++i;
    else {
      fprintf(stderr, "usage: %s [--tokens N] [--warmup N] [--repeats N] [--csv PATH]\n", argv[0]);
      return 2;
    }
  }
  up_backend *be = gpu_check_cuda_backend();
  cudaStream_t stream = up_cuda_backend_stream(be);
  FILE *csv = NULL;
  if (csv_path && !(csv = fopen(csv_path, "w"))) {
    fprintf(stderr, "gpu_matmul_bench: cannot write %s\n", csv_path);
    return 1;
  }

  float *block = malloc(sizeof(float) * FILL_CHUNK);
  if (!block) return 1;
  for (size_t i = 0; i < FILL_CHUNK; ++i) block[i] = up_rng_symmetric(20261028, 1, i);
  void *flush = be->ops->alloc(be, FLUSH_BYTES, "L2 flush buffer");
  cudaEvent_t start[MAX_REPEATS], stop[MAX_REPEATS];
  for (long r = 0; r < repeats; ++r) {
    UP_CUDA_CHECK(cudaEventCreate(&start[r]));
    UP_CUDA_CHECK(cudaEventCreate(&stop[r]));
  }

  const bench_shape shapes[] = {{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096},
                                {"down", 4096, 14336}};
  const int32_t m = (int32_t)tokens;
  printf("# gpu_matmul_bench: cuBLASLt bf16 GEMM, fp32 accumulate, on %s\n", be->device_name);
  printf("# llama-3.1-8b projections at m = %d tokens; %ld warm-up calls, median of %ld repeats, L2 flushed "
         "(%d MiB written) before each\n", m, warmup, repeats, FLUSH_BYTES >> 20);
  printf("%-8s %7s %7s %7s %12s %12s %10s\n", "shape", "m", "n", "k", "median(ms)", "min(ms)", "TFLOP/s");
  if (csv) fprintf(csv, "shape,m,n,k,median_ms,min_ms,tflops\n");
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
    const int32_t n = shapes[s].n, k = shapes[s].k;
    void *a = be->ops->alloc(be, 2 * (size_t)m * k, "bench a");
    void *w = be->ops->alloc(be, 2 * (size_t)n * k, "bench w");
    void *out = be->ops->alloc(be, 2 * (size_t)m * n, "bench out");
    fill_random(be, a, (size_t)m * k, block);
    fill_random(be, w, (size_t)n * k, block);
    for (long r = 0; r < warmup; ++r) be->ops->matmul(be, out, a, w, m, n, k);
    float ms[MAX_REPEATS];
    for (long r = 0; r < repeats; ++r) {
      UP_CUDA_CHECK(cudaMemsetAsync(flush, (int)(r & 0xff), FLUSH_BYTES, stream));
      UP_CUDA_CHECK(cudaEventRecord(start[r], stream));
      be->ops->matmul(be, out, a, w, m, n, k);
      UP_CUDA_CHECK(cudaEventRecord(stop[r], stream));
    }
    be->ops->synchronize(be);
    for (long r = 0; r < repeats; ++r) UP_CUDA_CHECK(cudaEventElapsedTime(&ms[r], start[r], stop[r]));
    qsort(ms, (size_t)repeats, sizeof ms[0], cmp_float);
    const double median = repeats % 2 ? ms[repeats / 2] : 0.5 * (ms[repeats / 2 - 1] + ms[repeats / 2]);
    const double tflops = 2.0 * m * (double)n * k / (median * 1e-3) / 1e12;
    printf("%-8s %7d %7d %7d %12.3f %12.3f %10.1f\n", shapes[s].name, m, n, k, median, ms[0], tflops);
    if (csv) fprintf(csv, "%s,%d,%d,%d,%.4f,%.4f,%.2f\n", shapes[s].name, m, n, k, median, ms[0], tflops);
    be->ops->free(be, a);
    be->ops->free(be, w);
    be->ops->free(be, out);
  }
  for (long r = 0; r < repeats; ++r) {
    UP_CUDA_CHECK(cudaEventDestroy(start[r]));
    UP_CUDA_CHECK(cudaEventDestroy(stop[r]));
  }
  be->ops->free(be, flush);
  be->ops->destroy(be);
  free(block);
  if (csv && fclose(csv) != 0) {
    fprintf(stderr, "gpu_matmul_bench: error writing %s\n", csv_path);
    return 1;
  }
  return 0;
}
