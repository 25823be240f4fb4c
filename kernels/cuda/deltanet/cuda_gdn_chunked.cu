/* cuda_gdn_chunked.cu — the chunked gated delta rule (HYBRIDS.md C.4) as three kernels
 * with parallelism across chunks, heads and state columns, all fp32 CUDA-core FMA: kept
 * as UP_GDN_KERNEL=v2 beside cuda_gdn_tensor.cu (the default, the same split on tensor
 * cores) and the first cut (v1). Owns the op's workspace in the backend state and its
 * chunk index, which the tensor-core version shares; touches nothing else of the backend.
 *
 * 1. gdn_chunk_starts: the index of each sequence's first 64-row chunk (one warp).
 * 2. gdn_intra_kernel, one block per (chunk, value head), every chunk of every sequence
 *    at once: the cumulative gates gamma, A_ij = beta_i (k_i.k_j) e^(gamma_i - gamma_j)
 *    (j < i), T = (I + A)^-1 by forward substitution (a thread per column of the
 *    identity), and P_ij = (q_i.k_j) e^(gamma_i - gamma_j) (j <= i). P and T share one
 *    64 x 64 fp32 matrix per chunk and head: P in the lower triangle with its diagonal,
 *    T's strict lower triangle transposed into the upper one (T's diagonal is 1). Row i
 *    of it is stored at the chunk's token i, so the workspace is 64 fp32 per token and
 *    value head whatever the batch's mix of lengths.
 * 3. gdn_scan_kernel, one block per (sequence, value head, 32 state columns): walks the
 *    sequence's chunks with its 128 x 32 slice of the state in shared memory:
 *      R  = diag(beta) (V - diag(e^gamma) K S)        (V, S: the block's 32 columns)
 *      V' = T R                                      (= U - W S of C.4, regrouped)
 *      O  = diag(e^gamma) Q S + P V'
 *      S  = e^gamma_last S + K^T diag(e^(gamma_last - gamma)) V'
 *    Columns of the state never mix, so the four blocks of a head run independently.
 *
 * Everything after the bf16 inputs is fp32 (CUDA-core FMA from shared memory, register
 * tiles), as in the first cut: T and P are stored fp32 because T feeds every chunk's
 * V' and a bf16 T would put a 2^-8 relative error on every pseudo-value. Short chunks
 * (a sequence's last, decode rows) are zero-padded to 64 rows: beta = 0 and zero q/k/v
 * rows make the padded rows of A, T, P, R and V' zero, and g = 0 there keeps gamma at
 * the last real row, so gamma_last needs no special case. Head sizes up to 128. */
#include <stdint.h>

#include "kernels/cuda/deltanet/deltanet_ops.h"

enum {
  GDN_C = 64,        /* rows per chunk */
  GDN_DMAX = 128,    /* largest head size */
  GDN_TILE = 32,     /* state value-columns per scan block */
  GDN_NT = 256,      /* threads of both kernels */
  GDN_KP = GDN_DMAX + 1, /* row stride of the q/k tiles: rows in distinct banks */
  GDN_MP = GDN_C + 1,    /* row stride of the 64 x 64 matrices */
  GDN_VP = 40,       /* row stride of the 32-column tiles: 4 consecutive rows x 8 columns in distinct banks */
};

/* Rows 0..63 of a chunk starting at t0 with n real rows, by warp: dst[i][0..d) = the
 * row l2-normalised times scale, zero for i >= n. */
static __device__ void gdn_load_rows(float *dst, const __nv_bfloat16 *src, int64_t t0, int32_t n, int32_t d,
                                     int32_t stride, float scale) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int32_t i = warp; i < GDN_C; i += GDN_NT / 32) {
    float *row = dst + i * GDN_KP;
    if (i >= n) {
      for (int32_t c = lane; c < d; c += 32) row[c] = 0.0f;
      continue;
    }
    up_deltanet_l2_row(row, src + (t0 + i) * (int64_t)stride, d, scale);
  }
}

