/* checkpoint_layout.c — what both formats' readers share for weights that are not
 * stored as one [rows][cols] tensor each (engine/model/arch.h: part layouts, expert
 * stacks): how many rows the stored tensor a part is taken from has, which of them the
 * part takes (up_arch_stored_row), the per-expert tensor names of a Hugging Face expert
 * stack, and a shape check that ignores unit dimensions (a depthwise conv stored
 * [channels, 1, width], a one-row weight stored [1, n] or [n]), which change no byte of
 * the layout. Reading a tensor's bytes stays with checkpoint_gguf.c / checkpoint_hf.c. */
#include "engine/checkpoint/checkpoint_internal.h"

#include <stdio.h>
#include <string.h>

#include "core/fatal.h"

int64_t up_checkpoint_stored_rows(const up_model_config *cfg, up_row_order order, int64_t rows) {
  switch (order) {
    case UP_ROWS_AS_STORED: return rows;
    case UP_ROWS_HEAD_PAIR_FIRST:
    case UP_ROWS_HEAD_PAIR_SECOND: return 2 * rows; /* [query | gate] per head */
    case UP_ROWS_GDN_QKV:
    case UP_ROWS_GDN_Z: return up_dim_size(cfg, UP_DIM_GDN_QKVZ);
    case UP_ROWS_GDN_B:
    case UP_ROWS_GDN_A: return up_dim_size(cfg, UP_DIM_GDN_BA);
  }
  UP_FATAL("unknown row order %d", (int)order);
}

void up_checkpoint_take_rows(const up_model_config *cfg, up_row_order order, const float *stored, float *out,
                             int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    memcpy(out + r * cols, stored + up_arch_stored_row(cfg, order, r) * cols, sizeof(float) * (size_t)cols);
}

bool up_checkpoint_expert_name(const char *pattern, int32_t expert, char *out, size_t out_size) {
  const char *star = strchr(pattern, '*');
  const int n = star ? snprintf(out, out_size, "%.*s%d%s", (int)(star - pattern), pattern, (int)expert, star + 1)
                     : snprintf(out, out_size, "%s", pattern);
  return n >= 0 && (size_t)n < out_size;
}

bool up_checkpoint_dims_match(const int64_t *dims, int32_t n_dims, const int64_t *want, int32_t n_want) {
  int32_t i = 0, j = 0;
  for (;;) {
    while (i < n_dims && dims[i] == 1) ++i;
    while (j < n_want && want[j] == 1) ++j;
    if (i == n_dims || j == n_want) return i == n_dims && j == n_want;
    if (dims[i++] != want[j++]) return false;
  }
}

void up_checkpoint_format_dims(const int64_t *dims, int32_t n_dims, char *out, size_t out_size) {
  size_t used = 0;
  out[0] = '\0';
  for (int32_t d = 0; d < n_dims && used < out_size; ++d)
    used += (size_t)snprintf(out + used, out_size - used, "%s%lld", d ? ", " : "", (long long)dims[d]);
}
