/* cli.c — the command line of uniprefill-bench: one table of flags drives both the
 * parser and --help, so a flag cannot exist without being documented. Validates
 * everything that needs no model (numbers, ranges, lists, duplicates); checks against
 * the model (ctx vs context length, drop layers vs depth) belong to main. Method specs
 * are parsed last so the alias flags of method options (--uniprefill-*, --drop-layers)
 * apply wherever they appear on the line; the methods layer interprets their values. */
#include "launcher/cli.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "workloads/open_loop.h"

#define UP_METHOD_TEXT_MAX UP_METHOD_LABEL_MAX
#define UP_NUMBER_TEXT_MAX 32
#define UP_DEFAULT_METHODS "dense,uniprefill,uniprefill:keep=0.3"
#define UP_KERNELS_RUN_NO_SWEEP "--kernels times kernels alone and runs no sweep"
#define UP_EVAL_RUNS_NO_SWEEP "--eval runs its own task prompts and no serving sweep"

typedef enum up_flag_id {
  UP_FLAG_MODEL,
  UP_FLAG_LAYERS,
  UP_FLAG_BACKEND,
  UP_FLAG_ATTENTION_KERNEL,
  UP_FLAG_CTX,
  UP_FLAG_CONCURRENCY,
  UP_FLAG_METHOD,
  UP_FLAG_REQUESTS,
  UP_FLAG_REPETITIONS,
  UP_FLAG_OUTPUT_LEN,
  UP_FLAG_MAX_CONCURRENCY,
  UP_FLAG_REQUEST_RATE,
  UP_FLAG_BURSTINESS,
  UP_FLAG_DURATION,
  UP_FLAG_PROMPT_LEN,
  UP_FLAG_OUTPUT_LEN_DIST,
  UP_FLAG_TRACE,
  UP_FLAG_TRACE_FORMAT,
  UP_FLAG_TRACE_SPEEDUP,
  UP_FLAG_TRACE_WINDOW,
  UP_FLAG_TRACE_LIMIT,
  UP_FLAG_TRACE_LENIENT,
  UP_FLAG_SEED,
  UP_FLAG_PROMPT_SOURCE,
  UP_FLAG_WARMUP,
  UP_FLAG_MAX_SEQS,
  UP_FLAG_MAX_BATCH_TOKENS,
  UP_FLAG_KV_BLOCK,
  UP_FLAG_KV_CACHE_MIB,
  UP_FLAG_GPU_MEM_FRACTION,
  UP_FLAG_MEM_LIMIT_MIB,
  UP_FLAG_THREADS,
  UP_FLAG_PREFILL_CHUNK,
  UP_FLAG_STEP_TIMEOUT,
  UP_FLAG_TP,
  UP_FLAG_COMM,
  UP_FLAG_TP_CROSS_NODE,
  UP_FLAG_COLLECTIVE_TIMEOUT,
  UP_FLAG_UNIPREFILL_P,
  UP_FLAG_UNIPREFILL_KEEP,
  UP_FLAG_UNIPREFILL_BLOCK,
  UP_FLAG_UNIPREFILL_SINK,
  UP_FLAG_UNIPREFILL_LAST_Q,
  UP_FLAG_DROP_LAYERS,
  UP_FLAG_OUTPUT,
  UP_FLAG_FORMAT,
  UP_FLAG_SLO,
  UP_FLAG_QUIET,
  UP_FLAG_KERNELS,
  UP_FLAG_KERNEL_CASES,
  UP_FLAG_KERNEL_TOKENS,
  UP_FLAG_KERNEL_BATCHES,
  UP_FLAG_KERNEL_WARMUP,
  UP_FLAG_KERNEL_REPEATS,
  UP_FLAG_EVAL,
  UP_FLAG_EVAL_SAMPLES,
  UP_FLAG_EVAL_MAX_NEW,
  UP_FLAG_EVAL_BATCH,
  UP_FLAG_EVAL_CORPUS,
  UP_FLAG_CHAT_TEMPLATE,
  UP_FLAG_EVAL_FILE,
  UP_FLAG_EVAL_LENIENT,
  UP_FLAG_HELP,
  UP_FLAG_VERSION,
  UP_FLAG_COUNT,
} up_flag_id;

typedef enum up_flag_group {
  UP_GROUP_MODEL,
  UP_GROUP_SWEEP,
  UP_GROUP_WORKLOAD,
  UP_GROUP_TIMED,
  UP_GROUP_ENGINE,
  UP_GROUP_PARALLEL,
  UP_GROUP_UNIPREFILL,
  UP_GROUP_OUTPUT,
  UP_GROUP_KERNELS,
  UP_GROUP_EVAL,
  UP_GROUP_COUNT,
} up_flag_group;

static const char *const up_group_titles[UP_GROUP_COUNT] = {
    "Model & backend", "Sweep", "Workload",
    "Open loop and trace replay (--concurrency caps requests in flight)",
    "Serving engine", "Tensor parallelism (the job's ranks form dp x tp)", "UniPrefill", "Output",
    "Kernel benchmark (--kernels; --ctx, --kv-block, --seed, --threads and --uniprefill-* apply too)",
    "Fidelity evaluation (--eval; --model PATH.gguf, --ctx, --method, --seed and --uniprefill-* apply too)",
};

const char *const up_attention_kernel_names[UP_ATTN_KERNEL_COUNT] = {
    "auto", "tma", "wgmma-cp-async", "mma-sync"}; /* up_attention_kernel order */

typedef struct up_flag_info {
  up_flag_id id;
  const char *name;    /* long name without "--" */
  char short_name;     /* 0: none */
  const char *metavar; /* NULL: the flag takes no value */
  up_flag_group group;
  const char *help;    /* ends with the default where there is one */
} up_flag_info;

