/* cuda_gdn_tensor.cu — the chunked gated delta rule (HYBRIDS.md C.4) with its matrix
 * products on tensor cores (nvcuda::wmma 16 x 16 x 16, bf16 operands, fp32 accumulation):
 * the default of up_cuda_gated_deltanet. The same split as cuda_gdn_chunked.cu (kept as
 * UP_GDN_KERNEL=v2), whose workspace and chunk index it shares; owns nothing else.
 *
 * 1. gdn_tc_intra_kernel, one block per (chunk, value head), all chunks at once: K K^T and
 *    Q K^T on tensor cores, decayed and masked in fp32 into A and P, T = (I + A)^-1 by
 *    fp32 forward substitution; row i of T and row i of P (zeros above their triangles,
 *    T's diagonal 1) stored side by side as 128 bf16 at the chunk's token i (the 256
 *    bytes per token and value head v2 stores its fp32 P | T^T matrix in), and, by the
 *    first value head of each key head, the normalised k and q rows as 2 x 128 bf16 per
 *    token and key head (zeros past d): the scan copies both in 16-byte pieces, with
 *    no normalising, unpacking or transposing per chunk.
 * 2. gdn_tc_scan_kernel, one block per (sequence, value head, 32 state columns): per
 *    chunk, with its 128 x 32 state slice S in fp32 shared memory,
 *      K S, Q S (64 x d x 32)   R = diag(beta) (V - diag(e^gamma) K S)
 *      V' = T R (64 x 64 x 32)  O = diag(e^gamma) Q S + P V' (64 x 64 x 32)
 *      S = e^gamma_last S + K^T diag(e^(gamma_last - gamma)) V' (128 x 64 x 32)
 *    every product a wmma tile product, the elementwise steps fp32. The next chunk's
 *    inputs are loaded into registers while the current one computes.
 *
 * Numerics (HYBRIDS.md C.4's table: what fla's kernels round, this rounds): normalised q
 * and k, T, P, R, V' and the operand copy of S are bf16; every accumulation, the gates,
 * the decays and the state carried from chunk to chunk are fp32 (S is updated in place as
 * an fp32 accumulator and only its operand copy is rounded). Padding as v2: short chunks
 * are zero rows with beta = 0 and g = 0, head sizes below 128 are zero columns, and the
 * products stop at the head size rounded up to 16. */
#include <mma.h>
#include <stdint.h>

#include "kernels/cuda/deltanet/deltanet_ops.h"

namespace wmma = nvcuda::wmma;

enum {
  TC_C = 64,                /* rows per chunk */
  TC_DMAX = 128,            /* largest head size */
  TC_TILE = 32,             /* state value-columns per scan block */
  TC_NT = 256,              /* threads of both kernels */
  TC_WARPS = TC_NT / 32,
  TC_ROWS_PER_WARP = TC_C / TC_WARPS,
  TC_COLS_PER_LANE = TC_DMAX / 32,
  /* Row strides (elements). wmma wants multiples of 16 bytes and tiles on 32-byte
   * boundaries; the extra 16 bytes put the 8 rows of a fragment load in distinct banks. */
  TC_LDQK = TC_DMAX + 8,    /* bf16 q / k rows */
  TC_LDM = TC_C + 8,        /* bf16 64-column matrices (T, P) */
  TC_LDT = TC_TILE + 8,     /* bf16 32-column tiles */
  TC_LDF = TC_TILE + 4,     /* fp32 32-column tiles */
  TC_LDG = TC_C + 4,        /* fp32 64 x 64 products */
};

typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> tc_acc;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> tc_a_rows;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major> tc_a_cols;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> tc_b_rows;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> tc_b_cols;

/* The chunk's gates: cumulative gamma, beta, e^gamma, e^(gamma_last - gamma), e^gamma_last. */
struct tc_gates {
  float gam[TC_C], bet[TC_C], eg[TC_C], to_end[TC_C];
  float decay_all;
};

/* A chunk's g and beta in warp 0's registers: rows lane and lane + 32. */
struct tc_gate_regs {
  float g[2], b[2];
};

