/* cuda_elementwise.cu — the backend's memory-bound per-token ops: embedding and row
 * gathers, RMSNorm (plain and fused with the residual add), RoPE, SwiGLU, argmax and
 * the paged KV store. bf16 in memory, fp32 arithmetic. Each kernel moves 16 bytes
 * (8 bf16) per access when the row width is a multiple of 8 and the base pointers are
 * 16-byte aligned, and falls back to one element per access otherwise (template
 * parameter VEC). Row offsets are int64: 128K rows x 28672 columns overflow int32. */
#include <float.h>
#include <limits.h>

#include "kernels/cuda/cuda_backend_impl.h"

/* --- helpers ----------------------------------------------------------------------- */

enum { ROW_THREADS_MAX = 256, FLAT_THREADS = 256 };

static bool aligned16(const void *ptr) { return ((uintptr_t)ptr & 15u) == 0; }

/* Threads for a kernel that gives each row one block of `units` vector accesses:
 * enough to cover the row at most once, a whole number of warps, at most 256. */
static int row_threads(int64_t units) {
  const int64_t warps = (units + 31) / 32;
  return warps >= ROW_THREADS_MAX / 32 ? ROW_THREADS_MAX : (int)(warps < 1 ? 32 : warps * 32);
}

/* Blocks for a grid-stride loop over `units`: cover them once, but stop at a size that
 * fills the GPU many times over (gridDim.x allows 2^31 - 1; this keeps launches sane). */
static unsigned flat_blocks(int64_t units) {
  const int64_t blocks = (units + FLAT_THREADS - 1) / FLAT_THREADS;
  return (unsigned)(blocks < (1 << 20) ? blocks : (1 << 20));
}

template <int VEC>
static __device__ __forceinline__ void load_f32(const __nv_bfloat16 *p, float *v) {
  if constexpr (VEC == 8) {
    const uint4 raw = *reinterpret_cast<const uint4 *>(p);
    const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&raw);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = __bfloat1622float2(h[j]);
      v[2 * j] = f.x;
      v[2 * j + 1] = f.y;
    }
  } else {
    v[0] = __bfloat162float(*p);
  }
}

template <int VEC>
static __device__ __forceinline__ void store_bf16(__nv_bfloat16 *p, const float *v) {
  if constexpr (VEC == 8) {
    uint4 raw;
    __nv_bfloat162 *h = reinterpret_cast<__nv_bfloat162 *>(&raw);
#pragma unroll
    for (int j = 0; j < 4; ++j) h[j] = __floats2bfloat162_rn(v[2 * j], v[2 * j + 1]);
    *reinterpret_cast<uint4 *>(p) = raw;
  } else {
    *p = __float2bfloat16_rn(v[0]);
  }
}

/* Copy VEC bf16 values without converting them. */
template <int VEC>
static __device__ __forceinline__ void copy_bf16(__nv_bfloat16 *dst, const __nv_bfloat16 *src) {
  if constexpr (VEC == 8)
    *reinterpret_cast<uint4 *>(dst) = *reinterpret_cast<const uint4 *>(src);
  else
    *dst = *src;
}

static __device__ void report_bad_index(up_cuda_index_error *e, int32_t op, int32_t row, int32_t value) {
  if (atomicCAS(&e->flagged, 0, 1) == 0) {
    e->op = op;
    e->row = row;
    e->value = value;
  }
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it. */
static __device__ float block_sum(float v) {
  __shared__ float partial[32];
  __shared__ float total;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = blockDim.x / 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < n_warps ? partial[lane] : 0.0f;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (lane == 0) total = v;
  }
  __syncthreads();
  return total;
}

/* --- embed and row gathers ---------------------------------------------------------- */

/* dst[r] = src[rows[r]]: one block per output row. Embedding is the same gather with
 * the token ids as row indices. */