/* gamma (cumulative g over the chunk, padded rows repeat the last), beta (0 when padded). */
static __device__ void gdn_load_gates(float *gam, float *bet, const float *g, const float *beta, int64_t t0,
                                      int32_t n, int32_t hv, int32_t h) {
  const int tid = threadIdx.x;
  if (tid < GDN_C) {
    gam[tid] = tid < n ? g[(t0 + tid) * hv + h] : 0.0f;
    bet[tid] = tid < n ? beta[(t0 + tid) * hv + h] : 0.0f;
  }
  __syncthreads();
  if (tid == 0)
    for (int32_t i = 1; i < GDN_C; ++i) gam[i] += gam[i - 1];
  __syncthreads();
}

/* --- 1. the chunk index ------------------------------------------------------------- */

/* first[s] = chunks of the sequences before s; first[n_seqs] = all chunks. One warp. */
static __global__ void gdn_chunk_starts(int32_t *first, const int32_t *cu, int32_t n_seqs) {
  const int lane = threadIdx.x;
  int32_t carry = 0;
  for (int32_t base = 0; base < n_seqs; base += 32) {
    const int32_t s = base + lane;
    const int32_t mine = s < n_seqs ? (cu[s + 1] - cu[s] + GDN_C - 1) / GDN_C : 0;
    int32_t incl = mine;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const int32_t up = __shfl_up_sync(0xffffffffu, incl, off);
      if (lane >= off) incl += up;
    }
    if (s < n_seqs) first[s] = carry + incl - mine;
    carry += __shfl_sync(0xffffffffu, incl, 31);
  }
  if (lane == 0) first[n_seqs] = carry;
}

/* --- 2. the chunk-local phase ----------------------------------------------------------- */

struct gdn_intra_smem {
  float k[GDN_C * GDN_KP], q[GDN_C * GDN_KP];
  float a[GDN_C * GDN_C]; /* strictly lower A, zeros elsewhere (read as whole rows) */
  float pt[GDN_C * GDN_MP]; /* P lower with diagonal | T strict lower, transposed */
  float gam[GDN_C], bet[GDN_C];
};

