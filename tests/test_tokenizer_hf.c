/* test_tokenizer_hf.c — the Hugging Face tokenizer.json reader (engine/tokenizer/
 * tokenizer_hf*.c): hand-worked ids on a tiny hand-written tokenizer.json
 * (tests/data/hf_tokenizer_tiny, runs everywhere), variants of it written to temporary
 * directories (Split regexes with ignore_merges, a BOS-adding post-processor, no
 * tokenizer_config.json), a clear refusal for each kind, key and option not implemented
 * and for malformed files; and, where the SmolLM2 GGUF is fetched, its tokenizer written
 * as tokenizer.json by tests/tools/gguf_tokenizer_to_hf.py (an independent Python
 * converter) must give the known-answer ids of tests/data/tokenizer_fixture.txt and the
 * GGUF reader's ids on the gnu-standards text, and decode back. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/checkpoint/gguf.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/tokenizer_checks.h"
#include "workloads/eval/chat_template.h"
#include "workloads/eval/haystack_corpus.h"

#define TINY_DIR UP_TEST_DATA_DIR "/hf_tokenizer_tiny"

/* --- directories of tokenizer files ------------------------------------------------------ */

typedef struct temp_dir {
  char path[64];
} temp_dir;

static temp_dir temp_dir_make(void) {
  temp_dir d;
  snprintf(d.path, sizeof d.path, "/tmp/up_hf_tokenizer_XXXXXX");
  cr_assert_not_null(mkdtemp(d.path), "mkdtemp failed");
  return d;
}

static void temp_dir_remove(const temp_dir *d) {
  static const char *const names[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"};
  char path[128];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) {
    snprintf(path, sizeof path, "%s/%s", d->path, names[i]);
    unlink(path);
  }
  rmdir(d->path);
}

static void write_text(const temp_dir *d, const char *name, const char *text) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", d->path, name);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "cannot write %s", path);
  cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
  cr_assert_eq(fclose(f), 0);
}

static cJSON *read_json(const char *path) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  char buf[16384];
  const size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  cJSON *j = cJSON_Parse(buf);
  cr_assert_not_null(j, "%s does not parse", path);
  return j;
}

/* The tiny fixture after edit changed its two files (config NULL: leave the file out). */
typedef void (*fixture_edit)(cJSON *tokenizer, cJSON **config);

static temp_dir tiny_variant(fixture_edit edit) {
  cJSON *tokenizer = read_json(TINY_DIR "/tokenizer.json");
  cJSON *config = read_json(TINY_DIR "/tokenizer_config.json");
  if (edit) edit(tokenizer, &config);
  temp_dir d = temp_dir_make();
  char *text = cJSON_PrintUnformatted(tokenizer);
  write_text(&d, "tokenizer.json", text);
  free(text);
  if (config) {
    text = cJSON_PrintUnformatted(config);
    write_text(&d, "tokenizer_config.json", text);
    free(text);
  }
  cJSON_Delete(tokenizer);
  cJSON_Delete(config);
  return d;
}

static up_tokenizer *load_dir(const char *dir) {
  char err[512] = "";
  up_tokenizer *tok = up_tokenizer_from_hf_dir(dir, err, sizeof err);
  cr_assert_not_null(tok, "%s: %s", dir, err);
  return tok;
}

static void expect_ids(const up_tokenizer *tok, const char *text, bool parse_special, const int32_t *want, int32_t n) {
  ids got = encode(tok, text, strlen(text), false, parse_special);
  char got_s[512], want_s[512];
  format_ids(got.v, got.n, got_s, sizeof got_s);
  format_ids(want, n, want_s, sizeof want_s);
  cr_expect_str_eq(got_s, want_s, "\"%s\" (parse_special %d)", text, parse_special);
  free(got.v);
}

#define EXPECT_IDS(tok, text, special, ...)                                              \
  do {                                                                                  \
    const int32_t want_[] = {__VA_ARGS__};                                              \
    expect_ids(tok, text, special, want_, (int32_t)(sizeof want_ / sizeof want_[0])); \
  } while (0)

/* --- the hand-written fixture -------------------------------------------------------------- */

/* Ids worked by hand from the fixture's merge ranks: a b (0), Ġ a (1), ab c (2), c c (3),
 * Ġ ab (4), 1 2 (5); Ġ is the space, Ċ the newline; digits are split alone first. */
