/* test_cli.c — command-line parsing: defaults, lists and suffixes, both flag forms,
 * every class of error (status and a message naming the flag), --help coverage, and
 * the late parsing of method specs that lets --uniprefill-* follow --method. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/methods/uniprefill.h"
#include "launcher/cli.h"

#define MAX_ARGS 32

typedef struct parse_result {
  up_parse_status status;
  up_options opt;
  char err[512];
  char *out; /* what --help / --version printed */
} parse_result;

/* Parse a NULL-terminated argument array (argv[0] added here). */
static parse_result *parse_argv(const char *const *args) {
  char *argv[MAX_ARGS];
  int argc = 0;
  argv[argc++] = "uniprefill-bench";
  for (; *args != NULL; args++) {
    cr_assert_lt(argc, MAX_ARGS - 1);
    argv[argc++] = (char *)*args;
  }
  argv[argc] = NULL;
  parse_result *r = calloc(1, sizeof(*r));
  cr_assert_not_null(r);
  size_t out_size = 0;
  FILE *out = open_memstream(&r->out, &out_size);
  cr_assert_not_null(out);
  r->status = up_options_parse(argc, argv, &r->opt, out, r->err, sizeof(r->err));
  fclose(out);
  return r;
}

static void free_result(parse_result *r) {
  free(r->out);
  free(r);
}

#define PARSE(...) parse_argv((const char *const[]){__VA_ARGS__, NULL})

/* What every uniprefill spec starts from (the --uniprefill-* and --drop-layers aliases set it). */
static const up_uniprefill_options *uniprefill_defaults(const up_options *o) {
  return up_uniprefill_options_of(up_method_defaults_of(&o->method_defaults, "uniprefill"));
}

/* A command line that must fail with a message containing want1 and, if set, want2. */
typedef struct error_case {
  const char *args[6]; /* NULL-terminated by the zero padding */
  const char *want1;
  const char *want2;
} error_case;

static void expect_errors(const error_case *cases, size_t n) {
  for (size_t i = 0; i < n; i++) {
    parse_result *r = parse_argv(cases[i].args);
    cr_expect_eq(r->status, UP_PARSE_ERROR, "%s %s: expected an error, got status %d", cases[i].args[0],
                 cases[i].args[1] ? cases[i].args[1] : "", r->status);
    cr_expect_neq(strstr(r->err, cases[i].want1), NULL, "message '%s' lacks '%s'", r->err, cases[i].want1);
    if (cases[i].want2)
      cr_expect_neq(strstr(r->err, cases[i].want2), NULL, "message '%s' lacks '%s'", r->err, cases[i].want2);
    free_result(r);
  }
}

#define EXPECT_ERRORS(cases) expect_errors(cases, sizeof(cases) / sizeof(cases[0]))

