/* attention_prefill_sm90_tma.cu — the warp-specialised Hopper (sm_90a) prefill kernel
 * for head_dim 128 and 256, used where the pool's pages tile a K/V tile evenly
 * (block_tokens 8, 16, 32, 64 or 128 for the 128-entry tiles of head_dim 128; 8 to 64
 * for the 64-entry tiles of 256): FlashAttention-3's structure on the paged pool.
 *
 * CTA = one query head x 128 rows of one sequence, three warpgroups:
 * - a producer (warpgroup 0, one warp working, its registers given up by setmaxnreg)
 *   copies each K and V tile page by page with the tensor-memory accelerator: one 2-D
 *   bulk tensor copy per (page, 64-column block), addressed by (kv head column, pool row
 *   of the page's first entry), written in wgmma's 128-byte swizzle by the copy engine
 *   itself; each stage completes on a "full" mbarrier counting the bytes;
 * - two consumers (warpgroups 1 and 2, 64 query rows each, setmaxnreg 240) run the
 *   products and the softmax of attention_prefill_sm90.cu and hand each stage back on
 *   an "empty" mbarrier as soon as the product that read it has completed. The source
 *   issues S_{j+1} and P_j V_j together and computes the softmax of S_{j+1} before
 *   waiting for P_j V_j (FlashAttention-3's intra-warpgroup overlap), but ptxas places
 *   that wait ahead of the exponentials; the attempts to keep it behind them measured
 *   slower (docs/kernels/attention.md, v4).
 * No __syncthreads in the loop: the consumers run out of phase, and named barriers make
 * them take turns issuing their products (ping-pong), so one warpgroup's softmax runs
 * while the other's products occupy the tensor cores. Two stages, ping-pong: the
 * schedules without ping-pong and with three stages measured slower at every shape and
 * were removed (docs/kernels/attention.md, v4).
 *
 * Cache entries at or past kv_len are never used by value: their scores are set to
 * -inf, and their V rows are zeroed in shared memory before the last product (a page's
 * tail may hold anything, and a page past kv_len is not copied at all), so that P = 0
 * never meets a NaN. */
#include <cuda.h>
#include <limits.h>

#include "kernels/cuda/attention/attn_sm90_tiles.cuh"
#include "kernels/cuda/attention/cuda_attention.h"
#include "kernels/cuda/sparse/sparse_estimate_common.cuh" /* a listed sequence's lookup and shape check */

namespace {

constexpr int TMA_THREADS = 384;     /* producer warpgroup + two consumer warpgroups */
static_assert(BM == UP_ATTN_SM90_QUERY_ROWS, "the listed schedule's query-block rule (cuda_attention.h)");

#if UP_ATTN_HAVE_WGMMA
constexpr int PRODUCER_REGS = 24;    /* setmaxnreg: 128 x 24 + 256 x 240 <= 65536 */
constexpr int CONSUMER_REGS = 240;
constexpr int EMPTY_ARRIVALS = 8;    /* lane 0 of each consumer warp releases a stage */
constexpr int BAR_CONSUMER0 = 1;     /* named barriers 1, 2: one consumer warpgroup's own */
constexpr int BAR_TURN0 = 3;         /* 3, 4: ping-pong turns (both consumer warpgroups) */

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
/* Arrive and add `bytes` to the transactions the current phase waits for. */
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
/* Block until the phase of parity `parity` has completed. */
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
/* One 2-D box of the tensor map (coordinates: column, row) into shared memory,
 * completing on `bar` with its byte count. */
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap *map, int32_t col, int32_t row,
                                            uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"((uint64_t)map), "r"(col), "r"(row), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void named_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
template <int REGS>
__device__ __forceinline__ void regs_dec(void) {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(REGS));
}
template <int REGS>
__device__ __forceinline__ void regs_inc(void) {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(REGS));
}

/* The mbarriers after the stages: full K [STAGES], full V [STAGES], empty K [STAGES],
 * empty V [STAGES] (kv: 0 K, 1 V). */
template <int STAGES>
__device__ __forceinline__ uint32_t full_bar(uint32_t bars, int kv, int s) {
  return bars + (uint32_t)((kv * STAGES + s) * 8);
}
template <int STAGES>
__device__ __forceinline__ uint32_t empty_bar(uint32_t bars, int kv, int s) {
  return bars + (uint32_t)(((2 + kv) * STAGES + s) * 8);
}

