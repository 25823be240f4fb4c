/* chat_template.h — rendering one user turn plus the assistant's generation prompt in
 * the chat formats of the models we evaluate: ChatML (SmolLM2, Qwen), Llama-3,
 * Llama-2 ([INST]), Gemma (<start_of_turn>, instruction-tuned Gemma 3) and plain text
 * (base models such as the Gemma 3 270M checkpoint, which carries no template). The format is recognised from marker substrings of
 * the model's Jinja template (GGUF key tokenizer.chat_template, or a Hugging Face
 * directory's tokenizer_config.json "chat_template" / chat_template.jinja, both as the
 * tokenizer hands it over: up_tokenizer_chat_template) or named explicitly;
 * Jinja itself is not interpreted. ChatML's default system prompt is taken from the
 * template when it is written there as a literal, as SmolLM2's is. */
#ifndef UP_CHAT_TEMPLATE_H
#define UP_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum up_chat_format {
  UP_CHAT_PLAIN = 0,  /* the content as it is (base models) */
  UP_CHAT_CHATML = 1, /* <|im_start|>role\n...<|im_end|>\n */
  UP_CHAT_LLAMA3 = 2, /* <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
  UP_CHAT_LLAMA2 = 3, /* <s>[INST] ... [/INST] */
  UP_CHAT_GEMMA = 4,  /* <bos><start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n */
} up_chat_format;

#define UP_CHAT_SYSTEM_PROMPT_MAX 1024

typedef struct up_chat_template {
  up_chat_format format;
  char system_prompt[UP_CHAT_SYSTEM_PROMPT_MAX]; /* ChatML's default system turn; "" when none */
} up_chat_template;

/* "plain", "chatml", "llama3", "llama2" or "gemma". */
const char *up_chat_format_name(up_chat_format format);

/* The chat template to use. override_name (NULL or "" when not given) picks the format
 * by name; otherwise it is recognised from template_text by its markers (<|im_start|>,
 * <|start_header_id|>, [INST], <start_of_turn>), and a missing or empty template_text means plain.
 * False with a message in err for an unknown name or an unrecognised template. */
bool up_chat_template_resolve(const char *override_name, const char *template_text, up_chat_template *out,
                              char *err, size_t err_size);

/* The prompt for one user turn: the turn, the assistant header, then assistant_prefix
 * (NULL or "" for none) as the start of the answer. Special tokens are written as text
 * (the tokenizer must parse them); Llama-2, Llama-3 and Gemma renderings begin with the BOS
 * token, so the tokenizer must not add another (up_chat_renders_bos). free() it. */
char *up_chat_render_user_turn(const up_chat_template *chat, const char *content, const char *assistant_prefix);

/* Whether the format's rendering starts with the model's BOS token. */
bool up_chat_renders_bos(up_chat_format format);

#endif