Test(cli, defaults) {
  parse_result *r = parse_argv((const char *const[]){NULL});
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  const up_options *o = &r->opt;
  cr_expect_str_eq(o->model, "tiny-llama");
  cr_expect(!o->model_given);
  cr_expect_eq(o->layers, 0);
  cr_expect_eq(o->backend, UP_BACKEND_AUTO);
  cr_expect_eq(o->n_ctx, 2);
  cr_expect_eq(o->ctx[0], 1024);
  cr_expect_eq(o->ctx[1], 4096);
  cr_expect(!o->ctx_given);
  cr_expect_eq(o->n_concurrency, 2);
  cr_expect_eq(o->concurrency[0], 1);
  cr_expect_eq(o->concurrency[1], 4);
  cr_expect_eq(o->n_methods, 3);
  cr_expect_eq(o->methods[0].method, up_method_find("dense"));
  cr_expect_str_eq(o->methods[0].label, "dense");
  cr_expect_eq(o->methods[1].method, up_method_find("uniprefill"));
  cr_expect_str_eq(o->methods[1].label, "uniprefill");
  cr_expect_str_eq(o->methods[2].label, "uniprefill:keep=0.3");
  cr_expect_float_eq(up_uniprefill_options_of(&o->methods[2])->select.keep_fraction, 0.3f, 1e-6);
  cr_expect_eq(o->requests, 0);
  cr_expect_eq(o->output_len, 8);
  cr_expect_eq(o->seed, 42u);
  cr_expect_eq(o->warmup, 1);
  cr_expect_eq(o->max_seqs, 0);
  cr_expect_eq(o->max_batch_tokens, 0);
  cr_expect_eq(o->kv_block, 16);
  cr_expect_eq(o->kv_cache_mib, 0);
  cr_expect_eq(o->threads, 0);
  cr_expect(isnan(uniprefill_defaults(o)->select.top_p), "p is the model's (\"preset\") until resolved");
  cr_expect_float_eq(uniprefill_defaults(o)->select.keep_fraction, 0.0f, 1e-9);
  cr_expect_eq(uniprefill_defaults(o)->select.block, 64);
  cr_expect_eq(uniprefill_defaults(o)->select.sink, 128);
  cr_expect_eq(uniprefill_defaults(o)->select.last_q, 128);
  cr_expect_eq(uniprefill_defaults(o)->layers.n, -1);
  cr_expect_str_eq(o->output_path, "");
  cr_expect_eq(o->format, UP_FORMAT_MARKDOWN);
  cr_expect(!o->quiet);
  free_result(r);

  up_options d;
  up_options_default(&d);
  cr_expect_eq(d.n_methods, 3);
  cr_expect_eq(d.kv_block, 16);
}

Test(cli, attention_kernel_names_each_kernel) {
  parse_result *r = PARSE("--backend", "cuda");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect_eq(r->opt.attention_kernel, UP_ATTN_KERNEL_AUTO);
  free_result(r);
  for (int k = 0; k < UP_ATTN_KERNEL_COUNT; ++k) {
    r = PARSE("--attention-kernel", up_attention_kernel_names[k]);
    cr_assert_eq(r->status, UP_PARSE_OK, "%s: %s", up_attention_kernel_names[k], r->err);
    cr_expect_eq((int)r->opt.attention_kernel, k, "%s", up_attention_kernel_names[k]);
    free_result(r);
  }
}

Test(cli, cuda_backend_defaults_to_the_8b_model_unless_given) {
  parse_result *r = PARSE("--backend", "cuda");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect_str_eq(r->opt.model, "llama-3.1-8b");
  cr_expect_eq(r->opt.backend, UP_BACKEND_CUDA);
  free_result(r);
  r = PARSE("--model", "tiny-llama", "--backend=cuda");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect_str_eq(r->opt.model, "tiny-llama");
  cr_expect(r->opt.model_given);
  free_result(r);
}

Test(cli, lists_suffixes_and_both_flag_forms) {
  parse_result *r = PARSE("--ctx", "512,4k,32K,1M", "--concurrency=1,2,16", "--method=dense,uniprefill:keep=0.3",
                          "--max-batch-tokens", "8k", "--seed=18446744073709551615", "--layers", "4", "-o",
                          "out.h5", "--format=csv", "--quiet", "--requests", "16", "--output-len=1", "--warmup",
                          "0", "--max-seqs", "8", "--kv-block=32", "--kv-cache-mib", "2048", "--threads=3",
                          "--backend", "cpu", "--model=llama-3.1-8b");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  const up_options *o = &r->opt;
  cr_expect_eq(o->n_ctx, 4);
  cr_expect_eq(o->ctx[0], 512);
  cr_expect_eq(o->ctx[1], 4096);
  cr_expect_eq(o->ctx[2], 32768);
  cr_expect_eq(o->ctx[3], 1048576);
  cr_expect(o->ctx_given);
  cr_expect_eq(o->n_concurrency, 3);
  cr_expect_eq(o->concurrency[2], 16);
  cr_expect(o->concurrency_given);
  cr_expect_eq(o->n_methods, 2);
  cr_expect_str_eq(o->methods[1].label, "uniprefill:keep=0.3");
  cr_expect_eq(o->max_batch_tokens, 8192);
  cr_expect_eq(o->seed, UINT64_MAX);
  cr_expect_eq(o->layers, 4);
  cr_expect_str_eq(o->output_path, "out.h5");
  cr_expect_eq(o->format, UP_FORMAT_CSV);
  cr_expect(o->quiet);
  cr_expect_eq(o->requests, 16);
  cr_expect_eq(o->output_len, 1);
  cr_expect_eq(o->warmup, 0);
  cr_expect_eq(o->max_seqs, 8);
  cr_expect_eq(o->kv_block, 32);
  cr_expect_eq(o->kv_cache_mib, 2048);
  cr_expect_eq(o->threads, 3);
  cr_expect_eq(o->backend, UP_BACKEND_CPU);
  cr_expect_str_eq(o->model, "llama-3.1-8b");
  cr_expect(o->model_given);
  free_result(r);

  r = PARSE("-oshort.h5", "--format", "json");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect_str_eq(r->opt.output_path, "short.h5");
  cr_expect_eq(r->opt.format, UP_FORMAT_JSON);
  free_result(r);
}