/* The stage of the CTA's nth tile and the parity its "empty" barriers are waited on with. */
template <int STAGES>
__device__ __forceinline__ int tile_stage(int32_t nth, uint32_t &parity) {
  parity = (uint32_t)((nth / STAGES) & 1) ^ 1u;
  return nth % STAGES;
}

/* The producer warp's copy of the nth tile of the CTA: its K then its V into stage s
 * (tile_stage), once both consumers have released that stage's previous tile; `pages`
 * pages from block-table slot first_page on, landing `skip` pages into the tile. Lane i
 * copies (page i / B, column block i % B), B = HD / 64 blocks, in rounds of 32. With a
 * span slot (a listed schedule), lane 0 first writes the tile's span (first entry, list
 * range) into the stage's slot, which the consumers read once K is full. */
template <int HD, int STAGES>
__device__ __forceinline__ void copy_tile(const CUtensorMap *k_map, const CUtensorMap *v_map,
                                          const int32_t *block_table, int32_t nth, int s, uint32_t parity,
                                          int32_t first_page, int32_t skip, int32_t pages, int32_t kv_col, int32_t bt,
                                          uint32_t page_bytes, uint32_t k_s, uint32_t v_s, uint32_t bars,
                                          int4 *span_slots, int4 span) {
  constexpr int BN = sm90_geom<HD>::BN, TILE_BYTES = sm90_geom<HD>::TILE_BYTES, BLOCKS = HD / 64;
  const int lane = threadIdx.x & 31;
  for (int kv = 0; kv < 2; ++kv) {
    const uint32_t full = full_bar<STAGES>(bars, kv, s);
    const uint32_t empty = empty_bar<STAGES>(bars, kv, s);
    const uint32_t tile = (kv == 0 ? k_s : v_s) + (uint32_t)(s * TILE_BYTES);
    if (nth >= STAGES) mbar_wait(empty, parity);
    if (lane == 0) {
      if (span_slots && kv == 0) span_slots[s] = span; /* released to the consumers by the arrive */
      mbar_arrive_expect_tx(full, (uint32_t)pages * page_bytes);
    }
    __syncwarp();
    for (int i = lane; i < BLOCKS * pages; i += 32) {
      const int32_t page = i / BLOCKS, block = i % BLOCKS;
      const int32_t row = __ldg(block_table + first_page + page) * bt;
      tma_load_2d(tile + (uint32_t)(block * BN * 128 + (skip + page) * bt * 128), kv == 0 ? k_map : v_map,
                  kv_col + block * 64, row, full);
    }
  }
}

/* Producer warp of the causal schedule: tiles t = j0 .. n_tiles - 1 of the CTA in that
 * order (the nth is t = j0 + nth). Pages wholly before k_lo (the first entry any row of
 * the CTA sees under a sliding window; 0 without one) are not copied: their block-table
 * entries may be -1. */
template <int HD, int STAGES, bool WINDOW>
__device__ __forceinline__ void produce(const CUtensorMap *k_map, const CUtensorMap *v_map, const prefill_job &jb,
                                        int32_t j0, int32_t k_lo, int32_t kv_col, int32_t bt, uint32_t k_s,
                                        uint32_t v_s, uint32_t bars) {
  constexpr int BN = sm90_geom<HD>::BN;
  const int32_t pages_per_tile = BN / bt;
  const uint32_t page_bytes = (uint32_t)bt * HD * 2;
  for (int32_t t = j0; t < jb.n_tiles; ++t) {
    uint32_t parity;
    const int s = tile_stage<STAGES>(t - j0, parity);
    /* Pages skip .. end of the tile: from the page holding k_lo (only the first tile
     * has skipped ones) to the last page holding keys < kv_len. */
    const int32_t skip = WINDOW && t == j0 ? (k_lo - t * BN) / bt : 0;
    const int32_t end = min(pages_per_tile, (jb.kv_len - t * BN + bt - 1) / bt);
    copy_tile<HD, STAGES>(k_map, v_map, jb.block_table, t - j0, s, parity, t * pages_per_tile + skip, skip, end - skip,
                          kv_col, bt, page_bytes, k_s, v_s, bars, nullptr, make_int4(0, 0, 0, 0));
  }
}

