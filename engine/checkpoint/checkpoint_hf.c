/* checkpoint_hf.c — the Hugging Face side of engine/checkpoint/checkpoint.h: tensors read
 * by the names the architecture's table gives. Safetensors' [out][in] row-major layout
 * and rotate-half rotary order are already the engine's, so weights convert element
 * for element, except where the table says a part takes some rows of its tensor
 * (checkpoint_layout.c) or is a stack of experts stored one tensor per expert (or, as
 * transformers 5 may save Qwen3-Next, one tensor for all: checkpoint_qwen3_next.c). */
#include "engine/checkpoint/checkpoint_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/checkpoint/hf_checkpoint.h"
#include "engine/checkpoint/safetensors.h"

/* One stored tensor (one expert's, for a stack) into out: rows x cols engine floats. */
static bool read_one(const up_hf_checkpoint *hf, const up_file_tensor *tensor, const char *name, float *out,
                     char *err, size_t err_size) {
  const up_st_tensor *t = up_hf_checkpoint_find(hf, name);
  if (!t) return up_error(err, err_size, "%s: tensor '%s' is missing", up_hf_checkpoint_dir(hf), name);
  const up_model_config *cfg = up_hf_checkpoint_config(hf);
  const int64_t rows = tensor->rows, cols = tensor->cols;
  const int64_t stored_rows = up_checkpoint_stored_rows(cfg, tensor->hf_order, rows);
  const int64_t want[2] = {stored_rows, cols};
  if (!up_checkpoint_dims_match(t->shape, t->n_dims, want, 2)) {
    char got[128];
    up_checkpoint_format_dims(t->shape, t->n_dims, got, sizeof got);
    return up_error(err, err_size, "%s: tensor '%s' has shape [%s], the config needs [%lld, %lld]",
                    up_hf_checkpoint_dir(hf), name, got, (long long)stored_rows, (long long)cols);
  }
  if (tensor->hf_order == UP_ROWS_AS_STORED) return up_safetensors_to_f32(t, out, 0, t->n_elements, err, err_size);
  float *stored = up_malloc_or_die(sizeof(float) * (size_t)t->n_elements, "checkpoint tensor rows");
  const bool ok = up_safetensors_to_f32(t, stored, 0, t->n_elements, err, err_size);
  if (ok) up_checkpoint_take_rows(cfg, tensor->hf_order, stored, out, rows, cols);
  free(stored);
  return ok;
}

/* A part of every expert from one stacked tensor [experts][stored_rows][cols]. */
static bool read_stacked(const up_hf_checkpoint *hf, const up_file_tensor *tensor, const up_stored_source *src,
                         float *out, char *err, size_t err_size) {
  const up_st_tensor *t = up_hf_checkpoint_find(hf, src->name);
  const int64_t rows = tensor->rows, cols = tensor->cols, want[3] = {tensor->experts, src->stored_rows, cols};
  if (!up_checkpoint_dims_match(t->shape, t->n_dims, want, 3)) {
    char got[128], need[128];
    up_checkpoint_format_dims(t->shape, t->n_dims, got, sizeof got);
    up_checkpoint_format_dims(want, 3, need, sizeof need);
    return up_error(err, err_size, "%s: tensor '%s' has shape [%s], the config needs [%s]", up_hf_checkpoint_dir(hf),
                    src->name, got, need);
  }
  float *stored = up_malloc_or_die(sizeof(float) * (size_t)t->n_elements, "stacked experts");
  const bool ok = up_safetensors_to_f32(t, stored, 0, t->n_elements, err, err_size);
  for (int64_t e = 0; ok && e < tensor->experts; ++e)
    memcpy(out + e * rows * cols, stored + (e * src->stored_rows + src->first_row) * cols,
           sizeof(float) * (size_t)(rows * cols));
  free(stored);
  return ok;
}

bool up_checkpoint_hf_read(const up_hf_checkpoint *hf, const up_file_tensor *tensor, float *out, char *err,
                           size_t err_size) {
  if (tensor->experts <= 0) return read_one(hf, tensor, tensor->hf_name, out, err, err_size);
  char name[sizeof tensor->hf_name + 16];
  UP_ASSERT(up_checkpoint_expert_name(tensor->hf_name, 0, name, sizeof name), "expert tensor name %s",
            tensor->hf_name);
  up_stored_source stacked;
  if (!up_hf_checkpoint_find(hf, name) &&
      up_checkpoint_hf_qwen3_next_fused_experts(up_hf_checkpoint_config(hf), tensor, &stacked)) {
    if (up_hf_checkpoint_find(hf, stacked.name)) return read_stacked(hf, tensor, &stacked, out, err, err_size);
    return up_error(err, err_size, "%s: tensor '%s' is missing (and so is '%s', which may hold it instead)",
                    up_hf_checkpoint_dir(hf), name, stacked.name);
  }
  for (int32_t e = 0; e < tensor->experts; ++e) {
    UP_ASSERT(up_checkpoint_expert_name(tensor->hf_name, e, name, sizeof name), "expert tensor name %s",
              tensor->hf_name);
    if (!read_one(hf, tensor, name, out + (int64_t)e * tensor->rows * tensor->cols, err, err_size)) return false;
  }
  return true;
}
