/* tokenizer_hf.c — the tokenizer of a Hugging Face checkpoint directory: tokenizer.json
 * (the tokenizers library's format) read into the same struct the GGUF loader fills,
 * so both encode through one byte-level BPE (tokenizer_bpe.c). Owns the model section
 * (type BPE, vocab, merges as "a b" strings or [a, b] pairs, its options) and the
 * added tokens; the pipeline steps around the model are tokenizer_hf_pipeline.c's and
 * tokenizer_config.json is tokenizer_hf_config.c's. Also picks the loader for an open
 * checkpoint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/checkpoint/json_input.h"
#include "engine/tokenizer/tokenizer_hf_internal.h"

/* The text of one id while the vocabulary is gathered (pointing into the JSON tree). */
typedef struct id_text {
  const char *text;
  int8_t type; /* up_token_type; 0 while the id is unseen */
} id_text;

/* Model options that would change the ids and are not implemented: refused by name. */
static bool check_model_options(const cJSON *model, const char *file, bool *ignore_merges, char *err,
                                size_t err_size) {
  const char *type = up_hf_step_type(model, file, "model", err, err_size);
  if (!type) return false;
  if (strcmp(type, "BPE") != 0)
    return up_error(err, err_size, "%s: model type \"%s\" is not supported (only BPE)", file, type);
  static const char *const must_be_empty[] = {"dropout", "unk_token", "continuing_subword_prefix",
                                              "end_of_word_suffix"};
  for (size_t i = 0; i < sizeof must_be_empty / sizeof must_be_empty[0]; ++i) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(model, must_be_empty[i]);
    const bool empty = !item || cJSON_IsNull(item) || (cJSON_IsString(item) && item->valuestring[0] == '\0');
    if (!empty)
      return up_error(err, err_size, "%s: model.%s is set, which is not supported (a byte-level BPE has every byte "
                      "and needs none)", file, must_be_empty[i]);
  }
  bool byte_fallback;
  if (!up_hf_optional_bool(model, "byte_fallback", false, &byte_fallback, file, "model", err, err_size) ||
      !up_hf_optional_bool(model, "ignore_merges", false, ignore_merges, file, "model", err, err_size))
    return false;
  if (byte_fallback)
    return up_error(err, err_size, "%s: model.byte_fallback is true, which is not supported", file);
  return true;
}

/* Place text at id, refusing a second, different text for the same id. */
static bool place(id_text *by_id, int64_t id, const char *text, up_token_type type, const char *file,
                  const char *where, char *err, size_t err_size) {
  if (by_id[id].type && strcmp(by_id[id].text, text) != 0)
    return up_error(err, err_size, "%s: %s gives id %lld to \"%.64s\", which already belongs to \"%.64s\"", file, where,
                    (long long)id, text, by_id[id].text);
  if (text[0] == '\0') return up_error(err, err_size, "%s: %s has an empty token at id %lld", file, where, (long long)id);
  by_id[id].text = text;
  if (!by_id[id].type || type != UP_TOKEN_NORMAL) by_id[id].type = (int8_t)type;
  return true;
}

/* An added token: {"id", "content", "special", ...}; matching options other than the
 * defaults (strip the spaces around it, whole words only) would change the ids. */
static bool read_added_token(const cJSON *item, int64_t max_id, int64_t *id, const char **content, bool *special,
                             const char *file, int index, char *err, size_t err_size) {
  char where[64];
  snprintf(where, sizeof where, "added_tokens[%d]", index);
  const cJSON *id_item = cJSON_IsObject(item) ? cJSON_GetObjectItemCaseSensitive(item, "id") : NULL;
  const cJSON *text = cJSON_IsObject(item) ? cJSON_GetObjectItemCaseSensitive(item, "content") : NULL;
  if (!up_json_integer(id_item, 0, max_id, id) || !cJSON_IsString(text))
    return up_error(err, err_size, "%s: %s needs an \"id\" in [0, %lld] and a \"content\" string", file, where,
                    (long long)max_id);
  *content = text->valuestring;
  static const char *const off[] = {"single_word", "lstrip", "rstrip"};
  for (size_t i = 0; i < sizeof off / sizeof off[0]; ++i) {
    bool on;
    if (!up_hf_optional_bool(item, off[i], false, &on, file, where, err, err_size)) return false;
    if (on)
      return up_error(err, err_size, "%s: %s (\"%.64s\") has %s true, which is not supported", file, where, *content,
                      off[i]);
  }
  const cJSON *sp = cJSON_GetObjectItemCaseSensitive(item, "special");
  if (!cJSON_IsBool(sp)) return up_error(err, err_size, "%s: %s has no \"special\" boolean", file, where);
  *special = cJSON_IsTrue(sp);
  return true;
}