template <int VEC>
static __global__ void gather_rows_kernel(__nv_bfloat16 *dst, const __nv_bfloat16 *src, const int32_t *rows,
                                          int32_t dim, up_cuda_index_error *err, int32_t op) {
  const int32_t r = blockIdx.x;
  const int32_t from = rows[r];
  if (from < 0) {
    if (threadIdx.x == 0) report_bad_index(err, op, r, from);
    return;
  }
  const __nv_bfloat16 *s = src + (int64_t)from * dim;
  __nv_bfloat16 *d = dst + (int64_t)r * dim;
  for (int32_t c = threadIdx.x * VEC; c < dim; c += blockDim.x * VEC) copy_bf16<VEC>(d + c, s + c);
}

static void launch_gather_rows(up_backend *be, void *dst, const void *src, const int32_t *rows, int32_t n_rows,
                               int32_t dim, int32_t op) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (n_rows <= 0 || dim <= 0) return;
  __nv_bfloat16 *d = (__nv_bfloat16 *)dst;
  const __nv_bfloat16 *s = (const __nv_bfloat16 *)src;
  if (dim % 8 == 0 && aligned16(d) && aligned16(s))
    gather_rows_kernel<8><<<n_rows, row_threads(dim / 8), 0, cb->stream>>>(d, s, rows, dim, cb->index_error, op);
  else
    gather_rows_kernel<1><<<n_rows, row_threads(dim), 0, cb->stream>>>(d, s, rows, dim, cb->index_error, op);
  UP_CUDA_CHECK_LAUNCH();
}

extern "C" void up_cuda_embed(up_backend *be, void *out, const void *table, const int32_t *tokens,
                              int32_t n_tokens, int32_t dim) {
  launch_gather_rows(be, out, table, tokens, n_tokens, dim, UP_CUDA_OP_EMBED);
}

extern "C" void up_cuda_gather_rows(up_backend *be, void *dst, const void *src, const int32_t *rows,
                                    int32_t n_rows, int32_t dim) {
  launch_gather_rows(be, dst, src, rows, n_rows, dim, UP_CUDA_OP_GATHER_ROWS);
}

static __global__ void gather_i32_kernel(int32_t *dst, const int32_t *src, const int32_t *rows, int32_t n_rows,
                                         up_cuda_index_error *err) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < n_rows; r += (int64_t)gridDim.x * blockDim.x) {
    const int32_t from = rows[r];
    if (from < 0)
      report_bad_index(err, UP_CUDA_OP_GATHER_I32, (int32_t)r, from);
    else
      dst[r] = src[from];
  }
}

extern "C" void up_cuda_gather_i32(up_backend *be, int32_t *dst, const int32_t *src, const int32_t *rows,
                                   int32_t n_rows) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (n_rows <= 0) return;
  gather_i32_kernel<<<flat_blocks(n_rows), FLAT_THREADS, 0, cb->stream>>>(dst, src, rows, n_rows, cb->index_error);
  UP_CUDA_CHECK_LAUNCH();
}

/* --- RMSNorm ------------------------------------------------------------------------ */

/* One block per row: the sum of squares in fp32 (a tree over the block, so rounding
 * stays near the CPU's double sum), then a second pass that re-reads the row from
 * L1/L2 rather than holding rows of any width in registers.
 *
 * ADD (add_rmsnorm): first row += add, the sum in fp32 and stored as bf16, and the norm
 * is taken of the value actually stored (the CPU reference normalises its fp32 sum;
 * here out is exactly what a separate rmsnorm of the stored residual gives). Each
 * thread re-reads only elements it wrote itself, so no barrier is needed between.
 * Without ADD, row is only read. */