static const up_flag_info up_flags[] = {
    {UP_FLAG_MODEL, "model", 0, "NAME|PATH", UP_GROUP_MODEL,
     "model preset, or a checkpoint: a .gguf file or a Hugging Face directory (default: tiny-llama on cpu, "
     "llama-3.1-8b on cuda)"},
    {UP_FLAG_LAYERS, "layers", 0, "N", UP_GROUP_MODEL, "reduced depth, 0 = the preset's (default 0)"},
    {UP_FLAG_BACKEND, "backend", 0, "B", UP_GROUP_MODEL, "auto, cpu or cuda (default auto)"},
    {UP_FLAG_ATTENTION_KERNEL, "attention-kernel", 0, "K", UP_GROUP_MODEL,
     "CUDA prefill attention kernel at head_dim 128: auto, tma, wgmma-cp-async or "
     "mma-sync (default auto: tma on Hopper where the KV block size divides 128)"},
    {UP_FLAG_CTX, "ctx", 0, "LIST", UP_GROUP_SWEEP,
     "prompt lengths, sizes like 4096, 4k, 1M (default 1k,4k on cpu, 8k,32k on cuda; with --kernels "
     "512,1k on cpu, 4k,16k,32k,64k,128k on cuda)"},
    {UP_FLAG_CONCURRENCY, "concurrency", 0, "LIST", UP_GROUP_SWEEP, "requests in flight (default 1,4)"},
    {UP_FLAG_METHOD, "method", 0, "LIST", UP_GROUP_SWEEP, "method specs, see below (default dense,uniprefill,uniprefill:keep=0.3)"},
    {UP_FLAG_REQUESTS, "requests", 0, "N", UP_GROUP_WORKLOAD,
     "requests per point, at most 10M, 0 = the point's concurrency; open loop: arrivals to issue (default 0)"},
    {UP_FLAG_REPETITIONS, "repetitions", 0, "N", UP_GROUP_WORKLOAD,
     "closed loop: rounds of each point's requests, 1..1000; the table shows mean +- stddev over rounds and "
     "percentiles over every request (default 5; open loop and trace replay: 1, the only value they take)"},
    {UP_FLAG_OUTPUT_LEN, "output-len", 0, "N", UP_GROUP_WORKLOAD, "tokens generated per request (default 8)"},
    {UP_FLAG_MAX_CONCURRENCY, "max-concurrency", 0, "LIST", UP_GROUP_TIMED,
     "cap on requests in flight: another name for --concurrency"},
    {UP_FLAG_REQUEST_RATE, "request-rate", 0, "R", UP_GROUP_TIMED,
     "open loop: requests per second, or inf for all at once (default off: closed loop)"},
    {UP_FLAG_BURSTINESS, "burstiness", 0, "B", UP_GROUP_TIMED,
     "gamma shape of inter-arrival times, 1 = Poisson, < 1 burstier (default 1)"},
    {UP_FLAG_DURATION, "duration", 0, "S", UP_GROUP_TIMED,
     "open loop: issue arrivals for S seconds (with or instead of --requests)"},
    {UP_FLAG_PROMPT_LEN, "prompt-len", 0, "DIST", UP_GROUP_TIMED,
     "open loop prompt lengths: fixed:N, uniform:N:RATIO, lognormal:MEDIAN:SIGMA (default fixed:1k)"},
    {UP_FLAG_OUTPUT_LEN_DIST, "output-len-dist", 0, "DIST", UP_GROUP_TIMED,
     "output lengths, same forms; with --trace replaces the trace's (default fixed:8)"},
    {UP_FLAG_TRACE, "trace", 0, "FILE", UP_GROUP_TIMED, "replay an Azure LLM CSV or Mooncake JSONL trace"},
    {UP_FLAG_TRACE_FORMAT, "trace-format", 0, "F", UP_GROUP_TIMED, "auto, azure or mooncake (default auto)"},
    {UP_FLAG_TRACE_SPEEDUP, "trace-speedup", 0, "X", UP_GROUP_TIMED, "divide trace arrival times by X (default 1)"},
    {UP_FLAG_TRACE_WINDOW, "trace-window", 0, "START:DUR", UP_GROUP_TIMED,
     "replay rows arriving in [START, START+DUR) s of trace time"},
    {UP_FLAG_TRACE_LIMIT, "trace-limit", 0, "N", UP_GROUP_TIMED, "replay the first N rows (default 0 = all)"},
    {UP_FLAG_TRACE_LENIENT, "trace-lenient", 0, NULL, UP_GROUP_TIMED,
     "skip and count malformed trace lines instead of failing"},
    {UP_FLAG_SEED, "seed", 0, "N", UP_GROUP_WORKLOAD, "seed for weights and prompts (default 42)"},
    {UP_FLAG_PROMPT_SOURCE, "prompt-source", 0, "SRC", UP_GROUP_WORKLOAD,
     "prompt tokens: random (seeded ids), text (real prose cut to the exact length by the checkpoint's tokenizer; "
     "text:PATHS for your .txt or .gz files) or FILE.jsonl ({\"text\": ...} or {\"ids\": [...]} per line, cut or "
     "repeated to --ctx) (default text with --model PATH, random with a preset)"},
    {UP_FLAG_WARMUP, "warmup", 0, "N", UP_GROUP_WORKLOAD, "unrecorded requests before each point (default 1)"},
    {UP_FLAG_MAX_SEQS, "max-seqs", 0, "N", UP_GROUP_ENGINE,
     "sequences running at once, 0 = the point's concurrency (default 0)"},
    {UP_FLAG_MAX_BATCH_TOKENS, "max-batch-tokens", 0, "SIZE", UP_GROUP_ENGINE,
     "tokens per engine step, 0 = unlimited (default 0)"},
    {UP_FLAG_KV_BLOCK, "kv-block", 0, "N", UP_GROUP_ENGINE, "KV entries per cache block, a power of two (default 16)"},
    {UP_FLAG_KV_CACHE_MIB, "kv-cache-mib", 0, "N", UP_GROUP_ENGINE,
     "KV cache size per rank, 0 = sized to the point's need (default 0)"},
    {UP_FLAG_GPU_MEM_FRACTION, "gpu-mem-fraction", 0, "F", UP_GROUP_ENGINE,
     "KV cache = this fraction of the backend's free memory after weights and workspace, "
     "0 = sized to the point's need (default 0)"},
    {UP_FLAG_MEM_LIMIT_MIB, "mem-limit-mib", 0, "N", UP_GROUP_ENGINE,
     "backend memory per rank the run may use, weights included; a point that does not fit gets a "
     "one-prompt step budget and the KV pool that is left, so requests queue (0 = what the backend "
     "has free, default 0)"},
    {UP_FLAG_THREADS, "threads", 0, "N", UP_GROUP_ENGINE, "CPU threads per rank, 0 = cores / local ranks (default 0)"},
    {UP_FLAG_PREFILL_CHUNK, "prefill-chunk", 0, "N", UP_GROUP_ENGINE,
     "chunked prefill: a prompt puts at most N tokens in each step, beside other requests' decodes (vLLM, "
     "Sarathi-Serve); methods that drop tokens or bring their own attention keep whole-prompt prefill; "
     "0 = whole prompt (default 0)"},
    {UP_FLAG_STEP_TIMEOUT, "step-timeout", 0, "SECONDS", UP_GROUP_ENGINE,
     "watchdog: a rank that waits longer than this for the others at a round's start, its record gather or "
     "a point's end aborts the job (exit 3), naming the ranks that did not arrive (stopped or hung); 0 = wait forever "
     "(default 0)"},
    {UP_FLAG_TP, "tp", 0, "LIST", UP_GROUP_PARALLEL,
     "tensor-parallel sizes: ranks per group, each dividing the job's ranks and the model's query heads; groups "
     "stay inside one host; a list runs the sweep at each size in turn (e.g. 1,2,4). Sizes above 1 run the sweep "
     "mode only (--kernels and --eval refuse them) (default 1)"},
    {UP_FLAG_COMM, "comm", 0, "T", UP_GROUP_PARALLEL,
     "the groups' transport: auto (self for groups of one, mpi on cpu, nccl on cuda), self, mpi or nccl "
     "(default auto)"},
    {UP_FLAG_TP_CROSS_NODE, "tp-cross-node", 0, NULL, UP_GROUP_PARALLEL,
     "let a tensor-parallel group span hosts where the ranks per host do not split into whole groups"},
    {UP_FLAG_COLLECTIVE_TIMEOUT, "collective-timeout", 0, "SECONDS", UP_GROUP_PARALLEL,
     "a tensor-parallel collective that does not complete within this aborts the job, naming rank, host, device "
     "and the call; 0 = wait forever (default 0)"},
    {UP_FLAG_UNIPREFILL_P, "uniprefill-p", 0, "F", UP_GROUP_UNIPREFILL,
     "uniprefill's p for every uniprefill spec: top-p share of block scores kept, 0 < F <= 1 (default: the model's, 0.975 on Gemma 3, 0.99 elsewhere)"},
    {UP_FLAG_UNIPREFILL_KEEP, "uniprefill-keep", 0, "F", UP_GROUP_UNIPREFILL,
     "uniprefill's keep: fixed-budget mode, keep a fraction F of blocks, 0 = off, top-p (default 0)"},
    {UP_FLAG_UNIPREFILL_BLOCK, "uniprefill-block", 0, "N", UP_GROUP_UNIPREFILL,
     "uniprefill's block: tokens per scoring block (default 64)"},
    {UP_FLAG_UNIPREFILL_SINK, "uniprefill-sink", 0, "N", UP_GROUP_UNIPREFILL,
     "uniprefill's sink: first tokens always kept (default 128)"},
    {UP_FLAG_UNIPREFILL_LAST_Q, "uniprefill-last-q", 0, "N", UP_GROUP_UNIPREFILL,
     "uniprefill's last_q: last tokens, the scoring queries, always kept (default 128)"},
    {UP_FLAG_DROP_LAYERS, "drop-layers", 0, "LIST", UP_GROUP_UNIPREFILL,
     "uniprefill's layers: 0-indexed layers that drop tokens, or preset (default preset)"},
    {UP_FLAG_OUTPUT, "output", 'o', "PATH", UP_GROUP_OUTPUT,
     "HDF5 results file (default results/runs/<UTC timestamp>.h5)"},
    {UP_FLAG_FORMAT, "format", 0, "FMT", UP_GROUP_OUTPUT,
     "terminal table: md, csv, json, or jsonl (sweep: one line per point as it finishes, with the run's "
     "identity) (default md)"},
    {UP_FLAG_SLO, "slo", 0, "SPEC", UP_GROUP_OUTPUT,
     "goodput objectives ttft:MS,tpot:MS, either part optional (default none: no goodput)"},
    {UP_FLAG_QUIET, "quiet", 0, NULL, UP_GROUP_OUTPUT, "print only the results table"},
    {UP_FLAG_KERNELS, "kernels", 0, NULL, UP_GROUP_KERNELS,
     "time the engine's kernels at the model's shapes (GEMMs, attention, decode, selection, sparse attention) "
     "instead of the sweep"},
    {UP_FLAG_KERNEL_CASES, "kernel-cases", 0, "LIST", UP_GROUP_KERNELS,
     "kernels to time: gemm, attention, decode, selection, sparse, deltanet (models with Gated DeltaNet layers), "
     "moe (models with MoE layers) (default all)"},
    {UP_FLAG_KERNEL_TOKENS, "kernel-tokens", 0, "SIZE", UP_GROUP_KERNELS,
     "rows of the GEMMs (default 32k on cuda, 512 on cpu)"},
    {UP_FLAG_KERNEL_BATCHES, "kernel-batches", 0, "LIST", UP_GROUP_KERNELS,
     "decode and selection batches NxL: N sequences of L tokens (default 4x8k,16x8k,4x32k,16x32k on cuda, "
     "4x512 on cpu); selection also runs 1xL at each --ctx; given, prefill attention runs at each too"},
    {UP_FLAG_KERNEL_WARMUP, "kernel-warmup", 0, "N", UP_GROUP_KERNELS, "untimed calls before each case (default 3)"},
    {UP_FLAG_KERNEL_REPEATS, "kernel-repeats", 0, "N", UP_GROUP_KERNELS,
     "timed calls per case, 1..1000; median, min and max are reported (default 15)"},
    {UP_FLAG_EVAL, "eval", 0, "TASKS", UP_GROUP_EVAL,
     "RULER-style tasks instead of the sweep: niah_single, niah_multikey, niah_multivalue, kv_retrieval, vt, or "
     "niah / all; greedy answers scored by string match, compared with dense (--ctx: prompt plus answer tokens, "
     "default 2k,4k,8k within the model's context)"},
    {UP_FLAG_EVAL_SAMPLES, "eval-samples", 0, "N", UP_GROUP_EVAL, "samples per task and context (default 4)"},
    {UP_FLAG_EVAL_MAX_NEW, "eval-max-new", 0, "N", UP_GROUP_EVAL, "answer tokens generated at most, kept free in each --ctx (default 32)"},
    {UP_FLAG_EVAL_BATCH, "eval-batch", 0, "N", UP_GROUP_EVAL, "prompts per forward, 1..256 (default 4)"},
    {UP_FLAG_EVAL_CORPUS, "eval-corpus", 0, "PATHS", UP_GROUP_EVAL,
     "haystack prose files (.txt or .gz), comma-separated (default: Debian's gnu-standards texts)"},
    {UP_FLAG_CHAT_TEMPLATE, "chat-template", 0, "NAME", UP_GROUP_EVAL,
     "prompt format: chatml, llama3, llama2, gemma or plain (default: recognised from the checkpoint's template)"},
    {UP_FLAG_EVAL_FILE, "eval-file", 0, "FILES", UP_GROUP_EVAL,
     "JSONL samples to evaluate, comma-separated: RULER's generated files (input, outputs) or LongBench-like "
     "(context, input, answers); alone it implies eval mode; sorted into --ctx buckets, else run at their own "
     "lengths"},
    {UP_FLAG_EVAL_LENIENT, "eval-lenient", 0, NULL, UP_GROUP_EVAL,
     "skip and count malformed --eval-file lines instead of failing"},
    {UP_FLAG_HELP, "help", 'h', NULL, UP_GROUP_OUTPUT, "print this help and exit"},
    {UP_FLAG_VERSION, "version", 0, NULL, UP_GROUP_OUTPUT, "print the version and exit"},
};

