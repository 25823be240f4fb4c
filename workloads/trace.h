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
  /* The longest wait between consecutive arrivals and the lines of its two rows. */
  double longest_gap_s;
  int64_t longest_gap_line, longest_gap_previous_line;
} up_trace;

/* Longest line read: real rows take under 100 bytes (Azure) or a few KB (Mooncake hash
 * ids of a 128K-token prompt); anything longer is not a trace line, and the cap keeps a
 * file without newlines from filling memory. */
#define UP_TRACE_MAX_LINE_BYTES (1 << 20)

/* A wait between consecutive arrivals longer than this (one day) is worth a warning:
 * usually one mistyped timestamp, which would otherwise stall the replay for as long. */
#define UP_TRACE_LONG_GAP_S 86400.0

/* Read a whole trace. Returns NULL with a message "FILE:LINE: what" (or "FILE: what")
 * in err when the file is not a regular file or cannot be read, has no request rows, or
 * (unless lenient) has a bad line: malformed, longer than UP_TRACE_MAX_LINE_BYTES, with
 * a NUL byte, or (Mooncake) not exactly one JSON object with distinct keys. A UTF-8 byte
 * order mark before the first line is skipped. Free with up_trace_free. */
up_trace *up_trace_read(const char *path, up_trace_format format, bool lenient, char *err, size_t err_size);

/* A warning naming both lines and the wait when two consecutive arrivals lie more than
 * UP_TRACE_LONG_GAP_S apart; false (msg untouched) otherwise. */
bool up_trace_long_gap(const up_trace *trace, const char *path, char *msg, size_t msg_size);

void up_trace_free(up_trace *trace);

#endif
