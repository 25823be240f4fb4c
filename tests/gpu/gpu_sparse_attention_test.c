/* gpu_sparse_attention_test.c — the sparse baselines' attention kernel
 * (UP_SPARSE_ATTENTION_KERNEL, kernels/cuda/sparse/sparse_attention.cu) beyond what
 * gpu_ops_test checks: every "sparse attention" case of the shared op-case list
 * (launcher/kernels/op_case_list.c: MInference's 64x64 unaligned ranges with gathered
 * keys, the 128x128 blocks of FlexPrefill and XAttention, 256-row query blocks, ranges at
 * arbitrary starts over 128-blocks, densities 0.1 to 1, decode rows and dense prefills
 * in the same batch, head_dim 64, 128 and 256, pages of 8 to 64 entries) through both CUDA
 * paths: the default, which on Hopper sends 128-row blocks without extra keys to the
 * dense TMA kernel's listed schedule, and the mma.sync kernel (attention variant
 * mma-sync, as --attention-kernel selects it). Each path runs twice on the same inputs
 * from NaN outputs and must give identical bits (no atomics: a difference is a race,
 * e.g. in the listed schedule's span slots), every output must be written and finite,
 * and the compared rows must match the CPU reference to the values tolerance
 * (||out - ref|| / ||ref||, NaN never passes). On Hopper a case labelled "TMA" must also
 * differ in bits between the two paths: equal bits would mean the default never left
 * the mma.sync kernel. Fresh inputs every run (seed printed; UP_TEST_SEED repeats one).
 * Plain C with its own harness: exit 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/attention/cuda_attention.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/op_cases/case_sparse_attention.h"
#include "kernels/op_cases/op_check.h"
#include "launcher/kernels/op_case_list.h"
#include "tests/gpu/gpu_check.h"
#include "tests/gpu/gpu_repeat.h"

/* The two paths a case is run through, by attention variant (cuda_attention.h). */
static const struct {
  int variant;
  const char *name;
} paths[2] = {{UP_ATTN_PREFILL_DEFAULT, "default path"}, {UP_ATTN_PREFILL_MMA_SYNC, "mma.sync kernel"}};

/* One path of one case: two runs from NaN with the same bits, then the error against the
 * reference (the driver's compare also fails an unwritten or non-finite output).
 * Returns the first run's output (malloc'd) for the comparison between paths. */
static float *run_path(up_backend *gpu, const up_op_case *c, void *inputs, const void *reference, int path) {
  up_cuda_backend_set_attention_variant(gpu, paths[path].variant);
  size_t n = 0;
  void *out = up_op_sparse_attention_output(inputs, &n);
  float *first = gpu_repeat_twice(gpu, c, inputs, out, n, paths[path].name);
  up_op_check check = {0};
  c->driver->compare(gpu, c, inputs, reference, &check);
  CHECK(check.error < c->tolerance, "%s, %s: error %.3e (limit %g); %s", c->label, paths[path].name, check.error,
        c->tolerance, check.detail);
  up_cuda_backend_set_attention_variant(gpu, UP_ATTN_PREFILL_DEFAULT);
  return first;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  uint64_t seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
  const char *env = getenv("UP_TEST_SEED");
  if (env) seed = strtoull(env, NULL, 0);
  up_backend *gpu = gpu_check_cuda_backend();
  const bool hopper = up_cuda_attention_prefill_sm90_available();
  printf("# gpu_sparse_attention_test on %s (%s): seed %llu (UP_TEST_SEED repeats it)\n", gpu->device_name,
         hopper ? "Hopper: the listed schedule is the default for 128-row blocks" : "not Hopper: mma.sync only",
         (unsigned long long)seed);
  up_backend *cpu = up_cpu_backend_create(0);
  up_op_case *cases = NULL;
  const int32_t n = up_op_case_list(&cases);
  int32_t ran = 0;
  for (int32_t i = 0; i < n; ++i) {
    const up_op_case *c = &cases[i];
    if (c->driver != &up_op_sparse_attention) continue;
    ++ran;
    void *inputs = c->driver->make(gpu, c, seed + (uint64_t)i);
    const clock_t t0 = clock();
    void *reference = c->driver->reference(gpu, c, inputs, cpu);
    printf("# %s: reference in %.1f s of CPU\n", c->label, (double)(clock() - t0) / CLOCKS_PER_SEC);
    float *by_path[2];
    for (int path = 0; path < 2; ++path) by_path[path] = run_path(gpu, c, inputs, reference, path);
    if (hopper && strstr(c->label, "TMA")) {
      size_t values = 0, differ = 0;
      up_op_sparse_attention_output(inputs, &values);
      for (size_t k = 0; k < values; ++k) differ += memcmp(&by_path[0][k], &by_path[1][k], sizeof(float)) != 0;
      CHECK(differ > 0, "%s: the default path is the listed schedule, not the mma.sync kernel (%zu of %zu values "
            "differ between them)", c->label, differ, values);
    }
    free(by_path[0]);
    free(by_path[1]);
    c->driver->free_reference(reference);
    c->driver->destroy(gpu, inputs);
  }
  CHECK(ran > 0, "the op-case list has sparse attention cases (%d)", (int)ran);
  free(cases);
  cpu->ops->destroy(cpu);
  gpu->ops->destroy(gpu);
  return gpu_check_finish();
}
