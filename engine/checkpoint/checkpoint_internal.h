/* checkpoint_internal.h — what engine/checkpoint/checkpoint.c asks of each format's side
 * (checkpoint_gguf.c, checkpoint_hf.c): the config from the format's metadata, and one
 * tensor in the engine's layout; and of checkpoint_tensor_names.c, that every stored
 * tensor is one the model uses. Not for use outside the checkpoint module. */
#ifndef UP_CHECKPOINT_INTERNAL_H
#define UP_CHECKPOINT_INTERNAL_H

#include "engine/checkpoint/checkpoint.h"

typedef struct up_hf_checkpoint up_hf_checkpoint;

bool up_checkpoint_gguf_config(const up_gguf *g, up_model_config *cfg, char *err, size_t err_size);
bool up_checkpoint_gguf_read(const up_gguf *g, const up_file_tensor *tensor, float *out, char *err,
                             size_t err_size);

/* True when every tensor of the file is a part of a weight of cfg's model or one the
 * reader consumes knowingly; otherwise false with a message naming the file, the first
 * unknown tensor and how many there are. */
bool up_checkpoint_gguf_check_tensors(const up_gguf *g, const up_model_config *cfg, char *err, size_t err_size);
bool up_checkpoint_hf_check_tensors(const up_hf_checkpoint *hf, const up_model_config *cfg, char *err,
                                    size_t err_size);

bool up_checkpoint_hf_read(const up_hf_checkpoint *hf, const up_file_tensor *tensor, float *out, char *err,
                           size_t err_size);

#endif
