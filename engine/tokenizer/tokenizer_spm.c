/* tokenizer_spm.c — SentencePiece BPE as Llama-2 uses it (tokenizer.ggml.model "llama"):
 * spaces become U+2581, the text is split into characters, and adjacent symbols whose
 * concatenation is a piece are merged best score first (leftmost on ties) through a
 * binary heap; what no piece covers falls back to <0xXX> byte tokens. As in
 * SentencePiece, only normal, user-defined and unused pieces take part in merges, and an
 * unused piece is split back into the halves it was merged from. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tokenizer_internal.h"
#include "core/fatal.h"

#define SPACE_MARK "\xE2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK */
#define SPACE_MARK_LEN 3

struct up_spm {
  int32_t byte_token[256]; /* <0xXX>, or unk where the vocabulary lacks it */
};

up_spm *up_spm_create(const up_tokenizer *tok, char *err, size_t err_size) {
  up_spm *spm = up_calloc_or_die(1, sizeof *spm, "SentencePiece tokenizer");
  for (int b = 0; b < 256; ++b) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    const int32_t id = up_tokenizer_vocab_find(tok, name, 6);
    spm->byte_token[b] = id >= 0 && tok->type[id] == UP_TOKEN_BYTE ? id : tok->unk;
    if (spm->byte_token[b] < 0) {
      snprintf(err, err_size, "SentencePiece vocabulary has neither the byte token %s nor an unknown token", name);
      free(spm);
      return NULL;
    }
  }
  return spm;
}

void up_spm_free(up_spm *spm) { free(spm); }

/* --- encoding ----------------------------------------------------------------------------- */

/* A merge tree node: a stretch of the escaped text and the piece it is, if any. */
typedef struct spm_node {
  int32_t start, len;
  int32_t id;          /* -1: a character no mergeable piece covers */
  int32_t left, right; /* halves it was merged from, -1 for a character */
} spm_node;

typedef struct spm_scratch {
  const char *text;
  spm_node *nodes;
  int32_t n_nodes;
  int32_t *node, *prev, *next; /* symbols: current node, neighbours; node -1 once merged away */
  up_merge_heap heap;          /* tags: the halves' node indices */
} spm_scratch;

static int32_t mergeable_piece(const up_tokenizer *tok, const char *s, size_t len) {
  const int32_t id = up_tokenizer_vocab_find(tok, s, len);
  if (id < 0) return -1;
  const uint8_t t = tok->type[id];
  return t == UP_TOKEN_NORMAL || t == UP_TOKEN_USER_DEFINED || t == UP_TOKEN_UNUSED ? id : -1;
}

static void consider_pair(const up_tokenizer *tok, spm_scratch *s, int32_t left) {
  if (left < 0 || s->next[left] < 0) return;
  const spm_node *a = &s->nodes[s->node[left]], *b = &s->nodes[s->node[s->next[left]]];
  const int32_t id = mergeable_piece(tok, s->text + a->start, (size_t)(a->len + b->len));
  if (id >= 0)
    up_merge_heap_push(&s->heap, (up_merge_candidate){-(double)tok->score[id], left, s->node[left],
                                                      s->node[s->next[left]], id});
}

static void emit_node(const up_tokenizer *tok, const spm_scratch *s, int32_t n, up_token_sink *sink) {
  const spm_node *node = &s->nodes[n];
  if (node->id >= 0 && tok->type[node->id] != UP_TOKEN_UNUSED) {
    up_token_sink_push(sink, node->id);
  } else if (node->left >= 0) {
    emit_node(tok, s, node->left, sink);
    emit_node(tok, s, node->right, sink);
  } else {
    for (int32_t i = 0; i < node->len; ++i)
      up_token_sink_push(sink, tok->spm->byte_token[(unsigned char)s->text[node->start + i]]);
  }
}

