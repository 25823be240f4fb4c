/* test_tokenizer.c — the GGUF tokenizers against independent implementations and their
 * own contracts: token ids for SmolLM2 (byte-level BPE) and Llama-2 (SentencePiece) equal
 * those Hugging Face `tokenizers` and `sentencepiece` produce (tests/data/
 * tokenizer_fixture.txt, made by make_tokenizer_fixture.py), the pre-tokenizer splits equal
 * Hugging Face's, decode(encode(x)) == x, special tokens are parsed only when asked,
 * metadata (BOS/EOS/EOT, add_bos, chat template) is read, malformed metadata is a clear
 * error, and 8K tokens encode fast. Small vocabularies for the corner cases are written
 * as GGUF buffers here. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/checkpoint/gguf.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_internal.h"
#include "tests/gguf_writer.h"
#include "tests/tokenizer_checks.h"

#define LLAMA2_PATH UP_SHARED_DIR "/models/llama-2-tiny-random.gguf"

/* --- loading -------------------------------------------------------------------------- */

typedef struct loaded {
  up_gguf *gguf;
  up_tokenizer *tok;
} loaded;

static loaded load_path(const char *path) {
  char err[512] = "";
  loaded l = {0};
  l.gguf = up_gguf_open(path, err, sizeof err);
  cr_assert_not_null(l.gguf, "%s", err);
  l.tok = up_tokenizer_from_gguf(l.gguf, err, sizeof err);
  cr_assert_not_null(l.tok, "%s", err);
  return l;
}

static void unload(loaded l) {
  up_tokenizer_free(l.tok);
  up_gguf_close(l.gguf);
}

static loaded load_llama2(void) { return load_path(LLAMA2_PATH); }

/* SmolLM2 is an optional download (make model): skip visibly where it is absent. */
static loaded load_smollm2_or_skip(void) {
  char path[1024];
  smollm2_path(path, sizeof path);
  FILE *f = fopen(path, "rb");
  if (!f) cr_skip_test("SmolLM2 GGUF not found at %s (make model fetches it)", path);
  fclose(f);
  /* The tokenizer copies what it needs: the reader is closed at once to prove it. */
  loaded l = load_path(path);
  up_gguf_close(l.gguf);
  l.gguf = NULL;
  return l;
}

/* --- Llama-2 (SentencePiece) -------------------------------------------------------------- */

Test(tokenizer, llama2_metadata) {
  loaded l = load_llama2();
  /* No chat turn token; SentencePiece adds BOS when the file does not say. */
  assert_metadata(l.tok, (expected_metadata){UP_TOKENIZER_SENTENCEPIECE, .vocab = 32000, .bos = 1, .eos = 2,
                                             .eot = -1, .add_bos = true});
  cr_assert_null(up_tokenizer_chat_template(l.tok));
  size_t len = 0;
  cr_assert_str_eq(up_tokenizer_id_to_piece(l.tok, 1, &len), "<s>");
  cr_assert_eq(len, 3);
  cr_assert_null(up_tokenizer_id_to_piece(l.tok, 32000, NULL));
  cr_assert_eq(up_tokenizer_token_to_id(l.tok, "<0x0A>", 6), 13);
  cr_assert_eq(up_tokenizer_token_type(l.tok, 13), UP_TOKEN_BYTE);
  cr_assert_eq(up_tokenizer_token_type(l.tok, 2), UP_TOKEN_CONTROL);
  cr_assert_eq(up_tokenizer_token_to_id(l.tok, "\xe2\x96\x81Hello", 8), 15043);
  cr_assert_eq(up_tokenizer_token_to_id(l.tok, "no such piece", 13), -1);
  unload(l);
}

Test(tokenizer, llama2_matches_sentencepiece) {
  loaded l = load_llama2();
  cr_assert_geq(check_encodings(l.tok, "llama2"), 15);
  /* BOS comes first when asked. */
  ids e = encode(l.tok, "Hello, world!", 13, true, false);
  const int32_t want[] = {1, 15043, 29892, 3186, 29991};
  cr_assert_eq(e.n, 5);
  for (int i = 0; i < 5; ++i) cr_assert_eq(e.v[i], want[i]);
  free(e.v);
  unload(l);
}

