/* test_eval_file.c — the --eval-file reader (workloads/eval/eval_file.h) on the
 * committed fixtures in tests/data/eval_files and on malformed lines written here (each
 * kind with its message naming file and line, and lenient skipping), and the scoring
 * rules file samples use: string match all / part and normalised exact match. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "workloads/eval/eval_file.h"
#include "workloads/eval/eval_score.h"

#ifndef UP_TEST_DATA_DIR
#error "UP_TEST_DATA_DIR must point at tests/data (tests/CMakeLists.txt defines it)"
#endif

#define FIXTURES UP_TEST_DATA_DIR "/eval_files/"

static up_eval_file *read_ok(const char *path, bool lenient) {
  char err[1024] = "";
  up_eval_file *f = up_eval_file_read(path, lenient, err, sizeof err);
  cr_assert_not_null(f, "cannot read %s: %s", path, err);
  return f;
}

/* A file of the given bytes in a fresh directory, named name. */
typedef struct temp_file {
  char dir[64];
  char path[160];
} temp_file;

static temp_file write_temp(const char *name, const char *content, size_t len) {
  temp_file t;
  snprintf(t.dir, sizeof t.dir, "/tmp/up_eval_file_XXXXXX");
  cr_assert_not_null(mkdtemp(t.dir));
  snprintf(t.path, sizeof t.path, "%s/%s", t.dir, name);
  FILE *f = fopen(t.path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(content, 1, len, f), len);
  cr_assert_eq(fclose(f), 0);
  return t;
}

static void remove_temp(const temp_file *t) {
  unlink(t->path);
  rmdir(t->dir);
}

/* Reading content strictly fails with a message that names the file, the line and
 * contains `what`; leniently it keeps `kept` samples and skips `skipped` lines. */
static void expect_bad(const char *content, int line, const char *what, int32_t kept, int64_t skipped) {
  temp_file t = write_temp("bad.jsonl", content, strlen(content));
  char err[1024] = "";
  up_eval_file *f = up_eval_file_read(t.path, false, err, sizeof err);
  cr_expect_null(f, "read %s strictly although it holds: %s", t.path, content);
  up_eval_file_free(f);
  char where[256];
  snprintf(where, sizeof where, "eval file %s:%d: ", t.path, line);
  cr_expect(strstr(err, where) != NULL, "message '%s' does not name '%s'", err, where);
  cr_expect(strstr(err, what) != NULL, "message '%s' does not say '%s'", err, what);
  if (kept > 0) {
    up_eval_file *lenient = read_ok(t.path, true);
    cr_expect_eq(lenient->n_samples, kept, "lenient kept %d samples of: %s", lenient->n_samples, content);
    cr_expect_eq(lenient->lines_skipped, skipped);
    up_eval_file_free(lenient);
  } else {
    err[0] = '\0';
    f = up_eval_file_read(t.path, true, err, sizeof err);
    cr_expect_null(f);
    up_eval_file_free(f);
    cr_expect(strstr(err, "no valid sample") != NULL, "lenient message: %s", err);
  }
  remove_temp(&t);
}

#define GOOD_RULER "{\"input\": \"q\", \"outputs\": [\"a\"]}\n"
#define GOOD_LONGBENCH "{\"context\": \"c\", \"input\": \"q\", \"answers\": [\"a\"]}\n"

Test(eval_file, ruler_fixture) {
  up_eval_file *f = read_ok(FIXTURES "ruler_small.jsonl", false);
  cr_expect_eq(f->format, UP_EVAL_FILE_RULER);
  cr_assert_eq(f->n_samples, 3);
  const up_eval_file_sample *s = &f->samples[0];
  cr_expect_eq(s->line, 1);
  cr_expect_eq(s->file_length, 38);
  cr_expect_str_eq(s->task, "ruler_small");
  cr_expect(strncmp(s->user_text, "Remember this: the secret code", 30) == 0, "%s", s->user_text);
  cr_expect_str_eq(s->answer_prefix, " Answer: The secret code for the blue door is");
  cr_assert_eq(s->n_answers, 1);
  cr_expect_str_eq(s->answers[0], "4417");
  cr_expect_eq(f->samples[1].n_answers, 2);
  cr_expect_str_eq(f->samples[1].answers[1], "amber");
  /* Line 3 is blank: the third sample is line 4, without answer prefix. */
  cr_expect_eq(f->samples[2].line, 4);
  cr_expect_str_eq(f->samples[2].answer_prefix, "");
  cr_expect_eq(f->samples[2].file_length, 24);
  cr_expect_eq(f->lines_skipped, 0);
  up_eval_file_free(f);
}