/* ---- the listed schedule (block-sparse prefill, kernels/sparse_attention_ops.h) ----
 *
 * A listed CTA runs 128 rows of one query block (block_q a multiple of 128) over the
 * key ranges of its list row instead of the causal prefix. Range [a, a + block_k)
 * becomes the tiles of BN entries from the page boundary at or before a, so every
 * tile is whole pages and its copy is the causal schedule's; the entries of a tile
 * outside the range are masked as the causal limit is (softmax_tile's span). Tiles
 * holding no entry at or before the CTA's last row are skipped. The producer and the
 * consumers walk the same list; the consumers learn each tile's span from the producer
 * through a slot per stage. Sequences without a list (decode rows, prefills a method
 * leaves dense) run the causal schedule in the same launch, as the grid's second part. */

/* The tiles of range [a, a + block_k) from `first` (the page boundary at or before a)
 * that hold an entry at or before last_key. */
template <int BN>
__device__ __forceinline__ int32_t range_tiles(int32_t a, int32_t first, int32_t block_k, int32_t last_key) {
  if (a > last_key) return 0;
  return min((a - first + block_k + BN - 1) / BN, (last_key - first) / BN + 1);
}

/* All tiles of a list row: every warp sums its 32 lanes' share. */
template <int BN>
__device__ __forceinline__ int32_t listed_tiles(const up_attn_key_lists &kl, int32_t range0, int32_t n_ranges,
                                                int32_t bt, int32_t last_key) {
  int32_t n = 0;
  for (int32_t r = threadIdx.x & 31; r < n_ranges; r += 32) {
    const int32_t a = __ldg(kl.range_start + range0 + r);
    n += range_tiles<BN>(a, a - a % bt, kl.block_k, last_key);
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) n += __shfl_xor_sync(0xffffffffu, n, off);
  return n;
}

/* Where a CTA of the listed launch works. The grid's first kl.listed_ctas CTAs (in
 * blockIdx order from the end, like the causal grid's) are 128-row slices of query
 * blocks, the rest the causal grid's virtual tiles, which exit for sequences with a
 * list. n_ranges < 0: a causal CTA. */
template <int HD>
__device__ __forceinline__ bool find_listed_job(const up_attn_args &p, const up_attn_key_lists &kl, prefill_job &jb,
                                                int32_t &range0, int32_t &n_ranges) {
  const int32_t y = (int32_t)(gridDim.y - 1 - blockIdx.y);
  if (y >= kl.listed_ctas) {
    range0 = 0;
    n_ranges = -1;
    return find_job_at<HD>(p, y - kl.listed_ctas, 0, jb) &&
           __ldg(kl.qblock_start + jb.seq + 1) == __ldg(kl.qblock_start + jb.seq);
  }
  const int32_t slices = kl.block_q / BM, qb = y / slices;
  jb.seq = up_sparse_qblock_seq(kl.qblock_start, p.n_seqs, qb);
  jb.row0 = __ldg(p.cu_seqlens + jb.seq);
  jb.n_rows = __ldg(p.cu_seqlens + jb.seq + 1) - jb.row0;
  jb.kv_len = __ldg(p.kv_lens + jb.seq);
  const int32_t first_qb = __ldg(kl.qblock_start + jb.seq);
  if (!up_sparse_sequence_ok(kl.error, jb.seq, jb.n_rows, jb.kv_len, __ldg(kl.qblock_start + jb.seq + 1) - first_qb,
                             kl.block_q))
    return false;
  jb.q0 = (qb - first_qb) * kl.block_q + (y - qb * slices) * BM;
  if (jb.q0 >= jb.n_rows) return false;
  jb.prior = 0;
  jb.block_table = p.block_tables + (int64_t)jb.seq * p.max_blocks_per_seq;
  const int64_t row = (int64_t)qb * p.n_heads + blockIdx.x;
  range0 = __ldg(kl.range_ptr + row);
  n_ranges = __ldg(kl.range_ptr + row + 1) - range0;
  jb.n_tiles = listed_tiles<sm90_geom<HD>::BN>(kl, range0, n_ranges, p.block_tokens.d,
                                               min(jb.q0 + BM, jb.n_rows) - 1);
  return true;
}

/* Producer warp of the listed schedule: the list row's tiles in range order (pages at
 * or past kv_len are not copied), or the causal prefix for a causal CTA, each with its
 * span. */