#define UP_N_FLAGS ((int32_t)(sizeof(up_flags) / sizeof(up_flags[0])))

/* ---- numbers (core/parse_number.h parses; the messages are the command line's) ---- */

/* Integer flag within [min, max]; the message names the flag and the text. */
static bool up_flag_int64(const char *flag, const char *text, int64_t min, int64_t max, int64_t *out, char *err,
                          size_t err_size) {
  up_number_error why = UP_NUMBER_OK;
  if (up_parse_int64(text, min, max, out, &why)) return true;
  if (why == UP_NUMBER_BELOW_MIN) return up_error(err, err_size, "--%s: '%s' must be >= %" PRId64, flag, text, min);
  if (why == UP_NUMBER_ABOVE_MAX) return up_error(err, err_size, "--%s: '%s' must be <= %" PRId64, flag, text, max);
  return up_error(err, err_size, "--%s: '%s' is not an integer", flag, text);
}

static bool up_flag_int32(const char *flag, const char *text, int32_t min, int32_t *out, char *err,
                          size_t err_size) {
  int64_t v = 0;
  if (!up_flag_int64(flag, text, min, INT32_MAX, &v, err, err_size)) return false;
  *out = (int32_t)v;
  return true;
}

static bool up_flag_uint64(const char *flag, const char *text, uint64_t *out, char *err, size_t err_size) {
  up_number_error why = UP_NUMBER_OK;
  if (up_parse_uint64(text, out, &why)) return true;
  if (why == UP_NUMBER_NOT_NUMBER)
    return up_error(err, err_size, "--%s: '%s' is not a non-negative integer", flag, text);
  return up_error(err, err_size, "--%s: '%s' is not a non-negative 64-bit integer", flag, text);
}

/* Float flag in (lo, hi] or [lo, hi] depending on lo_open. */
static bool up_flag_fraction(const char *flag, const char *text, bool lo_open, float *out, char *err,
                             size_t err_size) {
  double v = 0.0;
  if (!up_parse_real(text, true, &v, NULL)) return up_error(err, err_size, "--%s: '%s' is not a number", flag, text);
  if ((lo_open ? v <= 0.0 : v < 0.0) || v > 1.0)
    return up_error(err, err_size, "--%s: '%s' must be in %s0, 1]", flag, text, lo_open ? "(" : "[");
  *out = (float)v;
  return true;
}

/* A value that must be one of `names`: *out is its index. */
static bool up_flag_choice(const char *flag, const char *text, const char *const *names, int n, int *out, char *err,
                           size_t err_size) {
  for (int i = 0; i < n; i++)
    if (strcmp(text, names[i]) == 0) {
      *out = i;
      return true;
    }
  char list[128] = "";
  for (int i = 0, used = 0; i < n && used < (int)sizeof list; i++)
    used += snprintf(list + used, sizeof list - (size_t)used, "%s%s", i ? ", " : "", names[i]);
  return up_error(err, err_size, "--%s: '%s' is not one of %s", flag, text, list);
}

/* A finite real >= 0 (or > 0 when positive); "inf" too when allow_inf. */
static bool up_nonnegative_real(const char *text, bool positive, bool allow_inf, double *out) {
  if (allow_inf && strcmp(text, "inf") == 0) {
    *out = INFINITY;
    return true;
  }
  double v = 0.0;
  if (!up_parse_real(text, false, &v, NULL) || (positive ? v <= 0.0 : v < 0.0)) return false;
  *out = v;
  return true;
}

static bool up_flag_real(const char *flag, const char *text, bool allow_inf, double *out, char *err,
                         size_t err_size) {
  if (!up_nonnegative_real(text, true, allow_inf, out))
    return up_error(err, err_size, "--%s: '%s' is not a number > 0%s", flag, text, allow_inf ? " or inf" : "");
  return true;
}

static bool up_flag_length_dist(const char *flag, const char *text, up_length_dist *dist, char *err,
                                size_t err_size) {
  char sub[256];
  if (!up_length_dist_parse(text, dist, sub, sizeof sub)) return up_error(err, err_size, "--%s: %s", flag, sub);
  return true;
}

/* "START:DURATION" in seconds: START >= 0, DURATION > 0. */
static bool up_flag_trace_window(const char *text, up_options *opt, char *err, size_t err_size) {
  char buf[UP_NUMBER_TEXT_MAX * 2];
  const char *colon = strchr(text, ':');
  if (!colon || strlen(text) >= sizeof buf)
    return up_error(err, err_size, "--trace-window: '%s' is not START:DURATION (seconds, e.g. 600:300)", text);
  snprintf(buf, sizeof buf, "%.*s", (int)(colon - text), text);
  if (!up_nonnegative_real(buf, false, false, &opt->trace_window_start_s) ||
      !up_nonnegative_real(colon + 1, true, false, &opt->trace_window_s))
    return up_error(err, err_size,
                   "--trace-window: '%s' is not START:DURATION with START >= 0 and DURATION > 0 seconds", text);
  return true;
}

/* ---- lists ------------------------------------------------------------- */

/* Walks a comma list one item at a time, enforcing the rules every list shares:
 * non-empty, no empty items, at most `max` items, each shorter than the caller's buffer. */
typedef struct up_list_cursor {
  const char *text;
  const char *next; /* NULL once the last item was taken */
  int32_t count;
} up_list_cursor;

static up_list_cursor up_list_begin(const char *text) { return (up_list_cursor){text, text, 0}; }

/* 1: an item was copied; 0: the list is done; -1: error written to err. */
static int up_list_next(up_list_cursor *c, char *item, size_t item_size, int32_t max, char *err, size_t err_size) {
  if (c->next == NULL) return 0;
  if (c->text[0] == '\0') {
    up_error(err, err_size, "empty list");
    return -1;
  }
  const size_t len = strcspn(c->next, ",");
  if (len == 0) {
    up_error(err, err_size, "empty item in '%s'", c->text);
    return -1;
  }
  if (c->count == max) {
    up_error(err, err_size, "more than %" PRId32 " items in '%s'", max, c->text);
    return -1;
  }
  if (len >= item_size) {
    up_error(err, err_size, "'%.*s' is too long (at most %zu characters)", (int)len, c->next, item_size - 1);
    return -1;
  }
  memcpy(item, c->next, len);
  item[len] = '\0';
  c->count++;
  c->next = c->next[len] == '\0' ? NULL : c->next + len + 1;
  return 1;
}

