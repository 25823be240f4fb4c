/* tp_comm_mpi.c — the "mpi" tensor-parallel transport (see tp_comm_mpi.h). Every
 * collective is a non-blocking MPI call waited on by one function, so the optional
 * timeout and the error report (group rank, world rank, host, `what`) live in one
 * place. MPI has no bf16 type: bf16 sums are staged in fp32 (as NCCL accumulates), and
 * messages larger than MPI's int counts or the staging buffers go in chunks, which
 * every rank cuts the same way since every rank passes the same count. */
#include "launcher/parallel/tp_comm_mpi.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/fatal.h"
#include "core/float16.h"
#include "kernels/cpu/cpu_rank_sum.h"

/* Staging caps: the fp32 copy of a bf16 message, and the gathered slices of the
 * deterministic sum; larger messages go in chunks. */
enum { UP_TP_MPI_STAGING_BYTES = 16 << 20, UP_TP_MPI_GATHER_BYTES = 32 << 20 };

typedef struct mpi_impl {
  MPI_Comm comm; /* our duplicate of the group's communicator */
  int world_rank;
  char host[256];
  double timeout_s;
  float *staging;
  size_t staging_elems;
  unsigned char *gathered;
  size_t gathered_bytes;
  double collective_s; /* host wall time inside the interface's calls since time_reset */
  int64_t collective_calls;
} mpi_impl;

static mpi_impl *impl_of(up_tp_comm *comm) { return (mpi_impl *)comm->impl; }

/* Every interface call is synchronous here, so its wall time is its collective time
 * (its staging and the rank-order sum included: they are part of what a caller waits). */
static void add_call_time(up_tp_comm *comm, double started_s) {
  mpi_impl *impl = impl_of(comm);
  impl->collective_s += up_clock_monotonic_s() - started_s;
  impl->collective_calls += 1;
}

static void report_mpi_failure(up_tp_comm *comm, const char *call, int rc, const char *what) __attribute__((noreturn));

static void report_mpi_failure(up_tp_comm *comm, const char *call, int rc, const char *what) {
  const mpi_impl *impl = impl_of(comm);
  char msg[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "MPI error code %d", rc);
  UP_FATAL("tensor-parallel mpi: %s failed on group rank %d of %d (world rank %d, host %s) during %s: %s", call,
           comm->rank, comm->size, impl->world_rank, impl->host, what, msg);
}