template <int HD, int STAGES>
__device__ __forceinline__ void produce_listed(const CUtensorMap *k_map, const CUtensorMap *v_map,
                                               const prefill_job &jb, const up_attn_key_lists &kl, int32_t range0,
                                               int32_t n_ranges, int32_t kv_col, int32_t bt, uint32_t k_s,
                                               uint32_t v_s, uint32_t bars, int4 *span_slots) {
  constexpr int BN = sm90_geom<HD>::BN;
  const uint32_t page_bytes = (uint32_t)bt * HD * 2;
  auto copy = [&](int32_t nth, int32_t first, int32_t lo, int32_t hi) {
    uint32_t parity;
    const int s = tile_stage<STAGES>(nth, parity);
    const int32_t pages = max(0, min(BN / bt, (jb.kv_len - first + bt - 1) / bt));
    copy_tile<HD, STAGES>(k_map, v_map, jb.block_table, nth, s, parity, first / bt, 0, pages, kv_col, bt, page_bytes,
                          k_s, v_s, bars, span_slots, make_int4(first, lo, hi, 0));
  };
  if (n_ranges < 0) {
    for (int32_t nth = 0; nth < jb.n_tiles; ++nth) copy(nth, nth * BN, 0, INT32_MAX);
    return;
  }
  const int32_t last_key = min(jb.q0 + BM, jb.n_rows) - 1;
  for (int32_t r = 0, nth = 0; r < n_ranges; ++r) {
    const int32_t a = __ldg(kl.range_start + range0 + r), first = a - a % bt;
    const int32_t tiles = range_tiles<BN>(a, first, kl.block_k, last_key);
    for (int32_t sub = 0; sub < tiles; ++sub) copy(nth++, first + sub * BN, a, a + kl.block_k);
  }
}

/* Zero V rows [from, to) of a stage (every column block) by one consumer warpgroup,
 * then make the writes visible to its products. */
template <int HD>
__device__ __forceinline__ void zero_v_rows(unsigned char *tile_gen, int32_t from, int32_t to, int ctid, int cwg) {
  constexpr int CH = sm90_geom<HD>::CH;
  for (int i = ctid; i < (to - from) * CH; i += 128) {
    const int r = from + i / CH, c = i % CH;
    *(uint4 *)(tile_gen + sw128(sm90_geom<HD>::BN, r, c)) = make_uint4(0u, 0u, 0u, 0u);
  }
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  named_sync(BAR_CONSUMER0 + cwg, 128);
}
#endif /* UP_ATTN_HAVE_WGMMA */

template <int HD, int STAGES, bool LISTS = false>
constexpr size_t tma_smem_bytes(void) {
  /* Q, K and V stages, 1024-byte alignment slack, then 4 x STAGES mbarriers (and, for
   * the listed schedule, a 16-byte span slot per stage). */
  return (size_t)sm90_geom<HD>::Q_BYTES + (size_t)2 * STAGES * sm90_geom<HD>::TILE_BYTES + 1024 +
         (size_t)4 * STAGES * 8 + (LISTS ? (size_t)16 * STAGES : 0);
}

#if UP_ATTN_HAVE_WGMMA
/* The kernel of both schedules (one body: the listed one is the causal one with its
 * tile index taken from a list). WINDOW: sliding-window attention (p.window > 0): the
 * CTA's tiles start at the one holding the first entry its first row sees, and each
 * row's window start is masked. LISTS: the listed schedule over kl (full causal
 * otherwise, no window). Both false: full causal, the code as it was before windows
 * and lists existed. */