bool up_parse_size_list(const char *text, int32_t *values, int32_t max, int32_t *count, char *err, size_t err_size) {
  up_list_cursor c = up_list_begin(text);
  char item[UP_NUMBER_TEXT_MAX];
  int status;
  while ((status = up_list_next(&c, item, sizeof(item), max, err, err_size)) == 1) {
    int64_t v = 0;
    if (!up_parse_size(item, &v)) return up_error(err, err_size, "'%s' is not a size (use e.g. 4096, 4k, 1M)", item);
    if (v > INT32_MAX) return up_error(err, err_size, "'%s' is too large (at most %d)", item, INT32_MAX);
    values[c.count - 1] = (int32_t)v;
  }
  if (status < 0) return false;
  *count = c.count;
  return true;
}

/* Index of the first value that appears earlier in the list, or -1. */
static int32_t up_find_duplicate(const int32_t *values, int32_t n) {
  for (int32_t i = 1; i < n; i++)
    for (int32_t j = 0; j < i; j++)
      if (values[i] == values[j]) return i;
  return -1;
}

/* A sweep dimension: sizes, each >= 1, no value twice. */
static bool up_flag_sweep(const char *flag, const char *text, int32_t *values, int32_t *count, char *err,
                          size_t err_size) {
  char sub[256];
  if (!up_parse_size_list(text, values, UP_MAX_SWEEP, count, sub, sizeof(sub)))
    return up_error(err, err_size, "--%s: %s", flag, sub);
  for (int32_t i = 0; i < *count; i++)
    if (values[i] < 1) return up_error(err, err_size, "--%s: %" PRId32 " in '%s' must be >= 1", flag, values[i], text);
  const int32_t dup = up_find_duplicate(values, *count);
  if (dup >= 0) return up_error(err, err_size, "--%s: %" PRId32 " appears twice in '%s'", flag, values[dup], text);
  return true;
}

/* Flags that are other names of a method option: each sets that option's default for
 * every spec of the method, which the methods layer parses and checks. */
typedef struct up_option_alias {
  up_flag_id flag;
  const char *method;
  const char *option;
} up_option_alias;

static const up_option_alias up_option_aliases[] = {
    {UP_FLAG_UNIPREFILL_P, "uniprefill", "p"},         {UP_FLAG_UNIPREFILL_KEEP, "uniprefill", "keep"},
    {UP_FLAG_UNIPREFILL_BLOCK, "uniprefill", "block"}, {UP_FLAG_UNIPREFILL_SINK, "uniprefill", "sink"},
    {UP_FLAG_UNIPREFILL_LAST_Q, "uniprefill", "last_q"}, {UP_FLAG_DROP_LAYERS, "uniprefill", "layers"},
};

static const up_option_alias *up_find_alias(up_flag_id flag) {
  for (size_t i = 0; i < sizeof up_option_aliases / sizeof up_option_aliases[0]; i++)
    if (up_option_aliases[i].flag == flag) return &up_option_aliases[i];
  return NULL;
}

static bool up_flag_method_default(const up_option_alias *alias, const char *flag, const char *text,
                                   up_method_defaults *defaults, char *err, size_t err_size) {
  char sub[256];
  if (!up_method_defaults_set(defaults, alias->method, alias->option, text, sub, sizeof sub))
    return up_error(err, err_size, "--%s: %s", flag, sub);
  return true;
}

/* --slo ttft:MS,tpot:MS: each part at most once, a positive number of milliseconds. */
static bool up_flag_slo(const char *text, up_slo *slo, char *err, size_t err_size) {
  up_slo parsed = up_slo_none();
  char item[UP_NUMBER_TEXT_MAX + 8];
  char sub[256];
  up_list_cursor c = up_list_begin(text);
  int status;
  while ((status = up_list_next(&c, item, sizeof(item), 2, sub, sizeof(sub))) == 1) {
    char *colon = strchr(item, ':');
    if (colon == NULL)
      return up_error(err, err_size, "--slo: '%s' is not KEY:MS (keys: ttft, tpot)", item);
    *colon = '\0';
    const char *value = colon + 1;
    double *part = strcmp(item, "ttft") == 0 ? &parsed.ttft_ms : strcmp(item, "tpot") == 0 ? &parsed.tpot_ms : NULL;
    if (part == NULL) return up_error(err, err_size, "--slo: unknown objective '%s' (keys: ttft, tpot)", item);
    if (!isnan(*part)) return up_error(err, err_size, "--slo: '%s' appears twice in '%s'", item, text);
    double ms = 0.0;
    if (!up_parse_real(value, false, &ms, NULL))
      return up_error(err, err_size, "--slo: %s: '%s' is not a number of milliseconds", item, value);
    if (ms <= 0.0) return up_error(err, err_size, "--slo: %s: '%s' must be > 0", item, value);
    *part = ms;
  }
  if (status < 0) return up_error(err, err_size, "--slo: %s", sub);
  *slo = parsed;
  return true;
}

/* --kernel-cases: kernel kinds, each at most once. */
static bool up_flag_kernel_cases(const char *text, uint32_t *kinds, char *err, size_t err_size) {
  char sub[256];
  char item[UP_NUMBER_TEXT_MAX];
  up_list_cursor c = up_list_begin(text);
  uint32_t parsed = 0;
  int status;
  while ((status = up_list_next(&c, item, sizeof(item), UP_KERNEL_KIND_COUNT, sub, sizeof(sub))) == 1) {
    int kind = 0;
    if (!up_flag_choice("kernel-cases", item, up_kernel_kind_names, UP_KERNEL_KIND_COUNT, &kind, err, err_size))
      return false;
    if (parsed & (1u << kind)) return up_error(err, err_size, "--kernel-cases: '%s' appears twice in '%s'", item, text);
    parsed |= 1u << kind;
  }
  if (status < 0) return up_error(err, err_size, "--kernel-cases: %s", sub);
  *kinds = parsed;
  return true;
}

/* --kernel-batches: NxL items (N sequences of L tokens, L a size), no batch twice, at
 * most INT32_MAX tokens in one. */
static bool up_flag_kernel_batches(const char *text, up_options *opt, char *err, size_t err_size) {
  char sub[256];
  char item[UP_NUMBER_TEXT_MAX];
  up_list_cursor c = up_list_begin(text);
  int status;
  while ((status = up_list_next(&c, item, sizeof(item), UP_MAX_SWEEP, sub, sizeof(sub))) == 1) {
    char *x = strchr(item, 'x');
    int64_t seqs = 0, len = 0;
    if (x) *x = '\0';
    if (!x || !up_parse_size(item, &seqs) || !up_parse_size(x + 1, &len) || seqs < 1 || len < 1) {
      if (x) *x = 'x';
      return up_error(err, err_size, "--kernel-batches: '%s' is not NxL with N, L >= 1 (e.g. 16x8k)", item);
    }
    *x = 'x';
    if (seqs * len > INT32_MAX)
      return up_error(err, err_size, "--kernel-batches: '%s' is more than %d tokens", item, INT32_MAX);
    const int32_t i = c.count - 1;
    for (int32_t j = 0; j < i; j++)
      if (opt->kernel_batch_seqs[j] == seqs && opt->kernel_batch_len[j] == len)
        return up_error(err, err_size, "--kernel-batches: '%s' appears twice in '%s'", item, text);
    opt->kernel_batch_seqs[i] = (int32_t)seqs;
    opt->kernel_batch_len[i] = (int32_t)len;
  }
  if (status < 0) return up_error(err, err_size, "--kernel-batches: %s", sub);
  opt->n_kernel_batches = c.count;
  return true;
}

/* Method entries are kept as text until every flag is read (see the file comment). */
typedef struct up_method_texts {
  int32_t n;
  char items[UP_MAX_SWEEP][UP_METHOD_TEXT_MAX];
} up_method_texts;

static bool up_flag_methods(const char *text, up_method_texts *texts, char *err, size_t err_size) {
  char sub[256];
  up_list_cursor c = up_list_begin(text);
  int status;
  char item[UP_METHOD_TEXT_MAX];
  while ((status = up_list_next(&c, item, sizeof(item), UP_MAX_SWEEP, sub, sizeof(sub))) == 1) {
    for (int32_t j = 0; j < c.count - 1; j++)
      if (strcmp(item, texts->items[j]) == 0)
        return up_error(err, err_size, "--method: '%s' appears twice in '%s'", item, text);
    memcpy(texts->items[c.count - 1], item, sizeof(item));
  }
  if (status < 0) return up_error(err, err_size, "--method: %s", sub);
  texts->n = c.count;
  return true;
}