Test(tokenizer, llama2_round_trips) {
  loaded l = load_llama2();
  check_fixture_round_trips(l.tok);
  check_extra_round_trips(l.tok);
  unload(l);
}

Test(tokenizer, llama2_special_tokens_only_when_asked) {
  loaded l = load_llama2();
  const char *text = "<s>Hi</s>";
  ids plain = encode(l.tok, text, strlen(text), false, false);
  for (int32_t i = 0; i < plain.n; ++i) cr_assert(plain.v[i] != 1 && plain.v[i] != 2, "control token from plain text");
  ids special = encode(l.tok, text, strlen(text), false, true);
  cr_assert_geq(special.n, 3);
  cr_assert_eq(special.v[0], 1);
  cr_assert_eq(special.v[special.n - 1], 2);
  /* After a special token the text gets SentencePiece's space prefix: "▁Hi". */
  cr_assert_eq(special.v[1], up_tokenizer_token_to_id(l.tok, "\xe2\x96\x81Hi", 5));
  char *shown = decode(l.tok, special.v, (size_t)special.n, true);
  char *hidden = decode(l.tok, special.v, (size_t)special.n, false);
  cr_assert_str_eq(shown, "<s>Hi</s>");
  cr_assert_str_eq(hidden, "Hi");
  free(shown);
  free(hidden);
  free(plain.v);
  free(special.v);
  unload(l);
}

Test(tokenizer, decode_replaces_cut_characters) {
  loaded l = load_llama2();
  /* "中" is E4 B8 AD; byte tokens are <0xXX> at id 3 + byte. */
  const int32_t cut[] = {3 + 0xE4, 3 + 0xB8};
  const int32_t whole[] = {3 + 0xE4, 3 + 0xB8, 3 + 0xAD};
  const int32_t stray[] = {3 + 0x41, 3 + 0xB8, 3 + 0x42};
  char *a = decode(l.tok, cut, 2, false);
  char *b = decode(l.tok, whole, 3, false);
  char *c = decode(l.tok, stray, 3, false);
  cr_assert_str_eq(a, "\xef\xbf\xbd", "one U+FFFD for the cut sequence");
  cr_assert_str_eq(b, "\xe4\xb8\xad");
  cr_assert_str_eq(c, "A\xef\xbf\xbd" "B");
  /* A buffer too short for the whole text is cut at a character boundary. */
  char small[3];
  cr_assert_eq(up_tokenizer_decode(l.tok, whole, 3, false, small, sizeof small, NULL, 0), 3);
  cr_assert_str_eq(small, "", "no partial character written");
  free(a);
  free(b);
  free(c);
  unload(l);
}

Test(tokenizer, encode_and_decode_contracts) {
  loaded l = load_llama2();
  const char *text = "The quick brown fox";
  ids all = encode(l.tok, text, strlen(text), true, false);
  int32_t few[2] = {-7, -7};
  char err[256] = "";
  cr_assert_eq(up_tokenizer_encode(l.tok, text, strlen(text), true, false, few, 2, err, sizeof err), all.n,
               "a short buffer still returns the full count");
  cr_assert_eq(few[0], all.v[0]);
  cr_assert_eq(few[1], all.v[1]);
  cr_assert_eq(up_tokenizer_encode(l.tok, "", 0, false, false, NULL, 0, err, sizeof err), 0);
  cr_assert_eq(up_tokenizer_encode(l.tok, NULL, 5, false, false, NULL, 0, err, sizeof err), -1);
  cr_assert(strstr(err, "NULL"), "%s", err);
  const int32_t bad[] = {5, 32000};
  cr_assert_eq(up_tokenizer_decode(l.tok, bad, 2, false, NULL, 0, err, sizeof err), -1);
  cr_assert(strstr(err, "32000"), "message names the id: %s", err);
  free(all.v);
  unload(l);
}

/* --- SmolLM2 (byte-level BPE) -------------------------------------------------------------- */

