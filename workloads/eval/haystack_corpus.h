/* haystack_corpus.h — the English prose that long-context fidelity tasks hide their
 * needles in: sentences read from text files shipped by a Debian package, cleaned and
 * split once, kept in file order.
 *
 * Source: Debian package gnu-standards (section doc, main), files
 *   /usr/share/doc/gnu-standards/standards.text.gz  (GNU Coding Standards)
 *   /usr/share/doc/gnu-standards/maintain.text.gz   (Information for Maintainers of GNU Software)
 * About 58,000 words of edited, continuous English prose, plain text as makeinfo writes
 * it. Chosen over base-files' /usr/share/common-licenses (always present, but legal
 * text in numbered clauses) and over the Debian FAQ / Debian Reference (smaller, or
 * mostly command listings and tables); the package is 1.4 MB and has no dependencies.
 * scripts/install-deps.sh installs it.
 *
 * Cleaning (deterministic): paragraphs that are headings (underlined with * = - .),
 * indented examples (five or more leading spaces) or menus are dropped; whitespace runs
 * become one space; paragraphs are split into sentences at . ! ? followed by a capital,
 * skipping common abbreviations and initials; a sentence is kept only when it starts
 * with a capital, ends with . ! or ?, has 4 to 80 words and no run of 5 or more digits
 * (so no haystack sentence can be mistaken for a task's numeric answer) and no Texinfo
 * cross-reference ("*note", "::"). */
#ifndef UP_HAYSTACK_CORPUS_H
#define UP_HAYSTACK_CORPUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UP_HAYSTACK_PACKAGE "gnu-standards"
#define UP_HAYSTACK_N_DEFAULT_FILES 2
extern const char *const up_haystack_default_files[UP_HAYSTACK_N_DEFAULT_FILES];

typedef struct up_haystack_corpus {
  char *text;          /* every kept sentence, each followed by a NUL */
  size_t *offsets;     /* sentence i starts at text + offsets[i] */
  uint32_t *lengths;   /* bytes of sentence i, without the NUL */
  int32_t n_sentences; /* at least 1 */
  int64_t n_words;
} up_haystack_corpus;

/* Read and clean the files (gzip or plain text, told apart by their content) in order.
 * Returns NULL with a message naming the file and the cause in err when a file is
 * missing or unreadable, or when no sentence survives the cleaning. */
up_haystack_corpus *up_haystack_corpus_load(const char *const *paths, int32_t n_paths, char *err, size_t err_size);

/* The gnu-standards files above; a missing file's message says which package to install. */
up_haystack_corpus *up_haystack_corpus_load_default(char *err, size_t err_size);

/* The files of a comma-separated list (at most UP_HAYSTACK_MAX_FILES, none empty). */
#define UP_HAYSTACK_MAX_FILES 16
up_haystack_corpus *up_haystack_corpus_load_list(const char *comma_list, char *err, size_t err_size);

void up_haystack_corpus_free(up_haystack_corpus *corpus);

static inline const char *up_haystack_sentence(const up_haystack_corpus *corpus, int32_t i) {
  return corpus->text + corpus->offsets[i];
}

#endif
