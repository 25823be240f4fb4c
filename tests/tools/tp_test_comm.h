/* tp_test_comm.h — a tensor-parallel communicator over an MPI communicator for the TP
 * test programs (host buffers, the CPU backend): deterministic all-reduce (all-gather,
 * then the sum in rank order on every rank), all-gather, broadcast and the hash
 * agreement of tp_comm.h. Test scaffolding only; the launcher uses the transports of
 * engine/parallel/. */
#ifndef UP_TESTS_TP_TEST_COMM_H
#define UP_TESTS_TP_TEST_COMM_H

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "engine/parallel/tp_comm.h"

typedef struct tp_test_comm_impl {
  MPI_Comm comm;
  void *scratch;
  size_t scratch_bytes;
} tp_test_comm_impl;

static void tp_test_check(int rc, const char *what, const char *op) {
  if (rc != MPI_SUCCESS) UP_FATAL("%s: %s failed (MPI error %d)", what, op, rc);
}

static void *tp_test_scratch(tp_test_comm_impl *impl, size_t bytes) {
  if (bytes > impl->scratch_bytes) {
    free(impl->scratch);
    impl->scratch = up_malloc_or_die(bytes, "test communicator scratch");
    impl->scratch_bytes = bytes;
  }
  return impl->scratch;
}

static void tp_test_all_gather(up_tp_comm *comm, const void *src, void *dst, size_t count, up_comm_elem elem,
                               const char *what) {
  tp_test_comm_impl *impl = comm->impl;
  const size_t bytes = count * up_comm_elem_size(elem);
  tp_test_check(MPI_Allgather(src, (int)bytes, MPI_BYTE, dst, (int)bytes, MPI_BYTE, impl->comm), what,
                "MPI_Allgather");
}

static void tp_test_all_reduce_sum(up_tp_comm *comm, const void *src, void *dst, size_t count, up_comm_elem elem,
                                   const char *what) {
  UP_ASSERT(elem == UP_COMM_F32, "%s: the test communicator sums f32 only", what);
  tp_test_comm_impl *impl = comm->impl;
  float *all = tp_test_scratch(impl, count * sizeof(float) * (size_t)comm->size);
  tp_test_all_gather(comm, src, all, count, elem, what);
  float *out = dst;
  for (size_t i = 0; i < count; ++i) {
    float sum = all[i];
    for (int r = 1; r < comm->size; ++r) sum += all[(size_t)r * count + i];
    out[i] = sum;
  }
}

static void tp_test_broadcast(up_tp_comm *comm, void *buf, size_t count, up_comm_elem elem, int root,
                              const char *what) {
  tp_test_comm_impl *impl = comm->impl;
  tp_test_check(MPI_Bcast(buf, (int)(count * up_comm_elem_size(elem)), MPI_BYTE, root, impl->comm), what,
                "MPI_Bcast");
}

static bool tp_test_all_equal_u64(up_tp_comm *comm, uint64_t value, const char *what) {
  tp_test_comm_impl *impl = comm->impl;
  unsigned long long pair[2] = {value, ~value}, least[2];
  tp_test_check(MPI_Allreduce(pair, least, 2, MPI_UNSIGNED_LONG_LONG, MPI_MIN, impl->comm), what, "MPI_Allreduce");
  return least[0] == ~least[1];
}

static void tp_test_synchronize(up_tp_comm *comm, const char *what) {
  (void)comm;
  (void)what;
}

static void tp_test_destroy(up_tp_comm *comm) {
  tp_test_comm_impl *impl = comm->impl;
  free(impl->scratch);
  free(impl);
  free(comm);
}

static const up_tp_comm_ops tp_test_comm_ops = {
    .name = "mpi-test",
    .all_reduce_sum = tp_test_all_reduce_sum,
    .all_gather = tp_test_all_gather,
    .broadcast = tp_test_broadcast,
    .all_equal_u64 = tp_test_all_equal_u64,
    .synchronize = tp_test_synchronize,
    .destroy = tp_test_destroy,
};

static inline up_tp_comm *tp_test_comm_create(MPI_Comm mpi) {
  up_tp_comm *comm = up_calloc_or_die(1, sizeof *comm, "test communicator");
  tp_test_comm_impl *impl = up_calloc_or_die(1, sizeof *impl, "test communicator");
  impl->comm = mpi;
  MPI_Comm_rank(mpi, &comm->rank);
  MPI_Comm_size(mpi, &comm->size);
  comm->ops = &tp_test_comm_ops;
  comm->deterministic = true;
  comm->impl = impl;
  return comm;
}

#endif
