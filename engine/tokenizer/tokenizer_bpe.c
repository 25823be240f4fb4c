/* tokenizer_bpe.c — GPT-2-style byte-level BPE (tokenizer.ggml.model "gpt2", and the
 * one behind Hugging Face's tokenizer.json): the pre-tokenizer regexes named by
 * tokenizer.ggml.pre or given by the tokenizer.json loader (run with PCRE2 in UTF +
 * Unicode property mode), the byte <-> printable-character map GPT-2 introduced, the
 * merge table (filled from tokenizer.ggml.merges here, or by the tokenizer.json loader
 * through up_bpe_add_merge), and the merge loop (lowest rank first, leftmost on ties,
 * through a binary heap so a long word costs O(n log n)). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tokenizer_internal.h"
#include "core/fatal.h"

#define KEY_MERGES "tokenizer.ggml.merges"

/* --- pre-tokenizer ---------------------------------------------------------------------- */

/* Llama-3's split: case-insensitive contractions, letters led by at most one
 * non-letter/non-digit that is not a line break, numbers of at most three digits,
 * symbols with their trailing line breaks, line-break runs, then whitespace as GPT-2. */
#define PATTERN_LLAMA3                                                                              \
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct pretokenizer_spec {
  const char *names[4];
  const char *patterns[UP_BPE_MAX_PRETOKENIZER_REGEXES];
  bool ignore_merges; /* a word that is itself a token is not merged up from bytes */
} pretokenizer_spec;

