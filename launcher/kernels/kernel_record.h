/* kernel_record.h — one row of the --kernels results: what was timed (the kernel, its
 * shape and the work it does), how long it took, the floors at the device's peaks and
 * the target where one exists. kernel_cases.c fills the description,
 * kernel_bench.c the times; results_h5.c stores rows as the /kernels table and
 * report_table.c prints them. Field names are the HDF5 field names
 * (results/README.md). */
#ifndef UP_KERNEL_RECORD_H
#define UP_KERNEL_RECORD_H

#include <stdint.h>

/* What a case times; the `kernel` field holds up_kernel_kind_names[kind]. */
typedef enum up_kernel_kind {
  UP_KERNEL_GEMM = 0,      /* the matmul op at the model's projections */
  UP_KERNEL_ATTENTION = 1, /* the attention op, causal prefill of one prompt */
  UP_KERNEL_DECODE = 2,    /* the attention op, one new row per sequence over a cache */
  UP_KERNEL_SELECTION = 3, /* the uniprefill_select op */
  UP_KERNEL_SPARSE = 4,    /* the sparse baselines' attention kernel (method_kernel sparse_attention), one prompt,
                            * and their estimators alone (record kernel "sparse_estimate") */
  UP_KERNEL_DELTANET = 5,  /* the gated_deltanet op, chunked prefill of one prompt (linear-attention models) */
  UP_KERNEL_MOE = 6,       /* an MoE block's routed experts' GEMMs and SwiGLU, and the dense MLP of their FLOPs */
  UP_KERNEL_KIND_COUNT = 7
} up_kernel_kind;

static const char *const up_kernel_kind_names[UP_KERNEL_KIND_COUNT] = {"gemm",   "attention", "decode", "selection",
                                                                       "sparse", "deltanet",  "moe"};

/* target_met / goal_met values. */
#define UP_VERDICT_NONE (-1) /* no target for this case */
#define UP_VERDICT_MISSED 0
#define UP_VERDICT_MET 1

typedef struct up_kernel_record {
  int32_t index;           /* row number in the table */
  int32_t rank;            /* MPI rank that measured it, on its own device */
  char kernel[16];         /* "gemm", "attention" (causal prefill), "decode", "selection", "sparse",
                              "sparse_estimate", "deltanet", "moe" */
  char label[48];          /* unique within a run: "gemm qkv", "attention 1x32K", "selection 16x8K" */
  char shape[48];          /* "32768x6144x4096" (m x n x k), "1x32768 h32/8 d128" (batch x len, heads, head_dim) */
  int64_t m, n, k;         /* GEMM out[m][n] = a[m][k] w[n][k]^T; moe: routed rows, an expert's intermediate,
                              hidden; 0 for the other kernels */
  int32_t batch;           /* sequences; 1 for a GEMM */
  int32_t seq_len;         /* rows per sequence (prefill, selection) or cached entries per sequence (decode); 0 for a GEMM */
  int64_t tokens;          /* packed rows the call processes */
  int32_t n_heads, n_kv_heads, head_dim; /* 0 for a GEMM; deltanet: value heads, key heads, their dim;
                                            moe: experts, experts per token (top-k), 0 */
  int32_t warmup, repeats;
  int64_t flush_bytes;     /* bytes written before each timed call to evict the GPU's L2; 0 on the CPU */
  double median_ms, min_ms, max_ms;      /* over the timed repeats */
  double flop;             /* floating-point operations of one call (conventions in results/README.md) */
  double bytes;            /* bytes one call must move at least */
  double tflops_per_s;     /* flop / median */
  double gb_per_s;         /* bytes / median, 1e9 bytes */
  double peak_tflops_per_s; /* the device's dense bf16 peak (launcher/kernels/device_peaks.c); NaN when unknown */
  double peak_gb_per_s;    /* the device's memory bandwidth; NaN when unknown */
  double flop_floor_ms;    /* flop at the peak */
  double byte_floor_ms;    /* bytes at the bandwidth */
  double floor_ms;         /* the larger of the two */
  double floor_fraction;   /* floor_ms / median_ms: 1 is at the floor */
  char target[40];         /* the target as text, e.g. ">= 743 TFLOP/s", "<= 0.5 ms"; "" when none */
  double target_tflops_per_s; /* required rate; NaN when the target is a time or there is none */
  double target_ms;        /* required time (at most); NaN when the target is a rate or there is none */
  double goal_tflops_per_s; /* stretch goal; NaN when none */
  int32_t target_met;      /* UP_VERDICT_* */
  int32_t goal_met;
  double reference_tflops_per_s; /* the published reference of ../shared/ALGORITHMS.md (H100); NaN when none */
  double reference_ms;
  char basis[96];          /* where the target and reference come from */
  double kept_fraction;    /* selection: kept rows / rows of the last call; NaN for the other kernels */
  double error;            /* a sample of the outputs against the CPU reference before timing (kernel_cases.h):
                              normalised error, for the selection the share of rows decided otherwise; 0 on the
                              CPU backend, which is the reference */
  double error_limit;      /* the most error the case accepts */
} up_kernel_record;

#endif
