/* tp_comm_nccl.h — the "nccl" tensor-parallel transport of engine/parallel/tp_comm.h:
 * the CUDA backend's device buffers, every collective queued on the backend's compute
 * stream (so it is ordered with the ops around it without cross-stream races). Built
 * only where CMake found NCCL (UNIPREFILL_HAVE_NCCL); the launcher owns it because it
 * needs MPI to hand the group's unique id around. Owns its NCCL communicator and
 * device scratch. */
#ifndef UP_TP_COMM_NCCL_H
#define UP_TP_COMM_NCCL_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine/parallel/tp_comm.h"
#include "kernels/ops.h"

/* Collective over `group`: its rank 0 makes the NCCL unique id and broadcasts it with
 * MPI, then every rank joins one communicator on be's GPU. deterministic: floating-point
 * all-reduces become an all-gather plus a rank-order sum on the GPU (cuda_rank_sum.h).
 * synchronize waits polling ncclCommGetAsyncError; past timeout_s (> 0) or on an
 * asynchronous error the communicator is aborted and the job ends, naming rank, host,
 * device and `what`. Sets NCCL_NVLS_ENABLE=0 when the environment leaves it unset
 * (../shared/PARALLEL.md 6.4: multicast stays off on our machines). Failures are fatal. */
up_tp_comm *up_tp_comm_create_nccl(MPI_Comm group, up_backend *be, bool deterministic, double timeout_s);

/* "NCCL 2.28.9": the library this process loaded. */
void up_tp_nccl_version(char *buf, size_t size);

#endif