static __global__ void __launch_bounds__(GDN_NT, 2)
    gdn_intra_kernel(float *tp, const __nv_bfloat16 *q, const __nv_bfloat16 *k, const float *g, const float *beta,
                     const int32_t *cu, const int32_t *first, int32_t n_seqs, int32_t hv, int32_t group, int32_t d,
                     int32_t stride, float scale) {
  extern __shared__ float gdn_intra_raw[];
  gdn_intra_smem &sm = *reinterpret_cast<gdn_intra_smem *>(gdn_intra_raw);
  const int32_t chunk = blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
  if (chunk >= first[n_seqs]) return; /* the grid covers the bound, not the count */
  const int32_t s = up_deltanet_seq_of(first, n_seqs, chunk);
  const int64_t t0 = cu[s] + (int64_t)(chunk - first[s]) * GDN_C;
  const int32_t n = min(GDN_C, (int32_t)(cu[s + 1] - t0)), kh = (h / group) * d;
  gdn_load_rows(sm.k, k + kh, t0, n, d, stride, 1.0f);
  gdn_load_rows(sm.q, q + kh, t0, n, d, stride, scale);
  gdn_load_gates(sm.gam, sm.bet, g, beta, t0, n, hv, h); /* its barriers cover the rows too */

  /* K K^T and Q K^T in 4 x 4 register tiles: rows ty + 16r, columns tx + 16c. */
  const int32_t ty = tid / 16, tx = tid % 16;
  float kk[4][4] = {}, qk[4][4] = {};
  for (int32_t a = 0; a < d; ++a) {
    float ki[4], qi[4], kj[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      ki[r] = sm.k[(ty + 16 * r) * GDN_KP + a];
      qi[r] = sm.q[(ty + 16 * r) * GDN_KP + a];
      kj[r] = sm.k[(tx + 16 * r) * GDN_KP + a];
    }
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        kk[r][c] += ki[r] * kj[c];
        qk[r][c] += qi[r] * kj[c];
      }
  }
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int32_t i = ty + 16 * r, j = tx + 16 * c;
      /* Only j <= i: above the diagonal gamma_i - gamma_j >= 0 and the exponential may overflow. */
      const float decay = j <= i ? expf(sm.gam[i] - sm.gam[j]) : 0.0f;
      sm.a[i * GDN_C + j] = j < i ? sm.bet[i] * kk[r][c] * decay : 0.0f;
      if (j <= i) sm.pt[i * GDN_MP + j] = qk[r][c] * decay;
    }
  __syncthreads();

  /* T = (I + A)^-1, column `col` by thread `col`: x_i = [i == col] - sum_{j<i} A_ij x_j.
   * Unrolled, the column stays in registers and every thread reads the same A entries
   * (broadcasts); x starts at zero so the zero A entries of a partial float4 meet zeros. */
  if (tid < GDN_C) {
    const int32_t col = tid;
    float x[GDN_C];
#pragma unroll
    for (int i = 0; i < GDN_C; ++i) x[i] = 0.0f;
#pragma unroll
    for (int i = 0; i < GDN_C; ++i) {
      float acc = i == col ? 1.0f : 0.0f;
      const float4 *arow = reinterpret_cast<const float4 *>(sm.a + i * GDN_C);
#pragma unroll
      for (int j4 = 0; j4 < (i + 3) / 4; ++j4) {
        const float4 av = arow[j4];
        acc -= av.x * x[4 * j4] + av.y * x[4 * j4 + 1] + av.z * x[4 * j4 + 2] + av.w * x[4 * j4 + 3];
      }
      x[i] = acc;
    }
#pragma unroll
    for (int i = 0; i < GDN_C; ++i)
      if (i > col) sm.pt[col * GDN_MP + i] = x[i];
  }
  __syncthreads();

  for (int32_t idx = tid; idx < n * GDN_C; idx += GDN_NT) {
    const int32_t i = idx / GDN_C, j = idx % GDN_C;
    tp[((t0 + i) * hv + h) * GDN_C + j] = sm.pt[i * GDN_MP + j];
  }
}

/* --- 3. the sequential pass over the state ------------------------------------------------ */

struct gdn_scan_smem {
  float state[GDN_DMAX * GDN_VP]; /* rows: key dims; the block's 32 value columns */
  float k[GDN_C * GDN_KP], q[GDN_C * GDN_KP];
  float t[GDN_C * GDN_MP], p[GDN_C * GDN_MP]; /* unit-lower T and lower P, zeros elsewhere */
  float v[GDN_C * GDN_VP], r[GDN_C * GDN_VP], vnew[GDN_C * GDN_VP], vdec[GDN_C * GDN_VP];
  float gam[GDN_C], bet[GDN_C];
};

/* acc[r][c] += sum_j m[ty + 32r][j] x[j][tx + 8c]: a 64 x 64 matrix (stride GDN_MP) times
 * a 64 x 32 tile (stride GDN_VP), the thread's 2 x 4 outputs. */
static __device__ __forceinline__ void gdn_add_matrix_times_tile(float acc[2][4], const float *m, const float *x,
                                                                 int32_t ty, int32_t tx) {
  for (int32_t j = 0; j < GDN_C; ++j) {
    float mr[2], xc[4];
#pragma unroll
    for (int r = 0; r < 2; ++r) mr[r] = m[(ty + 32 * r) * GDN_MP + j];
#pragma unroll
    for (int c = 0; c < 4; ++c) xc[c] = x[j * GDN_VP + tx + 8 * c];
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[r][c] += mr[r] * xc[c];
  }
}

