/* checkpoint.c — opening a checkpoint of either format (its config validated and every
 * stored tensor one the model uses) and dispatch of tensor reads to the format's side. */
#include "engine/checkpoint/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/checkpoint/checkpoint_internal.h"
#include "engine/checkpoint/gguf.h"
#include "engine/checkpoint/hf_checkpoint.h"
#include "core/fatal.h"

struct up_checkpoint {
  up_checkpoint_format format;
  char path[4096];
  up_model_config cfg;
  up_gguf *gguf;
  up_hf_checkpoint *hf;
};

static bool ends_with(const char *s, const char *suffix) {
  const size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

bool up_checkpoint_is_path(const char *model_arg) {
  struct stat st;
  return strchr(model_arg, '/') != NULL || ends_with(model_arg, ".gguf") || stat(model_arg, &st) == 0;
}

up_checkpoint *up_checkpoint_open(const char *path, char *err, size_t err_size) {
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, err_size, "%s: no such file or directory (a checkpoint is a .gguf file or a Hugging Face "
             "directory with config.json)", path);
    return NULL;
  }
  up_checkpoint *ck = up_calloc_or_die(1, sizeof *ck, "checkpoint");
  snprintf(ck->path, sizeof ck->path, "%s", path);
  bool ok;
  if (S_ISDIR(st.st_mode)) {
    ck->format = UP_CHECKPOINT_HF;
    ck->hf = up_hf_checkpoint_open(path, err, err_size);
    if (ck->hf) ck->cfg = *up_hf_checkpoint_config(ck->hf);
    ok = ck->hf != NULL;
  } else {
    ck->format = UP_CHECKPOINT_GGUF;
    ck->gguf = up_gguf_open(path, err, err_size);
    ok = ck->gguf && up_checkpoint_gguf_config(ck->gguf, &ck->cfg, err, err_size);
  }
  if (ok) ok = up_model_config_validate(&ck->cfg, err, err_size);
  /* Only a valid config resolves the architecture's table that the names are checked against. */
  if (ok)
    ok = ck->format == UP_CHECKPOINT_GGUF ? up_checkpoint_gguf_check_tensors(ck->gguf, &ck->cfg, err, err_size)
                                          : up_checkpoint_hf_check_tensors(ck->hf, &ck->cfg, err, err_size);
  if (!ok) {
    up_checkpoint_close(ck);
    return NULL;
  }
  return ck;
}

void up_checkpoint_close(up_checkpoint *ck) {
  if (!ck) return;
  if (ck->gguf) up_gguf_close(ck->gguf);
  if (ck->hf) up_hf_checkpoint_close(ck->hf);
  free(ck);
}

up_checkpoint_format up_checkpoint_format_of(const up_checkpoint *ck) { return ck->format; }
const up_model_config *up_checkpoint_config(const up_checkpoint *ck) { return &ck->cfg; }
const char *up_checkpoint_path(const up_checkpoint *ck) { return ck->path; }
const up_gguf *up_checkpoint_gguf(const up_checkpoint *ck) { return ck->gguf; }

bool up_checkpoint_read(const up_checkpoint *ck, const up_file_tensor *tensor, float *out, char *err,
                        size_t err_size) {
  if (ck->format == UP_CHECKPOINT_GGUF)
    return up_checkpoint_gguf_read(ck->gguf, &ck->cfg, tensor, out, err, err_size);
  return up_checkpoint_hf_read(ck->hf, tensor, out, err, err_size);
}
