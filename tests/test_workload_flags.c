/* test_workload_flags.c — the command line of open-loop and trace workloads: values of
 * --request-rate, --burstiness, --prompt-len, --output-len-dist and the --trace-* flags,
 * and the combinations refused at parse time (each message names the flags). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "launcher/cli.h"

#define MAX_ARGS 24

typedef struct parsed {
  up_parse_status status;
  up_options opt;
  char err[512];
} parsed;

static parsed *parse(const char *const *args) {
  char *argv[MAX_ARGS];
  int argc = 0;
  argv[argc++] = "uniprefill-bench";
  for (; *args; ++args) {
    cr_assert_lt(argc, MAX_ARGS - 1);
    argv[argc++] = (char *)*args;
  }
  argv[argc] = NULL;
  parsed *p = calloc(1, sizeof *p);
  cr_assert_not_null(p);
  FILE *out = fopen("/dev/null", "w");
  p->status = up_options_parse(argc, argv, &p->opt, out, p->err, sizeof p->err);
  fclose(out);
  return p;
}

#define PARSE(...) parse((const char *const[]){__VA_ARGS__, NULL})

static void expect_error(parsed *p, const char *needle) {
  cr_expect_eq(p->status, UP_PARSE_ERROR, "accepted; expected an error with '%s'", needle);
  cr_expect(strstr(p->err, needle) != NULL, "message '%s' lacks '%s'", p->err, needle);
  free(p);
}

Test(workload_flags, closed_loop_by_default) {
  parsed *p = PARSE("--ctx", "2k");
  cr_assert_eq(p->status, UP_PARSE_OK, "%s", p->err);
  cr_expect_eq(p->opt.request_rate, 0.0);
  cr_expect_eq(p->opt.trace_path[0], '\0');
  cr_expect_eq(p->opt.burstiness, 1.0);
  cr_expect_eq(p->opt.trace_speedup, 1.0);
  free(p);
}

Test(workload_flags, open_loop_values) {
  parsed *p = PARSE("--request-rate", "2.5", "--burstiness", "0.25", "--requests", "100", "--max-concurrency", "8,16",
                    "--prompt-len", "lognormal:2k:0.8", "--output-len-dist", "uniform:64:0.5");
  cr_assert_eq(p->status, UP_PARSE_OK, "%s", p->err);
  cr_expect_float_eq(p->opt.request_rate, 2.5, 1e-12);
  cr_expect_float_eq(p->opt.burstiness, 0.25, 1e-12);
  cr_expect_eq(p->opt.n_concurrency, 2);
  cr_expect_eq(p->opt.concurrency[1], 16);
  cr_expect_eq(p->opt.prompt_len.kind, UP_LENGTH_LOGNORMAL);
  cr_expect_eq(p->opt.prompt_len.value, 2048);
  cr_expect_eq(p->opt.output_len_dist.kind, UP_LENGTH_UNIFORM);
  free(p);
  p = PARSE("--request-rate", "inf", "--requests", "10");
  cr_assert_eq(p->status, UP_PARSE_OK, "%s", p->err);
  cr_expect(isinf(p->opt.request_rate));
  free(p);
  p = PARSE("--request-rate", "4", "--duration", "30");
  cr_assert_eq(p->status, UP_PARSE_OK, "%s", p->err);
  cr_expect_float_eq(p->opt.duration_s, 30.0, 1e-12);
  free(p);
}

Test(workload_flags, trace_values) {
  parsed *p = PARSE("--trace", "t.csv", "--trace-speedup", "20", "--trace-limit", "200", "--trace-format", "azure",
                    "--trace-lenient", "--output-len-dist", "fixed:4", "--concurrency", "8");
  cr_assert_eq(p->status, UP_PARSE_OK, "%s", p->err);
  cr_expect_str_eq(p->opt.trace_path, "t.csv");
  cr_expect_float_eq(p->opt.trace_speedup, 20.0, 1e-12);
  cr_expect_eq(p->opt.trace_limit, 200);
  cr_expect_eq(p->opt.trace_format, UP_TRACE_FORMAT_AZURE);
  cr_expect(p->opt.trace_lenient);
  cr_expect(p->opt.output_len_dist_given);
  free(p);
  p = PARSE("--trace", "t.jsonl", "--trace-window", "600:120.5");
  cr_assert_eq(p->status, UP_PARSE_OK, "%s", p->err);
  cr_expect_float_eq(p->opt.trace_window_start_s, 600.0, 1e-12);
  cr_expect_float_eq(p->opt.trace_window_s, 120.5, 1e-12);
  free(p);
}

Test(workload_flags, bad_values) {
  expect_error(PARSE("--request-rate", "0", "--requests", "4"), "--request-rate: '0' is not a number > 0");
  expect_error(PARSE("--request-rate", "fast", "--requests", "4"), "--request-rate");
  expect_error(PARSE("--request-rate", "1", "--requests", "4", "--burstiness", "inf"), "--burstiness");
  expect_error(PARSE("--trace", "t.csv", "--trace-speedup", "0"), "--trace-speedup: '0'");
  expect_error(PARSE("--trace", "t.csv", "--trace-speedup", "-2"), "--trace-speedup");
  expect_error(PARSE("--trace", "t.csv", "--trace-window", "100"), "START:DURATION");
  expect_error(PARSE("--trace", "t.csv", "--trace-window", "100:0"), "DURATION > 0");
  expect_error(PARSE("--trace", "t.csv", "--trace-limit", "0"), "--trace-limit");
  expect_error(PARSE("--trace", "t.csv", "--trace-format", "parquet"), "--trace-format");
  expect_error(PARSE("--request-rate", "1", "--requests", "4", "--prompt-len", "normal:5:1"), "--prompt-len");
  expect_error(PARSE("--trace", "t.csv", "--output-len-dist", "uniform:8:2"), "--output-len-dist");
}

Test(workload_flags, refused_combinations) {
  expect_error(PARSE("--trace", "t.csv", "--request-rate", "2"), "--trace and --request-rate");
  expect_error(PARSE("--trace", "t.csv", "--trace-window", "0:10", "--trace-limit", "5"),
               "--trace-window and --trace-limit");
  expect_error(PARSE("--trace-limit", "5"), "--trace-limit needs --trace");
  expect_error(PARSE("--trace-speedup", "5"), "--trace-speedup needs --trace");
  expect_error(PARSE("--burstiness", "0.5"), "--burstiness needs --request-rate");
  expect_error(PARSE("--prompt-len", "4k"), "--prompt-len needs --request-rate");
  expect_error(PARSE("--output-len-dist", "4"), "--output-len-dist needs --request-rate or --trace");
  expect_error(PARSE("--max-concurrency", "4"), "--max-concurrency needs --request-rate or --trace");
  expect_error(PARSE("--request-rate", "2"), "--requests N or --duration S");
  expect_error(PARSE("--request-rate", "inf", "--duration", "5"), "give --requests");
  expect_error(PARSE("--request-rate", "2", "--requests", "8", "--ctx", "4k"), "--ctx and --request-rate");
  expect_error(PARSE("--trace", "t.csv", "--ctx", "4k"), "--ctx and --trace");
  expect_error(PARSE("--trace", "t.csv", "--output-len", "4"), "--output-len and --trace");
  expect_error(PARSE("--trace", "t.csv", "--requests", "4"), "--trace-limit");
  expect_error(PARSE("--trace", "t.csv", "--concurrency", "2", "--max-concurrency", "4"),
               "--concurrency and --max-concurrency");
  expect_error(PARSE("--duration", "10"), "--duration needs --request-rate");
  /* Open loop may issue fewer requests than its concurrency cap. */
  parsed *p = PARSE("--request-rate", "2", "--requests", "2", "--concurrency", "8");
  cr_expect_eq(p->status, UP_PARSE_OK, "%s", p->err);
  free(p);
}