Test(cli, uniprefill_flags_fill_the_defaults) {
  parse_result *r = PARSE("--uniprefill-p", "0.95", "--uniprefill-keep=0.25", "--uniprefill-block", "128",
                          "--uniprefill-sink=0", "--uniprefill-last-q", "64", "--drop-layers", "7,11,3");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  const up_uniprefill_options *d = uniprefill_defaults(&r->opt);
  cr_expect_float_eq(d->select.top_p, 0.95f, 1e-6);
  cr_expect_float_eq(d->select.keep_fraction, 0.25f, 1e-6);
  cr_expect_eq(d->select.block, 128);
  cr_expect_eq(d->select.sink, 0);
  cr_expect_eq(d->select.last_q, 64);
  cr_expect_eq(d->layers.n, 3);
  cr_expect_eq(d->layers.layers[0], 7);
  cr_expect_eq(d->layers.layers[1], 11);
  cr_expect_eq(d->layers.layers[2], 3);
  free_result(r);

  r = PARSE("--drop-layers", "1,2", "--drop-layers=preset", "--uniprefill-p=1");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect_eq(uniprefill_defaults(&r->opt)->layers.n, -1);
  cr_expect_float_eq(uniprefill_defaults(&r->opt)->select.top_p, 1.0f, 1e-9);
  free_result(r);
}

Test(cli, uniprefill_flags_after_method_apply_to_its_specs) {
  parse_result *r = PARSE("--method", "dense,uniprefill", "--uniprefill-keep", "0.3", "--drop-layers", "2,5");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  const up_uniprefill_options *u = up_uniprefill_options_of(&r->opt.methods[1]);
  cr_assert_not_null(u, "the second spec is a uniprefill one");
  cr_expect_float_eq(u->select.keep_fraction, 0.3f, 1e-6);
  cr_expect_eq(u->layers.n, 2);
  cr_expect_eq(u->layers.layers[1], 5);
  free_result(r);
  /* A spec's own key wins over the alias; the keys it leaves unset take the alias. */
  r = PARSE("--method", "uniprefill:p=0.7:layers=2", "--uniprefill-p", "0.5", "--uniprefill-keep", "0.2",
            "--drop-layers", "5,1");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  const up_uniprefill_options *own = up_uniprefill_options_of(&r->opt.methods[0]);
  cr_expect_float_eq(own->select.top_p, 0.7f, 1e-6);
  cr_expect_float_eq(own->select.keep_fraction, 0.2f, 1e-6);
  cr_expect_eq(own->layers.n, 1);
  cr_expect_eq(own->layers.layers[0], 2);
  free_result(r);
  /* The default method list sees the flags too. */
  r = PARSE("--uniprefill-keep", "0.5");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect_float_eq(up_uniprefill_options_of(&r->opt.methods[1])->select.keep_fraction, 0.5f, 1e-6);
  free_result(r);
}