Test(tokenizer, smollm2_metadata) {
  loaded l = load_smollm2_or_skip();
  /* <|im_end|> ends a chat turn; tokenizer.ggml.add_bos_token is false. */
  assert_metadata(l.tok, (expected_metadata){UP_TOKENIZER_BYTE_LEVEL_BPE, .vocab = 49152, .bos = 1, .eos = 2,
                                             .eot = 2, .add_bos = false});
  cr_assert_not_null(up_tokenizer_chat_template(l.tok));
  cr_assert(strstr(up_tokenizer_chat_template(l.tok), "<|im_start|>"));
  cr_assert_eq(up_tokenizer_token_to_id(l.tok, "<|im_start|>", 12), 1);
  cr_assert_str_eq(up_tokenizer_id_to_piece(l.tok, 0, NULL), "<|endoftext|>");
  unload(l);
}

Test(tokenizer, smollm2_matches_hf_tokenizers) {
  loaded l = load_smollm2_or_skip();
  cr_assert_geq(check_encodings(l.tok, "smollm2"), 30);
  unload(l);
}

Test(tokenizer, smollm2_round_trips) {
  loaded l = load_smollm2_or_skip();
  check_fixture_round_trips(l.tok);
  check_extra_round_trips(l.tok);
  /* A byte that is not UTF-8 on its own still encodes, and decodes to U+FFFD. */
  assert_decodes_to(l.tok, "\xe4" "A", 2, false, "\xef\xbf\xbd" "A", 4);
  /* SmolLM2 has no piece for the control byte 0x04 nor for 0xFF: they are dropped. */
  assert_decodes_to(l.tok, "a\x04" "b\xff", 4, false, "ab", 2);
  unload(l);
}

Test(tokenizer, smollm2_chat_special_tokens) {
  loaded l = load_smollm2_or_skip();
  const char *chat = "<|im_start|>user\nHi<|im_end|>";
  ids special = encode(l.tok, chat, strlen(chat), false, true);
  cr_assert_geq(special.n, 3);
  cr_assert_eq(special.v[0], 1, "<|im_start|>");
  cr_assert_eq(special.v[special.n - 1], 2, "<|im_end|>");
  for (int32_t i = 1; i + 1 < special.n; ++i) cr_assert_gt(special.v[i], 16, "only text between the two");
  ids plain = encode(l.tok, chat, strlen(chat), false, false);
  for (int32_t i = 0; i < plain.n; ++i) cr_assert_gt(plain.v[i], 16, "no special token from plain text");
  char *hidden = decode(l.tok, special.v, (size_t)special.n, false);
  cr_assert_str_eq(hidden, "user\nHi");
  free(hidden);
  free(special.v);
  free(plain.v);
  unload(l);
}

/* About 8K tokens of prose, and one 32K-byte word (a worst case for the merge loop). */
Test(tokenizer, smollm2_encodes_8k_tokens_fast) {
  loaded l = load_smollm2_or_skip();
  static const char paragraph[] =
      "In the beginning of the twentieth century, the city grew quickly along the river. Merchants built "
      "warehouses near the docks, and families moved into narrow houses on the hills above. By 1923 the "
      "population had doubled, and the council debated whether to build a second bridge or a tunnel. ";
  size_t len;
  char *text = repeat_text(paragraph, 150, &len);
  int32_t *out = malloc(len * sizeof *out);
  int32_t n;
  const double ms = encode_ms(l.tok, text, len, false, out, (int32_t)len, &n);
  cr_log_info("encoded %d tokens (%zu bytes) in %.2f ms", n, len, ms);
  cr_assert_geq(n, 8000);
  /* Well under 100 ms on an idle core; the bound leaves room for a loaded CI machine and
   * the sanitizers while still catching a quadratic merge loop. */
  cr_assert_lt(ms, 1000.0, "8K tokens took %.1f ms", ms);

  const size_t word_len = 32768;
  char *word = malloc(word_len);
  for (size_t i = 0; i < word_len; ++i) word[i] = "=-"[i % 2];
  int32_t nw;
  const double ms_word = encode_ms(l.tok, word, word_len, false, NULL, 0, &nw);
  cr_log_info("one %zu-byte word: %d tokens in %.2f ms", word_len, nw, ms_word);
  cr_assert_gt(nw, 0);
  cr_assert_lt(ms_word, 1000.0, "a 32K-byte word took %.1f ms", ms_word);
  free(word);
  free(out);
  free(text);
  unload(l);
}

/* --- pre-tokenizers against Hugging Face's -------------------------------------------------- */

