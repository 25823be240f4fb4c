/* tokenizer_hf_pipeline.c — the steps around tokenizer.json's BPE model, mapped onto
 * what the byte-level BPE implements: the pre_tokenizer becomes the list of regexes
 * tokenizer_bpe.c splits by, the normalizer must be absent, the decoder ByteLevel, and the
 * post_processor may put one special token (BOS) first. Whatever would change the ids
 * and is not implemented here is refused by name, never approximated. Owns no tokenizer
 * state: the vocabulary and merges are tokenizer_hf.c's. */
#include <stdio.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/tokenizer/tokenizer_hf_internal.h"

bool up_hf_optional_bool(const cJSON *object, const char *key, bool fallback, bool *out, const char *file,
                         const char *where, char *err, size_t err_size) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
  *out = fallback;
  if (!item || cJSON_IsNull(item)) return true;
  if (!cJSON_IsBool(item)) return up_error(err, err_size, "%s: %s.%s is not a boolean", file, where, key);
  *out = cJSON_IsTrue(item);
  return true;
}

const char *up_hf_step_type(const cJSON *step, const char *file, const char *where, char *err, size_t err_size) {
  const cJSON *type = cJSON_IsObject(step) ? cJSON_GetObjectItemCaseSensitive(step, "type") : NULL;
  if (!cJSON_IsString(type)) {
    up_error(err, err_size, "%s: %s is not an object with a \"type\" string", file, where);
    return NULL;
  }
  return type->valuestring;
}

/* --- pre-tokenizer ----------------------------------------------------------------------- */

typedef struct pattern_list {
  const char *items[UP_BPE_MAX_PRETOKENIZER_REGEXES];
  int count;
} pattern_list;

static bool push_pattern(pattern_list *list, const char *pattern, const char *file, char *err, size_t err_size) {
  if (list->count == UP_BPE_MAX_PRETOKENIZER_REGEXES)
    return up_error(err, err_size, "%s: pre_tokenizer has more than %d splitting steps", file,
                    UP_BPE_MAX_PRETOKENIZER_REGEXES);
  list->items[list->count++] = pattern;
  return true;
}

/* ByteLevel maps bytes to GPT-2's characters, which the BPE does itself; with use_regex
 * it first splits by GPT-2's regex. A prefix space would change the text. */
static bool byte_level_step(const cJSON *step, pattern_list *list, const char *file, const char *where, char *err,
                            size_t err_size) {
  bool add_prefix_space, use_regex;
  /* Both default to true in the tokenizers library when a file leaves them out. */
  if (!up_hf_optional_bool(step, "add_prefix_space", true, &add_prefix_space, file, where, err, err_size) ||
      !up_hf_optional_bool(step, "use_regex", true, &use_regex, file, where, err, err_size))
    return false;
  if (add_prefix_space)
    return up_error(err, err_size, "%s: %s (ByteLevel) has add_prefix_space true (or unset), which is not "
                    "supported", file, where);
  return !use_regex || push_pattern(list, UP_BPE_PATTERN_GPT2, file, err, err_size);
}

/* Split with a regex, each match and each gap becoming a piece ("Isolated"). */
static bool split_step(const cJSON *step, pattern_list *list, const char *file, const char *where, char *err,
                       size_t err_size) {
  const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(step, "pattern");
  const cJSON *regex = cJSON_IsObject(pattern) ? cJSON_GetObjectItemCaseSensitive(pattern, "Regex") : NULL;
  if (!cJSON_IsString(regex))
    return up_error(err, err_size, "%s: %s (Split) needs a pattern {\"Regex\": ...}; other patterns (\"String\") "
                    "are not supported", file, where);
  const cJSON *behavior = cJSON_GetObjectItemCaseSensitive(step, "behavior");
  if (!cJSON_IsString(behavior) || strcmp(behavior->valuestring, "Isolated") != 0)
    return up_error(err, err_size, "%s: %s (Split) behavior is %s%s%s; only \"Isolated\" is supported", file, where,
                    cJSON_IsString(behavior) ? "\"" : "", cJSON_IsString(behavior) ? behavior->valuestring : "missing",
                    cJSON_IsString(behavior) ? "\"" : "");
  bool invert;
  if (!up_hf_optional_bool(step, "invert", false, &invert, file, where, err, err_size)) return false;
  if (invert) return up_error(err, err_size, "%s: %s (Split) has invert true, which is not supported", file, where);
  return push_pattern(list, regex->valuestring, file, err, err_size);
}

