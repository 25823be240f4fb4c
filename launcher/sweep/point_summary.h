/* point_summary.h — one row per sweep point: the point's parameters and the metrics
 * the terminal table and the HDF5 summary table show, computed on rank 0 from the
 * gathered request records and output-token times (serving_metrics.h defines them). */
#ifndef UP_POINT_SUMMARY_H
#define UP_POINT_SUMMARY_H

#include <stdint.h>

#include "engine/model/model_config.h"
#include "engine/serve/records.h"
#include "launcher/sweep/serving_metrics.h"

/* Latency statistics are over successful requests only and NaN when there are none;
 * failures are counted in n_failed beside them. Field names are the HDF5 field names. */
typedef struct up_point_summary {
  int32_t point_index;
  char method[64];           /* method label, e.g. "uniprefill:keep=0.3" */
  int32_t ctx;               /* prompt tokens per request */
  int32_t concurrency;
  int32_t output_len;
  int32_t n_requests;
  int32_t n_ok;
  int32_t n_failed;
  double ttft_mean_ms;
  double ttft_p50_ms;
  double ttft_p99_ms;
  double prefill_tokens_per_s; /* prompt tokens of successful requests / (last first token - first arrival) */
  double model_tflops_per_s;   /* dense prefill FLOPs of those prompts (up_model_prefill_flops) / the same span */
  double kept_fraction;      /* sum kept_len / sum prompt_len over successful requests */
  double speedup_vs_dense;   /* dense mean TTFT / this mean TTFT at the same ctx and concurrency; NaN when no dense */
  double predicted_speedup;  /* dense FLOPs / the FLOPs of the tokens each layer saw (launcher/sweep/speed_model.h) */
  double wall_s;             /* longest rank's point duration */
  /* --- schema 2: the vLLM / MLPerf serving metrics --- */
  double ttft_std_ms;
  double ttft_p90_ms;
  double tpot_mean_ms;       /* over requests with more than one output token */
  double tpot_p50_ms;
  double tpot_std_ms;
  double tpot_p90_ms;
  double tpot_p99_ms;
  double itl_mean_ms;        /* pooled inter-token gaps */
  double itl_p50_ms;
  double itl_std_ms;
  double itl_p90_ms;
  double itl_p99_ms;
  double e2e_mean_ms;
  double e2e_p50_ms;
  double e2e_std_ms;
  double e2e_p90_ms;
  double e2e_p99_ms;
  double duration_s;         /* last finish - first arrival */
  double requests_per_s;     /* successful requests / duration */
  double input_tokens_per_s;
  double output_tokens_per_s;
  double total_tokens_per_s;
  double slo_ttft_ms;        /* the SLO goodput was measured against; NaN: that part not set */
  double slo_tpot_ms;
  int32_t n_good;            /* successful requests meeting every set SLO part */
  double goodput_requests_per_s; /* n_good / duration; NaN when no SLO part is set */
  /* --- KV cache footprint after prefill, over successful requests (records.h) --- */
  double kv_bytes_per_request;       /* mean kv_bytes; NaN when n_ok is 0 */
  double kv_held_bytes_per_request;  /* mean kv_held_bytes (pool blocks, block-rounded) */
  double kv_dense_bytes_per_request; /* mean kv_dense_bytes (dense prefill of the same prompts) */
  double kv_fraction_of_dense;       /* sum kv_bytes / sum kv_dense_bytes (1 for dense) */
  int32_t max_resident;              /* most requests holding KV at once (up_point_result; set by the sweep) */
  /* --- repetitions: a closed-loop point runs its requests in several rounds (--repetitions).
   * The means and rates above are then the mean over rounds of each round's value, the
   * counts, percentiles and request-level std are pooled over every request of every
   * round, and wall_s is the rounds' sum. Each *_round_std is the sample standard
   * deviation (n - 1) of that per-round value; NaN with fewer than two rounds that have one. */
  int32_t repetitions;               /* rounds the point ran (1 for open loop and trace) */
  int32_t percentiles_few_requests;  /* 1 when the pooled percentiles rest on fewer than
                                      * UP_PERCENTILE_MIN_REQUESTS successful requests */
  double ttft_mean_round_std_ms;
  double tpot_mean_round_std_ms;
  double itl_mean_round_std_ms;
  double e2e_mean_round_std_ms;
  double prefill_tokens_per_s_round_std;
  double model_tflops_per_s_round_std;
  double duration_round_std_s;
  double requests_per_s_round_std;
  double input_tokens_per_s_round_std;
  double output_tokens_per_s_round_std;
  double total_tokens_per_s_round_std;
  double goodput_requests_per_s_round_std;
  /* --- tensor parallelism (--tp; ../shared/PARALLEL.md 4.4, launcher/sweep/tp_scaling.h) --- */
  int32_t tp;                   /* ranks per tensor-parallel group the point ran on */
  int32_t dp;                   /* data-parallel replicas (groups) that served its requests */
  double tp_speedup;            /* TP = 1 mean TTFT of the same shape / this one; NaN without one */
  double tp_efficiency;         /* tp_speedup / tp */
  double tp_comm_model_ms;      /* modelled all-reduce time of a request's prefill at the probe's rate */
  double tp_efficiency_model;   /* the no-overlap cost model's efficiency beside tp_efficiency */
  double tp_comm_ms;            /* measured time in the communicator's collectives over the point, summed
                                 * over the groups' leaders (tp_comm.h); 0 at tp 1 */
  double tp_comm_share;         /* tp_comm_ms / the point's busy time (its steps' summed durations) */
  /* --- the attention phase inside the forward: the FLOPs of the tiles the attention
   * kernels computed (4 q_dim a query-key pair, the speed model's count; a rank's share
   * under TP) over the steps' attention phase time, of the leader rank; NaN where the
   * backend has no phase breakdown. What `--kernels` measures alone, measured in the model. */
  double attention_tflops;
  /* --- prefill policy: set only when --prefill-chunk asked for chunks; then "whole" for a
   * point whose method keeps whole-prompt prefill (one that drops tokens) and "chunk N"
   * for a chunked one. Not in the run file's /summary (the point attribute prefill_chunk
   * holds it). */
  char prefill[24];
} up_point_summary;

/* Below this many successful requests a p50 / p99 is flagged as resting on few samples
 * (a p99 of 19 values is the largest one). */
#define UP_PERCENTILE_MIN_REQUESTS 20

/* Fill everything but the parameters, speedup_vs_dense, predicted_speedup and
 * max_resident (which need the whole sweep or the point result) from the point's records and
 * token times (both token arrays may be NULL: no ITL). slo may be NULL (no goodput). */
void up_point_summary_compute(up_point_summary *sum, const up_request_record *records, int32_t n,
                              const double *token_times, const int64_t *token_offsets, const up_slo *slo,
                              const up_model_config *model, double wall_s);

/* Turn a row computed over every round's records pooled (up_point_summary_compute)
 * into the point's row: each mean and rate becomes the mean of the rounds' values
 * (rounds[r], each computed over round r's records alone) with its _round_std beside
 * it, wall_s the rounds' sum, plus repetitions and percentiles_few_requests. Rounds
 * whose value is NaN (no successful request) are left out of that value's mean. With
 * one round the row keeps every value it had. */
void up_point_summary_combine_rounds(up_point_summary *pooled, const up_point_summary *rounds, int32_t n_rounds);

/* Set speedup_vs_dense of every row from the dense row with the same ctx, concurrency,
 * output length and tp. */
void up_point_summary_fill_speedups(up_point_summary *rows, int32_t n_rows);

#endif