Test(hf_tokenizer, tiny_known_ids) {
  up_tokenizer *tok = load_dir(TINY_DIR);
  EXPECT_IDS(tok, "abc ab", false, 13, 14); /* " ab": a b first (rank 0), then Ġ ab (rank 4) */
  EXPECT_IDS(tok, " a b", false, 12, 7, 4);
  EXPECT_IDS(tok, "a12", false, 3, 9, 10);  /* Digits keeps 1 and 2 apart: no "12" */
  EXPECT_IDS(tok, "cc\nd", false, 15, 8, 6);
  EXPECT_IDS(tok, "ccc", false, 15, 5);     /* leftmost pair first on equal ranks */
  EXPECT_IDS(tok, "abcc", false, 13, 5);    /* ab c (rank 2) before c c (rank 3) */
  EXPECT_IDS(tok, "a  b", false, 3, 7, 7, 4);
  EXPECT_IDS(tok, "bd", false, 4, 6);       /* "bd" is a token no merge makes */
  EXPECT_IDS(tok, "<|im_start|>ab<|im_end|>", true, 1, 11, 2);
  EXPECT_IDS(tok, "a<tool>b", false, 3, 18, 4); /* a non-special added token is always matched */
  /* Without parse_special a control token is text, and this vocabulary lacks all its
   * bytes but the d of "end": the others are dropped, as the tokenizers library drops
   * bytes a BPE without an unknown token cannot spell. */
  EXPECT_IDS(tok, "<|im_end|>ab", false, 6, 11);
  up_tokenizer_free(tok);
}

Test(hf_tokenizer, tiny_metadata_and_decoding) {
  up_tokenizer *tok = load_dir(TINY_DIR);
  cr_assert_eq(up_tokenizer_get_kind(tok), UP_TOKENIZER_BYTE_LEVEL_BPE);
  cr_assert_eq(up_tokenizer_vocab_size(tok), 19);
  cr_assert_eq(up_tokenizer_bos(tok), 1);
  cr_assert_eq(up_tokenizer_eos(tok), 2, "eos_token given as an AddedToken object");
  cr_assert_eq(up_tokenizer_eot(tok), 2, "<|im_end|> ends a turn");
  cr_assert_eq(up_tokenizer_pad(tok), 0);
  cr_assert_eq(up_tokenizer_add_bos(tok), false, "no add_bos_token and a post-processor that adds nothing");
  cr_assert_eq(up_tokenizer_token_type(tok, 1), UP_TOKEN_CONTROL);
  cr_assert_eq(up_tokenizer_token_type(tok, 18), UP_TOKEN_USER_DEFINED);
  cr_assert_eq(up_tokenizer_token_type(tok, 14), UP_TOKEN_NORMAL);
  cr_assert_eq(up_tokenizer_token_to_id(tok, "\xc4\xa0" "ab", 4), 14, "\"\\u0120ab\" from JSON escapes");
  const char *chat = up_tokenizer_chat_template(tok);
  cr_assert(chat && strstr(chat, "<|im_start|>") && !strstr(chat, "[TOOLS]"), "the \"default\" template: %s",
            chat ? chat : "(none)");
  up_chat_template resolved;
  char err[256] = "";
  cr_assert(up_chat_template_resolve(NULL, chat, &resolved, err, sizeof err), "%s", err);
  cr_assert_eq(resolved.format, UP_CHAT_CHATML);
  const int32_t text[] = {13, 14, 8, 12};
  char *back = decode(tok, text, 4, false);
  cr_assert_str_eq(back, "abc ab\n a");
  free(back);
  const int32_t chat_ids[] = {1, 11, 2, 18};
  char *shown = decode(tok, chat_ids, 4, true);
  char *hidden = decode(tok, chat_ids, 4, false);
  cr_assert_str_eq(shown, "<|im_start|>ab<|im_end|><tool>");
  cr_assert_str_eq(hidden, "ab<tool>");
  free(shown);
  free(hidden);
  assert_round_trip(tok, "abc ab\nccc  a1212 bd", strlen("abc ab\nccc  a1212 bd"), false);
  up_tokenizer_free(tok);
}

/* Llama-3's shape: a Split regex, a ByteLevel that does not split again, ignore_merges,
 * merges as pairs, and BOS put first by a TemplateProcessing post-processor; no
 * tokenizer_config.json. */
