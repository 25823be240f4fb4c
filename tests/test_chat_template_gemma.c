/* test_chat_template_gemma.c — the "gemma" chat format (instruction-tuned Gemma 3) and
 * "plain" for the base Gemma 3 270M checkpoint: recognition from a template's marker,
 * the exact single-turn rendering, BOS written by the template, and (with the real
 * model cached) the rendered prompt's ids under Gemma's tokenizer. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint/gguf.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/gemma_model.h"
#include "workloads/eval/chat_template.h"

/* The opening of Gemma 3 -it's Jinja template (only its markers matter here). */
static const char gemma_it_template[] =
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = "
    "messages[0]['content'] + '\\n\\n' -%}{%- endif -%}{{ '<start_of_turn>' + role + '\\n' + "
    "first_user_prefix + message['content'] | trim + '<end_of_turn>\\n' }}{%- if add_generation_prompt -%}"
    "{{'<start_of_turn>model\\n'}}{%- endif -%}";

Test(chat_template_gemma, recognised_and_rendered) {
  up_chat_template chat;
  char err[256] = "";
  cr_assert(up_chat_template_resolve(NULL, gemma_it_template, &chat, err, sizeof err), "%s", err);
  cr_assert_eq(chat.format, UP_CHAT_GEMMA);
  cr_assert_str_eq(up_chat_format_name(chat.format), "gemma");
  cr_assert(up_chat_renders_bos(UP_CHAT_GEMMA), "the template writes <bos>: the tokenizer must not add another");
  char *text = up_chat_render_user_turn(&chat, "What is 2+2?", NULL);
  cr_assert_str_eq(text, "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n");
  free(text);
  text = up_chat_render_user_turn(&chat, "Hi", "Answer:");
  cr_assert_str_eq(text, "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nAnswer:");
  free(text);

  cr_assert(up_chat_template_resolve("gemma", NULL, &chat, err, sizeof err), "%s", err);
  cr_assert_eq(chat.format, UP_CHAT_GEMMA);
  cr_assert(!up_chat_template_resolve("gemma2", NULL, &chat, err, sizeof err));
  cr_assert(strstr(err, "'gemma2'") && strstr(err, "gemma)"), "message: %s", err);
}

Test(chat_template_gemma, base_checkpoint_is_plain_and_it_prompt_tokenizes) {
  up_gguf *g = up_test_open_gemma3_270m_or_skip();
  char err[512] = "";
  up_tokenizer *tok = up_tokenizer_from_gguf(g, err, sizeof err);
  cr_assert_not_null(tok, "%s", err);

  /* The base model has no template: plain, BOS from the tokenizer. */
  up_chat_template chat;
  cr_assert(up_chat_template_resolve(NULL, up_tokenizer_chat_template(tok), &chat, err, sizeof err), "%s", err);
  cr_assert_eq(chat.format, UP_CHAT_PLAIN);

  /* The instruction format, named: <bos> 2, <start_of_turn> 105, "user", "\n" 107, the
   * question, <end_of_turn> 106, "\n", <start_of_turn>, "model" 4368, "\n". */
  cr_assert(up_chat_template_resolve("gemma", NULL, &chat, err, sizeof err), "%s", err);
  char *text = up_chat_render_user_turn(&chat, "Hi", NULL);
  int32_t ids[32];
  const int32_t n = up_tokenizer_encode(tok, text, strlen(text), false, true, ids, 32, err, sizeof err);
  const int32_t hi = up_tokenizer_token_to_id(tok, "Hi", 2);
  cr_assert_geq(hi, 0);
  const int32_t want[] = {2, 105, 2364, 107, hi, 106, 107, 105, 4368, 107};
  cr_assert_eq(n, 10, "%d ids for %s", n, text);
  for (int i = 0; i < 10; ++i) cr_assert_eq(ids[i], want[i], "id %d: %d, expected %d", i, ids[i], want[i]);
  cr_assert_eq(up_tokenizer_eot(tok), 106, "the turn end stops generation");
  free(text);
  up_tokenizer_free(tok);
  up_gguf_close(g);
}