template <int VEC, bool ADD>
static __global__ void rmsnorm_kernel(__nv_bfloat16 *out, __nv_bfloat16 *row, const __nv_bfloat16 *add,
                                      const __nv_bfloat16 *weight, int32_t dim, float eps) {
  const int64_t base = (int64_t)blockIdx.x * dim;
  float v[VEC], a[VEC];
  float sum_sq = 0.0f;
  for (int32_t c = threadIdx.x * VEC; c < dim; c += blockDim.x * VEC) {
    load_f32<VEC>(row + base + c, v);
    if constexpr (ADD) {
      load_f32<VEC>(add + base + c, a);
#pragma unroll
      for (int j = 0; j < VEC; ++j) v[j] = __bfloat162float(__float2bfloat16_rn(v[j] + a[j])); /* as stored */
      store_bf16<VEC>(row + base + c, v);
    }
#pragma unroll
    for (int j = 0; j < VEC; ++j) sum_sq += v[j] * v[j];
  }
  const float inv_rms = 1.0f / sqrtf(block_sum(sum_sq) / (float)dim + eps);
  for (int32_t c = threadIdx.x * VEC; c < dim; c += blockDim.x * VEC) {
    load_f32<VEC>(row + base + c, v);
    load_f32<VEC>(weight + c, a);
#pragma unroll
    for (int j = 0; j < VEC; ++j) v[j] = v[j] * inv_rms * a[j];
    store_bf16<VEC>(out + base + c, v);
  }
}

/* add == NULL: plain rmsnorm of row (which is then not written). */
static void launch_rmsnorm(up_backend *be, void *out, void *row, const void *add, const void *weight,
                           int32_t n_rows, int32_t dim, float eps) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (n_rows <= 0 || dim <= 0) return;
  __nv_bfloat16 *o = (__nv_bfloat16 *)out, *r = (__nv_bfloat16 *)row;
  const __nv_bfloat16 *x = (const __nv_bfloat16 *)add, *w = (const __nv_bfloat16 *)weight;
  const bool vec = dim % 8 == 0 && aligned16(o) && aligned16(r) && aligned16(w) && (!x || aligned16(x));
  const int threads = row_threads(vec ? dim / 8 : dim);
  if (vec && x)
    rmsnorm_kernel<8, true><<<n_rows, threads, 0, cb->stream>>>(o, r, x, w, dim, eps);
  else if (vec)
    rmsnorm_kernel<8, false><<<n_rows, threads, 0, cb->stream>>>(o, r, x, w, dim, eps);
  else if (x)
    rmsnorm_kernel<1, true><<<n_rows, threads, 0, cb->stream>>>(o, r, x, w, dim, eps);
  else
    rmsnorm_kernel<1, false><<<n_rows, threads, 0, cb->stream>>>(o, r, x, w, dim, eps);
  UP_CUDA_CHECK_LAUNCH();
}

extern "C" void up_cuda_rmsnorm(up_backend *be, void *out, const void *x, const void *weight, int32_t n_rows,
                                int32_t dim, float eps) {
  launch_rmsnorm(be, out, (void *)x, NULL, weight, n_rows, dim, eps); /* x only read without an add */
}

extern "C" void up_cuda_add_rmsnorm(up_backend *be, void *out, void *residual, const void *x, const void *weight,
                                    int32_t n_rows, int32_t dim, float eps) {
  launch_rmsnorm(be, out, residual, x, weight, n_rows, dim, eps);
}

/* --- RoPE --------------------------------------------------------------------------- */

/* One block per token. The token's half-dim cos/sin table is computed once into shared
 * memory, in double: at position 131071 the angle is ~1.3e5 rad, and an fp32 product
 * (ulp 2^-7 there) would lose the phase. The product of an int32 position (< 2^31)
 * and an fp32 frequency is exact in double, and double sincos reduces the argument
 * accurately. Then every query and key head of the row is rotated (values are not). */