Test(eval_file, longbench_fixture) {
  up_eval_file *f = read_ok(FIXTURES "longbench_small.jsonl", false);
  cr_expect_eq(f->format, UP_EVAL_FILE_LONGBENCH);
  cr_assert_eq(f->n_samples, 3);
  const up_eval_file_sample *s = &f->samples[0];
  /* The context, a blank line, then the question; the task is the dataset field. */
  cr_expect(strstr(s->user_text, "northern pier.\nPassage 2") != NULL, "%s", s->user_text);
  const char *tail = "summer.\n\nWhat colour was the lighthouse?";
  cr_expect_str_eq(s->user_text + strlen(s->user_text) - strlen(tail), tail);
  cr_expect_str_eq(s->task, "toy_qa");
  cr_expect_str_eq(f->samples[1].task, "toy_cls");
  cr_expect_eq(s->file_length, 31);
  cr_expect_eq(f->samples[2].file_length, -1);
  cr_expect_eq(f->samples[2].n_answers, 2);
  cr_expect_str_eq(f->samples[2].answers[1], "the fig");
  up_eval_file_free(f);
}

Test(eval_file, detection_from_first_valid_line) {
  /* A bad first line does not decide the layout: the first valid one does. */
  const char text[] = "{\"input\": 1}\n" GOOD_LONGBENCH GOOD_LONGBENCH;
  temp_file t = write_temp("mixed_start.jsonl", text, sizeof text - 1);
  up_eval_file *f = read_ok(t.path, true);
  cr_expect_eq(f->format, UP_EVAL_FILE_LONGBENCH);
  cr_expect_eq(f->n_samples, 2);
  cr_expect_eq(f->lines_skipped, 1);
  cr_expect_str_eq(f->samples[0].task, "mixed_start");
  up_eval_file_free(f);
  remove_temp(&t);
}

Test(eval_file, ruler_validation_file_is_named_by_its_directory) {
  /* RULER writes every task to <task>/validation.jsonl. */
  char dir[] = "/tmp/up_eval_file_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char task_dir[128], path[192];
  snprintf(task_dir, sizeof task_dir, "%s/niah_multikey_2", dir);
  cr_assert_eq(mkdir(task_dir, 0700), 0);
  snprintf(path, sizeof path, "%s/validation.jsonl", task_dir);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(GOOD_RULER, f);
  cr_assert_eq(fclose(f), 0);
  up_eval_file *file = read_ok(path, false);
  cr_expect_str_eq(file->samples[0].task, "niah_multikey_2");
  up_eval_file_free(file);
  unlink(path);
  rmdir(task_dir);
  rmdir(dir);
}

Test(eval_file, bom_and_crlf) {
  const char text[] = "\xEF\xBB\xBF{\"input\": \"q\", \"outputs\": [\"a\"]}\r\n\r\n" GOOD_RULER;
  temp_file t = write_temp("bom.jsonl", text, sizeof text - 1);
  up_eval_file *f = read_ok(t.path, false);
  cr_expect_eq(f->n_samples, 2);
  cr_expect_eq(f->samples[1].line, 3);
  up_eval_file_free(f);
  remove_temp(&t);
}

/* Each malformed-line kind: the file's text, the bad line, what the message says, and
 * what lenient reading keeps and skips. */
typedef struct bad_case {
  const char *content;
  int line;
  const char *what;
  int32_t kept;
  int64_t skipped;
} bad_case;

static const bad_case g_bad_cases[] = {
    {GOOD_RULER "not json\n", 2, "not valid JSON", 1, 1},
    {GOOD_RULER "[1, 2]\n", 2, "not a JSON object", 1, 1},
    {GOOD_RULER GOOD_RULER "{\"input\": \"q\", \"outputs\": [\"a\"]} x\n", 3, "text after the JSON object", 2, 1},
    {"{\"input\": \"q\", \"outputs\": [\"a\"]}{\"input\": \"r\", \"outputs\": [\"b\"]}\n",
     1, "one object per line", 0, 1},
    {GOOD_RULER "{\"input\": \"q\", \"input\": \"r\", \"outputs\": [\"a\"]}\n", 2, "duplicate key 'input'", 1, 1},
    {GOOD_RULER "{\"outputs\": [\"a\"]}\n", 2, "missing key \"input\"", 1, 1},
    {GOOD_RULER "{\"input\": 3, \"outputs\": [\"a\"]}\n", 2, "\"input\" must be a string", 1, 1},
    {GOOD_RULER "{\"input\": \"q\", \"outputs\": \"a\"}\n", 2, "\"outputs\" must be a list of strings", 1, 1},
    {GOOD_RULER "{\"input\": \"q\", \"outputs\": [\"a\", 2]}\n", 2, "\"outputs\"[1] must be a string", 1, 1},
    {GOOD_RULER "{\"input\": \"q\", \"outputs\": []}\n", 2, "\"outputs\" is empty", 1, 1},
    {GOOD_RULER "{\"input\": \"q\", \"outputs\": [\"\"]}\n", 2, "empty answer", 1, 1},
    {GOOD_RULER "{\"input\": \"q\", \"outputs\": [\"a\"], \"length\": -4}\n",
     2, "\"length\" must be a non-negative integer", 1, 1},
    {GOOD_RULER "{\"input\": \"q\", \"outputs\": [\"a\"], \"answer_prefix\": 1}\n",
     2, "\"answer_prefix\" must be a string", 1, 1},
    {GOOD_RULER "{\"input\": \"q\"}\n", 2, "neither \"outputs\"", 1, 1},
    {GOOD_RULER "{\"input\": \"q\", \"outputs\": [\"a\"], \"answers\": [\"a\"]}\n", 2, "has both", 1, 1},
    {GOOD_LONGBENCH "{\"input\": \"q\", \"answers\": [\"a\"]}\n", 2, "missing key \"context\"", 1, 1},
    {GOOD_LONGBENCH "{\"context\": \"c\", \"input\": \"q\", \"answers\": [\"a\"], \"all_classes\": 5}\n",
     2, "\"all_classes\" must be a list of strings", 1, 1},
    {GOOD_LONGBENCH "{\"context\": \"c\", \"input\": \"q\", \"answers\": [\"a\"], \"dataset\": \"\"}\n",
     2, "\"dataset\" must name the task", 1, 1},
    {"\n" GOOD_RULER GOOD_LONGBENCH, 3, "a longbench sample in a ruler file (layout set by line 2)", 1, 1},
    {GOOD_LONGBENCH GOOD_RULER, 2, "a ruler sample in a longbench file (layout set by line 1)", 1, 1},
};

