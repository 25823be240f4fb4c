/* attn_sm90_schedule.cuh — the persistent Hopper prefill kernel's tile scheduler
 * (attention_prefill_sm90_tma.cu, schedule UP_ATTN_TMA_PERSISTENT): which (sequence,
 * query head, 128-row query tile) jobs one resident CTA runs, in what order. Owns only
 * that mapping; the jobs themselves (find_job_at, prefill_job) are attn_sm90_tiles.cuh's.
 * Included by .cu files only.
 *
 * The grid is one CTA per SM (the kernel's shared memory allows no second). Work items
 * are numbered as the one-CTA-per-tile grid launches them: query heads fastest, then
 * the virtual tiles of attn_sm90_tiles.cuh in reverse (a sequence's latest rows, the
 * longest under the causal mask, first). The schedule is static, so that the producer
 * warp and both consumer warpgroups of a CTA walk the same jobs without talking to each
 * other: in round r, CTA b takes item r * G + b when r is even and r * G + G - 1 - b
 * when r is odd (G CTAs). Items of one round differ little in length (a round spans
 * about G / n_heads consecutive tiles), and the snake gives the CTA that drew the
 * longest of one round the shortest of the next, so every CTA's sum stays within about
 * one round's spread of the others'. Items past a sequence's last tile or of a decode
 * sequence (the decode path's) are skipped, as the one-tile grid's CTAs exit on them. */
#ifndef UP_ATTN_SM90_SCHEDULE_CUH
#define UP_ATTN_SM90_SCHEDULE_CUH

#include "kernels/cuda/attention/attn_sm90_tiles.cuh"

namespace {

#if UP_ATTN_HAVE_WGMMA
/* The next job of this CTA from round `round` on, advancing `round` past it; false when
 * the CTA has none left. n_vtiles: the virtual tiles of the batch (n_tokens / BM +
 * n_seqs, as the one-tile grid's y extent). */
template <int HD>
__device__ __forceinline__ bool next_persistent_job(const up_attn_args &p, int32_t n_vtiles, int32_t &round,
                                                    prefill_job &jb) {
  const int32_t g = (int32_t)gridDim.x, b = (int32_t)blockIdx.x, n_items = n_vtiles * p.n_heads;
  for (; round * g < n_items; ++round) {
    const int32_t item = round * g + ((round & 1) ? g - 1 - b : b);
    if (item >= n_items) continue; /* the last, partial round */
    const int32_t vtile = n_vtiles - 1 - item / p.n_heads;
    if (find_job_at<HD>(p, vtile, UP_ATTN_DECODE_MAX_ROWS, item % p.n_heads, jb)) {
      ++round;
      return true;
    }
  }
  return false;
}
#endif /* UP_ATTN_HAVE_WGMMA */

} /* namespace */

#endif
