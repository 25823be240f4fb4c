/* cli.h — command-line options of uniprefill-bench: parsing (comma lists and k/M
 * suffixes for sweep dimensions), validation that needs no model, and --help. Parsing
 * never touches the file system or MPI, so a bad command line leaves nothing behind. */
#ifndef UP_CLI_H
#define UP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/parse_number.h"
#include "engine/methods/method.h"
#include "launcher/kernels/kernel_record.h"
#include "launcher/sweep/serving_metrics.h"
#include "workloads/length_dist.h"
#include "workloads/prompt_source.h"
#include "workloads/trace.h"

#define UP_MAX_SWEEP 32
#define UP_PATH_MAX 1024
#define UP_KERNEL_MAX_REPEATS 1000
#define UP_EVAL_MAX_BATCH 256 /* --eval-batch: prompts per forward */
#define UP_MAX_REPETITIONS 1000      /* --repetitions */
#define UP_DEFAULT_REPETITIONS 5     /* closed-loop rounds per point without --repetitions */

/* JSONL: one JSON object per finished sweep point on its own line, streamed as points
 * finish, each carrying the run's identity (sweep only). */
typedef enum up_output_format {
  UP_FORMAT_MARKDOWN = 0,
  UP_FORMAT_CSV = 1,
  UP_FORMAT_JSON = 2,
  UP_FORMAT_JSONL = 3
} up_output_format;

typedef enum up_backend_choice { UP_BACKEND_AUTO = 0, UP_BACKEND_CPU = 1, UP_BACKEND_CUDA = 2 } up_backend_choice;

/* --attention-kernel: the CUDA backend's head_dim-128 prefill attention kernel
 * (kernels/cuda/attention/attention_prefill.cu lists them; docs/kernels/attention.md times them). */
typedef enum up_attention_kernel {
  UP_ATTN_KERNEL_AUTO = 0,         /* TMA on Hopper where the page size allows, else cp.async, else mma.sync */
  UP_ATTN_KERNEL_TMA = 1,          /* warp-specialised, TMA page copies, ping-pong consumers */
  UP_ATTN_KERNEL_WGMMA_CP_ASYNC = 2, /* wgmma, every thread copies with cp.async, any page size */
  UP_ATTN_KERNEL_MMA_SYNC = 3,     /* mma.sync (FlashAttention-2 structure), any GPU */
  UP_ATTN_KERNEL_COUNT = 4
} up_attention_kernel;
extern const char *const up_attention_kernel_names[UP_ATTN_KERNEL_COUNT];

/* --comm: the tensor-parallel groups' transport (engine/parallel/tp_comm.h). */
typedef enum up_transport_choice {
  UP_TRANSPORT_AUTO = 0, /* self for a group of one, mpi on the cpu backend, nccl on cuda */
  UP_TRANSPORT_SELF = 1,
  UP_TRANSPORT_MPI = 2,
  UP_TRANSPORT_NCCL = 3,
} up_transport_choice;

#define UP_MAX_TP 1024 /* --tp: ranks per tensor-parallel group at most */

