/* tp_comm_nccl.c — the "nccl" tensor-parallel transport (see tp_comm_nccl.h). Every
 * NCCL and CUDA call is checked; a failure aborts the communicator (so no peer waits in
 * a collective that will never complete) and ends the job through fatal.h naming the
 * group rank, world rank, host, device and the call site's `what`. Waiting is a
 * cudaStreamQuery loop that polls ncclCommGetAsyncError, as nccl-tests waits
 * (../shared/PARALLEL.md 1.3). */
#include "launcher/parallel/nccl/tp_comm_nccl.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/fatal.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_rank_sum.h"

/* Device scratch for the deterministic sum's gathered slices; larger messages go in
 * chunks (the mpi transport's cap, so the GPU test crosses a chunk at 2 ranks too). */
enum { UP_TP_NCCL_GATHER_BYTES = 32 << 20 };

/* Event pairs timing the collectives, reused round robin. A pair's time is added when it
 * is reused or the time is read; by then the step that queued it has been waited on, so
 * timing adds no wait. Only a step queuing more collectives than this (a model of over
 * 250 layers) would wait for the stream once, to reuse a pair still in flight. */
enum { UP_TP_NCCL_TIMED_CALLS = 512 };

typedef struct timed_call {
  cudaEvent_t start, stop;
  bool pending; /* recorded, its time not yet added */
} timed_call;

typedef struct nccl_impl {
  ncclComm_t comm;
  cudaStream_t stream;
  int device;
  int world_rank;
  char host[256];
  double timeout_s;
  void *gathered; /* device */
  size_t gathered_bytes;
  uint64_t *agree; /* device: all_equal_u64's two values */
  /* The last collective queued: a hang is only seen when the stream is waited on, so
   * the report names what was queued as well as where the wait happened. */
  const char *queued_op;
  char queued_what[160];
  size_t queued_bytes;
  timed_call *timed; /* UP_TP_NCCL_TIMED_CALLS pairs */
  int64_t next_timed;
  double collective_ms; /* the added pairs' time since time_reset */
  int64_t collective_calls;
} nccl_impl;

static nccl_impl *impl_of(up_tp_comm *comm) { return (nccl_impl *)comm->impl; }

static void note_queued(up_tp_comm *comm, const char *op, const char *what, size_t bytes) {
  nccl_impl *impl = impl_of(comm);
  impl->queued_op = op;
  snprintf(impl->queued_what, sizeof impl->queued_what, "%s", what);
  impl->queued_bytes = bytes;
}

static void fail(up_tp_comm *comm, const char *what, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));

/* Abort the communicator (unblocking this rank's kernels and, through NCCL, its peers'),
 * then end the job with the place named. */
static void fail(up_tp_comm *comm, const char *what, const char *fmt, ...) {
  nccl_impl *impl = impl_of(comm);
  char cause[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cause, sizeof cause, fmt, ap);
  va_end(ap);
  if (impl->comm) {
    ncclCommAbort(impl->comm); /* its own result cannot improve the report */
    impl->comm = NULL;
  }
  UP_FATAL("tensor-parallel nccl: %s on group rank %d of %d (world rank %d, host %s, GPU %d) during %s", cause,
           comm->rank, comm->size, impl->world_rank, impl->host, impl->device, what);
}

#define TP_NCCL_CHECK(comm, what, call)                                                              \
  do {                                                                                               \
    const ncclResult_t tp_nccl_rc_ = (call);                                                         \
    if (tp_nccl_rc_ != ncclSuccess)                                                                  \
      fail((comm), (what), "%s failed: %s (%s)", #call, ncclGetErrorString(tp_nccl_rc_),             \
           impl_of(comm)->comm ? ncclGetLastError(impl_of(comm)->comm) : "no communicator yet");   \
  } while (0)

#define TP_CUDA_CHECK(comm, what, call)                                                              \
  do {                                                                                               \
    const cudaError_t tp_cuda_rc_ = (call);                                                          \
    if (tp_cuda_rc_ != cudaSuccess)                                                                  \
      fail((comm), (what), "%s failed: %s (%s)", #call, cudaGetErrorString(tp_cuda_rc_),             \
           cudaGetErrorName(tp_cuda_rc_));                                                           \
  } while (0)

