/* tokenizer_hf_internal.h — what the Hugging Face loader's files share (tokenizer_hf.c:
 * tokenizer.json's model, vocabulary and added tokens; tokenizer_hf_pipeline.c: its
 * pre-tokenizer, normalizer, decoder and post-processor; tokenizer_hf_config.c:
 * tokenizer_config.json) and nothing else may use. Messages name the file and the key. */
#ifndef UP_TOKENIZER_HF_INTERNAL_H
#define UP_TOKENIZER_HF_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/tokenizer/tokenizer_internal.h"

/* Files larger than these are refused (Gemma 3's tokenizer.json is about 33 MB). */
#define UP_HF_TOKENIZER_JSON_MAX_BYTES (128u << 20)
#define UP_HF_TOKENIZER_CONFIG_MAX_BYTES (16u << 20)

/* A member that must be absent, null or a boolean; *out keeps fallback unless a boolean
 * is there. */
bool up_hf_optional_bool(const cJSON *object, const char *key, bool fallback, bool *out, const char *file,
                         const char *where, char *err, size_t err_size);

/* The "type" string of a pipeline step (e.g. "ByteLevel"), or NULL with a message. */
const char *up_hf_step_type(const cJSON *step, const char *file, const char *where, char *err, size_t err_size);

/* tokenizer.json's pre_tokenizer as regexes for the byte-level BPE: ByteLevel, or a
 * Sequence of Split (a Regex pattern, behavior Isolated) and Digits steps ending in
 * ByteLevel. Any other kind or option is refused by name. */
up_bpe_pretokenizer *up_hf_pretokenizer(const cJSON *pre_tokenizer, bool ignore_merges, const char *file,
                                        char *err, size_t err_size);

/* Refuse a normalizer (only none is implemented) and a decoder other than ByteLevel. */
bool up_hf_check_normalizer_and_decoder(const cJSON *root, const char *file, char *err, size_t err_size);

/* The special token tokenizer.json's post_processor puts before the text, as written
 * in its TemplateProcessing (e.g. "<|begin_of_text|>"), or NULL when it adds none.
 * Templates that add anything else (a suffix, a second sequence marker) are refused. */
bool up_hf_post_processor_prefix(const cJSON *post_processor, const char *file, const char **prefix, char *err,
                                 size_t err_size);

/* tokenizer_config.json of dir (optional) into tok: BOS, EOS, unknown and padding
 * tokens, whether BOS is added (add_bos_token, else whether the post-processor puts
 * prefix_token first) and the chat template ("default" of a list; chat_template.jinja
 * when the config has none). tok's vocabulary is already mapped. */
bool up_hf_read_tokenizer_config(up_tokenizer *tok, const char *dir, const char *prefix_token, char *err,
                                 size_t err_size);

#endif
