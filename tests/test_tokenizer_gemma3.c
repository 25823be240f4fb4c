/* test_tokenizer_gemma3.c — Gemma 3's SentencePiece tokenizer (262,144 pieces, byte
 * fallback, user-defined space/newline/tab runs and HTML tags, control turn markers)
 * against ids from the sentencepiece library (tests/data/gemma3_tokenizer_fixture.txt,
 * written by tests/tools/make_gemma3_tokenizer_fixture.py). On every checkout the
 * fixture runs on gemma3_tokenizer_subset.gguf, the pieces of the real vocabulary those
 * texts can reach (ids mapped back through its test.original_id array); with the real
 * model cached it also runs on the full vocabulary, with the metadata Gemma's loader
 * relies on (BOS first, no space prefix, <end_of_turn> found by name). */
#define FIXTURE_PATH UP_TEST_DATA_DIR "/gemma3_tokenizer_fixture.txt"
#include "tests/tokenizer_checks.h"

#include "engine/checkpoint/gguf.h"
#include "tests/gemma_model.h"

#define SUBSET_PATH UP_TEST_DATA_DIR "/gemma3_tokenizer_subset.gguf"

typedef struct gemma_vocab {
  up_gguf *gguf;
  up_tokenizer *tok;
  int32_t *original_id; /* subset id -> full-vocabulary id; NULL for the full vocabulary */
  uint64_t n_original;
} gemma_vocab;

/* The tokenizer of an open reader; subset: map ids back through test.original_id. */
static gemma_vocab vocab_of(up_gguf *gguf, bool subset) {
  char err[512] = "";
  gemma_vocab v = {.gguf = gguf};
  v.tok = up_tokenizer_from_gguf(v.gguf, err, sizeof err);
  cr_assert_not_null(v.tok, "%s", err);
  if (subset) {
    up_gguf_value_type elem;
    cr_assert(up_gguf_get_array_info(v.gguf, "test.original_id", &elem, &v.n_original));
    cr_assert_eq(v.n_original, (uint64_t)up_tokenizer_vocab_size(v.tok));
    v.original_id = malloc(v.n_original * sizeof *v.original_id);
    cr_assert(up_gguf_get_array_i32(v.gguf, "test.original_id", v.original_id, v.n_original));
  }
  return v;
}

static void close_vocab(gemma_vocab v) {
  up_tokenizer_free(v.tok);
  up_gguf_close(v.gguf);
  free(v.original_id);
}

static gemma_vocab open_full_or_skip(void) { return vocab_of(up_test_open_gemma3_270m_or_skip(), false); }

static gemma_vocab open_subset(void) {
  char err[512] = "";
  up_gguf *g = up_gguf_open(SUBSET_PATH, err, sizeof err);
  cr_assert_not_null(g, "%s", err);
  return vocab_of(g, true);
}

/* Every fixture line encoded (ids in the full vocabulary's numbering) and compared;
 * returns the number of lines checked. */
static int check_gemma_encodings(const gemma_vocab *v) {
  fixture_line *lines = read_fixture("encode");
  int checked = 0;
  for (fixture_line *l = lines; l->text; ++l) {
    cr_assert_str_eq(l->model, "gemma3");
    const bool parse_special = strcmp(l->mode, "special") == 0;
    ids got = encode(v->tok, l->text, l->text_len, false, parse_special);
    for (int32_t i = 0; v->original_id && i < got.n; ++i) got.v[i] = v->original_id[got.v[i]];
    char got_s[4096], want_s[4096];
    format_ids(got.v, got.n, got_s, sizeof got_s);
    snprintf(want_s, sizeof want_s, "%s", l->list);
    cr_expect_str_eq(got_s, want_s, "%s encoding of \"%s\"", l->mode, l->text);
    free(got.v);
    checked++;
  }
  free_fixture(lines);
  return checked;
}

Test(tokenizer_gemma3, subset_vocabulary_matches_sentencepiece) {
  gemma_vocab v = open_subset();
  cr_assert_eq(up_tokenizer_get_kind(v.tok), UP_TOKENIZER_SENTENCEPIECE);
  cr_assert_geq(check_gemma_encodings(&v), 16);
  check_fixture_round_trips(v.tok);
  close_vocab(v);
}