Test(cli, parse_size) {
  int64_t v = 0;
  cr_expect(up_parse_size("4096", &v) && v == 4096);
  cr_expect(up_parse_size("0", &v) && v == 0);
  cr_expect(up_parse_size("4k", &v) && v == 4096);
  cr_expect(up_parse_size("2M", &v) && v == 2 * 1024 * 1024);
  cr_expect(up_parse_size("9223372036854775807", &v) && v == INT64_MAX);
  cr_expect(!up_parse_size("", &v));
  cr_expect(!up_parse_size("4q", &v));
  cr_expect(!up_parse_size("4kk", &v));
  cr_expect(!up_parse_size("k", &v));
  cr_expect(!up_parse_size("-1", &v));
  cr_expect(!up_parse_size(" 1", &v));
  cr_expect(!up_parse_size("+1", &v));
  cr_expect(!up_parse_size("1.5k", &v));
  cr_expect(!up_parse_size("9223372036854775808", &v));
  cr_expect(!up_parse_size("9007199254740992k", &v));

  int32_t vals[4];
  int32_t n = 0;
  char err[256];
  cr_expect(up_parse_size_list("1,2k", vals, 4, &n, err, sizeof(err)));
  cr_expect_eq(n, 2);
  cr_expect_eq(vals[1], 2048);
  cr_expect(!up_parse_size_list("1,2,3,4,5", vals, 4, &n, err, sizeof(err)));
  cr_expect(!up_parse_size_list("1,,2", vals, 4, &n, err, sizeof(err)));
  cr_expect_neq(strstr(err, "empty item"), NULL, "%s", err);
  cr_expect(!up_parse_size_list("", vals, 4, &n, err, sizeof(err)));
  cr_expect(!up_parse_size_list("1,", vals, 4, &n, err, sizeof(err)));
  cr_expect(!up_parse_size_list("4M,2048M", vals, 4, &n, err, sizeof(err)));
  cr_expect_neq(strstr(err, "too large"), NULL, "%s", err);
}

Test(cli, malformed_numbers) {
  const error_case cases[] = {
      {{"--ctx", "4q"}, "--ctx", "'4q' is not a size"},
      {{"--concurrency", "1,x"}, "--concurrency", "'x'"},
      {{"--requests", "12abc"}, "--requests", "'12abc'"},
      {{"--requests", " 12"}, "--requests", NULL},
      {{"--output-len", "99999999999999999999"}, "--output-len", NULL},
      {{"--output-len", "4294967296"}, "--output-len", "4294967296"},
      {{"--seed", "-1"}, "--seed", "'-1'"},
      {{"--seed", "18446744073709551616"}, "--seed", NULL},
      {{"--uniprefill-p", "0.9x"}, "--uniprefill-p", "'0.9x'"},
      {{"--uniprefill-p", "nan"}, "--uniprefill-p", NULL},
      {{"--max-batch-tokens", "-4k"}, "--max-batch-tokens", "'-4k'"},
      {{"--kv-cache-mib", "1k"}, "--kv-cache-mib", NULL},
      {{"--layers", ""}, "--layers", NULL},
      {{"--drop-layers", "7,x"}, "--drop-layers", "'x'"},
  };
  EXPECT_ERRORS(cases);
}