bool up_spm_encode(const up_tokenizer *tok, const char *text, size_t len, bool space_prefix, up_token_sink *sink,
                   char *err, size_t err_size) {
  /* Escape: every space (and the prefix) becomes U+2581; at most 3 bytes per input byte. */
  if (len > (INT32_MAX - SPACE_MARK_LEN) / SPACE_MARK_LEN) {
    snprintf(err, err_size, "SentencePiece encode: %zu bytes of text between special tokens are more than %d", len,
             (INT32_MAX - SPACE_MARK_LEN) / SPACE_MARK_LEN);
    return false;
  }
  const size_t cap = SPACE_MARK_LEN * (len + 1);
  char *escaped = up_malloc_or_die(cap, "SentencePiece escaped text");
  size_t n = 0;
  if (space_prefix) {
    memcpy(escaped, SPACE_MARK, SPACE_MARK_LEN);
    n = SPACE_MARK_LEN;
  }
  for (size_t i = 0; i < len; ++i) {
    if (text[i] == ' ') {
      memcpy(escaped + n, SPACE_MARK, SPACE_MARK_LEN);
      n += SPACE_MARK_LEN;
    } else {
      escaped[n++] = text[i];
    }
  }

  spm_scratch s = {.text = escaped};
  s.nodes = up_malloc_or_die(2 * n * sizeof *s.nodes, "SentencePiece merge tree");
  s.node = up_malloc_or_die(n * sizeof *s.node, "SentencePiece symbols");
  s.prev = up_malloc_or_die(n * sizeof *s.prev, "SentencePiece symbols");
  s.next = up_malloc_or_die(n * sizeof *s.next, "SentencePiece symbols");
  s.heap.items = up_malloc_or_die(3 * n * sizeof *s.heap.items, "SentencePiece merge heap");

  /* One symbol per character; bytes that are not UTF-8 stay alone and fall back to bytes. */
  int32_t n_symbols = 0;
  for (size_t i = 0; i < n;) {
    bool valid;
    const size_t step = up_utf8_scan(escaped + i, n - i, &valid);
    s.nodes[n_symbols] = (spm_node){.start = (int32_t)i, .len = (int32_t)step, .left = -1, .right = -1,
                                     .id = mergeable_piece(tok, escaped + i, step)};
    s.node[n_symbols] = n_symbols;
    s.prev[n_symbols] = n_symbols - 1;
    s.next[n_symbols] = n_symbols + 1;
    n_symbols++;
    i += step;
  }
  if (n_symbols > 0) s.next[n_symbols - 1] = -1;
  s.n_nodes = n_symbols;

  for (int32_t i = 0; i + 1 < n_symbols; ++i) consider_pair(tok, &s, i);
  while (s.heap.len > 0) {
    const up_merge_candidate c = up_merge_heap_pop(&s.heap);
    const int32_t left = c.left, right = s.next[left];
    if (s.node[left] != c.left_tag || right < 0 || s.node[right] != c.right_tag) continue; /* stale */
    const spm_node *a = &s.nodes[c.left_tag], *b = &s.nodes[c.right_tag];
    s.nodes[s.n_nodes] = (spm_node){.start = a->start, .len = a->len + b->len, .id = c.id,
                                    .left = c.left_tag, .right = c.right_tag};
    s.node[left] = s.n_nodes++;
    s.node[right] = -1;
    s.next[left] = s.next[right];
    if (s.next[right] >= 0) s.prev[s.next[right]] = left;
    consider_pair(tok, &s, s.prev[left]);
    consider_pair(tok, &s, left);
  }
  for (int32_t i = n_symbols > 0 ? 0 : -1; i >= 0; i = s.next[i]) emit_node(tok, &s, s.node[i], sink);

  free(s.nodes);
  free(s.node);
  free(s.prev);
  free(s.next);
  free(s.heap.items);
  free(escaped);
  return true;
}

/* --- decoding ----------------------------------------------------------------------------- */

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

void up_spm_append_token(const up_tokenizer *tok, int32_t id, bool strip_space, up_byte_buffer *buf) {
  const char *piece = up_tokenizer_piece(tok, id);
  const size_t len = tok->piece_len[id];
  if (tok->type[id] == UP_TOKEN_BYTE && len == 6 && memcmp(piece, "<0x", 3) == 0 && piece[5] == '>' &&
      hex_digit(piece[3]) >= 0 && hex_digit(piece[4]) >= 0) {
    const char byte = (char)(hex_digit(piece[3]) * 16 + hex_digit(piece[4]));
    up_byte_buffer_append(buf, &byte, 1);
    return;
  }
  size_t i = 0;
  if (strip_space && len >= SPACE_MARK_LEN && memcmp(piece, SPACE_MARK, SPACE_MARK_LEN) == 0) i = SPACE_MARK_LEN;
  while (i < len) {
    const char *mark = len - i >= SPACE_MARK_LEN ? strstr(piece + i, SPACE_MARK) : NULL;
    const size_t run = mark ? (size_t)(mark - (piece + i)) : len - i;
    up_byte_buffer_append(buf, piece + i, run);
    i += run;
    if (mark) {
      up_byte_buffer_append(buf, " ", 1);
      i += SPACE_MARK_LEN;
    }
  }
}