/* Workspace rows are two shared-memory rows side by side, in 16-byte pieces: k | q (128
 * bf16 each, zeros past d) and T | P (64 each). Piece `piece` of row i: the first half in
 * `left`, the second in `right`, rows `ld` apart. */
enum { TC_QK_PIECES = 2 * TC_DMAX / 8, TC_TP_PIECES = 2 * TC_C / 8 };

template <int PIECES>
static __device__ __forceinline__ __nv_bfloat16 *tc_piece(__nv_bfloat16 *left, __nv_bfloat16 *right, int32_t ld,
                                                          int32_t i, int32_t piece) {
  return piece < PIECES / 2 ? left + i * ld + 8 * piece : right + i * ld + 8 * (piece - PIECES / 2);
}

static __device__ __forceinline__ __nv_bfloat16 tc_bf16_zero(void) { return __float2bfloat16_rn(0.0f); }

/* Row warp + 8r, columns lane + 32j of a q or k head (src at the head's first column);
 * zero past the chunk's n rows and the head's d columns. */
static __device__ __forceinline__ void tc_fetch_rows(__nv_bfloat16 (&dst)[TC_ROWS_PER_WARP][TC_COLS_PER_LANE],
                                                     const __nv_bfloat16 *src, int64_t t0, int32_t n, int32_t d,
                                                     int32_t stride) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int r = 0; r < TC_ROWS_PER_WARP; ++r) {
    const int32_t i = warp + TC_WARPS * r;
#pragma unroll
    for (int j = 0; j < TC_COLS_PER_LANE; ++j) {
      const int32_t c = lane + 32 * j;
      __nv_bfloat16 x = tc_bf16_zero();
      if (i < n && c < d) x = src[(t0 + i) * (int64_t)stride + c];
      dst[r][j] = x;
    }
  }
}

/* The rows l2-normalised times scale (the delta rule's q/k norm, as up_deltanet_l2_row),
 * rounded to bf16 into all 128 columns of dst (zeros past d). */
static __device__ __forceinline__ void tc_commit_rows(__nv_bfloat16 *dst,
                                                      const __nv_bfloat16 (&raw)[TC_ROWS_PER_WARP][TC_COLS_PER_LANE],
                                                      float scale) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float ss[TC_ROWS_PER_WARP];
#pragma unroll
  for (int r = 0; r < TC_ROWS_PER_WARP; ++r) {
    ss[r] = 0.0f;
#pragma unroll
    for (int j = 0; j < TC_COLS_PER_LANE; ++j) {
      const float x = __bfloat162float(raw[r][j]);
      ss[r] += x * x;
    }
  }
#pragma unroll
  for (int r = 0; r < TC_ROWS_PER_WARP; ++r) {
    const float f = scale * rsqrtf(up_deltanet_warp_sum(ss[r]) + 1e-6f);
    __nv_bfloat16 *row = dst + (warp + TC_WARPS * r) * TC_LDQK;
#pragma unroll
    for (int j = 0; j < TC_COLS_PER_LANE; ++j) row[lane + 32 * j] = __float2bfloat16_rn(__bfloat162float(raw[r][j]) * f);
  }
}

static __device__ __forceinline__ void tc_fetch_gates(tc_gate_regs &in, const float *g, const float *beta,
                                                      int64_t t0, int32_t n, int32_t hv, int32_t h) {
  if (threadIdx.x < 32) {
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      const int32_t i = (int32_t)threadIdx.x + 32 * u;
      float gi = 0.0f, bi = 0.0f;
      if (i < n) {
        gi = g[(t0 + i) * hv + h];
        bi = beta[(t0 + i) * hv + h];
      }
      in.g[u] = gi;
      in.b[u] = bi;
    }
  }
}

/* The gates into shared memory (warp 0: gamma by a shuffle scan of each half, the second
 * half offset by the first's total; padded rows have g = 0, so gamma_last is the last
 * real row's). Readers wait for the caller's barrier. */