static const pretokenizer_spec g_pretokenizers[] = {
    /* SmolLM2 (and StarCoder): every digit alone, then GPT-2's split. */
    {.names = {"smollm", "starcoder"}, .patterns = {"\\p{N}", UP_BPE_PATTERN_GPT2}},
    {.names = {"gpt2", "gpt-2"}, .patterns = {UP_BPE_PATTERN_GPT2}},
    {.names = {"llama-bpe", "llama3", "llama-v3"}, .patterns = {PATTERN_LLAMA3}, .ignore_merges = true},
    /* What llama.cpp applies to "default" (and to files without the key): punctuation
     * runs, GPT-2's split, digit runs, then groups of three ASCII digits. */
    {.names = {"default"},
     .patterns = {"[\\p{P}\\$\\+<=>\\^~\\|]+", UP_BPE_PATTERN_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
};

struct up_bpe_pretokenizer {
  int n_regexes;
  pcre2_code *regexes[UP_BPE_MAX_PRETOKENIZER_REGEXES];
  bool ignore_merges;
};

static const pretokenizer_spec *find_pretokenizer(const char *name) {
  for (size_t i = 0; i < sizeof g_pretokenizers / sizeof g_pretokenizers[0]; ++i)
    for (int j = 0; j < 4 && g_pretokenizers[i].names[j]; ++j)
      if (strcmp(g_pretokenizers[i].names[j], name) == 0) return &g_pretokenizers[i];
  return NULL;
}

bool up_bpe_pre_is_llama3(const char *pre_name) {
  const pretokenizer_spec *spec = find_pretokenizer(pre_name);
  return spec && strcmp(spec->names[0], "llama-bpe") == 0;
}

up_bpe_pretokenizer *up_bpe_pretokenizer_from_patterns(const char *const *patterns, int n_patterns,
                                                       bool ignore_merges, const char *label, char *err,
                                                       size_t err_size) {
  if (n_patterns < 0 || n_patterns > UP_BPE_MAX_PRETOKENIZER_REGEXES) {
    snprintf(err, err_size, "pre-tokenizer \"%s\": %d regexes, at most %d are supported", label, n_patterns,
             UP_BPE_MAX_PRETOKENIZER_REGEXES);
    return NULL;
  }
  up_bpe_pretokenizer *pre = up_calloc_or_die(1, sizeof *pre, "BPE pre-tokenizer");
  pre->ignore_merges = ignore_merges;
  for (int i = 0; i < n_patterns; ++i) {
    int code;
    PCRE2_SIZE offset;
    /* MATCH_INVALID_UTF: bytes that are not UTF-8 never match and so stay pieces of their
     * own, which the byte-level BPE still encodes exactly. */
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)patterns[i], PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &offset, NULL);
    if (!re) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(code, msg, sizeof msg);
      snprintf(err, err_size, "pre-tokenizer \"%s\": regex %d does not compile at offset %zu: %s", label, i,
               (size_t)offset, (const char *)msg);
      up_bpe_pretokenizer_free(pre);
      return NULL;
    }
    /* JIT is a speed-up only: where it is unavailable pcre2_match interprets. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    pre->regexes[pre->n_regexes++] = re;
  }
  return pre;
}

up_bpe_pretokenizer *up_bpe_pretokenizer_create(const char *pre_name, char *err, size_t err_size) {
  const pretokenizer_spec *spec = find_pretokenizer(pre_name);
  if (!spec) {
    snprintf(err, err_size,
             "pre-tokenizer \"%s\" is not supported (known: smollm, starcoder, gpt2, llama-bpe/llama3, default)",
             pre_name);
    return NULL;
  }
  int n = 0;
  while (n < UP_BPE_MAX_PRETOKENIZER_REGEXES && spec->patterns[n]) n++;
  return up_bpe_pretokenizer_from_patterns(spec->patterns, n, spec->ignore_merges, pre_name, err, err_size);
}

void up_bpe_pretokenizer_free(up_bpe_pretokenizer *pre) {
  if (!pre) return;
  for (int i = 0; i < pre->n_regexes; ++i) pcre2_code_free(pre->regexes[i]);
  free(pre);
}

typedef struct span_list {
  up_text_span *items;
  size_t count, capacity;
} span_list;

static void span_list_push(span_list *list, size_t offset, size_t len) {
  if (list->count == list->capacity) {
    list->capacity = list->capacity ? 2 * list->capacity : 64;
    up_text_span *grown = realloc(list->items, list->capacity * sizeof *grown);
    if (!grown) UP_FATAL("out of memory growing the pre-tokenizer's piece list to %zu", list->capacity);
    list->items = grown;
  }
  list->items[list->count++] = (up_text_span){offset, len};
}

/* Split one piece by one regex: its matches and the text between them, in order. The
 * regex sees the piece alone (its lookaheads end at the piece's end). */
static bool split_piece(const pcre2_code *re, pcre2_match_data *md, const char *text, up_text_span piece,
                        span_list *out, char *err, size_t err_size) {
  const PCRE2_SPTR subject = (PCRE2_SPTR)(text + piece.offset);
  size_t pos = 0;
  while (pos < piece.len) {
    const int rc = pcre2_match(re, subject, piece.len, pos, 0, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      snprintf(err, err_size, "pre-tokenizer: regex match failed at byte %zu: %s", piece.offset + pos,
               (const char *)msg);
      return false;
    }
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t start = ov[0], end = ov[1];
    if (end == start) end = start + 1; /* no pattern matches empty; never loop in place */
    if (start > pos) span_list_push(out, piece.offset + pos, start - pos);
    span_list_push(out, piece.offset + start, end - start);
    pos = end;
  }
  if (pos < piece.len) span_list_push(out, piece.offset + pos, piece.len - pos);
  return true;
}

int64_t up_bpe_pretokenize(const up_bpe_pretokenizer *pre, const char *text, size_t len, up_text_span **spans,
                           size_t *capacity, char *err, size_t err_size) {
  span_list cur = {.items = *spans, .capacity = *capacity};
  span_list next = {0};
  if (len > 0) span_list_push(&cur, 0, len);
  bool ok = true;
  for (int r = 0; ok && r < pre->n_regexes; ++r) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(pre->regexes[r], NULL);
    if (!md) UP_FATAL("out of memory creating PCRE2 match data");
    next.count = 0;
    for (size_t i = 0; ok && i < cur.count; ++i)
      ok = split_piece(pre->regexes[r], md, text, cur.items[i], &next, err, err_size);
    pcre2_match_data_free(md);
    const span_list swap = cur;
    cur = next;
    next = swap;
  }
  /* Hand the caller whichever buffer holds the result; free the other. */
  free(next.items);
  *spans = cur.items;
  *capacity = cur.capacity;
  return ok ? (int64_t)cur.count : -1;
}

/* --- vocabulary side ---------------------------------------------------------------------- */

typedef struct merge_slot {
  uint64_t pair; /* left id << 32 | right id */
  int32_t rank;  /* -1: empty slot */
  int32_t merged;
} merge_slot;