Test(cli, out_of_range_values) {
  const error_case cases[] = {
      {{"--ctx", "0"}, "--ctx", ">= 1"},
      {{"--concurrency", "0,1"}, "--concurrency", ">= 1"},
      {{"--requests", "-1"}, "--requests", "'-1'"},
      {{"--output-len", "0"}, "--output-len", "'0'"},
      {{"--warmup", "-2"}, "--warmup", "'-2'"},
      {{"--max-seqs", "-1"}, "--max-seqs", NULL},
      {{"--threads", "-1"}, "--threads", NULL},
      {{"--layers", "-1"}, "--layers", NULL},
      {{"--layers", "129"}, "--layers", NULL},
      {{"--kv-block", "0"}, "--kv-block", "'0'"},
      {{"--kv-block", "24"}, "--kv-block", "power of two"},
      {{"--kv-cache-mib", "-1"}, "--kv-cache-mib", NULL},
      {{"--uniprefill-p", "0"}, "--uniprefill-p", "'0'"},
      {{"--uniprefill-p", "1.01"}, "--uniprefill-p", NULL},
      {{"--uniprefill-keep", "-0.1"}, "--uniprefill-keep", NULL},
      {{"--uniprefill-keep", "1.5"}, "--uniprefill-keep", NULL},
      {{"--uniprefill-block", "0"}, "--uniprefill-block", NULL},
      {{"--uniprefill-sink", "-1"}, "--uniprefill-sink", NULL},
      {{"--uniprefill-last-q", "0"}, "--uniprefill-last-q", NULL},
      {{"--drop-layers", "-1"}, "--drop-layers", "'-1'"},
      {{"--drop-layers", "128"}, "--drop-layers", "'128'"},
  };
  EXPECT_ERRORS(cases);

  parse_result *r = PARSE("--uniprefill-keep", "0", "--uniprefill-sink", "0", "--requests", "0");
  cr_expect_eq(r->status, UP_PARSE_OK, "%s", r->err);
  free_result(r);
}