#define TP_MPI_CHECK(comm, what, call)                                \
  do {                                                                \
    const int tp_mpi_rc_ = (call);                                    \
    if (tp_mpi_rc_ != MPI_SUCCESS) report_mpi_failure((comm), #call, tp_mpi_rc_, (what)); \
  } while (0)

/* Wait for one collective, polling when a timeout is set: past it the job ends with
 * this rank named, since a peer that stopped or died would otherwise hold it forever. */
static void wait_collective(up_tp_comm *comm, MPI_Request *request, const char *op, const char *what) {
  mpi_impl *impl = impl_of(comm);
  if (impl->timeout_s <= 0) {
    TP_MPI_CHECK(comm, what, MPI_Wait(request, MPI_STATUS_IGNORE));
    return;
  }
  const double deadline = up_clock_monotonic_s() + impl->timeout_s;
  for (long polls = 0;; ++polls) {
    int done = 0;
    TP_MPI_CHECK(comm, what, MPI_Test(request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    if (up_clock_monotonic_s() > deadline)
      UP_FATAL("tensor-parallel mpi: %s of %s did not complete within --collective-timeout %g s on group rank %d "
               "of %d (world rank %d, host %s): another rank of the group is stopped, hung or gone",
               op, what, impl->timeout_s, comm->rank, comm->size, impl->world_rank, impl->host);
    /* Spin briefly (a collective usually completes in microseconds), then yield the
     * core: ranks often share cores with each other. */
    if (polls > 256) {
      const struct timespec pause = {0, 20000};
      nanosleep(&pause, NULL);
    }
  }
}

static MPI_Datatype mpi_type_of(up_comm_elem elem) {
  switch (elem) {
    case UP_COMM_F32: return MPI_FLOAT;
    case UP_COMM_BF16: return MPI_UINT16_T; /* moved as bits; never summed by MPI */
    case UP_COMM_I32: return MPI_INT32_T;
    case UP_COMM_U64: return MPI_UINT64_T;
  }
  UP_FATAL("tensor-parallel mpi: unknown element type %d", (int)elem);
}

static float *staging_for(mpi_impl *impl, size_t elems) {
  if (elems > impl->staging_elems) {
    free(impl->staging);
    impl->staging = up_malloc_or_die(elems * sizeof(float), "the tensor-parallel bf16 staging buffer");
    impl->staging_elems = elems;
  }
  return impl->staging;
}

static unsigned char *gathered_for(mpi_impl *impl, size_t bytes) {
  if (bytes > impl->gathered_bytes) {
    free(impl->gathered);
    impl->gathered = up_malloc_or_die(bytes, "the tensor-parallel gathered partial sums");
    impl->gathered_bytes = bytes;
  }
  return impl->gathered;
}

/* MPI counts are ints: the most elements one call moves. */
static size_t int_count_cap(void) { return (size_t)INT_MAX; }

static void allreduce_in_place(up_tp_comm *comm, void *buf, size_t count, MPI_Datatype type, const char *what) {
  MPI_Request request;
  TP_MPI_CHECK(comm, what, MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, type, MPI_SUM, impl_of(comm)->comm,
                                          &request));
  wait_collective(comm, &request, "all_reduce_sum", what);
}

/* op: the interface call this gather serves (a deterministic all-reduce gathers too). */
static void allgather_elems(up_tp_comm *comm, const void *src, void *dst, size_t count, MPI_Datatype type,
                            const char *op, const char *what) {
  MPI_Request request;
  TP_MPI_CHECK(comm, what, MPI_Iallgather(src, (int)count, type, dst, (int)count, type, impl_of(comm)->comm,
                                          &request));
  wait_collective(comm, &request, op, what);
}

/* Non-deterministic sums: MPI's own reduction (order up to the library). */
static void reduce_by_mpi(up_tp_comm *comm, const void *src, void *dst, size_t count, up_comm_elem elem,
                          const char *what) {
  mpi_impl *impl = impl_of(comm);
  const size_t esize = up_comm_elem_size(elem);
  if (elem != UP_COMM_BF16) {
    if (dst != src) memmove(dst, src, count * esize);
    for (size_t done = 0; done < count;) {
      const size_t n = count - done < int_count_cap() ? count - done : int_count_cap();
      allreduce_in_place(comm, (unsigned char *)dst + done * esize, n, mpi_type_of(elem), what);
      done += n;
    }
    return;
  }
  const size_t chunk = UP_TP_MPI_STAGING_BYTES / sizeof(float);
  float *staging = staging_for(impl, count < chunk ? count : chunk);
  const uint16_t *in = src;
  uint16_t *out = dst;
  for (size_t done = 0; done < count;) {
    const size_t n = count - done < chunk ? count - done : chunk;
    for (size_t i = 0; i < n; ++i) staging[i] = up_bf16_to_f32(in[done + i]);
    allreduce_in_place(comm, staging, n, MPI_FLOAT, what);
    for (size_t i = 0; i < n; ++i) out[done + i] = up_f32_to_bf16(staging[i]);
    done += n;
  }
}

/* Deterministic floating-point sums: every rank gathers every rank's slice and adds
 * them in rank order, so all ranks compute the same bits whatever MPI would have done. */
static void reduce_in_rank_order(up_tp_comm *comm, const void *src, void *dst, size_t count, up_comm_elem elem,
                                 const char *what) {
  mpi_impl *impl = impl_of(comm);
  const size_t esize = up_comm_elem_size(elem);
  size_t chunk = UP_TP_MPI_GATHER_BYTES / (esize * (size_t)comm->size);
  if (chunk == 0) chunk = 1;
  if (chunk > int_count_cap()) chunk = int_count_cap();
  const size_t first = count < chunk ? count : chunk;
  unsigned char *gathered = gathered_for(impl, first * esize * (size_t)comm->size);
  for (size_t done = 0; done < count;) {
    const size_t n = count - done < chunk ? count - done : chunk;
    allgather_elems(comm, (const unsigned char *)src + done * esize, gathered, n, mpi_type_of(elem), "all_reduce_sum",
                    what);
    up_cpu_sum_rank_slices(gathered, (unsigned char *)dst + done * esize, n, comm->size, elem == UP_COMM_BF16);
    done += n;
  }
}

static void mpi_all_reduce_sum(up_tp_comm *comm, const void *src, void *dst, size_t count, up_comm_elem elem,
                               const char *what) {
  if (count == 0) return;
  const double started_s = up_clock_monotonic_s();
  /* Integer sums are exact in any order, so they never need the gather. */
  const bool floating = elem == UP_COMM_F32 || elem == UP_COMM_BF16;
  if (comm->deterministic && floating)
    reduce_in_rank_order(comm, src, dst, count, elem, what);
  else
    reduce_by_mpi(comm, src, dst, count, elem, what);
  add_call_time(comm, started_s);
}

static void mpi_all_gather(up_tp_comm *comm, const void *src, void *dst, size_t count_per_rank, up_comm_elem elem,
                           const char *what) {
  if (count_per_rank == 0) return;
  const size_t esize = up_comm_elem_size(elem);
  const unsigned char *s = src, *d = dst;
  UP_ASSERT(s + count_per_rank * esize <= d || d + count_per_rank * esize * (size_t)comm->size <= s,
            "%s: all_gather's destination overlaps its source", what);
  if (count_per_rank > int_count_cap())
    UP_FATAL("tensor-parallel mpi: all_gather of %s moves %zu elements per rank, more than one MPI call takes (%d)",
             what, count_per_rank, INT_MAX);
  const double started_s = up_clock_monotonic_s();
  allgather_elems(comm, src, dst, count_per_rank, mpi_type_of(elem), "all_gather", what);
  add_call_time(comm, started_s);
}

static void mpi_broadcast(up_tp_comm *comm, void *buf, size_t count, up_comm_elem elem, int root, const char *what) {
  UP_ASSERT(root >= 0 && root < comm->size, "%s: broadcast from rank %d of a group of %d", what, root, comm->size);
  const size_t esize = up_comm_elem_size(elem);
  const double started_s = up_clock_monotonic_s();
  for (size_t done = 0; done < count;) {
    const size_t n = count - done < int_count_cap() ? count - done : int_count_cap();
    MPI_Request request;
    TP_MPI_CHECK(comm, what, MPI_Ibcast((unsigned char *)buf + done * esize, (int)n, mpi_type_of(elem), root,
                                        impl_of(comm)->comm, &request));
    wait_collective(comm, &request, "broadcast", what);
    done += n;
  }
  add_call_time(comm, started_s);
}

static bool mpi_all_equal_u64(up_tp_comm *comm, uint64_t value, const char *what) {
  /* One reduction answers it: the maximum of v and of ~v (= ~ the minimum of v). */
  uint64_t both[2] = {value, ~value};
  const double started_s = up_clock_monotonic_s();
  MPI_Request request;
  TP_MPI_CHECK(comm, what, MPI_Iallreduce(MPI_IN_PLACE, both, 2, MPI_UINT64_T, MPI_MAX, impl_of(comm)->comm,
                                          &request));
  wait_collective(comm, &request, "all_equal_u64", what);
  add_call_time(comm, started_s);
  return both[0] == ~both[1];
}

static void mpi_synchronize(up_tp_comm *comm, const char *what) {
  (void)comm;
  (void)what; /* every collective above has completed when it returns */
}

static void mpi_time_reset(up_tp_comm *comm) {
  impl_of(comm)->collective_s = 0.0;
  impl_of(comm)->collective_calls = 0;
}

static up_tp_comm_time mpi_time_read(up_tp_comm *comm) {
  const mpi_impl *impl = impl_of(comm);
  return (up_tp_comm_time){.ms = impl->collective_s * 1e3, .calls = impl->collective_calls};
}

static void mpi_destroy(up_tp_comm *comm) {
  if (!comm) return;
  mpi_impl *impl = impl_of(comm);
  TP_MPI_CHECK(comm, "destroying the communicator", MPI_Comm_free(&impl->comm));
  free(impl->staging);
  free(impl->gathered);
  free(impl);
  free(comm);
}

static const up_tp_comm_ops mpi_ops = {
    .name = "mpi",
    .all_reduce_sum = mpi_all_reduce_sum,
    .all_gather = mpi_all_gather,
    .broadcast = mpi_broadcast,
    .all_equal_u64 = mpi_all_equal_u64,
    .synchronize = mpi_synchronize,
    .time_reset = mpi_time_reset,
    .time_read = mpi_time_read,
    .destroy = mpi_destroy,
};

up_tp_comm *up_tp_comm_create_mpi(MPI_Comm group, bool deterministic, double timeout_s) {
  up_tp_comm *comm = up_calloc_or_die(1, sizeof *comm, "the tensor-parallel communicator");
  mpi_impl *impl = up_calloc_or_die(1, sizeof *impl, "the tensor-parallel communicator");
  comm->ops = &mpi_ops;
  comm->impl = impl;
  comm->deterministic = deterministic;
  impl->timeout_s = timeout_s;
  if (gethostname(impl->host, sizeof impl->host - 1) != 0) snprintf(impl->host, sizeof impl->host, "unknown");
  const char *what = "creating the communicator";
  TP_MPI_CHECK(comm, what, MPI_Comm_rank(MPI_COMM_WORLD, &impl->world_rank));
  TP_MPI_CHECK(comm, what, MPI_Comm_rank(group, &comm->rank));
  TP_MPI_CHECK(comm, what, MPI_Comm_size(group, &comm->size));
  TP_MPI_CHECK(comm, what, MPI_Comm_dup(group, &impl->comm));
  TP_MPI_CHECK(comm, what, MPI_Comm_set_errhandler(impl->comm, MPI_ERRORS_RETURN));
  return comm;
}
