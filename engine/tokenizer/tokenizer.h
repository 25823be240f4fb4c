/* tokenizer.h — text <-> token ids for the vocabularies checkpoints carry: the GPT-2-style
 * byte-level BPE (GGUF tokenizer.ggml.model "gpt2": SmolLM2, Llama-3; or a Hugging Face
 * directory's tokenizer.json) and the SentencePiece BPE with byte fallback
 * (tokenizer.ggml.model "llama": Llama-2; Gemma 3, whose user-defined pieces — runs of
 * spaces, newlines and tabs, HTML tags — are matched in the raw text first). A tokenizer is built once from a GGUF reader
 * or a directory, copies what it needs (the reader may be closed afterwards) and is
 * immutable from then on, so any number of threads may encode and decode with one
 * tokenizer at the same time. */
#ifndef UP_TOKENIZER_H
#define UP_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/checkpoint/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct up_tokenizer up_tokenizer;
typedef struct up_checkpoint up_checkpoint;

typedef enum up_tokenizer_kind {
  UP_TOKENIZER_BYTE_LEVEL_BPE = 0, /* "gpt2" */
  UP_TOKENIZER_SENTENCEPIECE = 1,  /* "llama" */
} up_tokenizer_kind;

/* Token types, numbered as tokenizer.ggml.token_type numbers them. */
typedef enum up_token_type {
  UP_TOKEN_UNDEFINED = 0,
  UP_TOKEN_NORMAL = 1,
  UP_TOKEN_UNKNOWN = 2,
  UP_TOKEN_CONTROL = 3,      /* <s>, <|im_start|>: matched in text only on request */
  UP_TOKEN_USER_DEFINED = 4, /* always matched in text as a whole */
  UP_TOKEN_UNUSED = 5,
  UP_TOKEN_BYTE = 6,         /* SentencePiece <0xXX> */
} up_token_type;

/* Build the tokenizer described by the tokenizer.* metadata. On failure returns NULL
 * and writes a message naming the file and the key (or token index) into err. */
up_tokenizer *up_tokenizer_from_gguf(const up_gguf *gguf, char *err, size_t err_size);

/* Build the tokenizer of a Hugging Face checkpoint directory from its tokenizer.json (a
 * BPE model over byte-level pieces: vocab, merges, added tokens with their special flags;
 * pre_tokenizer ByteLevel or a Sequence of Split regexes and Digits ending in ByteLevel;
 * no normalizer; decoder ByteLevel) and its tokenizer_config.json when present (BOS,
 * EOS, unknown and padding tokens, add_bos_token, chat_template). Anything else that
 * would change the ids is refused. NULL with a message naming the file and the key. */
up_tokenizer *up_tokenizer_from_hf_dir(const char *dir, char *err, size_t err_size);

/* The tokenizer of an open checkpoint: its GGUF metadata, or its directory's files. */
up_tokenizer *up_tokenizer_from_checkpoint(const up_checkpoint *ck, char *err, size_t err_size);
void up_tokenizer_free(up_tokenizer *tok);

/* Encode len bytes of text (UTF-8; invalid bytes are still encoded, byte by byte, except
 * that a byte-level vocabulary without a piece for some byte drops it, as Hugging Face
 * and llama.cpp do: SmolLM2 lacks a few control bytes and bytes UTF-8 never uses).
 * add_bos puts the BOS id first. parse_special makes control and unknown-type tokens
 * written in the text (e.g. "<|im_start|>") encode as their ids; without it they are
 * ordinary text. User-defined tokens are always matched, as Hugging Face and llama.cpp
 * match added tokens. Returns the number of tokens and writes the first min(count, cap)
 * of them to out (call with cap 0 to size a buffer), or -1 with a message in err. */
int32_t up_tokenizer_encode(const up_tokenizer *tok, const char *text, size_t len, bool add_bos,
                            bool parse_special, int32_t *out, int32_t cap, char *err, size_t err_size);

/* Decode ids to UTF-8 text: byte-level characters and <0xXX> byte tokens become their
 * bytes again, SentencePiece's U+2581 becomes a space and the space SentencePiece puts
 * before the text (at the start and after each special token) is dropped, so that
 * decode(encode(x)) == x. Control and unknown-type tokens are written as their text when
 * render_special is set and dropped otherwise. Bytes that do not form valid UTF-8 (a
 * token sequence cut inside a character) become U+FFFD, one per maximal invalid
 * subsequence, so the output is always valid UTF-8.
 * Returns the length of the whole text and writes at most cap - 1 bytes of it plus a
 * NUL to out when cap > 0 (snprintf-style: call with cap 0 to size a buffer), or -1 with
 * a message in err for an id outside the vocabulary. */
int64_t up_tokenizer_decode(const up_tokenizer *tok, const int32_t *ids, size_t n_ids, bool render_special,
                            char *out, size_t cap, char *err, size_t err_size);

up_tokenizer_kind up_tokenizer_get_kind(const up_tokenizer *tok);
int32_t up_tokenizer_vocab_size(const up_tokenizer *tok);
/* The id of the token whose vocabulary string is exactly piece[0..len), or -1. */
int32_t up_tokenizer_token_to_id(const up_tokenizer *tok, const char *piece, size_t len);
/* The vocabulary string of a token as stored (byte-level characters, U+2581, "<0x0A>"),
 * NUL-terminated and owned by the tokenizer; NULL for an id out of range. len may be NULL. */
const char *up_tokenizer_id_to_piece(const up_tokenizer *tok, int32_t id, size_t *len);
up_token_type up_tokenizer_token_type(const up_tokenizer *tok, int32_t id);

/* Special ids, -1 where the vocabulary has none. eot ends a chat turn (<|im_end|>,
 * <|eot_id|>, Gemma's <end_of_turn>): tokenizer.ggml.eot_token_id, else found by its
 * usual text, as llama.cpp does; generation stops at eos or eot. */
int32_t up_tokenizer_bos(const up_tokenizer *tok);
int32_t up_tokenizer_eos(const up_tokenizer *tok);
int32_t up_tokenizer_eot(const up_tokenizer *tok);
/* The padding token (tokenizer.ggml.padding_token_id, tokenizer_config.json's pad_token). */
int32_t up_tokenizer_pad(const up_tokenizer *tok);
/* Whether the model wants BOS first (tokenizer.ggml.add_bos_token; when absent, true for
 * SentencePiece and Llama-3, false otherwise; tokenizer_config.json's add_bos_token,
 * else whether tokenizer.json's post-processor puts BOS first). */
bool up_tokenizer_add_bos(const up_tokenizer *tok);
/* The chat template's Jinja source (tokenizer.chat_template; tokenizer_config.json's
 * chat_template, or chat_template.jinja) or NULL when the checkpoint has none. */
const char *up_tokenizer_chat_template(const up_tokenizer *tok);

#ifdef __cplusplus
}
#endif

#endif
