/* test_trace.c — the trace readers on the real Azure and Mooncake files in
 * ../shared/traces (row counts, first rows, ordered arrivals), Mooncake prefix sharing
 * through hash ids, malformed files (errors name the file and line; lenient mode skips
 * and counts), and replay selection: window, limit, speedup and length fitting. The
 * shared traces are required: a missing file fails the test. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "workloads/trace.h"
#include "workloads/trace_replay.h"

#ifndef UP_SHARED_DIR
#error "UP_SHARED_DIR must point at ../shared (tests/CMakeLists.txt defines it)"
#endif

#define TRACE_DIR UP_SHARED_DIR "/traces/"

static up_trace *read_ok(const char *path, up_trace_format format, bool lenient) {
  char err[1024] = "";
  up_trace *t = up_trace_read(path, format, lenient, err, sizeof err);
  cr_assert_not_null(t, "cannot read %s: %s", path, err);
  return t;
}

/* Read a shared trace and check its row count, first row and ordered arrivals from 0. */
static up_trace *read_shared(const char *name, up_trace_format format, up_trace_format detected, int32_t n_rows,
                             int64_t input0, int64_t output0) {
  up_trace *t = read_ok(name, format, false);
  cr_expect_eq(t->format, detected);
  cr_expect_eq(t->n_rows, n_rows);
  cr_expect_eq(t->rows[0].input_len, input0);
  cr_expect_eq(t->rows[0].output_len, output0);
  cr_expect_eq(t->rows[0].arrival_s, 0.0);
  for (int32_t i = 1; i < t->n_rows; ++i)
    cr_assert_geq(t->rows[i].arrival_s, t->rows[i - 1].arrival_s, "row %d goes back in time", i);
  return t;
}

Test(trace, azure_code) {
  up_trace *t = read_shared(TRACE_DIR "AzureLLMInferenceTrace_code.csv", UP_TRACE_FORMAT_AUTO, UP_TRACE_FORMAT_AZURE,
                            8819, 4808, 10);
  cr_expect_eq(t->rows[0].line, 2);
  cr_expect_eq(t->rows[0].n_hash_ids, 0);
  /* One hour of traffic. */
  cr_expect(t->rows[t->n_rows - 1].arrival_s > 3000.0 && t->rows[t->n_rows - 1].arrival_s < 3700.0);
  up_trace_free(t);
}

Test(trace, azure_conv) {
  up_trace *t = read_shared(TRACE_DIR "AzureLLMInferenceTrace_conv.csv", UP_TRACE_FORMAT_AZURE, UP_TRACE_FORMAT_AZURE,
                            19366, 374, 44);
  cr_expect_eq(t->rows[1].input_len, 396);
  /* 18:15:50.9951690 - 18:15:46.6805900, all 7 decimals kept. */
  cr_expect(fabs(t->rows[1].arrival_s - 4.314579) < 1e-9, "%.9f", t->rows[1].arrival_s);
  int64_t max_input = 0;
  for (int32_t i = 0; i < t->n_rows; ++i) max_input = t->rows[i].input_len > max_input ? t->rows[i].input_len : max_input;
  cr_expect_eq(max_input, 14050);
  up_trace_free(t);
}

Test(trace, mooncake_synthetic) {
  up_trace *t = read_shared(TRACE_DIR "synthetic_trace.jsonl", UP_TRACE_FORMAT_AUTO, UP_TRACE_FORMAT_MOONCAKE, 3993,
                            40160, 6);
  cr_expect_eq(t->rows[0].n_hash_ids, 79);
  cr_expect_eq(t->hash_ids[t->rows[0].hash_first], 0);
  cr_expect_eq(t->hash_ids[t->rows[0].hash_first + 78], 78);
  cr_expect(fabs(t->rows[t->n_rows - 1].arrival_s - 1022.025) < 1e-9);
  up_trace_free(t);
}

