/* gpu_ops_test.c — every op of the CUDA backend against the CPU reference backend, one
 * check per case of the shared op-case list (launcher/kernels/op_case_list.c, which
 * `uniprefill-bench --kernels` shares the drivers of). Inputs are drawn on the GPU
 * (fresh every run: the seed is printed, UP_GPU_TEST_SEED repeats one) and the CPU
 * reads them back, so only the arithmetic differs; outputs start as NaN. Values are
 * compared by ||out - ref|| / ||ref||, copies and indices exactly; NaN never passes. A
 * selection that differs on a near tie of the reference's block scores is flagged, not
 * counted. The prefill-kernel variants and the selection's ties are
 * gpu_attention_test's and gpu_select_test's. Exits 77 where no GPU is visible. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/op_cases/op_check.h"
#include "launcher/kernels/op_case_list.h"
#include "tests/gpu/gpu_check.h"

/* Arguments: a label filter keeps the cases whose label contains it (CTest runs the
 * delta rule's cases again that way under UP_GDN_KERNEL=v2 and v1, the kernels the
 * default tensor-core one replaced); `--shard K/N` keeps the cases whose index is K
 * modulo N, so CTest can run the list as N processes side by side: the CPU reference of
 * the long cases, one core each, is what takes the time, not the GPU. */
int main(int argc, char **argv) {
  const char *only = NULL;
  int shard = 0, shards = 1;
  for (int a = 1; a < argc; ++a) {
    if (strcmp(argv[a], "--shard") == 0 && a + 1 < argc) {
      if (sscanf(argv[++a], "%d/%d", &shard, &shards) != 2 || shards < 1 || shard < 0 || shard >= shards) {
        fprintf(stderr, "gpu_ops_test: --shard wants K/N with 0 <= K < N, got '%s'\n", argv[a]);
        return 2;
      }
    } else {
      only = argv[a];
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  up_backend *gpu = gpu_check_cuda_backend();
  up_backend *cpu = up_cpu_backend_create(0);
  const char *fixed = getenv("UP_GPU_TEST_SEED");
  const uint64_t seed = fixed ? strtoull(fixed, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  printf("# gpu_ops_test on %s, shard %d/%d, seed %llu (UP_GPU_TEST_SEED=%llu repeats this run)\n",
         gpu->device_name, shard, shards, (unsigned long long)seed, (unsigned long long)seed);

  up_op_case *cases = NULL;
  const int32_t n = up_op_case_list(&cases);
  for (int32_t i = 0; i < n; ++i) {
    const up_op_case *c = &cases[i];
    if (only && !strstr(c->label, only)) continue;
    if (i % shards != shard) continue;
    up_op_check check;
    up_op_case_check(c, gpu, cpu, seed + (uint64_t)i, &check);
    if (!check.passed && check.near_tie) {
      printf("FLAG %s: error %.3e on a near tie of the reference's block scores, not counted (%s)\n", c->label,
             check.error, check.detail);
      continue;
    }
    CHECK(check.passed, "%s: error %.3e (limit %g), %.3f ms; %s", c->label, check.error, c->tolerance, check.ms,
          check.detail);
  }
  free(cases);
  cpu->ops->destroy(cpu);
  gpu->ops->destroy(gpu);
  return gpu_check_finish();
}
