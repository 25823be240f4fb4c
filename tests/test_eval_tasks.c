/* test_eval_tasks.c — the fidelity-evaluation tasks: the haystack corpus (the installed
 * gnu-standards prose, cleaning of a small file, missing files), task names, generated
 * samples (fit to the token target with a word counter and with counters whose counts
 * do not add up, determinism, needles at their stated depth, answers recoverable from
 * the context, vt chains that resolve to the answers), chat template rendering and
 * detection, and string-match scoring. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "workloads/eval/chat_template.h"
#include "workloads/eval/eval_score.h"
#include "workloads/eval/eval_tasks.h"
#include "workloads/eval/haystack_corpus.h"

/* ---- helpers ---- */

static int32_t count_words(const char *text, size_t len) {
  int32_t words = 0;
  bool in_word = false;
  for (size_t i = 0; i < len; ++i) {
    const bool space = isspace((unsigned char)text[i]);
    words += !space && !in_word;
    in_word = !space;
  }
  return words;
}

typedef struct counter_stats {
  int64_t calls;
  int64_t prompt_calls; /* counts of a whole prompt (the fixture's starts with its system turn) */
} counter_stats;

static void note_call(void *ctx, const char *text, size_t len) {
  counter_stats *stats = ctx;
  if (!stats) return;
  stats->calls++;
  stats->prompt_calls += len >= 18 && strncmp(text, "<|im_start|>system", 18) == 0;
}

static int32_t word_counter(void *ctx, const char *text, size_t len) {
  note_call(ctx, text, len);
  return count_words(text, len);
}

/* Words plus one token per 40 bytes of each counted piece, rounded down: a long text
 * counts more than its pieces did, so estimates from pieces overshoot the target. */
static int32_t subadditive_counter(void *ctx, const char *text, size_t len) {
  note_call(ctx, text, len);
  return count_words(text, len) + (int32_t)(len / 40);
}

/* Words plus 3 per call: pieces count more than the whole, so estimates undershoot. */
static int32_t superadditive_counter(void *ctx, const char *text, size_t len) {
  note_call(ctx, text, len);
  return count_words(text, len) + 3;
}

static int32_t failing_counter(void *ctx, const char *text, size_t len) { return -1; }

static up_haystack_corpus *load_corpus(void) {
  char err[512] = "";
  up_haystack_corpus *corpus = up_haystack_corpus_load_default(err, sizeof err);
  cr_assert(corpus, "%s", err);
  return corpus;
}

static up_chat_template chat_named(const char *name) {
  up_chat_template chat;
  char err[256] = "";
  cr_assert(up_chat_template_resolve(name, NULL, &chat, err, sizeof err), "%s", err);
  return chat;
}

static up_eval_sample generate_with(up_eval_generator *gen, up_eval_task_kind kind, uint64_t seed, uint64_t index,
                                    int32_t target, double depth) {
  up_eval_request req = {.kind = kind, .seed = seed, .sample_index = index, .target_tokens = target, .depth = depth};
  up_eval_sample sample;
  char err[512] = "";
  cr_assert(up_eval_generate(gen, &req, &sample, err, sizeof err), "%s: %s", up_eval_task_name(kind), err);
  return sample;
}

/* A generator over the default corpus with the SmolLM2 ChatML template and a counter. */
typedef struct fixture {
  up_haystack_corpus *corpus;
  up_chat_template chat;
  up_eval_generator *gen;
} fixture;