struct up_bpe {
  up_bpe_pretokenizer *pre;
  uint16_t byte_to_char[256];   /* GPT-2's printable stand-in for each byte */
  int16_t char_to_byte[324];    /* its inverse (-1 elsewhere); stand-ins are < 324 */
  int32_t byte_token[256];      /* id of each byte's one-character piece, -1 if none */
  merge_slot *merges;
  uint64_t merge_mask;
};

/* GPT-2 keeps printable Latin-1 bytes as themselves and moves the other 68 bytes (controls,
 * space, DEL, NBSP, soft hyphen) to U+0100 onwards, in byte order, so every byte is a
 * visible character and no piece contains a raw space. */
static void build_byte_map(up_bpe *bpe) {
  int moved = 0;
  memset(bpe->char_to_byte, 0xff, sizeof bpe->char_to_byte);
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const int c = printable ? b : 256 + moved++;
    bpe->byte_to_char[b] = (uint16_t)c;
    bpe->char_to_byte[c] = (int16_t)b;
  }
}

/* UTF-8 of a code point below U+0800 (all stand-ins are). */
static size_t encode_char(uint16_t c, char *out) {
  if (c < 0x80) {
    out[0] = (char)c;
    return 1;
  }
  out[0] = (char)(0xC0 | (c >> 6));
  out[1] = (char)(0x80 | (c & 0x3F));
  return 2;
}

static uint64_t hash_pair(uint64_t pair) {
  pair ^= pair >> 33;
  pair *= 0xff51afd7ed558ccdull;
  pair ^= pair >> 33;
  return pair;
}

static const merge_slot *find_merge(const up_bpe *bpe, int32_t left, int32_t right) {
  const uint64_t pair = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
  for (uint64_t s = hash_pair(pair) & bpe->merge_mask;; s = (s + 1) & bpe->merge_mask) {
    const merge_slot *slot = &bpe->merges[s];
    if (slot->rank < 0) return NULL;
    if (slot->pair == pair) return slot;
  }
}

up_bpe *up_bpe_begin(const up_tokenizer *tok, up_bpe_pretokenizer *pre, uint64_t n_merges) {
  up_bpe *bpe = up_calloc_or_die(1, sizeof *bpe, "byte-level BPE");
  bpe->pre = pre;
  build_byte_map(bpe);
  /* A vocabulary may lack a few bytes (SmolLM2 has no piece for some control bytes nor
   * for bytes UTF-8 never uses): those stay -1 and are dropped when met, as Hugging Face
   * (without an unknown token) and llama.cpp drop them. */
  for (int b = 0; b < 256; ++b) {
    char utf8[2];
    const size_t n = encode_char(bpe->byte_to_char[b], utf8);
    bpe->byte_token[b] = up_tokenizer_vocab_find(tok, utf8, n);
  }
  uint64_t slots = 16;
  while (slots < 2 * n_merges) slots *= 2;
  bpe->merge_mask = slots - 1;
  bpe->merges = up_malloc_or_die(slots * sizeof *bpe->merges, "BPE merge table");
  for (uint64_t s = 0; s < slots; ++s) bpe->merges[s].rank = -1;
  return bpe;
}

/* A merge joins two pieces into the piece that is their concatenation; rank orders it.
 * A repeated pair keeps its first (lowest) rank. */
up_bpe_merge_status up_bpe_add_merge(up_bpe *bpe, const up_tokenizer *tok, const char *left_text, size_t left_len,
                                     const char *right_text, size_t right_len, int32_t rank) {
  const int32_t left = up_tokenizer_vocab_find(tok, left_text, left_len);
  const int32_t right = up_tokenizer_vocab_find(tok, right_text, right_len);
  if (left < 0 || right < 0) return UP_BPE_MERGE_HALF_NOT_IN_VOCAB;
  char stack[256];
  char *joined = left_len + right_len <= sizeof stack ? stack : up_malloc_or_die(left_len + right_len, "BPE merge");
  memcpy(joined, left_text, left_len);
  memcpy(joined + left_len, right_text, right_len);
  const int32_t merged = up_tokenizer_vocab_find(tok, joined, left_len + right_len);
  if (joined != stack) free(joined);
  if (merged < 0) return UP_BPE_MERGE_RESULT_NOT_IN_VOCAB;
  if (find_merge(bpe, left, right)) return UP_BPE_MERGE_REPEATED;
  const uint64_t pair = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
  uint64_t s = hash_pair(pair) & bpe->merge_mask;
  while (bpe->merges[s].rank >= 0) s = (s + 1) & bpe->merge_mask;
  bpe->merges[s] = (merge_slot){.pair = pair, .rank = rank, .merged = merged};
  return UP_BPE_MERGE_ADDED;
}

