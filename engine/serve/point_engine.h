/* point_engine.h — runs one sweep point on one rank: a workload feeds requests into the
 * scheduler, each planned step goes through the forward pass, and every request and
 * step is recorded with engine-side monotonic timestamps. */
#ifndef UP_POINT_ENGINE_H
#define UP_POINT_ENGINE_H

#include <stdint.h>

#include "engine/methods/method.h"
#include "engine/model/model.h"
#include "engine/serve/records.h"
#include "engine/serve/request_source.h"

typedef struct up_engine_params {
  int32_t max_seqs;          /* sequences per step */
  int64_t max_batch_tokens;  /* tokens per step, 0 = unlimited */
  int32_t kv_block_tokens;   /* entries per KV block */
  int64_t kv_blocks;         /* blocks in the pool */
  int64_t workspace_tokens;  /* activation rows the workspace holds (>= largest step) */
  int64_t max_seq_entries;   /* longest prompt + output a request may have (sizes block tables) */
  int32_t prefill_chunk;     /* prompt tokens a prefilling request puts in one step; 0 = whole prompt
                              * (up_prefill_chunk_for gives what a method may use) */
  int32_t rank;              /* stamped into records */
} up_engine_params;

typedef struct up_point_result {
  int32_t n_layers;
  int32_t n_requests;
  up_request_record *requests;   /* ordered by id */
  int32_t *request_layer_tokens; /* [n_requests][n_layers] prompt tokens entering each layer */
  /* Ragged output-token times (engine clock, s) for inter-token latencies: request i's
   * are token_times[token_offsets[i] .. token_offsets[i + 1]], one per output token. */
  int64_t *token_offsets;        /* [n_requests + 1], token_offsets[0] = 0; NULL while n_requests is 0 */
  double *token_times;           /* [token_offsets[n_requests]] */
  int32_t n_steps;
  up_step_record *steps;
  int64_t *step_layer_tokens;    /* [n_steps][n_layers] rows entering each layer */
  up_attn_work *step_layer_attn; /* [n_steps][n_layers] attention work at each layer (method.h) */
  double wall_s;                 /* point duration on this rank */
  int64_t kv_block_bytes;        /* bytes of one block, K and V, one layer */
  int64_t kv_blocks_total;
  int64_t kv_blocks_peak;        /* most blocks in use at once */
  int32_t max_resident;          /* most requests holding a KV slot at once (rank 0 after a
                                  * gather: each rank's most, summed, as kv_blocks_peak) */
} up_point_result;

void up_point_result_free(up_point_result *res);

/* Order requests by id, keeping each one's per-layer row and token times beside it
 * (records arrive in finish order). */
void up_point_result_sort_requests(up_point_result *res);

/* The prefill chunk a point of method m on an n_layers model runs with when the user
 * asks for `requested` (--prefill-chunk; 0 = off): a method that drops tokens or brings
 * its own attention decides from the whole prompt (UniPrefill's drop needs the prompt's
 * last queries), so it keeps whole-prompt prefill (0); dense attention takes the chunk,
 * as vLLM and Sarathi-Serve schedule prefills. */
int32_t up_prefill_chunk_for(const up_method *m, int32_t n_layers, int32_t requested);

/* Run the workload to completion. Fails (UP_FATAL) only on internal errors; requests
 * that cannot run end with an error status in their record. */
void up_engine_run_point(const up_model *model, const up_engine_params *params, const up_method *method,
                         up_workload *workload, up_point_result *out);

/* The KV cache's shape, which turns a request's entry and block counts into bytes. */
typedef struct up_kv_geometry {
  const up_model_config *cfg; /* per-layer KV entries and windows: engine/model/layer_cost.h */
  up_dtype dtype;
  int32_t block_tokens;
  int64_t entry_bytes; /* one token at one layer, K and V (up_model_kv_entry_bytes) */
} up_kv_geometry;

/* Convert a finished request into its record. */
void up_request_to_record(const up_request *req, int32_t rank, const up_kv_geometry *kv, up_request_record *rec);

#endif