static __device__ __forceinline__ void tc_commit_gates(tc_gates &gt, const tc_gate_regs &in) {
  const int lane = threadIdx.x;
  if (lane < 32) {
    float lo = in.g[0], hi = in.g[1];
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const float lo_up = __shfl_up_sync(0xffffffffu, lo, off), hi_up = __shfl_up_sync(0xffffffffu, hi, off);
      if (lane >= off) {
        lo += lo_up;
        hi += hi_up;
      }
    }
    hi += __shfl_sync(0xffffffffu, lo, 31);
    const float last = __shfl_sync(0xffffffffu, hi, 31);
    gt.gam[lane] = lo;
    gt.gam[lane + 32] = hi;
    gt.bet[lane] = in.b[0];
    gt.bet[lane + 32] = in.b[1];
    gt.eg[lane] = expf(lo);
    gt.eg[lane + 32] = expf(hi);
    gt.to_end[lane] = expf(last - lo);
    gt.to_end[lane + 32] = expf(last - hi);
    if (lane == 0) gt.decay_all = expf(last);
  }
}

/* --- 1. the chunk-local phase --------------------------------------------------------- */

struct tc_intra_smem {
  alignas(128) __nv_bfloat16 k[TC_C * TC_LDQK];
  alignas(128) __nv_bfloat16 q[TC_C * TC_LDQK];
  alignas(128) float kk[TC_C * TC_LDG]; /* K K^T (lower block tiles only), then T */
  alignas(128) float pt[TC_C * TC_LDG]; /* Q K^T (lower block tiles only), then P */
  alignas(128) float a[TC_C * TC_C];    /* strictly lower A, zeros elsewhere: the solve reads whole rows */
  tc_gates gt;
};

/* Column `col` of T = (I + A)^-1 (A strictly lower, rows of 64 floats, 16-byte aligned) by
 * forward substitution, x_i = [i == col] - sum_{j<i} A_ij x_j, into column col of dst
 * (zeros above the diagonal). Four partial sums per row shorten the dependent chain
 * from i to i / 4 multiply-adds; x starts at zero so a row's A zeros meet zeros. */
static __device__ __forceinline__ void tc_inverse_column(float *dst, const float *a, int32_t col) {
  float x[TC_C];
#pragma unroll
  for (int i = 0; i < TC_C; ++i) x[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < TC_C; ++i) {
    float part0 = i == col ? 1.0f : 0.0f, part1 = 0.0f, part2 = 0.0f, part3 = 0.0f;
    const float4 *row = reinterpret_cast<const float4 *>(a + i * TC_C);
#pragma unroll
    for (int j4 = 0; j4 < (i + 3) / 4; ++j4) {
      const float4 av = row[j4];
      part0 -= av.x * x[4 * j4];
      part1 -= av.y * x[4 * j4 + 1];
      part2 -= av.z * x[4 * j4 + 2];
      part3 -= av.w * x[4 * j4 + 3];
    }
    x[i] = (part0 + part1) + (part2 + part3);
  }
#pragma unroll
  for (int i = 0; i < TC_C; ++i) dst[i * TC_LDG + col] = i >= col ? x[i] : 0.0f;
}

