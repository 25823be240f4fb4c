/* attn_check.h — the tiny harness of the GPU test programs (the GPU machine has no
 * Criterion): one line per check, a closing "N passed, M failed" line, exit 77 with a
 * SKIP line when no GPU is visible, and a checked-call macro for the CUDA runtime. */
#ifndef UP_ATTN_CHECK_H
#define UP_ATTN_CHECK_H

#include <cuda_runtime_api.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/fatal.h"

#define ATTN_SKIP_EXIT 77

typedef struct attn_tally {
  int passed;
  int failed;
} attn_tally;

/* One check, one line: "PASS: ..." or "FAIL: ...". */
static inline void attn_check(attn_tally *t, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void attn_check(attn_tally *t, int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s: ", ok ? "PASS" : "FAIL");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
  if (ok)
    ++t->passed;
  else
    ++t->failed;
}

/* Print the closing line; the process's exit code. */
static inline int attn_tally_finish(const attn_tally *t) {
  printf("%d passed, %d failed\n", t->passed, t->failed);
  return t->failed ? 1 : 0;
}

/* Exit 77 (CTest's skip) unless a CUDA device is visible. */
static inline void attn_require_device(void) {
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    printf("SKIP: no CUDA device: %s\n", cudaGetErrorString(rc));
    exit(ATTN_SKIP_EXIT);
  }
  if (count == 0) {
    printf("SKIP: no CUDA device: the runtime reports 0 devices\n");
    exit(ATTN_SKIP_EXIT);
  }
}

#define ATTN_CUDA(call)                                                                          \
  do {                                                                                           \
    const cudaError_t attn_rc_ = (call);                                                         \
    if (attn_rc_ != cudaSuccess)                                                                 \
      up_fatal_at(__FILE__, __LINE__, "%s failed: %s", #call, cudaGetErrorString(attn_rc_));     \
  } while (0)

#endif
