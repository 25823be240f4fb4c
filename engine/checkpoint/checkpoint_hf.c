/* checkpoint_hf.c — the Hugging Face side of engine/checkpoint/checkpoint.h: tensors read
 * by the names the architecture's table gives. Safetensors' [out][in] row-major layout
 * and rotate-half rotary order are already the engine's, so weights convert element
 * for element. */
#include "engine/checkpoint/checkpoint_internal.h"

#include <stdio.h>

#include "engine/checkpoint/hf_checkpoint.h"
#include "engine/checkpoint/safetensors.h"

bool up_checkpoint_hf_read(const up_hf_checkpoint *hf, const up_file_tensor *tensor, float *out, char *err,
                           size_t err_size) {
  const char *name = tensor->hf_name;
  const up_st_tensor *t = up_hf_checkpoint_find(hf, name);
  if (!t) {
    snprintf(err, err_size, "%s: tensor '%s' is missing", up_hf_checkpoint_dir(hf), name);
    return false;
  }
  const int64_t rows = tensor->rows, cols = tensor->cols;
  const bool shape_ok = rows == 1 ? (t->n_dims == 1 && t->shape[0] == cols)
                                  : (t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols);
  if (!shape_ok) {
    snprintf(err, err_size, "%s: tensor '%s' has %d dims (first %lld), the config needs [%lld, %lld]",
             up_hf_checkpoint_dir(hf), name, (int)t->n_dims, (long long)(t->n_dims > 0 ? t->shape[0] : 0),
             (long long)rows, (long long)cols);
    return false;
  }
  return up_safetensors_to_f32(t, out, 0, t->n_elements, err, err_size);
}