#define TP_MPI_CHECK(comm, what, call)                                                               \
  do {                                                                                               \
    const int tp_mpi_rc_ = (call);                                                                   \
    if (tp_mpi_rc_ != MPI_SUCCESS) {                                                                 \
      char tp_mpi_msg_[MPI_MAX_ERROR_STRING] = "";                                                   \
      int tp_mpi_len_ = 0;                                                                           \
      MPI_Error_string(tp_mpi_rc_, tp_mpi_msg_, &tp_mpi_len_);                                       \
      fail((comm), (what), "%s failed: %s", #call, tp_mpi_msg_);                                     \
    }                                                                                                \
  } while (0)

static ncclDataType_t nccl_type_of(up_comm_elem elem) {
  switch (elem) {
    case UP_COMM_F32: return ncclFloat32;
    case UP_COMM_BF16: return ncclBfloat16;
    case UP_COMM_I32: return ncclInt32;
    case UP_COMM_U64: return ncclUint64;
  }
  UP_FATAL("tensor-parallel nccl: unknown element type %d", (int)elem);
}

/* Wait for the stream (and so every collective queued on it), watching NCCL's
 * asynchronous error state and the timeout: a peer that died or hangs shows up here. */
static void nccl_synchronize(up_tp_comm *comm, const char *what) {
  nccl_impl *impl = impl_of(comm);
  const double start = up_clock_monotonic_s();
  for (;;) {
    const cudaError_t q = cudaStreamQuery(impl->stream);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady)
      fail(comm, what, "the stream failed: %s (%s)", cudaGetErrorString(q), cudaGetErrorName(q));
    ncclResult_t async = ncclSuccess;
    TP_NCCL_CHECK(comm, what, ncclCommGetAsyncError(impl->comm, &async));
    if (async != ncclSuccess && async != ncclInProgress)
      fail(comm, what, "asynchronous NCCL error: %s (%s)", ncclGetErrorString(async), ncclGetLastError(impl->comm));
    if (impl->timeout_s > 0 && up_clock_monotonic_s() - start > impl->timeout_s)
      fail(comm, what, "%s of %s (%zu B, the last collective queued) did not complete within --collective-timeout "
           "%g s: another rank of the group is stopped, hung or gone", impl->queued_op ? impl->queued_op : "work",
           impl->queued_what, impl->queued_bytes, impl->timeout_s);
    sched_yield();
  }
}

static void *gathered_for(up_tp_comm *comm, size_t bytes, const char *what) {
  nccl_impl *impl = impl_of(comm);
  if (bytes > impl->gathered_bytes) {
    /* The old scratch may still be read by queued work: wait before freeing it. */
    if (impl->gathered) {
      nccl_synchronize(comm, what);
      TP_CUDA_CHECK(comm, what, cudaFree(impl->gathered));
    }
    impl->gathered = NULL;
    TP_CUDA_CHECK(comm, what, cudaMalloc(&impl->gathered, bytes));
    impl->gathered_bytes = bytes;
  }
  return impl->gathered;
}

/* Add a recorded pair's time; waits for the stream only when the pair is still queued. */
static void add_call_time(up_tp_comm *comm, timed_call *call, const char *what) {
  if (!call->pending) return;
  nccl_impl *impl = impl_of(comm);
  const cudaError_t done = cudaEventQuery(call->stop);
  if (done == cudaErrorNotReady)
    nccl_synchronize(comm, what);
  else if (done != cudaSuccess)
    fail(comm, what, "cudaEventQuery of a collective's end event failed: %s (%s)", cudaGetErrorString(done),
         cudaGetErrorName(done));
  float ms = 0.0f;
  TP_CUDA_CHECK(comm, what, cudaEventElapsedTime(&ms, call->start, call->stop));
  impl->collective_ms += ms;
  call->pending = false;
}

/* Record the start of one interface call on the stream; time_end records its end. */
static timed_call *time_begin(up_tp_comm *comm, const char *what) {
  nccl_impl *impl = impl_of(comm);
  timed_call *call = &impl->timed[impl->next_timed % UP_TP_NCCL_TIMED_CALLS];
  add_call_time(comm, call, what);
  TP_CUDA_CHECK(comm, what, cudaEventRecord(call->start, impl->stream));
  return call;
}

static void time_end(up_tp_comm *comm, timed_call *call, const char *what) {
  nccl_impl *impl = impl_of(comm);
  TP_CUDA_CHECK(comm, what, cudaEventRecord(call->stop, impl->stream));
  call->pending = true;
  impl->next_timed += 1;
  impl->collective_calls += 1;
}

static void nccl_time_reset(up_tp_comm *comm) {
  nccl_impl *impl = impl_of(comm);
  for (int i = 0; i < UP_TP_NCCL_TIMED_CALLS; ++i) impl->timed[i].pending = false;
  impl->collective_ms = 0.0;
  impl->collective_calls = 0;
}

