/* cuda_backend_impl.h — private to kernels/cuda: the CUDA backend's state (be->impl),
 * shared by the .cu files that implement its ops, and the op functions that
 * cuda_backend.cu puts in the table. Nothing outside kernels/cuda includes this. */
#ifndef UP_CUDA_BACKEND_IMPL_H
#define UP_CUDA_BACKEND_IMPL_H

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/cuda/cuda_check.h"

#include "kernels/ops.h"

/* One cached cuBLASLt plan: the layouts and the heuristic's algorithm for a shape and
 * the alignments of its pointers (an algorithm chosen for 256-byte aligned buffers may
 * not run on less aligned ones, so alignment is part of the key). */
typedef struct up_cuda_matmul_plan {
  int32_t m, n, k;
  uint16_t align_a, align_w, align_out;
  int used;
  cublasLtMatrixLayout_t w_layout, a_layout, out_layout;
  cublasLtMatmulAlgo_t algo;
} up_cuda_matmul_plan;

/* Prefill row counts change every step, so misses are normal: a small table with
 * round-robin replacement keeps lookups a short scan and memory bounded. */
enum { UP_CUDA_MATMUL_PLANS = 64 };

/* A negative row index or a slot outside the pool, seen by a kernel. Kernels cannot
 * end the job, so they record the first one here and the host reports it through
 * UP_FATAL at the next call that synchronises (synchronize, downloads, argmax). */
typedef struct up_cuda_index_error {
  int32_t flagged;
  int32_t op; /* up_cuda_index_op */
  int32_t row;
  int32_t value;
} up_cuda_index_error;

typedef enum up_cuda_index_op {
  UP_CUDA_OP_EMBED = 1,
  UP_CUDA_OP_GATHER_ROWS,
  UP_CUDA_OP_GATHER_I32,
  UP_CUDA_OP_KV_STORE,
  UP_CUDA_OP_SPARSE_KV_LEN,   /* row: the sequence, value: its cache length */
  UP_CUDA_OP_SPARSE_QBLOCKS,  /* row: the sequence, value: its query blocks in the pattern */
  UP_CUDA_OP_BOUNDED_FIRST_ENTRY, /* row: the packed row, value: its first entry (past its own index) */
} up_cuda_index_op;

/* Host-side staging for fp32 <-> bf16 transfers: two pinned buffers used in turn, so
 * converting one chunk on the host overlaps the copy of the previous one. */
enum { UP_CUDA_STAGING_ELEMS = 1 << 22 }; /* 8 MiB of bf16 per buffer */

/* The UniPrefill selection's workspace, allocated by its first call (uniprefill_select.cu). */
typedef struct up_cuda_select_state up_cuda_select_state;
typedef struct up_cuda_grouped_state up_cuda_grouped_state;

/* Decode split-kernel instances whose occupancy the backend caches (attention_decode.cu). */
#define UP_CUDA_DECODE_INSTANCES 16

/* A Llama-3.1-70B step marks about 12 phases per layer (80 layers). */
#define UP_CUDA_PHASE_EVENTS 2048

typedef struct up_cuda_backend {
  int device;
  int sm_count;
  cudaStream_t stream;
  cublasLtHandle_t lt;
  cublasLtMatmulDesc_t matmul_desc; /* bf16 x bf16 -> bf16, fp32 compute, W transposed */
  void *lt_workspace;
  size_t lt_workspace_bytes;
  up_cuda_matmul_plan plans[UP_CUDA_MATMUL_PLANS];
  int32_t next_victim;
  int32_t last_hit;
  __nv_bfloat16 *staging[2]; /* pinned host */
  cudaEvent_t staging_free[2]; /* recorded after the copy that last read staging[i] */
  int32_t next_staging;
  up_cuda_index_error *index_error;      /* device */
  up_cuda_index_error *index_error_host; /* pinned host copy */
  int32_t *argmax_out;                   /* device, argmax_capacity entries */
  int32_t argmax_capacity;
  up_cuda_select_state *select_state;    /* NULL until the first uniprefill_select */
  up_cuda_grouped_state *grouped_state;  /* NULL until the first grouped_matmul (cuda_grouped_matmul.cu) */
  void *moe_sort_scratch;                /* device: moe_sort's keys, ids and CUB temp, grown on demand (cuda_moe.cu) */
  size_t moe_sort_scratch_bytes;
  void *attn_workspace;                  /* device: attention's decode partials (cuda_attention.cu) */
  size_t attn_workspace_bytes;
  int attn_prefill_variant;              /* up_cuda_attention_prefill's `variant`; 0: the default */
  int32_t attn_decode_kernel;            /* UP_ATTN_DECODE_*; 0 until the first decode call reads UP_DECODE_KERNEL */
  int32_t attn_decode_ctas_per_sm[UP_CUDA_DECODE_INSTANCES]; /* per decode kernel instance; 0: not asked yet
                                                               * (attention_decode.cu) */
  void *gdn_workspace;                   /* device: the chunked delta rule's chunk index and T|P (cuda_gdn_chunked.cu) */
  size_t gdn_workspace_bytes;
  /* Step phases: an event per mark on the stream, its phase beside it; one slot stays
   * free for the closing event. Marks past the capacity extend the last phase. */
  cudaEvent_t phase_events[UP_CUDA_PHASE_EVENTS];
  uint8_t phase_of[UP_CUDA_PHASE_EVENTS];
  int32_t n_phase_marks;
} up_cuda_backend;

