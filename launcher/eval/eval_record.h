/* eval_record.h — what the fidelity evaluation (--eval) stores: one row per sample and
 * method (its answer, score, agreement with dense at the answer position, the tokens
 * it kept), and one summary row per method, context and task ("all" for every task of
 * the context). Plain structs, so ranks can send them as bytes and the HDF5 tables map
 * their members one to one. */
#ifndef UP_EVAL_RECORD_H
#define UP_EVAL_RECORD_H

#include <stdint.h>

#define UP_EVAL_TEXT_MAX 192
#define UP_EVAL_SOURCE_MAX 128
#define UP_EVAL_TASK_MAX 48 /* a task name, or an --eval-file's name or dataset, cut to fit */

typedef struct up_eval_record {
  char method[64];
  char task[UP_EVAL_TASK_MAX];
  int32_t ctx;               /* the context budget: prompt plus --eval-max-new answer tokens; 0: an
                              * --eval-file sample run at its own length (no --ctx) */
  int32_t sample;            /* index within (task, ctx) */
  int32_t prompt_tokens;
  float depth;               /* of the asked-for needle, in [0, 1]; NaN for --eval-file samples */
  float score;               /* 1 when every expected answer is in the output */
  float partial;             /* share of expected answers found */
  int32_t first_token;       /* greedy token at the answer position */
  int32_t dense_first_token; /* dense prefill's, for the same prompt */
  int32_t top1_agrees;       /* first_token == dense_first_token */
  double kl_vs_dense;        /* KL(dense || method) at the answer position, nats */
  float kept_fraction;       /* prompt rows over all layers / (layers x prompt tokens) */
  int32_t generated_tokens;
  int32_t stopped;           /* ended by a stop token rather than --eval-max-new */
  double prefill_decode_ms;  /* wall time of the sample's batch, divided by its size */
  char expected[UP_EVAL_TEXT_MAX];  /* answers joined by '|' (cut to fit) */
  char generated[UP_EVAL_TEXT_MAX]; /* decoded output without the stop token (cut to fit) */
  /* Where an --eval-file sample came from; "" and 0 for generated tasks. */
  char source_file[UP_EVAL_SOURCE_MAX]; /* the path as given (cut to fit) */
  int32_t source_line;                  /* 1-based line in it */
  char scoring[16];          /* how score was computed: "string_match" (every answer contained) or "exact" */
  float any_found;           /* 1 when at least one expected answer is in the output */
} up_eval_record;

typedef struct up_eval_summary {
  char method[64];
  char task[UP_EVAL_TASK_MAX]; /* a task name or "all" */
  int32_t ctx;
  int32_t n_samples;
  double accuracy;           /* mean score */
  double partial;            /* mean partial credit */
  double top1_agreement;     /* share of samples whose answer-position top-1 equals dense's */
  double kl_mean;            /* mean KL(dense || method) */
  double kl_max;
  double kept_fraction;      /* mean over samples */
  char kept_after_drops[128]; /* mean rows after each drop layer / prompt tokens, "0.71,0.59,..." */
  double prompt_tokens_mean;
} up_eval_summary;

#endif