static up_trace_replay *replay_ok(const up_trace *t, up_trace_replay_params p) {
  char err[512] = "";
  if (p.speedup == 0.0) p.speedup = 1.0;
  if (p.max_context == 0) p.max_context = 1 << 20;
  if (p.vocab == 0) p.vocab = 32000;
  up_trace_replay *r = up_trace_replay_create(t, &p, err, sizeof err);
  cr_assert_not_null(r, "replay: %s", err);
  return r;
}

/* Two requests whose hash ids agree on the first k blocks and then differ share
 * exactly their first 512 k prompt tokens. */
Test(trace, mooncake_hash_ids_share_prefixes) {
  up_trace *t = read_ok(TRACE_DIR "synthetic_trace.jsonl", UP_TRACE_FORMAT_MOONCAKE, false);
  up_trace_replay *r = replay_ok(t, (up_trace_replay_params){.seed = 42});
  int32_t a = -1, b = -1, k = 0;
  for (int32_t i = 0; i < t->n_rows && a < 0; ++i)
    for (int32_t j = i + 1; j < t->n_rows && a < 0; ++j) {
      const up_trace_row *x = &t->rows[i], *y = &t->rows[j];
      int32_t common = 0;
      while (common < x->n_hash_ids && common < y->n_hash_ids &&
             t->hash_ids[x->hash_first + common] == t->hash_ids[y->hash_first + common])
        common++;
      if (common >= 1 && common < x->n_hash_ids && common < y->n_hash_ids &&
          x->input_len >= (int64_t)(common + 1) * UP_TRACE_HASH_BLOCK &&
          y->input_len >= (int64_t)(common + 1) * UP_TRACE_HASH_BLOCK)
        a = i, b = j, k = common;
    }
  cr_assert_geq(a, 0, "no two requests of the synthetic trace share a prefix");
  cr_assert_eq(r->rows[a], a, "replay ids follow the trace rows");
  const int32_t n = (k + 1) * UP_TRACE_HASH_BLOCK;
  int32_t *ta = malloc(sizeof *ta * (size_t)n), *tb = malloc(sizeof *tb * (size_t)n);
  up_trace_replay_fill_prompt(r, a, ta, n);
  up_trace_replay_fill_prompt(r, b, tb, n);
  const int32_t shared = k * UP_TRACE_HASH_BLOCK;
  cr_expect(memcmp(ta, tb, sizeof *ta * (size_t)shared) == 0, "requests %d and %d differ in their first %d tokens", a,
            b, shared);
  int differ = 0;
  for (int32_t i = shared; i < n; ++i) differ += ta[i] != tb[i];
  cr_expect_gt(differ, UP_TRACE_HASH_BLOCK / 2, "block %d after the shared prefix is alike", k);
  /* Tokens past the hash blocks come from the request id: another seed, other tokens. */
  up_trace_replay *r2 = replay_ok(t, (up_trace_replay_params){.seed = 43});
  up_trace_replay_fill_prompt(r2, a, tb, n);
  cr_expect(memcmp(ta, tb, sizeof *ta * (size_t)n) != 0);
  free(ta);
  free(tb);
  up_trace_replay_destroy(r);
  up_trace_replay_destroy(r2);
  up_trace_free(t);
}

