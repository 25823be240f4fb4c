/* haystack_corpus.c — loading and cleaning the haystack prose (see haystack_corpus.h):
 * file reading through zlib (which passes plain text through unchanged), paragraph
 * filtering, whitespace normalisation, sentence splitting and the sentence filter. */
#include "workloads/eval/haystack_corpus.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include "core/fatal.h"
#include "workloads/eval/text_buffer.h"

const char *const up_haystack_default_files[UP_HAYSTACK_N_DEFAULT_FILES] = {
    "/usr/share/doc/gnu-standards/standards.text.gz",
    "/usr/share/doc/gnu-standards/maintain.text.gz",
};

enum {
  MIN_WORDS = 4,
  MAX_WORDS = 80,
  MAX_DIGIT_RUN = 4,     /* task answers have 5 (vt) or 7 (niah) digits */
  EXAMPLE_INDENT = 5,    /* makeinfo indents body text by 0 or 3; examples, tables and lists by 5 */
};

/* The whole file, decompressed when it is gzip. False with "PATH: cause" in err. */
static bool read_file(const char *path, up_text_buffer *out, char *err, size_t err_size) {
  const int fd = open(path, O_RDONLY);
  if (fd < 0) {
    snprintf(err, err_size, "haystack corpus %s: %s", path, strerror(errno));
    return false;
  }
  gzFile in = gzdopen(fd, "rb");
  if (!in) {
    close(fd);
    snprintf(err, err_size, "haystack corpus %s: zlib could not open it (out of memory)", path);
    return false;
  }
  char chunk[65536];
  int n;
  while ((n = gzread(in, chunk, sizeof chunk)) > 0) up_text_buffer_append(out, chunk, (size_t)n);
  if (n < 0) {
    int code = 0;
    const char *why = gzerror(in, &code);
    snprintf(err, err_size, "haystack corpus %s: read failed: %s", path,
             code == Z_ERRNO ? strerror(errno) : why);
    gzclose(in);
    return false;
  }
  if (gzclose(in) != Z_OK) {
    snprintf(err, err_size, "haystack corpus %s: truncated or corrupt gzip data", path);
    return false;
  }
  return true;
}

static bool is_blank_line(const char *line, size_t len) {
  for (size_t i = 0; i < len; ++i)
    if (!isspace((unsigned char)line[i])) return false;
  return true;
}

/* makeinfo underlines headings with a row of one of these characters. */
static bool is_underline(const char *line, size_t len) {
  size_t i = 0;
  while (i < len && line[i] == ' ') i++;
  if (i == len || !strchr("*=-.", line[i])) return false;
  const char mark = line[i];
  size_t marks = 0;
  for (; i < len; ++i) {
    if (line[i] == mark) marks++;
    else if (!isspace((unsigned char)line[i])) return false;
  }
  return marks >= 3;
}

static size_t indent_of(const char *line, size_t len) {
  size_t n = 0;
  while (n < len && line[n] == ' ') n++;
  return n;
}

/* A paragraph worth splitting into sentences: not a heading, menu, example, table or
 * list (whose descriptions and continuation lines makeinfo indents by 5 or more). */
static bool is_prose_paragraph(const char *para, size_t len) {
  const char *line = para;
  const char *end = para + len;
  while (line < end) {
    const char *nl = memchr(line, '\n', (size_t)(end - line));
    const size_t line_len = (size_t)((nl ? nl : end) - line);
    if (indent_of(line, line_len) >= EXAMPLE_INDENT || is_underline(line, line_len)) return false;
    if (line_len >= 7 && strncmp(line, "* Menu:", 7) == 0) return false;
    line = nl ? nl + 1 : end;
  }
  return true;
}