Test(tokenizer, pretokenizers_match_hf) {
  fixture_line *lines = read_fixture("split");
  int checked = 0;
  for (fixture_line *l = lines; l->text; ++l) {
    char err[256] = "";
    up_bpe_pretokenizer *pre = up_bpe_pretokenizer_create(l->model, err, sizeof err);
    cr_assert_not_null(pre, "%s", err);
    up_text_span *spans = NULL;
    size_t cap = 0;
    const int64_t n = up_bpe_pretokenize(pre, l->text, l->text_len, &spans, &cap, err, sizeof err);
    cr_assert_geq(n, 0, "%s", err);
    /* Re-encode our pieces as the fixture writes them. */
    char got[16384] = "";
    size_t used = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (i) got[used++] = ',';
      for (size_t k = 0; k < spans[i].len; ++k)
        used += (size_t)snprintf(got + used, sizeof got - used, "%02x", (unsigned char)l->text[spans[i].offset + k]);
    }
    got[used] = '\0';
    cr_expect_str_eq(got, strcmp(l->list, "-") == 0 ? "" : l->list, "%s split of \"%s\"", l->model, l->text);
    free(spans);
    up_bpe_pretokenizer_free(pre);
    checked++;
  }
  cr_assert_geq(checked, 4 * 15);
  free_fixture(lines);
}

/* --- small vocabularies written as GGUF buffers ----------------------------------------------- */

/* A tensor-less GGUF v3 file: header with n_kv entries, then what the builder puts. */
static gguf_buf metadata_file(uint64_t n_kv) {
  gguf_buf b = {0};
  put_header(&b, 3, 0, n_kv);
  return b;
}

/* GPT-2's printable stand-in of a byte, written here independently of the tokenizer. */
static void byte_piece(int byte, char *out) {
  int moved = 0, c = -1;
  for (int b = 0; b < 256; ++b) {
    const bool kept = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    const int cp = kept ? b : 256 + moved++;
    if (b == byte) c = cp;
  }
  if (c < 0x80) {
    out[0] = (char)c;
    out[1] = '\0';
  } else {
    out[0] = (char)(0xC0 | (c >> 6));
    out[1] = (char)(0x80 | (c & 0x3F));
    out[2] = '\0';
  }
}

enum { BPE_HE = 256, BPE_HEL = 257, BPE_EOT = 258, BPE_TOOL = 259, BPE_HELLO = 260, BPE_VOCAB = 261 };

/* A byte-level vocabulary: the 256 bytes, "he" and "hel" built by merges, a control
 * <|eot_id|>, a user-defined <tool>, and "hello", which no merge builds. */
static gguf_buf small_bpe_gguf(const char *pre, int add_bos /* -1: key absent */, bool with_merges) {
  char *tokens[BPE_VOCAB];
  int32_t types[BPE_VOCAB];
  for (int b = 0; b < 256; ++b) {
    tokens[b] = malloc(3);
    byte_piece(b, tokens[b]);
    types[b] = UP_TOKEN_NORMAL;
  }
  tokens[BPE_HE] = strdup("he");
  tokens[BPE_HEL] = strdup("hel");
  tokens[BPE_EOT] = strdup("<|eot_id|>");
  tokens[BPE_TOOL] = strdup("<tool>");
  tokens[BPE_HELLO] = strdup("hello");
  types[BPE_HE] = types[BPE_HEL] = types[BPE_HELLO] = UP_TOKEN_NORMAL;
  types[BPE_EOT] = UP_TOKEN_CONTROL;
  types[BPE_TOOL] = UP_TOKEN_USER_DEFINED;
  char *merges[] = {"h e", "he l"};
  gguf_buf b = metadata_file(6 + (pre != NULL) + with_merges + (add_bos >= 0));
  put_kv_str(&b, "general.architecture", "llama");
  put_kv_str(&b, "tokenizer.ggml.model", "gpt2");
  if (pre) put_kv_str(&b, "tokenizer.ggml.pre", pre);
  put_kv_str_array(&b, "tokenizer.ggml.tokens", tokens, BPE_VOCAB);
  put_kv_i32_array(&b, "tokenizer.ggml.token_type", types, BPE_VOCAB);
  if (with_merges) put_kv_str_array(&b, "tokenizer.ggml.merges", merges, 2);
  put_kv_u32(&b, "tokenizer.ggml.bos_token_id", BPE_EOT);
  put_kv_u32(&b, "tokenizer.ggml.eos_token_id", BPE_EOT);
  if (add_bos >= 0) put_kv_bool(&b, "tokenizer.ggml.add_bos_token", add_bos);
  for (int i = 0; i < BPE_VOCAB; ++i) free(tokens[i]);
  return b;
}

