/* tokenizer.c — the tokenizer as callers see it: loading the vocabulary and special ids
 * from GGUF metadata, the piece -> id hash map, splitting text at special tokens before
 * handing the stretches between them to the byte-level BPE (tokenizer_bpe.c) or the
 * SentencePiece BPE (tokenizer_spm.c), the merge heap both use, and decoding ids back to
 * valid UTF-8. */
#include "engine/tokenizer/tokenizer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tokenizer_internal.h"
#include "core/fatal.h"

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_PRE "tokenizer.ggml.pre"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_TOKEN_TYPE "tokenizer.ggml.token_type"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_ADD_BOS "tokenizer.ggml.add_bos_token"
#define KEY_ADD_SPACE_PREFIX "tokenizer.ggml.add_space_prefix"
#define KEY_CHAT_TEMPLATE "tokenizer.chat_template"


/* --- UTF-8 and byte buffers ------------------------------------------------------------ */

size_t up_utf8_scan(const char *s, size_t avail, bool *valid) {
  const unsigned char *u = (const unsigned char *)s;
  const unsigned char c = u[0];
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  if (c < 0x80) {
    *valid = true;
    return 1;
  } else if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;     /* no overlong forms */
    if (c == 0xED) hi = 0x9F;     /* no surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;     /* nothing above U+10FFFF */
  } else {
    *valid = false;
    return 1;
  }
  size_t got = 1;
  while (got < need && got < avail) {
    const unsigned char b = u[got];
    const bool ok = got == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) break;
    got++;
  }
  *valid = got == need;
  return got;
}

void up_byte_buffer_append(up_byte_buffer *buf, const void *bytes, size_t n) {
  if (n == 0) return;
  if (buf->len + n > buf->cap) {
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < buf->len + n) cap *= 2;
    char *grown = realloc(buf->data, cap);
    if (!grown) UP_FATAL("out of memory growing a decode buffer to %zu bytes", cap);
    buf->data = grown;
    buf->cap = cap;
  }
  memcpy(buf->data + buf->len, bytes, n);
  buf->len += n;
}

/* --- merge heap ------------------------------------------------------------------------- */

static bool candidate_before(const up_merge_candidate *a, const up_merge_candidate *b) {
  return a->priority != b->priority ? a->priority < b->priority : a->left < b->left;
}

void up_merge_heap_push(up_merge_heap *heap, up_merge_candidate c) {
  size_t i = heap->len++;
  while (i > 0) {
    const size_t parent = (i - 1) / 2;
    if (!candidate_before(&c, &heap->items[parent])) break;
    heap->items[i] = heap->items[parent];
    i = parent;
  }
  heap->items[i] = c;
}

up_merge_candidate up_merge_heap_pop(up_merge_heap *heap) {
  const up_merge_candidate top = heap->items[0];
  const up_merge_candidate last = heap->items[--heap->len];
  size_t i = 0;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= heap->len) break;
    if (child + 1 < heap->len && candidate_before(&heap->items[child + 1], &heap->items[child])) child++;
    if (!candidate_before(&heap->items[child], &last)) break;
    heap->items[i] = heap->items[child];
    i = child;
  }
  if (heap->len > 0) heap->items[i] = last;
  return top;
}

/* --- vocabulary hash map ---------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < len; ++i) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

const char *up_tokenizer_piece(const up_tokenizer *tok, int32_t id) {
  return tok->piece_text + tok->piece_offset[id];
}

int32_t up_tokenizer_vocab_find(const up_tokenizer *tok, const char *s, size_t len) {
  for (uint64_t slot = hash_bytes(s, len) & tok->vocab_mask;; slot = (slot + 1) & tok->vocab_mask) {
    const int32_t id = tok->vocab_slots[slot];
    if (id < 0) return -1;
    if (tok->piece_len[id] == len && memcmp(up_tokenizer_piece(tok, id), s, len) == 0) return id;
  }
}

/* Duplicate pieces keep the lowest id; empty pieces are never looked up. */
void up_tokenizer_build_vocab_map(up_tokenizer *tok) {
  uint64_t slots = 16;
  while (slots < 2 * (uint64_t)tok->n_vocab) slots *= 2;
  tok->vocab_mask = slots - 1;
  tok->vocab_slots = up_malloc_or_die(slots * sizeof *tok->vocab_slots, "tokenizer vocabulary hash");
  memset(tok->vocab_slots, 0xff, slots * sizeof *tok->vocab_slots);
  for (int32_t id = 0; id < tok->n_vocab; ++id) {
    const size_t len = tok->piece_len[id];
    if (len == 0 || up_tokenizer_vocab_find(tok, up_tokenizer_piece(tok, id), len) >= 0) continue;
    uint64_t slot = hash_bytes(up_tokenizer_piece(tok, id), len) & tok->vocab_mask;
    while (tok->vocab_slots[slot] >= 0) slot = (slot + 1) & tok->vocab_mask;
    tok->vocab_slots[slot] = id;
  }
}