Test(trace, replay_window_limit_speedup_and_clamp) {
  up_trace *t = read_ok(TRACE_DIR "AzureLLMInferenceTrace_conv.csv", UP_TRACE_FORMAT_AUTO, false);
  up_trace_replay *r = replay_ok(t, (up_trace_replay_params){.limit = 200, .speedup = 20.0, .seed = 1});
  cr_expect_eq(r->n_requests, 200);
  cr_expect_eq(r->requests[0].arrival_s, 0.0);
  cr_expect(fabs(r->requests[1].arrival_s - 4.314579 / 20.0) < 1e-9);
  cr_expect_eq(r->requests[0].output_len, 44);
  up_trace_replay_destroy(r);

  r = replay_ok(t, (up_trace_replay_params){.window_start_s = 600.0, .window_duration_s = 60.0, .seed = 1});
  int32_t expected = 0, first = -1;
  for (int32_t i = 0; i < t->n_rows; ++i)
    if (t->rows[i].arrival_s >= 600.0 && t->rows[i].arrival_s < 660.0) expected++, first = first < 0 ? i : first;
  cr_assert_gt(expected, 0);
  cr_expect_eq(r->n_requests, expected);
  cr_expect_eq(r->requests[0].arrival_s, 0.0, "re-based to the window's first request");
  cr_expect_eq(r->rows[0], first);
  cr_expect_lt(r->requests[r->n_requests - 1].arrival_s, 60.0);
  up_trace_replay_destroy(r);

  char err[512] = "";
  const up_trace_replay_params empty = {.window_start_s = 1e6, .window_duration_s = 1.0, .speedup = 1.0,
                                        .max_context = 4096, .vocab = 100};
  cr_expect_null(up_trace_replay_create(t, &empty, err, sizeof err));
  cr_expect(strstr(err, "no request") != NULL, "%s", err);

  /* A 4096-token model: the 14050-token prompt and its like are cut to 4096 - output. */
  int64_t longer = 0;
  for (int32_t i = 0; i < t->n_rows; ++i) longer += t->rows[i].input_len + t->rows[i].output_len > 4096;
  const up_length_dist out4 = {.kind = UP_LENGTH_FIXED, .value = 4};
  r = replay_ok(t, (up_trace_replay_params){.max_context = 4096, .output_len = &out4});
  int64_t clamped_by_hand = 0;
  for (int32_t i = 0; i < t->n_rows; ++i) clamped_by_hand += t->rows[i].input_len > 4092;
  cr_expect_gt(clamped_by_hand, 0);
  cr_expect_eq(r->stats.prompts_clamped, clamped_by_hand);
  for (int32_t i = 0; i < r->n_requests; ++i) {
    cr_assert_eq(r->requests[i].output_len, 4);
    cr_assert_leq(r->requests[i].prompt_len + r->requests[i].output_len, 4096);
  }
  up_trace_replay_destroy(r);
  r = replay_ok(t, (up_trace_replay_params){.max_context = 4096});
  cr_expect_eq(r->stats.prompts_clamped, longer);
  up_trace_replay_destroy(r);
  up_trace_free(t);
}

/* ---- malformed files ------------------------------------------------------------ */

typedef struct temp_trace {
  char path[256];
} temp_trace;

static temp_trace write_temp(const char *name, const char *content) {
  temp_trace tt;
  char dir[] = "/tmp/up_trace_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  snprintf(tt.path, sizeof tt.path, "%s/%s", dir, name);
  FILE *f = fopen(tt.path, "w");
  cr_assert_not_null(f);
  fputs(content, f);
  fclose(f);
  return tt;
}

static void remove_temp(const temp_trace *tt) {
  unlink(tt->path);
  char dir[256];
  snprintf(dir, sizeof dir, "%s", tt->path);
  *strrchr(dir, '/') = '\0';
  rmdir(dir);
}

/* Strict reading fails with "NAME:LINE:" and the reason; lenient reading skips the line. */
static void expect_bad_line(const char *name, const char *content, int line, const char *reason,
                            int32_t lenient_rows) {
  const temp_trace tt = write_temp(name, content);
  char err[1024] = "", where[128];
  cr_expect_null(up_trace_read(tt.path, UP_TRACE_FORMAT_AUTO, false, err, sizeof err), "%s accepted", name);
  snprintf(where, sizeof where, "%s:%d:", name, line);
  cr_expect(strstr(err, where) != NULL, "message '%s' lacks '%s'", err, where);
  cr_expect(strstr(err, reason) != NULL, "message '%s' lacks '%s'", err, reason);
  up_trace *t = up_trace_read(tt.path, UP_TRACE_FORMAT_AUTO, true, err, sizeof err);
  cr_assert_not_null(t, "lenient read of %s failed: %s", name, err);
  cr_expect_eq(t->lines_skipped, 1);
  cr_expect_eq(t->n_rows, lenient_rows);
  up_trace_free(t);
  remove_temp(&tt);
}