static up_tokenizer *tokenizer_from_buffer(gguf_buf b, up_gguf **g, char *err, size_t err_size) {
  *g = up_gguf_open_buffer(b.data, b.len, "small.gguf", err, err_size);
  cr_assert_not_null(*g, "%s", err);
  return up_tokenizer_from_gguf(*g, err, err_size);
}

static void assert_ids(ids got, const int32_t *want, int32_t n, const char *what) {
  char got_s[512], want_s[512];
  format_ids(got.v, got.n, got_s, sizeof got_s);
  format_ids(want, n, want_s, sizeof want_s);
  cr_assert_str_eq(got_s, want_s, "%s", what);
}

Test(tokenizer, llama3_pre_tokenizer_takes_whole_words_and_bos) {
  char err[256] = "";
  up_gguf *g1, *g2;
  gguf_buf b1 = small_bpe_gguf("llama-bpe", -1, true), b2 = small_bpe_gguf("gpt2", -1, true);
  up_tokenizer *llama3 = tokenizer_from_buffer(b1, &g1, err, sizeof err);
  cr_assert_not_null(llama3, "%s", err);
  up_tokenizer *gpt2 = tokenizer_from_buffer(b2, &g2, err, sizeof err);
  cr_assert_not_null(gpt2, "%s", err);
  cr_assert(up_tokenizer_add_bos(llama3), "Llama-3 adds BOS by default");
  cr_assert_not(up_tokenizer_add_bos(gpt2));
  cr_assert_eq(up_tokenizer_eot(llama3), BPE_EOT, "found by its text");

  char l_piece[3], o_piece[3];
  byte_piece('l', l_piece);
  byte_piece('o', o_piece);
  const int32_t l_id = up_tokenizer_token_to_id(gpt2, l_piece, 1), o_id = up_tokenizer_token_to_id(gpt2, o_piece, 1);
  ids whole = encode(llama3, "hello", 5, false, false);
  ids merged = encode(gpt2, "hello", 5, false, false);
  assert_ids(whole, (const int32_t[]){BPE_HELLO}, 1, "Llama-3 takes a word that is a token as it is");
  assert_ids(merged, (const int32_t[]){BPE_HEL, l_id, o_id}, 3, "GPT-2 merges up from bytes");
  free(whole.v);
  free(merged.v);
  up_tokenizer_free(llama3);
  up_tokenizer_free(gpt2);
  up_gguf_close(g1);
  up_gguf_close(g2);
  free(b1.data);
  free(b2.data);
}

Test(tokenizer, control_tokens_need_parse_special_user_defined_do_not) {
  char err[256] = "";
  up_gguf *g;
  gguf_buf b = small_bpe_gguf("gpt2", 0, true);
  up_tokenizer *tok = tokenizer_from_buffer(b, &g, err, sizeof err);
  cr_assert_not_null(tok, "%s", err);
  cr_assert_not(up_tokenizer_add_bos(tok), "add_bos_token false");
  const char *text = "<tool>he<|eot_id|>";
  ids plain = encode(tok, text, strlen(text), false, false);
  ids special = encode(tok, text, strlen(text), true, true);
  cr_assert_eq(plain.v[0], BPE_TOOL, "user-defined tokens are matched in plain text");
  for (int32_t i = 1; i < plain.n; ++i) cr_assert_neq(plain.v[i], BPE_EOT);
  assert_ids(special, (const int32_t[]){BPE_EOT, BPE_TOOL, BPE_HE, BPE_EOT}, 4, "BOS, then specials parsed");
  char *hidden = decode(tok, special.v, (size_t)special.n, false);
  char *shown = decode(tok, special.v, (size_t)special.n, true);
  cr_assert_str_eq(hidden, "<tool>he", "control tokens hidden, user-defined kept");
  cr_assert_str_eq(shown, "<|eot_id|><tool>he<|eot_id|>");
  free(hidden);
  free(shown);
  free(plain.v);
  free(special.v);
  up_tokenizer_free(tok);
  up_gguf_close(g);
  free(b.data);
}

