/* chat_template.c — chat format recognition and single-turn rendering (see
 * chat_template.h). */
#include "workloads/eval/chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workloads/eval/text_buffer.h"

static const char *const format_names[] = {"plain", "chatml", "llama3", "llama2", "gemma"}; /* up_chat_format order */
#define N_FORMATS (sizeof format_names / sizeof format_names[0])

const char *up_chat_format_name(up_chat_format format) {
  return (unsigned)format < N_FORMATS ? format_names[format] : "unknown";
}

bool up_chat_renders_bos(up_chat_format format) {
  return format == UP_CHAT_LLAMA2 || format == UP_CHAT_LLAMA3 || format == UP_CHAT_GEMMA;
}

/* The literal system prompt written after "<|im_start|>system" and a newline (a real one
 * or Jinja's two-character escape) up to "<|im_end|>", if one is there: a span holding
 * quotes, braces or '+' is Jinja code that inserts the caller's message, not a literal. */
static void find_chatml_system_prompt(const char *template_text, char *out, size_t out_size) {
  static const char open[] = "<|im_start|>system";
  out[0] = '\0';
  for (const char *at = strstr(template_text, open); at; at = strstr(at + 1, open)) {
    const char *start = at + strlen(open);
    if (start[0] == '\n') start += 1;
    else if (start[0] == '\\' && start[1] == 'n') start += 2;
    else continue;
    const char *end = strstr(start, "<|im_end|>");
    if (!end || end == start) continue;
    const size_t len = (size_t)(end - start);
    if (strcspn(start, "'\"{}+") < len) continue;
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < out_size; ++i) {
      if (start[i] == '\\' && i + 1 < len && start[i + 1] == 'n') out[n++] = '\n', ++i;
      else out[n++] = start[i];
    }
    out[n] = '\0';
    return;
  }
}

bool up_chat_template_resolve(const char *override_name, const char *template_text, up_chat_template *out,
                              char *err, size_t err_size) {
  memset(out, 0, sizeof *out);
  if (override_name && override_name[0]) {
    size_t k = 0;
    while (k < N_FORMATS && strcmp(override_name, format_names[k]) != 0) k++;
    if (k == N_FORMATS) {
      snprintf(err, err_size, "unknown chat template '%s' (use plain, chatml, llama3, llama2 or gemma)", override_name);
      return false;
    }
    out->format = (up_chat_format)k;
  } else if (!template_text || !template_text[0]) {
    out->format = UP_CHAT_PLAIN;
  } else if (strstr(template_text, "<|im_start|>")) {
    out->format = UP_CHAT_CHATML;
  } else if (strstr(template_text, "<|start_header_id|>")) {
    out->format = UP_CHAT_LLAMA3;
  } else if (strstr(template_text, "[INST]")) {
    out->format = UP_CHAT_LLAMA2;
  } else if (strstr(template_text, "<start_of_turn>")) {
    out->format = UP_CHAT_GEMMA;
  } else {
    snprintf(err, err_size,
             "unrecognised chat template (none of the markers <|im_start|>, <|start_header_id|>, [INST], "
             "<start_of_turn>): name one (plain, chatml, llama3, llama2 or gemma)");
    return false;
  }
  if (out->format == UP_CHAT_CHATML && template_text)
    find_chatml_system_prompt(template_text, out->system_prompt, sizeof out->system_prompt);
  return true;
}

char *up_chat_render_user_turn(const up_chat_template *chat, const char *content, const char *assistant_prefix) {
  const char *prefix = assistant_prefix ? assistant_prefix : "";
  up_text_buffer out = {0};
  switch (chat->format) {
    case UP_CHAT_CHATML:
      if (chat->system_prompt[0])
        up_text_buffer_printf(&out, "<|im_start|>system\n%s<|im_end|>\n", chat->system_prompt);
      up_text_buffer_printf(&out, "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n%s", content, prefix);
      break;
    case UP_CHAT_LLAMA3:
      up_text_buffer_printf(&out,
                            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n%s<|eot_id|>"
                            "<|start_header_id|>assistant<|end_header_id|>\n\n%s",
                            content, prefix);
      break;
    case UP_CHAT_LLAMA2:
      /* The assistant's answer follows "[/INST]" after one space. */
      up_text_buffer_printf(&out, "<s>[INST] %s [/INST]%s%s", content, prefix[0] ? " " : "", prefix);
      break;
    case UP_CHAT_GEMMA:
      /* Gemma 3's template: the model's turn is "model"; a system prompt would be folded
       * into the user text, and none is used here. */
      up_text_buffer_printf(&out, "<bos><start_of_turn>user\n%s<end_of_turn>\n<start_of_turn>model\n%s", content,
                            prefix);
      break;
    case UP_CHAT_PLAIN:
    default:
      up_text_buffer_printf(&out, "%s%s%s", content, prefix[0] ? "\n" : "", prefix);
      break;
  }
  return up_text_buffer_take(&out);
}