static __global__ void __launch_bounds__(TC_NT, 2)
    gdn_tc_intra_kernel(__nv_bfloat16 *tp, __nv_bfloat16 *qkn, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                        const float *g, const float *beta, const int32_t *cu, const int32_t *first, int32_t n_seqs,
                        int32_t hv, int32_t hk, int32_t group, int32_t d, int32_t stride, float scale) {
  extern __shared__ __align__(128) unsigned char gdn_tc_intra_raw[];
  tc_intra_smem &sm = *reinterpret_cast<tc_intra_smem *>(gdn_tc_intra_raw);
  const int32_t chunk = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, warp = tid / 32;
  if (chunk >= first[n_seqs]) return; /* the grid covers the bound, not the count */
  const int32_t s = up_deltanet_seq_of(first, n_seqs, chunk);
  const int64_t t0 = cu[s] + (int64_t)(chunk - first[s]) * TC_C;
  const int32_t n = min(TC_C, (int32_t)(cu[s + 1] - t0)), kh = (h / group) * d;
  {
    __nv_bfloat16 k_raw[TC_ROWS_PER_WARP][TC_COLS_PER_LANE], q_raw[TC_ROWS_PER_WARP][TC_COLS_PER_LANE];
    tc_gate_regs gates;
    tc_fetch_rows(k_raw, k + kh, t0, n, d, stride);
    tc_fetch_rows(q_raw, q + kh, t0, n, d, stride);
    tc_fetch_gates(gates, g, beta, t0, n, hv, h);
    tc_commit_rows(sm.k, k_raw, 1.0f);
    tc_commit_rows(sm.q, q_raw, scale);
    tc_commit_gates(sm.gt, gates);
  }
  __syncthreads();
  if (h % group == 0) /* the key head's normalised rows, once per key head, for the scan */
    for (int32_t idx = tid; idx < n * TC_QK_PIECES; idx += TC_NT) {
      const int32_t i = idx / TC_QK_PIECES, piece = idx % TC_QK_PIECES;
      reinterpret_cast<uint4 *>(qkn + ((t0 + i) * hk + h / group) * 2 * TC_DMAX)[piece] =
          *reinterpret_cast<const uint4 *>(tc_piece<TC_QK_PIECES>(sm.k, sm.q, TC_LDQK, i, piece));
    }

  /* K K^T (tiles 0..15) and Q K^T (16..31) over the lower block triangle (block column
   * <= block row); K^T is K read column-major. */
  const int32_t ksteps = (d + 15) / 16;
  for (int32_t tile = warp; tile < 32; tile += TC_WARPS) {
    const int32_t mi = (tile % 16) / 4, nj = tile % 4;
    if (nj > mi) continue;
    const __nv_bfloat16 *left = tile < 16 ? sm.k : sm.q;
    tc_acc acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int32_t st = 0; st < ksteps; ++st) {
      tc_a_rows fa;
      tc_b_cols fb;
      wmma::load_matrix_sync(fa, left + 16 * mi * TC_LDQK + 16 * st, TC_LDQK);
      wmma::load_matrix_sync(fb, sm.k + 16 * nj * TC_LDQK + 16 * st, TC_LDQK);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync((tile < 16 ? sm.kk : sm.pt) + 16 * mi * TC_LDG + 16 * nj, acc, TC_LDG,
                            wmma::mem_row_major);
  }
  __syncthreads();

  /* Decay and mask; only j <= i is read (above it the tiles were not computed, and
   * gamma_i - gamma_j >= 0 could overflow the exponential). */
  for (int32_t idx = tid; idx < TC_C * TC_C; idx += TC_NT) {
    const int32_t i = idx / TC_C, j = idx % TC_C;
    const float decay = j <= i ? expf(sm.gt.gam[i] - sm.gt.gam[j]) : 0.0f;
    sm.a[i * TC_C + j] = j < i ? sm.gt.bet[i] * sm.kk[i * TC_LDG + j] * decay : 0.0f;
    sm.pt[i * TC_LDG + j] = j <= i ? sm.pt[i * TC_LDG + j] * decay : 0.0f;
  }
  __syncthreads();
  if (tid < TC_C) tc_inverse_column(sm.kk, sm.a, tid);
  __syncthreads();

  for (int32_t idx = tid; idx < n * 2 * TC_C; idx += TC_NT) {
    const int32_t i = idx / (2 * TC_C), j = idx % (2 * TC_C);
    const float x = j < TC_C ? sm.kk[i * TC_LDG + j] : sm.pt[i * TC_LDG + j - TC_C];
    tp[((t0 + i) * hv + h) * 2 * TC_C + j] = __float2bfloat16_rn(x);
  }
}

/* --- 2. the sequential pass over the state -------------------------------------------------- */

enum { TC_V_PER_THREAD = TC_C * TC_TILE / TC_NT, TC_TP_PER_THREAD = TC_C * TC_TP_PIECES / TC_NT,
       TC_QK_PER_THREAD = TC_C * TC_QK_PIECES / TC_NT };

/* One chunk's inputs in registers: loaded a chunk ahead (their first use is the commit
 * into shared memory), so their latency hides behind the previous chunk's work. */
struct tc_chunk_regs {
  uint4 qk[TC_QK_PER_THREAD];       /* piece tid + 256m of the chunk's 64 normalised k | q rows */
  tc_gate_regs gates;
  __nv_bfloat16 v[TC_V_PER_THREAD]; /* element tid + 256m of the 64 x 32 value tile */
  uint4 tp[TC_TP_PER_THREAD];       /* piece tid + 256m of the chunk's 64 T | P rows */
};

