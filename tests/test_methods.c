/* test_methods.c — the method interface (engine/methods): every registered method
 * parses its defaults and round-trips its description; option errors (unknown or
 * repeated key, a trailing ':', a value out of range) name the option; resolving
 * against a model; supports(backend); the questions the launcher asks instead of
 * naming a method; the causal work of a layer; --help's list of methods. The alias
 * flags of the command line (--uniprefill-*, --drop-layers) are tested in test_cli.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/methods/method.h"
#include "engine/methods/uniprefill.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/small_model.h"

static up_method_spec parse_ok(const char *text) {
  up_method_spec spec;
  char err[256] = "";
  cr_assert(up_method_spec_parse(text, NULL, &spec, err, sizeof err), "'%s': %s", text, err);
  return spec;
}

/* The spec's options struct, compared byte for byte (the tail of the buffer past the
 * method's options is never written, so it stays as parsing left it: zero). */
static void expect_same_options(const up_method_spec *a, const up_method_spec *b, const char *what) {
  cr_expect_eq(a->method, b->method, "%s: method", what);
  cr_expect_eq(memcmp(a->options, b->options, sizeof a->options), 0, "%s: options differ", what);
}

static void expect_parse_error(const char *text, const char *want1, const char *want2) {
  up_method_spec spec;
  char err[256] = "";
  cr_expect(!up_method_spec_parse(text, NULL, &spec, err, sizeof err), "'%s' must not parse", text);
  cr_expect_neq(strstr(err, want1), NULL, "'%s': message '%s' lacks '%s'", text, err, want1);
  if (want2) cr_expect_neq(strstr(err, want2), NULL, "'%s': message '%s' lacks '%s'", text, err, want2);
}

/* --- the registry ------------------------------------------------------------- */

Test(methods, registry_lists_dense_and_uniprefill_once_each) {
  cr_assert_geq(up_method_count(), 2);
  cr_expect_not_null(up_method_find("dense"));
  cr_expect_not_null(up_method_find("uniprefill"));
  cr_expect_null(up_method_find("sparse"));
  for (int32_t i = 0; i < up_method_count(); ++i) {
    const up_method_ops *m = up_method_at(i);
    cr_expect_eq(up_method_index(m), i);
    cr_expect_eq(up_method_find(m->name), m, "%s is found by its name", m->name);
    cr_expect_leq(m->options_size, (size_t)UP_METHOD_OPTIONS_BYTES, "%s's options fit a spec", m->name);
    cr_expect_not_null(m->usage, "%s shows a usage", m->name);
    cr_expect_not_null(m->summary, "%s has a summary", m->name);
  }
  cr_expect_null(up_method_at(up_method_count()));
  char names[256];
  up_method_names(names, sizeof names);
  cr_expect_str_eq(names, "dense, uniprefill, minference, flexprefill, xattention");
}

Test(methods, every_method_parses_its_defaults_and_round_trips_its_description) {
  for (int32_t i = 0; i < up_method_count(); ++i) {
    const up_method_ops *m = up_method_at(i);
    const up_method_spec parsed = parse_ok(m->name);
    up_method_spec defaults;
    up_method_spec_default(&defaults, m);
    expect_same_options(&parsed, &defaults, m->name);
    cr_expect_str_eq(parsed.label, m->name);

    char text[UP_METHOD_TEXT_MAX], again[UP_METHOD_TEXT_MAX];
    cr_assert(up_method_spec_describe(&parsed, text, sizeof text));
    cr_expect_eq(strncmp(text, m->name, strlen(m->name)), 0, "'%s' starts with the name", text);
    for (int32_t k = 0; k < m->n_options; ++k) {
      char key[64];
      snprintf(key, sizeof key, ":%s=", m->options[k].key);
      cr_expect_neq(strstr(text, key), NULL, "'%s' spells out option %s", text, m->options[k].key);
    }
    const up_method_spec back = parse_ok(text);
    expect_same_options(&back, &parsed, text);
    cr_assert(up_method_spec_describe(&back, again, sizeof again));
    cr_expect_str_eq(again, text);
  }
}

Test(methods, descriptions_round_trip_set_and_resolved_values) {
  const char *texts[] = {"uniprefill:keep=0.3", "uniprefill:p=0.95:block=128:sink=0:last_q=1:layers=7+11+15",
                         "uniprefill:p=1:keep=1:layers=3+1", "uniprefill:p=0.123456789"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; ++i) {
    const up_method_spec spec = parse_ok(texts[i]);
    char text[UP_METHOD_TEXT_MAX];
    cr_assert(up_method_spec_describe(&spec, text, sizeof text));
    const up_method_spec back = parse_ok(text);
    expect_same_options(&back, &spec, texts[i]);
  }
  cr_expect_str_eq(parse_ok("uniprefill:keep=0.3").label, "uniprefill:keep=0.3", "the label is the user's text");

  /* Resolved against the small model, the preset becomes its drop layers. */
  const up_method_spec spec = small_spec("uniprefill");
  char text[UP_METHOD_TEXT_MAX];
  cr_assert(up_method_spec_describe(&spec, text, sizeof text));
  cr_expect_str_eq(text, "uniprefill:p=0.99:keep=0:block=64:sink=128:last_q=128:layers=1+2:min_rows=0:window=kept");
  const up_method_spec dense = parse_ok("dense");
  char dense_text[32];
  cr_assert(up_method_spec_describe(&dense, dense_text, sizeof dense_text));
  cr_expect_str_eq(dense_text, "dense");
  cr_expect(!up_method_spec_describe(&spec, text, 20), "a description that does not fit is reported");
}

