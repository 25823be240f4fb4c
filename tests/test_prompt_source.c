/* test_prompt_source.c — --prompt-source's pieces: parsing the choice; text prompts
 * (exact lengths at several targets, BOS first, distinct per request id, reproducible
 * per seed, a prompt a prefix of the longer one, vocabulary checks) with a byte-per-token
 * encoder and with the tiny Llama-2 GGUF's real tokenizer over the haystack corpus; the
 * JSONL prompt file (text and ids lines, cut and repeat with BOS once, request i takes
 * line i mod n, every malformed line named by file and line); and the random source
 * staying the ids the closed loop always drew. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/checkpoint/gguf.h"
#include "engine/tokenizer/tokenizer.h"
#include "workloads/closed_loop.h"
#include "workloads/prompt_source.h"

#ifndef UP_SHARED_DIR
#error "UP_SHARED_DIR must point at ../shared (tests/CMakeLists.txt defines it)"
#endif

/* ---- a tokenizer that makes one token per byte (id = byte + 3) ---- */

static int32_t byte_encode(void *ctx, const char *text, size_t len, bool parse_special, int32_t *out, int32_t cap,
                           char *err, size_t err_size) {
  (void)ctx, (void)parse_special, (void)err, (void)err_size;
  for (size_t i = 0; i < len && (int32_t)i < cap; ++i) out[i] = (unsigned char)text[i] + 3;
  return (int32_t)len;
}

static up_prompt_tokenizer byte_tokenizer(int32_t bos) {
  return (up_prompt_tokenizer){.encode = byte_encode, .ctx = NULL, .bos = bos, .name = "the byte tokenizer"};
}

static char work_dir[] = "/tmp/up_prompt_test_XXXXXX";

static void make_work_dir(void) { cr_assert_not_null(mkdtemp(work_dir)); }

static void remove_work_dir(void) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf %s", work_dir);
  cr_assert_eq(system(cmd), 0);
}

static const char *write_file(const char *name, const char *text) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", work_dir, name);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "cannot write %s", path);
  fputs(text, f);
  fclose(f);
  return path;
}

/* A corpus of 26 distinct sentences (one paragraph each). */
static up_haystack_corpus *small_corpus(void) {
  char text[8192] = "";
  for (char c = 'a'; c <= 'z'; ++c) {
    char sentence[128];
    snprintf(sentence, sizeof sentence, "The letter %c opens this short sentence of plain prose.\n\n", c);
    strcat(text, sentence);
  }
  const char *path = write_file("corpus.txt", text);
  char err[512] = "";
  const char *paths[] = {path};
  up_haystack_corpus *corpus = up_haystack_corpus_load(paths, 1, err, sizeof err);
  cr_assert_not_null(corpus, "%s", err);
  cr_assert_eq(corpus->n_sentences, 26);
  return corpus;
}

static up_text_prompts *small_text_prompts(int32_t bos, uint64_t seed) {
  up_haystack_corpus *corpus = small_corpus();
  const up_prompt_tokenizer tok = byte_tokenizer(bos);
  char err[512] = "";
  up_text_prompts *tp = up_text_prompts_create(corpus, &tok, 300, seed, err, sizeof err);
  cr_assert_not_null(tp, "%s", err);
  up_haystack_corpus_free(corpus);
  return tp;
}

/* ---- the choice ---- */

Test(prompt_choice, parses_each_form) {
  up_prompt_choice c;
  char err[256] = "", spelled[UP_PROMPT_CHOICE_MAX + 16];
  cr_assert(up_prompt_choice_parse("random", &c, err, sizeof err));
  cr_expect_eq(c.kind, UP_PROMPTS_RANDOM);
  cr_assert(up_prompt_choice_parse("text", &c, err, sizeof err));
  cr_expect_eq(c.kind, UP_PROMPTS_TEXT);
  cr_expect_str_eq(c.paths, "");
  cr_assert(up_prompt_choice_parse("text:a.txt,b.gz", &c, err, sizeof err));
  cr_expect_eq(c.kind, UP_PROMPTS_TEXT);
  up_prompt_choice_format(&c, spelled, sizeof spelled);
  cr_expect_str_eq(spelled, "text:a.txt,b.gz");
  cr_assert(up_prompt_choice_parse("dir/prompts.jsonl", &c, err, sizeof err));
  cr_expect_eq(c.kind, UP_PROMPTS_FILE);
  up_prompt_choice_format(&c, spelled, sizeof spelled);
  cr_expect_str_eq(spelled, "dir/prompts.jsonl");
  const char *bad[] = {"rnadom", "text:", "text:a.txt,", "text:,a", "text:a,,b", ".jsonl", "prompts.json", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    err[0] = '\0';
    cr_expect_not(up_prompt_choice_parse(bad[i], &c, err, sizeof err), "'%s' was accepted", bad[i]);
    cr_expect_neq(err[0], '\0', "'%s' has no message", bad[i]);
  }
}