/* --- loading ---------------------------------------------------------------------------- */

static bool load_pieces(up_tokenizer *tok, const up_gguf *g, char *err, size_t err_size) {
  const char *file = up_gguf_name(g);
  up_gguf_value_type elem;
  uint64_t count;
  if (!up_gguf_get_array_info(g, KEY_TOKENS, &elem, &count)) {
    up_error(err, err_size, "%s: %s is missing or not an array", file, KEY_TOKENS);
    return false;
  }
  if (elem != UP_GGUF_STRING || count == 0 || count > INT32_MAX) {
    up_error(err, err_size, "%s: %s must be a non-empty string array of at most %d entries", file, KEY_TOKENS,
              INT32_MAX);
    return false;
  }
  tok->n_vocab = (int32_t)count;
  tok->piece_offset = up_malloc_or_die(count * sizeof *tok->piece_offset, "tokenizer piece offsets");
  tok->piece_len = up_malloc_or_die(count * sizeof *tok->piece_len, "tokenizer piece lengths");
  size_t total = 0;
  for (uint64_t i = 0; i < count; ++i) {
    up_gguf_str s;
    if (!up_gguf_get_array_str(g, KEY_TOKENS, i, &s)) {
      up_error(err, err_size, "%s: %s[%llu] cannot be read", file, KEY_TOKENS, (unsigned long long)i);
      return false;
    }
    if (s.len > UINT32_MAX / 2) {
      up_error(err, err_size, "%s: %s[%llu] is %llu bytes long", file, KEY_TOKENS, (unsigned long long)i,
                (unsigned long long)s.len);
      return false;
    }
    tok->piece_offset[i] = total;
    tok->piece_len[i] = (uint32_t)s.len;
    total += s.len + 1;
  }
  tok->piece_text = up_malloc_or_die(total, "tokenizer piece text");
  for (uint64_t i = 0; i < count; ++i) {
    up_gguf_str s;
    up_gguf_get_array_str(g, KEY_TOKENS, i, &s); /* read successfully above */
    memcpy(tok->piece_text + tok->piece_offset[i], s.data, s.len);
    tok->piece_text[tok->piece_offset[i] + s.len] = '\0';
  }

  tok->type = up_malloc_or_die(count, "tokenizer token types");
  memset(tok->type, UP_TOKEN_NORMAL, count);
  if (up_gguf_has_key(g, KEY_TOKEN_TYPE)) {
    if (!up_gguf_get_array_info(g, KEY_TOKEN_TYPE, &elem, &count) || count != (uint64_t)tok->n_vocab) {
      up_error(err, err_size, "%s: %s must be an array of %d token types", file, KEY_TOKEN_TYPE, tok->n_vocab);
      return false;
    }
    int32_t *types = up_malloc_or_die(count * sizeof *types, "tokenizer token types");
    const bool ok = up_gguf_get_array_i32(g, KEY_TOKEN_TYPE, types, count);
    for (uint64_t i = 0; ok && i < count; ++i) {
      if (types[i] < UP_TOKEN_UNDEFINED || types[i] > UP_TOKEN_BYTE) {
        up_error(err, err_size, "%s: %s[%llu] is %d, not a token type (0..6)", file, KEY_TOKEN_TYPE,
                  (unsigned long long)i, types[i]);
        free(types);
        return false;
      }
      tok->type[i] = (uint8_t)types[i];
    }
    free(types);
    if (!ok) {
      up_error(err, err_size, "%s: %s is not an integer array", file, KEY_TOKEN_TYPE);
      return false;
    }
  }
  return true;
}