/* Digits: each digit alone, or runs of digits (Unicode numeric characters both). */
static bool digits_step(const cJSON *step, pattern_list *list, const char *file, const char *where, char *err,
                        size_t err_size) {
  bool individual;
  if (!up_hf_optional_bool(step, "individual_digits", false, &individual, file, where, err, err_size)) return false;
  return push_pattern(list, individual ? "\\p{N}" : "\\p{N}+", file, err, err_size);
}

static bool pre_step(const cJSON *step, bool last, pattern_list *list, const char *file, const char *where,
                     char *err, size_t err_size) {
  const char *type = up_hf_step_type(step, file, where, err, err_size);
  if (!type) return false;
  const bool byte_level = strcmp(type, "ByteLevel") == 0;
  if (!byte_level && strcmp(type, "Split") != 0 && strcmp(type, "Digits") != 0)
    return up_error(err, err_size, "%s: %s is a \"%s\" pre-tokenizer, which is not supported (supported: ByteLevel, "
                    "or a Sequence of Split and Digits steps ending in ByteLevel)", file, where, type);
  if (byte_level != last)
    return up_error(err, err_size, "%s: %s is %s, but ByteLevel must be the pre-tokenizer's last step (and only "
                    "there)", file, where, type);
  if (byte_level) return byte_level_step(step, list, file, where, err, err_size);
  if (strcmp(type, "Split") == 0) return split_step(step, list, file, where, err, err_size);
  return digits_step(step, list, file, where, err, err_size);
}

up_bpe_pretokenizer *up_hf_pretokenizer(const cJSON *pre_tokenizer, bool ignore_merges, const char *file,
                                        char *err, size_t err_size) {
  if (!pre_tokenizer || cJSON_IsNull(pre_tokenizer)) {
    up_error(err, err_size, "%s: pre_tokenizer is missing; a byte-level BPE needs ByteLevel", file);
    return NULL;
  }
  const char *type = up_hf_step_type(pre_tokenizer, file, "pre_tokenizer", err, err_size);
  if (!type) return NULL;
  pattern_list list = {0};
  if (strcmp(type, "Sequence") == 0) {
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(pre_tokenizer, "pretokenizers");
    const int n = cJSON_IsArray(steps) ? cJSON_GetArraySize(steps) : 0;
    if (n == 0) {
      up_error(err, err_size, "%s: pre_tokenizer (Sequence) has no \"pretokenizers\" list", file);
      return NULL;
    }
    for (int i = 0; i < n; ++i) {
      char where[64];
      snprintf(where, sizeof where, "pre_tokenizer.pretokenizers[%d]", i);
      if (!pre_step(cJSON_GetArrayItem(steps, i), i == n - 1, &list, file, where, err, err_size)) return NULL;
    }
  } else if (!pre_step(pre_tokenizer, true, &list, file, "pre_tokenizer", err, err_size)) {
    return NULL;
  }
  char label[300];
  snprintf(label, sizeof label, "%s pre_tokenizer", file);
  return up_bpe_pretokenizer_from_patterns(list.items, list.count, ignore_merges, label, err, err_size);
}

/* --- normalizer and decoder ---------------------------------------------------------------- */

bool up_hf_check_normalizer_and_decoder(const cJSON *root, const char *file, char *err, size_t err_size) {
  const cJSON *normalizer = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
  if (normalizer && !cJSON_IsNull(normalizer)) {
    const char *type = up_hf_step_type(normalizer, file, "normalizer", err, err_size);
    if (!type) return false;
    return up_error(err, err_size, "%s: normalizer \"%s\" is not supported (only none: null)", file, type);
  }
  const cJSON *decoder = cJSON_GetObjectItemCaseSensitive(root, "decoder");
  if (!decoder || cJSON_IsNull(decoder))
    return up_error(err, err_size, "%s: decoder is missing; a byte-level BPE needs the ByteLevel decoder", file);
  const char *type = up_hf_step_type(decoder, file, "decoder", err, err_size);
  if (!type) return false;
  if (strcmp(type, "ByteLevel") != 0)
    return up_error(err, err_size, "%s: decoder \"%s\" is not supported (only ByteLevel)", file, type);
  return true;
}