template <int VEC>
static __global__ void rope_kernel(__nv_bfloat16 *qkv, const int32_t *positions, const float *inv_freq,
                                   int32_t head_dim, int32_t rotated_heads, int64_t row_stride) {
  extern __shared__ float cos_sin[]; /* [half] cos, then [half] sin */
  const int32_t half = head_dim / 2;
  float *cos_t = cos_sin, *sin_t = cos_sin + half;
  const double pos = (double)positions[blockIdx.x];
  for (int32_t i = threadIdx.x; i < half; i += blockDim.x) {
    double s, c;
    sincos(pos * (double)inv_freq[i], &s, &c);
    cos_t[i] = (float)c;
    sin_t[i] = (float)s;
  }
  __syncthreads();
  __nv_bfloat16 *row = qkv + (int64_t)blockIdx.x * row_stride;
  const int32_t units_per_head = half / VEC;
  const int32_t units = rotated_heads * units_per_head;
  for (int32_t u = threadIdx.x; u < units; u += blockDim.x) {
    const int32_t h = u / units_per_head, i0 = (u % units_per_head) * VEC;
    __nv_bfloat16 *x1 = row + (int64_t)h * head_dim + i0, *x2 = x1 + half;
    float a[VEC], b[VEC];
    load_f32<VEC>(x1, a);
    load_f32<VEC>(x2, b);
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      const float c = cos_t[i0 + j], s = sin_t[i0 + j], aj = a[j], bj = b[j];
      a[j] = aj * c - bj * s;
      b[j] = bj * c + aj * s;
    }
    store_bf16<VEC>(x1, a);
    store_bf16<VEC>(x2, b);
  }
}

extern "C" void up_cuda_rope(up_backend *be, void *qkv, const int32_t *positions, const float *inv_freq,
                             int32_t n_tokens, const up_attn_shape *shape) {
  up_cuda_backend *cb = up_cuda_impl(be);
  const int32_t hd = shape->head_dim, half = hd / 2;
  if (hd <= 0 || hd % 2 != 0) UP_FATAL("rope: head_dim %d is not a positive even number", hd);
  if (n_tokens <= 0) return;
  const int64_t row_stride = (int64_t)(shape->n_heads + 2 * shape->n_kv_heads) * hd;
  const int32_t rotated_heads = shape->n_heads + shape->n_kv_heads;
  const size_t smem = sizeof(float) * (size_t)hd;
  __nv_bfloat16 *x = (__nv_bfloat16 *)qkv;
  /* half % 8 keeps both halves of every head, and every row, 16-byte aligned. */
  if (half % 8 == 0 && aligned16(x))
    rope_kernel<8><<<n_tokens, row_threads((int64_t)rotated_heads * half / 8), smem, cb->stream>>>(
        x, positions, inv_freq, hd, rotated_heads, row_stride);
  else
    rope_kernel<1><<<n_tokens, row_threads((int64_t)rotated_heads * half), smem, cb->stream>>>(
        x, positions, inv_freq, hd, rotated_heads, row_stride);
  UP_CUDA_CHECK_LAUNCH();
}

/* --- SwiGLU ------------------------------------------------------------------------- */

/* out[t][i] = silu(gate[t][i]) * up[t][i], gate and up the two halves of a gate_up row.
 * A flat grid-stride loop: rows are long (14336) and many, one block per row would
 * leave the tail of short grids idle for nothing. */
template <int VEC>
static __global__ void swiglu_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *gate_up, int64_t n_units,
                                     int32_t units_per_row, int32_t inter) {
  for (int64_t u = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; u < n_units; u += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = u / units_per_row;
    const int32_t c = (int32_t)(u - r * units_per_row) * VEC;
    const __nv_bfloat16 *g = gate_up + r * 2 * inter + c;
    float gv[VEC], uv[VEC];
    load_f32<VEC>(g, gv);
    load_f32<VEC>(g + inter, uv);
#pragma unroll
    for (int j = 0; j < VEC; ++j) gv[j] = gv[j] / (1.0f + expf(-gv[j])) * uv[j];
    store_bf16<VEC>(out + r * inter + c, gv);
  }
}

