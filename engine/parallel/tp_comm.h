/* tp_comm.h — the collectives a tensor-parallel group runs, as one interface with one
 * implementation per transport: "self" (a group of one: TP=1 runs the same code path),
 * "mpi" (the CPU backend's host buffers, so CI tests TP through mpirun) and "nccl"
 * (device buffers on the CUDA backend's compute stream). The engine calls only this
 * header; it never includes mpi.h or nccl.h. ../shared/PARALLEL.md 5.1 is the design.
 *
 * Every call is collective over the group: each rank makes the same calls in the same
 * order with the same counts. Buffers live where the backend the communicator was made
 * for keeps its memory. `what` names the call site ("layer 7 attention output") and is
 * printed, with rank, host and device, when a collective fails or times out. */
#ifndef UP_TP_COMM_H
#define UP_TP_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types a collective moves. BF16 sums accumulate in fp32 where the transport
 * allows (MPI: an fp32 staging buffer; NCCL: its own bf16 reduction). */
typedef enum up_comm_elem {
  UP_COMM_F32 = 0,
  UP_COMM_BF16 = 1,
  UP_COMM_I32 = 2,
  UP_COMM_U64 = 3,
} up_comm_elem;

size_t up_comm_elem_size(up_comm_elem elem);
const char *up_comm_elem_name(up_comm_elem elem);

typedef struct up_tp_comm up_tp_comm;

/* Time this rank spent in the communicator's collectives since the last reset (every
 * call of the interface: the forward's all-reduces and gathers, the step descriptor's
 * broadcasts, the agreement checks). nccl: CUDA events on the stream around each call
 * (so a call's time includes waiting for the slowest peer to join); mpi: host wall time
 * around each call; self: no time (the group of one moves nothing). */
typedef struct up_tp_comm_time {
  double ms;
  int64_t calls;
} up_tp_comm_time;

typedef struct up_tp_comm_ops {
  const char *name; /* "self", "mpi", "nccl" */
  /* dst[i] = sum over ranks of src[i], i < count; dst may equal src. With
   * deterministic set at creation, the sum runs in rank order on every rank, so the
   * result does not depend on the transport's algorithm or the message size. */
  void (*all_reduce_sum)(up_tp_comm *comm, const void *src, void *dst, size_t count, up_comm_elem elem,
                         const char *what);
  /* dst[r * count_per_rank + i] = rank r's src[i]: rank order, so a layout by local
   * head becomes the layout by global head. dst must not overlap src. */
  void (*all_gather)(up_tp_comm *comm, const void *src, void *dst, size_t count_per_rank, up_comm_elem elem,
                     const char *what);
  /* buf on every rank = buf on group rank `root`. */
  void (*broadcast)(up_tp_comm *comm, void *buf, size_t count, up_comm_elem elem, int root, const char *what);
  /* Host-side agreement check (the UniPrefill mask hash, PARALLEL.md 3.5 step 6): true
   * when every rank of the group passed the same value. Synchronises the group. */
  bool (*all_equal_u64)(up_tp_comm *comm, uint64_t value, const char *what);
  /* Waits for the queued collectives (a no-op where they are synchronous), polling for
   * asynchronous errors; a failure is fatal and names the rank and `what`. */
  void (*synchronize)(up_tp_comm *comm, const char *what);
  /* Zero the collective time. Not collective; call it where no collective is queued. */
  void (*time_reset)(up_tp_comm *comm);
  /* The collective time since the last reset. Reading waits for the queued collectives
   * (nccl: their events must have completed), so call it where the stream is already
   * synchronised, e.g. after a step, and the hot path gains no wait. Not collective. */
  up_tp_comm_time (*time_read)(up_tp_comm *comm);
  void (*destroy)(up_tp_comm *comm);
} up_tp_comm_ops;

struct up_tp_comm {
  const up_tp_comm_ops *ops;
  int rank; /* this rank's index in the group: its shard of every split weight */
  int size; /* the group's size: the TP degree */
  bool deterministic;
  void *impl;
};

/* Copies bytes between two buffers of the memory the communicator serves (device
 * memory: on the backend's stream, ordered with its kernels). */
typedef void (*up_tp_copy_fn)(void *ctx, void *dst, const void *src, size_t bytes);

/* The group of one. Every call copies (with `copy`, or memmove for host memory when
 * copy is NULL) or does nothing; all_equal_u64 is true. Its collective time is 0 ms
 * over the calls made. */
up_tp_comm *up_tp_comm_create_self(up_tp_copy_fn copy, void *copy_ctx);

#ifdef __cplusplus
}
#endif

#endif