static __global__ void __launch_bounds__(GDN_NT, 1)
    gdn_scan_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *q, const __nv_bfloat16 *k, const __nv_bfloat16 *v,
                    const float *g, const float *beta, float *state, const float *tp, const int32_t *cu,
                    const int32_t *slots, const int32_t *initial, int32_t hv, int32_t group, int32_t d,
                    int32_t stride, float scale) {
  extern __shared__ float gdn_scan_raw[];
  gdn_scan_smem &sm = *reinterpret_cast<gdn_scan_smem *>(gdn_scan_raw);
  const int32_t col0 = blockIdx.x * GDN_TILE, h = blockIdx.y, s = blockIdx.z, tid = threadIdx.x;
  const int32_t kh = (h / group) * d;
  const int32_t ty = tid / 8, tx = tid % 8; /* rows ty + 32r, columns tx + 8c */
  float *gstate = state + ((int64_t)slots[s] * hv + h) * d * d;
  const bool has_state = initial[s] != 0;
  for (int32_t idx = tid; idx < GDN_DMAX * GDN_TILE; idx += GDN_NT) {
    const int32_t a = idx / GDN_TILE, c = idx % GDN_TILE;
    sm.state[a * GDN_VP + c] = has_state && a < d && col0 + c < d ? gstate[(int64_t)a * d + col0 + c] : 0.0f;
  }
  /* Columns d..127 of the q/k tiles are never written by the loads: zero them once so
   * the state update reads zeros there (the state's rows >= d stay zero). */
  for (int32_t idx = tid; idx < GDN_C * GDN_KP; idx += GDN_NT)
    if (idx % GDN_KP >= d) sm.k[idx] = sm.q[idx] = 0.0f;

  const int32_t end = cu[s + 1];
  for (int64_t t0 = cu[s]; t0 < end; t0 += GDN_C) {
    const int32_t n = min(GDN_C, (int32_t)(end - t0));
    gdn_load_rows(sm.k, k + kh, t0, n, d, stride, 1.0f);
    gdn_load_rows(sm.q, q + kh, t0, n, d, stride, scale);
    for (int32_t idx = tid; idx < GDN_C * GDN_TILE; idx += GDN_NT) {
      const int32_t i = idx / GDN_TILE, c = idx % GDN_TILE;
      sm.v[i * GDN_VP + c] =
          i < n && col0 + c < d ? __bfloat162float(v[(t0 + i) * stride + (int64_t)h * d + col0 + c]) : 0.0f;
    }
    /* Unpack the intra phase's matrix: row i of it is token t0 + i's. */
    for (int32_t idx = tid; idx < GDN_C * GDN_C; idx += GDN_NT) {
      const int32_t i = idx / GDN_C, j = idx % GDN_C;
      const float m = i < n ? tp[((t0 + i) * hv + h) * GDN_C + j] : 0.0f;
      if (j <= i) sm.p[i * GDN_MP + j] = m;
      else sm.p[i * GDN_MP + j] = 0.0f;
      if (j > i) {
        sm.t[j * GDN_MP + i] = j < n ? m : 0.0f; /* T_ji, stored at (i, j) */
        sm.t[i * GDN_MP + j] = 0.0f;
      } else if (j == i) {
        sm.t[i * GDN_MP + i] = i < n ? 1.0f : 0.0f;
      }
    }
    gdn_load_gates(sm.gam, sm.bet, g, beta, t0, n, hv, h); /* barriers: everything above is loaded */

    /* K S and Q S over the 64 x 32 outputs, 2 x 4 per thread. */
    float ks[2][4] = {}, qs[2][4] = {};
    for (int32_t a = 0; a < d; ++a) {
      float kr[2], qr[2], sc[4];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        kr[r] = sm.k[(ty + 32 * r) * GDN_KP + a];
        qr[r] = sm.q[(ty + 32 * r) * GDN_KP + a];
      }
#pragma unroll
      for (int c = 0; c < 4; ++c) sc[c] = sm.state[a * GDN_VP + tx + 8 * c];
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          ks[r][c] += kr[r] * sc[c];
          qs[r][c] += qr[r] * sc[c];
        }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int32_t i = ty + 32 * r;
      const float eg = expf(sm.gam[i]);
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int32_t col = tx + 8 * c;
        sm.r[i * GDN_VP + col] = sm.bet[i] * (sm.v[i * GDN_VP + col] - eg * ks[r][c]);
        qs[r][c] *= eg;
      }
    }
    __syncthreads();

    /* V' = T R (T unit lower, zeros above), and V' decayed to the chunk's end. */
    const float gam_last = sm.gam[GDN_C - 1];
    {
      float acc[2][4] = {};
      gdn_add_matrix_times_tile(acc, sm.t, sm.r, ty, tx);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int32_t i = ty + 32 * r;
        const float to_end = expf(gam_last - sm.gam[i]);
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          sm.vnew[i * GDN_VP + tx + 8 * c] = acc[r][c];
          sm.vdec[i * GDN_VP + tx + 8 * c] = to_end * acc[r][c];
        }
      }
    }
    __syncthreads();

    /* O = e^gamma Q S + P V' (only real rows and columns are written). */
    {
      float acc[2][4];
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = qs[r][c];
      gdn_add_matrix_times_tile(acc, sm.p, sm.vnew, ty, tx);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int32_t i = ty + 32 * r;
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int32_t col = col0 + tx + 8 * c;
          if (i < n && col < d) out[((t0 + i) * hv + h) * d + col] = __float2bfloat16_rn(acc[r][c]);
        }
      }
    }

    /* S = e^gamma_last S + K^T V'_decayed, 4 x 4 per thread over the 128 x 32 slice. The
     * products above have read S (the barrier after K S / Q S), and each thread rewrites
     * only its own entries. */
    {
      const float decay_all = expf(gam_last);
      float acc[4][4];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = decay_all * sm.state[(ty + 32 * r) * GDN_VP + tx + 8 * c];
      for (int32_t j = 0; j < GDN_C; ++j) {
        float kr[4], vc[4];
#pragma unroll
        for (int r = 0; r < 4; ++r) kr[r] = sm.k[j * GDN_KP + ty + 32 * r];
#pragma unroll
        for (int c = 0; c < 4; ++c) vc[c] = sm.vdec[j * GDN_VP + tx + 8 * c];
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int c = 0; c < 4; ++c) acc[r][c] += kr[r] * vc[c];
      }
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) sm.state[(ty + 32 * r) * GDN_VP + tx + 8 * c] = acc[r][c];
    }
    __syncthreads(); /* the next chunk's loads overwrite k, q, v, t, p */
  }
  for (int32_t idx = tid; idx < GDN_DMAX * GDN_TILE; idx += GDN_NT) {
    const int32_t a = idx / GDN_TILE, c = idx % GDN_TILE;
    if (a < d && col0 + c < d) gstate[(int64_t)a * d + col0 + c] = sm.state[a * GDN_VP + c];
  }
}