static void llama3_shape(cJSON *tokenizer, cJSON **config) {
  cJSON_ReplaceItemInObject(tokenizer, "pre_tokenizer", cJSON_Parse(
      "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
      "\"\\\\p{N}{1,3}| ?\\\\p{L}+|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
      "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}"));
  cJSON_ReplaceItemInObject(tokenizer, "post_processor", cJSON_Parse(
      "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
      "\"trim_offsets\":false,\"use_regex\":true},{\"type\":\"TemplateProcessing\",\"single\":["
      "{\"SpecialToken\":{\"id\":\"<|im_start|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
      "\"pair\":[],\"special_tokens\":{}}]}"));
  cJSON_ReplaceItemInObject(cJSON_GetObjectItem(tokenizer, "model"), "ignore_merges", cJSON_CreateTrue());
  /* Merges as [left, right] pairs, as tokenizers 0.20 and later write them. */
  cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(tokenizer, "model"), "merges");
  for (int i = 0; i < cJSON_GetArraySize(merges); ++i) {
    const char *text = cJSON_GetArrayItem(merges, i)->valuestring;
    const char *space = strchr(text, ' ');
    cJSON *pair = cJSON_CreateArray();
    char left[16];
    snprintf(left, sizeof left, "%.*s", (int)(space - text), text);
    cJSON_AddItemToArray(pair, cJSON_CreateString(left));
    cJSON_AddItemToArray(pair, cJSON_CreateString(space + 1));
    cJSON_ReplaceItemInArray(merges, i, pair);
  }
  cJSON_Delete(*config);
  *config = NULL;
}

Test(hf_tokenizer, split_regex_ignore_merges_and_bos_from_post_processor) {
  temp_dir d = tiny_variant(llama3_shape);
  up_tokenizer *tok = load_dir(d.path);
  /* Pieces "bd", " ", "121", "2": "bd" is taken whole (ignore_merges); "121" is not a
   * token, so it merges: 1 2 (rank 5), then 1. */
  EXPECT_IDS(tok, "bd 1212", false, 17, 7, 16, 9, 10);
  cr_assert_eq(up_tokenizer_add_bos(tok), true);
  cr_assert_eq(up_tokenizer_bos(tok), 1, "the post-processor's prefix is BOS when no config names one");
  cr_assert_eq(up_tokenizer_eos(tok), -1);
  cr_assert_null(up_tokenizer_chat_template(tok));
  ids with_bos = encode(tok, "ab", 2, true, false);
  cr_assert(with_bos.n == 2 && with_bos.v[0] == 1 && with_bos.v[1] == 11);
  free(with_bos.v);
  up_tokenizer_free(tok);
  temp_dir_remove(&d);
}

/* A plain ByteLevel pre-tokenizer (GPT-2's regex: "12" stays whole and merges),
 * add_bos_token in the config, and the template from chat_template.jinja when the
 * config has none. */
static void gpt2_shape(cJSON *tokenizer, cJSON **config) {
  cJSON_ReplaceItemInObject(tokenizer, "pre_tokenizer", cJSON_Parse(
      "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}"));
  cJSON_AddItemToObject(*config, "add_bos_token", cJSON_CreateTrue());
  cJSON_DeleteItemFromObject(*config, "chat_template");
}

Test(hf_tokenizer, byte_level_alone_and_jinja_template) {
  temp_dir d = tiny_variant(gpt2_shape);
  write_text(&d, "chat_template.jinja", "{{ '<|im_start|>' }}jinja");
  up_tokenizer *tok = load_dir(d.path);
  EXPECT_IDS(tok, "a12 ab", false, 3, 16, 14);
  cr_assert_eq(up_tokenizer_add_bos(tok), true);
  cr_assert_str_eq(up_tokenizer_chat_template(tok), "{{ '<|im_start|>' }}jinja");
  up_tokenizer_free(tok);
  temp_dir_remove(&d);
}

/* --- refusals ---------------------------------------------------------------------------- */

static void expect_refusal(const temp_dir *d, const char *fragment) {
  char err[512] = "";
  up_tokenizer *tok = up_tokenizer_from_hf_dir(d->path, err, sizeof err);
  cr_expect_null(tok, "loaded although it should fail with \"%s\"", fragment);
  up_tokenizer_free(tok);
  cr_expect(strstr(err, fragment) != NULL, "message \"%s\" lacks \"%s\"", err, fragment);
  cr_expect(strstr(err, d->path) != NULL, "message \"%s\" names no file", err);
}

static cJSON *model_of(cJSON *tokenizer) { return cJSON_GetObjectItem(tokenizer, "model"); }
static cJSON *pre_steps(cJSON *tokenizer) {
  return cJSON_GetObjectItem(cJSON_GetObjectItem(tokenizer, "pre_tokenizer"), "pretokenizers");
}

