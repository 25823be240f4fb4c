/* checkpoint.h — a trained model on disk, in either format the suite reads: a GGUF file
 * (llama.cpp) or a Hugging Face directory (config.json + safetensors). Owns the mapping
 * from each format's metadata to up_model_config and from its tensor names and layouts
 * to the engine's weights (GGUF's rotary row order undone, tied embeddings resolved), so
 * the model code asks for "layer 3's query projection" and never sees a file format. */
#ifndef UP_CHECKPOINT_H
#define UP_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model/model_config.h"

typedef struct up_gguf up_gguf;
typedef struct up_checkpoint up_checkpoint;

typedef enum up_checkpoint_format {
  UP_CHECKPOINT_GGUF = 0,
  UP_CHECKPOINT_HF = 1,
} up_checkpoint_format;

/* The weights the llama-family forward pass needs; per layer unless noted. */
typedef enum up_weight_role {
  UP_WEIGHT_EMBED = 0,      /* model-wide [vocab][hidden] */
  UP_WEIGHT_LM_HEAD,        /* model-wide [vocab][hidden]; the embedding when tied */
  UP_WEIGHT_FINAL_NORM,     /* model-wide [hidden] */
  UP_WEIGHT_ATTN_NORM,      /* [hidden] */
  UP_WEIGHT_Q,              /* [n_heads*head_dim][hidden], rotary halves in rotate-half order */
  UP_WEIGHT_K,              /* [n_kv_heads*head_dim][hidden], same order */
  UP_WEIGHT_V,              /* [n_kv_heads*head_dim][hidden] */
  UP_WEIGHT_O,              /* [hidden][n_heads*head_dim] */
  UP_WEIGHT_MLP_NORM,       /* [hidden] */
  UP_WEIGHT_GATE,           /* [intermediate][hidden] */
  UP_WEIGHT_UP,             /* [intermediate][hidden] */
  UP_WEIGHT_DOWN,           /* [hidden][intermediate] */
  UP_WEIGHT_ROLE_COUNT
} up_weight_role;

/* True when a --model argument names a file or directory rather than a preset. */
bool up_checkpoint_is_path(const char *model_arg);

/* Open a .gguf file or a Hugging Face checkpoint directory and derive its config
 * (validated). NULL with a message naming the path and the cause on failure. */
up_checkpoint *up_checkpoint_open(const char *path, char *err, size_t err_size);
void up_checkpoint_close(up_checkpoint *ck);

up_checkpoint_format up_checkpoint_format_of(const up_checkpoint *ck);
const up_model_config *up_checkpoint_config(const up_checkpoint *ck);
const char *up_checkpoint_path(const up_checkpoint *ck);
/* The GGUF reader behind a GGUF checkpoint (tokenizer metadata lives there); NULL for
 * Hugging Face directories. */
const up_gguf *up_checkpoint_gguf(const up_checkpoint *ck);

/* Shape [rows][cols] of a role in the engine's layout (norms are [1][hidden]). */
void up_checkpoint_role_shape(const up_model_config *cfg, up_weight_role role, int64_t *rows, int64_t *cols);
/* Dequantize one weight into out (rows*cols floats, engine layout). False with a
 * message naming the file and tensor when it is missing or misshapen. */
bool up_checkpoint_read(const up_checkpoint *ck, up_weight_role role, int32_t layer, float *out, char *err,
                        size_t err_size);

#endif