/* Every id in [0, n_vocab) gets exactly one text: the model's vocab, whose ids run from
 * 0 without gaps, then the added tokens (special ones are control tokens, the others
 * user-defined, as GGUF types them). An added token is either a vocab entry under its
 * own id or numbered after the vocab in list order: the tokenizers library numbers
 * such tokens that way whatever their "id" says, so a file that says otherwise is
 * refused rather than read with ids the library would not give. */
static bool load_vocabulary(up_tokenizer *tok, const cJSON *vocab, const cJSON *added, const char *file, char *err,
                            size_t err_size) {
  const int n_model = cJSON_GetArraySize(vocab);
  const int n_added = cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0;
  if (n_model == 0) return up_error(err, err_size, "%s: model.vocab is empty", file);
  id_text *by_id = up_calloc_or_die((size_t)n_model + (size_t)n_added, sizeof *by_id, "tokenizer.json ids");
  bool ok = true;
  const cJSON *entry = NULL;
  cJSON_ArrayForEach(entry, vocab) {
    int64_t id;
    /* n_model distinct ids below n_model: every id from 0 has its entry. */
    if (!up_json_integer(entry, 0, n_model - 1, &id)) {
      ok = up_error(err, err_size, "%s: model.vocab[\"%.64s\"] is not an id in [0, %d] (the vocab's ids run from 0 "
                    "without gaps)", file, entry->string, n_model - 1);
      break;
    }
    if (!(ok = place(by_id, id, entry->string, UP_TOKEN_NORMAL, file, "model.vocab", err, err_size))) break;
  }
  int64_t n = n_model;
  for (int i = 0; ok && i < n_added; ++i) {
    int64_t id = 0;
    const char *content = "";
    bool special = false;
    ok = read_added_token(cJSON_GetArrayItem(added, i), n_model + n_added - 1, &id, &content, &special, file, i, err,
                          err_size);
    if (ok && id >= n_model && id != n)
      ok = up_error(err, err_size, "%s: added_tokens[%d] (\"%.64s\") has id %lld, but added tokens outside model.vocab "
                    "are numbered from %d in list order, which makes it %lld", file, i, content, (long long)id, n_model,
                    (long long)n);
    if (ok) ok = place(by_id, id, content, special ? UP_TOKEN_CONTROL : UP_TOKEN_USER_DEFINED, file, "added_tokens",
                       err, err_size);
    if (ok && id == n) n++;
  }
  if (ok) {
    tok->n_vocab = (int32_t)n;
    tok->piece_offset = up_malloc_or_die((size_t)n * sizeof *tok->piece_offset, "tokenizer piece offsets");
    tok->piece_len = up_malloc_or_die((size_t)n * sizeof *tok->piece_len, "tokenizer piece lengths");
    tok->type = up_malloc_or_die((size_t)n, "tokenizer token types");
    size_t total = 0;
    for (int64_t id = 0; id < n; ++id) {
      tok->piece_offset[id] = total;
      tok->piece_len[id] = (uint32_t)strlen(by_id[id].text);
      tok->type[id] = (uint8_t)by_id[id].type;
      total += tok->piece_len[id] + 1;
    }
    tok->piece_text = up_malloc_or_die(total, "tokenizer piece text");
    for (int64_t id = 0; id < n; ++id) memcpy(tok->piece_text + tok->piece_offset[id], by_id[id].text, tok->piece_len[id] + 1);
    up_tokenizer_build_vocab_map(tok);
    /* Each text names one id: an added token that repeats another token's text under
     * its own id would be found under the other one. */
    for (int64_t id = 0; ok && id < n; ++id)
      if (up_tokenizer_vocab_find(tok, by_id[id].text, tok->piece_len[id]) != id)
        ok = up_error(err, err_size, "%s: \"%.64s\" is the text of two ids", file, by_id[id].text);
  }
  free(by_id);
  return ok;
}

/* One merge: "left right" (exactly one space) or ["left", "right"]. */
static bool split_merge(const cJSON *item, const char **left, size_t *left_len, const char **right, size_t *right_len) {
  if (cJSON_IsString(item)) {
    const char *s = item->valuestring;
    const char *sep = strchr(s, ' ');
    if (!sep || sep == s || sep[1] == '\0' || strchr(sep + 1, ' ')) return false;
    *left = s;
    *left_len = (size_t)(sep - s);
    *right = sep + 1;
    *right_len = strlen(sep + 1);
    return true;
  }
  if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2) return false;
  const cJSON *a = cJSON_GetArrayItem(item, 0), *b = cJSON_GetArrayItem(item, 1);
  if (!cJSON_IsString(a) || !cJSON_IsString(b) || !a->valuestring[0] || !b->valuestring[0]) return false;
  *left = a->valuestring;
  *left_len = strlen(a->valuestring);
  *right = b->valuestring;
  *right_len = strlen(b->valuestring);
  return true;
}

/* Merges in rank order; as the tokenizers library does, one whose pieces are not in the
 * vocabulary is an error, and so is a list mixing the two forms; a repeated pair (whose
 * rank would be ambiguous) is refused too. */
