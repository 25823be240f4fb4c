/* tokenizer_internal.h — what the tokenizer's files share and nothing outside the
 * tokenizer (and its tests) may use: the tokenizer struct, the vocabulary lookup, the
 * token sink encoders write to, the byte buffer decoders append to, and the entry points
 * of the byte-level BPE (tokenizer_bpe.c) and SentencePiece (tokenizer_spm.c) halves.
 * tokenizer.c owns the struct, the vocabulary, the special-token splitting and the merge
 * heap both halves merge from; the loaders (GGUF metadata in tokenizer.c, Hugging Face's
 * tokenizer.json in tokenizer_hf*.c) fill the same struct through these entry points. */
#ifndef UP_TOKENIZER_INTERNAL_H
#define UP_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/checkpoint/gguf.h"
#include "engine/tokenizer/tokenizer.h"

typedef struct up_bpe up_bpe;
typedef struct up_spm up_spm;
typedef struct up_bpe_pretokenizer up_bpe_pretokenizer;

struct up_tokenizer {
  up_tokenizer_kind kind;
  int32_t n_vocab;
  char *piece_text;       /* every piece, each NUL-terminated */
  size_t *piece_offset;   /* [n_vocab] into piece_text */
  uint32_t *piece_len;    /* [n_vocab] */
  uint8_t *type;          /* [n_vocab] up_token_type */
  float *score;           /* [n_vocab], SentencePiece only (NULL for BPE) */
  int32_t *vocab_slots;   /* open-addressing hash of piece -> id, -1 = empty */
  uint64_t vocab_mask;    /* slot count - 1 (a power of two) */

  /* Tokens matched as a whole in text before the model splits the rest: control,
   * unknown and user-defined ones (special_ids, with parse_special) or the user-defined
   * ones alone (always). Each list is grouped by first byte, longest first in a group:
   * the group of byte b is [start[b], start[b + 1]). */
  int32_t *special_ids;
  int32_t special_start[257];
  int32_t n_special;
  int32_t *user_defined_ids;
  int32_t user_defined_start[257];

  int32_t bos, eos, eot, unk, pad; /* -1 when absent */
  bool add_bos;
  bool add_space_prefix; /* SentencePiece: "▁" before text at the start and after specials */
  char *chat_template;

  up_bpe *bpe; /* kind == UP_TOKENIZER_BYTE_LEVEL_BPE */
  up_spm *spm; /* kind == UP_TOKENIZER_SENTENCEPIECE */
};

/* Id of the piece whose text is s[0..len), or -1. */
int32_t up_tokenizer_vocab_find(const up_tokenizer *tok, const char *s, size_t len);
const char *up_tokenizer_piece(const up_tokenizer *tok, int32_t id);

/* Loading steps every loader shares, in this order once pieces and types are filled:
 * the piece -> id map (duplicate pieces keep the lowest id), then the list of tokens
 * matched whole in text; the turn-ending token by its usual text where the source names
 * none. */
void up_tokenizer_build_vocab_map(up_tokenizer *tok);
void up_tokenizer_build_special_list(up_tokenizer *tok);
int32_t up_tokenizer_find_eot_by_text(const up_tokenizer *tok);

/* Where encoders put ids: the first cap go to out, all are counted. */
typedef struct up_token_sink {
  int32_t *out;
  int64_t cap;
  int64_t count;
} up_token_sink;

static inline void up_token_sink_push(up_token_sink *sink, int32_t id) {
  if (sink->count < sink->cap) sink->out[sink->count] = id;
  sink->count++;
}

/* Growable byte string the decoders append to (dies on allocation failure). */
typedef struct up_byte_buffer {
  char *data;
  size_t len, cap;
} up_byte_buffer;

void up_byte_buffer_append(up_byte_buffer *buf, const void *bytes, size_t n);

/* One step through UTF-8 (avail > 0): the length of the valid sequence s starts with,
 * *valid set; or, *valid cleared, the length of the maximal ill-formed subpart there
 * (at least 1; the bytes one U+FFFD replaces). */
size_t up_utf8_scan(const char *s, size_t avail, bool *valid);

/* A possible merge of two adjacent symbols, for the min-heap both BPE flavours merge
 * from: lowest priority first, leftmost on ties. */
typedef struct up_merge_candidate {
  double priority;              /* BPE: the merge's rank; SentencePiece: minus the piece's score */
  int32_t left;                 /* symbol index of the left half */
  int32_t left_tag, right_tag;  /* what both halves were when found; stale once either changed */
  int32_t id;                   /* the merged piece */
} up_merge_candidate;

typedef struct up_merge_heap {
  up_merge_candidate *items; /* sized by the caller for every push it will make */
  size_t len;
} up_merge_heap;