struct tc_scan_smem {
  alignas(128) float s[TC_DMAX * TC_LDF];          /* the block's state slice: rows key dims, fp32 */
  alignas(128) __nv_bfloat16 sb[TC_DMAX * TC_LDT]; /* its bf16 copy, the operand of K S and Q S */
  alignas(128) __nv_bfloat16 k[TC_C * TC_LDQK];
  alignas(128) __nv_bfloat16 q[TC_C * TC_LDQK];
  alignas(128) __nv_bfloat16 t[TC_C * TC_LDM]; /* unit lower T, zeros above */
  alignas(128) __nv_bfloat16 p[TC_C * TC_LDM]; /* lower P with its diagonal, zeros above */
  alignas(128) float v[TC_C * TC_TILE];
  alignas(128) float ks[TC_C * TC_LDF];        /* K S, then V' */
  alignas(128) float qs[TC_C * TC_LDF];        /* Q S, then O */
  alignas(128) __nv_bfloat16 r[TC_C * TC_LDT]; /* R */
  alignas(128) __nv_bfloat16 vn[TC_C * TC_LDT];  /* V' */
  alignas(128) __nv_bfloat16 vd[TC_C * TC_LDT];  /* V' decayed to the chunk's end */
  tc_gates gt;
};

/* Pieces tid + 256m of a chunk's workspace rows (row i at base + (t0 + i) * row_stride),
 * zeros past its n rows. */
template <int PIECES, int PER_THREAD>
static __device__ __forceinline__ void tc_fetch_pieces(uint4 (&dst)[PER_THREAD], const __nv_bfloat16 *base,
                                                       int64_t row_stride, int64_t t0, int32_t n) {
#pragma unroll
  for (int m = 0; m < PER_THREAD; ++m) {
    const int32_t idx = threadIdx.x + TC_NT * m, i = idx / PIECES, piece = idx % PIECES;
    uint4 x = make_uint4(0u, 0u, 0u, 0u);
    if (i < n) x = reinterpret_cast<const uint4 *>(base + (t0 + i) * row_stride)[piece];
    dst[m] = x;
  }
}

template <int PIECES, int PER_THREAD>
static __device__ __forceinline__ void tc_commit_pieces(__nv_bfloat16 *left, __nv_bfloat16 *right, int32_t ld,
                                                        const uint4 (&src)[PER_THREAD]) {
#pragma unroll
  for (int m = 0; m < PER_THREAD; ++m) {
    const int32_t idx = threadIdx.x + TC_NT * m;
    *reinterpret_cast<uint4 *>(tc_piece<PIECES>(left, right, ld, idx / PIECES, idx % PIECES)) = src[m];
  }
}

static __device__ __forceinline__ void tc_fetch_chunk(tc_chunk_regs &in, const __nv_bfloat16 *qkn,
                                                      const __nv_bfloat16 *v, const float *g, const float *beta,
                                                      const __nv_bfloat16 *tp, int64_t t0, int32_t n, int32_t d,
                                                      int32_t stride, int32_t hv, int32_t h, int32_t hk,
                                                      int32_t key_head, int32_t col0) {
  tc_fetch_pieces<TC_QK_PIECES>(in.qk, qkn + (int64_t)key_head * 2 * TC_DMAX, (int64_t)hk * 2 * TC_DMAX, t0, n);
  tc_fetch_gates(in.gates, g, beta, t0, n, hv, h);
#pragma unroll
  for (int m = 0; m < TC_V_PER_THREAD; ++m) {
    const int32_t idx = threadIdx.x + TC_NT * m, i = idx / TC_TILE, c = idx % TC_TILE;
    __nv_bfloat16 x = tc_bf16_zero();
    if (i < n && col0 + c < d) x = v[(t0 + i) * stride + (int64_t)h * d + col0 + c];
    in.v[m] = x;
  }
  tc_fetch_pieces<TC_TP_PIECES>(in.tp, tp + (int64_t)h * 2 * TC_C, (int64_t)hv * 2 * TC_C, t0, n);
}

