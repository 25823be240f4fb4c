/* jsonl_line.h — reading line-oriented inputs strictly (traces, prompt files): regular
 * files only (core/file_kind.h: a device or a pipe could be read forever), lines bounded in length (a
 * file without newlines must not fill memory), and JSONL lines that hold exactly one
 * JSON object with distinct keys (a second object, trailing text or a key given twice
 * would otherwise be dropped or shadowed without a word). Owns no format: callers
 * read the fields and name file and line in their messages. */
#ifndef UP_JSONL_LINE_H
#define UP_JSONL_LINE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/file_kind.h" /* up_open_regular_file: regular files only */

typedef enum up_line_status { UP_LINE_OK, UP_LINE_TOO_LONG, UP_LINE_END_OF_FILE } up_line_status;

/* One line without its '\n' into *buf, NUL-terminated (*len counts embedded NULs too).
 * The buffer grows by doubling up to max_bytes + 1 bytes: start with *buf NULL and *cap
 * 0, and free *buf after the last line. A longer line is read to its end but not kept
 * (UP_LINE_TOO_LONG), so memory stays bounded whatever the file holds. */
up_line_status up_read_bounded_line(FILE *f, char **buf, size_t *cap, size_t max_bytes, size_t *len);

/* Exactly one JSON object on the line (whitespace around it allowed), with distinct keys
 * at every depth. NULL with the reason (no file or line) in why. */
cJSON *up_jsonl_object(const char *line, size_t len, char *why, size_t why_size);

#endif
