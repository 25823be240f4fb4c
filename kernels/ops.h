/* ops.h — the op interface every compute backend implements.
 *
 * kernels/cpu/ is the plain fp32 reference, kernels/cuda/ the fast path; the engine
 * calls nothing else, so a new backend only fills in an up_backend_ops table.
 * Activation and weight buffers are opaque backend memory (void *) in the backend's
 * activation dtype; integer index arrays are int32 backend memory unless a
 * parameter's name ends in _host. Every op is asynchronous with respect to the host
 * unless it returns host data. Ops report broken preconditions through UP_FATAL:
 * callers validate user input before it reaches a kernel.
 *
 * Packed-batch conventions (shared by attention, KV and selection ops):
 * - Rows are tokens of several sequences packed back to back; cu_seqlens[s] is the
 *   first row of sequence s and cu_seqlens[n_seqs] the row count.
 * - The fused QKV activation has one row per token: n_heads*head_dim query values,
 *   then n_kv_heads*head_dim keys, then n_kv_heads*head_dim values.
 * - At a given layer, sequence s has kv_lens[s] cached entries *including* this
 *   step's rows; its row t of n_s rows sits at cache index kv_lens[s] - n_s + t and
 *   attends to cache entries 0..that index (causal). Prefill (empty cache) and decode
 *   (one row) are the same formula.
 * - The paged KV pool holds n_blocks blocks of block_tokens entries, each entry
 *   n_kv_heads*head_dim values, for K and for V. Entry e of sequence s lives in
 *   block block_tables[s*max_blocks_per_seq + e/block_tokens] at offset
 *   e%block_tokens; slot = block*block_tokens + offset.
 * - Sliding window (the attention op's `window`, 0 = full causal): with W > 0 the row
 *   at cache index i attends to entries max(0, i-W+1)..i only, itself and the W-1
 *   entries before it (transformers' sliding_window semantics). Blocks that lie wholly
 *   before the first entry any row of a sequence sees may be -1 in its block table
 *   (the layer-memory door gives them back to the pool) and are never read.
 *   The window counts cache entries, not original positions. Without token drops the
 *   two are the same (entry i is the token at position i). After UniPrefill drops
 *   tokens, a later layer's cache holds only the kept tokens, and the window then
 *   reaches back W kept tokens, which may span more than W original positions. This is
 *   what the UniPrefill reference does on Gemma 3 (../shared/HYBRIDS.md D.3: its
 *   FlashAttention window runs over the compacted KV, with no conversion to
 *   positions), so our results stay comparable with it. It is also what the memory
 *   can honour: a sliding layer keeps only the last W entries' blocks, and positions
 *   are not stored per entry. */
#ifndef UP_OPS_H
#define UP_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct up_attn_shape {
  int32_t n_heads;    /* query heads */
  int32_t n_kv_heads; /* key/value heads; query head h reads kv head h / (n_heads / n_kv_heads) */
  int32_t head_dim;
  float scale;        /* softmax scale, usually 1/sqrt(head_dim) */
} up_attn_shape;

/* One layer's view of the packed batch. All arrays are backend memory. */
typedef struct up_attn_batch {
  int32_t n_seqs;
  int32_t n_tokens;
  const int32_t *cu_seqlens;   /* [n_seqs + 1] */
  const int32_t *kv_lens;      /* [n_seqs] entries at this layer including this step's rows */
  const int32_t *block_tables; /* [n_seqs * max_blocks_per_seq] block ids at this layer */
  int32_t max_blocks_per_seq;
} up_attn_batch;

/* The paged KV storage of all layers: blocks are handed out by engine/kv_cache. */
typedef struct up_kv_pool {
  void *k;               /* [n_blocks][block_tokens][kv_dim] */
  void *v;               /* same layout */
  int32_t n_blocks;
  int32_t block_tokens;
  int32_t kv_dim;        /* n_kv_heads * head_dim */
} up_kv_pool;