Test(eval_file, malformed_lines) {
  for (size_t i = 0; i < sizeof g_bad_cases / sizeof g_bad_cases[0]; ++i) {
    const bad_case *c = &g_bad_cases[i];
    expect_bad(c->content, c->line, c->what, c->kept, c->skipped);
  }
}

Test(eval_file, nul_byte_line) {
  const char text[] = GOOD_RULER "{\"input\": \"q\0\", \"outputs\": [\"a\"]}\n";
  temp_file t = write_temp("nul.jsonl", text, sizeof text - 1);
  char err[1024] = "";
  cr_expect_null(up_eval_file_read(t.path, false, err, sizeof err));
  cr_expect(strstr(err, ":2: contains a NUL byte") != NULL, "%s", err);
  up_eval_file *f = read_ok(t.path, true);
  cr_expect_eq(f->n_samples, 1);
  cr_expect_eq(f->lines_skipped, 1);
  up_eval_file_free(f);
  remove_temp(&t);
}

Test(eval_file, files_that_are_not_eval_files) {
  char err[1024] = "";
  cr_expect_null(up_eval_file_read("/dev/zero", false, err, sizeof err));
  cr_expect(strstr(err, "eval file /dev/zero: is a character device") != NULL, "%s", err);
  cr_expect_null(up_eval_file_read(FIXTURES "no_such_file.jsonl", false, err, sizeof err));
  cr_expect(strstr(err, "cannot open") != NULL, "%s", err);
  temp_file t = write_temp("empty.jsonl", "\n  \n", 4);
  cr_expect_null(up_eval_file_read(t.path, false, err, sizeof err));
  cr_expect(strstr(err, "empty file") != NULL, "%s", err);
  remove_temp(&t);
}

Test(eval_file, fixture_with_bad_lines) {
  char err[1024] = "";
  cr_expect_null(up_eval_file_read(FIXTURES "ruler_with_bad_lines.jsonl", false, err, sizeof err));
  cr_expect(strstr(err, "ruler_with_bad_lines.jsonl:2: not valid JSON") != NULL, "%s", err);
  up_eval_file *f = read_ok(FIXTURES "ruler_with_bad_lines.jsonl", true);
  cr_expect_eq(f->n_samples, 1);
  cr_expect_eq(f->lines_skipped, 5);
  cr_expect_str_eq(f->samples[0].answers[0], "4");
  up_eval_file_free(f);
}

Test(eval_score, string_match_all_and_part) {
  const char *answers[] = {"Teal", "amber", "ochre"};
  up_eval_score s = up_eval_score_answers("The colours were TEAL and Amber.", answers, 3);
  cr_expect_eq(s.n_found, 2);
  cr_expect_eq(s.all_found, 0.0);
  cr_expect_float_eq(s.fraction, 2.0 / 3.0, 1e-12);
  s = up_eval_score_answers("teal, amber, ochre", answers, 3);
  cr_expect_eq(s.all_found, 1.0);
  cr_expect_eq(s.fraction, 1.0);
  s = up_eval_score_answers("", answers, 3);
  cr_expect_eq(s.n_found, 0);
}

Test(eval_score, exact_match) {
  const char *answers[] = {"fig", "the fig"};
  /* Surrounding whitespace and ASCII case do not matter; any accepted answer counts. */
  up_eval_score s = up_eval_score_exact("  The FIG\n", answers, 2);
  cr_expect_eq(s.all_found, 1.0);
  cr_expect_eq(s.n_found, 1);
  cr_expect_float_eq(s.fraction, 0.5, 1e-12);
  s = up_eval_score_exact("fig", answers, 2);
  cr_expect_eq(s.all_found, 1.0);
  /* Containing the answer is not matching it, and inner spacing is kept. */
  cr_expect_eq(up_eval_score_exact("a fig tree", answers, 2).all_found, 0.0);
  cr_expect_eq(up_eval_score_exact("the  fig", answers, 2).all_found, 0.0);
  cr_expect_eq(up_eval_score_exact("   ", answers, 2).n_found, 0);
}