template <int HD, int STAGES, bool WINDOW, bool LISTS>
__device__ __forceinline__ void prefill_sm90_tma_body(const up_attn_args &p, const up_attn_key_lists &kl,
                                                      const CUtensorMap *k_map, const CUtensorMap *v_map) {
  static_assert(!(WINDOW && LISTS), "the listed schedule is full causal");
  extern __shared__ unsigned char smem_raw[];
  const uint32_t smem = (up_attn_smem_u32(smem_raw) + 1023u) & ~1023u;
  unsigned char *smem_gen = smem_raw + (smem - up_attn_smem_u32(smem_raw));
  using G = sm90_geom<HD>;
  constexpr int BN = G::BN, TILE_BYTES = G::TILE_BYTES;
  prefill_job jb;
  int32_t range0 = 0, n_ranges = 0;
  if (LISTS ? !find_listed_job<HD>(p, kl, jb, range0, n_ranges) : !find_job<HD>(p, jb)) return;
  const uint32_t k_s = smem + G::Q_BYTES, v_s = k_s + STAGES * TILE_BYTES;
  const uint32_t bars = v_s + STAGES * TILE_BYTES;
  int4 *span_slots = LISTS ? (int4 *)(smem_gen + (bars - smem) + 4 * STAGES * 8) : nullptr;
  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
      mbar_init(full_bar<STAGES>(bars, 0, s), 1);
      mbar_init(full_bar<STAGES>(bars, 1, s), 1);
      mbar_init(empty_bar<STAGES>(bars, 0, s), EMPTY_ARRIVALS);
      mbar_init(empty_bar<STAGES>(bars, 1, s), EMPTY_ARRIVALS);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); /* visible to the copy engine */
  }
  __syncthreads();

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int32_t kv_col = (blockIdx.x / p.group) * HD; /* the kv head's first column in a pool row */
  const int32_t k_lo = job_first_entry<WINDOW>(p, jb);
  const int32_t j0 = k_lo / BN;
  if (warp < 4) { /* producer warpgroup */
    regs_dec<PRODUCER_REGS>();
    if (warp == 0) {
      if (LISTS)
        produce_listed<HD, STAGES>(k_map, v_map, jb, kl, range0, n_ranges, kv_col, p.block_tokens.d, k_s, v_s, bars,
                                   span_slots);
      else
        produce<HD, STAGES, WINDOW>(k_map, v_map, jb, j0, k_lo, kv_col, p.block_tokens.d, k_s, v_s, bars);
    }
    return;
  }
  regs_inc<CONSUMER_REGS>();
  const int cwg = (warp >> 2) - 1, ctid = threadIdx.x - 128 * (cwg + 1), wrow = (warp & 3) * 16;
  const uint32_t q_wg = smem + (uint32_t)(cwg * 64 * 128);
  const int32_t wg_row = jb.q0 + cwg * 64;
  const int32_t my_row = wg_row + wrow + (lane >> 2);
  /* Both warpgroups run every tile j0 .. n_tiles - 1 (a fully masked one costs one step). */
  const int32_t n = jb.n_tiles;

  /* This warpgroup's 64 query rows (the copy engine is busy with K and V meanwhile). */
  load_q_rows<HD, 128>(smem, p, jb, ctid, cwg * 64, 64);
  up_attn_cp_async_commit();
  up_attn_cp_async_wait<0>();
  fence_proxy_async();
  named_sync(BAR_CONSUMER0 + cwg, 128);

  /* Ping-pong: warpgroup 0 issues first; each issue turn waits for the other's. */
  auto turn_begin = [&]() {
    named_sync(BAR_TURN0 + cwg, 256);
  };
  auto turn_end = [&]() {
    named_arrive(BAR_TURN0 + (cwg ^ 1), 256);
  };
  if (cwg == 1) named_arrive(BAR_TURN0, 256);
  /* Tile t is the (t - j0)-th the producer copies: its stage and barrier phase count from j0. */
  auto stage = [&](int32_t t) { return (int)((t - j0) % STAGES); };
  auto release = [&](int kv, int32_t t) {
    if (lane == 0) mbar_arrive(empty_bar<STAGES>(bars, kv, stage(t)));
  };
  auto wait_full = [&](int kv, int32_t t) {
    mbar_wait(full_bar<STAGES>(bars, kv, stage(t)), (uint32_t)(((t - j0) / STAGES) & 1));
  };
  /* Under a window the first tile's V rows before k_lo may be pages that were not
   * copied (stale shared memory, possibly NaN): zero them before P V reads them. The
   * tail past kv_len of the last tile likewise. */
  auto zero_v_edges = [&](int32_t t) {
    unsigned char *tile_gen = smem_gen + (v_s - smem) + (size_t)stage(t) * TILE_BYTES;
    if (WINDOW && t == j0 && k_lo > t * BN) zero_v_rows<HD>(tile_gen, 0, k_lo - t * BN, ctid, cwg);
    if (t == n - 1 && jb.kv_len - t * BN < BN) zero_v_rows<HD>(tile_gen, jb.kv_len - t * BN, BN, ctid, cwg);
  };
  /* Listed: any tile may reach past kv_len (its pages there were not copied). */
  auto zero_v_past_end = [&](int32_t t, int32_t first) {
    if (first + BN > jb.kv_len)
      zero_v_rows<HD>(smem_gen + (v_s - smem) + (size_t)stage(t) * TILE_BYTES, max(0, jb.kv_len - first), BN, ctid,
                      cwg);
  };
  /* Listed: tile t's first entry and list span, read after its K stage is full and
   * before it is released (the producer rewrites the slot for the stage's next tile;
   * the warp barrier orders every lane's read before lane 0's release). */
  int32_t kf = 0, span_lo = 0, span_hi = 0;
  auto read_span = [&](int32_t t) {
    const int4 span = span_slots[stage(t)];
    kf = span.x, span_lo = span.y, span_hi = span.z;
    __syncwarp();
  };

  float o[G::O_REGS], sc[G::S_REGS], corr[2];
  uint32_t pa[BN / 16][4];