/* ---- text prompts ---- */

Test(text_prompts, exact_lengths_with_and_without_bos, .init = make_work_dir, .fini = remove_work_dir) {
  for (int32_t bos = -1; bos <= 1; bos += 2) {
    up_text_prompts *tp = small_text_prompts(bos, 42);
    /* Up to past the whole stream, which then wraps around. */
    const int32_t targets[] = {1, 2, 17, 64, 1000, (int32_t)tp->n_tokens + 5};
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; ++t) {
      const int32_t n = targets[t];
      int32_t *tokens = malloc(sizeof *tokens * (size_t)(n + 1));
      tokens[n] = -7; /* nothing written past the end */
      up_text_prompts_fill(tp, 3, tokens, n);
      cr_expect_eq(tokens[n], -7, "target %d: written past the end", n);
      if (bos >= 0) cr_expect_eq(tokens[0], bos, "target %d: BOS is not first", n);
      for (int32_t i = bos >= 0 ? 1 : 0; i < n; ++i)
        cr_assert(tokens[i] >= 3 && tokens[i] < 259, "target %d: token %d is %d, not prose", n, i, tokens[i]);
      /* The text continues the stream from the request's offset, wrapping around. */
      const uint64_t offset = up_text_prompts_offset(tp, 3);
      for (int32_t i = bos >= 0 ? 1 : 0; i < n; ++i) {
        const int64_t k = i - (bos >= 0 ? 1 : 0);
        cr_assert_eq(tokens[i], tp->tokens[(offset + (uint64_t)k) % (uint64_t)tp->n_tokens]);
      }
      free(tokens);
    }
    up_text_prompts_free(tp);
  }
}

Test(text_prompts, distinct_per_request_and_prefix_of_longer, .init = make_work_dir, .fini = remove_work_dir) {
  up_text_prompts *tp = small_text_prompts(-1, 42);
  /* Every offset differs over a whole stream's worth of ids (negative warm-up ids too). */
  const int64_t len = tp->n_tokens;
  char *seen = calloc((size_t)len, 1);
  for (int64_t id = -5; id < len - 5; ++id) {
    const uint64_t at = up_text_prompts_offset(tp, id);
    cr_assert_lt(at, (uint64_t)len);
    cr_assert_not(seen[at], "ids share offset %llu", (unsigned long long)at);
    seen[at] = 1;
  }
  free(seen);
  int32_t a[48], b[48], longer[96];
  for (int64_t id = 0; id < 32; ++id) {
    up_text_prompts_fill(tp, id, a, 48);
    up_text_prompts_fill(tp, id + 1, b, 48);
    cr_expect_neq(memcmp(a, b, sizeof a), 0, "requests %lld and %lld got the same prompt", (long long)id,
                  (long long)id + 1);
    up_text_prompts_fill(tp, id, longer, 96);
    cr_expect_eq(memcmp(a, longer, sizeof a), 0, "request %lld: the 48-token prompt is not the 96's start",
                 (long long)id);
  }
  up_text_prompts_free(tp);
}

Test(text_prompts, reproducible_per_seed, .init = make_work_dir, .fini = remove_work_dir) {
  up_text_prompts *x = small_text_prompts(-1, 7), *y = small_text_prompts(-1, 7), *z = small_text_prompts(-1, 8);
  int32_t px[100], py[100], pz[100];
  int differ = 0;
  for (int64_t id = 0; id < 8; ++id) {
    up_text_prompts_fill(x, id, px, 100);
    up_text_prompts_fill(y, id, py, 100);
    up_text_prompts_fill(z, id, pz, 100);
    cr_expect_eq(memcmp(px, py, sizeof px), 0, "seed 7, request %lld: two builds differ", (long long)id);
    differ += memcmp(px, pz, sizeof px) != 0;
  }
  cr_expect_eq(differ, 8, "seeds 7 and 8 gave the same prompt for %d of 8 requests", 8 - differ);
  up_text_prompts_free(x);
  up_text_prompts_free(y);
  up_text_prompts_free(z);
}

Test(text_prompts, tokens_outside_the_vocabulary_are_refused, .init = make_work_dir, .fini = remove_work_dir) {
  up_haystack_corpus *corpus = small_corpus();
  const up_prompt_tokenizer tok = byte_tokenizer(-1);
  char err[512] = "";
  cr_expect_null(up_text_prompts_create(corpus, &tok, 100, 1, err, sizeof err)); /* 'T' + 3 = 87, 'e' + 3 = 104 */
  cr_expect(strstr(err, "outside the model's vocabulary of 100 ids") != NULL, "%s", err);
  up_haystack_corpus_free(corpus);
}