Test(methods, a_description_naming_every_layer_parses_back) {
  char text[UP_METHOD_TEXT_MAX] = "uniprefill:layers=";
  for (int32_t l = 0; l < UP_MAX_LAYERS; ++l)
    snprintf(text + strlen(text), sizeof text - strlen(text), "%s%d", l ? "+" : "", (int)l);
  const up_method_spec spec = parse_ok(text);
  cr_expect_eq(up_uniprefill_options_of(&spec)->layers.n, UP_MAX_LAYERS);
  char described[UP_METHOD_TEXT_MAX];
  cr_assert(up_method_spec_describe(&spec, described, sizeof described));
  const up_method_spec back = parse_ok(described);
  expect_same_options(&back, &spec, "every layer");
  cr_expect_eq(strlen(spec.label), (size_t)UP_METHOD_LABEL_MAX - 1, "a long text keeps a cut label");
}

/* --- option errors ----------------------------------------------------------------- */

Test(methods, malformed_specs_name_the_option) {
  expect_parse_error("uniprefill:top=0.5", "unknown option 'top'", "p, keep, block, sink, last_q, layers");
  expect_parse_error("dense:keep=0.3", "unknown option 'keep'", "dense takes no options");
  expect_parse_error("uniprefill:p=0.9:p=0.8", "option p is given twice", NULL);
  expect_parse_error("uniprefill:layers=1+2:keep=0.1:layers=3", "option layers is given twice", NULL);
  expect_parse_error("uniprefill:", "trailing ':'", NULL);
  expect_parse_error("uniprefill:keep=0.3:", "trailing ':'", NULL);
  expect_parse_error("uniprefill::keep=0.3", "empty option", NULL);
  expect_parse_error("uniprefill:keep", "option 'keep' is not key=value", NULL);
  expect_parse_error("sparse:keep=0.3", "unknown method 'sparse'", "dense, uniprefill");
  expect_parse_error("", "empty method name", NULL);
  expect_parse_error(":p=1", "empty method name", NULL);
}

