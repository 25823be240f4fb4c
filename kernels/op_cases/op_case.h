/* op_case.h — one call of one op of the backend interface (kernels/ops.h) at one shape,
 * with how its inputs are made and how close to the CPU reference its outputs must be.
 * The same cases drive the GPU correctness tests (every op of the CUDA backend against
 * the CPU backend, tests/gpu) and `uniprefill-bench --kernels` (which validates a sample
 * of each case against the CPU before timing it): the lists live above this layer
 * (launcher/kernels/op_case_list.c, kernel_cases.c), the drivers that run a case here.
 *
 * Inputs are drawn on the backend under test (fill_uniform from a seed, index arrays
 * uploaded) and the reference reads them back from there, so both sides see exactly the
 * same values whatever the backend's dtype, and only the arithmetic differs. Owns no
 * list of cases and no reporting. */
#ifndef UP_OP_CASE_H
#define UP_OP_CASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"
#include "kernels/uniprefill_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-sequence lists of a batch case; a uniform batch has any number of sequences. */
#define UP_OP_CASE_MAX_SEQS 8

/* transfers, fill_uniform: n values at an offset into a buffer. */
typedef struct up_op_span_dims {
  size_t n;
  size_t offset;
} up_op_span_dims;

/* Row-wise ops. */
typedef struct up_op_rows_dims {
  int32_t rows;     /* rows written */
  int32_t dim;      /* values per row (swiglu: the intermediate size; argmax: the columns) */
  int32_t src_rows; /* embed: vocabulary rows; gather: source rows */
} up_op_rows_dims;

/* matmul: out[m][n] = a[m][k] w[n][k]^T. */
typedef struct up_op_gemm_dims {
  int64_t m, n, k;
  int32_t a_offset; /* a starts this many elements into its buffer: a pointer cuBLASLt must not assume aligned */
} up_op_gemm_dims;

/* rope over n_tokens rows at positions first_position + t. */
typedef struct up_op_rope_dims {
  up_attn_shape shape;
  int32_t n_tokens;
  int32_t first_position;
  const float *inv_freq; /* head_dim/2 frequencies (host, owned by the list); NULL: theta 10000 */
} up_op_rope_dims;

/* sparse attention: a pattern drawn per (sparse sequence, head, query block); the
 * sequences whose candidate[] flag is set (prior 0) get one, the others are dense.
 * Sparse estimates: the same sequences get a pattern from the estimator under test. */
typedef struct up_op_sparse_dims {
  int32_t block_q, block_k;
  float density;      /* share of the off-diagonal causal key ranges kept (1: all of them); minference
                       * estimate: its density cap; xattention and flexprefill estimates: theirs, 0 none */
  bool unaligned;     /* ranges at arbitrary starts below the diagonal, as MInference's slashes */
  int32_t extra_keys; /* gathered keys per list row, outside its ranges and before its rows */
  bool dense_reference; /* sparse attention: the reference is the dense attention op (a pattern of every
                         * causal block, density 1 without extra keys, covers the same keys) */
  int32_t stride;     /* xattention estimate: the antidiagonal stride */
  float threshold;    /* xattention estimate: the mass threshold */
  int32_t vertical;   /* minference estimate: v of every head (0 for the block methods) */
  int32_t slash;      /* minference estimate: s of every head */
  float gamma, tau;   /* flexprefill estimate: coverage and query-aware threshold */
  int32_t min_budget; /* flexprefill estimate: tokens */
} up_op_sparse_dims;

/* An MoE block's routed experts (kernels/op_cases/case_moe_experts.c): tokens routed
 * to top_k of n_experts experts of intermediate `inter` over `hidden`. */
typedef struct up_op_moe_dims {
  int32_t tokens, hidden, inter, n_experts, top_k;
} up_op_moe_dims;

/* kv_store, attention, selection: a packed batch over a paged KV pool whose blocks are
 * handed out in shuffled order. */
typedef struct up_op_batch_dims {
  up_attn_shape shape;
  int32_t block_tokens;
  int32_t n_seqs;
  bool per_sequence;                         /* rows/prior/candidate hold n_seqs entries ... */
  int32_t rows[UP_OP_CASE_MAX_SEQS];         /* rows this step */
  int32_t prior[UP_OP_CASE_MAX_SEQS];        /* cached entries before them */
  uint8_t candidate[UP_OP_CASE_MAX_SEQS];    /* selection: 0 for decode rows, which are never dropped */
  int32_t rows_each, prior_each;             /* ... else every sequence has these (all candidates) */
  float query_bound;                         /* |queries| < this (the first n_heads*head_dim values of a qkv row) */
  float qkv_bound;                           /* |keys, values| of the qkv rows */
  float pool_bound;                          /* |cached keys, values| */
  bool spare_blocks;                         /* a -1 table slot past every sequence and 3 unowned blocks */
  bool poison_unowned;                       /* pool rows no sequence owns are NaN: a read past the end shows */
  up_select_params select;                   /* selection knobs */
  int32_t window;                            /* attention: cache entries each query sees (0: full causal);
                                              * bounded attention: the most a row's drawn start leaves it */
  up_op_sparse_dims sparse;                  /* sparse attention: the drawn pattern (case_sparse_attention.c) */
} up_op_batch_dims;

