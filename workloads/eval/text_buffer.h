/* text_buffer.h — a growable, always NUL-terminated byte string for assembling prompt
 * text (corpus sentences, task contexts, chat turns). Allocation failure is fatal
 * (up_malloc_or_die's policy): these buffers hold at most a few megabytes. */
#ifndef UP_TEXT_BUFFER_H
#define UP_TEXT_BUFFER_H

#include <stddef.h>

typedef struct up_text_buffer {
  char *data; /* NUL-terminated; NULL until the first append */
  size_t len;
  size_t cap;
} up_text_buffer;

void up_text_buffer_append(up_text_buffer *buf, const char *bytes, size_t len);
void up_text_buffer_append_str(up_text_buffer *buf, const char *str);
void up_text_buffer_printf(up_text_buffer *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Drop everything after the first len bytes (len <= buf->len). */
void up_text_buffer_truncate(up_text_buffer *buf, size_t len);

/* Hand the string over to the caller (free() it; "" when nothing was appended) and
 * leave the buffer empty. */
char *up_text_buffer_take(up_text_buffer *buf);

void up_text_buffer_free(up_text_buffer *buf);

#endif
