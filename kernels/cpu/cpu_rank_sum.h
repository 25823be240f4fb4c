/* cpu_rank_sum.h — the host half of a deterministic tensor-parallel all-reduce: every
 * rank's slice, gathered side by side, summed in rank order in fp32 (bf16 rounded once,
 * to nearest even). The mpi transport sums with it, and it is the reference the CUDA
 * version (kernels/cuda/cuda_rank_sum.h) is checked against bit for bit. Plain host
 * memory; knows nothing of transports. */
#ifndef UP_CPU_RANK_SUM_H
#define UP_CPU_RANK_SUM_H

#include <stdbool.h>
#include <stddef.h>

/* out[i] = slices[0*count + i] + slices[1*count + i] + ... (ranks slices). bf16: the
 * elements are bf16 bits (else fp32). out must not overlap slices. */
void up_cpu_sum_rank_slices(const void *slices, void *out, size_t count, int ranks, bool bf16);

#endif