/* In place: the generator keeps pointers to the corpus and the chat template. */
static void fixture_open(fixture *f, up_token_counter counter, void *ctx) {
  *f = (fixture){.corpus = load_corpus(), .chat = chat_named("chatml")};
  snprintf(f->chat.system_prompt, sizeof f->chat.system_prompt, "%s",
           "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  f->gen = up_eval_generator_create(f->corpus, &f->chat, counter, ctx);
}

static void fixture_close(fixture *f) {
  up_eval_generator_free(f->gen);
  up_haystack_corpus_free(f->corpus);
}

static const char *context_of(const up_eval_sample *s, size_t *len) {
  *len = s->context_length;
  return s->user_text + s->context_offset;
}

/* Occurrences of needle in text[0..len). */
static int count_occurrences(const char *text, size_t len, const char *needle) {
  int n = 0;
  const size_t nl = strlen(needle);
  for (size_t i = 0; i + nl <= len; ++i) n += memcmp(text + i, needle, nl) == 0;
  return n;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert(f, "cannot write %s", path);
  cr_assert(fputs(text, f) >= 0);
  cr_assert(fclose(f) == 0);
}

/* ---- haystack corpus ---- */

Test(haystack_corpus, installed_prose_is_clean_sentences) {
  up_haystack_corpus *corpus = load_corpus();
  cr_expect(corpus->n_sentences > 1000, "only %d sentences", corpus->n_sentences);
  cr_expect(corpus->n_words > 25000, "only %lld words", (long long)corpus->n_words);
  for (int32_t i = 0; i < corpus->n_sentences; ++i) {
    const char *s = up_haystack_sentence(corpus, i);
    const size_t len = corpus->lengths[i];
    cr_assert_eq(strlen(s), len, "sentence %d length", i);
    cr_assert(isupper((unsigned char)s[0]), "sentence %d starts '%c': %s", i, s[0], s);
    size_t last = len - 1;
    while (strchr("\"')]", s[last])) last--;
    cr_assert(strchr(".!?", s[last]), "sentence %d does not end a sentence: %s", i, s);
    cr_assert(!strstr(s, "  ") && !strchr(s, '\n') && !strchr(s, '\t'), "sentence %d keeps raw whitespace: %s", i, s);
    int run = 0;
    for (size_t c = 0; c < len; ++c) {
      run = isdigit((unsigned char)s[c]) ? run + 1 : 0;
      cr_assert(run < 5, "sentence %d has a 5-digit run: %s", i, s);
    }
  }
  /* Loading is deterministic. */
  up_haystack_corpus *again = load_corpus();
  cr_assert_eq(again->n_sentences, corpus->n_sentences);
  cr_assert_eq(memcmp(again->text, corpus->text, corpus->offsets[corpus->n_sentences - 1] +
                                                     corpus->lengths[corpus->n_sentences - 1]),
               0);
  up_haystack_corpus_free(again);
  up_haystack_corpus_free(corpus);
}

static const char small_text[] =
    "1 A Heading\n"
    "***********\n"
    "\n"
    "   The first   paragraph is\n"
    "wrapped over lines.  It uses e.g. an abbreviation and ends here!  Does\n"
    "it really ask?  \"Quoted words end it.\"  Short one.\n"
    "\n"
    "     int example_code (void);  This Is Indented Like An Example.\n"
    "\n"
    "   Numbers like 1234567 in a sentence drop it.  J. Random Hacker wrote this line.\n";

static const char *const small_sentences[] = {
    "The first paragraph is wrapped over lines.",
    "It uses e.g. an abbreviation and ends here!",
    "Does it really ask?",
    "\"Quoted words end it.\"" /* starts with a quote: dropped */,
    "J. Random Hacker wrote this line.",
};

static void expect_small_corpus(const up_haystack_corpus *corpus) {
  /* "Short one." has 2 words, the quoted sentence does not start with a capital. */
  const int expected[] = {0, 1, 2, 4};
  cr_assert_eq(corpus->n_sentences, 4, "got %d sentences", corpus->n_sentences);
  for (int i = 0; i < 4; ++i)
    cr_expect_str_eq(up_haystack_sentence(corpus, i), small_sentences[expected[i]]);
}

Test(haystack_corpus, cleans_and_splits_a_plain_text_file) {
  char path[] = "/tmp/up_corpus_XXXXXX";
  const int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  write_file(path, small_text);
  const char *paths[] = {path};
  char err[256] = "";
  up_haystack_corpus *corpus = up_haystack_corpus_load(paths, 1, err, sizeof err);
  cr_assert(corpus, "%s", err);
  expect_small_corpus(corpus);
  up_haystack_corpus_free(corpus);
  unlink(path);
}

Test(haystack_corpus, reads_gzip_files) {
  char path[] = "/tmp/up_corpus_gz_XXXXXX";
  const int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  gzFile out = gzopen(path, "wb");
  cr_assert(out);
  cr_assert_eq(gzwrite(out, small_text, (unsigned)strlen(small_text)), (int)strlen(small_text));
  cr_assert_eq(gzclose(out), Z_OK);
  const char *paths[] = {path};
  char err[256] = "";
  up_haystack_corpus *corpus = up_haystack_corpus_load(paths, 1, err, sizeof err);
  cr_assert(corpus, "%s", err);
  expect_small_corpus(corpus);
  up_haystack_corpus_free(corpus);
  unlink(path);
}

Test(haystack_corpus, missing_file_is_an_error_naming_it) {
  const char *paths[] = {"/nonexistent/uniprefill/standards.text.gz"};
  char err[256] = "";
  cr_assert_null(up_haystack_corpus_load(paths, 1, err, sizeof err));
  cr_expect(strstr(err, "/nonexistent/uniprefill/standards.text.gz"), "message: %s", err);
  cr_expect(strstr(err, "No such file"), "message: %s", err);
}

Test(haystack_corpus, file_without_prose_is_an_error) {
  char path[] = "/tmp/up_corpus_empty_XXXXXX";
  const int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  write_file(path, "     only(code);\n     more(code);\n");
  const char *paths[] = {path};
  char err[256] = "";
  cr_assert_null(up_haystack_corpus_load(paths, 1, err, sizeof err));
  cr_expect(strstr(err, "no prose sentences"), "message: %s", err);
  unlink(path);
}

/* ---- task names ---- */

Test(eval_tasks, parses_names_and_aliases) {
  uint32_t mask;
  char err[256] = "";
  cr_assert(up_eval_tasks_parse("niah_single", &mask, err, sizeof err), "%s", err);
  cr_expect_eq(mask, 1u << UP_EVAL_NIAH_SINGLE);
  cr_assert(up_eval_tasks_parse("niah", &mask, err, sizeof err), "%s", err);
  cr_expect_eq(mask, (1u << UP_EVAL_NIAH_SINGLE) | (1u << UP_EVAL_NIAH_MULTIKEY) | (1u << UP_EVAL_NIAH_MULTIVALUE));
  cr_assert(up_eval_tasks_parse("vt,kv_retrieval,vt", &mask, err, sizeof err), "%s", err);
  cr_expect_eq(mask, (1u << UP_EVAL_VT) | (1u << UP_EVAL_KV_RETRIEVAL));
  cr_assert(up_eval_tasks_parse("all", &mask, err, sizeof err), "%s", err);
  cr_expect_eq(mask, (1u << UP_EVAL_TASK_COUNT) - 1);
  for (int k = 0; k < UP_EVAL_TASK_COUNT; ++k) {
    cr_assert(up_eval_tasks_parse(up_eval_task_name((up_eval_task_kind)k), &mask, err, sizeof err), "%s", err);
    cr_expect_eq(mask, 1u << k);
  }
  cr_expect(!up_eval_tasks_parse("niah,bogus", &mask, err, sizeof err));
  cr_expect(strstr(err, "'bogus'") && strstr(err, "kv_retrieval"), "message: %s", err);
  cr_expect(!up_eval_tasks_parse("vt,", &mask, err, sizeof err));
  cr_expect(strstr(err, "''"), "message: %s", err);
}

/* ---- generation: fit, determinism, depth ---- */

/* The prompt is the template's rendering of user_text and the answer prefix, counted
 * exactly, within the target and no more than tolerance below it. */
static void expect_fits(const up_chat_template *chat, const up_eval_sample *s, up_token_counter counter,
                        double tolerance) {
  char *rendered = up_chat_render_user_turn(chat, s->user_text, s->answer_prefix);
  cr_expect_str_eq(s->prompt, rendered);
  free(rendered);
  cr_expect_eq(s->prompt_tokens, counter(NULL, s->prompt, strlen(s->prompt)), "%s", up_eval_task_name(s->kind));
  cr_expect_leq(s->prompt_tokens, s->target_tokens, "%s: %d tokens over a target of %d", up_eval_task_name(s->kind),
                s->prompt_tokens, s->target_tokens);
  cr_expect_geq(s->prompt_tokens, (1.0 - tolerance) * s->target_tokens, "%s: %d tokens for a target of %d",
                up_eval_task_name(s->kind), s->prompt_tokens, s->target_tokens);
}

Test(eval_tasks, every_kind_fits_the_target_with_a_word_counter) {
  fixture f;
  fixture_open(&f, word_counter, NULL);
  const int32_t targets[] = {1024, 4096, 8192};
  for (int k = 0; k < UP_EVAL_TASK_COUNT; ++k)
    for (int t = 0; t < 3; ++t)
      for (uint64_t i = 0; i < 3; ++i) {
        up_eval_sample s = generate_with(f.gen, (up_eval_task_kind)k, 42, i, targets[t], -1.0);
        cr_expect_eq(s.kind, (up_eval_task_kind)k);
        cr_expect_eq(s.target_tokens, targets[t]);
        expect_fits(&f.chat, &s, word_counter, targets[t] >= 4096 ? 0.01 : 0.03);
        up_eval_sample_free(&s);
      }
  fixture_close(&f);
}

Test(eval_tasks, never_exceeds_the_target_when_counts_do_not_add_up) {
  const up_token_counter counters[] = {subadditive_counter, superadditive_counter};
  for (int c = 0; c < 2; ++c) {
    counter_stats stats = {0};
    fixture f;
    fixture_open(&f, counters[c], &stats);
    for (int k = 0; k < UP_EVAL_TASK_COUNT; ++k)
      for (uint64_t i = 0; i < 4; ++i) {
        stats.prompt_calls = 0;
        up_eval_sample s = generate_with(f.gen, (up_eval_task_kind)k, 5, i, 3000 + 111 * (int32_t)i, -1.0);
        expect_fits(&f.chat, &s, counters[c], 0.05);
        /* The fixed text once, then a few exact counts of the whole prompt. */
        cr_expect_leq(stats.prompt_calls, 6, "%s: %lld whole-prompt counts", up_eval_task_name(s.kind),
                      (long long)stats.prompt_calls);
        up_eval_sample_free(&s);
      }
    fixture_close(&f);
  }
}

Test(eval_tasks, counts_few_times_and_is_fast) {
  counter_stats stats = {0};
  fixture f;
  fixture_open(&f, word_counter, &stats);
  up_eval_sample s = generate_with(f.gen, UP_EVAL_NIAH_SINGLE, 1, 0, 8192, -1.0);
  up_eval_sample_free(&s);
  /* Once the sentences are counted (cached), a sample costs a handful of counts. */
  stats.calls = 0;
  const clock_t start = clock();
  s = generate_with(f.gen, UP_EVAL_NIAH_SINGLE, 1, 0, 8192, -1.0);
  const double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
  cr_expect_leq(stats.calls, 3, "%lld counter calls for a cached 8K sample (fixed text, needle, prompt)",
                (long long)stats.calls);
  cr_expect_lt(seconds, 0.5, "an 8K sample took %.3f s", seconds);
  up_eval_sample_free(&s);
  fixture_close(&f);
}

Test(eval_tasks, same_request_same_bytes_and_seeds_differ) {
  fixture f;
  fixture_open(&f, word_counter, NULL);
  fixture g;
  fixture_open(&g, word_counter, NULL); /* a fresh sentence-count cache */
  for (int k = 0; k < UP_EVAL_TASK_COUNT; ++k) {
    up_eval_sample a = generate_with(f.gen, (up_eval_task_kind)k, 7, 3, 2048, -1.0);
    up_eval_sample b = generate_with(g.gen, (up_eval_task_kind)k, 7, 3, 2048, -1.0);
    up_eval_sample other_seed = generate_with(f.gen, (up_eval_task_kind)k, 8, 3, 2048, -1.0);
    up_eval_sample other_index = generate_with(f.gen, (up_eval_task_kind)k, 7, 4, 2048, -1.0);
    cr_expect_str_eq(a.prompt, b.prompt, "%s", up_eval_task_name(a.kind));
    cr_expect_eq(a.n_answers, b.n_answers);
    for (int32_t i = 0; i < a.n_answers; ++i) cr_expect_str_eq(a.answers[i], b.answers[i]);
    cr_expect_float_eq(a.depth, b.depth, 0.0);
    cr_expect_str_neq(a.prompt, other_seed.prompt, "%s: seeds 7 and 8 gave the same prompt", up_eval_task_name(a.kind));
    cr_expect_str_neq(a.answers[0], other_seed.answers[0]);
    cr_expect_str_neq(a.prompt, other_index.prompt, "%s: samples 3 and 4 gave the same prompt",
                      up_eval_task_name(a.kind));
    up_eval_sample_free(&a);
    up_eval_sample_free(&b);
    up_eval_sample_free(&other_seed);
    up_eval_sample_free(&other_index);
  }
  fixture_close(&f);
  fixture_close(&g);
}

/* Each needle is in the context at its offset, and its depth is the share of the
 * context's words before it (the word counter makes the per-piece counts exact). */
static void expect_needles_at_depth(const up_eval_sample *s) {
  size_t len;
  const char *context = context_of(s, &len);
  const int32_t context_words = count_words(context, len);
  for (int32_t j = 0; j < s->n_needles; ++j) {
    const up_eval_needle *n = &s->needles[j];
    cr_assert_geq(n->offset, s->context_offset);
    cr_assert_leq(n->offset + n->length, s->context_offset + s->context_length);
    if (j > 0) cr_expect_gt(n->offset, s->needles[j - 1].offset, "needles out of context order");
    /* kv's "{" joins the first key's word: it is no word of its own. */
    const size_t brace = context[0] == '{';
    const double words_before = count_words(context + brace, n->offset - s->context_offset - brace);
    cr_expect_float_eq(n->depth, words_before / context_words, 1e-9, "%s needle %d: stated depth %.4f, actual %.4f",
                       up_eval_task_name(s->kind), j, n->depth, words_before / context_words);
  }
}

Test(eval_tasks, needles_sit_at_their_stated_depth) {
  fixture f;
  fixture_open(&f, word_counter, NULL);
  for (int k = 0; k < UP_EVAL_TASK_COUNT; ++k)
    for (uint64_t i = 0; i < 5; ++i) {
      up_eval_sample s = generate_with(f.gen, (up_eval_task_kind)k, 11, i, 4096, -1.0);
      expect_needles_at_depth(&s);
      up_eval_sample_free(&s);
    }
  /* An asked depth lands within a sentence of the mark. */
  const double depths[] = {0.0, 0.25, 0.5, 0.9, 1.0};
  for (int d = 0; d < 5; ++d)
    for (int k = 0; k < UP_EVAL_TASK_COUNT; ++k) {
      up_eval_sample s = generate_with(f.gen, (up_eval_task_kind)k, 3, 0, 4096, depths[d]);
      expect_needles_at_depth(&s);
      cr_expect_float_eq(s.depth, depths[d], 0.02, "%s: asked depth %.2f, got %.4f", up_eval_task_name(s.kind),
                         depths[d], s.depth);
      up_eval_sample_free(&s);
    }
  fixture_close(&f);
}

/* ---- answers recoverable from the text ---- */

static const char magic_prefix[] = "One of the special magic numbers for ";

/* The numbers the context's needles give for key, in context order. */
static int numbers_for_key(const up_eval_sample *s, const char *key, char numbers[][16], int max) {
  size_t len;
  const char *context = context_of(s, &len);
  int n = 0;
  for (const char *at = strstr(context, magic_prefix); at && at < context + len; at = strstr(at + 1, magic_prefix)) {
    const char *k = at + strlen(magic_prefix);
    const char *is = strstr(k, " is: ");
    cr_assert(is, "malformed needle");
    if ((size_t)(is - k) != strlen(key) || strncmp(k, key, strlen(key)) != 0) continue;
    cr_assert_lt(n, max);
    int digits = 0;
    while (isdigit((unsigned char)is[5 + digits])) digits++;
    cr_expect_eq(digits, 7, "needle number is not 7 digits");
    cr_expect_eq(is[5 + digits], '.');
    snprintf(numbers[n++], 16, "%.*s", digits, is + 5);
  }
  return n;
}

/* The key the question asks about: between "for " and the next '?' or ". " in the answer prefix. */
static void asked_key(const up_eval_sample *s, char *key, size_t size) {
  const char *at = strstr(s->answer_prefix, " for ");
  cr_assert(at, "answer prefix '%s' names no key", s->answer_prefix);
  at += 5;
  const size_t len = strcspn(at, " ");
  snprintf(key, size, "%.*s", (int)len, at);
  cr_expect(strstr(s->user_text + s->context_offset + s->context_length, key), "the question does not name %s", key);
}

Test(eval_tasks, niah_answers_are_the_needles_numbers) {
  fixture f;
  fixture_open(&f, word_counter, NULL);
  for (uint64_t i = 0; i < 6; ++i) {
    char key[64], numbers[8][16];
    up_eval_sample s = generate_with(f.gen, UP_EVAL_NIAH_SINGLE, 21, i, 2048, -1.0);
    asked_key(&s, key, sizeof key);
    cr_assert_eq(s.n_needles, 1);
    cr_assert_eq(s.n_answers, 1);
    cr_assert_eq(numbers_for_key(&s, key, numbers, 8), 1);
    cr_expect_str_eq(numbers[0], s.answers[0]);
    size_t len;
    const char *context = context_of(&s, &len);
    cr_expect_eq(count_occurrences(context, len, magic_prefix), 1);
    up_eval_sample_free(&s);

    s = generate_with(f.gen, UP_EVAL_NIAH_MULTIKEY, 21, i, 2048, -1.0);
    asked_key(&s, key, sizeof key);
    cr_assert_eq(s.n_answers, 1);
    context = context_of(&s, &len);
    cr_expect_eq(count_occurrences(context, len, magic_prefix), 4, "1 needle and 3 distractors");
    cr_assert_eq(numbers_for_key(&s, key, numbers, 8), 1, "the asked key has exactly one needle");
    cr_expect_str_eq(numbers[0], s.answers[0]);
    up_eval_sample_free(&s);

    s = generate_with(f.gen, UP_EVAL_NIAH_MULTIVALUE, 21, i, 2048, -1.0);
    asked_key(&s, key, sizeof key);
    cr_assert_eq(s.n_answers, 4);
    cr_assert_eq(numbers_for_key(&s, key, numbers, 8), 4, "all 4 values are in the context");
    for (int a = 0; a < 4; ++a) {
      bool found = false;
      for (int n = 0; n < 4; ++n) found |= strcmp(numbers[n], s.answers[a]) == 0;
      cr_expect(found, "answer %s is not a needle's number", s.answers[a]);
      for (int b = 0; b < a; ++b) cr_expect_str_neq(s.answers[a], s.answers[b], "values repeat");
    }
    up_eval_sample_free(&s);
  }
  fixture_close(&f);
}

Test(eval_tasks, kv_answer_is_the_asked_keys_value) {
  fixture f;
  fixture_open(&f, word_counter, NULL);
  for (uint64_t i = 0; i < 6; ++i) {
    up_eval_sample s = generate_with(f.gen, UP_EVAL_KV_RETRIEVAL, 9, i, 2048, -1.0);
    size_t len;
    const char *context = context_of(&s, &len);
    cr_expect_eq(context[0], '{');
    cr_expect_eq(context[len - 1], '}');
    const char *q = strstr(s.answer_prefix, "key \"");
    cr_assert(q);
    char pattern[96];
    snprintf(pattern, sizeof pattern, "\"%.36s\": \"", q + 5);
    cr_assert_eq(count_occurrences(context, len, pattern), 1, "key %s appears once as a key", pattern);
    const char *at = strstr(context, pattern);
    char value[40];
    snprintf(value, sizeof value, "%.36s", at + strlen(pattern));
    cr_expect_str_eq(value, s.answers[0]);
    cr_expect_eq(at[strlen(pattern) + 36], '"');
    cr_expect_gt(count_occurrences(context, len, "\": \""), 50, "the object holds many pairs");
    up_eval_sample_free(&s);
  }
  fixture_close(&f);
}

/* Run the context's VAR statements in order; the answers are every variable that ends
 * up holding the asked value. */
Test(eval_tasks, vt_chains_resolve_to_the_answers) {
  fixture f;
  fixture_open(&f, word_counter, NULL);
  for (uint64_t i = 0; i < 8; ++i) {
    up_eval_sample s = generate_with(f.gen, UP_EVAL_VT, 13, i, 2048, -1.0);
    size_t len;
    const char *context = context_of(&s, &len);
    char names[16][8];
    long values[16];
    int n_vars = 0;
    for (const char *at = strstr(context, "VAR "); at && at < context + len; at = strstr(at + 1, "VAR ")) {
      if (at >= context + 2 && at[-2] == '=') continue; /* the "VAR" of "= VAR X" */
      char name[8], rhs[8];
      long number;
      int idx = -1;
      if (sscanf(at, "VAR %5[A-Z] = VAR %5[A-Z].", name, rhs) == 2) {
        for (int v = 0; v < n_vars; ++v)
          if (strcmp(names[v], rhs) == 0) idx = v;
        cr_assert_geq(idx, 0, "%s is copied before it is assigned", rhs);
        number = values[idx];
      } else {
        cr_assert_eq(sscanf(at, "VAR %5[A-Z] = %ld.", name, &number), 2, "unparsed statement: %.30s", at);
      }
      cr_assert_lt(n_vars, 16);
      snprintf(names[n_vars], sizeof names[n_vars], "%s", name);
      values[n_vars++] = number;
    }
    cr_assert_eq(n_vars, 5, "one chain of 4 hops");
    long asked;
    cr_assert_eq(sscanf(strstr(s.answer_prefix, "value ") + 6, "%ld", &asked), 1);
    int holding = 0;
    for (int v = 0; v < n_vars; ++v) {
      if (values[v] != asked) continue;
      holding++;
      bool listed = false;
      for (int32_t a = 0; a < s.n_answers; ++a) listed |= strcmp(s.answers[a], names[v]) == 0;
      cr_expect(listed, "%s holds %ld but is not an answer", names[v], asked);
    }
    cr_expect_eq(holding, s.n_answers);
    up_eval_sample_free(&s);
  }
  fixture_close(&f);
}

Test(eval_tasks, rejects_bad_requests) {
  fixture f;
  fixture_open(&f, word_counter, NULL);
  up_eval_sample s;
  char err[512] = "";
  up_eval_request req = {.kind = UP_EVAL_NIAH_SINGLE, .seed = 1, .target_tokens = 40, .depth = -1.0};
  cr_expect(!up_eval_generate(f.gen, &req, &s, err, sizeof err));
  cr_expect(strstr(err, "niah_single") && strstr(err, "target of 40 tokens"), "message: %s", err);
  req.target_tokens = 2048;
  req.depth = 1.5;
  cr_expect(!up_eval_generate(f.gen, &req, &s, err, sizeof err));
  cr_expect(strstr(err, "depth 1.5"), "message: %s", err);
  req.depth = NAN;
  cr_expect(!up_eval_generate(f.gen, &req, &s, err, sizeof err));
  fixture_close(&f);

  fixture broken;
  fixture_open(&broken, failing_counter, NULL);
  req.depth = -1.0;
  cr_expect(!up_eval_generate(broken.gen, &req, &s, err, sizeof err));
  cr_expect(strstr(err, "token counter failed"), "message: %s", err);
  fixture_close(&broken);
}

/* ---- chat templates ---- */

/* tokenizer.chat_template of SmolLM2-135M-Instruct (the cached GGUF's metadata). */
static const char smollm2_template[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' "
    "+ message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt "
    "%}{{ '<|im_start|>assistant\n' }}{% endif %}";

static char *render_with(const char *name, const char *template_text, const char *content, const char *prefix) {
  up_chat_template chat;
  char err[256] = "";
  cr_assert(up_chat_template_resolve(name, template_text, &chat, err, sizeof err), "%s", err);
  return up_chat_render_user_turn(&chat, content, prefix);
}

Test(chat_template, smollm2_chatml_renders_byte_exact) {
  up_chat_template chat;
  char err[256] = "";
  cr_assert(up_chat_template_resolve(NULL, smollm2_template, &chat, err, sizeof err), "%s", err);
  cr_expect_eq(chat.format, UP_CHAT_CHATML);
  cr_expect_str_eq(chat.system_prompt, "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  char *text = up_chat_render_user_turn(&chat, "Hi there", NULL);
  static const char expected[] =
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
      "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n";
  cr_expect_eq(strlen(text), strlen(expected));
  cr_expect_eq(memcmp(text, expected, sizeof expected), 0, "got:\n%s", text);
  free(text);
  text = up_chat_render_user_turn(&chat, "Q", "The answer is");
  cr_expect_str_eq(text,
                   "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                   "<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nThe answer is");
  free(text);
  cr_expect(!up_chat_renders_bos(UP_CHAT_CHATML));
}

Test(chat_template, reads_the_template_from_the_cached_smollm2_gguf) {
  char path[512];
  const char *home = getenv("HOME");
  snprintf(path, sizeof path, "%s/.cache/uniprefill-bench/models/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : "");
  FILE *f = fopen(path, "rb");
  if (!f) cr_skip_test("SmolLM2 GGUF not cached at %s", path);
  /* The metadata sits in the first megabytes: find the key and its string value. */
  enum { HEAD = 8 << 20 };
  char *head = malloc(HEAD);
  cr_assert(head);
  const size_t n = fread(head, 1, HEAD, f);
  fclose(f);
  static const char key[] = "tokenizer.chat_template";
  char *at = NULL;
  for (size_t i = 0; i + sizeof key < n && !at; ++i)
    if (memcmp(head + i, key, sizeof key - 1) == 0) at = head + i + sizeof key - 1;
  cr_assert(at, "no %s in the GGUF header", key);
  uint64_t len;
  memcpy(&len, at + 4, sizeof len); /* after the uint32 value type (8 = string) */
  cr_assert_leq(len, 65536);
  char *template_text = strndup(at + 12, (size_t)len);
  cr_expect_str_eq(template_text, smollm2_template);
  free(template_text);
  free(head);
}

Test(chat_template, llama_and_plain_formats_render_exactly) {
  char *text = render_with(NULL, "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}", "Hello",
                           NULL);
  cr_expect_str_eq(text,
                   "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                   "<|start_header_id|>assistant<|end_header_id|>\n\n");
  free(text);
  text = render_with(NULL, "{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}", "Hello", "Sure:");
  cr_expect_str_eq(text, "<s>[INST] Hello [/INST] Sure:");
  free(text);
  text = render_with("llama2", NULL, "Hello", NULL);
  cr_expect_str_eq(text, "<s>[INST] Hello [/INST]");
  free(text);
  text = render_with(NULL, NULL, "Hello", NULL);
  cr_expect_str_eq(text, "Hello");
  free(text);
  text = render_with("plain", smollm2_template, "Hello", "Answer:");
  cr_expect_str_eq(text, "Hello\nAnswer:");
  free(text);
  text = render_with("chatml", NULL, "Hello", NULL);
  cr_expect_str_eq(text, "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
  free(text);
  cr_expect(up_chat_renders_bos(UP_CHAT_LLAMA3) && up_chat_renders_bos(UP_CHAT_LLAMA2));
  cr_expect(!up_chat_renders_bos(UP_CHAT_PLAIN));
}

Test(chat_template, override_names_and_errors) {
  up_chat_template chat;
  char err[256] = "";
  cr_assert(up_chat_template_resolve("llama3", smollm2_template, &chat, err, sizeof err), "%s", err);
  cr_expect_eq(chat.format, UP_CHAT_LLAMA3);
  cr_expect_str_eq(up_chat_format_name(chat.format), "llama3");
  /* ChatML named explicitly still takes the model's default system prompt. */
  cr_assert(up_chat_template_resolve("chatml", smollm2_template, &chat, err, sizeof err), "%s", err);
  cr_expect_str_eq(chat.system_prompt, "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  cr_expect(!up_chat_template_resolve("mistral", NULL, &chat, err, sizeof err));
  cr_expect(strstr(err, "'mistral'") && strstr(err, "chatml"), "message: %s", err);
  cr_expect(!up_chat_template_resolve(NULL, "{{ messages }}", &chat, err, sizeof err));
  cr_expect(strstr(err, "unrecognised"), "message: %s", err);
  /* A system turn that Jinja fills from the messages is not a default prompt; Jinja's
   * two-character "\n" escape is read as a newline. */
  cr_assert(up_chat_template_resolve(NULL, "{{'<|im_start|>system\\n' + message['content'] + '<|im_end|>'}}", &chat,
                                     err, sizeof err));
  cr_expect_str_eq(chat.system_prompt, "");
  cr_assert(up_chat_template_resolve(NULL, "{{ '<|im_start|>system\\nBe brief.<|im_end|>' }}", &chat, err, sizeof err));
  cr_expect_str_eq(chat.system_prompt, "Be brief.");
}

/* ---- scoring ---- */

Test(eval_score, string_match_cases) {
  const char *one[] = {"1234567"};
  up_eval_score s = up_eval_score_answers("The special magic number is 1234567.", one, 1);
  cr_expect_float_eq(s.all_found, 1.0, 0.0);
  cr_expect_float_eq(s.fraction, 1.0, 0.0);

  const char *names[] = {"ABCDE", "Fghij", "KLMNO"};
  s = up_eval_score_answers("they are: abcde, FGHIJ and klmno", names, 3);
  cr_expect_float_eq(s.all_found, 1.0, 0.0, "case is ignored");
  s = up_eval_score_answers("they are: ABCDE and KLMNO", names, 3);
  cr_expect_eq(s.n_found, 2);
  cr_expect_float_eq(s.all_found, 0.0, 0.0);
  cr_expect_float_eq(s.fraction, 2.0 / 3.0, 1e-12);
  s = up_eval_score_answers("I do not know.", names, 3);
  cr_expect_eq(s.n_found, 0);
  cr_expect_float_eq(s.fraction, 0.0, 0.0);
  s = up_eval_score_answers("", one, 1);
  cr_expect_float_eq(s.all_found, 0.0, 0.0);
  s = up_eval_score_answers("123456", one, 1);
  cr_expect_float_eq(s.all_found, 0.0, 0.0, "a prefix of the answer is not the answer");
}

Test(eval_score, scoreboard_aggregates_per_task_and_overall) {
  up_eval_scoreboard board = {0};
  const char *a[] = {"x1", "x2"};
  up_eval_scoreboard_add(&board, UP_EVAL_NIAH_SINGLE, up_eval_score_answers("x1 x2", a, 2));
  up_eval_scoreboard_add(&board, UP_EVAL_NIAH_SINGLE, up_eval_score_answers("x1", a, 2));
  up_eval_scoreboard_add(&board, UP_EVAL_VT, up_eval_score_answers("none", a, 2));
  cr_expect_eq(board.task[UP_EVAL_NIAH_SINGLE].n_samples, 2);
  cr_expect_float_eq(up_eval_tally_accuracy(&board.task[UP_EVAL_NIAH_SINGLE]), 0.5, 1e-12);
  cr_expect_float_eq(up_eval_tally_partial(&board.task[UP_EVAL_NIAH_SINGLE]), 0.75, 1e-12);
  cr_expect_float_eq(up_eval_tally_accuracy(&board.task[UP_EVAL_VT]), 0.0, 1e-12);
  cr_expect(isnan(up_eval_tally_accuracy(&board.task[UP_EVAL_KV_RETRIEVAL])));
  cr_expect_eq(board.overall.n_samples, 3);
  cr_expect_float_eq(up_eval_tally_accuracy(&board.overall), 1.0 / 3.0, 1e-12);
  cr_expect_float_eq(up_eval_tally_partial(&board.overall), 1.5 / 3.0, 1e-12);
  cr_expect_float_eq(up_eval_scoreboard_task_mean(&board), 0.25, 1e-12, "tasks weigh the same");
  up_eval_scoreboard empty = {0};
  cr_expect(isnan(up_eval_scoreboard_task_mean(&empty)));
}