/* tokenizer.ggml.merges: "a b" strings, each index its rank. Merges whose halves or
 * result are not in the vocabulary can never apply and are skipped, as llama.cpp does. */
static bool load_gguf_merges(up_bpe *bpe, const up_tokenizer *tok, const up_gguf *g, uint64_t count, char *err,
                             size_t err_size) {
  const char *file = up_gguf_name(g);
  for (uint64_t i = 0; i < count; ++i) {
    up_gguf_str m;
    if (!up_gguf_get_array_str(g, KEY_MERGES, i, &m)) {
      snprintf(err, err_size, "%s: %s[%llu] cannot be read", file, KEY_MERGES, (unsigned long long)i);
      return false;
    }
    /* Pieces never hold a raw space, so the first space (after the first byte: a piece
     * is never empty) separates the halves. */
    const char *sep = m.len > 1 ? memchr(m.data + 1, ' ', m.len - 1) : NULL;
    if (!sep || sep + 1 == m.data + m.len) {
      snprintf(err, err_size, "%s: %s[%llu] is \"%.*s\", not two pieces separated by a space", file, KEY_MERGES,
               (unsigned long long)i, (int)(m.len > 64 ? 64 : m.len), m.data);
      return false;
    }
    const size_t left_len = (size_t)(sep - m.data);
    (void)up_bpe_add_merge(bpe, tok, m.data, left_len, sep + 1, m.len - left_len - 1, (int32_t)i);
  }
  return true;
}

up_bpe *up_bpe_create(const up_tokenizer *tok, const up_gguf *g, const char *pre_name, char *err, size_t err_size) {
  char pre_err[256];
  up_bpe_pretokenizer *pre = up_bpe_pretokenizer_create(pre_name, pre_err, sizeof pre_err);
  if (!pre) {
    snprintf(err, err_size, "%s: tokenizer.ggml.pre: %s", up_gguf_name(g), pre_err);
    return NULL;
  }
  up_gguf_value_type elem;
  uint64_t count;
  if (!up_gguf_get_array_info(g, KEY_MERGES, &elem, &count) || elem != UP_GGUF_STRING || count > INT32_MAX) {
    snprintf(err, err_size, "%s: %s is missing or not a string array (byte-level BPE needs its merges)",
             up_gguf_name(g), KEY_MERGES);
    up_bpe_pretokenizer_free(pre);
    return NULL;
  }
  up_bpe *bpe = up_bpe_begin(tok, pre, count);
  if (!load_gguf_merges(bpe, tok, g, count, err, err_size)) {
    up_bpe_free(bpe);
    return NULL;
  }
  return bpe;
}

void up_bpe_free(up_bpe *bpe) {
  if (!bpe) return;
  up_bpe_pretokenizer_free(bpe->pre);
  free(bpe->merges);
  free(bpe);
}

/* --- encoding ----------------------------------------------------------------------------- */

/* Scratch of one encode call, sized for its longest piece. */
typedef struct bpe_scratch {
  int32_t *id, *next, *prev; /* symbols; id -1 once merged into the left neighbour */
  up_merge_heap heap;        /* tags: the halves' token ids */
  char *mapped;              /* a piece in byte-level characters */
} bpe_scratch;

static void consider_pair(const up_bpe *bpe, bpe_scratch *s, int32_t left) {
  if (left < 0 || s->next[left] < 0) return;
  const int32_t right = s->next[left];
  if (s->id[left] < 0 || s->id[right] < 0) return; /* a byte without a piece */
  const merge_slot *m = find_merge(bpe, s->id[left], s->id[right]);
  if (m)
    up_merge_heap_push(&s->heap, (up_merge_candidate){m->rank, left, s->id[left], s->id[right], m->merged});
}

/* Merge one pre-tokenized piece from single bytes up. Each merge removes a symbol and
 * adds at most two candidates, so the heap never holds more than 3 * n entries. */