static inline up_cuda_backend *up_cuda_impl(up_backend *be) { return (up_cuda_backend *)be->impl; }

/* Wait for the stream, then report any index error a kernel recorded (cuda_backend.cu). */
void up_cuda_sync_and_check(up_cuda_backend *cb);

/* cuda_phase_timing.cu: per-step phase breakdown with events. */
int up_cuda_phase_init(up_cuda_backend *cb, char *err, size_t err_size);
void up_cuda_phase_release(up_cuda_backend *cb);
extern "C" {
void up_cuda_phase_mark(up_backend *be, up_phase phase);
void up_cuda_phase_collect(up_backend *be, double *ms);
}

/* cuda_elementwise.cu: the memory-bound per-token ops. */
extern "C" {
void up_cuda_fill_uniform(up_backend *be, void *dst, size_t offset, size_t n, float bound, uint64_t seed,
                          uint64_t stream);
void up_cuda_embed(up_backend *be, void *out, const void *table, const int32_t *tokens, int32_t n_tokens,
                   int32_t dim);
void up_cuda_rmsnorm(up_backend *be, void *out, const void *x, const void *weight, int32_t n_rows, int32_t dim,
                     float eps);
void up_cuda_add_rmsnorm(up_backend *be, void *out, void *residual, const void *x, const void *weight,
                         int32_t n_rows, int32_t dim, float eps);
void up_cuda_rope(up_backend *be, void *qkv, const int32_t *positions, const float *inv_freq, int32_t n_tokens,
                  const up_attn_shape *shape);
void up_cuda_swiglu(up_backend *be, void *out, const void *gate_up, int32_t n_rows, int32_t inter);
void up_cuda_gather_rows(up_backend *be, void *dst, const void *src, const int32_t *rows, int32_t n_rows,
                         int32_t dim);
void up_cuda_gather_i32(up_backend *be, int32_t *dst, const int32_t *src, const int32_t *rows, int32_t n_rows);
void up_cuda_argmax_rows(up_backend *be, int32_t *dst_host, const void *x, int32_t n_rows, int32_t n_cols);
void up_cuda_kv_store(up_backend *be, const up_kv_pool *pool, const void *qkv, const int32_t *slot_mapping,
                      int32_t n_tokens, const up_attn_shape *shape);

/* cuda_gemma_ops.cu: the ops Gemma 3's layer adds. */
extern "C" {
void up_cuda_geglu(up_backend *be, void *out, const void *gate_up, int32_t n_rows, int32_t inter);
void up_cuda_head_rmsnorm(up_backend *be, void *x, const void *weight, int32_t n_rows, int32_t row_stride,
                          int32_t first_col, int32_t n_heads, int32_t head_dim, float eps);
void up_cuda_scale(up_backend *be, void *x, size_t n, float factor);
}

/* cuda_matmul.cu: cuBLASLt GEMM and its plan cache. */
void up_cuda_matmul(up_backend *be, void *out, const void *a, const void *w, int32_t m, int32_t n, int32_t k);
/* The matmul descriptor and workspace: 0, or -1 with the reason in err. */
int up_cuda_matmul_init(up_cuda_backend *cb, char *err, size_t err_size);
void up_cuda_matmul_release(up_cuda_backend *cb); /* plans, descriptor, workspace */

/* cuda_grouped_matmul.cu: cuBLAS's grouped GEMM and its state. */
void up_cuda_grouped_matmul(up_backend *be, void *out, const void *a, const void *w, const int32_t *offsets_host,
                            int32_t n_groups, int32_t n, int32_t k);
void up_cuda_grouped_matmul_release(up_cuda_backend *cb);

/* uniprefill_select.cu: the selection op (declared in uniprefill_select.h) and its workspace. */
void up_cuda_uniprefill_select_release(up_cuda_backend *cb);
}

#endif
