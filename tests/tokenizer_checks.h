/* tokenizer_checks.h — what the tokenizer tests share: encode/decode helpers that
 * check the sizing contract, the known-answer fixture (tests/data/tokenizer_fixture.txt:
 * ids from Hugging Face `tokenizers` and `sentencepiece`) with its round trips, the
 * metadata check, and where the optional SmolLM2 GGUF lives. Header-only (static inline)
 * for test_tokenizer.c (the GGUF reader) and test_tokenizer_hf.c (tokenizer.json). */
#ifndef UP_TESTS_TOKENIZER_CHECKS_H
#define UP_TESTS_TOKENIZER_CHECKS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/tokenizer/tokenizer.h"

#ifndef FIXTURE_PATH /* a test may read another fixture of the same format */
#define FIXTURE_PATH UP_TEST_DATA_DIR "/tokenizer_fixture.txt"
#endif

static inline void smollm2_path(char *out, size_t size) {
  const char *cache = getenv("UNIPREFILL_MODEL_CACHE");
  const char *home = getenv("HOME");
  if (cache && *cache)
    snprintf(out, size, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
  else
    snprintf(out, size, "%s/.cache/uniprefill-bench/models/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : "");
}

/* --- encode / decode helpers ---------------------------------------------------------- */

typedef struct ids {
  int32_t *v;
  int32_t n;
} ids;

static inline ids encode(const up_tokenizer *tok, const char *text, size_t len, bool add_bos, bool parse_special) {
  char err[256] = "";
  const int32_t n = up_tokenizer_encode(tok, text, len, add_bos, parse_special, NULL, 0, err, sizeof err);
  cr_assert_geq(n, 0, "sizing call failed: %s", err);
  ids r = {.v = malloc(((size_t)n + 1) * sizeof(int32_t)), .n = n};
  const int32_t again = up_tokenizer_encode(tok, text, len, add_bos, parse_special, r.v, n, err, sizeof err);
  cr_assert_eq(again, n, "sized call returned %d, sizing call %d", again, n);
  return r;
}

static inline char *decode(const up_tokenizer *tok, const int32_t *v, size_t n, bool render_special) {
  char err[256] = "";
  const int64_t len = up_tokenizer_decode(tok, v, n, render_special, NULL, 0, err, sizeof err);
  cr_assert_geq(len, 0, "%s", err);
  char *out = malloc((size_t)len + 1);
  cr_assert_eq(up_tokenizer_decode(tok, v, n, render_special, out, (size_t)len + 1, err, sizeof err), len);
  cr_assert_eq(strlen(out), (size_t)len, "decoded text holds no NUL");
  return out;
}

static inline void format_ids(const int32_t *v, int32_t n, char *out, size_t size) {
  size_t used = 0;
  out[0] = '\0';
  for (int32_t i = 0; i < n && used + 16 < size; ++i)
    used += (size_t)snprintf(out + used, size - used, "%s%d", i ? "," : "", v[i]);
}

/* decode(encode(text)) is want; specials are parsed and rendered, or neither. */
static inline void assert_decodes_to(const up_tokenizer *tok, const char *text, size_t len, bool special, const char *want,
                              size_t want_len) {
  ids e = encode(tok, text, len, false, special);
  char *back = decode(tok, e.v, (size_t)e.n, special);
  cr_assert(strlen(back) == want_len && memcmp(back, want, want_len) == 0, "\"%.*s\" came back as \"%s\"",
            (int)len, text, back);
  free(back);
  free(e.v);
}

static inline void assert_round_trip(const up_tokenizer *tok, const char *text, size_t len, bool parse_special) {
  assert_decodes_to(tok, text, len, parse_special, text, len);
}

/* --- fixture ---------------------------------------------------------------------------- */

typedef struct fixture_line {
  char kind[16], model[16], mode[16];
  char *text;  /* decoded */
  size_t text_len;
  char *list;  /* the raw comma list ("-" for empty) */
} fixture_line;

static inline size_t unhex(const char *hex, char *out) {
  out[0] = '\0';
  if (strcmp(hex, "-") == 0) return 0;
  size_t n = strlen(hex) / 2;
  for (size_t i = 0; i < n; ++i) {
    unsigned v;
    cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1, "bad hex in fixture: %s", hex);
    out[i] = (char)v;
  }
  out[n] = '\0';
  return n;
}

/* Every line of the fixture of one kind ("encode" or "split"); the array ends with a
 * line whose text is NULL. */
static inline fixture_line *read_fixture(const char *kind) {
  FILE *f = fopen(FIXTURE_PATH, "r");
  cr_assert_not_null(f, "cannot open %s", FIXTURE_PATH);
  size_t cap = 256, n = 0;
  fixture_line *lines = calloc(cap, sizeof *lines);
  char buf[65536];
  while (fgets(buf, sizeof buf, f)) {
    if (buf[0] == '#' || buf[0] == '\n') continue;
    buf[strcspn(buf, "\n")] = '\0';
    fixture_line l = {0};
    char *save = NULL;
    char *fields[5] = {0};
    int nf = 0;
    for (char *t = strtok_r(buf, " ", &save); t && nf < 5; t = strtok_r(NULL, " ", &save)) fields[nf++] = t;
    if (strcmp(fields[0], kind) != 0) continue;
    const bool is_encode = strcmp(kind, "encode") == 0;
    cr_assert_eq(nf, is_encode ? 5 : 4, "malformed fixture line of kind %s", kind);
    snprintf(l.kind, sizeof l.kind, "%s", fields[0]);
    snprintf(l.model, sizeof l.model, "%s", fields[1]);
    if (is_encode) snprintf(l.mode, sizeof l.mode, "%s", fields[2]);
    const char *hex = fields[is_encode ? 3 : 2];
    l.text = malloc(strlen(hex) / 2 + 1);
    l.text_len = unhex(hex, l.text);
    l.list = strdup(fields[is_encode ? 4 : 3]);
    cr_assert_lt(n + 1, cap);
    lines[n++] = l;
  }
  fclose(f);
  cr_assert_gt(n, 0, "no %s lines in %s", kind, FIXTURE_PATH);
  return lines;
}

static inline void free_fixture(fixture_line *lines) {
  for (fixture_line *l = lines; l->text; ++l) {
    free(l->text);
    free(l->list);
  }
  free(lines);
}

/* Known-answer check of every "encode <model>" line. Returns how many were checked. */
static inline int check_encodings(const up_tokenizer *tok, const char *model) {
  fixture_line *lines = read_fixture("encode");
  int checked = 0;
  for (fixture_line *l = lines; l->text; ++l) {
    if (strcmp(l->model, model) != 0) continue;
    const bool parse_special = strcmp(l->mode, "special") == 0;
    ids got = encode(tok, l->text, l->text_len, false, parse_special);
    char got_s[4096], want_s[4096];
    format_ids(got.v, got.n, got_s, sizeof got_s);
    snprintf(want_s, sizeof want_s, "%s", strcmp(l->list, "-") == 0 ? "" : l->list);
    cr_expect_str_eq(got_s, want_s, "%s %s encoding of \"%s\"", model, l->mode, l->text);
    free(got.v);
    checked++;
  }
  free_fixture(lines);
  return checked;
}

/* Round trip of every fixture text (both with and without special parsing). */
static inline void check_fixture_round_trips(const up_tokenizer *tok) {
  fixture_line *lines = read_fixture("encode");
  for (fixture_line *l = lines; l->text; ++l) {
    assert_round_trip(tok, l->text, l->text_len, false);
    assert_round_trip(tok, l->text, l->text_len, true);
  }
  free_fixture(lines);
}

/* Texts beyond the fixture's: whitespace runs, digits, contractions, every ASCII byte. */
static inline void check_extra_round_trips(const up_tokenizer *tok) {
  static const char *const texts[] = {
      "12345", "don't", "  two leading", "trailing two  ", "\t\ttabs\t", "\n\n\nlines\n",
      "a\u00a0b", "\xe2\x80\x8bzero width", "\xf0\x9f\x98\x80", "x = 3 * (y + 42) / 7;",
      "CamelCaseIdentifier_with_underscores", "    indented code", "\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; ++i) {
    assert_round_trip(tok, texts[i], strlen(texts[i]), false);
    assert_round_trip(tok, texts[i], strlen(texts[i]), true);
  }
  char ascii[128];
  size_t n = 0;
  for (int c = 1; c < 128; ++c)
    if (c >= 0x20 || c == '\t' || c == '\n' || c == '\r') ascii[n++] = (char)c;
  assert_round_trip(tok, ascii, n, false);
}

/* Milliseconds one encode of text takes (without BOS); *n gets the token count. */
static inline double encode_ms(const up_tokenizer *tok, const char *text, size_t len, bool parse_special,
                               int32_t *out, int32_t cap, int32_t *n) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  *n = up_tokenizer_encode(tok, text, len, false, parse_special, out, cap, NULL, 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
}

/* text repeated reps times, NUL-terminated; *len gets its length. free() it. */
static inline char *repeat_text(const char *text, size_t reps, size_t *len) {
  const size_t one = strlen(text);
  *len = reps * one;
  char *out = malloc(*len + 1);
  cr_assert_not_null(out);
  for (size_t i = 0; i < reps; ++i) memcpy(out + i * one, text, one);
  out[*len] = '\0';
  return out;
}

typedef struct expected_metadata {
  up_tokenizer_kind kind;
  int32_t vocab, bos, eos, eot;
  bool add_bos;
} expected_metadata;

static inline void assert_metadata(const up_tokenizer *tok, expected_metadata want) {
  cr_assert_eq(up_tokenizer_get_kind(tok), want.kind);
  cr_assert_eq(up_tokenizer_vocab_size(tok), want.vocab);
  cr_assert_eq(up_tokenizer_bos(tok), want.bos);
  cr_assert_eq(up_tokenizer_eos(tok), want.eos);
  cr_assert_eq(up_tokenizer_eot(tok), want.eot);
  cr_assert_eq(up_tokenizer_add_bos(tok), want.add_bos);
}

#endif