#pragma unroll
  for (int i = 0; i < G::O_REGS; ++i) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  /* A listed CTA may have no tile (an empty list row): its rows are written as zeros. */
  if (!LISTS || n > 0) {
    wait_full(0, j0);
    if (LISTS) read_span(j0);
    turn_begin();
    issue_scores<HD>(sc, q_wg, k_s + (uint32_t)(stage(j0) * TILE_BYTES));
    turn_end();
    wgmma_wait<0>();
    fence_accumulators(sc);
    release(0, j0);
    softmax_tile<HD, WINDOW, LISTS>(sc, m, l, corr, LISTS ? kf : j0 * BN, my_row, wg_row, jb, p.scale_log2, p.window,
                                    span_lo, span_hi);
    rescale_and_pack<HD>(o, corr, sc, pa);

    /* Causal: tiles before the last are wholly below kv_len, (n - 1) * BN < kv_len. */
    for (int32_t j = j0; j < n - 1; ++j) {
      const int32_t v_first = kf; /* listed: tile j's first entry */
      wait_full(0, j + 1);
      wait_full(1, j);
      if (LISTS) read_span(j + 1);
      if (LISTS) zero_v_past_end(j, v_first);
      if (WINDOW && j == j0) zero_v_edges(j);
      turn_begin();
      issue_scores<HD>(sc, q_wg, k_s + (uint32_t)(stage(j + 1) * TILE_BYTES));
      issue_pv<HD>(o, pa, v_s + (uint32_t)(stage(j) * TILE_BYTES));
      turn_end();
      wgmma_wait<1>(); /* S_{j+1} complete; P_j V_j may still run */
      fence_accumulators(sc);
      release(0, j + 1);
      softmax_tile<HD, WINDOW, LISTS>(sc, m, l, corr, LISTS ? kf : (j + 1) * BN, my_row, wg_row, jb, p.scale_log2,
                                      p.window, span_lo, span_hi);
      wgmma_wait<0>(); /* P_j V_j complete: O and P may change */
      fence_accumulators(o);
      release(1, j);
      rescale_and_pack<HD>(o, corr, sc, pa);
    }
    const int32_t last = n - 1;
    wait_full(1, last);
    if (LISTS)
      zero_v_past_end(last, kf);
    else
      zero_v_edges(last);
    turn_begin();
    issue_pv<HD>(o, pa, v_s + (uint32_t)(stage(last) * TILE_BYTES));
    turn_end();
    wgmma_wait<0>();
    fence_accumulators(o);
    release(1, last);
  }
  if (cwg == 0) named_sync(BAR_TURN0, 256); /* the other's last turn_end */
  /* Only this warpgroup's products read its Q rows, and they have completed. */
  write_out<HD>(o, l, smem_gen, p, jb, cwg, wrow);
}
#endif /* UP_ATTN_HAVE_WGMMA */

template <int HD, int STAGES, bool WINDOW>
__global__ void __launch_bounds__(TMA_THREADS, 1)
    prefill_sm90_tma_kernel(const __grid_constant__ up_attn_args p, const __grid_constant__ CUtensorMap k_map,
                            const __grid_constant__ CUtensorMap v_map) {
#if !UP_ATTN_HAVE_WGMMA
  __trap(); /* built for a target without wgmma: the host never launches this there */
#else
  const up_attn_key_lists no_lists = {};
  prefill_sm90_tma_body<HD, STAGES, WINDOW, false>(p, no_lists, &k_map, &v_map);
#endif
}

/* The listed schedule (up_cuda_attention_prefill_sm90_tma_lists). */
template <int HD, int STAGES>
__global__ void __launch_bounds__(TMA_THREADS, 1)
    prefill_sm90_tma_lists_kernel(const __grid_constant__ up_attn_args p, const __grid_constant__ up_attn_key_lists kl,
                                  const __grid_constant__ CUtensorMap k_map,
                                  const __grid_constant__ CUtensorMap v_map) {
#if !UP_ATTN_HAVE_WGMMA
  __trap();
#else
  prefill_sm90_tma_body<HD, STAGES, false, true>(p, kl, &k_map, &v_map);
#endif
}

