/* trace.h — reading LLM-serving request traces: the Azure LLM inference CSV
 * (TIMESTAMP,ContextTokens,GeneratedTokens) and Mooncake JSONL (timestamp in ms,
 * input_length, output_length, hash_ids). Any file in these formats is accepted; rows
 * are sorted by time and arrivals counted from the earliest. Errors name the file and
 * the 1-based line; in lenient mode a bad line is skipped and counted instead. */
#ifndef UP_TRACE_H
#define UP_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum up_trace_format {
  UP_TRACE_FORMAT_AUTO = 0, /* from the content: '{' starts Mooncake JSONL, anything else Azure CSV */
  UP_TRACE_FORMAT_AZURE = 1,
  UP_TRACE_FORMAT_MOONCAKE = 2,
} up_trace_format;

const char *up_trace_format_name(up_trace_format format);

typedef struct up_trace_row {
  double arrival_s;   /* seconds since the earliest row */
  int64_t input_len;  /* as in the file (fitting to a model happens at replay) */
  int64_t output_len;
  int64_t hash_first; /* index of the row's first hash id in up_trace.hash_ids */
  int32_t n_hash_ids; /* Mooncake prefix blocks of UP_TRACE_HASH_BLOCK tokens; 0 for Azure */
  int64_t line;       /* 1-based line in the file */
} up_trace_row;

/* Tokens one Mooncake hash id stands for. */
#define UP_TRACE_HASH_BLOCK 512

typedef struct up_trace {
  up_trace_format format;
  int32_t n_rows;
  up_trace_row *rows; /* arrival order (stable for equal times) */
  int64_t *hash_ids;
  int64_t n_hash_ids;
  int64_t lines_skipped; /* bad lines skipped in lenient mode */
} up_trace;

/* Read a whole trace. Returns NULL with a message "FILE:LINE: what" (or "FILE: what")
 * in err when the file cannot be read, has no request rows, or (unless lenient) has a
 * bad line. Free with up_trace_free. */
up_trace *up_trace_read(const char *path, up_trace_format format, bool lenient, char *err, size_t err_size);

void up_trace_free(up_trace *trace);

#endif