extern "C" void up_cuda_swiglu(up_backend *be, void *out, const void *gate_up, int32_t n_rows, int32_t inter) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (n_rows <= 0 || inter <= 0) return;
  __nv_bfloat16 *o = (__nv_bfloat16 *)out;
  const __nv_bfloat16 *gu = (const __nv_bfloat16 *)gate_up;
  if (inter % 8 == 0 && aligned16(o) && aligned16(gu)) {
    const int64_t units = (int64_t)n_rows * (inter / 8);
    swiglu_kernel<8><<<flat_blocks(units), FLAT_THREADS, 0, cb->stream>>>(o, gu, units, inter / 8, inter);
  } else {
    const int64_t units = (int64_t)n_rows * inter;
    swiglu_kernel<1><<<flat_blocks(units), FLAT_THREADS, 0, cb->stream>>>(o, gu, units, inter, inter);
  }
  UP_CUDA_CHECK_LAUNCH();
}

/* --- argmax ------------------------------------------------------------------------- */

/* Better of two candidates: larger value, the lower index on equal values. Index
 * INT_MAX marks "none yet" (a thread that saw no column). */
static __device__ __forceinline__ void argmax_merge(float *best_v, int32_t *best_i, float v, int32_t i) {
  if (i == INT_MAX) return;
  if (*best_i == INT_MAX || v > *best_v || (v == *best_v && i < *best_i)) {
    *best_v = v;
    *best_i = i;
  }
}

/* One block per row. Each thread scans its columns in increasing order with a strict
 * comparison, then the block merges pairs, lowest index winning ties: the result is
 * the first maximum, as the CPU reference defines it. A row holding a NaN or +inf
 * gives -1 (non-finite activations), as on the CPU. */
template <int VEC>
static __global__ void argmax_kernel(int32_t *out, const __nv_bfloat16 *x, int32_t n_cols) {
  __shared__ float part_v[32];
  __shared__ int32_t part_i[32];
  const __nv_bfloat16 *row = x + (int64_t)blockIdx.x * n_cols;
  float best_v = -FLT_MAX;
  int32_t best_i = INT_MAX;
  int finite = 1;
  for (int32_t c = threadIdx.x * VEC; c < n_cols; c += blockDim.x * VEC) {
    float v[VEC];
    load_f32<VEC>(row + c, v);
#pragma unroll
    for (int j = 0; j < VEC; ++j) {
      finite &= v[j] < INFINITY ? 1 : 0; /* false for NaN and +inf */
      if (best_i == INT_MAX || v[j] > best_v) best_v = v[j], best_i = c + j;
    }
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best_v, off);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, best_i, off);
    argmax_merge(&best_v, &best_i, ov, oi);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = blockDim.x / 32;
  if (lane == 0) part_v[warp] = best_v, part_i[warp] = best_i;
  const int row_finite = __syncthreads_and(finite); /* also the barrier before part_v is read */
  if (warp == 0) {
    best_v = lane < n_warps ? part_v[lane] : -FLT_MAX;
    best_i = lane < n_warps ? part_i[lane] : INT_MAX;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, best_v, off);
      const int32_t oi = __shfl_xor_sync(0xffffffffu, best_i, off);
      argmax_merge(&best_v, &best_i, ov, oi);
    }
    if (lane == 0) out[blockIdx.x] = row_finite ? best_i : -1;
  }
}

extern "C" void up_cuda_argmax_rows(up_backend *be, int32_t *dst_host, const void *x, int32_t n_rows,
                                    int32_t n_cols) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (n_cols <= 0) UP_FATAL("argmax_rows: %d columns", n_cols);
  if (n_rows <= 0) return;
  if (n_rows > cb->argmax_capacity) { /* grows to the largest batch seen, then stays */
    if (cb->argmax_out) UP_CUDA_CHECK(cudaFree(cb->argmax_out));
    UP_CUDA_CHECK(cudaMalloc((void **)&cb->argmax_out, sizeof(int32_t) * (size_t)n_rows));
    cb->argmax_capacity = n_rows;
  }
  const __nv_bfloat16 *xx = (const __nv_bfloat16 *)x;
  if (n_cols % 8 == 0 && aligned16(xx))
    argmax_kernel<8><<<n_rows, row_threads(n_cols / 8), 0, cb->stream>>>(cb->argmax_out, xx, n_cols);
  else
    argmax_kernel<1><<<n_rows, row_threads(n_cols), 0, cb->stream>>>(cb->argmax_out, xx, n_cols);
  UP_CUDA_CHECK_LAUNCH();
  UP_CUDA_CHECK(cudaMemcpyAsync(dst_host, cb->argmax_out, sizeof(int32_t) * (size_t)n_rows, cudaMemcpyDeviceToHost,
                                cb->stream));
  up_cuda_sync_and_check(cb);
}

