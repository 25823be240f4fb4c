/* hf_checkpoint.h — a Hugging Face checkpoint directory: config.json (mapped by
 * engine/hf_config) and its safetensors shards, named by model.safetensors.index.json
 * ("weight_map": tensor -> shard file) or, without an index, model.safetensors or the
 * directory's only *.safetensors file. The index and the shards must agree exactly:
 * every shard exists, every mapped tensor is in its shard, no shard holds a tensor the
 * index does not map to it. Tensors are then found by name across shards. Errors name
 * the directory or file. Uploading tensors to a backend is engine/checkpoint/checkpoint.c's job. */
#ifndef UP_HF_CHECKPOINT_H
#define UP_HF_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model/model_config.h"
#include "engine/checkpoint/safetensors.h"

/* Index files larger than this are refused (a 405B model's index is about 2 MB). */
#define UP_HF_INDEX_MAX_BYTES (64u << 20)

typedef struct up_hf_checkpoint up_hf_checkpoint;

/* Open dir: its config (named after the directory's basename) and every shard. On
 * failure returns NULL and writes a message into err. */
up_hf_checkpoint *up_hf_checkpoint_open(const char *dir, char *err, size_t err_size);
void up_hf_checkpoint_close(up_hf_checkpoint *ck);

const char *up_hf_checkpoint_dir(const up_hf_checkpoint *ck);
const up_model_config *up_hf_checkpoint_config(const up_hf_checkpoint *ck);

int32_t up_hf_checkpoint_shard_count(const up_hf_checkpoint *ck);
const up_safetensors *up_hf_checkpoint_shard_at(const up_hf_checkpoint *ck, int32_t index); /* NULL out of range */

/* All tensors of all shards, sorted by name. */
int64_t up_hf_checkpoint_tensor_count(const up_hf_checkpoint *ck);
const up_st_tensor *up_hf_checkpoint_tensor_at(const up_hf_checkpoint *ck, int64_t index); /* NULL out of range */
const up_st_tensor *up_hf_checkpoint_find(const up_hf_checkpoint *ck, const char *name);   /* NULL when absent */

#endif