#define AZ_HEADER "TIMESTAMP,ContextTokens,GeneratedTokens\n"

Test(trace, malformed_lines_name_file_and_line) {
  expect_bad_line("truncated.csv", AZ_HEADER "2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:47.1,12\n"
                  "2023-11-16 18:15:48,5,6", 3, "missing GeneratedTokens", 2);
  expect_bad_line("number.csv", AZ_HEADER "2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:47.1,4x7,3\n", 3,
                  "bad ContextTokens '4x7'", 1);
  expect_bad_line("negative.csv", AZ_HEADER "2023-11-16 18:15:46,-5,4\n2023-11-16 18:15:47.1,7,3\n", 2,
                  "bad ContextTokens", 1);
  expect_bad_line("timestamp.csv", AZ_HEADER "2023-11-16 18:15:46.68,374,44\n2023-13-16 18:15:47,1,1\n", 3,
                  "bad TIMESTAMP", 1);
  expect_bad_line("date.csv", AZ_HEADER "2023-02-30 18:15:46,374,44\n2023-11-16 18:15:47,1,1\n", 2, "bad TIMESTAMP",
                  1);
  expect_bad_line("missing.jsonl",
                  "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 2, \"hash_ids\": [1]}\n"
                  "{\"timestamp\": 5, \"output_length\": 2, \"hash_ids\": [1]}\n",
                  2, "missing field 'input_length'", 1);
  expect_bad_line("cut.jsonl",
                  "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 2}\n"
                  "{\"timestamp\": 5, \"input_length\": 10, \"output_l\n"
                  "{\"timestamp\": 9, \"input_length\": 1, \"output_length\": 1}\n",
                  2, "not valid JSON", 2);
  expect_bad_line("type.jsonl",
                  "{\"timestamp\": 0, \"input_length\": 10.5, \"output_length\": 2}\n"
                  "{\"timestamp\": 9, \"input_length\": 1, \"output_length\": 1}\n",
                  1, "bad 'input_length'", 1);
}

static void expect_file_error(const char *name, const char *content, const char *reason) {
  const temp_trace tt = write_temp(name, content);
  char err[1024] = "";
  for (int lenient = 0; lenient < 2; ++lenient) {
    cr_expect_null(up_trace_read(tt.path, UP_TRACE_FORMAT_AUTO, lenient, err, sizeof err), "%s accepted", name);
    cr_expect(strstr(err, name) != NULL && strstr(err, reason) != NULL, "message '%s' lacks '%s' or '%s'", err, name,
              reason);
  }
  remove_temp(&tt);
}

Test(trace, empty_and_header_only_files) {
  expect_file_error("empty.csv", "", "empty file");
  expect_file_error("blank.csv", "\n  \n", "empty file");
  expect_file_error("header.csv", AZ_HEADER, "header only");
  expect_file_error("header_no_newline.csv", "TIMESTAMP,ContextTokens,GeneratedTokens", "header only");
  expect_file_error("wrong_header.csv", "time,in,out\n2023-11-16 18:15:46,1,1\n", "lacks column 'TIMESTAMP'");
  expect_file_error("all_bad.jsonl", "[1, 2]\n", "");
  char err[512] = "";
  cr_expect_null(up_trace_read("/nonexistent/trace.csv", UP_TRACE_FORMAT_AUTO, false, err, sizeof err));
  cr_expect(strstr(err, "/nonexistent/trace.csv") != NULL, "%s", err);
}