static bool load_scores(up_tokenizer *tok, const up_gguf *g, char *err, size_t err_size) {
  up_gguf_value_type elem;
  uint64_t count;
  if (!up_gguf_get_array_info(g, KEY_SCORES, &elem, &count) || count != (uint64_t)tok->n_vocab) {
    up_error(err, err_size, "%s: %s must be an array of %d scores (SentencePiece merges by score)",
              up_gguf_name(g), KEY_SCORES, tok->n_vocab);
    return false;
  }
  tok->score = up_malloc_or_die(count * sizeof *tok->score, "tokenizer scores");
  if (!up_gguf_get_array_f32(g, KEY_SCORES, tok->score, count)) {
    up_error(err, err_size, "%s: %s is not a numeric array", up_gguf_name(g), KEY_SCORES);
    return false;
  }
  return true;
}

/* A special id from key when present (validated), else fallback. */
static bool load_special_id(const up_tokenizer *tok, const up_gguf *g, const char *key, int32_t fallback,
                            int32_t *out, char *err, size_t err_size) {
  *out = fallback;
  if (!up_gguf_has_key(g, key)) return true;
  uint32_t id;
  if (!up_gguf_get_u32(g, key, &id) || id >= (uint32_t)tok->n_vocab) {
    up_error(err, err_size, "%s: %s must be a token id below the vocabulary size %d", up_gguf_name(g), key,
              tok->n_vocab);
    return false;
  }
  *out = (int32_t)id;
  return true;
}

/* The turn-ending token when the file does not name one: the texts chat models use,
 * most specific first (<|endoftext|> ends documents too, so it comes late). */
int32_t up_tokenizer_find_eot_by_text(const up_tokenizer *tok) {
  static const char *const texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>",         "<end_of_turn>",
                                      "<|endoftext|>", "<|end_of_text|>", "<EOT>"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; ++i) {
    const int32_t id = up_tokenizer_vocab_find(tok, texts[i], strlen(texts[i]));
    if (id >= 0) return id;
  }
  return -1;
}

typedef struct special_entry {
  unsigned char first;
  uint32_t len;
  int32_t id;
} special_entry;

static int compare_special_by_first_byte_longest_first(const void *a, const void *b) {
  const special_entry *x = a, *y = b;
  if (x->first != y->first) return x->first < y->first ? -1 : 1;
  if (x->len != y->len) return x->len > y->len ? -1 : 1;
  return x->id < y->id ? -1 : (x->id > y->id);
}

/* The tokens of the types wanted, grouped by first byte and longest first in a group:
 * bytes 0..255 index start[] (start[256] is the count); ids go to *out. Grouping keeps a
 * match attempt to the pieces that can start there: Gemma has 6,400 control and
 * user-defined pieces, 30 of which start with a space. */
static int32_t build_special_groups(const up_tokenizer *tok, bool user_defined_only, int32_t **out,
                                    int32_t start[257]) {
  special_entry *entries = up_malloc_or_die((size_t)tok->n_vocab * sizeof *entries, "tokenizer special tokens");
  int32_t n = 0;
  for (int32_t id = 0; id < tok->n_vocab; ++id) {
    const uint8_t t = tok->type[id];
    const bool wanted = user_defined_only ? t == UP_TOKEN_USER_DEFINED
                                          : t == UP_TOKEN_CONTROL || t == UP_TOKEN_UNKNOWN || t == UP_TOKEN_USER_DEFINED;
    if (wanted && tok->piece_len[id] > 0)
      entries[n++] = (special_entry){.first = (unsigned char)up_tokenizer_piece(tok, id)[0],
                                     .len = tok->piece_len[id], .id = id};
  }
  qsort(entries, (size_t)n, sizeof *entries, compare_special_by_first_byte_longest_first);
  *out = up_malloc_or_die(((size_t)n + 1) * sizeof **out, "tokenizer special ids");
  int32_t next = 0;
  for (int b = 0; b < 256; ++b) {
    start[b] = next;
    while (next < n && entries[next].first == b) {
      (*out)[next] = entries[next].id;
      next++;
    }
  }
  start[256] = n;
  free(entries);
  return n;
}

