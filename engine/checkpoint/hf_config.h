/* hf_config.h — maps a Hugging Face config.json onto up_model_config. One mapper per
 * model_type: "llama" (LlamaForCausalLM) and "gemma3_text" (Gemma3ForCausalLM) are
 * read; the multimodal "gemma3" and "qwen3_next" are recognised and refused with the
 * reason. Every field is type- and range-checked; a config the engine cannot run
 * exactly (another RoPE scaling, biases, another activation) is an error naming the
 * file and field, never a silent approximation. UniPrefill drop layers come from
 * up_model_config_drop_layers_by_depth (llama) or Gemma 3's defaults. */
#ifndef UP_HF_CONFIG_H
#define UP_HF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/model/model_config.h"

/* config.json files larger than this are refused (real ones are a few KB). */
#define UP_HF_CONFIG_MAX_BYTES (1u << 20)

/* Parse len bytes of config.json text into cfg, named name (the checkpoint
 * directory's basename). source names the text in messages. On failure returns
 * false and writes "<source>: <what>" into err; cfg is then unspecified. */
bool up_hf_config_parse(const char *text, size_t len, const char *name, const char *source, up_model_config *cfg,
                        char *err, size_t err_size);

/* Same, reading the file at path. */
bool up_hf_config_load(const char *path, const char *name, up_model_config *cfg, char *err, size_t err_size);

#endif
