/* text_buffer.c — growable NUL-terminated strings (see text_buffer.h). */
#include "workloads/eval/text_buffer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

static void reserve(up_text_buffer *buf, size_t extra) {
  UP_ASSERT(extra <= (size_t)-1 / 2 - buf->len, "text buffer of %zu bytes cannot grow by %zu", buf->len, extra);
  const size_t need = buf->len + extra + 1;
  if (need <= buf->cap) return;
  size_t cap = buf->cap ? buf->cap : 256;
  while (cap < need) cap *= 2;
  char *grown = realloc(buf->data, cap);
  if (!grown) UP_FATAL("out of memory growing a text buffer to %zu bytes", cap);
  buf->data = grown;
  buf->cap = cap;
}

void up_text_buffer_append(up_text_buffer *buf, const char *bytes, size_t len) {
  reserve(buf, len);
  if (len) memcpy(buf->data + buf->len, bytes, len);
  buf->len += len;
  buf->data[buf->len] = '\0';
}

void up_text_buffer_append_str(up_text_buffer *buf, const char *str) { up_text_buffer_append(buf, str, strlen(str)); }

void up_text_buffer_printf(up_text_buffer *buf, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  const int n = vsnprintf(NULL, 0, fmt, args);
  va_end(args);
  UP_ASSERT(n >= 0, "bad format '%s'", fmt);
  reserve(buf, (size_t)n);
  va_start(args, fmt);
  vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, args);
  va_end(args);
  buf->len += (size_t)n;
}

void up_text_buffer_truncate(up_text_buffer *buf, size_t len) {
  UP_ASSERT(len <= buf->len, "truncating a %zu-byte text buffer to %zu bytes", buf->len, len);
  if (buf->data) buf->data[len] = '\0';
  buf->len = len;
}

char *up_text_buffer_take(up_text_buffer *buf) {
  if (!buf->data) reserve(buf, 0), buf->data[0] = '\0';
  char *out = buf->data;
  *buf = (up_text_buffer){0};
  return out;
}

void up_text_buffer_free(up_text_buffer *buf) {
  free(buf->data);
  *buf = (up_text_buffer){0};
}