/* Where a step's time goes, for the per-step breakdown in the results. */
typedef enum up_phase {
  UP_PHASE_GEMM = 0,      /* matmul */
  UP_PHASE_ATTENTION = 1, /* attention */
  UP_PHASE_SELECTION = 2, /* a method's token selection (a method kernel) */
  UP_PHASE_OTHER = 3,     /* everything else: norms, RoPE, KV stores, gathers, uploads, gaps */
  UP_PHASE_COUNT = 4
} up_phase;

typedef struct up_backend up_backend;

/* A method kernel as the op table hands it out: a generic function pointer, cast back
 * to its real type by the method kernel header that names it (see method_kernel). */
typedef void (*up_method_kernel_fn)(void);

typedef struct up_backend_ops {
  const char *name;

  /* --- memory ------------------------------------------------------------ */
  /* Backend memory of `bytes`; `what` names it in the out-of-memory error. Never NULL. */
  void *(*alloc)(up_backend *be, size_t bytes, const char *what);
  void (*free)(up_backend *be, void *ptr);
  /* Bytes of backend memory the backend could still allocate (host RAM for cpu). */
  size_t (*memory_available)(up_backend *be);
  /* Convert host fp32 to the activation dtype at dst[offset .. offset+n). */
  void (*upload_f32)(up_backend *be, void *dst, size_t offset, const float *src, size_t n);
  void (*download_f32)(up_backend *be, float *dst, const void *src, size_t offset, size_t n);
  void (*upload_i32)(up_backend *be, int32_t *dst, const int32_t *src_host, size_t n);
  void (*download_i32)(up_backend *be, int32_t *dst_host, const int32_t *src, size_t n);
  /* dst[offset + i] = bound * up_rng_symmetric(seed, stream, i) for i < n (core/rng.h),
   * drawn where the memory lives: weights of any size initialise without host traffic,
   * and every backend gets the same values before rounding to its dtype. */
  void (*fill_uniform)(up_backend *be, void *dst, size_t offset, size_t n, float bound, uint64_t seed,
                       uint64_t stream);
  /* Wait for all queued work; timing reads the host clock after this. */
  void (*synchronize)(up_backend *be);

  /* --- per-token ops ----------------------------------------------------- */
  /* out[t] = table[tokens[t]] for n_tokens rows of dim. */
  void (*embed)(up_backend *be, void *out, const void *table, const int32_t *tokens, int32_t n_tokens,
                int32_t dim);
  /* out = x / rms(x) * weight per row; out may be x. */
  void (*rmsnorm)(up_backend *be, void *out, const void *x, const void *weight, int32_t n_rows, int32_t dim,
                  float eps);
  /* residual += x; out = rmsnorm(residual) * weight (one pass: the fused pre-norm of the next sub-block). */
  void (*add_rmsnorm)(up_backend *be, void *out, void *residual, const void *x, const void *weight,
                      int32_t n_rows, int32_t dim, float eps);
  /* out[m][n] = sum_k a[m][k] * w[n][k]: activations times a weight stored [out][in]. */
  void (*matmul)(up_backend *be, void *out, const void *a, const void *w, int32_t m, int32_t n, int32_t k);
  /* Rotate the query and key parts of qkv in place by each row's position, rotate-half
   * convention (dims i and i + head_dim/2 form a pair); inv_freq holds head_dim/2
   * already-scaled frequencies (backend memory, fp32). */
  void (*rope)(up_backend *be, void *qkv, const int32_t *positions, const float *inv_freq, int32_t n_tokens,
               const up_attn_shape *shape);
  /* out[t][i] = silu(gate_up[t][i]) * gate_up[t][inter + i]. */
  void (*swiglu)(up_backend *be, void *out, const void *gate_up, int32_t n_rows, int32_t inter);
  /* out[t][i] = gelu_tanh(gate_up[t][i]) * gate_up[t][inter + i], where
   * gelu_tanh(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): Gemma's GeGLU
   * (transformers' gelu_pytorch_tanh, ggml's gelu). */
  void (*geglu)(up_backend *be, void *out, const void *gate_up, int32_t n_rows, int32_t inter);
  /* RMSNorm of each head, in place: in each of n_rows rows (row_stride values apart),
   * n_heads heads of head_dim values from column first_col each become
   * x / rms(x) * weight, the head_dim weights shared by every head (Gemma 3's per-head
   * query and key norms on the fused qkv rows, before RoPE). */
  void (*head_rmsnorm)(up_backend *be, void *x, const void *weight, int32_t n_rows, int32_t row_stride,
                       int32_t first_col, int32_t n_heads, int32_t head_dim, float eps);
  /* x[i] *= factor for the n values at x (Gemma's embedding scale). */
  void (*scale)(up_backend *be, void *x, size_t n, float factor);
  /* dst[r] = src[rows[r]] for activation rows of dim values. */
  void (*gather_rows)(up_backend *be, void *dst, const void *src, const int32_t *rows, int32_t n_rows,
                      int32_t dim);
  /* dst[r] = src[rows[r]] for int32 values (positions). */
  void (*gather_i32)(up_backend *be, int32_t *dst, const int32_t *src, const int32_t *rows, int32_t n_rows);
  /* dst_host[r] = index of the largest of row r's n_cols values (lowest index on ties),
   * or -1 when the row holds a NaN or +inf: non-finite activations, which the caller
   * turns into a failed sequence (checked here, where every value is read anyway). -inf
   * is an ordinary value: no maximum depends on it, and a mask may write it. */
  void (*argmax_rows)(up_backend *be, int32_t *dst_host, const void *x, int32_t n_rows, int32_t n_cols);

  /* --- attention and KV -------------------------------------------------- */
  /* Copy this step's keys and values out of qkv into the pool at slot_mapping[t]. */
  void (*kv_store)(up_backend *be, const up_kv_pool *pool, const void *qkv, const int32_t *slot_mapping,
                   int32_t n_tokens, const up_attn_shape *shape);
  /* Causal GQA attention of every row's query over its sequence's cached entries
   * (conventions above), prefill and decode rows alike; out has n_heads*head_dim
   * values per row. window: 0 for full causal attention, W > 0 for a sliding window
   * of W cache entries (conventions above); negative is a caller bug. */
  void (*attention)(up_backend *be, void *out, const void *qkv, const up_kv_pool *pool,
                    const up_attn_batch *batch, const up_attn_shape *shape, int32_t window);

  /* --- method kernels ------------------------------------------------------ */
  /* A kernel that belongs to one method (its types and contract live in that method's
   * kernel header, e.g. kernels/uniprefill_ops.h, which casts the result back to the
   * kernel's own type), looked up by the name that header gives it; NULL when this
   * backend has no such kernel. Keeps this interface free of any method's types. */
  up_method_kernel_fn (*method_kernel)(up_backend *be, const char *name);

  /* --- step timing ------------------------------------------------------- */
  /* Work queued from now on counts toward `phase`, until the next mark. */
  void (*phase_mark)(up_backend *be, up_phase phase);
  /* Wait for the queued work, add each phase's milliseconds since the step's first mark
   * to ms[UP_PHASE_COUNT], and start over. Device time on a GPU (events on the stream),
   * wall time on the CPU. */
  void (*phase_collect)(up_backend *be, double *ms);

  /* --- lifetime ---------------------------------------------------------- */
  void (*destroy)(up_backend *be);
} up_backend_ops;

struct up_backend {
  const up_backend_ops *ops;
  up_dtype act_dtype;
  char device_name[128]; /* what the run reports, e.g. the CPU model or GPU name */
  void *impl;            /* backend-private state */
};

#ifdef __cplusplus
}
#endif

#endif
