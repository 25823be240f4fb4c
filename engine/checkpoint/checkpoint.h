/* checkpoint.h — a trained model on disk, in either format the suite reads: a GGUF file
 * (llama.cpp) or a Hugging Face directory (config.json + safetensors). Owns the mapping
 * from each format's metadata to up_model_config and the reading of one tensor into the
 * engine's layout (dequantized, shape checked, GGUF's rotary row order undone where the
 * tensor says so). Which tensors a model has, and their names, are its architecture's
 * (engine/model/arch.h): the model code asks for "layer 3's query projection" by the
 * architecture's table and never sees a file format. */
#ifndef UP_CHECKPOINT_H
#define UP_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model/arch.h"
#include "engine/model/model_config.h"

typedef struct up_gguf up_gguf;
typedef struct up_checkpoint up_checkpoint;

typedef enum up_checkpoint_format {
  UP_CHECKPOINT_GGUF = 0,
  UP_CHECKPOINT_HF = 1,
} up_checkpoint_format;

/* True when a --model argument names a file or directory rather than a preset. */
bool up_checkpoint_is_path(const char *model_arg);

/* Open a .gguf file or a Hugging Face checkpoint directory and derive its config
 * (validated). Every tensor the checkpoint stores must be a weight of that model (or
 * one its reader consumes knowingly: checkpoint_tensor_names.c): one the engine would
 * ignore is refused, not approximated. NULL with a message naming the path and the
 * cause on failure. */
up_checkpoint *up_checkpoint_open(const char *path, char *err, size_t err_size);
void up_checkpoint_close(up_checkpoint *ck);

up_checkpoint_format up_checkpoint_format_of(const up_checkpoint *ck);
const up_model_config *up_checkpoint_config(const up_checkpoint *ck);
const char *up_checkpoint_path(const up_checkpoint *ck);
/* The GGUF reader behind a GGUF checkpoint (tokenizer metadata lives there); NULL for
 * Hugging Face directories. */
const up_gguf *up_checkpoint_gguf(const up_checkpoint *ck);

/* Dequantize one checkpoint tensor, as the architecture's table describes it
 * (engine/model/arch.h: up_arch_file_tensor), into out (rows*cols floats, engine
 * layout; a part of an expert stack: experts*rows*cols, expert by expert). False with
 * a message naming the file and tensor when it is missing or misshapen. */
bool up_checkpoint_read(const up_checkpoint *ck, const up_file_tensor *tensor, float *out, char *err,
                        size_t err_size);

#endif