/* The registers into shared memory. Rows of T and P past the chunk's n are zero: R's
 * rows there are zero (beta = 0), K's too, so V' rows there never reach O or S. */
static __device__ __forceinline__ void tc_commit_chunk(tc_scan_smem &sm, const tc_chunk_regs &in) {
  tc_commit_pieces<TC_QK_PIECES>(sm.k, sm.q, TC_LDQK, in.qk);
  tc_commit_gates(sm.gt, in.gates);
#pragma unroll
  for (int m = 0; m < TC_V_PER_THREAD; ++m) sm.v[threadIdx.x + TC_NT * m] = __bfloat162float(in.v[m]);
  tc_commit_pieces<TC_TP_PIECES>(sm.t, sm.p, TC_LDM, in.tp);
}

/* Tile (mi, nj) of a 64 x 32 fp32 result (stride TC_LDF): L X, or dst + L X when
 * accumulating, with L a lower-triangular 64 x 64 bf16 matrix (stride TC_LDM; its block
 * columns past the block row are zero and skipped) and X a 64 x 32 bf16 tile. */
static __device__ __forceinline__ void tc_lower_times_tile(float *dst, const __nv_bfloat16 *lower,
                                                           const __nv_bfloat16 *x, int32_t mi, int32_t nj,
                                                           bool accumulate) {
  float *out = dst + 16 * mi * TC_LDF + 16 * nj;
  tc_acc acc;
  if (accumulate) wmma::load_matrix_sync(acc, out, TC_LDF, wmma::mem_row_major);
  else wmma::fill_fragment(acc, 0.0f);
  for (int32_t st = 0; st <= mi; ++st) {
    tc_a_rows fl;
    tc_b_rows fx;
    wmma::load_matrix_sync(fl, lower + 16 * mi * TC_LDM + 16 * st, TC_LDM);
    wmma::load_matrix_sync(fx, x + 16 * st * TC_LDT + 16 * nj, TC_LDT);
    wmma::mma_sync(acc, fl, fx, acc);
  }
  wmma::store_matrix_sync(out, acc, TC_LDF, wmma::mem_row_major);
}