static up_tp_comm_time nccl_time_read(up_tp_comm *comm) {
  nccl_impl *impl = impl_of(comm);
  const char *what = "reading the collective time";
  nccl_synchronize(comm, what); /* one stream query where the caller has already waited */
  for (int i = 0; i < UP_TP_NCCL_TIMED_CALLS; ++i) add_call_time(comm, &impl->timed[i], what);
  return (up_tp_comm_time){.ms = impl->collective_ms, .calls = impl->collective_calls};
}

static void nccl_all_reduce_sum(up_tp_comm *comm, const void *src, void *dst, size_t count, up_comm_elem elem,
                                const char *what) {
  if (count == 0) return;
  nccl_impl *impl = impl_of(comm);
  const bool floating = elem == UP_COMM_F32 || elem == UP_COMM_BF16;
  note_queued(comm, "all_reduce_sum", what, count * up_comm_elem_size(elem));
  if (!comm->deterministic || !floating) {
    timed_call *call = time_begin(comm, what);
    TP_NCCL_CHECK(comm, what, ncclAllReduce(src, dst, count, nccl_type_of(elem), ncclSum, impl->comm, impl->stream));
    time_end(comm, call, what);
    return;
  }
  /* Deterministic: gather the slices, add them in rank order on the GPU. The gathered
   * chunk is separate from dst, so dst == src is fine. */
  const size_t esize = up_comm_elem_size(elem);
  size_t chunk = UP_TP_NCCL_GATHER_BYTES / (esize * (size_t)comm->size);
  if (chunk == 0) chunk = 1;
  const size_t first = count < chunk ? count : chunk;
  unsigned char *gathered = gathered_for(comm, first * esize * (size_t)comm->size, what);
  timed_call *call = time_begin(comm, what); /* the rank-order sum is part of the call */
  for (size_t done = 0; done < count;) {
    const size_t n = count - done < chunk ? count - done : chunk;
    TP_NCCL_CHECK(comm, what, ncclAllGather((const unsigned char *)src + done * esize, gathered, n,
                                            nccl_type_of(elem), impl->comm, impl->stream));
    TP_CUDA_CHECK(comm, what, up_cuda_sum_rank_slices(impl->stream, gathered, (unsigned char *)dst + done * esize, n,
                                                      comm->size, elem == UP_COMM_BF16));
    done += n;
  }
  time_end(comm, call, what);
}

static void nccl_all_gather(up_tp_comm *comm, const void *src, void *dst, size_t count_per_rank, up_comm_elem elem,
                            const char *what) {
  if (count_per_rank == 0) return;
  nccl_impl *impl = impl_of(comm);
  const size_t bytes = count_per_rank * up_comm_elem_size(elem);
  const unsigned char *s = src, *d = dst;
  UP_ASSERT(s + bytes <= d || d + bytes * (size_t)comm->size <= s, "%s: all_gather's destination overlaps its source",
            what);
  note_queued(comm, "all_gather", what, bytes * (size_t)comm->size);
  timed_call *call = time_begin(comm, what);
  TP_NCCL_CHECK(comm, what, ncclAllGather(src, dst, count_per_rank, nccl_type_of(elem), impl->comm, impl->stream));
  time_end(comm, call, what);
}

static void nccl_broadcast(up_tp_comm *comm, void *buf, size_t count, up_comm_elem elem, int root, const char *what) {
  UP_ASSERT(root >= 0 && root < comm->size, "%s: broadcast from rank %d of a group of %d", what, root, comm->size);
  if (count == 0) return;
  nccl_impl *impl = impl_of(comm);
  note_queued(comm, "broadcast", what, count * up_comm_elem_size(elem));
  timed_call *call = time_begin(comm, what);
  TP_NCCL_CHECK(comm, what, ncclBroadcast(buf, buf, count, nccl_type_of(elem), root, impl->comm, impl->stream));
  time_end(comm, call, what);
}

static bool nccl_all_equal_u64(up_tp_comm *comm, uint64_t value, const char *what) {
  /* The maximum of v and of ~v (= ~ the minimum of v): equal everywhere when they meet. */
  nccl_impl *impl = impl_of(comm);
  uint64_t both[2] = {value, ~value};
  timed_call *call = time_begin(comm, what);
  TP_CUDA_CHECK(comm, what, cudaMemcpyAsync(impl->agree, both, sizeof both, cudaMemcpyHostToDevice, impl->stream));
  note_queued(comm, "all_equal_u64", what, sizeof both);
  TP_NCCL_CHECK(comm, what, ncclAllReduce(impl->agree, impl->agree, 2, ncclUint64, ncclMax, impl->comm, impl->stream));
  time_end(comm, call, what);
  /* Wait polling first: a copy to pageable memory would block, blind to a hung peer. */
  nccl_synchronize(comm, what);
  TP_CUDA_CHECK(comm, what, cudaMemcpyAsync(both, impl->agree, sizeof both, cudaMemcpyDeviceToHost, impl->stream));
  TP_CUDA_CHECK(comm, what, cudaStreamSynchronize(impl->stream));
  return both[0] == ~both[1];
}

