/* workload_plan.h — which workload a run replays, built once before anything is
 * written: the closed loop (per point, in sweep.c), an open-loop schedule, or a trace
 * read, selected and fitted to the model. Gives each point its per-rank source, the
 * engine sizing the rank's share needs, and the description and fitting counts that
 * are stored with every point. Also chooses where prompts come from (--prompt-source,
 * by default text on a checkpoint with a tokenizer, random otherwise) and loads them. */
#ifndef UP_WORKLOAD_PLAN_H
#define UP_WORKLOAD_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model/model_config.h"
#include "launcher/cli.h"
#include "workloads/open_loop.h"
#include "workloads/prompt_source.h"
#include "workloads/trace_replay.h"

typedef enum up_workload_kind {
  UP_WORKLOAD_CLOSED_LOOP = 0,
  UP_WORKLOAD_OPEN_LOOP = 1,
  UP_WORKLOAD_TRACE = 2,
} up_workload_kind;

typedef struct up_workload_plan {
  up_workload_kind kind;
  char description[640];             /* e.g. "trace:AzureLLMInferenceTrace_conv.csv speedup=20 limit=200" */
  const up_timed_request *requests;  /* timed kinds: the whole schedule */
  int32_t n_requests;
  up_workload_stats stats;
  /* Every kind's prompts (the closed loop's too); prompts.spec is the run file's
   * prompt_source, prompt_note says more for the preamble. */
  up_prompt_source prompts;
  char prompt_note[1024];
  /* owned */
  up_timed_request *schedule;
  up_trace *trace;
  up_trace_replay *replay;
} up_workload_plan;

/* What one rank's share of a timed workload needs from the engine. */
typedef struct up_rank_sizing {
  int32_t n_requests;       /* requests this rank replays */
  int64_t max_seq_entries;  /* longest prompt + output */
  int64_t kv_blocks_per_layer; /* blocks of the max_seqs largest requests together */
  int64_t max_step_rows;    /* prompt tokens of the max_seqs longest prompts together */
  int32_t max_prompt_len;
} up_rank_sizing;

/* Build the plan from the options (reads and checks the trace, loads and tokenizes the
 * prompts). Returns 0, or -1 with a message naming the flag or file. Every rank builds
 * the same plan. */
int up_workload_plan_init(up_workload_plan *plan, const up_options *opt, const up_model_config *cfg, char *err,
                          size_t err_size);
void up_workload_plan_free(up_workload_plan *plan);

/* Timed kinds only. */
void up_workload_plan_rank_sizing(const up_workload_plan *plan, int32_t rank, int32_t world, int32_t max_seqs,
                                  int32_t kv_block_tokens, up_rank_sizing *sizing);
up_workload *up_workload_plan_source(const up_workload_plan *plan, int32_t rank, int32_t world,
                                     int32_t max_concurrency, int32_t n_layers);

#endif
