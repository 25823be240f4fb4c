/* request.c — allocation, release and failure marking of up_request. */
#include "engine/serve/request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

const char *up_request_status_name(up_request_status status) {
  switch (status) {
    case UP_REQUEST_WAITING: return "waiting";
    case UP_REQUEST_RUNNING: return "running";
    case UP_REQUEST_FINISHED: return "finished";
    case UP_REQUEST_ERROR: return "error";
  }
  return "unknown";
}

void up_request_init(up_request *req, int64_t id, int32_t prompt_len, int32_t output_len, int32_t n_layers,
                     double arrival_s) {
  memset(req, 0, sizeof *req);
  req->id = id;
  req->prompt_len = prompt_len;
  req->output_len = output_len;
  req->prompt = up_calloc_or_die((size_t)(prompt_len > 0 ? prompt_len : 1), sizeof(int32_t), "request prompt");
  req->arrival_s = arrival_s;
  req->status = UP_REQUEST_WAITING;
  req->slot = -1;
  req->last_token = -1;
  req->first_token = -1;
  req->kept_len = prompt_len;
  req->kept_per_layer = up_calloc_or_die((size_t)(n_layers > 0 ? n_layers : 1), sizeof(int32_t), "request layer counts");
  for (int32_t l = 0; l < n_layers; ++l) req->kept_per_layer[l] = prompt_len;
  req->token_times_s = up_calloc_or_die((size_t)(output_len > 0 ? output_len : 1), sizeof(double), "request token times");
  req->admitted_s = req->first_token_s = req->finish_s = NAN;
}

void up_request_free(up_request *req) {
  if (!req) return;
  free(req->prompt);
  free(req->kept_per_layer);
  free(req->token_times_s);
  req->prompt = NULL;
  req->kept_per_layer = NULL;
  req->token_times_s = NULL;
}

void up_request_fail(up_request *req, double now_s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(req->error, sizeof req->error, fmt, ap);
  va_end(ap);
  req->status = UP_REQUEST_ERROR;
  req->finish_s = now_s;
}