static void nccl_destroy(up_tp_comm *comm) {
  if (!comm) return;
  nccl_impl *impl = impl_of(comm);
  const char *what = "destroying the communicator";
  nccl_synchronize(comm, what);
  TP_NCCL_CHECK(comm, what, ncclCommDestroy(impl->comm));
  impl->comm = NULL;
  if (impl->gathered) TP_CUDA_CHECK(comm, what, cudaFree(impl->gathered));
  TP_CUDA_CHECK(comm, what, cudaFree(impl->agree));
  for (int i = 0; i < UP_TP_NCCL_TIMED_CALLS; ++i) {
    TP_CUDA_CHECK(comm, what, cudaEventDestroy(impl->timed[i].start));
    TP_CUDA_CHECK(comm, what, cudaEventDestroy(impl->timed[i].stop));
  }
  free(impl->timed);
  free(impl);
  free(comm);
}

static const up_tp_comm_ops nccl_ops = {
    .name = "nccl",
    .all_reduce_sum = nccl_all_reduce_sum,
    .all_gather = nccl_all_gather,
    .broadcast = nccl_broadcast,
    .all_equal_u64 = nccl_all_equal_u64,
    .synchronize = nccl_synchronize,
    .time_reset = nccl_time_reset,
    .time_read = nccl_time_read,
    .destroy = nccl_destroy,
};

void up_tp_nccl_version(char *buf, size_t size) {
  int version = 0;
  if (ncclGetVersion(&version) != ncclSuccess) {
    snprintf(buf, size, "NCCL (version unknown)");
    return;
  }
  /* Since 2.9 the code is major * 10000 + minor * 100 + patch. */
  snprintf(buf, size, "NCCL %d.%d.%d", version / 10000, version / 100 % 100, version % 100);
}

up_tp_comm *up_tp_comm_create_nccl(MPI_Comm group, up_backend *be, bool deterministic, double timeout_s) {
  up_tp_comm *comm = up_calloc_or_die(1, sizeof *comm, "the tensor-parallel communicator");
  nccl_impl *impl = up_calloc_or_die(1, sizeof *impl, "the tensor-parallel communicator");
  comm->ops = &nccl_ops;
  comm->impl = impl;
  comm->deterministic = deterministic;
  impl->timeout_s = timeout_s;
  impl->stream = up_cuda_backend_stream(be);
  impl->device = up_cuda_backend_device(be);
  if (gethostname(impl->host, sizeof impl->host - 1) != 0) snprintf(impl->host, sizeof impl->host, "unknown");
  const char *what = "creating the communicator";
  TP_MPI_CHECK(comm, what, MPI_Comm_rank(MPI_COMM_WORLD, &impl->world_rank));
  TP_MPI_CHECK(comm, what, MPI_Comm_rank(group, &comm->rank));
  TP_MPI_CHECK(comm, what, MPI_Comm_size(group, &comm->size));
  /* Multicast (NVLink SHARP) stays off unless the user turned it on knowingly. */
  if (setenv("NCCL_NVLS_ENABLE", "0", 0) != 0) fail(comm, what, "setenv NCCL_NVLS_ENABLE failed");
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  if (comm->rank == 0) TP_NCCL_CHECK(comm, what, ncclGetUniqueId(&id));
  TP_MPI_CHECK(comm, what, MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, group));
  TP_MPI_CHECK(comm, what, MPI_Barrier(group));
  TP_CUDA_CHECK(comm, what, cudaSetDevice(impl->device));
  TP_NCCL_CHECK(comm, what, ncclCommInitRank(&impl->comm, comm->size, id, comm->rank));
  TP_CUDA_CHECK(comm, what, cudaMalloc((void **)&impl->agree, 2 * sizeof(uint64_t)));
  /* Created once here, not per call: event creation is too slow for the hot path. */
  impl->timed = up_calloc_or_die(UP_TP_NCCL_TIMED_CALLS, sizeof *impl->timed, "the collective timing events");
  for (int i = 0; i < UP_TP_NCCL_TIMED_CALLS; ++i) {
    TP_CUDA_CHECK(comm, what, cudaEventCreate(&impl->timed[i].start));
    TP_CUDA_CHECK(comm, what, cudaEventCreate(&impl->timed[i].stop));
  }
  return comm;
}