/* cuTensorMapEncodeTiled from the driver, found once through the runtime (the build
 * links no libcuda, so that the binaries load on machines without a GPU driver). */
typedef CUresult (*encode_tiled_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                    const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                    CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

encode_tiled_fn encode_tiled(void) {
  static encode_tiled_fn fn = NULL;
  if (!fn) {
    void *sym = NULL;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    UP_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &sym, 12000, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || !sym)
      UP_FATAL("attention: the driver has no cuTensorMapEncodeTiled (query result %d)", (int)found);
    fn = (encode_tiled_fn)sym;
  }
  return fn;
}

/* A map of the pool [rows][kv_dim] bf16 whose box is one page of one 64-column block. */
CUtensorMap page_map(const void *pool, int64_t pool_rows, int32_t kv_dim, int32_t block_tokens, const char *which) {
  CUtensorMap map;
  const cuuint64_t dims[2] = {(cuuint64_t)kv_dim, (cuuint64_t)pool_rows};
  const cuuint64_t strides[1] = {(cuuint64_t)kv_dim * 2};
  const cuuint32_t box[2] = {64, (cuuint32_t)block_tokens};
  const cuuint32_t elem_strides[2] = {1, 1};
  const CUresult r = encode_tiled()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void *>(pool), dims, strides,
                                    box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    UP_FATAL("attention: cuTensorMapEncodeTiled for the %s pool failed (CUresult %d; %lld rows x %d, page %d)", which,
             (int)r, (long long)pool_rows, kv_dim, block_tokens);
  return map;
}