/* The alias flags keep the messages the flags always gave: the flag, then the value. */
Test(cli, uniprefill_flag_messages_name_the_flag_and_value) {
  const char *const cases[][3] = {
      {"--uniprefill-p", "0", "--uniprefill-p: '0' must be in (0, 1]"},
      {"--uniprefill-p", "0.9x", "--uniprefill-p: '0.9x' is not a number"},
      {"--uniprefill-keep", "1.5", "--uniprefill-keep: '1.5' must be in [0, 1]"},
      {"--uniprefill-block", "0", "--uniprefill-block: '0' must be >= 1"},
      {"--uniprefill-sink", "-1", "--uniprefill-sink: '-1' must be >= 0"},
      {"--uniprefill-last-q", "x", "--uniprefill-last-q: 'x' is not an integer"},
      {"--drop-layers", "7,x", "--drop-layers: 'x' is not a layer index (0..127) or 'preset'"},
      {"--drop-layers", "3,3", "--drop-layers: 3 appears twice in '3,3'"},
      {"--drop-layers", "3,,4", "--drop-layers: empty item in '3,,4'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    parse_result *r = PARSE(cases[i][0], cases[i][1]);
    cr_expect_eq(r->status, UP_PARSE_ERROR, "%s %s", cases[i][0], cases[i][1]);
    cr_expect_str_eq(r->err, cases[i][2]);
    free_result(r);
  }
}

Test(cli, list_errors) {
  char many[256] = ""; /* one item more than UP_MAX_SWEEP */
  for (int i = 1; i <= UP_MAX_SWEEP + 1; i++) {
    char item[8];
    snprintf(item, sizeof(item), "%s%d", i > 1 ? "," : "", i);
    strcat(many, item);
  }
  char long_method[128]; /* longer than a method label */
  memset(long_method, 'a', sizeof(long_method) - 1);
  long_method[sizeof(long_method) - 1] = '\0';
  const error_case cases[] = {
      {{"--ctx", "1k,,2k"}, "--ctx", "empty item"},
      {{"--ctx", ""}, "--ctx", "empty list"},
      {{"--ctx", "1k,"}, "--ctx", "empty item"},
      {{"--ctx", "4k,4096"}, "--ctx", "4096 appears twice"},
      {{"--concurrency", "2,2"}, "--concurrency", "twice"},
      {{"--method", "dense,,uniprefill"}, "--method", "empty item"},
      {{"--method", "dense,uniprefill:keep=0.3,dense"}, "--method", "'dense' appears twice"},
      {{"--drop-layers", "3,3"}, "--drop-layers", "twice"},
      {{"--drop-layers", "3,,4"}, "--drop-layers", "empty item"},
      {{"--ctx", many}, "--ctx", "more than 32 items"},
      {{"--method", long_method}, "--method", "too long"},
  };
  EXPECT_ERRORS(cases);
}

Test(cli, unknown_and_misplaced_arguments) {
  const error_case cases[] = {
      {{"--frobnicate", "3"}, "--frobnicate", "unknown flag"},
      {{"--ctx=1k", "-x"}, "-x", "unknown flag"},
      {{"--ctx"}, "--ctx", "missing value"},
      {{"--ctx", "--concurrency", "4"}, "--ctx", "missing value"},
      {{"-o"}, "--output", "missing value"},
      {{"--quiet=yes"}, "--quiet", "no value"},
      {{"stray"}, "'stray'", NULL},
      {{"--ctx", "1k", "4k"}, "'4k'", NULL},
      {{"--", "stray"}, "'stray'", NULL},
      {{"--format", "xml"}, "--format", "'xml'"},
      {{"--backend", "rocm"}, "--backend", "'rocm'"},
      {{"--attention-kernel", "fa3"}, "--attention-kernel", "'fa3'"},
      {{"--output", ""}, "--output", "empty"},
      {{"--model", ""}, "--model", "empty"},
  };
  EXPECT_ERRORS(cases);
}

Test(cli, impossible_combinations) {
  const error_case cases[] = {
      {{"--requests", "2", "--concurrency", "1,4"}, "--requests", "--concurrency 4"},
  };
  EXPECT_ERRORS(cases);
  parse_result *r = PARSE("--requests", "4", "--concurrency", "1,4");
  cr_expect_eq(r->status, UP_PARSE_OK, "%s", r->err);
  free_result(r);
}

/* Behaviour assumed from up_method_spec_parse: an unknown method name is an error. */
Test(cli, bad_method_spec_names_the_flag_and_entry) {
  const error_case cases[] = {
      {{"--method", "dense,sparse"}, "--method", "'sparse'"},
  };
  EXPECT_ERRORS(cases);
}

Test(cli, help_mentions_every_flag) {
  parse_result *r = PARSE("--ctx", "1k", "--help", "--bogus");
  cr_assert_eq(r->status, UP_PARSE_HELP);
  cr_assert_not_null(r->out);
  const char *flags[] = {"--model", "--layers", "--backend", "--attention-kernel", "--ctx", "--concurrency", "--method",
                         "--requests", "--output-len", "--seed", "--warmup", "--max-seqs", "--max-batch-tokens",
                         "--kv-block", "--kv-cache-mib", "--mem-limit-mib", "--threads", "--uniprefill-p", "--uniprefill-keep",
                         "--uniprefill-block", "--uniprefill-sink", "--uniprefill-last-q", "--drop-layers",
                         "--output", "-o", "--format", "--slo", "--quiet", "--help", "-h", "--version",
                         "--kernels", "--kernel-cases", "--kernel-tokens", "--kernel-batches", "--kernel-warmup",
                         "--kernel-repeats"};
  for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
    /* Match whole flag names: "--uniprefill-p" must not be found inside "--uniprefill-block". */
    bool found = false;
    for (const char *p = r->out; (p = strstr(p, flags[i])) != NULL; p++) {
      const char next = p[strlen(flags[i])];
      if (next == ' ' || next == ',' || next == '\n') found = true;
    }
    cr_expect(found, "help lacks %s", flags[i]);
  }
  cr_expect_neq(strstr(r->out, "mpirun -np N uniprefill-bench [options]"), NULL);
  cr_expect_neq(strstr(r->out, "uniprefill:keep=F:p=P:block=B:sink=S:last_q=Q:layers=L+L+L"), NULL);
  const char *groups[] = {"Model & backend:", "Sweep:",  "Workload:",       "Serving engine:",
                          "UniPrefill:",     "Output:", "Kernel benchmark"};
  for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
    cr_expect_neq(strstr(r->out, groups[i]), NULL, "help lacks group %s", groups[i]);
  free_result(r);

  r = PARSE("-h");
  cr_expect_eq(r->status, UP_PARSE_HELP);
  free_result(r);
}