/* One tokenizer, four threads encoding at once: each gets the single-threaded answer. */
typedef struct thread_job {
  const up_tokenizer *tok;
  const char *text;
  size_t len;
  const ids *expect;
  int mismatches;
} thread_job;

static void *encode_repeatedly(void *arg) {
  thread_job *job = arg;
  int32_t *out = malloc((size_t)job->expect->n * sizeof *out);
  for (int round = 0; round < 50; ++round) {
    const int32_t n = up_tokenizer_encode(job->tok, job->text, job->len, false, true, out, job->expect->n, NULL, 0);
    if (n != job->expect->n || memcmp(out, job->expect->v, (size_t)n * sizeof *out) != 0) job->mismatches++;
  }
  free(out);
  return NULL;
}

Test(tokenizer, one_tokenizer_serves_threads_at_once) {
  char err[256] = "";
  up_gguf *g;
  gguf_buf b = small_bpe_gguf("smollm", -1, true);
  up_tokenizer *tok = tokenizer_from_buffer(b, &g, err, sizeof err);
  cr_assert_not_null(tok, "%s", err);
  char text[8192];
  size_t len = 0;
  while (len + 64 < sizeof text)
    len += (size_t)snprintf(text + len, sizeof text - len, "hello he said <tool> 1234 <|eot_id|>\t\u00e9 ");
  ids expect = encode(tok, text, len, false, true);
  thread_job jobs[4];
  pthread_t threads[4];
  for (int i = 0; i < 4; ++i) {
    jobs[i] = (thread_job){.tok = tok, .text = text, .len = len, .expect = &expect};
    cr_assert_eq(pthread_create(&threads[i], NULL, encode_repeatedly, &jobs[i]), 0);
  }
  for (int i = 0; i < 4; ++i) {
    cr_assert_eq(pthread_join(threads[i], NULL), 0);
    cr_assert_eq(jobs[i].mismatches, 0, "thread %d saw a different encoding", i);
  }
  free(expect.v);
  up_tokenizer_free(tok);
  up_gguf_close(g);
  free(b.data);
}

static void assert_load_fails(gguf_buf b, const char *expect_in_message) {
  char err[512] = "";
  up_gguf *g;
  up_tokenizer *tok = tokenizer_from_buffer(b, &g, err, sizeof err);
  cr_assert_null(tok, "should fail with \"%s\"", expect_in_message);
  cr_assert(strstr(err, expect_in_message) && strstr(err, "small.gguf"), "message \"%s\" should name %s and the file",
            err, expect_in_message);
  up_gguf_close(g);
  free(b.data);
}

Test(tokenizer, malformed_metadata_is_a_clear_error) {
  assert_load_fails(small_bpe_gguf("qwen-unknown", -1, true), "qwen-unknown");
  assert_load_fails(small_bpe_gguf("gpt2", -1, false), "tokenizer.ggml.merges");

  gguf_buf b = metadata_file(1);
  put_kv_str(&b, "general.architecture", "llama");
  assert_load_fails(b, "tokenizer.ggml.model");

  b = metadata_file(1);
  put_kv_str(&b, "tokenizer.ggml.model", "bert");
  assert_load_fails(b, "bert");

  char *tokens[] = {"<unk>", "<s>", "</s>", "a"};
  const int32_t types[] = {2, 3, 3, 1};
  const float scores[] = {0, 0, 0, -1};
  for (int bad_bos = 0; bad_bos < 2; ++bad_bos) {
    /* First three token types for four tokens, then a BOS id past the vocabulary. */
    b = metadata_file(4 + bad_bos);
    put_kv_str(&b, "tokenizer.ggml.model", "llama");
    put_kv_str_array(&b, "tokenizer.ggml.tokens", tokens, 4);
    put_kv_i32_array(&b, "tokenizer.ggml.token_type", types, bad_bos ? 4 : 3);
    put_kv_f32_array(&b, "tokenizer.ggml.scores", scores, 4);
    if (bad_bos) put_kv_u32(&b, "tokenizer.ggml.bos_token_id", 4);
    assert_load_fails(b, bad_bos ? "tokenizer.ggml.bos_token_id" : "tokenizer.ggml.token_type");
  }
}

