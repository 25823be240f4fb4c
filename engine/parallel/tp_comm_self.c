/* tp_comm_self.c — the tensor-parallel group of one rank: the collectives of
 * tp_comm.h reduce to copies, so TP=1 runs the same code path as TP=N with no
 * transport underneath. Buffers may be host memory (memmove) or device memory (the
 * copy function the backend gives at creation). */
#include "engine/parallel/tp_comm.h"

#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"

size_t up_comm_elem_size(up_comm_elem elem) {
  switch (elem) {
    case UP_COMM_F32: return 4;
    case UP_COMM_BF16: return 2;
    case UP_COMM_I32: return 4;
    case UP_COMM_U64: return 8;
  }
  UP_FATAL("unknown communicator element type %d", (int)elem);
}

const char *up_comm_elem_name(up_comm_elem elem) {
  switch (elem) {
    case UP_COMM_F32: return "f32";
    case UP_COMM_BF16: return "bf16";
    case UP_COMM_I32: return "i32";
    case UP_COMM_U64: return "u64";
  }
  return "unknown";
}

typedef struct self_impl {
  up_tp_copy_fn copy;
  void *copy_ctx;
  int64_t calls; /* since the last time_reset; a group of one spends no time in them */
} self_impl;

static void count_call(up_tp_comm *comm) { ((self_impl *)comm->impl)->calls += 1; }

static void self_copy(up_tp_comm *comm, const void *src, void *dst, size_t count, up_comm_elem elem) {
  if (dst == src || count == 0) return;
  const self_impl *impl = comm->impl;
  const size_t bytes = count * up_comm_elem_size(elem);
  if (impl->copy)
    impl->copy(impl->copy_ctx, dst, src, bytes);
  else
    memmove(dst, src, bytes);
}

static void self_all_reduce_sum(up_tp_comm *comm, const void *src, void *dst, size_t count, up_comm_elem elem,
                                const char *what) {
  (void)what;
  count_call(comm);
  self_copy(comm, src, dst, count, elem);
}

static void self_all_gather(up_tp_comm *comm, const void *src, void *dst, size_t count_per_rank, up_comm_elem elem,
                            const char *what) {
  (void)what;
  count_call(comm);
  self_copy(comm, src, dst, count_per_rank, elem);
}

static void self_broadcast(up_tp_comm *comm, void *buf, size_t count, up_comm_elem elem, int root, const char *what) {
  count_call(comm);
  (void)buf;
  (void)count;
  (void)elem;
  UP_ASSERT(root == 0, "%s: broadcast from rank %d of a group of one", what, root);
}

static bool self_all_equal_u64(up_tp_comm *comm, uint64_t value, const char *what) {
  count_call(comm);
  (void)value;
  (void)what;
  return true;
}

static void self_synchronize(up_tp_comm *comm, const char *what) {
  (void)comm;
  (void)what;
}

static void self_time_reset(up_tp_comm *comm) { ((self_impl *)comm->impl)->calls = 0; }

static up_tp_comm_time self_time_read(up_tp_comm *comm) {
  return (up_tp_comm_time){.ms = 0.0, .calls = ((const self_impl *)comm->impl)->calls};
}

static void self_destroy(up_tp_comm *comm) {
  free(comm->impl);
  free(comm);
}

static const up_tp_comm_ops self_ops = {
    .name = "self",
    .all_reduce_sum = self_all_reduce_sum,
    .all_gather = self_all_gather,
    .broadcast = self_broadcast,
    .all_equal_u64 = self_all_equal_u64,
    .synchronize = self_synchronize,
    .time_reset = self_time_reset,
    .time_read = self_time_read,
    .destroy = self_destroy,
};

up_tp_comm *up_tp_comm_create_self(up_tp_copy_fn copy, void *copy_ctx) {
  up_tp_comm *comm = calloc(1, sizeof *comm);
  self_impl *impl = calloc(1, sizeof *impl);
  UP_ASSERT(comm != NULL && impl != NULL, "out of host memory for the tensor-parallel communicator");
  impl->copy = copy;
  impl->copy_ctx = copy_ctx;
  comm->impl = impl;
  comm->ops = &self_ops;
  comm->rank = 0;
  comm->size = 1;
  comm->deterministic = true;
  return comm;
}