/* --- the host side ------------------------------------------------------------------------- */

/* Bytes of workspace: the chunk index, then (256-byte aligned) 64 fp32 per token and value head. */
static size_t gdn_index_bytes(int32_t n_seqs) { return ((sizeof(int32_t) * ((size_t)n_seqs + 1)) + 255) & ~(size_t)255; }

static size_t gdn_workspace_bytes(int32_t n_seqs, int32_t n_tokens, int32_t hv, size_t extra_per_token) {
  return gdn_index_bytes(n_seqs) + (sizeof(float) * GDN_C * (size_t)hv + extra_per_token) * (size_t)n_tokens;
}

extern "C" void up_cuda_gdn_chunked_release(up_cuda_backend *cb) {
  if (cb->gdn_workspace) UP_CUDA_CHECK(cudaFree(cb->gdn_workspace));
  cb->gdn_workspace = NULL;
  cb->gdn_workspace_bytes = 0;
}

/* Grows the workspace to this batch and fills its chunk index (first[s], first[n_seqs]);
 * returns the matrix area after it: 64 fp32 per token and value head, room for this
 * file's T|P and for cuda_gdn_tensor.cu's bf16 one, then extra_per_token bytes per token
 * for the caller (cuda_gdn_tensor.cu's normalised q and k; 0 here). */