void up_tokenizer_build_special_list(up_tokenizer *tok) {
  tok->n_special = build_special_groups(tok, false, &tok->special_ids, tok->special_start);
  build_special_groups(tok, true, &tok->user_defined_ids, tok->user_defined_start);
}

up_tokenizer *up_tokenizer_from_gguf(const up_gguf *g, char *err, size_t err_size) {
  const char *file = up_gguf_name(g);
  up_gguf_str model;
  if (!up_gguf_get_str(g, KEY_MODEL, &model)) {
    up_error(err, err_size, "%s: %s is missing (the file carries no tokenizer)", file, KEY_MODEL);
    return NULL;
  }
  up_tokenizer *tok = up_calloc_or_die(1, sizeof *tok, "tokenizer");
  tok->bos = tok->eos = tok->eot = tok->unk = tok->pad = -1;
  char pre_name[64] = "default";
  if (model.len == 4 && memcmp(model.data, "gpt2", 4) == 0) {
    tok->kind = UP_TOKENIZER_BYTE_LEVEL_BPE;
    up_gguf_str pre;
    if (up_gguf_get_str(g, KEY_PRE, &pre)) {
      if (pre.len >= sizeof pre_name) {
        up_error(err, err_size, "%s: %s is %llu bytes long, no known pre-tokenizer", file, KEY_PRE,
                  (unsigned long long)pre.len);
        goto fail;
      }
      memcpy(pre_name, pre.data, pre.len);
      pre_name[pre.len] = '\0';
    }
  } else if (model.len == 5 && memcmp(model.data, "llama", 5) == 0) {
    tok->kind = UP_TOKENIZER_SENTENCEPIECE;
  } else {
    up_error(err, err_size,
              "%s: %s is \"%.*s\"; supported are \"gpt2\" (byte-level BPE) and \"llama\" (SentencePiece)", file,
              KEY_MODEL, (int)(model.len > 64 ? 64 : model.len), model.data);
    goto fail;
  }

  if (!load_pieces(tok, g, err, err_size)) goto fail;
  up_tokenizer_build_vocab_map(tok);
  const bool spm = tok->kind == UP_TOKENIZER_SENTENCEPIECE;
  if (spm && !load_scores(tok, g, err, err_size)) goto fail;

  /* SentencePiece vocabularies put <unk>, <s>, </s> at 0, 1, 2 when the file is silent. */
  if (!load_special_id(tok, g, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, &tok->bos, err, err_size) ||
      !load_special_id(tok, g, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, &tok->eos, err, err_size) ||
      !load_special_id(tok, g, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, &tok->unk, err, err_size) ||
      !load_special_id(tok, g, "tokenizer.ggml.eot_token_id", -1, &tok->eot, err, err_size))
    goto fail;
  /* Nothing here pads, and converters write placeholder padding ids: one outside the
   * vocabulary means none rather than a broken file. */
  uint32_t pad;
  if (up_gguf_get_u32(g, "tokenizer.ggml.padding_token_id", &pad) && pad < (uint32_t)tok->n_vocab)
    tok->pad = (int32_t)pad;
  if (tok->bos >= tok->n_vocab) tok->bos = -1;
  if (tok->eos >= tok->n_vocab) tok->eos = -1;
  if (tok->unk >= tok->n_vocab) tok->unk = -1;
  if (tok->eot < 0) tok->eot = up_tokenizer_find_eot_by_text(tok);

  tok->add_bos = spm || up_bpe_pre_is_llama3(pre_name);
  if (up_gguf_has_key(g, KEY_ADD_BOS) && !up_gguf_get_bool(g, KEY_ADD_BOS, &tok->add_bos)) {
    up_error(err, err_size, "%s: %s is not a bool", file, KEY_ADD_BOS);
    goto fail;
  }
  /* Byte-level BPE encodes spaces as characters of their own and ignores this key. */
  tok->add_space_prefix = spm;
  if (spm && up_gguf_has_key(g, KEY_ADD_SPACE_PREFIX) &&
      !up_gguf_get_bool(g, KEY_ADD_SPACE_PREFIX, &tok->add_space_prefix)) {
    up_error(err, err_size, "%s: %s is not a bool", file, KEY_ADD_SPACE_PREFIX);
    goto fail;
  }
  up_gguf_str chat;
  if (up_gguf_get_str(g, KEY_CHAT_TEMPLATE, &chat)) {
    tok->chat_template = up_malloc_or_die(chat.len + 1, "tokenizer chat template");
    memcpy(tok->chat_template, chat.data, chat.len);
    tok->chat_template[chat.len] = '\0';
  }

  up_tokenizer_build_special_list(tok);
  if (spm) {
    tok->spm = up_spm_create(tok, err, err_size);
    if (!tok->spm) goto fail;
  } else {
    tok->bpe = up_bpe_create(tok, g, pre_name, err, err_size);
    if (!tok->bpe) goto fail;
  }
  return tok;

fail:
  up_tokenizer_free(tok);
  return NULL;
}