static bool up_resolve_methods(const up_method_texts *texts, up_options *opt, char *err, size_t err_size) {
  char sub[256];
  for (int32_t i = 0; i < texts->n; i++) {
    sub[0] = '\0';
    if (!up_method_spec_parse(texts->items[i], &opt->method_defaults, &opt->methods[i], sub, sizeof(sub)))
      return up_error(err, err_size, "--method: '%s': %s", texts->items[i], sub);
  }
  opt->n_methods = texts->n;
  return true;
}

/* ---- one flag ---------------------------------------------------------- */

static bool up_copy_text(const char *flag, const char *text, char *dst, size_t dst_size, char *err,
                         size_t err_size) {
  if (text[0] == '\0') return up_error(err, err_size, "--%s: empty value", flag);
  if (strlen(text) >= dst_size)
    return up_error(err, err_size, "--%s: '%s' is too long (at most %zu characters)", flag, text, dst_size - 1);
  memcpy(dst, text, strlen(text) + 1);
  return true;
}

static bool up_apply_flag(const up_flag_info *flag, const char *v, up_options *opt, up_method_texts *methods,
                          char *err, size_t err_size) {
  const char *name = flag->name;
  const up_option_alias *alias = up_find_alias(flag->id);
  if (alias) return up_flag_method_default(alias, name, v, &opt->method_defaults, err, err_size);
  int64_t wide = 0;
  int choice = 0;
  switch (flag->id) {
    case UP_FLAG_MODEL:
      opt->model_given = true;
      return up_copy_text(name, v, opt->model, sizeof(opt->model), err, err_size);
    case UP_FLAG_LAYERS:
      if (!up_flag_int64(name, v, 0, UP_MAX_LAYERS, &wide, err, err_size)) return false;
      opt->layers = (int32_t)wide;
      return true;
    case UP_FLAG_BACKEND: {
      static const char *const names[] = {"auto", "cpu", "cuda"}; /* up_backend_choice order */
      if (!up_flag_choice(name, v, names, 3, &choice, err, err_size)) return false;
      opt->backend = (up_backend_choice)choice;
      return true;
    }
    case UP_FLAG_ATTENTION_KERNEL:
      if (!up_flag_choice(name, v, up_attention_kernel_names, UP_ATTN_KERNEL_COUNT, &choice, err, err_size))
        return false;
      opt->attention_kernel = (up_attention_kernel)choice;
      return true;
    case UP_FLAG_CTX:
      opt->ctx_given = true;
      return up_flag_sweep(name, v, opt->ctx, &opt->n_ctx, err, err_size);
    case UP_FLAG_CONCURRENCY:
      opt->concurrency_given = true;
      return up_flag_sweep(name, v, opt->concurrency, &opt->n_concurrency, err, err_size);
    case UP_FLAG_METHOD: return up_flag_methods(v, methods, err, err_size);
    case UP_FLAG_REQUESTS:
      /* Every request of a point is planned and recorded up front (a record of about
       * 300 bytes plus per-layer counts and token times, gathered on rank 0): the bound
       * of open-loop schedules, 10 million, keeps that within a few GB. */
      if (!up_flag_int64(name, v, 0, UP_OPEN_LOOP_MAX_REQUESTS, &wide, err, err_size)) return false;
      opt->requests = (int32_t)wide;
      return true;
    case UP_FLAG_REPETITIONS:
      if (!up_flag_int64(name, v, 1, UP_MAX_REPETITIONS, &wide, err, err_size)) return false;
      opt->repetitions = (int32_t)wide;
      return true;
    case UP_FLAG_OUTPUT_LEN: return up_flag_int32(name, v, 1, &opt->output_len, err, err_size);
    case UP_FLAG_MAX_CONCURRENCY:
      opt->concurrency_given = true;
      return up_flag_sweep(name, v, opt->concurrency, &opt->n_concurrency, err, err_size);
    case UP_FLAG_REQUEST_RATE: return up_flag_real(name, v, true, &opt->request_rate, err, err_size);
    case UP_FLAG_BURSTINESS: return up_flag_real(name, v, false, &opt->burstiness, err, err_size);
    case UP_FLAG_DURATION: return up_flag_real(name, v, false, &opt->duration_s, err, err_size);
    case UP_FLAG_PROMPT_LEN: return up_flag_length_dist(name, v, &opt->prompt_len, err, err_size);
    case UP_FLAG_OUTPUT_LEN_DIST:
      opt->output_len_dist_given = true;
      return up_flag_length_dist(name, v, &opt->output_len_dist, err, err_size);
    case UP_FLAG_TRACE: return up_copy_text(name, v, opt->trace_path, sizeof(opt->trace_path), err, err_size);
    case UP_FLAG_TRACE_FORMAT: {
      static const char *const names[] = {"auto", "azure", "mooncake"}; /* up_trace_format order */
      if (!up_flag_choice(name, v, names, 3, &choice, err, err_size)) return false;
      opt->trace_format = (up_trace_format)choice;
      return true;
    }
    case UP_FLAG_TRACE_SPEEDUP: return up_flag_real(name, v, false, &opt->trace_speedup, err, err_size);
    case UP_FLAG_TRACE_WINDOW: return up_flag_trace_window(v, opt, err, err_size);
    case UP_FLAG_TRACE_LIMIT: return up_flag_int32(name, v, 1, &opt->trace_limit, err, err_size);
    case UP_FLAG_TRACE_LENIENT: opt->trace_lenient = true; return true;
    case UP_FLAG_SEED: return up_flag_uint64(name, v, &opt->seed, err, err_size);
    case UP_FLAG_PROMPT_SOURCE: {
      char sub[256];
      if (!up_prompt_choice_parse(v, &opt->prompt_source, sub, sizeof sub))
        return up_error(err, err_size, "--%s: %s", name, sub);
      return true;
    }
    case UP_FLAG_WARMUP: return up_flag_int32(name, v, 0, &opt->warmup, err, err_size);
    case UP_FLAG_MAX_SEQS: return up_flag_int32(name, v, 0, &opt->max_seqs, err, err_size);
    case UP_FLAG_MAX_BATCH_TOKENS:
      if (!up_parse_size(v, &opt->max_batch_tokens))
        return up_error(err, err_size, "--%s: '%s' is not a size (use e.g. 4096, 4k, 1M)", name, v);
      return true;
    case UP_FLAG_KV_BLOCK:
      if (!up_flag_int32(name, v, 1, &opt->kv_block, err, err_size)) return false;
      if ((opt->kv_block & (opt->kv_block - 1)) != 0)
        return up_error(err, err_size, "--%s: '%s' is not a power of two", name, v);
      return true;
    case UP_FLAG_KV_CACHE_MIB: return up_flag_int64(name, v, 0, INT64_MAX, &opt->kv_cache_mib, err, err_size);
    case UP_FLAG_GPU_MEM_FRACTION: return up_flag_fraction(name, v, false, &opt->gpu_mem_fraction, err, err_size);
    case UP_FLAG_MEM_LIMIT_MIB: return up_flag_int64(name, v, 0, INT64_MAX / (1024 * 1024), &opt->mem_limit_mib, err, err_size);
    case UP_FLAG_THREADS: return up_flag_int32(name, v, 0, &opt->threads, err, err_size);
    case UP_FLAG_PREFILL_CHUNK: return up_flag_int32(name, v, 0, &opt->prefill_chunk, err, err_size);
    case UP_FLAG_STEP_TIMEOUT:
      if (!up_nonnegative_real(v, false, false, &opt->step_timeout_s))
        return up_error(err, err_size, "--%s: '%s' is not a number of seconds >= 0", name, v);
      return true;
    case UP_FLAG_TP:
      if (!up_flag_sweep(name, v, opt->tp, &opt->n_tp, err, err_size)) return false;
      for (int32_t i = 0; i < opt->n_tp; i++)
        if (opt->tp[i] > UP_MAX_TP)
          return up_error(err, err_size, "--%s: %" PRId32 " in '%s' is more than %d ranks per group", name,
                          opt->tp[i], v, UP_MAX_TP);
      return true;
    case UP_FLAG_COMM: {
      static const char *const names[] = {"auto", "self", "mpi", "nccl"}; /* up_transport_choice order */
      if (!up_flag_choice(name, v, names, 4, &choice, err, err_size)) return false;
      opt->transport = (up_transport_choice)choice;
      return true;
    }
    case UP_FLAG_TP_CROSS_NODE: opt->tp_cross_node = true; return true;
    case UP_FLAG_COLLECTIVE_TIMEOUT:
      if (!up_nonnegative_real(v, false, false, &opt->collective_timeout_s))
        return up_error(err, err_size, "--%s: '%s' is not a number of seconds >= 0", name, v);
      return true;
    case UP_FLAG_UNIPREFILL_P:
    case UP_FLAG_UNIPREFILL_KEEP:
    case UP_FLAG_UNIPREFILL_BLOCK:
    case UP_FLAG_UNIPREFILL_SINK:
    case UP_FLAG_UNIPREFILL_LAST_Q:
    case UP_FLAG_DROP_LAYERS: break; /* method option aliases, applied above */
    case UP_FLAG_OUTPUT: return up_copy_text(name, v, opt->output_path, sizeof(opt->output_path), err, err_size);
    case UP_FLAG_FORMAT: {
      static const char *const names[] = {"md", "csv", "json", "jsonl"}; /* up_output_format order */
      if (!up_flag_choice(name, v, names, 4, &choice, err, err_size)) return false;
      opt->format = (up_output_format)choice;
      return true;
    }
    case UP_FLAG_SLO: return up_flag_slo(v, &opt->slo, err, err_size);
    case UP_FLAG_QUIET: opt->quiet = true; return true;
    case UP_FLAG_KERNELS: opt->kernels = true; return true;
    case UP_FLAG_KERNEL_CASES: return up_flag_kernel_cases(v, &opt->kernel_kinds, err, err_size);
    case UP_FLAG_KERNEL_TOKENS:
      if (!up_parse_size(v, &wide) || wide < 1 || wide > INT32_MAX)
        return up_error(err, err_size, "--%s: '%s' is not a size from 1 to %d (use e.g. 4096, 32k)", name, v,
                       INT32_MAX);
      opt->kernel_tokens = (int32_t)wide;
      return true;
    case UP_FLAG_KERNEL_BATCHES: return up_flag_kernel_batches(v, opt, err, err_size);
    case UP_FLAG_KERNEL_WARMUP: return up_flag_int32(name, v, 0, &opt->kernel_warmup, err, err_size);
    case UP_FLAG_KERNEL_REPEATS:
      if (!up_flag_int64(name, v, 1, UP_KERNEL_MAX_REPEATS, &wide, err, err_size)) return false;
      opt->kernel_repeats = (int32_t)wide;
      return true;
    case UP_FLAG_EVAL: return up_copy_text(name, v, opt->eval_tasks, sizeof(opt->eval_tasks), err, err_size);
    case UP_FLAG_EVAL_SAMPLES: return up_flag_int32(name, v, 1, &opt->eval_samples, err, err_size);
    case UP_FLAG_EVAL_MAX_NEW: return up_flag_int32(name, v, 1, &opt->eval_max_new, err, err_size);
    case UP_FLAG_EVAL_BATCH:
      if (!up_flag_int64(name, v, 1, UP_EVAL_MAX_BATCH, &wide, err, err_size)) return false;
      opt->eval_batch = (int32_t)wide;
      return true;
    case UP_FLAG_EVAL_CORPUS: return up_copy_text(name, v, opt->eval_corpus, sizeof(opt->eval_corpus), err, err_size);
    case UP_FLAG_EVAL_FILE: return up_copy_text(name, v, opt->eval_files, sizeof(opt->eval_files), err, err_size);
    case UP_FLAG_EVAL_LENIENT: opt->eval_lenient = true; return true;
    case UP_FLAG_CHAT_TEMPLATE: {
      static const char *const names[] = {"chatml", "llama3", "llama2", "gemma", "plain"};
      if (!up_flag_choice(name, v, names, 5, &choice, err, err_size)) return false;
      snprintf(opt->chat_template, sizeof opt->chat_template, "%s", names[choice]);
      return true;
    }
    case UP_FLAG_HELP:
    case UP_FLAG_VERSION:
    case UP_FLAG_COUNT: break; /* help and version end parsing in the caller; COUNT is no flag */
  }
  return true;
}