Test(trace, unordered_rows_crlf_and_reordered_columns) {
  const temp_trace tt = write_temp("mixed.csv",
                                   "GeneratedTokens,TIMESTAMP,ContextTokens\r\n"
                                   "7,2024-05-10 00:00:01.5,300\r\n"
                                   "0,2024-05-09 23:59:59.5,100\r\n"
                                   "\r\n"
                                   "9,2024-05-10 00:00:00,200");
  up_trace *t = read_ok(tt.path, UP_TRACE_FORMAT_AUTO, false);
  cr_assert_eq(t->n_rows, 3);
  /* Sorted by time across midnight: 100 @ 0 s, 200 @ 0.5 s, 300 @ 2 s. */
  cr_expect_eq(t->rows[0].input_len, 100);
  cr_expect_eq(t->rows[0].line, 3);
  cr_expect_eq(t->rows[1].input_len, 200);
  cr_expect(fabs(t->rows[1].arrival_s - 0.5) < 1e-12);
  cr_expect_eq(t->rows[2].output_len, 7);
  cr_expect(fabs(t->rows[2].arrival_s - 2.0) < 1e-12);
  /* An output of 0 is raised to 1 at replay and counted. */
  up_trace_replay *r = replay_ok(t, (up_trace_replay_params){.max_context = 4096});
  cr_expect_eq(r->requests[0].output_len, 1);
  cr_expect_eq(r->stats.outputs_raised, 1);
  up_trace_replay_destroy(r);
  up_trace_free(t);
  /* Forcing the wrong format is an error that says where. */
  char err[1024] = "";
  cr_expect_null(up_trace_read(tt.path, UP_TRACE_FORMAT_MOONCAKE, false, err, sizeof err));
  cr_expect(strstr(err, "mixed.csv:1:") != NULL, "%s", err);
  remove_temp(&tt);
}

/* ---- hostile input (issue 18) ------------------------------------------------- */

#define MC_ROW(ts) "{\"timestamp\": " #ts ", \"input_length\": 10, \"output_length\": 2}"

Test(trace, strict_jsonl_refuses_what_it_would_drop) {
  expect_bad_line("two_objects.jsonl", MC_ROW(0) "\n" MC_ROW(5) " " MC_ROW(9) "\n", 2,
                  "text after the JSON object at column 58", 1);
  expect_bad_line("garbage.jsonl", MC_ROW(0) "\n" MC_ROW(5) ",\n", 2, "text after the JSON object", 1);
  expect_bad_line("duplicate.jsonl",
                  MC_ROW(0) "\n{\"timestamp\": 5, \"input_length\": 10, \"input_length\": 99, \"output_length\": 2}\n",
                  2, "duplicate key 'input_length'", 1);
  /* Trailing white space is no garbage. */
  const temp_trace tt = write_temp("spaces.jsonl", MC_ROW(0) "  \t\r\n" MC_ROW(5) "\n");
  up_trace *t = read_ok(tt.path, UP_TRACE_FORMAT_AUTO, false);
  cr_expect_eq(t->n_rows, 2);
  up_trace_free(t);
  remove_temp(&tt);
}

Test(trace, nul_bytes_are_no_text) {
  const temp_trace tt = write_temp("nul.csv", "");
  FILE *f = fopen(tt.path, "w");
  cr_assert_not_null(f);
  static const char content[] = AZ_HEADER "2023-11-16 18:15:46,3,4\n2023-11-16 18:15:47,3\0,4\n";
  fwrite(content, 1, sizeof content - 1, f);
  fclose(f);
  char err[1024] = "";
  cr_expect_null(up_trace_read(tt.path, UP_TRACE_FORMAT_AUTO, false, err, sizeof err));
  cr_expect(strstr(err, "nul.csv:3: contains a NUL byte") != NULL, "%s", err);
  up_trace *t = read_ok(tt.path, UP_TRACE_FORMAT_AUTO, true);
  cr_expect_eq(t->n_rows, 1);
  cr_expect_eq(t->lines_skipped, 1);
  up_trace_free(t);
  remove_temp(&tt);
}