void up_tokenizer_free(up_tokenizer *tok) {
  if (!tok) return;
  up_bpe_free(tok->bpe);
  up_spm_free(tok->spm);
  free(tok->piece_text);
  free(tok->piece_offset);
  free(tok->piece_len);
  free(tok->type);
  free(tok->score);
  free(tok->vocab_slots);
  free(tok->special_ids);
  free(tok->user_defined_ids);
  free(tok->chat_template);
  free(tok);
}

/* --- encoding ----------------------------------------------------------------------------- */

/* The longest special token that starts text[0..avail), or -1. */
static int32_t match_special(const up_tokenizer *tok, const char *text, size_t avail, bool parse_special) {
  const unsigned char first = (unsigned char)text[0];
  const int32_t *group = parse_special ? tok->special_ids : tok->user_defined_ids;
  const int32_t *start = parse_special ? tok->special_start : tok->user_defined_start;
  for (int32_t i = start[first]; i < start[first + 1]; ++i) {
    const int32_t id = group[i];
    const size_t len = tok->piece_len[id];
    if (len <= avail && memcmp(text, up_tokenizer_piece(tok, id), len) == 0) return id;
  }
  return -1;
}

static bool encode_stretch(const up_tokenizer *tok, const char *text, size_t len, bool after_special,
                           up_token_sink *sink, char *err, size_t err_size) {
  if (len == 0) return true;
  if (tok->kind == UP_TOKENIZER_SENTENCEPIECE)
    return up_spm_encode(tok, text, len, tok->add_space_prefix && after_special, sink, err, err_size);
  return up_bpe_encode(tok, text, len, sink, err, err_size);
}

int32_t up_tokenizer_encode(const up_tokenizer *tok, const char *text, size_t len, bool add_bos,
                            bool parse_special, int32_t *out, int32_t cap, char *err, size_t err_size) {
  if ((!text && len > 0) || cap < 0 || (!out && cap > 0)) {
    up_error(err, err_size, "tokenizer encode: NULL text or output buffer, or negative capacity");
    return -1;
  }
  if (len > (size_t)INT32_MAX) {
    up_error(err, err_size, "tokenizer encode: text of %zu bytes is longer than the %d bytes supported", len,
              INT32_MAX);
    return -1;
  }
  up_token_sink sink = {.out = out, .cap = cap, .count = 0};
  if (add_bos) {
    if (tok->bos < 0) {
      up_error(err, err_size, "tokenizer encode: BOS requested but the vocabulary has no BOS token");
      return -1;
    }
    up_token_sink_push(&sink, tok->bos);
  }
  /* SentencePiece puts a space before text at the start and after every special token
   * (as llama.cpp and the legacy Llama tokenizer do). */
  bool after_special = true;
  size_t stretch_start = 0;
  for (size_t pos = 0; pos < len;) {
    const int32_t id = match_special(tok, text + pos, len - pos, parse_special);
    if (id < 0) {
      pos++;
      continue;
    }
    if (!encode_stretch(tok, text + stretch_start, pos - stretch_start, after_special, &sink, err, err_size))
      return -1;
    up_token_sink_push(&sink, id);
    after_special = true;
    pos += tok->piece_len[id];
    stretch_start = pos;
  }
  if (!encode_stretch(tok, text + stretch_start, len - stretch_start, after_special, &sink, err, err_size))
    return -1;
  if (sink.count > INT32_MAX) {
    up_error(err, err_size, "tokenizer encode: %lld tokens do not fit an int32 count", (long long)sink.count);
    return -1;
  }
  return (int32_t)sink.count;
}