/* ---- public ------------------------------------------------------------ */

void up_options_default(up_options *opt) {
  memset(opt, 0, sizeof(*opt));
  snprintf(opt->model, sizeof(opt->model), "%s", "tiny-llama");
  opt->backend = UP_BACKEND_AUTO;
  opt->n_ctx = 2;
  opt->ctx[0] = 1024;
  opt->ctx[1] = 4096;
  opt->n_concurrency = 2;
  opt->concurrency[0] = 1;
  opt->concurrency[1] = 4;
  up_method_defaults_init(&opt->method_defaults);
  up_method_texts texts;
  char err[256];
  const bool ok = up_flag_methods(UP_DEFAULT_METHODS, &texts, err, sizeof(err)) &&
                  up_resolve_methods(&texts, opt, err, sizeof(err));
  UP_ASSERT(ok, "default methods '%s': %s", UP_DEFAULT_METHODS, err);
  opt->requests = 0;
  opt->output_len = 8;
  opt->burstiness = 1.0;
  opt->prompt_len = (up_length_dist){.kind = UP_LENGTH_FIXED, .value = 1024};
  opt->output_len_dist = (up_length_dist){.kind = UP_LENGTH_FIXED, .value = 8};
  opt->trace_format = UP_TRACE_FORMAT_AUTO;
  opt->trace_speedup = 1.0;
  opt->seed = 42;
  opt->warmup = 1;
  opt->max_seqs = 0;
  opt->max_batch_tokens = 0;
  opt->kv_block = 16;
  opt->kv_cache_mib = 0;
  opt->gpu_mem_fraction = 0.0f;
  opt->mem_limit_mib = 0;
  opt->threads = 0;
  opt->prefill_chunk = 0;
  opt->step_timeout_s = 0.0;
  opt->n_tp = 1;
  opt->tp[0] = 1;
  opt->transport = UP_TRANSPORT_AUTO;
  opt->tp_cross_node = false;
  opt->collective_timeout_s = 0.0;
  opt->output_path[0] = '\0';
  opt->format = UP_FORMAT_MARKDOWN;
  opt->slo = up_slo_none();
  opt->quiet = false;
  opt->kernels = false;
  opt->kernel_kinds = (1u << UP_KERNEL_KIND_COUNT) - 1;
  opt->kernel_tokens = 0;
  opt->n_kernel_batches = 0;
  opt->kernel_warmup = 3;
  opt->kernel_repeats = 15;
  opt->eval_tasks[0] = '\0';
  opt->eval_samples = 4;
  opt->eval_max_new = 32;
  opt->eval_batch = 4;
  opt->eval_corpus[0] = '\0';
  opt->eval_files[0] = '\0';
  opt->eval_lenient = false;
  opt->chat_template[0] = '\0';
}

static const up_flag_info *up_find_long(const char *name, size_t len) {
  for (int32_t i = 0; i < UP_N_FLAGS; i++)
    if (strlen(up_flags[i].name) == len && strncmp(up_flags[i].name, name, len) == 0) return &up_flags[i];
  return NULL;
}

static const up_flag_info *up_find_short(char c) {
  for (int32_t i = 0; i < UP_N_FLAGS; i++)
    if (up_flags[i].short_name != 0 && up_flags[i].short_name == c) return &up_flags[i];
  return NULL;
}

/* Flags that belong to one workload: given without it they would be silently ignored. */
typedef struct up_flag_needs {
  up_flag_id flag;
  up_flag_id needs;     /* this flag must be given too ... */
  up_flag_id or_needs;  /* ... or this one (UP_FLAG_COUNT: no alternative) */
  const char *why;
} up_flag_needs;