Test(cli, version) {
  parse_result *r = PARSE("--version");
  cr_assert_eq(r->status, UP_PARSE_HELP);
  const char prefix[] = "uniprefill-bench " UNIPREFILL_VERSION " (";
  cr_expect_eq(strncmp(r->out, prefix, strlen(prefix)), 0, "%s", r->out);
  free_result(r);
}

Test(cli, slo_parts_are_optional_and_validated) {
  parse_result *r = PARSE("--ctx", "1k");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect(isnan(r->opt.slo.ttft_ms) && isnan(r->opt.slo.tpot_ms), "no --slo must leave both parts unset");
  free_result(r);

  r = PARSE("--slo", "ttft:2000,tpot:200");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect_float_eq(r->opt.slo.ttft_ms, 2000.0, 1e-12);
  cr_expect_float_eq(r->opt.slo.tpot_ms, 200.0, 1e-12);
  free_result(r);

  r = PARSE("--slo=tpot:0.5");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect(isnan(r->opt.slo.ttft_ms));
  cr_expect_float_eq(r->opt.slo.tpot_ms, 0.5, 1e-12);
  free_result(r);

  r = PARSE("--slo", "ttft:150");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect_float_eq(r->opt.slo.ttft_ms, 150.0, 1e-12);
  cr_expect(isnan(r->opt.slo.tpot_ms));
  free_result(r);

  const error_case cases[] = {
      {{"--slo", "ttft"}, "--slo", "KEY:MS"},
      {{"--slo", "e2e:100"}, "--slo", "unknown objective 'e2e'"},
      {{"--slo", "ttft:100,ttft:200"}, "--slo", "twice"},
      {{"--slo", "ttft:0"}, "--slo", "> 0"},
      {{"--slo", "ttft:-5"}, "--slo", "'-5'"},
      {{"--slo", "tpot:fast"}, "--slo", "'fast'"},
      {{"--slo", "ttft:1,"}, "--slo", "empty item"},
      {{"--slo", "ttft:1,tpot:2,ttft:3"}, "--slo", "more than 2"},
      {{"--slo", ""}, "--slo", NULL},
  };
  EXPECT_ERRORS(cases);
}

Test(cli, mem_limit_caps_the_memory_a_rank_uses) {
  parse_result *r = PARSE("--mem-limit-mib", "40000");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect_eq(r->opt.mem_limit_mib, 40000);
  free_result(r);
  r = PARSE("--ctx", "1k");
  cr_expect_eq(r->opt.mem_limit_mib, 0, "no limit by default");
  free_result(r);
  /* Beside the pool options: the limit bounds what they may take. */
  r = PARSE("--mem-limit-mib", "500", "--gpu-mem-fraction", "0.5");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  free_result(r);
  const error_case cases[] = {
      {{"--mem-limit-mib", "-5"}, "--mem-limit-mib", NULL},
      {{"--mem-limit-mib", "lots"}, "--mem-limit-mib", "'lots'"},
  };
  EXPECT_ERRORS(cases);
}

Test(cli, gpu_mem_fraction_sizes_the_kv_cache_alone) {
  parse_result *r = PARSE("--gpu-mem-fraction", "0.9");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect_float_eq(r->opt.gpu_mem_fraction, 0.9f, 1e-6);
  cr_expect_eq(r->opt.kv_cache_mib, 0);
  free_result(r);
  const error_case cases[] = {
      {{"--gpu-mem-fraction", "1.5"}, "--gpu-mem-fraction", "1.5"},
      {{"--gpu-mem-fraction", "-0.1"}, "--gpu-mem-fraction", NULL},
      {{"--gpu-mem-fraction", "half"}, "--gpu-mem-fraction", "not a number"},
      {{"--gpu-mem-fraction", "0.5", "--kv-cache-mib", "100"}, "--gpu-mem-fraction", "--kv-cache-mib"},
  };
  EXPECT_ERRORS(cases);
}