/* --- decoding ----------------------------------------------------------------------------- */

/* Copy bytes into out as valid UTF-8 (U+FFFD for each maximal ill-formed subpart), at
 * most cap - 1 bytes and a NUL; returns the full length. */
static int64_t write_valid_utf8(const char *bytes, size_t n, char *out, size_t cap) {
  static const char replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
  size_t written = 0;
  int64_t total = 0;
  for (size_t i = 0; i < n;) {
    bool valid;
    const size_t step = up_utf8_scan(bytes + i, n - i, &valid);
    const char *src = valid ? bytes + i : replacement;
    const size_t src_len = valid ? step : sizeof replacement;
    /* Never write part of a character: a truncated output stays valid UTF-8. */
    if (cap > 0 && written + src_len <= cap - 1 && written == (size_t)total) {
      memcpy(out + written, src, src_len);
      written += src_len;
    }
    total += (int64_t)src_len;
    i += step;
  }
  if (cap > 0) out[written] = '\0';
  return total;
}

int64_t up_tokenizer_decode(const up_tokenizer *tok, const int32_t *ids, size_t n_ids, bool render_special,
                            char *out, size_t cap, char *err, size_t err_size) {
  if ((!ids && n_ids > 0) || (!out && cap > 0)) {
    up_error(err, err_size, "tokenizer decode: NULL ids or output buffer");
    return -1;
  }
  up_byte_buffer buf = {0};
  bool text_starts = true; /* SentencePiece: the next piece's leading space was added by encode */
  for (size_t i = 0; i < n_ids; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= tok->n_vocab) {
      up_error(err, err_size, "tokenizer decode: token %zu is id %d, outside the vocabulary of %d", i, id,
                tok->n_vocab);
      free(buf.data);
      return -1;
    }
    const uint8_t t = tok->type[id];
    if (t == UP_TOKEN_CONTROL || t == UP_TOKEN_UNKNOWN || t == UP_TOKEN_USER_DEFINED) {
      if (render_special || t == UP_TOKEN_USER_DEFINED)
        up_byte_buffer_append(&buf, up_tokenizer_piece(tok, id), tok->piece_len[id]);
      text_starts = true;
    } else if (tok->kind == UP_TOKENIZER_SENTENCEPIECE) {
      up_spm_append_token(tok, id, text_starts && tok->add_space_prefix, &buf);
      text_starts = false;
    } else {
      up_bpe_append_token(tok, id, &buf);
    }
  }
  const int64_t total = write_valid_utf8(buf.data, buf.len, out, cap);
  free(buf.data);
  return total;
}

/* --- accessors ---------------------------------------------------------------------------- */

up_tokenizer_kind up_tokenizer_get_kind(const up_tokenizer *tok) { return tok->kind; }
int32_t up_tokenizer_vocab_size(const up_tokenizer *tok) { return tok->n_vocab; }

int32_t up_tokenizer_token_to_id(const up_tokenizer *tok, const char *piece, size_t len) {
  if (!piece || len == 0) return -1;
  return up_tokenizer_vocab_find(tok, piece, len);
}

const char *up_tokenizer_id_to_piece(const up_tokenizer *tok, int32_t id, size_t *len) {
  if (id < 0 || id >= tok->n_vocab) return NULL;
  if (len) *len = tok->piece_len[id];
  return up_tokenizer_piece(tok, id);
}

up_token_type up_tokenizer_token_type(const up_tokenizer *tok, int32_t id) {
  if (id < 0 || id >= tok->n_vocab) return UP_TOKEN_UNDEFINED;
  return (up_token_type)tok->type[id];
}

int32_t up_tokenizer_bos(const up_tokenizer *tok) { return tok->bos; }
int32_t up_tokenizer_eos(const up_tokenizer *tok) { return tok->eos; }
int32_t up_tokenizer_eot(const up_tokenizer *tok) { return tok->eot; }
int32_t up_tokenizer_pad(const up_tokenizer *tok) { return tok->pad; }
bool up_tokenizer_add_bos(const up_tokenizer *tok) { return tok->add_bos; }
const char *up_tokenizer_chat_template(const up_tokenizer *tok) { return tok->chat_template; }
