/* trace.c — the trace readers (see trace.h): one pass over the file line by line
 * (regular files only, lines bounded by UP_TRACE_MAX_LINE_BYTES, so memory stays
 * bounded whatever the file holds), format-specific row parsers that either fill a row
 * or say what is wrong with the line, then a stable sort by time. Times are kept as
 * integer 100 ns ticks until the earliest is subtracted, so Azure's absolute datetimes
 * keep their 7 decimals. */
#include "workloads/trace.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "workloads/jsonl_line.h"

#define TICKS_PER_S 10000000LL

const char *up_trace_format_name(up_trace_format format) {
  switch (format) {
    case UP_TRACE_FORMAT_AUTO: return "auto";
    case UP_TRACE_FORMAT_AZURE: return "azure";
    case UP_TRACE_FORMAT_MOONCAKE: return "mooncake";
  }
  return "?";
}

/* What a row parser reports about one line: a message, or nothing when the row is good. */
typedef struct line_error {
  char text[256];
} line_error;

static bool line_fail(line_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool line_fail(line_error *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->text, sizeof e->text, fmt, ap);
  va_end(ap);
  return false;
}

/* The rows read so far, with their times in ticks until the earliest is known. */
typedef struct trace_builder {
  up_trace *trace;
  int32_t cap_rows;
  int64_t cap_hash;
  int64_t *ticks;
  int64_t line; /* the line being parsed */
} trace_builder;

static up_trace_row *builder_add_row(trace_builder *b, int64_t ticks) {
  up_trace *t = b->trace;
  if (t->n_rows == b->cap_rows) {
    if (b->cap_rows >= INT32_MAX / 2) UP_FATAL("trace has more than %d rows", INT32_MAX / 2);
    b->cap_rows = b->cap_rows ? 2 * b->cap_rows : 1024;
    t->rows = realloc(t->rows, sizeof *t->rows * (size_t)b->cap_rows);
    b->ticks = realloc(b->ticks, sizeof *b->ticks * (size_t)b->cap_rows);
    if (!t->rows || !b->ticks) UP_FATAL("out of host memory for trace rows");
  }
  b->ticks[t->n_rows] = ticks;
  up_trace_row *row = &t->rows[t->n_rows++];
  memset(row, 0, sizeof *row);
  row->hash_first = t->n_hash_ids;
  row->line = b->line;
  return row;
}

static void builder_add_hash(trace_builder *b, int64_t id) {
  up_trace *t = b->trace;
  if (t->n_hash_ids == b->cap_hash) {
    b->cap_hash = b->cap_hash ? 2 * b->cap_hash : 4096;
    t->hash_ids = realloc(t->hash_ids, sizeof *t->hash_ids * (size_t)b->cap_hash);
    if (!t->hash_ids) UP_FATAL("out of host memory for trace hash ids");
  }
  t->hash_ids[t->n_hash_ids++] = id;
}

/* ---- Azure CSV ------------------------------------------------------------------ */

enum { AZ_TIMESTAMP, AZ_CONTEXT, AZ_GENERATED, AZ_N_COLUMNS };
static const char *const az_names[AZ_N_COLUMNS] = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"};
#define AZ_MAX_FIELDS 32

typedef struct azure_columns {
  int index[AZ_N_COLUMNS];
  int n_needed; /* fields a row must have: the largest index + 1 */
} azure_columns;

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *end = s + strlen(s);
  while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
  return s;
}

/* Split in place at commas; returns the field count (at most max). */
static int split_csv(char *line, char **fields, int max) {
  int n = 0;
  for (char *p = line;;) {
    char *comma = strchr(p, ',');
    if (comma) *comma = '\0';
    if (n < max) fields[n++] = trim(p);
    if (!comma) return n;
    p = comma + 1;
  }
}

static bool azure_header(char *line, azure_columns *cols, line_error *e) {
  char *fields[AZ_MAX_FIELDS];
  const int n = split_csv(line, fields, AZ_MAX_FIELDS);
  cols->n_needed = 0;
  for (int c = 0; c < AZ_N_COLUMNS; ++c) {
    cols->index[c] = -1;
    for (int i = 0; i < n; ++i)
      if (strcmp(fields[i], az_names[c]) == 0) cols->index[c] = i;
    if (cols->index[c] < 0)
      return line_fail(e, "header lacks column '%s' (expected TIMESTAMP,ContextTokens,GeneratedTokens)", az_names[c]);
    if (cols->index[c] + 1 > cols->n_needed) cols->n_needed = cols->index[c] + 1;
  }
  return true;
}

