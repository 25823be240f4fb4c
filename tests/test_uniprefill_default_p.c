/* test_uniprefill_default_p.c — UniPrefill's p defaults to the model's (up_model_config's
 * default_top_p: 0.975 on Gemma 3, 0.99 on Llama) when the user names none, while an
 * explicit p= or a changed default (--uniprefill-p) still wins; the description of a
 * resolved spec names the number, so Llama's stays what it always was. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "engine/methods/method.h"
#include "engine/methods/uniprefill.h"
#include "engine/model/model_config.h"

static up_method_spec resolved(const char *text, const up_method_defaults *defaults, const char *model) {
  const up_model_config *cfg = up_model_preset_find(model);
  cr_assert_not_null(cfg, "preset %s", model);
  up_method_spec spec;
  char err[512] = "";
  cr_assert(up_method_spec_parse(text, defaults, &spec, err, sizeof err), "'%s': %s", text, err);
  cr_assert(up_method_spec_resolve(&spec, cfg, err, sizeof err), "'%s' on %s: %s", text, model, err);
  return spec;
}

static float top_p_of(const up_method_spec *spec) { return up_uniprefill_options_of(spec)->select.top_p; }

Test(uniprefill_default_p, comes_from_the_model_when_not_given) {
  up_method_spec llama = resolved("uniprefill", NULL, "llama-3.1-8b");
  up_method_spec gemma = resolved("uniprefill", NULL, "gemma-3-270m");
  cr_expect_eq(top_p_of(&llama), 0.99f);
  cr_expect_eq(top_p_of(&gemma), 0.975f);
  /* Llama's description is the one p=0.99 always gave. */
  up_method_spec explicit = resolved("uniprefill:p=0.99", NULL, "llama-3.1-8b");
  char text[UP_METHOD_TEXT_MAX], want[UP_METHOD_TEXT_MAX];
  cr_assert(up_method_spec_describe(&llama, text, sizeof text));
  cr_assert(up_method_spec_describe(&explicit, want, sizeof want));
  cr_expect_str_eq(text, want);
  cr_expect_eq(strncmp(text, "uniprefill:p=0.99:", 18), 0, "%s", text);
  cr_assert(up_method_spec_describe(&gemma, text, sizeof text));
  cr_expect_eq(strncmp(text, "uniprefill:p=0.975:", 19), 0, "%s", text);
}

Test(uniprefill_default_p, an_explicit_p_wins) {
  up_method_spec gemma = resolved("uniprefill:p=0.99", NULL, "gemma-3-270m");
  up_method_spec llama = resolved("uniprefill:p=0.5", NULL, "llama-3.1-8b");
  cr_expect_eq(top_p_of(&gemma), 0.99f);
  cr_expect_eq(top_p_of(&llama), 0.5f);
  up_method_defaults defaults;
  up_method_defaults_init(&defaults);
  char err[256] = "";
  cr_assert(up_method_defaults_set(&defaults, "uniprefill", "p", "0.9", err, sizeof err), "%s", err);
  up_method_spec flagged = resolved("uniprefill", &defaults, "gemma-3-270m");
  cr_expect_eq(top_p_of(&flagged), 0.9f, "--uniprefill-p 0.9 beats the model's 0.975");
  up_method_spec again = resolved("uniprefill:p=preset", &defaults, "gemma-3-270m");
  cr_expect_eq(top_p_of(&again), 0.975f, "p=preset asks for the model's");
}

Test(uniprefill_default_p, unresolved_spec_says_preset_and_parses_back) {
  up_method_spec spec;
  char err[256] = "", text[UP_METHOD_TEXT_MAX];
  cr_assert(up_method_spec_parse("uniprefill", NULL, &spec, err, sizeof err), "%s", err);
  cr_expect(isnan(top_p_of(&spec)));
  cr_assert(up_method_spec_describe(&spec, text, sizeof text));
  cr_expect_eq(strncmp(text, "uniprefill:p=preset:", 20), 0, "%s", text);
  cr_expect(!up_method_spec_parse("uniprefill:p=1.5", NULL, &spec, err, sizeof err));
  cr_expect_neq(strstr(err, "must be in (0, 1]"), NULL, "%s", err);
  /* Only an option whose default is "preset" takes it: keep is a plain number. */
  cr_expect(!up_method_spec_parse("uniprefill:keep=preset", NULL, &spec, err, sizeof err));
}
