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

/* --- Qwen3-Next op types (issue 14; the ops are the last section of up_backend_ops) --- */

/* The sequences of a packed batch as the recurrent (state-carrying) ops see them: each
 * sequence owns one state slot, which the op reads as its starting state when
 * has_initial_state[s] is nonzero (a cached prefix continues, or a decode step) and
 * zeros otherwise, and which holds the state after the sequence's last row when the op
 * returns. A one-row sequence with a state is a decode step: the same op, no other path.
 * All arrays are backend memory. */
typedef struct up_recurrent_batch {
  int32_t n_seqs;
  int32_t n_tokens;
  const int32_t *cu_seqlens;        /* [n_seqs + 1], as for attention */
  const int32_t *state_slots;       /* [n_seqs] slot of each sequence in the state pools */
  const int32_t *has_initial_state; /* [n_seqs] nonzero: start from the slot's state */
} up_recurrent_batch;

/* Gated DeltaNet heads (../shared/HYBRIDS.md C.3): n_value_heads is a multiple of
 * n_key_heads and value head j reads key head j / (n_value_heads / n_key_heads)
 * (grouped, the checkpoint's order). q and k rows hold n_key_heads*head_dim values,
 * v rows n_value_heads*head_dim; the three share one row stride (they are slices of
 * the convolved q|k|v row). */