/* A SentencePiece vocabulary: <unk> <s> </s>, the 256 byte tokens, then pieces. */
static gguf_buf small_spm_gguf(int add_space_prefix /* -1: key absent */) {
  enum { N_PIECES = 6 };
  static const char *const pieces[N_PIECES] = {"\xe2\x96\x81", "a", "b", "ab", "\xe2\x96\x81" "c", "c"};
  static const float piece_scores[N_PIECES] = {-1, -2, -3, -0.5f, -1.5f, -4};
  static const int32_t piece_types[N_PIECES] = {1, 1, 1, UP_TOKEN_UNUSED, 1, 1};
  const int n = 3 + 256 + N_PIECES;
  char *tokens[3 + 256 + N_PIECES];
  int32_t types[3 + 256 + N_PIECES];
  float scores[3 + 256 + N_PIECES] = {0};
  tokens[0] = strdup("<unk>");
  tokens[1] = strdup("<s>");
  tokens[2] = strdup("</s>");
  types[0] = UP_TOKEN_UNKNOWN;
  types[1] = types[2] = UP_TOKEN_CONTROL;
  for (int b = 0; b < 256; ++b) {
    tokens[3 + b] = malloc(8);
    snprintf(tokens[3 + b], 8, "<0x%02X>", b);
    types[3 + b] = UP_TOKEN_BYTE;
  }
  for (int i = 0; i < N_PIECES; ++i) {
    tokens[259 + i] = strdup(pieces[i]);
    types[259 + i] = piece_types[i];
    scores[259 + i] = piece_scores[i];
  }
  gguf_buf b = metadata_file(4 + (add_space_prefix >= 0));
  put_kv_str(&b, "tokenizer.ggml.model", "llama");
  put_kv_str_array(&b, "tokenizer.ggml.tokens", tokens, (size_t)n);
  put_kv_i32_array(&b, "tokenizer.ggml.token_type", types, (size_t)n);
  put_kv_f32_array(&b, "tokenizer.ggml.scores", scores, (size_t)n);
  if (add_space_prefix >= 0) put_kv_bool(&b, "tokenizer.ggml.add_space_prefix", add_space_prefix);
  for (int i = 0; i < n; ++i) free(tokens[i]);
  return b;
}

enum { SPM_SPACE = 259, SPM_A = 260, SPM_B = 261, SPM_AB = 262, SPM_SPACE_C = 263, SPM_C = 264 };

Test(tokenizer, sentencepiece_unused_pieces_split_and_space_prefix_key) {
  char err[256] = "";
  up_gguf *g1, *g2;
  gguf_buf b1 = small_spm_gguf(-1), b2 = small_spm_gguf(0);
  up_tokenizer *with_prefix = tokenizer_from_buffer(b1, &g1, err, sizeof err);
  cr_assert_not_null(with_prefix, "%s", err);
  up_tokenizer *without = tokenizer_from_buffer(b2, &g2, err, sizeof err);
  cr_assert_not_null(without, "%s", err);

  /* "ab" merges first (best score) but is unused: it goes out as its halves. "▁c" beats
   * "▁" + "c"; 'd' has no piece and falls back to its byte. */
  ids e = encode(with_prefix, "ab c d", 6, false, false);
  assert_ids(e, (const int32_t[]){SPM_SPACE, SPM_A, SPM_B, SPM_SPACE_C, SPM_SPACE, 3 + 'd'}, 6,
             "▁ a b ▁c ▁ <0x64>");
  char *back = decode(with_prefix, e.v, (size_t)e.n, false);
  cr_assert_str_eq(back, "ab c d");
  free(back);
  free(e.v);

  ids bare = encode(without, "c", 1, false, false);
  assert_ids(bare, (const int32_t[]){SPM_C}, 1, "add_space_prefix false: no ▁ before the text");
  back = decode(without, bare.v, (size_t)bare.n, false);
  cr_assert_str_eq(back, "c");
  free(back);
  free(bare.v);

  up_tokenizer_free(with_prefix);
  up_tokenizer_free(without);
  up_gguf_close(g1);
  up_gguf_close(g2);
  free(b1.data);
  free(b2.data);
}