static const up_flag_needs up_flag_requirements[] = {
    {UP_FLAG_BURSTINESS, UP_FLAG_REQUEST_RATE, UP_FLAG_COUNT, "it shapes open-loop arrivals"},
    {UP_FLAG_DURATION, UP_FLAG_REQUEST_RATE, UP_FLAG_COUNT, "it bounds open-loop arrivals"},
    {UP_FLAG_PROMPT_LEN, UP_FLAG_REQUEST_RATE, UP_FLAG_COUNT, "closed loop takes --ctx"},
    {UP_FLAG_OUTPUT_LEN_DIST, UP_FLAG_REQUEST_RATE, UP_FLAG_TRACE, "closed loop takes --output-len"},
    {UP_FLAG_MAX_CONCURRENCY, UP_FLAG_REQUEST_RATE, UP_FLAG_TRACE, "closed loop takes --concurrency"},
    {UP_FLAG_TRACE_FORMAT, UP_FLAG_TRACE, UP_FLAG_COUNT, "it describes the trace"},
    {UP_FLAG_TRACE_SPEEDUP, UP_FLAG_TRACE, UP_FLAG_COUNT, "it scales the trace"},
    {UP_FLAG_TRACE_WINDOW, UP_FLAG_TRACE, UP_FLAG_COUNT, "it selects trace rows"},
    {UP_FLAG_TRACE_LIMIT, UP_FLAG_TRACE, UP_FLAG_COUNT, "it selects trace rows"},
    {UP_FLAG_TRACE_LENIENT, UP_FLAG_TRACE, UP_FLAG_COUNT, "it reads the trace"},
    {UP_FLAG_KERNEL_CASES, UP_FLAG_KERNELS, UP_FLAG_COUNT, "it picks the kernels to time"},
    {UP_FLAG_KERNEL_TOKENS, UP_FLAG_KERNELS, UP_FLAG_COUNT, "it sizes the kernel benchmark's GEMMs"},
    {UP_FLAG_KERNEL_BATCHES, UP_FLAG_KERNELS, UP_FLAG_COUNT, "it sizes the kernel benchmark's batches"},
    {UP_FLAG_KERNEL_WARMUP, UP_FLAG_KERNELS, UP_FLAG_COUNT, "it belongs to the kernel benchmark"},
    {UP_FLAG_KERNEL_REPEATS, UP_FLAG_KERNELS, UP_FLAG_COUNT, "it belongs to the kernel benchmark"},
    {UP_FLAG_EVAL_SAMPLES, UP_FLAG_EVAL, UP_FLAG_COUNT, "it belongs to the fidelity evaluation"},
    {UP_FLAG_EVAL_MAX_NEW, UP_FLAG_EVAL, UP_FLAG_EVAL_FILE, "it belongs to the fidelity evaluation"},
    {UP_FLAG_EVAL_BATCH, UP_FLAG_EVAL, UP_FLAG_EVAL_FILE, "it belongs to the fidelity evaluation"},
    {UP_FLAG_EVAL_CORPUS, UP_FLAG_EVAL, UP_FLAG_COUNT, "it fills the generated tasks' haystacks"},
    {UP_FLAG_CHAT_TEMPLATE, UP_FLAG_EVAL, UP_FLAG_EVAL_FILE, "only the fidelity evaluation writes prompts as text"},
    {UP_FLAG_EVAL_LENIENT, UP_FLAG_EVAL_FILE, UP_FLAG_COUNT, "it reads the eval files"},
};

/* Pairs that cannot be given together. */
typedef struct up_flag_conflict {
  up_flag_id a, b;
  const char *why;
} up_flag_conflict;

static const up_flag_conflict up_flag_conflicts[] = {
    {UP_FLAG_TRACE, UP_FLAG_REQUEST_RATE, "a trace brings its own arrival times"},
    {UP_FLAG_TRACE_WINDOW, UP_FLAG_TRACE_LIMIT, "choose rows by time or by count"},
    {UP_FLAG_KV_CACHE_MIB, UP_FLAG_GPU_MEM_FRACTION, "both size the KV cache"},
    {UP_FLAG_CONCURRENCY, UP_FLAG_MAX_CONCURRENCY, "they name the same sweep dimension"},
    {UP_FLAG_CTX, UP_FLAG_REQUEST_RATE, "open-loop prompt lengths come from --prompt-len"},
    {UP_FLAG_CTX, UP_FLAG_TRACE, "prompt lengths come from the trace"},
    {UP_FLAG_OUTPUT_LEN, UP_FLAG_REQUEST_RATE, "open-loop output lengths come from --output-len-dist"},
    {UP_FLAG_OUTPUT_LEN, UP_FLAG_TRACE, "output lengths come from the trace or --output-len-dist"},
    {UP_FLAG_REQUESTS, UP_FLAG_TRACE, "use --trace-limit to replay fewer rows"},
    /* The kernel benchmark runs no engine: the sweep's flags would be silently ignored. */
    {UP_FLAG_KERNELS, UP_FLAG_METHOD, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_CONCURRENCY, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_MAX_CONCURRENCY, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_REQUESTS, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_REPETITIONS, "--kernels takes --kernel-repeats"},
    {UP_FLAG_KERNELS, UP_FLAG_OUTPUT_LEN, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_REQUEST_RATE, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_TRACE, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_WARMUP, "--kernels takes --kernel-warmup"},
    {UP_FLAG_KERNELS, UP_FLAG_MAX_SEQS, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_MAX_BATCH_TOKENS, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_PREFILL_CHUNK, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_STEP_TIMEOUT, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_KV_CACHE_MIB, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_GPU_MEM_FRACTION, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_SLO, UP_KERNELS_RUN_NO_SWEEP},
    {UP_FLAG_KERNELS, UP_FLAG_DROP_LAYERS, UP_KERNELS_RUN_NO_SWEEP},
    /* The evaluation runs its own prompts, one group at a time, untimed as a workload. */
    {UP_FLAG_EVAL, UP_FLAG_KERNELS, "they are different modes"},
    {UP_FLAG_EVAL, UP_FLAG_CONCURRENCY, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL, UP_FLAG_MAX_CONCURRENCY, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL, UP_FLAG_REQUESTS, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL, UP_FLAG_REPETITIONS, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL, UP_FLAG_PREFILL_CHUNK, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL, UP_FLAG_STEP_TIMEOUT, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL, UP_FLAG_OUTPUT_LEN, "--eval takes --eval-max-new"},
    {UP_FLAG_EVAL, UP_FLAG_REQUEST_RATE, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL, UP_FLAG_TRACE, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL, UP_FLAG_SLO, UP_EVAL_RUNS_NO_SWEEP},
    /* --eval-file alone is the same evaluation, on the file's prompts. */
    {UP_FLAG_EVAL_FILE, UP_FLAG_KERNELS, "they are different modes"},
    {UP_FLAG_EVAL_FILE, UP_FLAG_CONCURRENCY, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL_FILE, UP_FLAG_MAX_CONCURRENCY, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL_FILE, UP_FLAG_REQUESTS, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL_FILE, UP_FLAG_OUTPUT_LEN, "--eval-file takes --eval-max-new"},
    {UP_FLAG_EVAL_FILE, UP_FLAG_REQUEST_RATE, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL_FILE, UP_FLAG_TRACE, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL_FILE, UP_FLAG_SLO, UP_EVAL_RUNS_NO_SWEEP},
    {UP_FLAG_EVAL, UP_FLAG_PROMPT_SOURCE, "--eval builds its own task prompts"},
    {UP_FLAG_KERNELS, UP_FLAG_PROMPT_SOURCE, UP_KERNELS_RUN_NO_SWEEP},
};

static const char *up_flag_name(up_flag_id id) {
  for (int32_t i = 0; i < UP_N_FLAGS; i++)
    if (up_flags[i].id == id) return up_flags[i].name;
  return "?";
}

static bool up_check_workload_flags(const up_options *opt, const bool *seen, char *err, size_t err_size) {
  for (size_t i = 0; i < sizeof up_flag_requirements / sizeof up_flag_requirements[0]; i++) {
    const up_flag_needs *r = &up_flag_requirements[i];
    if (!seen[r->flag] || seen[r->needs] || (r->or_needs != UP_FLAG_COUNT && seen[r->or_needs])) continue;
    if (r->or_needs == UP_FLAG_COUNT)
      return up_error(err, err_size, "--%s needs --%s (%s)", up_flag_name(r->flag), up_flag_name(r->needs), r->why);
    return up_error(err, err_size, "--%s needs --%s or --%s (%s)", up_flag_name(r->flag), up_flag_name(r->needs),
                   up_flag_name(r->or_needs), r->why);
  }
  for (size_t i = 0; i < sizeof up_flag_conflicts / sizeof up_flag_conflicts[0]; i++) {
    const up_flag_conflict *c = &up_flag_conflicts[i];
    if (seen[c->a] && seen[c->b])
      return up_error(err, err_size, "--%s and --%s cannot be combined (%s)", up_flag_name(c->a), up_flag_name(c->b),
                     c->why);
  }
  if (opt->request_rate > 0.0) {
    if (opt->requests == 0 && opt->duration_s == 0.0)
      return up_error(err, err_size, "--request-rate needs --requests N or --duration S to know when arrivals stop");
    if (opt->requests == 0 && isinf(opt->request_rate))
      return up_error(err, err_size, "--request-rate inf issues every request at once: give --requests N");
    if (opt->requests == 0 && opt->request_rate * opt->duration_s > UP_OPEN_LOOP_MAX_REQUESTS)
      return up_error(err, err_size, "--request-rate %g over --duration %g s is more than %d requests", opt->request_rate,
                     opt->duration_s, UP_OPEN_LOOP_MAX_REQUESTS);
  }
  return true;
}

int32_t up_options_repetitions(const up_options *opt) {
  if (opt->repetitions > 0) return opt->repetitions;
  return opt->request_rate > 0.0 || opt->trace_path[0] ? 1 : UP_DEFAULT_REPETITIONS;
}