/* A line past the cap is an error at that line; lenient reading skips it whole (the
 * row after it still counts), so no line is ever held in memory beyond the cap. */
Test(trace, line_length_is_capped) {
  const size_t long_len = (size_t)UP_TRACE_MAX_LINE_BYTES + 10;
  char *content = malloc(long_len + 256);
  cr_assert_not_null(content);
  int n = snprintf(content, 256, AZ_HEADER "2023-11-16 18:15:46,3,4\n");
  memset(content + n, '7', long_len);
  snprintf(content + n + long_len, 256, "\n2023-11-16 18:15:48,5,6\n");
  expect_bad_line("long.csv", content, 3, "line longer than 1048576 bytes", 2);
  free(content);
}

static void expect_not_regular(const char *path, const char *kind) {
  char err[1024] = "";
  for (int lenient = 0; lenient < 2; ++lenient) {
    cr_expect_null(up_trace_read(path, UP_TRACE_FORMAT_AUTO, lenient, err, sizeof err), "%s accepted", path);
    cr_expect(strstr(err, path) != NULL && strstr(err, kind) != NULL && strstr(err, "not a regular file") != NULL,
              "message '%s' lacks '%s' or '%s'", err, path, kind);
  }
}

Test(trace, only_regular_files_are_read) {
  expect_not_regular("/dev/zero", "a character device");
  char dir[] = "/tmp/up_trace_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  expect_not_regular(dir, "a directory");
  char fifo[64];
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  expect_not_regular(fifo, "a FIFO"); /* refused without opening: opening would block */
  unlink(fifo);
  rmdir(dir);
}

Test(trace, utf8_bom_before_the_header_is_skipped) {
  const temp_trace tt = write_temp("bom.csv", "\xEF\xBB\xBF" AZ_HEADER "2023-11-16 18:15:46,3,4\n");
  up_trace *t = read_ok(tt.path, UP_TRACE_FORMAT_AUTO, false);
  cr_expect_eq(t->format, UP_TRACE_FORMAT_AZURE);
  cr_expect_eq(t->n_rows, 1);
  up_trace_free(t);
  remove_temp(&tt);
  const temp_trace mc = write_temp("bom.jsonl", "\xEF\xBB\xBF" MC_ROW(0) "\n");
  t = read_ok(mc.path, UP_TRACE_FORMAT_AUTO, false);
  cr_expect_eq(t->format, UP_TRACE_FORMAT_MOONCAKE);
  up_trace_free(t);
  remove_temp(&mc);
}

Test(trace, a_wait_of_more_than_a_day_is_named) {
  const temp_trace tt = write_temp("gap.csv", AZ_HEADER "2023-11-16 18:15:46,3,4\n2023-11-16 18:15:47,3,4\n"
                                              "2053-11-16 18:15:47,3,4\n");
  up_trace *t = read_ok(tt.path, UP_TRACE_FORMAT_AUTO, false);
  char msg[512] = "";
  cr_assert(up_trace_long_gap(t, "gap.csv", msg, sizeof msg));
  cr_expect(strstr(msg, "gap.csv:4 arrives 10958.0 days after the row before it (line 3)") != NULL, "%s", msg);
  up_trace_free(t);
  remove_temp(&tt);
  const temp_trace ok = write_temp("hours.csv", AZ_HEADER "2023-11-16 18:15:46,3,4\n2023-11-17 17:15:46,3,4\n");
  t = read_ok(ok.path, UP_TRACE_FORMAT_AUTO, false);
  cr_expect_not(up_trace_long_gap(t, "hours.csv", msg, sizeof msg), "23 hours warned: %s", msg);
  up_trace_free(t);
  remove_temp(&ok);
}
