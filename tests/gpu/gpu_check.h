/* gpu_check.h — the tiny harness of the GPU test programs (the GPU machine has no
 * Criterion): CHECK counts and prints one line per check, gpu_check_finish prints the
 * "N passed, M failed" line and gives the exit code, gpu_check_skip ends with 77
 * (CTest's SKIP_RETURN_CODE) where no GPU is visible, and gpu_check_cuda_backend opens
 * the backend or skips, gpu_check_seed gives the printed, repeatable seed. One test
 * program per process. */
#ifndef UP_GPU_CHECK_H
#define UP_GPU_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_device.h"

static int gpu_check_passed, gpu_check_failed;

/* Record a check: a line "PASS <what>" or "FAIL <what>". */
#define CHECK(cond, ...)                                          \
  do {                                                            \
    const int gpu_check_ok_ = (cond) ? 1 : 0;                     \
    if (gpu_check_ok_) ++gpu_check_passed; else ++gpu_check_failed; \
    printf("%s ", gpu_check_ok_ ? "PASS" : "FAIL");               \
    printf(__VA_ARGS__);                                          \
    printf("\n");                                                 \
    fflush(stdout);                                               \
  } while (0)

/* A normalized error below tol (NaN never passes), the value printed either way. */
#define CHECK_REL_ERR(err, tol, ...)                                                        \
  do {                                                                                      \
    char gpu_check_what_[256];                                                              \
    snprintf(gpu_check_what_, sizeof gpu_check_what_, __VA_ARGS__);                         \
    const double gpu_check_err_ = (err);                                                    \
    CHECK(gpu_check_err_ < (tol), "%s: rel err %.3e (< %.0e)", gpu_check_what_, gpu_check_err_, (double)(tol)); \
  } while (0)

static inline int gpu_check_finish(void) {
  printf("%d passed, %d failed\n", gpu_check_passed, gpu_check_failed);
  return gpu_check_failed ? 1 : 0;
}

static inline void gpu_check_skip(const char *reason) {
  printf("SKIP: no CUDA device: %s\n", reason);
  exit(77);
}

/* The CUDA backend on device 0; exits 77 (skip) where no GPU is visible and 1 (with a
 * FAIL line) where the backend cannot be created. */
static inline up_backend *gpu_check_cuda_backend(void) {
  char why[256];
  if (up_cuda_device_count(why, sizeof why) == 0) gpu_check_skip(why[0] ? why : "none visible");
  char err[512];
  up_backend *be = up_cuda_backend_create(0, err, sizeof err);
  if (!be) {
    printf("FAIL could not create the CUDA backend: %s\n", err);
    exit(1);
  }
  return be;
}

/* The run's seed: UP_GPU_TEST_SEED when set, else the clock; printed with the program
 * and the device, so that a failing run can be repeated. */
static inline uint64_t gpu_check_seed(const char *program, const up_backend *gpu) {
  const char *fixed = getenv("UP_GPU_TEST_SEED");
  const uint64_t seed = fixed ? strtoull(fixed, NULL, 0) : (uint64_t)time(NULL);
  printf("# %s on %s, seed %llu (UP_GPU_TEST_SEED=%llu repeats this run)\n", program, gpu->device_name,
         (unsigned long long)seed, (unsigned long long)seed);
  return seed;
}

#endif
