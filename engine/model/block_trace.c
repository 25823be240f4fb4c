/* block_trace.c — writes the forward pass's per-block activations when UP_TRACE_BLOCKS
 * names a directory (block_trace.h). Debugging aid, not a measurement: each write waits
 * for the backend (download_f32), so traced runs are slow and their timings meaningless. */
#include "engine/model/block_trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

/* The directory, read from the environment once per process: the taps sit in every
 * block of every forward step. */
static const char *trace_dir(void) {
  static int read;
  static const char *dir;
  if (!read) {
    const char *env = getenv("UP_TRACE_BLOCKS");
    dir = env && env[0] ? env : NULL;
    read = 1;
  }
  return dir;
}

void up_block_trace(up_backend *be, int64_t step, int32_t layer, const char *what, const void *src, int32_t rows,
                    int32_t dim) {
  const char *dir = trace_dir();
  if (!dir) return;
  const size_t n = (size_t)rows * (size_t)dim;
  float *host = up_malloc_or_die(sizeof(float) * (n ? n : 1), "block trace buffer");
  if (n) be->ops->download_f32(be, host, src, 0, n);
  char path[4096];
  snprintf(path, sizeof path, "%s/step%lld_layer%d_%s.f32", dir, (long long)step, (int)layer, what);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(host, sizeof(float), n, f) != n || fclose(f) != 0)
    UP_FATAL("UP_TRACE_BLOCKS: cannot write %s: %s", path, strerror(errno));
  free(host);
}