/* --- KV store ----------------------------------------------------------------------- */

/* One block per token: its keys and values (kv_dim each, right after the queries in the
 * qkv row) go to pool slot slot_mapping[t] of K and of V. */
template <int VEC>
static __global__ void kv_store_kernel(__nv_bfloat16 *k_pool, __nv_bfloat16 *v_pool, const __nv_bfloat16 *qkv,
                                       const int32_t *slot_mapping, int64_t n_slots, int32_t kv_dim, int32_t q_dim,
                                       int64_t row_stride, up_cuda_index_error *err) {
  const int32_t t = blockIdx.x;
  const int32_t slot = slot_mapping[t];
  if (slot < 0 || slot >= n_slots) {
    if (threadIdx.x == 0) report_bad_index(err, UP_CUDA_OP_KV_STORE, t, slot);
    return;
  }
  const __nv_bfloat16 *k_src = qkv + (int64_t)t * row_stride + q_dim, *v_src = k_src + kv_dim;
  __nv_bfloat16 *k_dst = k_pool + (int64_t)slot * kv_dim, *v_dst = v_pool + (int64_t)slot * kv_dim;
  for (int32_t c = threadIdx.x * VEC; c < kv_dim; c += blockDim.x * VEC) {
    copy_bf16<VEC>(k_dst + c, k_src + c);
    copy_bf16<VEC>(v_dst + c, v_src + c);
  }
}

extern "C" void up_cuda_kv_store(up_backend *be, const up_kv_pool *pool, const void *qkv,
                                 const int32_t *slot_mapping, int32_t n_tokens, const up_attn_shape *shape) {
  up_cuda_backend *cb = up_cuda_impl(be);
  const int32_t hd = shape->head_dim, kv_dim = pool->kv_dim;
  if (kv_dim != shape->n_kv_heads * hd)
    UP_FATAL("kv_store: pool kv_dim %d != n_kv_heads %d * head_dim %d", kv_dim, shape->n_kv_heads, hd);
  if (n_tokens <= 0 || kv_dim <= 0) return;
  const int32_t q_dim = shape->n_heads * hd;
  const int64_t row_stride = (int64_t)q_dim + 2 * (int64_t)kv_dim;
  const int64_t n_slots = (int64_t)pool->n_blocks * pool->block_tokens;
  __nv_bfloat16 *k = (__nv_bfloat16 *)pool->k, *v = (__nv_bfloat16 *)pool->v;
  const __nv_bfloat16 *x = (const __nv_bfloat16 *)qkv;
  /* head_dim % 8 keeps the query part, kv_dim and the row stride multiples of 8 too. */
  if (hd % 8 == 0 && aligned16(k) && aligned16(v) && aligned16(x))
    kv_store_kernel<8><<<n_tokens, row_threads(kv_dim / 8), 0, cb->stream>>>(k, v, x, slot_mapping, n_slots, kv_dim,
                                                                            q_dim, row_stride, cb->index_error);
  else
    kv_store_kernel<1><<<n_tokens, row_threads(kv_dim), 0, cb->stream>>>(k, v, x, slot_mapping, n_slots, kv_dim,
                                                                        q_dim, row_stride, cb->index_error);
  UP_CUDA_CHECK_LAUNCH();
}