static __global__ void __launch_bounds__(TC_NT, 1)
    gdn_tc_scan_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *qkn, const __nv_bfloat16 *v, const float *g,
                       const float *beta, float *state, const __nv_bfloat16 *tp, const int32_t *cu,
                       const int32_t *slots, const int32_t *initial, int32_t hv, int32_t hk, int32_t group, int32_t d,
                       int32_t stride) {
  extern __shared__ __align__(128) unsigned char gdn_tc_scan_raw[];
  tc_scan_smem &sm = *reinterpret_cast<tc_scan_smem *>(gdn_tc_scan_raw);
  const int32_t col0 = blockIdx.x * TC_TILE, h = blockIdx.y, s = blockIdx.z, tid = threadIdx.x, warp = tid / 32;
  const int32_t key_head = h / group, ksteps = (d + 15) / 16;
  const int32_t mi = warp / 2, nj = warp % 2; /* the warp's 16 x 16 tile of every 64 x 32 result */
  float *gstate = state + ((int64_t)slots[s] * hv + h) * d * d;
  const bool has_state = initial[s] != 0;
  /* Rows >= d and columns past d stay zero: the zero columns of K and V keep them so. */
  for (int32_t idx = tid; idx < TC_DMAX * TC_TILE; idx += TC_NT) {
    const int32_t a = idx / TC_TILE, c = idx % TC_TILE;
    sm.s[a * TC_LDF + c] = has_state && a < d && col0 + c < d ? gstate[(int64_t)a * d + col0 + c] : 0.0f;
  }
  const int64_t begin = cu[s], end = cu[s + 1];
  tc_chunk_regs in;
  if (begin < end)
    tc_fetch_chunk(in, qkn, v, g, beta, tp, begin, (int32_t)min((int64_t)TC_C, end - begin), d, stride, hv, h, hk,
                   key_head, col0);

  for (int64_t t0 = begin; t0 < end; t0 += TC_C) {
    const int32_t n = (int32_t)min((int64_t)TC_C, end - t0);
    tc_commit_chunk(sm, in);
    /* The same thread-to-element map as the state's load, so no barrier between them. */
    for (int32_t idx = tid; idx < TC_DMAX * TC_TILE; idx += TC_NT) {
      const int32_t a = idx / TC_TILE, c = idx % TC_TILE;
      sm.sb[a * TC_LDT + c] = __float2bfloat16_rn(sm.s[a * TC_LDF + c]);
    }
    __syncthreads();
    if (t0 + TC_C < end)
      tc_fetch_chunk(in, qkn, v, g, beta, tp, t0 + TC_C, (int32_t)min((int64_t)TC_C, end - t0 - TC_C), d, stride,
                     hv, h, hk, key_head, col0);

    { /* K S and Q S, sharing the state's fragments. */
      tc_acc acc_ks, acc_qs;
      wmma::fill_fragment(acc_ks, 0.0f);
      wmma::fill_fragment(acc_qs, 0.0f);
      for (int32_t st = 0; st < ksteps; ++st) {
        tc_b_rows fs;
        tc_a_rows fk, fq;
        wmma::load_matrix_sync(fs, sm.sb + 16 * st * TC_LDT + 16 * nj, TC_LDT);
        wmma::load_matrix_sync(fk, sm.k + 16 * mi * TC_LDQK + 16 * st, TC_LDQK);
        wmma::load_matrix_sync(fq, sm.q + 16 * mi * TC_LDQK + 16 * st, TC_LDQK);
        wmma::mma_sync(acc_ks, fk, fs, acc_ks);
        wmma::mma_sync(acc_qs, fq, fs, acc_qs);
      }
      wmma::store_matrix_sync(sm.ks + 16 * mi * TC_LDF + 16 * nj, acc_ks, TC_LDF, wmma::mem_row_major);
      wmma::store_matrix_sync(sm.qs + 16 * mi * TC_LDF + 16 * nj, acc_qs, TC_LDF, wmma::mem_row_major);
    }
    __syncthreads();
    for (int32_t idx = tid; idx < TC_C * TC_TILE; idx += TC_NT) {
      const int32_t i = idx / TC_TILE, c = idx % TC_TILE;
      const float eg = sm.gt.eg[i];
      sm.r[i * TC_LDT + c] = __float2bfloat16_rn(sm.gt.bet[i] * (sm.v[idx] - eg * sm.ks[i * TC_LDF + c]));
      sm.qs[i * TC_LDF + c] *= eg;
    }
    __syncthreads();
    tc_lower_times_tile(sm.ks, sm.t, sm.r, mi, nj, false); /* V' = T R */
    __syncthreads();
    for (int32_t idx = tid; idx < TC_C * TC_TILE; idx += TC_NT) {
      const int32_t i = idx / TC_TILE, c = idx % TC_TILE;
      const float vnew = sm.ks[i * TC_LDF + c];
      sm.vn[i * TC_LDT + c] = __float2bfloat16_rn(vnew);
      sm.vd[i * TC_LDT + c] = __float2bfloat16_rn(sm.gt.to_end[i] * vnew);
    }
    __syncthreads();
    tc_lower_times_tile(sm.qs, sm.p, sm.vn, mi, nj, true); /* O = e^gamma Q S + P V', onto Q S */
    /* S = e^gamma_last S + K^T V'_decayed: warp w owns state rows 16w..16w+15 (none past
     * the head size, which stay zero), updated in place as an fp32 accumulator. K^T is K
     * read column-major. Reads k, vd, s; the product above reads p, vn, qs. */
    if (16 * warp < d) {
      const float decay_all = sm.gt.decay_all;
      for (int32_t cj = 0; cj < TC_TILE / 16; ++cj) {
        tc_acc acc;
        float *tile = sm.s + 16 * warp * TC_LDF + 16 * cj;
        wmma::load_matrix_sync(acc, tile, TC_LDF, wmma::mem_row_major);
#pragma unroll
        for (int e = 0; e < acc.num_elements; ++e) acc.x[e] *= decay_all;
        for (int32_t st = 0; st < TC_C / 16; ++st) {
          tc_a_cols fkt;
          tc_b_rows fv;
          wmma::load_matrix_sync(fkt, sm.k + 16 * st * TC_LDQK + 16 * warp, TC_LDQK);
          wmma::load_matrix_sync(fv, sm.vd + 16 * st * TC_LDT + 16 * cj, TC_LDT);
          wmma::mma_sync(acc, fkt, fv, acc);
        }
        wmma::store_matrix_sync(tile, acc, TC_LDF, wmma::mem_row_major);
      }
    }
    __syncthreads();
    for (int32_t idx = tid; idx < TC_C * TC_TILE; idx += TC_NT) {
      const int32_t i = idx / TC_TILE, c = idx % TC_TILE;
      if (i < n && col0 + c < d) out[((t0 + i) * hv + h) * d + col0 + c] = __float2bfloat16_rn(sm.qs[i * TC_LDF + c]);
    }
    /* The next commit writes k, q, v, t, p and the gates, none of which the output loop
     * reads; qs is next written after the commit's barrier. */
  }
  for (int32_t idx = tid; idx < TC_DMAX * TC_TILE; idx += TC_NT) {
    const int32_t a = idx / TC_TILE, c = idx % TC_TILE;
    if (a < d && col0 + c < d) gstate[(int64_t)a * d + col0 + c] = sm.s[a * TC_LDF + c];
  }
}