static bool load_merges(up_bpe *bpe, const up_tokenizer *tok, const cJSON *merges, const char *file, char *err,
                        size_t err_size) {
  int rank = 0;
  const cJSON *item = NULL;
  const bool strings = cJSON_IsString(cJSON_GetArrayItem(merges, 0));
  cJSON_ArrayForEach(item, merges) {
    if (rank > 0 && (cJSON_IsString(item) != strings))
      return up_error(err, err_size, "%s: model.merges[%d] is a %s, but model.merges[0] is a %s (one form per list)",
                      file, rank, strings ? "pair" : "string", strings ? "string" : "pair");
    const char *left, *right;
    size_t left_len, right_len;
    if (!split_merge(item, &left, &left_len, &right, &right_len))
      return up_error(err, err_size, "%s: model.merges[%d] is neither \"left right\" nor [\"left\", \"right\"]", file,
                      rank);
    const up_bpe_merge_status st = up_bpe_add_merge(bpe, tok, left, left_len, right, right_len, rank);
    if (st != UP_BPE_MERGE_ADDED)
      return up_error(err, err_size, "%s: model.merges[%d] (\"%.*s\" + \"%.*s\") %s", file, rank, (int)left_len, left,
                      (int)right_len, right,
                      st == UP_BPE_MERGE_REPEATED          ? "repeats an earlier merge"
                      : st == UP_BPE_MERGE_HALF_NOT_IN_VOCAB ? "joins a piece that is not in the vocabulary"
                                                             : "makes a piece that is not in the vocabulary");
    rank++;
  }
  return true;
}

/* Everything tokenizer.json holds, into tok. */
static bool read_tokenizer_json(up_tokenizer *tok, const cJSON *root, const char *file, const char **prefix,
                                char *err, size_t err_size) {
  if (!cJSON_IsObject(root)) return up_error(err, err_size, "%s: not a JSON object", file);
  const char *dup = up_json_duplicate_key_anywhere(root);
  if (dup) return up_error(err, err_size, "%s: key \"%.64s\" appears twice in one object", file, dup);
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  bool ignore_merges = false;
  if (!cJSON_IsObject(model)) return up_error(err, err_size, "%s: \"model\" is missing or not an object", file);
  if (!check_model_options(model, file, &ignore_merges, err, err_size) ||
      !up_hf_check_normalizer_and_decoder(root, file, err, err_size) ||
      !up_hf_post_processor_prefix(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), file, prefix, err,
                                   err_size))
    return false;
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
  const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
  if (!cJSON_IsObject(vocab)) return up_error(err, err_size, "%s: model.vocab is missing or not an object", file);
  if (!cJSON_IsArray(merges)) return up_error(err, err_size, "%s: model.merges is missing or not a list", file);
  if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
    return up_error(err, err_size, "%s: added_tokens is not a list", file);
  if (!load_vocabulary(tok, vocab, added, file, err, err_size)) return false;
  up_bpe_pretokenizer *pre =
      up_hf_pretokenizer(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), ignore_merges, file, err, err_size);
  if (!pre) return false;
  tok->bpe = up_bpe_begin(tok, pre, (uint64_t)cJSON_GetArraySize(merges));
  return load_merges(tok->bpe, tok, merges, file, err, err_size);
}

up_tokenizer *up_tokenizer_from_hf_dir(const char *dir, char *err, size_t err_size) {
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= sizeof path) {
    up_error(err, err_size, "%.200s...: path too long", dir);
    return NULL;
  }
  FILE *probe = fopen(path, "rb");
  if (!probe) {
    up_error(err, err_size, "%s: no tokenizer.json in this Hugging Face directory, so it has no tokenizer", dir);
    return NULL;
  }
  fclose(probe);
  cJSON *root = up_json_parse_file(path, UP_HF_TOKENIZER_JSON_MAX_BYTES, err, err_size);
  if (!root) return NULL;
  up_tokenizer *tok = up_calloc_or_die(1, sizeof *tok, "tokenizer");
  tok->kind = UP_TOKENIZER_BYTE_LEVEL_BPE;
  tok->bos = tok->eos = tok->eot = tok->unk = tok->pad = -1;
  const char *prefix = NULL; /* points into root */
  bool ok = read_tokenizer_json(tok, root, path, &prefix, err, err_size);
  if (ok) {
    up_tokenizer_build_special_list(tok);
    tok->eot = up_tokenizer_find_eot_by_text(tok);
    ok = up_hf_read_tokenizer_config(tok, dir, prefix, err, err_size);
  }
  cJSON_Delete(root);
  if (ok) return tok;
  up_tokenizer_free(tok);
  return NULL;
}

up_tokenizer *up_tokenizer_from_checkpoint(const up_checkpoint *ck, char *err, size_t err_size) {
  const up_gguf *g = up_checkpoint_gguf(ck);
  return g ? up_tokenizer_from_gguf(g, err, err_size) : up_tokenizer_from_hf_dir(up_checkpoint_path(ck), err, err_size);
}
