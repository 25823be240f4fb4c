/* request.h — one inference request as it moves through the engine: what the
 * workload asked for, its state in the scheduler, and the timestamps the records are
 * built from. Workloads fill the spec part; the scheduler and engine fill the rest. */
#ifndef UP_REQUEST_H
#define UP_REQUEST_H

#include <stdint.h>

typedef enum up_request_status {
  UP_REQUEST_WAITING = 0,
  UP_REQUEST_RUNNING = 1,
  UP_REQUEST_FINISHED = 2, /* produced all its output tokens */
  UP_REQUEST_ERROR = 3,    /* could never run (too long for the model or the cache), or its
                            * activations turned NaN or inf while running; see error */
} up_request_status;

const char *up_request_status_name(up_request_status status);

typedef struct up_request {
  /* --- spec, from the workload --- */
  int64_t id;
  int32_t prompt_len;
  int32_t output_len;     /* tokens to generate, >= 1 (the first comes from prefill) */
  int32_t *prompt;        /* prompt_len token ids, owned by the request */
  double arrival_s;       /* when the request reached the engine (engine clock) */

  /* --- state, from the scheduler / engine --- */
  up_request_status status;
  int32_t slot;           /* KV cache slot while running, -1 otherwise */
  int32_t n_generated;    /* output tokens produced so far */
  int32_t last_token;     /* the most recent output token (the next decode input) */
  int32_t first_token;    /* the first output token (kept for cross-run checks) */
  int32_t kept_len;       /* prompt tokens still present after the last drop layer */
  int32_t prefilled;      /* prompt tokens already through the forward pass (a chunked prefill's progress) */
  int32_t prefill_steps;  /* steps that carried some of its prompt */
  int32_t *kept_per_layer;/* [n_layers] prompt tokens entering each layer, owned */
  double admitted_s;
  double first_token_s;
  double finish_s;
  double *token_times_s;  /* [output_len] time each output token was produced, owned */
  /* KV footprint once the prefill is cached (0 until then), set by the scheduler:
   * entries stored over all layers, and pool blocks held over all layers after the
   * reservation was trimmed to them plus the decode tokens still to come. */
  int64_t kv_entries;
  int64_t kv_blocks;
  char error[160];
} up_request;

/* Allocate the owned arrays for a model of n_layers layers; prompt is filled by the caller. */
void up_request_init(up_request *req, int64_t id, int32_t prompt_len, int32_t output_len, int32_t n_layers,
                     double arrival_s);
void up_request_free(up_request *req);
/* Mark the request failed with a message (status ERROR, finish time now). */
void up_request_fail(up_request *req, double now_s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
