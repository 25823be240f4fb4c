/* tokenizer_hf_config.c — a Hugging Face directory's tokenizer_config.json read into a
 * tokenizer whose vocabulary tokenizer_hf.c has loaded: the special tokens (a string, or
 * an AddedToken object with "content"), whether BOS goes first, and the chat template (a
 * string, or a list of named templates of which "default" is taken; chat_template.jinja
 * beside it when the config has none). The file is optional: without it the tokenizer
 * has no BOS/EOS and adds what tokenizer.json's post-processor adds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fatal.h"
#include "engine/checkpoint/json_input.h"
#include "engine/tokenizer/tokenizer_hf_internal.h"

/* A chat template longer than this is refused (real ones are a few KB). */
#define CHAT_TEMPLATE_MAX_BYTES (1u << 20)

/* The id of the special token named by key (absent or null: *id stays -1). */
static bool special_token(const up_tokenizer *tok, const cJSON *config, const char *key, int32_t *id,
                          const char *file, char *err, size_t err_size) {
  *id = -1;
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(config, key);
  if (!item || cJSON_IsNull(item)) return true;
  const cJSON *text = cJSON_IsObject(item) ? cJSON_GetObjectItemCaseSensitive(item, "content") : item;
  if (!cJSON_IsString(text))
    return up_error(err, err_size, "%s: %s is neither a string nor an object with a \"content\" string", file, key);
  *id = up_tokenizer_vocab_find(tok, text->valuestring, strlen(text->valuestring));
  if (*id < 0)
    return up_error(err, err_size, "%s: %s \"%.64s\" is not a token of tokenizer.json", file, key, text->valuestring);
  return true;
}

static void set_chat_template(up_tokenizer *tok, const char *text, size_t len) {
  tok->chat_template = up_malloc_or_die(len + 1, "tokenizer chat template");
  memcpy(tok->chat_template, text, len);
  tok->chat_template[len] = '\0';
}

/* chat_template: a string, or [{"name": ..., "template": ...}, ...] of which "default". */
static bool config_chat_template(up_tokenizer *tok, const cJSON *item, const char *file, char *err, size_t err_size) {
  if (cJSON_IsString(item)) {
    set_chat_template(tok, item->valuestring, strlen(item->valuestring));
    return true;
  }
  if (!cJSON_IsArray(item))
    return up_error(err, err_size, "%s: chat_template is neither a string nor a list of named templates", file);
  const cJSON *entry = NULL;
  cJSON_ArrayForEach(entry, item) {
    const cJSON *name = cJSON_IsObject(entry) ? cJSON_GetObjectItemCaseSensitive(entry, "name") : NULL;
    const cJSON *text = cJSON_IsObject(entry) ? cJSON_GetObjectItemCaseSensitive(entry, "template") : NULL;
    if (!cJSON_IsString(name) || !cJSON_IsString(text))
      return up_error(err, err_size, "%s: chat_template lists an entry without \"name\" and \"template\" strings", file);
    if (strcmp(name->valuestring, "default") == 0) {
      set_chat_template(tok, text->valuestring, strlen(text->valuestring));
      return true;
    }
  }
  return up_error(err, err_size, "%s: chat_template lists no template named \"default\"", file);
}

/* chat_template.jinja, which newer checkpoints keep beside the config; absent is fine. */
static bool jinja_chat_template(up_tokenizer *tok, const char *dir, char *err, size_t err_size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
  FILE *f = fopen(path, "rb");
  if (!f) return errno == ENOENT || up_error(err, err_size, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  bool ok = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size <= CHAT_TEMPLATE_MAX_BYTES;
  if (!ok) {
    up_error(err, err_size, "%s: not a regular file of at most %u bytes", path, CHAT_TEMPLATE_MAX_BYTES);
  } else {
    char *text = up_malloc_or_die((size_t)sb.st_size + 1, "chat template");
    const size_t len = fread(text, 1, (size_t)sb.st_size, f);
    ok = len == (size_t)sb.st_size && !memchr(text, '\0', len);
    if (ok) set_chat_template(tok, text, len);
    else up_error(err, err_size, "%s: read %zu of %lld bytes, or holds a NUL byte", path, len, (long long)sb.st_size);
    free(text);
  }
  fclose(f);
  return ok;
}

static bool read_config(up_tokenizer *tok, const cJSON *config, const char *file, const char *prefix_token, char *err,
                        size_t err_size) {
  if (!cJSON_IsObject(config)) return up_error(err, err_size, "%s: not a JSON object", file);
  const char *dup = up_json_duplicate_key_anywhere(config);
  if (dup) return up_error(err, err_size, "%s: key \"%.64s\" appears twice in one object", file, dup);
  if (!special_token(tok, config, "bos_token", &tok->bos, file, err, err_size) ||
      !special_token(tok, config, "eos_token", &tok->eos, file, err, err_size) ||
      !special_token(tok, config, "unk_token", &tok->unk, file, err, err_size) ||
      !special_token(tok, config, "pad_token", &tok->pad, file, err, err_size))
    return false;
  /* Without add_bos_token, BOS goes first exactly when the post-processor puts it there. */
  const int32_t prefix_id = prefix_token ? up_tokenizer_vocab_find(tok, prefix_token, strlen(prefix_token)) : -1;
  bool add_eos;
  if (!up_hf_optional_bool(config, "add_bos_token", prefix_id >= 0, &tok->add_bos, file, "tokenizer_config", err,
                           err_size) ||
      !up_hf_optional_bool(config, "add_eos_token", false, &add_eos, file, "tokenizer_config", err, err_size))
    return false;
  if (add_eos) return up_error(err, err_size, "%s: add_eos_token is true, which is not supported", file);
  const cJSON *chat = cJSON_GetObjectItemCaseSensitive(config, "chat_template");
  return !chat || cJSON_IsNull(chat) || config_chat_template(tok, chat, file, err, err_size);
}

bool up_hf_read_tokenizer_config(up_tokenizer *tok, const char *dir, const char *prefix_token, char *err,
                                 size_t err_size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  bool ok = true;
  struct stat sb;
  if (stat(path, &sb) == 0) {
    cJSON *config = up_json_parse_file(path, UP_HF_TOKENIZER_CONFIG_MAX_BYTES, err, err_size);
    ok = config && read_config(tok, config, path, prefix_token, err, err_size);
    cJSON_Delete(config);
  } else {
    tok->add_bos = prefix_token != NULL;
  }
  if (ok && prefix_token) {
    /* The post-processor's prefix must be the BOS the engine would add. */
    const int32_t prefix_id = up_tokenizer_vocab_find(tok, prefix_token, strlen(prefix_token));
    if (prefix_id < 0)
      return up_error(err, err_size, "%s/tokenizer.json: post_processor adds \"%.64s\", which is not a token", dir,
                      prefix_token);
    if (tok->bos < 0) tok->bos = prefix_id;
    if (prefix_id != tok->bos)
      return up_error(err, err_size, "%s/tokenizer.json: post_processor adds \"%.64s\" first, which is not the BOS "
                      "token of tokenizer_config.json", dir, prefix_token);
  }
  if (ok && tok->add_bos && tok->bos < 0)
    return up_error(err, err_size, "%s/tokenizer_config.json: add_bos_token is true but no bos_token is named", dir);
  if (ok && !tok->chat_template) ok = jinja_chat_template(tok, dir, err, err_size);
  return ok;
}