/* --- the host side ---------------------------------------------------------------------------- */

extern "C" void up_cuda_gdn_tensor(up_cuda_backend *cb, __nv_bfloat16 *out, const __nv_bfloat16 *q,
                                   const __nv_bfloat16 *k, const __nv_bfloat16 *v, const float *g, const float *beta,
                                   float *state, const up_recurrent_batch *batch, const up_gdn_shape *shape) {
  const int32_t hv = shape->n_value_heads, d = shape->head_dim, n_seqs = batch->n_seqs;
  const int32_t hk = shape->n_key_heads, group = hv / hk;
  if (d > TC_DMAX) UP_FATAL("gated_deltanet (tensor cores): head size %d above %d", (int)d, TC_DMAX);
  int32_t *first = NULL;
  const size_t qk_bytes_per_token = sizeof(__nv_bfloat16) * 2 * TC_DMAX * (size_t)hk;
  __nv_bfloat16 *tp = (__nv_bfloat16 *)up_cuda_gdn_chunk_index(cb, batch, hv, qk_bytes_per_token, &first);
  /* After T | P's 128 bf16 per token and value head (a multiple of 256 bytes). */
  __nv_bfloat16 *qkn = tp + (size_t)batch->n_tokens * hv * 2 * TC_C;

  /* A bound on the chunk count: ceil(len / 64) <= len / 64 + 1 per sequence. */
  const int64_t max_chunks = ((int64_t)batch->n_tokens + TC_C - 1) / TC_C + n_seqs;
  if (batch->n_tokens > 0) {
    const size_t intra_smem = sizeof(tc_intra_smem);
    UP_CUDA_CHECK(
        cudaFuncSetAttribute(gdn_tc_intra_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)intra_smem));
    gdn_tc_intra_kernel<<<dim3((unsigned)max_chunks, (unsigned)hv), TC_NT, intra_smem, cb->stream>>>(
        tp, qkn, q, k, g, beta, batch->cu_seqlens, first, n_seqs, hv, hk, group, d, shape->qkv_stride, shape->scale);
    UP_CUDA_CHECK_LAUNCH();
  }

  const size_t scan_smem = sizeof(tc_scan_smem);
  UP_CUDA_CHECK(cudaFuncSetAttribute(gdn_tc_scan_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)scan_smem));
  gdn_tc_scan_kernel<<<dim3((unsigned)((d + TC_TILE - 1) / TC_TILE), (unsigned)hv, (unsigned)n_seqs), TC_NT,
                       scan_smem, cb->stream>>>(out, qkn, v, g, beta, state, tp, batch->cu_seqlens,
                                                batch->state_slots, batch->has_initial_state, hv, hk, group, d,
                                                shape->qkv_stride);
  UP_CUDA_CHECK_LAUNCH();
}