Test(tokenizer_gemma3, real_vocabulary_matches_sentencepiece) {
  gemma_vocab v = open_full_or_skip();
  cr_assert_geq(check_gemma_encodings(&v), 16);
  check_fixture_round_trips(v.tok);
  check_extra_round_trips(v.tok);
  close_vocab(v);
}

Test(tokenizer_gemma3, real_metadata_and_special_tokens) {
  gemma_vocab v = open_full_or_skip();
  /* HYBRIDS.md A.2: <bos> 2 first, <eos> 1; no EOT key, so <end_of_turn> (106) by name. */
  assert_metadata(v.tok, (expected_metadata){UP_TOKENIZER_SENTENCEPIECE, .vocab = 262144, .bos = 2, .eos = 1,
                                             .eot = 106, .add_bos = true});
  cr_assert_eq(up_tokenizer_pad(v.tok), 0);
  cr_assert_null(up_tokenizer_chat_template(v.tok), "the base model carries no chat template");
  cr_assert_eq(up_tokenizer_token_to_id(v.tok, "<start_of_turn>", 15), 105);
  cr_assert_eq(up_tokenizer_token_type(v.tok, 106), UP_TOKEN_CONTROL);
  cr_assert_eq(up_tokenizer_token_type(v.tok, 107), UP_TOKEN_USER_DEFINED);
  cr_assert_eq(up_tokenizer_token_type(v.tok, 238), UP_TOKEN_BYTE);

  /* add_space_prefix is false: no U+2581 before the text, nor after a special token. */
  ids e = encode(v.tok, "Hello", 5, true, false);
  cr_assert_eq(e.n, 2);
  cr_assert_eq(e.v[0], 2);
  cr_assert_str_eq(up_tokenizer_id_to_piece(v.tok, e.v[1], NULL), "Hello");
  free(e.v);
  e = encode(v.tok, "<start_of_turn>user", 19, false, true);
  cr_assert_eq(e.n, 2);
  cr_assert_eq(e.v[0], 105);
  cr_assert_str_eq(up_tokenizer_id_to_piece(v.tok, e.v[1], NULL), "user");
  free(e.v);

  /* HYBRIDS.md A.8's prompt, whose ids the spec's numpy forward was run on. */
  e = encode(v.tok, "Monday, Tuesday, Wednesday,", 27, true, false);
  const char *const pieces[] = {"<bos>", "Monday", ",", "\xe2\x96\x81Tuesday", ",", "\xe2\x96\x81Wednesday", ","};
  cr_assert_eq(e.n, 7);
  for (int i = 0; i < 7; ++i) cr_assert_str_eq(up_tokenizer_id_to_piece(v.tok, e.v[i], NULL), pieces[i]);
  free(e.v);

  /* Decoding drops control tokens unless asked and keeps spaces as they were. */
  const int32_t turn[] = {105, 2364 /* user */, 107};
  char *text = decode(v.tok, turn, 3, false);
  cr_assert_str_eq(text, "user\n");
  free(text);
  text = decode(v.tok, turn, 3, true);
  cr_assert_str_eq(text, "<start_of_turn>user\n");
  free(text);
  close_vocab(v);
}

/* Every space may start a user-defined piece (Gemma's space runs), so special-token
 * matching runs at each one: 32K tokens of prose must still encode quickly, with and
 * without control tokens parsed. */
Test(tokenizer_gemma3, real_vocabulary_encodes_32k_tokens_fast) {
  gemma_vocab v = open_full_or_skip();
  static const char paragraph[] =
      "In the beginning of the twentieth century, the city grew quickly along the river. Merchants built "
      "warehouses near the docks, and  families moved into narrow houses on the hills above. By 1923 the "
      "population had doubled, and the council debated <whether> to build a second bridge or a tunnel.\n\n";
  size_t len;
  char *text = repeat_text(paragraph, 540, &len);
  int32_t *out = malloc(len * sizeof *out);
  for (int parse_special = 0; parse_special <= 1; ++parse_special) {
    int32_t n;
    const double ms = encode_ms(v.tok, text, len, parse_special, out, (int32_t)len, &n);
    cr_log_info("parse_special %d: %d tokens (%zu bytes) in %.2f ms", parse_special, n, len, ms);
    cr_assert_geq(n, 32000);
    /* The bound leaves room for a loaded CI machine and the sanitizers while catching a
     * scan of every special token at every space. */
    cr_assert_lt(ms, 2000.0, "32K Gemma tokens took %.1f ms", ms);
  }
  free(out);
  free(text);
  close_vocab(v);
}
