/* records.h — the flat, fixed-size records a sweep point produces: one per request and
 * one per engine step, plus per-layer token counts beside them. Plain data, so ranks
 * can ship them to rank 0 as bytes and the HDF5 writer can map them to compound types. */
#ifndef UP_RECORDS_H
#define UP_RECORDS_H

#include <stdint.h>

#define UP_RECORD_ERROR_LEN 160

typedef struct up_request_record {
  int64_t id;
  int32_t rank;
  int32_t status;          /* up_request_status */
  int32_t prompt_len;
  int32_t kept_len;        /* prompt tokens left after the last drop layer */
  int32_t output_len;      /* output tokens produced */
  int32_t first_token;     /* first output token id, -1 when none */
  int32_t prefill_steps;   /* engine steps its prompt took: 1 whole-prompt, more when chunked; 0 never prefilled */
  double arrival_s;        /* engine clock, seconds from the point's start on that rank */
  double admitted_s;
  double first_token_s;
  double finish_s;
  double ttft_ms;          /* first token - arrival */
  double tpot_ms;          /* (finish - first token) / (output - 1); NaN when output <= 1 */
  double e2e_ms;           /* finish - arrival */
  /* KV cache footprint after the prefill (K and V, every layer); 0 for a request that
   * never ran, except kv_dense_bytes, which depends on the prompt only. */
  int64_t kv_bytes;        /* entries cached per layer (the tokens kept there) x bytes per entry */
  int64_t kv_held_bytes;   /* pool blocks held after the post-prefill trim x block bytes (block-rounded,
                            * with room for the decode tokens still to come) */
  int64_t kv_dense_bytes;  /* what dense prefill caches for the same prompt: prompt_len x layers x bytes per entry */
  char error[UP_RECORD_ERROR_LEN]; /* empty unless status is ERROR */
} up_request_record;

typedef struct up_step_record {
  int64_t index;
  int32_t rank;
  int32_t n_seqs;
  int64_t prefill_tokens;
  int64_t decode_tokens;
  double start_s;
  double end_s;
  /* Where the step's time went (ops.h up_phase): device time on a GPU, wall time on
   * the CPU; NaN when the backend has no breakdown. */
  double gemm_ms;
  double attention_ms;
  double selection_ms;
  double other_ms;
} up_step_record;

#endif