/* Words that end in '.' without ending a sentence. */
static bool is_abbreviation(const char *word, size_t len) {
  static const char *const known[] = {"e.g", "i.e", "etc", "vs", "cf", "Mr", "Mrs", "Ms", "Dr",
                                      "Inc", "Ltd", "No", "Fig", "St", "Jr", "Sr", "al", "approx"};
  while (len && strchr("(\"'[", *word)) word++, len--;
  if (len == 1 && isupper((unsigned char)word[0])) return true; /* an initial: "J. Random" */
  if (len <= 5 && memchr(word, '.', len)) return true;          /* "U.S", "e.g"; not "gnu.org" */
  for (size_t k = 0; k < sizeof known / sizeof known[0]; ++k)
    if (strlen(known[k]) == len && strncmp(known[k], word, len) == 0) return true;
  return false;
}

static bool is_closer(char c) { return c == '"' || c == '\'' || c == ')' || c == ']'; }

static bool keep_sentence(const char *s, size_t len) {
  if (len == 0 || !isupper((unsigned char)s[0])) return false;
  size_t last = len - 1;
  while (last > 0 && is_closer(s[last])) last--;
  if (!strchr(".!?", s[last])) return false;
  int words = 1;
  int digit_run = 0;
  for (size_t i = 0; i < len; ++i) {
    words += s[i] == ' ';
    digit_run = isdigit((unsigned char)s[i]) ? digit_run + 1 : 0;
    if (digit_run > MAX_DIGIT_RUN) return false;
    if (s[i] == ':' && i + 1 < len && s[i + 1] == ':') return false;
    if (s[i] == '*' && i + 5 <= len && strncasecmp(s + i, "*note", 5) == 0) return false;
  }
  return words >= MIN_WORDS && words <= MAX_WORDS;
}

typedef struct sentence_list {
  up_text_buffer text;
  size_t *offsets;
  uint32_t *lengths;
  int32_t n, cap;
  int64_t n_words;
} sentence_list;

static void add_sentence(sentence_list *list, const char *s, size_t len) {
  if (!keep_sentence(s, len)) return;
  if (list->n == list->cap) {
    list->cap = list->cap ? list->cap * 2 : 1024;
    size_t *offsets = realloc(list->offsets, (size_t)list->cap * sizeof *offsets);
    uint32_t *lengths = realloc(list->lengths, (size_t)list->cap * sizeof *lengths);
    if (!offsets || !lengths) UP_FATAL("out of memory for %d haystack sentences", list->cap);
    list->offsets = offsets;
    list->lengths = lengths;
  }
  list->offsets[list->n] = list->text.len;
  list->lengths[list->n] = (uint32_t)len;
  list->n++;
  for (size_t i = 0; i < len; ++i) list->n_words += s[i] == ' ';
  list->n_words++;
  up_text_buffer_append(&list->text, s, len);
  up_text_buffer_append(&list->text, "", 1); /* the NUL separator */
}

/* Split one whitespace-normalised paragraph into sentences. */
static void split_sentences(sentence_list *list, const char *p, size_t len) {
  size_t start = 0;
  for (size_t i = 0; i < len; ++i) {
    if (!strchr(".!?", p[i])) continue;
    size_t end = i + 1;
    while (end < len && is_closer(p[end])) end++;
    if (end < len && !(p[end] == ' ' && end + 1 < len &&
                       (isupper((unsigned char)p[end + 1]) || strchr("\"'(", p[end + 1]))))
      continue;
    if (p[i] == '.') {
      size_t w = i;
      while (w > start && p[w - 1] != ' ') w--;
      if (is_abbreviation(p + w, i - w)) continue;
    }
    add_sentence(list, p + start, end - start);
    start = end < len ? end + 1 : len;
    i = end;
  }
}

/* Collapse every whitespace run of the paragraph to one space, trimming both ends. */
static void normalise_whitespace(const char *para, size_t len, up_text_buffer *out) {
  up_text_buffer_truncate(out, 0);
  bool pending_space = false;
  for (size_t i = 0; i < len; ++i) {
    if (isspace((unsigned char)para[i])) {
      pending_space = out->len > 0;
      continue;
    }
    if (pending_space) up_text_buffer_append(out, " ", 1);
    pending_space = false;
    up_text_buffer_append(out, para + i, 1);
  }
}