typedef struct up_gdn_shape {
  int32_t n_key_heads;
  int32_t n_value_heads;
  int32_t head_dim;   /* dk = dv */
  int32_t qkv_stride; /* values from one row of q (and of k, v) to the next */
  float scale;        /* multiplies the l2-normalised queries: 1/sqrt(head_dim) */
} up_gdn_shape;

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
  /* `bytes` bytes as they are, no dtype conversion: buffers a kernel keeps in fp32
   * whatever the activation dtype (the per-head block scores of tensor parallelism).
   * The download waits for queued work, as download_i32 does. */
  void (*upload_bytes)(up_backend *be, void *dst, const void *src_host, size_t bytes);
  void (*download_bytes)(up_backend *be, void *dst_host, const void *src, size_t bytes);
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

  /* --- Qwen3-Next ops (issue 14: ../shared/HYBRIDS.md C.3-C.8) --------------------
   * Gated DeltaNet, MoE routing and the gated attention's helpers. CPU reference in
   * kernels/cpu/cpu_{causal_conv,gated_deltanet,moe,gated_attention}.c, CUDA in
   * kernels/cuda/deltanet/. g, beta, router weights and the DeltaNet state are fp32
   * backend memory whatever the activation dtype; everything else follows the header. */
  /* Depthwise causal conv over each sequence of the batch, then SiLU:
   * out[t][c] = silu(sum_j weight[c][j] * x[t - width + 1 + j][c]), where rows before the
   * sequence's first come from conv_state (oldest first) when it has an initial state,
   * else are zero. x rows are x_stride values apart, out is [n_tokens][channels].
   * conv_state: activation dtype [slots][width - 1][channels] (pre-conv inputs, so the
   * dtype loses nothing); it ends holding each sequence's last width - 1 inputs. */
  void (*causal_conv1d)(up_backend *be, void *out, const void *x, int32_t x_stride, const void *weight,
                        void *conv_state, const up_recurrent_batch *batch, int32_t channels, int32_t width);
  /* Per token and value head: g = -exp(a_log[h]) * softplus(a[t][h] + dt_bias[h])
   * (softplus(x) = x above 20, as torch) and beta = sigmoid(b[t][h]); a and b rows are
   * ab_stride values apart; g and beta are fp32 [n_tokens][n_heads]. */
  void (*gdn_gates)(up_backend *be, float *g, float *beta, const void *a, const void *b, int32_t ab_stride,
                    const void *a_log, const void *dt_bias, int32_t n_tokens, int32_t n_heads);
  /* The gated delta rule over every sequence of the batch (C.3 step 4-5), chunked by 64
   * rows from each sequence's start (C.4): q and k are l2-normalised per head (eps 1e-6
   * inside the root), q scaled by shape->scale; state is fp32
   * [slots][n_value_heads][head_dim (k)][head_dim (v)]; out [n_tokens][n_value_heads *
   * head_dim]. Equal to the per-token recurrence up to rounding. */
  void (*gated_deltanet)(up_backend *be, void *out, const void *q, const void *k, const void *v, const float *g,
                         const float *beta, float *state, const up_recurrent_batch *batch, const up_gdn_shape *shape);
  /* out[t][h] = x[t][h] / rms(x[t][h]) * weight * silu(z[t][h]) per head of head_dim
   * values (plain weight, not 1 + w); x and out are [n_tokens][n_heads*head_dim], z
   * rows are z_stride values apart. */
  void (*gated_rmsnorm)(up_backend *be, void *out, const void *x, const void *z, int32_t z_stride,
                        const void *weight, int32_t n_tokens, int32_t n_heads, int32_t head_dim, float eps);
  /* The MoE router: fp32 softmax of each logits row over n_experts, its top_k
   * probabilities in descending order (the lower expert first on ties) into experts
   * (int32 [n_tokens][top_k]) and weights (fp32, divided by their sum when renormalize). */
  void (*moe_route)(up_backend *be, float *weights, int32_t *experts, const void *logits, int32_t n_tokens,
                    int32_t n_experts, int32_t top_k, int32_t renormalize);
  /* Groups the n_tokens*top_k (token, choice) pairs by expert, in pair order within an
   * expert: source_rows[i] is the token of the i-th grouped pair (gather_rows makes the
   * experts' inputs with it), slot_of[t*top_k + j] where pair (t, j) went, and
   * expert_offsets_host[e] .. [e + 1] the grouped rows of expert e (host, n_experts + 1
   * values: the caller sizes each expert's GEMM from them, so this op waits). */
  void (*moe_sort)(up_backend *be, int32_t *source_rows, int32_t *slot_of, int32_t *expert_offsets_host,
                   const int32_t *experts, int32_t n_tokens, int32_t top_k, int32_t n_experts);
  /* out[t] = sum_j weights[t][j] * expert_out[slot_of[t*top_k + j]], plus
   * sigmoid(shared_gate[t]) * shared_out[t] when shared_out is not NULL (shared_gate:
   * one logit per token); rows of dim values. */
  void (*moe_combine)(up_backend *be, void *out, const void *expert_out, const int32_t *slot_of,
                      const float *weights, const void *shared_out, const void *shared_gate, int32_t n_tokens,
                      int32_t top_k, int32_t dim);
  /* qg rows hold n_heads x [query (head_dim) | gate (head_dim)]: the queries go to q
   * (rows q_stride values apart, e.g. the fused qkv row), the gates to gate
   * [n_tokens][n_heads*head_dim]. */
  void (*split_query_gate)(up_backend *be, void *q, int32_t q_stride, void *gate, const void *qg, int32_t n_tokens,
                           int32_t n_heads, int32_t head_dim);
  /* x[r][i] *= sigmoid(gate[r][i]): the attention output gate. */
  void (*sigmoid_gate)(up_backend *be, void *x, const void *gate, int32_t n_rows, int32_t dim);
  /* rope (above) on the first rotary_dim dims of each query and key head only, pairs
   * (i, i + rotary_dim/2); inv_freq holds rotary_dim/2 frequencies; the other dims pass. */
  void (*rope_partial)(up_backend *be, void *qkv, const int32_t *positions, const float *inv_freq,
                       int32_t n_tokens, const up_attn_shape *shape, int32_t rotary_dim);
  /* matmul (above) for each of n_groups groups of rows in one call: rows
   * offsets_host[g] .. offsets_host[g + 1] of a ([rows][k]) times weight g of the stack w
   * ([n_groups][n][k]) into the same rows of out ([rows][n]); empty groups are skipped.
   * offsets_host: host, n_groups + 1 values (moe_sort's). An MoE layer's experts'
   * GEMMs in one grouped call, the alternative to one matmul per expert
   * (kernels/moe_expert_gemms.h; --kernels times both). */
  void (*grouped_matmul)(up_backend *be, void *out, const void *a, const void *w, const int32_t *offsets_host,
                         int32_t n_groups, int32_t n, int32_t k);

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