Test(cli, kernel_flags) {
  parse_result *r = PARSE("--ctx", "1k");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  cr_expect(!r->opt.kernels);
  cr_expect_eq(r->opt.kernel_kinds, (1u << UP_KERNEL_KIND_COUNT) - 1, "every kernel by default");
  cr_expect_eq(r->opt.kernel_tokens, 0, "0: the backend's default");
  cr_expect_eq(r->opt.n_kernel_batches, 0, "0: the backend's default");
  cr_expect_eq(r->opt.kernel_warmup, 3);
  cr_expect_eq(r->opt.kernel_repeats, 15);
  free_result(r);

  r = PARSE("--kernels", "--kernel-cases", "selection,gemm", "--kernel-tokens=4k", "--kernel-batches", "2x1k,16x8K",
            "--kernel-warmup", "0", "--kernel-repeats=7", "--ctx", "2k", "--uniprefill-block", "32");
  cr_assert_eq(r->status, UP_PARSE_OK, "%s", r->err);
  const up_options *o = &r->opt;
  cr_expect(o->kernels);
  cr_expect_eq(o->kernel_kinds, (1u << UP_KERNEL_GEMM) | (1u << UP_KERNEL_SELECTION));
  cr_expect_eq(o->kernel_tokens, 4096);
  cr_assert_eq(o->n_kernel_batches, 2);
  cr_expect_eq(o->kernel_batch_seqs[0], 2);
  cr_expect_eq(o->kernel_batch_len[0], 1024);
  cr_expect_eq(o->kernel_batch_seqs[1], 16);
  cr_expect_eq(o->kernel_batch_len[1], 8192);
  cr_expect_eq(o->kernel_warmup, 0);
  cr_expect_eq(o->kernel_repeats, 7);
  cr_expect_eq(uniprefill_defaults(o)->select.block, 32);
  free_result(r);
}

Test(cli, kernel_flag_errors) {
  const error_case cases[] = {
      {{"--kernel-tokens", "4k"}, "--kernel-tokens needs --kernels", NULL},
      {{"--kernel-repeats", "3"}, "--kernel-repeats needs --kernels", NULL},
      {{"--kernels", "--kernel-tokens", "0"}, "--kernel-tokens", "'0'"},
      {{"--kernels", "--kernel-tokens", "3G"}, "--kernel-tokens", "'3G'"},
      {{"--kernels", "--kernel-tokens", "4096M"}, "--kernel-tokens", "from 1 to"},
      {{"--kernels", "--kernel-cases", "gemm,softmax"}, "--kernel-cases", "'softmax' is not one of gemm, attention"},
      {{"--kernels", "--kernel-cases", "gemm,gemm"}, "--kernel-cases", "appears twice"},
      {{"--kernels", "--kernel-cases", ""}, "--kernel-cases", "empty list"},
      {{"--kernels", "--kernel-batches", "4x"}, "--kernel-batches", "'4x' is not NxL"},
      {{"--kernels", "--kernel-batches", "0x8k"}, "--kernel-batches", "'0x8k'"},
      {{"--kernels", "--kernel-batches", "8k"}, "--kernel-batches", "'8k' is not NxL"},
      {{"--kernels", "--kernel-batches", "4x8k,4x8192"}, "--kernel-batches", "appears twice"},
      {{"--kernels", "--kernel-batches", "64kx64k"}, "--kernel-batches", "more than"},
      {{"--kernels", "--kernel-repeats", "0"}, "--kernel-repeats", ">= 1"},
      {{"--kernels", "--kernel-repeats", "1001"}, "--kernel-repeats", "<= 1000"},
      {{"--kernels", "--kernel-warmup", "-1"}, "--kernel-warmup", NULL},
      {{"--kernels=yes"}, "--kernels takes no value", NULL},
      {{"--kernels", "--method", "dense"}, "--kernels and --method cannot be combined", "no sweep"},
      {{"--kernels", "--concurrency", "4"}, "--kernels and --concurrency cannot be combined", NULL},
      {{"--kernels", "--warmup", "2"}, "--kernels and --warmup cannot be combined", "--kernel-warmup"},
      {{"--kernels", "--trace", "t.csv"}, "cannot be combined", NULL},
  };
  EXPECT_ERRORS(cases);
}