#define SET(obj, key, json) cJSON_ReplaceItemInObject(obj, key, cJSON_Parse(json))
#define EDIT(name, body)                                  \
  static void name(cJSON *t, cJSON **c) {                 \
    (void)t;                                              \
    (void)c;                                              \
    body;                                                 \
  }

EDIT(unknown_pre_tokenizer, SET(t, "pre_tokenizer", "{\"type\":\"Whitespace\"}"))
EDIT(metaspace_in_sequence, cJSON_ReplaceItemInArray(pre_steps(t), 0, cJSON_Parse("{\"type\":\"Metaspace\"}")))
EDIT(split_removed, cJSON_ReplaceItemInArray(pre_steps(t), 0, cJSON_Parse(
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Removed\",\"invert\":false}")))
EDIT(split_string_pattern, cJSON_ReplaceItemInArray(pre_steps(t), 0, cJSON_Parse(
    "{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":\"Isolated\",\"invert\":false}")))
EDIT(split_bad_regex, cJSON_ReplaceItemInArray(pre_steps(t), 0, cJSON_Parse(
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\",\"invert\":false}")))
EDIT(byte_level_not_last, cJSON_AddItemToArray(pre_steps(t), cJSON_Parse("{\"type\":\"Digits\"}")))
EDIT(prefix_space, SET(t, "pre_tokenizer", "{\"type\":\"ByteLevel\",\"add_prefix_space\":true}"))
EDIT(no_pre_tokenizer, cJSON_DeleteItemFromObject(t, "pre_tokenizer"))
EDIT(nfc_normalizer, SET(t, "normalizer", "{\"type\":\"NFC\"}"))
EDIT(metaspace_decoder, SET(t, "decoder", "{\"type\":\"Metaspace\"}"))
EDIT(suffix_post_processor, SET(t, "post_processor", "{\"type\":\"TemplateProcessing\",\"single\":["
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"<|im_end|>\",\"type_id\":0}}]}"))
EDIT(bert_post_processor, SET(t, "post_processor", "{\"type\":\"BertProcessing\"}"))
EDIT(wordpiece_model, SET(model_of(t), "type", "\"WordPiece\""))
EDIT(byte_fallback, SET(model_of(t), "byte_fallback", "true"))
EDIT(unk_token_set, SET(model_of(t), "unk_token", "\"<|endoftext|>\""))
EDIT(no_vocab, cJSON_DeleteItemFromObject(model_of(t), "vocab"))
EDIT(no_merges, cJSON_DeleteItemFromObject(model_of(t), "merges"))
EDIT(merge_out_of_vocab, cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(t), "merges"), cJSON_CreateString("d d")))
EDIT(merge_repeated, cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(t), "merges"), cJSON_CreateString("c c")))
EDIT(merges_mixed, cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(t), "merges"), cJSON_Parse("[\"d\", \"d\"]")))
EDIT(merge_three_parts, cJSON_AddItemToArray(cJSON_GetObjectItem(model_of(t), "merges"), cJSON_CreateString("a b c")))
EDIT(id_gap, SET(cJSON_GetObjectItem(model_of(t), "vocab"), "bd", "40"))
EDIT(added_id_out_of_order, SET(cJSON_GetArrayItem(cJSON_GetObjectItem(t, "added_tokens"), 3), "id", "19"))
EDIT(id_taken_twice, SET(cJSON_GetObjectItem(model_of(t), "vocab"), "bd", "3"))
EDIT(added_lstrip, SET(cJSON_GetArrayItem(cJSON_GetObjectItem(t, "added_tokens"), 3), "lstrip", "true"))
EDIT(added_without_special, cJSON_DeleteItemFromObject(cJSON_GetArrayItem(cJSON_GetObjectItem(t, "added_tokens"), 3),
                                                       "special"))
EDIT(bos_not_a_token, SET(*c, "bos_token", "\"<s>\""))
EDIT(eos_not_a_string, SET(*c, "eos_token", "{\"text\":\"<|im_end|>\"}"))
EDIT(add_bos_without_bos, cJSON_DeleteItemFromObject(*c, "bos_token");
     cJSON_AddItemToObject(*c, "add_bos_token", cJSON_CreateTrue()))
EDIT(add_eos, cJSON_AddItemToObject(*c, "add_eos_token", cJSON_CreateTrue()))
EDIT(no_default_template, cJSON_DeleteItemFromArray(cJSON_GetObjectItem(*c, "chat_template"), 1))
EDIT(prefix_not_bos, SET(t, "post_processor", "{\"type\":\"TemplateProcessing\",\"single\":["
    "{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]}"))