typedef struct up_options {
  char model[UP_PATH_MAX];     /* preset name, .gguf file or Hugging Face directory; default: "tiny-llama"
                                  on cpu, "llama-3.1-8b" on cuda */
  bool model_given;
  int32_t layers;              /* 0: the preset's depth; else a reduced-depth variant */
  up_backend_choice backend;
  up_attention_kernel attention_kernel;
  int32_t n_ctx;
  int32_t ctx[UP_MAX_SWEEP];   /* prompt lengths, "1k" = 1024 */
  bool ctx_given;
  int32_t n_concurrency;
  int32_t concurrency[UP_MAX_SWEEP];
  bool concurrency_given;
  int32_t n_methods;
  up_method_spec methods[UP_MAX_SWEEP]; /* parsed after every other flag, so the defaults below apply */
  up_method_defaults method_defaults;   /* what each method's specs start from; alias flags
                                           (--uniprefill-*, --drop-layers) change them */
  int32_t requests;            /* per point; 0: equal to the concurrency (open loop: no count limit) */
  int32_t repetitions;         /* closed loop: rounds of each point's requests; 0: not given (UP_DEFAULT_REPETITIONS
                                  in closed loop, 1 in open loop and trace replay: up_options_repetitions) */
  int32_t output_len;
  /* Open loop (request_rate > 0) and trace replay (trace_path set); the concurrency
   * list is then the cap on requests in flight. */
  double request_rate;         /* requests/s; INFINITY: all at 0; 0: closed loop */
  double burstiness;           /* gamma shape of inter-arrival times, 1 = Poisson */
  double duration_s;           /* open loop: arrivals stop after this; 0: no limit */
  up_length_dist prompt_len;   /* open loop */
  up_length_dist output_len_dist;
  bool output_len_dist_given;  /* trace replay: replaces the trace's output lengths */
  char trace_path[UP_PATH_MAX];
  up_trace_format trace_format;
  double trace_speedup;
  double trace_window_start_s;
  double trace_window_s;       /* 0: no window */
  int32_t trace_limit;         /* 0: every row */
  bool trace_lenient;
  uint64_t seed;
  up_prompt_choice prompt_source; /* --prompt-source; UP_PROMPTS_DEFAULT: text on a checkpoint, random on a preset */
  int32_t warmup;              /* unrecorded requests before each point */
  int32_t max_seqs;            /* 0: the point's concurrency */
  int64_t max_batch_tokens;    /* 0: unlimited */
  int32_t kv_block;            /* KV entries per block */
  int64_t kv_cache_mib;        /* 0: size the cache for the point's need */
  float gpu_mem_fraction;      /* > 0: KV cache = this share of free backend memory after weights and workspace */
  int64_t mem_limit_mib;       /* > 0: backend memory the run may use per rank (weights included); 0: what is free */
  int32_t threads;             /* CPU threads per rank, 0: cores / local ranks */
  int32_t prefill_chunk;       /* --prefill-chunk: prompt tokens per step for dense attention; 0: whole prompt */
  double step_timeout_s;       /* --step-timeout: most seconds a rank waits for the others; 0: forever */
  int32_t n_tp;                /* --tp: tensor-parallel group sizes, a sweep dimension (default 1) */
  int32_t tp[UP_MAX_SWEEP];
  up_transport_choice transport; /* --comm */
  bool tp_cross_node;          /* --tp-cross-node: a group may span hosts */
  double collective_timeout_s; /* --collective-timeout: 0 waits forever */
  char output_path[UP_PATH_MAX]; /* "" : results/runs/<UTC timestamp>.h5 */
  up_output_format format;
  up_slo slo;                  /* --slo for goodput; NaN parts are not set */
  bool quiet;
  /* --kernels: time the engine's kernels at the model's shapes instead of the sweep;
   * --ctx then lists the attention and selection lengths. */
  bool kernels;
  uint32_t kernel_kinds;       /* bit (1 << up_kernel_kind) per kind to time; default all */
  int32_t kernel_tokens;       /* GEMM rows; 0: the backend's default */
  int32_t n_kernel_batches;    /* decode and selection batches, NxL; 0: the backend's default */
  int32_t kernel_batch_seqs[UP_MAX_SWEEP];
  int32_t kernel_batch_len[UP_MAX_SWEEP];
  int32_t kernel_warmup;       /* untimed calls before each case */
  int32_t kernel_repeats;      /* timed calls per case */
  /* --eval TASKS: the fidelity evaluation of each method on a trained checkpoint
   * (--model PATH.gguf) instead of the sweep; "" when not asked for. */
  char eval_tasks[256];
  int32_t eval_samples;        /* samples per task and context */
  int32_t eval_max_new;        /* greedy tokens generated per answer at most */
  int32_t eval_batch;          /* prompts per forward */
  char eval_corpus[UP_PATH_MAX]; /* haystack files, comma-separated; "": gnu-standards */
  char chat_template[16];      /* "": from the checkpoint; else chatml, llama3, llama2, gemma or plain */
  /* --eval-file FILES: JSONL samples evaluated like --eval's tasks (alone it selects the
   * evaluation); comma-separated, "" when not given. */
  char eval_files[UP_PATH_MAX];
  bool eval_lenient;           /* skip and count malformed eval-file lines */
} up_options;

typedef enum up_parse_status {
  UP_PARSE_OK = 0,
  UP_PARSE_HELP = 1,  /* --help or --version printed; exit 0 */
  UP_PARSE_ERROR = 2, /* message in err; exit 2 */
} up_parse_status;

/* Defaults for everything (the no-argument run). */
void up_options_default(up_options *opt);

/* Rounds per point: --repetitions, or its default for the workload (closed loop
 * UP_DEFAULT_REPETITIONS; open loop and trace replay are one pass by construction). */
int32_t up_options_repetitions(const up_options *opt);

/* Parse argv (argv[0] skipped). --help/--version print to `out`. */
up_parse_status up_options_parse(int argc, char **argv, up_options *opt, FILE *out, char *err, size_t err_size);

void up_options_print_help(FILE *out);

/* Sizes ("1k", "4096", "2M") are parsed by up_parse_size (core/parse_number.h). */
/* Parse a comma list of sizes into values (at most max); false with a message on error. */
bool up_parse_size_list(const char *text, int32_t *values, int32_t max, int32_t *count, char *err, size_t err_size);

#endif