Test(methods, values_out_of_range_or_malformed_name_the_option_and_value) {
  const struct {
    const char *text, *want1, *want2;
  } cases[] = {
      {"uniprefill:p=0", "option p", "'0' must be in (0, 1]"},
      {"uniprefill:p=1.01", "option p", "'1.01' must be in (0, 1]"},
      {"uniprefill:p=nan", "option p", "'nan' is not a number"},
      {"uniprefill:p=", "option p", "'' is not a number"},
      {"uniprefill:p= 0.5", "option p", "not a number"},
      {"uniprefill:keep=-0.1", "option keep", "must be in [0, 1]"},
      {"uniprefill:keep=1.5", "option keep", "'1.5'"},
      {"uniprefill:block=0", "option block", "'0' must be >= 1"},
      {"uniprefill:block=1048577", "option block", "must be <= 1048576"},
      {"uniprefill:block=6.5", "option block", "'6.5' is not an integer"},
      {"uniprefill:sink=-1", "option sink", "'-1' must be >= 0"},
      {"uniprefill:last_q=0", "option last_q", "'0' must be >= 1"},
      {"uniprefill:layers=3+40+3", "option layers", "3 appears twice"},
      {"uniprefill:layers=128", "option layers", "'128' is not a layer index (0..127)"},
      {"uniprefill:layers=-1", "option layers", "'-1' is not a layer index"},
      {"uniprefill:layers=2++3", "option layers", "empty item"},
      {"uniprefill:layers=", "option layers", "empty list"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
    expect_parse_error(cases[i].text, cases[i].want1, cases[i].want2);
  /* The bounds themselves are in range. */
  const up_method_spec edge = parse_ok("uniprefill:p=1:keep=0:block=1048576:sink=0:last_q=1:layers=0+127");
  const up_uniprefill_options *o = up_uniprefill_options_of(&edge);
  cr_expect_eq(o->select.block, 1 << 20);
  cr_expect_eq(o->layers.layers[1], 127);
}

/* --- the model, the backend and the questions the launcher asks ------------------------ */

Test(methods, resolving_fills_the_preset_and_checks_layers_against_the_model) {
  const up_model_config cfg = small_config();
  up_method_spec spec = parse_ok("uniprefill:layers=0+3");
  char err[256] = "";
  cr_expect(up_method_spec_resolve(&spec, &cfg, err, sizeof err), "%s", err);
  spec = parse_ok("uniprefill:layers=1+4");
  cr_expect(!up_method_spec_resolve(&spec, &cfg, err, sizeof err));
  cr_expect_neq(strstr(err, "method 'uniprefill:layers=1+4': drop layer 4 is outside model"), NULL, "%s", err);
  up_model_config hybrid = cfg;
  hybrid.layer_kind[2] = UP_LAYER_LINEAR_ATTENTION;
  spec = parse_ok("uniprefill:layers=2");
  cr_expect(!up_method_spec_resolve(&spec, &hybrid, err, sizeof err));
  cr_expect_neq(strstr(err, "drop layer 2 of"), NULL, "%s", err);
  cr_expect_neq(strstr(err, "not a full-attention layer"), NULL, "%s", err);
  spec = parse_ok("dense");
  cr_expect(up_method_spec_resolve(&spec, &hybrid, err, sizeof err), "dense has nothing to check: %s", err);
}

static up_method_kernel_fn no_method_kernels(up_backend *be, const char *name) { return NULL; }

Test(methods, supports_asks_the_backend_for_the_kernels_a_method_needs) {
  up_backend *cpu = up_cpu_backend_create(1);
  const up_method_spec uni = small_spec("uniprefill:keep=0.3"), dense = small_spec("dense");
  up_method m;
  char err[256] = "";
  cr_expect(up_method_init(&m, &uni, cpu, err, sizeof err), "%s", err);
  cr_expect_eq(m.ops, uni.method);
  up_method_destroy(&m);

  /* A backend that lists no method kernels runs dense but not UniPrefill. */
  up_backend_ops bare_ops = *cpu->ops;
  bare_ops.name = "bare";
  bare_ops.method_kernel = no_method_kernels;
  up_backend bare = *cpu;
  bare.ops = &bare_ops;
  cr_expect(!up_method_init(&m, &uni, &bare, err, sizeof err));
  cr_expect_str_eq(err, "the bare backend has no UniPrefill selection operator");
  cr_expect(up_method_init(&m, &dense, &bare, err, sizeof err), "%s", err);
  up_method_destroy(&m);
  cpu->ops->destroy(cpu);
}

Test(methods, the_launcher_asks_instead_of_naming) {
  up_backend *cpu = up_cpu_backend_create(1);
  const up_method_spec uni = small_spec("uniprefill:keep=0.3"), dense = small_spec("dense");
  const up_method u = small_method(&uni, cpu), d = small_method(&dense, cpu);
  cr_expect(up_method_drops_tokens(&u, SMALL_N_LAYERS));
  cr_expect(!up_method_drops_tokens(&d, SMALL_N_LAYERS));
  cr_expect(!up_method_drops_tokens(&u, 1), "the small model drops after layers 1 and 2 only");
  cr_expect(up_method_spec_is_reference(&dense));
  cr_expect(!up_method_spec_is_reference(&uni));
  up_method_spec ref;
  up_method_spec_reference(&ref);
  cr_expect_eq(ref.method, dense.method);

  /* The run file's fixed attributes come from the options that name them. */
  const up_method_option *top_p = up_method_spec_option_for_attr(&uni, "top_p");
  cr_assert_not_null(top_p);
  cr_expect_str_eq(top_p->key, "p");
  cr_expect_float_eq(up_method_spec_number(&uni, top_p), 0.99, 1e-6);
  cr_expect_float_eq(up_method_spec_number(&uni, up_method_spec_option_for_attr(&uni, "keep_fraction")), 0.3, 1e-6);
  cr_expect_eq(up_method_spec_number(&uni, up_method_spec_option_for_attr(&uni, "sink")), 128.0);
  const up_layer_list *layers = up_method_spec_layers(&uni, up_method_spec_option_for_attr(&uni, "drop_layers"));
  cr_expect_eq(layers->n, 2);
  cr_expect_eq(layers->layers[1], 2);
  cr_expect_null(up_method_spec_option_for_attr(&dense, "top_p"));
  cr_expect_null(up_method_spec_option_for_attr(&uni, "no_such_attr"));
  cpu->ops->destroy(cpu);
}

Test(methods, causal_pairs_count_each_rows_keys) {
  /* A 4-row prefill on an empty cache: 1 + 2 + 3 + 4 pairs; a decode row after 9
   * cached entries: 10; a 3-row chunk after 5 entries: 6 + 7 + 8. */
  const int32_t cu[4] = {0, 4, 5, 8}, kv[3] = {4, 10, 8};
  const uint8_t prefill[3] = {1, 0, 0};
  const up_method_layer at = {.n_seqs = 3, .is_prefill_host = prefill, .cu_seqlens_host = cu, .kv_lens_host = kv};
  cr_expect_float_eq(up_method_causal_pairs(&at), 10.0 + 10.0 + 21.0, 1e-12);
}

Test(methods, help_lists_every_method_and_option) {
  char *text = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&text, &size);
  cr_assert_not_null(out);
  up_method_print_help(out);
  fclose(out);
  for (int32_t i = 0; i < up_method_count(); ++i) {
    const up_method_ops *m = up_method_at(i);
    cr_expect_neq(strstr(text, m->usage), NULL, "help lacks %s", m->usage);
    for (int32_t k = 0; k < m->n_options; ++k) cr_expect_neq(strstr(text, m->options[k].help), NULL);
  }
  free(text);
}