template <int HD, int STAGES, bool WINDOW>
void launch_tma(cudaStream_t stream, const up_attn_args &p, const up_kv_pool *pool, const up_attn_batch *batch,
                int32_t n_heads) {
  const int64_t pool_rows = (int64_t)pool->n_blocks * pool->block_tokens;
  const CUtensorMap k_map = page_map(pool->k, pool_rows, pool->kv_dim, pool->block_tokens, "K");
  const CUtensorMap v_map = page_map(pool->v, pool_rows, pool->kv_dim, pool->block_tokens, "V");
  const int64_t tiles = (int64_t)batch->n_tokens / BM + p.n_seqs;
  if (tiles > 65535) UP_FATAL("attention: %lld query tiles exceed the grid limit 65535", (long long)tiles);
  constexpr size_t smem = tma_smem_bytes<HD, STAGES>();
  UP_CUDA_CHECK(cudaFuncSetAttribute(prefill_sm90_tma_kernel<HD, STAGES, WINDOW>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  prefill_sm90_tma_kernel<HD, STAGES, WINDOW>
      <<<dim3((unsigned)n_heads, (unsigned)tiles), TMA_THREADS, smem, stream>>>(p, k_map, v_map);
  UP_CUDA_CHECK_LAUNCH();
}

/* The causal kernel at one head_dim (two stages), full causal or sliding window
 * (p.window > 0). */
template <int HD>
void launch_head_dim(cudaStream_t stream, const up_attn_args &p, const up_kv_pool *pool, const up_attn_batch *batch,
                     int32_t n_heads) {
  if (p.window > 0)
    launch_tma<HD, 2, true>(stream, p, pool, batch, n_heads);
  else
    launch_tma<HD, 2, false>(stream, p, pool, batch, n_heads);
}

/* The listed schedule at one head_dim: two stages, ping-pong (the causal default). */
template <int HD>
void launch_lists(cudaStream_t stream, const up_attn_args &p, const up_attn_key_lists &kl, const up_kv_pool *pool,
                  const up_attn_batch *batch, int32_t n_heads) {
  constexpr int STAGES = 2;
  const int64_t pool_rows = (int64_t)pool->n_blocks * pool->block_tokens;
  const CUtensorMap k_map = page_map(pool->k, pool_rows, pool->kv_dim, pool->block_tokens, "K");
  const CUtensorMap v_map = page_map(pool->v, pool_rows, pool->kv_dim, pool->block_tokens, "V");
  const int64_t ctas = (int64_t)kl.listed_ctas + (int64_t)batch->n_tokens / BM + p.n_seqs;
  if (ctas > 65535)
    UP_FATAL("sparse attention: %lld query tiles exceed the grid limit 65535 (%d tokens, %d sequences)",
             (long long)ctas, (int)batch->n_tokens, (int)batch->n_seqs);
  constexpr size_t smem = tma_smem_bytes<HD, STAGES, true>();
  UP_CUDA_CHECK(cudaFuncSetAttribute(prefill_sm90_tma_lists_kernel<HD, STAGES>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  prefill_sm90_tma_lists_kernel<HD, STAGES>
      <<<dim3((unsigned)n_heads, (unsigned)ctas), TMA_THREADS, smem, stream>>>(p, kl, k_map, v_map);
  UP_CUDA_CHECK_LAUNCH();
}

/* Pages that tile a K/V tile of tile_entries evenly, at least 8 entries (a TMA box row
 * count the copies stay efficient at). */
bool pages_tile(int32_t block_tokens, int32_t tile_entries) {
  return block_tokens >= 8 && block_tokens <= tile_entries && tile_entries % block_tokens == 0;
}

} /* namespace */

extern "C" bool up_cuda_attention_prefill_sm90_tma_block_fits(int32_t block_tokens) {
  return pages_tile(block_tokens, sm90_geom<128>::BN);
}

extern "C" bool up_cuda_attention_prefill_sm90_tma_fits(const up_kv_pool *pool, int32_t head_dim) {
  const int32_t tile_entries = head_dim == 128 ? sm90_geom<128>::BN : head_dim == 256 ? sm90_geom<256>::BN : 0;
  return pages_tile(pool->block_tokens, tile_entries) && ((uintptr_t)pool->k & 15u) == 0 &&
         ((uintptr_t)pool->v & 15u) == 0 && ((int64_t)pool->kv_dim * 2) % 16 == 0;
}

extern "C" bool up_cuda_attention_prefill_sm90_tma_lists_fit(const up_kv_pool *pool, int32_t head_dim, int32_t block_q) {
  return (head_dim == 128 || head_dim == 256) && block_q > 0 && block_q % BM == 0 &&
         up_cuda_attention_prefill_sm90_tma_fits(pool, head_dim);
}

extern "C" void up_cuda_attention_prefill_sm90_tma(cudaStream_t stream, void *out, const void *qkv,
                                                   const up_kv_pool *pool, const up_attn_batch *batch,
                                                   const up_attn_shape *shape, int32_t window) {
  if (shape->head_dim != 128 && shape->head_dim != 256)
    UP_FATAL("attention: the sm_90a TMA prefill kernel takes head_dim 128 or 256, not %d", shape->head_dim);
  if (!up_cuda_attention_prefill_sm90_tma_fits(pool, shape->head_dim))
    UP_FATAL("attention: the sm_90a TMA prefill kernel at head_dim %d needs pages of at least 8 entries that divide "
             "%d (block_tokens %d) and 16-byte-aligned pools",
             shape->head_dim, shape->head_dim == 128 ? sm90_geom<128>::BN : sm90_geom<256>::BN, pool->block_tokens);
  if (batch->n_tokens <= 0 || batch->n_seqs <= 0) return;
  up_attn_args p = up_attn_args_make(out, qkv, pool, batch, shape);
  p.window = window;
  if (shape->head_dim == 128)
    launch_head_dim<128>(stream, p, pool, batch, shape->n_heads);
  else
    launch_head_dim<256>(stream, p, pool, batch, shape->n_heads);
}

extern "C" void up_cuda_attention_prefill_sm90_tma_lists(cudaStream_t stream, void *out, const void *qkv,
                                                         const up_kv_pool *pool, const up_attn_batch *batch,
                                                         const up_attn_shape *shape, const up_attn_key_lists *lists) {
  if (!up_cuda_attention_prefill_sm90_tma_lists_fit(pool, shape->head_dim, lists->block_q))
    UP_FATAL("sparse attention: the sm_90a listed kernel takes head_dim 128 or 256, query blocks of a multiple of %d "
             "rows and pages that tile a K/V tile (head_dim %d, block_q %d, block_tokens %d)",
             BM, shape->head_dim, lists->block_q, pool->block_tokens);
  if (batch->n_tokens <= 0 || batch->n_seqs <= 0) return;
  up_attn_args p = up_attn_args_make(out, qkv, pool, batch, shape);
  if (shape->head_dim == 128)
    launch_lists<128>(stream, p, *lists, pool, batch, shape->n_heads);
  else
    launch_lists<256>(stream, p, *lists, pool, batch, shape->n_heads);
}