/* --- post-processor -------------------------------------------------------------------------- */

/* TemplateProcessing's "single": an optional {"SpecialToken": {"id": TOKEN}} then
 * {"Sequence": {"id": "A"}}. */
static bool template_prefix(const cJSON *step, const char *file, const char *where, const char **prefix, char *err,
                            size_t err_size) {
  const cJSON *single = cJSON_GetObjectItemCaseSensitive(step, "single");
  const int n = cJSON_IsArray(single) ? cJSON_GetArraySize(single) : 0;
  const cJSON *first = n == 2 ? cJSON_GetArrayItem(single, 0) : NULL;
  const cJSON *special = first ? cJSON_GetObjectItemCaseSensitive(first, "SpecialToken") : NULL;
  const cJSON *token = cJSON_IsObject(special) ? cJSON_GetObjectItemCaseSensitive(special, "id") : NULL;
  const cJSON *last = n > 0 ? cJSON_GetArrayItem(single, n - 1) : NULL;
  const cJSON *sequence = cJSON_IsObject(last) ? cJSON_GetObjectItemCaseSensitive(last, "Sequence") : NULL;
  const cJSON *seq_id = cJSON_IsObject(sequence) ? cJSON_GetObjectItemCaseSensitive(sequence, "id") : NULL;
  const bool sequence_ok = cJSON_IsString(seq_id) && strcmp(seq_id->valuestring, "A") == 0;
  if (!sequence_ok || (n == 2 && !cJSON_IsString(token)) || n < 1 || n > 2)
    return up_error(err, err_size, "%s: %s (TemplateProcessing) \"single\" is not [SpecialToken, Sequence A] or "
                    "[Sequence A]; other templates (a suffix token) are not supported", file, where);
  if (n == 2) {
    if (*prefix)
      return up_error(err, err_size, "%s: %s adds a second prefix token, which is not supported", file, where);
    *prefix = token->valuestring;
  }
  return true;
}

static bool post_step(const cJSON *step, const char *file, const char *where, const char **prefix, char *err,
                      size_t err_size) {
  const char *type = up_hf_step_type(step, file, where, err, err_size);
  if (!type) return false;
  if (strcmp(type, "ByteLevel") == 0) return true; /* it only moves offsets */
  if (strcmp(type, "TemplateProcessing") == 0) return template_prefix(step, file, where, prefix, err, err_size);
  return up_error(err, err_size, "%s: %s is a \"%s\" post-processor, which is not supported (supported: ByteLevel, "
                  "TemplateProcessing, a Sequence of them)", file, where, type);
}

bool up_hf_post_processor_prefix(const cJSON *post_processor, const char *file, const char **prefix, char *err,
                                 size_t err_size) {
  *prefix = NULL;
  if (!post_processor || cJSON_IsNull(post_processor)) return true;
  const char *type = up_hf_step_type(post_processor, file, "post_processor", err, err_size);
  if (!type) return false;
  if (strcmp(type, "Sequence") != 0) return post_step(post_processor, file, "post_processor", prefix, err, err_size);
  const cJSON *steps = cJSON_GetObjectItemCaseSensitive(post_processor, "processors");
  if (!cJSON_IsArray(steps))
    return up_error(err, err_size, "%s: post_processor (Sequence) has no \"processors\" list", file);
  for (int i = 0; i < cJSON_GetArraySize(steps); ++i) {
    char where[64];
    snprintf(where, sizeof where, "post_processor.processors[%d]", i);
    if (!post_step(cJSON_GetArrayItem(steps, i), file, where, prefix, err, err_size)) return false;
  }
  return true;
}