static bool parse_count(const char *text, int64_t *out) {
  if (!isdigit((unsigned char)text[0])) return false;
  char *end = NULL;
  errno = 0;
  const long long v = strtoll(text, &end, 10);
  if (errno == ERANGE || *end != '\0') return false;
  *out = v;
  return true;
}

/* Exactly `width` digits at *p, advancing it. */
static bool take_digits(const char **p, int width, int64_t *out) {
  int64_t v = 0;
  for (int i = 0; i < width; ++i) {
    if (!isdigit((unsigned char)(*p)[i])) return false;
    v = 10 * v + ((*p)[i] - '0');
  }
  *p += width;
  *out = v;
  return true;
}

static bool take_char(const char **p, char c) {
  if (**p != c) return false;
  (*p)++;
  return true;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (civil calendar arithmetic
 * over 400-year eras, so any year works without tables). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int64_t days_in_month(int64_t y, int64_t m) {
  static const int8_t days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

/* "YYYY-MM-DD HH:MM:SS[.fraction]" (or a 'T' separator) to 100 ns ticks since 1970;
 * fraction digits beyond the 7th are dropped. */
static bool parse_datetime(const char *text, int64_t *ticks) {
  const char *p = text;
  int64_t y, mo, d, h, mi, s;
  if (!take_digits(&p, 4, &y) || !take_char(&p, '-') || !take_digits(&p, 2, &mo) || !take_char(&p, '-') ||
      !take_digits(&p, 2, &d))
    return false;
  if (!take_char(&p, ' ') && !take_char(&p, 'T')) return false;
  if (!take_digits(&p, 2, &h) || !take_char(&p, ':') || !take_digits(&p, 2, &mi) || !take_char(&p, ':') ||
      !take_digits(&p, 2, &s))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60) return false;
  int64_t frac = 0;
  if (take_char(&p, '.')) {
    if (!isdigit((unsigned char)*p)) return false;
    int64_t scale = TICKS_PER_S;
    for (; isdigit((unsigned char)*p); ++p)
      if (scale > 1) scale /= 10, frac += scale * (*p - '0');
  }
  if (*p != '\0') return false;
  *ticks = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 * TICKS_PER_S + s * TICKS_PER_S + frac;
  return true;
}

static bool azure_row(char *line, const azure_columns *cols, trace_builder *b, line_error *e) {
  char *fields[AZ_MAX_FIELDS];
  const int n = split_csv(line, fields, AZ_MAX_FIELDS);
  if (n < cols->n_needed) {
    int missing = 0; /* the first column past the line's end */
    for (int c = 0; c < AZ_N_COLUMNS; ++c)
      if (cols->index[c] >= n && (cols->index[missing] < n || cols->index[c] < cols->index[missing])) missing = c;
    return line_fail(e, "truncated line: %d of %d fields (missing %s)", n, cols->n_needed, az_names[missing]);
  }
  int64_t ticks = 0, context = 0, generated = 0;
  const char *ts = fields[cols->index[AZ_TIMESTAMP]];
  if (!parse_datetime(ts, &ticks))
    return line_fail(e, "bad TIMESTAMP '%.60s' (expected YYYY-MM-DD HH:MM:SS.fffffff)", ts);
  const char *ctx = fields[cols->index[AZ_CONTEXT]], *gen = fields[cols->index[AZ_GENERATED]];
  if (!parse_count(ctx, &context))
    return line_fail(e, "bad ContextTokens '%.60s' (expected a non-negative integer)", ctx);
  if (!parse_count(gen, &generated))
    return line_fail(e, "bad GeneratedTokens '%.60s' (expected a non-negative integer)", gen);
  up_trace_row *row = builder_add_row(b, ticks);
  row->input_len = context;
  row->output_len = generated;
  return true;
}

/* ---- Mooncake JSONL ----------------------------------------------------------- */

/* An integral JSON number in [0, 2^53]. */
static bool json_count(const cJSON *item, int64_t *out) {
  if (!cJSON_IsNumber(item)) return false;
  const double v = item->valuedouble;
  if (!(v >= 0.0 && v <= 9007199254740992.0) || v != floor(v)) return false;
  *out = (int64_t)v;
  return true;
}

static bool mooncake_fields(const cJSON *obj, trace_builder *b, line_error *e) {
  static const char *const required[] = {"timestamp", "input_length", "output_length"};
  for (size_t i = 0; i < sizeof required / sizeof required[0]; ++i)
    if (!cJSON_GetObjectItemCaseSensitive(obj, required[i])) return line_fail(e, "missing field '%s'", required[i]);
  const cJSON *ts = cJSON_GetObjectItemCaseSensitive(obj, "timestamp");
  /* 4e14 ms (12,000 years) keeps ticks, and any difference of two, inside int64. */
  if (!cJSON_IsNumber(ts) || !isfinite(ts->valuedouble) || fabs(ts->valuedouble) > 4e14)
    return line_fail(e, "bad 'timestamp' (expected a number of milliseconds)");
  int64_t input = 0, output = 0;
  if (!json_count(cJSON_GetObjectItemCaseSensitive(obj, "input_length"), &input))
    return line_fail(e, "bad 'input_length' (expected a non-negative integer)");
  if (!json_count(cJSON_GetObjectItemCaseSensitive(obj, "output_length"), &output))
    return line_fail(e, "bad 'output_length' (expected a non-negative integer)");
  const cJSON *hashes = cJSON_GetObjectItemCaseSensitive(obj, "hash_ids");
  if (hashes && !cJSON_IsArray(hashes)) return line_fail(e, "bad 'hash_ids' (expected an array of integers)");
  const cJSON *h = NULL;
  cJSON_ArrayForEach(h, hashes) {
    int64_t id = 0;
    if (!json_count(h, &id)) return line_fail(e, "bad 'hash_ids' (expected an array of non-negative integers)");
  }
  up_trace_row *row = builder_add_row(b, (int64_t)llround(ts->valuedouble * (TICKS_PER_S / 1000)));
  row->input_len = input;
  row->output_len = output;
  cJSON_ArrayForEach(h, hashes) {
    int64_t id = 0;
    json_count(h, &id);
    builder_add_hash(b, id);
    row->n_hash_ids++;
  }
  return true;
}

/* One JSON object per line with distinct keys (jsonl_line.h says why). */
static bool mooncake_row(const char *line, size_t len, trace_builder *b, line_error *e) {
  cJSON *obj = up_jsonl_object(line, len, e->text, sizeof e->text);
  if (!obj) return false;
  const bool ok = mooncake_fields(obj, b, e);
  cJSON_Delete(obj);
  return ok;
}

/* ---- the file -------------------------------------------------------------------- */

typedef struct row_order {
  int64_t ticks;
  int32_t index;
} row_order;

static int compare_row_order(const void *a, const void *b) {
  const row_order *x = a, *y = b;
  if (x->ticks != y->ticks) return x->ticks < y->ticks ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

/* Sort rows by time (stable) and count arrivals from the earliest. */
static void finish_rows(trace_builder *b) {
  up_trace *t = b->trace;
  row_order *order = up_malloc_or_die(sizeof *order * (size_t)t->n_rows, "trace order");
  for (int32_t i = 0; i < t->n_rows; ++i) order[i] = (row_order){b->ticks[i], i};
  qsort(order, (size_t)t->n_rows, sizeof *order, compare_row_order);
  up_trace_row *sorted = up_malloc_or_die(sizeof *sorted * (size_t)t->n_rows, "sorted trace rows");
  for (int32_t i = 0; i < t->n_rows; ++i) {
    sorted[i] = t->rows[order[i].index];
    sorted[i].arrival_s = (double)(order[i].ticks - order[0].ticks) / (double)TICKS_PER_S;
  }
  free(t->rows);
  t->rows = sorted;
  free(order);
  /* The longest wait between consecutive arrivals, for up_trace_long_gap. */
  for (int32_t i = 1; i < t->n_rows; ++i) {
    const double gap = t->rows[i].arrival_s - t->rows[i - 1].arrival_s;
    if (gap > t->longest_gap_s) {
      t->longest_gap_s = gap;
      t->longest_gap_line = t->rows[i].line;
      t->longest_gap_previous_line = t->rows[i - 1].line;
    }
  }
}

static bool is_blank(const char *s) {
  for (; *s; ++s)
    if (!isspace((unsigned char)*s)) return false;
  return true;
}

/* A line that cannot hold a row whatever the format: too long, or with a NUL byte. */
static bool line_readable(up_line_status status, const char *line, size_t len, line_error *e) {
  if (status == UP_LINE_TOO_LONG)
    return line_fail(e, "line longer than %d bytes (not a trace line)", UP_TRACE_MAX_LINE_BYTES);
  if (memchr(line, '\0', len)) return line_fail(e, "contains a NUL byte (not a text line)");
  return true;
}

up_trace *up_trace_read(const char *path, up_trace_format format, bool lenient, char *err, size_t err_size) {
  FILE *f = up_open_regular_file(path, "trace", err, err_size);
  if (!f) return NULL;
  up_trace *t = up_calloc_or_die(1, sizeof *t, "trace");
  trace_builder b = {.trace = t};
  azure_columns cols = {.index = {0, 1, 2}, .n_needed = 3};
  bool seen_content = false, ok = true;
  char *buf = NULL;
  size_t buf_cap = 0;
  size_t len = 0;
  up_line_status status;
  int64_t line_no = 0;
  while (ok && (status = up_read_bounded_line(f, &buf, &buf_cap, UP_TRACE_MAX_LINE_BYTES, &len)) != UP_LINE_END_OF_FILE) {
    b.line = ++line_no;
    char *line = buf;
    /* A UTF-8 byte order mark (spreadsheet exports write one) is no part of the header. */
    if (line_no == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3, len -= 3;
    while (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
    line_error e = {{0}};
    bool row_ok;
    if (!line_readable(status, line, len, &e)) {
      row_ok = false;
    } else {
      if (is_blank(line)) continue;
      if (!seen_content) {
        seen_content = true;
        const char *first = line + strspn(line, " \t");
        if (format == UP_TRACE_FORMAT_AUTO) format = *first == '{' ? UP_TRACE_FORMAT_MOONCAKE : UP_TRACE_FORMAT_AZURE;
        t->format = format;
        /* An Azure file opens with its header; a first line that starts like a datetime has none. */
        if (format == UP_TRACE_FORMAT_AZURE && !isdigit((unsigned char)*first)) {
          if (!azure_header(line, &cols, &e)) {
            snprintf(err, err_size, "trace %s:%lld: %s", path, (long long)line_no, e.text);
            ok = false;
          }
          continue;
        }
      }
      row_ok = format == UP_TRACE_FORMAT_MOONCAKE ? mooncake_row(line, len, &b, &e) : azure_row(line, &cols, &b, &e);
    }
    if (row_ok) continue;
    if (lenient) {
      t->lines_skipped++;
    } else {
      snprintf(err, err_size, "trace %s:%lld: %s", path, (long long)line_no, e.text);
      ok = false;
    }
  }
  const bool read_error = ferror(f);
  free(buf);
  fclose(f);
  if (ok && read_error) {
    snprintf(err, err_size, "trace %s: read error after line %lld", path, (long long)line_no);
    ok = false;
  }
  if (ok && t->n_rows == 0) {
    if (!seen_content && t->lines_skipped == 0) snprintf(err, err_size, "trace %s: empty file", path);
    else if (t->lines_skipped > 0)
      snprintf(err, err_size, "trace %s: no valid request rows (%lld bad lines skipped)", path,
               (long long)t->lines_skipped);
    else snprintf(err, err_size, "trace %s: header only, no request rows", path);
    ok = false;
  }
  if (!ok) {
    free(b.ticks);
    up_trace_free(t);
    return NULL;
  }
  finish_rows(&b);
  free(b.ticks);
  return t;
}

bool up_trace_long_gap(const up_trace *trace, const char *path, char *msg, size_t msg_size) {
  if (!(trace->longest_gap_s > UP_TRACE_LONG_GAP_S)) return false;
  snprintf(msg, msg_size,
           "trace %s:%lld arrives %.1f days after the row before it (line %lld): replaying it waits that long "
           "(--trace-window or --trace-limit can leave it out)",
           path, (long long)trace->longest_gap_line, trace->longest_gap_s / 86400.0,
           (long long)trace->longest_gap_previous_line);
  return true;
}

void up_trace_free(up_trace *trace) {
  if (!trace) return;
  free(trace->rows);
  free(trace->hash_ids);
  free(trace);
}
