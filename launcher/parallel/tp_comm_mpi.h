/* tp_comm_mpi.h — the "mpi" tensor-parallel transport of engine/parallel/tp_comm.h:
 * host buffers (the CPU backend's memory) moved with MPI over one group's
 * communicator, so CI can run tensor parallelism through mpirun. It lives in the
 * launcher because engine/ never includes mpi.h. Owns its duplicate of the group's
 * communicator and its staging buffers; touches nothing else. */
#ifndef UP_TP_COMM_MPI_H
#define UP_TP_COMM_MPI_H

#include <mpi.h>
#include <stdbool.h>

#include "engine/parallel/tp_comm.h"

/* Collective over `group`. The transport works on a duplicate of it, so its messages
 * match no other. deterministic: every all-reduce is an all-gather plus a sum in rank
 * order (bf16 accumulated in fp32 and rounded once), so the result is bit-identical on
 * every rank and independent of MPI's algorithm choice. timeout_s > 0: a collective not
 * complete within that many seconds is fatal, naming this rank, its host and the
 * call's `what`; 0 waits forever. Never NULL (a failed MPI call is fatal). */
up_tp_comm *up_tp_comm_create_mpi(MPI_Comm group, bool deterministic, double timeout_s);

#endif