void up_merge_heap_push(up_merge_heap *heap, up_merge_candidate c);
up_merge_candidate up_merge_heap_pop(up_merge_heap *heap); /* len > 0 */

/* --- byte-level BPE (tokenizer_bpe.c) ------------------------------------------------ */

/* GPT-2's split (as Hugging Face's ByteLevel pre-tokenizer writes it): English
 * contractions, letters with an optional leading space, numbers likewise, other symbols
 * likewise, whitespace not followed by a non-space (so the last space joins the next
 * word), any remaining whitespace. */
#define UP_BPE_PATTERN_GPT2 \
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define UP_BPE_MAX_PRETOKENIZER_REGEXES 4

/* The pre-tokenizer named by tokenizer.ggml.pre ("smollm", "llama-bpe", "gpt2", ...):
 * a list of Unicode regexes, each splitting every piece into its matches and the text
 * between them. NULL with a message for a name it does not know. */
up_bpe_pretokenizer *up_bpe_pretokenizer_create(const char *pre_name, char *err, size_t err_size);
/* A pre-tokenizer of the given regexes (applied in order, each splitting every piece
 * into its matches and the text between them); ignore_merges: a piece that is itself a
 * token is taken whole. label names it in messages. NULL with a message when a regex
 * does not compile or there are too many. */
up_bpe_pretokenizer *up_bpe_pretokenizer_from_patterns(const char *const *patterns, int n_patterns,
                                                       bool ignore_merges, const char *label, char *err,
                                                       size_t err_size);
void up_bpe_pretokenizer_free(up_bpe_pretokenizer *pre);

typedef struct up_text_span {
  size_t offset, len;
} up_text_span;

/* Split text[0..len) into pieces. *spans (grown with realloc, owned by the caller, may
 * start NULL with *capacity 0) receives them in order; returns their count, or -1 with a
 * message when the regex engine fails. */
int64_t up_bpe_pretokenize(const up_bpe_pretokenizer *pre, const char *text, size_t len, up_text_span **spans,
                           size_t *capacity, char *err, size_t err_size);

/* The byte maps and an empty merge table sized for n_merges, for tok (its vocabulary
 * already mapped); takes ownership of pre. Merges are then added in rank order. */
up_bpe *up_bpe_begin(const up_tokenizer *tok, up_bpe_pretokenizer *pre, uint64_t n_merges);

typedef enum up_bpe_merge_status {
  UP_BPE_MERGE_ADDED = 0,
  UP_BPE_MERGE_REPEATED = 1, /* the pair is there already, with its earlier rank */
  UP_BPE_MERGE_HALF_NOT_IN_VOCAB = 2,
  UP_BPE_MERGE_RESULT_NOT_IN_VOCAB = 3,
} up_bpe_merge_status;

/* Add the merge of two pieces (given as their vocabulary text) at rank. */
up_bpe_merge_status up_bpe_add_merge(up_bpe *bpe, const up_tokenizer *tok, const char *left_text, size_t left_len,
                                     const char *right_text, size_t right_len, int32_t rank);

/* Build the merge table and byte maps for tok from tokenizer.ggml.merges and the
 * pre-tokenizer named pre_name (tok's vocabulary already loaded). */
up_bpe *up_bpe_create(const up_tokenizer *tok, const up_gguf *gguf, const char *pre_name, char *err,
                      size_t err_size);
void up_bpe_free(up_bpe *bpe);
/* Whether tokenizer.ggml.pre names Llama-3's pre-tokenizer (BOS by default). */
bool up_bpe_pre_is_llama3(const char *pre_name);
/* Encode one stretch of text without special tokens. */
bool up_bpe_encode(const up_tokenizer *tok, const char *text, size_t len, up_token_sink *sink, char *err,
                   size_t err_size);
/* Append the bytes a normal token stands for. */
void up_bpe_append_token(const up_tokenizer *tok, int32_t id, up_byte_buffer *buf);

/* --- SentencePiece BPE (tokenizer_spm.c) --------------------------------------------- */

up_spm *up_spm_create(const up_tokenizer *tok, char *err, size_t err_size);
void up_spm_free(up_spm *spm);
/* Encode one stretch of text without special tokens; space_prefix puts "▁" first. */
bool up_spm_encode(const up_tokenizer *tok, const char *text, size_t len, bool space_prefix, up_token_sink *sink,
                   char *err, size_t err_size);
/* Append the bytes a non-special token stands for; strip_space drops one leading space. */
void up_spm_append_token(const up_tokenizer *tok, int32_t id, bool strip_space, up_byte_buffer *buf);

#endif
