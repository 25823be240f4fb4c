/* eval_record.h — what the fidelity evaluation (--eval) stores: one row per sample and
 * method (its answer, score, agreement with dense at the answer position and at the
 * first content token, the tokens it kept, whether its needles survived the drops),
 * and one summary row per method, context and task ("all" for every task of the
 * context). Plain structs, so ranks can send them as bytes and the HDF5 tables map
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
  /* At dense's first answer token that carries content (fidelity_metrics.h): */
  int32_t content_step;        /* its step in dense's answer; -1 when dense's answer has none */
  int32_t content_token;       /* this method's token there; -1 when its answer ended before */
  int32_t dense_content_token; /* dense's token there; -1 when content_step is -1 */
  int32_t top1_content_agrees; /* 1: same tokens up to and at the step; 0: not; -1: no content step */
  double kl_content;           /* KL(dense || method) there, nats; NaN when the answers differ before it */
  int32_t same_answer;         /* 1 when the generated tokens are dense's, stop token included */
  /* The needles the answer depends on (launcher/eval/needle_spans.h): */
  int32_t needle_tokens;         /* their prompt tokens; 0 when unknown (-1 below) */
  int32_t needle_drops_survived; /* leading drop layers after which every one of those tokens was still
                                  * there (drops nest); -1 when the sample has no such needle */
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
  double top1_content_agreement; /* share, of samples whose dense answer has content, agreeing there */
  double kl_content_mean;        /* mean kl_content over samples where it is defined; NaN when none */
  int32_t n_kl_content;          /* those samples */
  double same_answer;            /* share of answers identical to dense's */
  char needle_survival[128];     /* per drop layer, share of samples whose answer needles survived it,
                                  * "1.000,0.750,..."; empty when no sample has needles or no drop layer */
  double needle_survival_all;    /* share whose answer needles survived every drop layer; NaN when none */
  int32_t n_needle_samples;      /* samples with known needle spans */
} up_eval_summary;

#endif