typedef struct up_op_driver up_op_driver;

typedef struct up_op_case {
  const up_op_driver *driver; /* runs it; driver->ops[0] is the op it calls */
  char label[96];
  double tolerance;           /* largest error accepted: normalised for values, a share of mismatches for
                                 indices and copies (0: identical) */
  int32_t sample;             /* rows (selection: sequences) compared with the reference; 0: all */
  bool poison;                /* outputs start as NaN, so an element the op never writes shows */
  union {
    up_op_span_dims span;
    up_op_rows_dims rows;
    up_op_gemm_dims gemm;
    up_op_rope_dims rope;
    up_op_batch_dims batch;
    up_op_moe_dims moe;
  };
} up_op_case;

/* A reference result beside the outputs under test. */
typedef struct up_op_check {
  double error;     /* see up_op_case.tolerance; +inf when an output is not finite */
  bool passed;      /* error <= tolerance */
  bool near_tie;    /* the reference's own choice was within rounding of another (selection): a
                       difference is not the backend's fault */
  double ms;        /* the checked call's time by the backend's phase clock */
  char detail[160]; /* what was compared, for a report line */
} up_op_check;

/* How a case runs. Calls in order: make, reference (inputs as they are before the op),
 * run (any number of times), compare, free_reference, destroy. */
struct up_op_driver {
  const char *ops[8];  /* the up_backend_ops members a case calls (op_index.h), NULL-terminated */
  /* Backend buffers of c's inputs and outputs on be, drawn from seed. */
  void *(*make)(up_backend *be, const up_op_case *c, uint64_t seed);
  /* One call of the op (what --kernels times); the op's host result where it has one
   * (rows a selection keeps), else 0. */
  int64_t (*run)(up_backend *be, const up_op_case *c, void *inputs);
  /* The expected outputs of c->sample on ref, the CPU reference backend (whose memory is
   * host memory), from the inputs as they are now on be. */
  void *(*reference)(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref);
  /* be's outputs (after run) against the reference: error, near_tie and detail. */
  void (*compare)(up_backend *be, const up_op_case *c, void *inputs, const void *reference, up_op_check *out);
  void (*free_reference)(void *reference);
  void (*destroy)(up_backend *be, void *inputs);
  /* Multiply-adds (or values moved) of one call: how long a check takes on the CPU. */
  double (*work)(const up_op_case *c);
};

/* The drivers, one per op (or pair of ops that are only meaningful together). */
extern const up_op_driver up_op_transfers;   /* upload/download f32 and i32, memory_available */
extern const up_op_driver up_op_fill;        /* fill_uniform */
extern const up_op_driver up_op_embed;
extern const up_op_driver up_op_rmsnorm;
extern const up_op_driver up_op_add_rmsnorm;
extern const up_op_driver up_op_swiglu;
extern const up_op_driver up_op_geglu;        /* rows dims: rows x dim out */
extern const up_op_driver up_op_head_rmsnorm; /* rope dims: the qkv rows' shape and count */
extern const up_op_driver up_op_scale;        /* rows dims: rows x dim values */
extern const up_op_driver up_op_gather_rows;
extern const up_op_driver up_op_gather_i32;
extern const up_op_driver up_op_argmax_rows;
extern const up_op_driver up_op_rope;
extern const up_op_driver up_op_kv_store;
extern const up_op_driver up_op_matmul;
extern const up_op_driver up_op_attention;
extern const up_op_driver up_op_selection;
extern const up_op_driver up_op_sparse_attention;   /* the method kernel UP_SPARSE_ATTENTION_KERNEL */
extern const up_op_driver up_op_bounded_attention;  /* the method kernel UP_UNIPREFILL_BOUNDED_ATTENTION_KERNEL;
                                                       * batch.window bounds each row's drawn first entry */
extern const up_op_driver up_op_xattention_estimate; /* the method kernel UP_XATTENTION_ESTIMATE_KERNEL */
extern const up_op_driver up_op_minference_estimate; /* the method kernel UP_MINFERENCE_ESTIMATE_KERNEL */
extern const up_op_driver up_op_flexprefill_estimate; /* the method kernel UP_FLEXPREFILL_ESTIMATE_KERNEL */

#ifdef __cplusplus
}
#endif

#endif