/* --repetitions against the workload, and the rounds' requests against the bound of one
 * point's records (--requests). */
static bool up_check_repetitions(const up_options *opt, char *err, size_t err_size) {
  if (opt->repetitions > 1 && (opt->request_rate > 0.0 || opt->trace_path[0]))
    return up_error(err, err_size,
                    "--repetitions %" PRId32 " cannot be combined with --%s: open loop and trace replay run each point "
                    "in one pass (give --repetitions 1 or leave it out)",
                    opt->repetitions, opt->trace_path[0] ? "trace" : "request-rate");
  if (opt->request_rate > 0.0 || opt->trace_path[0]) return true;
  int32_t per_round = opt->requests; /* 0: each point's concurrency, the largest counts */
  for (int32_t i = 0; opt->requests == 0 && i < opt->n_concurrency; i++)
    if (opt->concurrency[i] > per_round) per_round = opt->concurrency[i];
  const int64_t total = (int64_t)per_round * up_options_repetitions(opt);
  if (total > UP_OPEN_LOOP_MAX_REQUESTS)
    return up_error(err, err_size,
                    "%" PRId32 " requests per round x %" PRId32 " rounds (--repetitions%s) is more than %d requests "
                    "in one point: lower --requests or --repetitions",
                    per_round, up_options_repetitions(opt), opt->repetitions > 0 ? "" : ", default 5",
                    UP_OPEN_LOOP_MAX_REQUESTS);
  return true;
}

/* A prompt file brings its own prompts and lengths: it is cut or repeated to --ctx in the
 * closed loop, replayed at its own lengths in the open loop, and has no prefix blocks
 * for a trace's hash ids. */
static bool up_check_prompt_file(const up_options *opt, const bool *seen, char *err, size_t err_size) {
  if (opt->prompt_source.kind != UP_PROMPTS_FILE) return true;
  if (seen[UP_FLAG_TRACE])
    return up_error(err, err_size, "--prompt-source %s and --trace cannot be combined (the trace brings its own "
                    "lengths and shared prefixes; use text or random)", opt->prompt_source.paths);
  if (seen[UP_FLAG_PROMPT_LEN])
    return up_error(err, err_size, "--prompt-source %s and --prompt-len cannot be combined (open-loop prompts from a "
                    "file keep their own lengths)", opt->prompt_source.paths);
  if (opt->request_rate == 0.0 && !seen[UP_FLAG_CTX] && !seen[UP_FLAG_EVAL] && !seen[UP_FLAG_KERNELS])
    return up_error(err, err_size, "--prompt-source %s in the closed loop needs --ctx: each prompt is cut or repeated "
                    "to each length (with --request-rate the prompts run at their own lengths)",
                    opt->prompt_source.paths);
  return true;
}

/* Cross-flag checks that need no model. */
static bool up_check_combinations(const up_options *opt, const bool *seen, char *err, size_t err_size) {
  if (!up_check_workload_flags(opt, seen, err, err_size)) return false;
  if (!up_check_prompt_file(opt, seen, err, err_size)) return false;
  if (!up_check_repetitions(opt, err, err_size)) return false;
  if (opt->format == UP_FORMAT_JSONL && (opt->kernels || opt->eval_tasks[0]))
    return up_error(err, err_size, "--format jsonl streams sweep points: --%s prints md, csv or json",
                    opt->kernels ? "kernels" : "eval");
  if (opt->requests > 0 && opt->request_rate == 0.0)
    for (int32_t i = 0; i < opt->n_concurrency; i++)
      if (opt->requests < opt->concurrency[i])
        return up_error(err, err_size,
                       "--requests: %" PRId32 " is less than --concurrency %" PRId32
                       " (the point could never reach its concurrency; 0 means as many as the concurrency)",
                       opt->requests, opt->concurrency[i]);
  return true;
}

up_parse_status up_options_parse(int argc, char **argv, up_options *opt, FILE *out, char *err, size_t err_size) {
  up_options_default(opt);
  bool seen[UP_FLAG_COUNT] = {false};
  up_method_texts methods;
  up_flag_methods(UP_DEFAULT_METHODS, &methods, err, err_size);
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const up_flag_info *flag = NULL;
    const char *value = NULL;
    if (strcmp(arg, "--") == 0) {
      if (i + 1 < argc) {
        up_error(err, err_size, "unexpected argument '%s' (all options are flags; see --help)", argv[i + 1]);
        return UP_PARSE_ERROR;
      }
      break;
    } else if (strncmp(arg, "--", 2) == 0) {
      const char *name = arg + 2;
      const char *eq = strchr(name, '=');
      const size_t len = eq ? (size_t)(eq - name) : strlen(name);
      flag = up_find_long(name, len);
      if (!flag) {
        up_error(err, err_size, "unknown flag '--%.*s' (see --help)", (int)len, name);
        return UP_PARSE_ERROR;
      }
      if (eq && !flag->metavar) {
        up_error(err, err_size, "--%s takes no value (got '%s')", flag->name, eq + 1);
        return UP_PARSE_ERROR;
      }
      if (eq) value = eq + 1;
    } else if (arg[0] == '-' && arg[1] != '\0') {
      flag = up_find_short(arg[1]);
      if (!flag) {
        up_error(err, err_size, "unknown flag '%s' (see --help)", arg);
        return UP_PARSE_ERROR;
      }
      if (arg[2] != '\0') {
        if (!flag->metavar) {
          up_error(err, err_size, "-%c takes no value (got '%s')", arg[1], arg);
          return UP_PARSE_ERROR;
        }
        value = arg + 2;
      }
    } else {
      up_error(err, err_size, "unexpected argument '%s' (all options are flags; see --help)", arg);
      return UP_PARSE_ERROR;
    }
    if (flag->id == UP_FLAG_HELP) {
      up_options_print_help(out);
      return UP_PARSE_HELP;
    }
    if (flag->id == UP_FLAG_VERSION) {
      fprintf(out, "uniprefill-bench " UNIPREFILL_VERSION " (" UNIPREFILL_GIT_COMMIT ")\n");
      return UP_PARSE_HELP;
    }
    /* A following flag is never a value: `--ctx --concurrency 4` is a missing value. */
    if (flag->metavar && !value) {
      if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
        up_error(err, err_size, "--%s: missing value (%s)", flag->name, flag->metavar);
        return UP_PARSE_ERROR;
      }
      value = argv[++i];
    }
    if (!up_apply_flag(flag, value, opt, &methods, err, err_size)) return UP_PARSE_ERROR;
    seen[flag->id] = true;
  }
  if (!opt->model_given && opt->backend == UP_BACKEND_CUDA)
    snprintf(opt->model, sizeof(opt->model), "%s", "llama-3.1-8b");
  if (!up_check_combinations(opt, seen, err, err_size)) return UP_PARSE_ERROR;
  if (!up_resolve_methods(&methods, opt, err, err_size)) return UP_PARSE_ERROR;
  return UP_PARSE_OK;
}

void up_options_print_help(FILE *out) {
  fprintf(out,
          "uniprefill-bench: long-context prefill benchmark. Runs every combination of context\n"
          "length, concurrency and method, and reports time to first token and prefill throughput.\n"
          "\n"
          "usage: mpirun -np N uniprefill-bench [options]\n"
          "  (--flag value and --flag=value are both accepted; LIST is comma separated;\n"
          "   sizes take k = 1024 and M = 1024k suffixes)\n");
  for (int32_t g = 0; g < UP_GROUP_COUNT; g++) {
    fprintf(out, "\n%s:\n", up_group_titles[g]);
    for (int32_t i = 0; i < UP_N_FLAGS; i++) {
      const up_flag_info *f = &up_flags[i];
      if ((int32_t)f->group != g) continue;
      char left[64];
      /* Long names line up whether or not a "-x, " short form precedes them. */
      const char short_form[5] = {f->short_name ? '-' : ' ', f->short_name ? f->short_name : ' ',
                                  f->short_name ? ',' : ' ', ' ', '\0'};
      snprintf(left, sizeof(left), "%s--%s%s%s", short_form, f->name, f->metavar ? " " : "",
               f->metavar ? f->metavar : "");
      fprintf(out, "  %-30s %s\n", left, f->help);
    }
  }
  fprintf(out,
          "\n"
          "Method specs: NAME or NAME:KEY=VALUE:..., one of the methods below. Unset keys take the\n"
          "  method's defaults; the UniPrefill flags above set those of every uniprefill spec.\n");
  up_method_print_help(out);
  fprintf(out,
          "\n"
          "Goodput (--slo): successful requests per second whose TTFT (arrival to first token) and TPOT\n"
          "  ((E2E - TTFT) / (output tokens - 1)) are within every given objective, e.g. --slo ttft:2000,tpot:200.\n"
          "  It is shown in the table and stored per point in the results file.\n");
}