/* The real thing: the tiny Llama-2 GGUF's SentencePiece tokenizer over the gnu-standards
 * prose, BOS first as Llama-2 wants. */
static int32_t real_encode(void *ctx, const char *text, size_t len, bool parse_special, int32_t *out, int32_t cap,
                           char *err, size_t err_size) {
  return up_tokenizer_encode(ctx, text, len, false, parse_special, out, cap, err, err_size);
}

Test(text_prompts, real_tokenizer_and_corpus) {
  char err[512] = "";
  up_haystack_corpus *corpus = up_haystack_corpus_load_default(err, sizeof err);
  if (!corpus) cr_skip_test("haystack corpus absent: %s", err);
  up_gguf *g = up_gguf_open(UP_SHARED_DIR "/models/llama-2-tiny-random.gguf", err, sizeof err);
  cr_assert_not_null(g, "%s", err);
  up_tokenizer *tok = up_tokenizer_from_gguf(g, err, sizeof err);
  cr_assert_not_null(tok, "%s", err);
  const up_prompt_tokenizer pt = {.encode = real_encode, .ctx = tok, .bos = up_tokenizer_bos(tok), .name = "llama2"};
  up_text_prompts *tp = up_text_prompts_create(corpus, &pt, 32000, 42, err, sizeof err);
  cr_assert_not_null(tp, "%s", err);
  cr_expect_gt(tp->n_tokens, 30000, "the corpus gave only %lld tokens", (long long)tp->n_tokens);
  const int32_t targets[] = {1, 100, 4096};
  for (size_t t = 0; t < sizeof targets / sizeof targets[0]; ++t) {
    int32_t *tokens = calloc((size_t)targets[t], sizeof *tokens);
    up_text_prompts_fill(tp, 5, tokens, targets[t]);
    cr_expect_eq(tokens[0], 1, "BOS first");
    /* The text decodes back to prose: mostly letters and spaces. */
    char *text = malloc(65536);
    const int64_t n = up_tokenizer_decode(tok, tokens, (size_t)targets[t], false, text, 65536, err, sizeof err);
    cr_assert_geq(n, 0, "%s", err);
    int32_t letters = 0;
    for (int64_t i = 0; i < n && i < 65535; ++i) letters += (text[i] >= 'a' && text[i] <= 'z') || text[i] == ' ';
    if (targets[t] >= 100) cr_expect_gt(letters * 10, n * 8, "not prose: '%.200s'", text);
    free(text);
    free(tokens);
  }
  up_text_prompts_free(tp);
  up_tokenizer_free(tok);
  up_gguf_close(g);
  up_haystack_corpus_free(corpus);
}

/* ---- the JSONL prompt file ---- */

static up_prompt_file *read_prompts(const char *text, const up_prompt_tokenizer *tok, char *err, size_t err_size) {
  return up_prompt_file_read(write_file("prompts.jsonl", text), tok, 300, err, err_size);
}

Test(prompt_file, text_and_ids_lines, .init = make_work_dir, .fini = remove_work_dir) {
  const up_prompt_tokenizer tok = byte_tokenizer(1);
  char err[512] = "";
  up_prompt_file *f = read_prompts("\xEF\xBB\xBF{\"text\": \"abc\"}\n\n  \n{\"ids\": [5, 6, 7, 8, 9]}\r\n"
                                   "{\"text\": \"<|x|>\"}\n", &tok, err, sizeof err);
  cr_assert_not_null(f, "%s", err);
  cr_assert_eq(f->n_prompts, 3);
  cr_expect_eq(f->longest, 6);
  /* Text: BOS then one token per byte; ids: verbatim, nothing added. */
  int32_t t[16];
  cr_expect_eq(up_prompt_file_length(f, 0), 4);
  up_prompt_file_fill(f, 0, t, 4);
  cr_expect(t[0] == 1 && t[1] == 'a' + 3 && t[2] == 'b' + 3 && t[3] == 'c' + 3);
  cr_expect_eq(up_prompt_file_length(f, 1), 5);
  up_prompt_file_fill(f, 1, t, 5);
  for (int i = 0; i < 5; ++i) cr_expect_eq(t[i], 5 + i);
  /* Request i takes line i mod n, negative (warm-up) ids too. */
  cr_expect_eq(up_prompt_file_length(f, 4), 5);
  cr_expect_eq(up_prompt_file_length(f, -2), 5);
  /* Cut; repeated with BOS once (text) or whole (ids). */
  up_prompt_file_fill(f, 0, t, 2);
  cr_expect(t[0] == 1 && t[1] == 'a' + 3);
  up_prompt_file_fill(f, 0, t, 9);
  const int32_t want_text[9] = {1, 'a' + 3, 'b' + 3, 'c' + 3, 'a' + 3, 'b' + 3, 'c' + 3, 'a' + 3, 'b' + 3};
  cr_expect_eq(memcmp(t, want_text, sizeof want_text), 0);
  up_prompt_file_fill(f, 1, t, 12);
  for (int i = 0; i < 12; ++i) cr_expect_eq(t[i], 5 + i % 5, "ids repeated: token %d", i);
  up_prompt_file_free(f);
}