Test(hf_tokenizer, refuses_what_it_does_not_implement_by_name) {
  static const struct {
    fixture_edit edit;
    const char *fragment;
  } cases[] = {
      {unknown_pre_tokenizer, "\"Whitespace\" pre-tokenizer"},
      {metaspace_in_sequence, "pre_tokenizer.pretokenizers[0] is a \"Metaspace\" pre-tokenizer"},
      {split_removed, "only \"Isolated\""},
      {split_string_pattern, "\"String\""},
      {split_bad_regex, "does not compile"},
      {byte_level_not_last, "ByteLevel must be the pre-tokenizer's last step"},
      {prefix_space, "add_prefix_space"},
      {no_pre_tokenizer, "pre_tokenizer is missing"},
      {nfc_normalizer, "normalizer \"NFC\""},
      {metaspace_decoder, "decoder \"Metaspace\""},
      {suffix_post_processor, "suffix"},
      {bert_post_processor, "\"BertProcessing\" post-processor"},
      {wordpiece_model, "model type \"WordPiece\""},
      {byte_fallback, "model.byte_fallback"},
      {unk_token_set, "model.unk_token"},
      {no_vocab, "model.vocab is missing"},
      {no_merges, "model.merges is missing"},
      {merge_out_of_vocab, "model.merges[6]"},
      {merge_repeated, "repeats an earlier merge"},
      {merges_mixed, "model.merges[6] is a pair, but model.merges[0] is a string"},
      {merge_three_parts, "neither \"left right\""},
      {id_gap, "model.vocab[\"bd\"] is not an id in [0, 17]"},
      {added_id_out_of_order, "has id 19, but added tokens outside model.vocab are numbered from 18"},
      {id_taken_twice, "gives id 3 to \"bd\""},
      {added_lstrip, "added_tokens[3] (\"<tool>\") has lstrip true"},
      {added_without_special, "added_tokens[3] has no \"special\""},
      {bos_not_a_token, "bos_token \"<s>\" is not a token"},
      {eos_not_a_string, "eos_token is neither a string nor an object"},
      {add_bos_without_bos, "add_bos_token is true but no bos_token"},
      {add_eos, "add_eos_token"},
      {no_default_template, "no template named \"default\""},
      {prefix_not_bos, "is not the BOS token"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    temp_dir d = tiny_variant(cases[i].edit);
    expect_refusal(&d, cases[i].fragment);
    temp_dir_remove(&d);
  }
}

Test(hf_tokenizer, malformed_and_missing_files) {
  temp_dir d = temp_dir_make();
  char err[512] = "";
  cr_assert_null(up_tokenizer_from_hf_dir(d.path, err, sizeof err));
  cr_assert(strstr(err, "no tokenizer.json"), "%s", err);
  /* Cut inside the vocabulary. */
  write_text(&d, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, ");
  expect_refusal(&d, "not valid JSON");
  write_text(&d, "tokenizer.json", "[1, 2]");
  expect_refusal(&d, "not a JSON object");
  write_text(&d, "tokenizer.json", "{\"model\": {\"type\": \"BPE\"}, \"model\": {}}");
  expect_refusal(&d, "key \"model\" appears twice");
  write_text(&d, "tokenizer.json", "{\"normalizer\": null}");
  expect_refusal(&d, "\"model\" is missing");
  temp_dir_remove(&d);
  /* A malformed config is refused too, naming that file. */
  d = tiny_variant(NULL);
  write_text(&d, "tokenizer_config.json", "{\"bos_token\": \"<|im_start|>\",}");
  expect_refusal(&d, "tokenizer_config.json: not valid JSON");
  temp_dir_remove(&d);
}

/* --- SmolLM2: tokenizer.json from the GGUF, read by the HF loader --------------------------- */

/* SmolLM2's tokenizer twice: from the GGUF, and from the directory
 * gguf_tokenizer_to_hf.py writes from it (merges in merge_form). Skips where the GGUF is
 * not fetched. */
typedef struct smollm2_both {
  temp_dir dir;
  up_tokenizer *hf, *gg;
} smollm2_both;

static smollm2_both smollm2_both_or_skip(const char *merge_form) {
  char gguf_path[1024];
  smollm2_path(gguf_path, sizeof gguf_path);
  if (access(gguf_path, R_OK) != 0) cr_skip_test("SmolLM2 GGUF not found at %s (make model fetches it)", gguf_path);
  smollm2_both b = {.dir = temp_dir_make()};
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' '%s/gguf_tokenizer_to_hf.py' '%s' '%s' --merges %s", UP_PYTHON, UP_TEST_TOOLS_DIR,
           gguf_path, b.dir.path, merge_form);
  cr_assert_eq(system(cmd), 0, "converter failed: %s", cmd);
  b.hf = load_dir(b.dir.path);
  char err[512] = "";
  up_gguf *g = up_gguf_open(gguf_path, err, sizeof err);
  cr_assert_not_null(g, "%s", err);
  b.gg = up_tokenizer_from_gguf(g, err, sizeof err);
  cr_assert_not_null(b.gg, "%s", err);
  up_gguf_close(g);
  return b;
}

static void smollm2_both_free(smollm2_both *b) {
  up_tokenizer_free(b->gg);
  up_tokenizer_free(b->hf);
  temp_dir_remove(&b->dir);
}

Test(hf_tokenizer, smollm2_known_answers_and_metadata, .timeout = 120) {
  smollm2_both b = smollm2_both_or_skip("pairs");
  const up_tokenizer *hf = b.hf, *gg = b.gg;
  cr_assert_geq(check_encodings(hf, "smollm2"), 30);
  check_fixture_round_trips(hf);
  check_extra_round_trips(hf);
  assert_metadata(hf, (expected_metadata){UP_TOKENIZER_BYTE_LEVEL_BPE, .vocab = up_tokenizer_vocab_size(gg),
                                          .bos = up_tokenizer_bos(gg), .eos = up_tokenizer_eos(gg),
                                          .eot = up_tokenizer_eot(gg), .add_bos = up_tokenizer_add_bos(gg)});
  cr_assert_str_eq(up_tokenizer_chat_template(hf), up_tokenizer_chat_template(gg));
  for (int32_t id = 0; id < up_tokenizer_vocab_size(gg); ++id) {
    size_t a_len, b_len;
    const char *a = up_tokenizer_id_to_piece(hf, id, &a_len), *b = up_tokenizer_id_to_piece(gg, id, &b_len);
    cr_assert(a_len == b_len && memcmp(a, b, a_len) == 0, "piece %d differs", (int)id);
    cr_assert_eq(up_tokenizer_token_type(hf, id), up_tokenizer_token_type(gg, id), "type of %d", (int)id);
  }
  smollm2_both_free(&b);
}

/* Lines of the gnu-standards text as they are (indentation, examples and all). */
static int32_t compare_on_corpus(const up_tokenizer *hf, const up_tokenizer *gg, const char *path, int32_t max_lines) {
  gzFile f = gzopen(path, "rb");
  if (!f) cr_skip_test("%s not found (package %s)", path, UP_HAYSTACK_PACKAGE);
  char line[8192];
  char *block = calloc(1, (size_t)max_lines * sizeof line);
  size_t block_len = 0;
  int32_t n = 0;
  while (n < max_lines && gzgets(f, line, sizeof line)) {
    const size_t len = strlen(line);
    memcpy(block + block_len, line, len);
    block_len += len;
    for (int special = 0; special < 2; ++special) {
      ids a = encode(hf, line, len, false, special), b = encode(gg, line, len, false, special);
      cr_assert(a.n == b.n && memcmp(a.v, b.v, (size_t)a.n * sizeof *a.v) == 0, "line %d differs: %s", (int)n, line);
      free(a.v);
      free(b.v);
    }
    assert_round_trip(hf, line, len, false);
    n++;
  }
  gzclose(f);
  ids a = encode(hf, block, block_len, true, true), b = encode(gg, block, block_len, true, true);
  cr_assert(a.n == b.n && memcmp(a.v, b.v, (size_t)a.n * sizeof *a.v) == 0, "the %d lines as one text differ", (int)n);
  cr_log_info("%d lines, %d tokens as one text: same ids", (int)n, (int)a.n);
  free(a.v);
  free(b.v);
  free(block);
  return n;
}

Test(hf_tokenizer, smollm2_string_merges_match_gguf_on_gnu_standards, .timeout = 120) {
  smollm2_both b = smollm2_both_or_skip("strings");
  cr_assert_geq(compare_on_corpus(b.hf, b.gg, up_haystack_default_files[0], 400), 400);
  cr_assert_geq(compare_on_corpus(b.hf, b.gg, up_haystack_default_files[1], 200), 200);
  smollm2_both_free(&b);
}
