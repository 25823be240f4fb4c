/* checkpoint_internal.h — what engine/checkpoint/checkpoint.c asks of each format's side
 * (checkpoint_gguf.c, checkpoint_hf.c): the config from the format's metadata, and one
 * weight in the engine's layout. Not for use outside the checkpoint module. */
#ifndef UP_CHECKPOINT_INTERNAL_H
#define UP_CHECKPOINT_INTERNAL_H

#include "engine/checkpoint/checkpoint.h"

typedef struct up_hf_checkpoint up_hf_checkpoint;

bool up_checkpoint_gguf_config(const up_gguf *g, up_model_config *cfg, char *err, size_t err_size);
bool up_checkpoint_gguf_read(const up_gguf *g, const up_model_config *cfg, up_weight_role role, int32_t layer,
                             float *out, char *err, size_t err_size);

bool up_checkpoint_hf_read(const up_hf_checkpoint *hf, const up_model_config *cfg, up_weight_role role,
                           int32_t layer, float *out, char *err, size_t err_size);

#endif