Test(prompt_file, malformed_lines_name_file_and_line, .init = make_work_dir, .fini = remove_work_dir) {
  const up_prompt_tokenizer tok = byte_tokenizer(-1);
  static const struct {
    const char *text;
    const char *message;
  } cases[] = {
      {"{\"ids\": [1]}\nnot json\n", ":2: not valid JSON"},
      {"{\"ids\": [1]} {\"ids\": [2]}\n", ":1: text after the JSON object at column 14"},
      {"{\"ids\": [1]},\n", ":1: text after the JSON object"},
      {"{\"ids\": [1], \"ids\": [2]}\n", ":1: duplicate key 'ids'"},
      {"[1, 2]\n", ":1: not a JSON object"},
      {"{\"prompt\": \"x\"}\n", ":1: unknown key 'prompt'"},
      {"{\"text\": \"x\", \"ids\": [1]}\n", ":1: both \"text\" and \"ids\""},
      {"{}\n", ":1: no \"text\" or \"ids\" key"},
      {"\n{\"ids\": [1, 300]}\n", ":2: \"ids\"[1] = 300 is outside the model's vocabulary of 300 ids"},
      {"{\"ids\": [-1]}\n", ":1: \"ids\"[0] = -1 is outside"},
      {"{\"ids\": [1.5]}\n", ":1: \"ids\"[0] is not an integer"},
      {"{\"ids\": [\"1\"]}\n", ":1: \"ids\"[0] is not an integer"},
      {"{\"ids\": []}\n", ":1: \"ids\" is empty"},
      {"{\"ids\": 4}\n", ":1: \"ids\" is not an array"},
      {"{\"text\": 4}\n", ":1: \"text\" is not a string"},
      {"{\"text\": \"\"}\n", ":1: \"text\" makes no token"},
      {"\n  \n", ": no prompt lines"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    char err[512] = "";
    cr_expect_null(read_prompts(cases[i].text, &tok, err, sizeof err), "case %zu was accepted", i);
    char want[256];
    snprintf(want, sizeof want, "prompt file %s/prompts.jsonl%s", work_dir, cases[i].message);
    cr_expect(strstr(err, want) == err, "case %zu: '%s' does not start with '%s'", i, err, want);
  }
  /* A text line without a tokenizer (a preset) says what to do instead. */
  char err[512] = "";
  cr_expect_null(read_prompts("{\"ids\": [3]}\n{\"text\": \"hello\"}\n", NULL, err, sizeof err));
  cr_expect(strstr(err, "prompts.jsonl:2: a \"text\" prompt needs the checkpoint's tokenizer") != NULL, "%s", err);
  /* Not a regular file. */
  cr_expect_null(up_prompt_file_read("/dev/zero", &tok, 300, err, sizeof err));
  cr_expect(strstr(err, "prompt file /dev/zero: is a character device") != NULL, "%s", err);
}

/* ---- the source ---- */

Test(prompt_source, random_is_the_closed_loop_ids) {
  up_prompt_source src;
  up_prompt_source_random(&src, 99, 5000);
  cr_expect_str_eq(src.spec, "random");
  int32_t a[64], b[64];
  for (int64_t id = -2; id < 6; ++id) {
    up_prompt_source_fill(&src, id, a, 64);
    up_workload_random_prompt(99, id, 5000, b, 64);
    cr_expect_eq(memcmp(a, b, sizeof a), 0, "request %lld", (long long)id);
  }
  up_prompt_source_close(&src);
}

Test(prompt_source, text_without_a_tokenizer_is_refused) {
  up_prompt_choice c;
  char err[512] = "";
  cr_assert(up_prompt_choice_parse("text", &c, err, sizeof err));
  up_prompt_source src;
  cr_expect_not(up_prompt_source_open(&src, &c, NULL, 1, 100, err, sizeof err));
  cr_expect(strstr(err, "text prompts need the checkpoint's tokenizer") != NULL, "%s", err);
}