static void add_file_text(sentence_list *list, const char *text, size_t len) {
  up_text_buffer para = {0};
  const char *line = text;
  const char *end = text + len;
  const char *para_start = NULL;
  while (line <= end) {
    const char *nl = line < end ? memchr(line, '\n', (size_t)(end - line)) : NULL;
    const char *line_end = nl ? nl : end;
    const bool blank = is_blank_line(line, (size_t)(line_end - line));
    if (!blank && !para_start) para_start = line;
    if ((blank || !nl) && para_start) {
      const size_t para_len = (size_t)(line_end - para_start);
      if (is_prose_paragraph(para_start, para_len)) {
        normalise_whitespace(para_start, para_len, &para);
        split_sentences(list, para.data ? para.data : "", para.len);
      }
      para_start = NULL;
    }
    if (!nl) break;
    line = nl + 1;
  }
  up_text_buffer_free(&para);
}

up_haystack_corpus *up_haystack_corpus_load(const char *const *paths, int32_t n_paths, char *err, size_t err_size) {
  sentence_list list = {0};
  up_text_buffer file = {0};
  for (int32_t f = 0; f < n_paths; ++f) {
    up_text_buffer_truncate(&file, 0);
    if (!read_file(paths[f], &file, err, err_size)) {
      up_text_buffer_free(&file);
      up_text_buffer_free(&list.text);
      free(list.offsets);
      free(list.lengths);
      return NULL;
    }
    add_file_text(&list, file.data ? file.data : "", file.len);
  }
  up_text_buffer_free(&file);
  if (list.n == 0) {
    snprintf(err, err_size, "haystack corpus %s%s: no prose sentences found", n_paths > 0 ? paths[0] : "(no files)",
             n_paths > 1 ? " and the other files" : "");
    up_text_buffer_free(&list.text);
    free(list.offsets);
    free(list.lengths);
    return NULL;
  }
  up_haystack_corpus *corpus = up_calloc_or_die(1, sizeof *corpus, "haystack corpus");
  corpus->text = up_text_buffer_take(&list.text);
  corpus->offsets = list.offsets;
  corpus->lengths = list.lengths;
  corpus->n_sentences = list.n;
  corpus->n_words = list.n_words;
  return corpus;
}

up_haystack_corpus *up_haystack_corpus_load_default(char *err, size_t err_size) {
  up_haystack_corpus *corpus = up_haystack_corpus_load(up_haystack_default_files, UP_HAYSTACK_N_DEFAULT_FILES, err,
                                                       err_size);
  if (!corpus && err && err_size > 0) {
    const size_t used = strlen(err);
    snprintf(err + used, err_size - used,
             " (the haystack prose comes from the Debian package " UP_HAYSTACK_PACKAGE
             ": scripts/install-deps.sh installs it)");
  }
  return corpus;
}

up_haystack_corpus *up_haystack_corpus_load_list(const char *comma_list, char *err, size_t err_size) {
  char *copy = up_malloc_or_die(strlen(comma_list) + 1, "haystack file list");
  strcpy(copy, comma_list);
  const char *paths[UP_HAYSTACK_MAX_FILES];
  int32_t n = 0;
  bool ok = true;
  for (char *save = NULL, *p = strtok_r(copy, ",", &save); p && ok; p = strtok_r(NULL, ",", &save)) {
    if (n == UP_HAYSTACK_MAX_FILES) {
      snprintf(err, err_size, "haystack corpus %s: more than %d files", comma_list, UP_HAYSTACK_MAX_FILES);
      ok = false;
    } else {
      paths[n++] = p;
    }
  }
  up_haystack_corpus *corpus = ok ? up_haystack_corpus_load(paths, n, err, err_size) : NULL;
  free(copy);
  return corpus;
}

void up_haystack_corpus_free(up_haystack_corpus *corpus) {
  if (!corpus) return;
  free(corpus->text);
  free(corpus->offsets);
  free(corpus->lengths);
  free(corpus);
}