extern "C" void *up_cuda_gdn_chunk_index(up_cuda_backend *cb, const up_recurrent_batch *batch, int32_t hv,
                                         size_t extra_per_token, int32_t **first) {
  const int32_t n_seqs = batch->n_seqs;
  const size_t need = gdn_workspace_bytes(n_seqs, batch->n_tokens, hv, extra_per_token);
  if (need > cb->gdn_workspace_bytes) {
    /* Grows once to the largest batch, as the attention's decode workspace; cudaFree
     * waits for queued work that may still read the old buffer. */
    up_cuda_gdn_chunked_release(cb);
    const cudaError_t rc = cudaMalloc(&cb->gdn_workspace, need);
    if (rc != cudaSuccess)
      UP_FATAL("gated_deltanet: out of GPU memory for its %zu-byte workspace (%d tokens x (%d value heads x 64 "
               "fp32 + %zu bytes)): %s", need, (int)batch->n_tokens, (int)hv, extra_per_token, cudaGetErrorString(rc));
    cb->gdn_workspace_bytes = need;
  }
  *first = (int32_t *)cb->gdn_workspace;
  gdn_chunk_starts<<<1, 32, 0, cb->stream>>>(*first, batch->cu_seqlens, n_seqs);
  UP_CUDA_CHECK_LAUNCH();
  return (char *)cb->gdn_workspace + gdn_index_bytes(n_seqs);
}

extern "C" void up_cuda_gdn_chunked(up_cuda_backend *cb, __nv_bfloat16 *out, const __nv_bfloat16 *q,
                                    const __nv_bfloat16 *k, const __nv_bfloat16 *v, const float *g,
                                    const float *beta, float *state, const up_recurrent_batch *batch,
                                    const up_gdn_shape *shape) {
  const int32_t hv = shape->n_value_heads, d = shape->head_dim, n_seqs = batch->n_seqs;
  const int32_t group = hv / shape->n_key_heads;
  if (d > GDN_DMAX) UP_FATAL("gated_deltanet (chunked): head size %d above %d", (int)d, GDN_DMAX);
  int32_t *first = NULL;
  float *tp = (float *)up_cuda_gdn_chunk_index(cb, batch, hv, 0, &first);

  /* A bound on the chunk count: ceil(len / 64) <= len / 64 + 1 per sequence. */
  const int64_t max_chunks = ((int64_t)batch->n_tokens + GDN_C - 1) / GDN_C + n_seqs;
  if (batch->n_tokens > 0 && max_chunks > 0) {
    const size_t intra_smem = sizeof(gdn_intra_smem);
    UP_CUDA_CHECK(cudaFuncSetAttribute(gdn_intra_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)intra_smem));
    gdn_intra_kernel<<<dim3((unsigned)max_chunks, (unsigned)hv), GDN_NT, intra_smem, cb->stream>>>(
        tp, q, k, g, beta, batch->cu_seqlens, first, n_seqs, hv, group, d, shape->qkv_stride, shape->scale);
    UP_CUDA_CHECK_LAUNCH();
  }

  const size_t scan_smem = sizeof(gdn_scan_smem);
  UP_CUDA_CHECK(cudaFuncSetAttribute(gdn_scan_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)scan_smem));
  gdn_scan_kernel<<<dim3((unsigned)((d + GDN_TILE - 1) / GDN_TILE), (unsigned)hv, (unsigned)n_seqs), GDN_NT,
                    scan_smem, cb->stream>>>(out, q, k, v, g, beta, state, tp, batch->cu_seqlens,
                                             batch->state_slots, batch->has_initial_state, hv, group, d,
                                             shape->qkv_stride, shape->scale);
  UP_CUDA_CHECK_LAUNCH();
}