static void encode_piece(const up_tokenizer *tok, const up_bpe *bpe, bpe_scratch *s, const unsigned char *bytes,
                         int32_t n, up_token_sink *sink) {
  if (bpe->pre->ignore_merges) {
    size_t mapped_len = 0;
    for (int32_t i = 0; i < n; ++i) mapped_len += encode_char(bpe->byte_to_char[bytes[i]], s->mapped + mapped_len);
    const int32_t whole = up_tokenizer_vocab_find(tok, s->mapped, mapped_len);
    if (whole >= 0) {
      up_token_sink_push(sink, whole);
      return;
    }
  }
  for (int32_t i = 0; i < n; ++i) {
    s->id[i] = bpe->byte_token[bytes[i]];
    s->prev[i] = i - 1;
    s->next[i] = i + 1 < n ? i + 1 : -1;
  }
  s->heap.len = 0;
  for (int32_t i = 0; i + 1 < n; ++i) consider_pair(bpe, s, i);
  while (s->heap.len > 0) {
    const up_merge_candidate c = up_merge_heap_pop(&s->heap);
    const int32_t left = c.left, right = s->next[left];
    if (s->id[left] != c.left_tag || right < 0 || s->id[right] != c.right_tag) continue; /* stale */
    s->id[left] = c.id;
    s->id[right] = -1;
    s->next[left] = s->next[right];
    if (s->next[right] >= 0) s->prev[s->next[right]] = left;
    consider_pair(bpe, s, s->prev[left]);
    consider_pair(bpe, s, left);
  }
  for (int32_t i = 0; i >= 0; i = s->next[i])
    if (s->id[i] >= 0) up_token_sink_push(sink, s->id[i]);
}

bool up_bpe_encode(const up_tokenizer *tok, const char *text, size_t len, up_token_sink *sink, char *err,
                   size_t err_size) {
  const up_bpe *bpe = tok->bpe;
  up_text_span *spans = NULL;
  size_t spans_cap = 0;
  const int64_t n_spans = up_bpe_pretokenize(bpe->pre, text, len, &spans, &spans_cap, err, err_size);
  if (n_spans < 0) {
    free(spans);
    return false;
  }
  size_t longest = 1;
  for (int64_t i = 0; i < n_spans; ++i)
    if (spans[i].len > longest) longest = spans[i].len;
  bpe_scratch s = {
      .id = up_malloc_or_die(longest * sizeof *s.id, "BPE symbols"),
      .next = up_malloc_or_die(longest * sizeof *s.next, "BPE symbols"),
      .prev = up_malloc_or_die(longest * sizeof *s.prev, "BPE symbols"),
      .heap.items = up_malloc_or_die(3 * longest * sizeof *s.heap.items, "BPE merge heap"),
      .mapped = up_malloc_or_die(2 * longest, "BPE mapped piece"),
  };
  for (int64_t i = 0; i < n_spans; ++i)
    encode_piece(tok, bpe, &s, (const unsigned char *)text + spans[i].offset, (int32_t)spans[i].len, sink);
  free(s.id);
  free(s.next);
  free(s.prev);
  free(s.heap.items);
  free(s.mapped);
  free(spans);
  return true;
}

/* --- decoding ----------------------------------------------------------------------------- */

void up_bpe_append_token(const up_tokenizer *tok, int32_t id, up_byte_buffer *buf) {
  const up_bpe *bpe = tok->bpe;
  const char *piece = up_tokenizer_piece(tok, id);
  const size_t len = tok->piece_len[id];
  for (size_t i = 0; i < len;) {
    bool valid;
    const size_t step = up_utf8_scan(piece + i, len - i, &valid);
    int byte = -1;
    if (valid && step <= 2) {
      const unsigned char *u = (const unsigned char *)piece + i;
      const unsigned c = step == 1 ? u[0] : ((unsigned)(u[0] & 0x1F) << 6 | (u[1] & 0x3F));
      if (c < sizeof bpe->char_to_byte / sizeof bpe->char_to_byte[0]) byte = bpe->char_to_byte[c];
    }
    if (byte >= 0) {
      const char b = (char)byte;
      up_byte_buffer_append(buf, &b, 1);
    } else {
      /* Not a byte-level character (a normal-typed added token): its text as written. */
      up_byte_buffer_append(buf, piece + i, step);
    }
    i += step;
  }
}
