/* tp_comm_check.c — the tensor-parallel communicator's unit test, run under mpirun
 * (tests/tp_comm.sh) since a transport is only tested by several processes: one group of
 * every rank, each collective of engine/parallel/tp_comm.h checked bitwise. The nccl
 * transport (builds with NCCL) runs the same checks on device buffers, one GPU per rank
 * (the local rank's); its deterministic sum is the GPU kernel checked against the host
 * rank-order sum.
 *  - all_reduce_sum on exact-sum inputs (small integers times a shared power of two, as
 *    nccl-tests' verifiable data: any summation order gives the same bits), every element
 *    type, odd sizes and sizes past the transport's chunking, in place and not;
 *  - deterministic mode on random (non-exact) inputs: the result is the rank-order sum,
 *    the same on every repeat, every rank and any message length;
 *  - all_gather, broadcast from every root, all_equal_u64's true and false cases;
 *  - --fault-rank R --fault fatal|exit|hang: rank R fails while the others are inside an
 *    all-reduce; the script checks that the job ends, non-zero, naming it.
 * Usage: tp_comm_check [--transport mpi|self|nccl] [--timeout S] [--fault-rank R --fault KIND]
 *        tp_comm_check --count-gpus   (prints the visible CUDA devices, 0 without CUDA)
 * Prints "N passed, M failed" on rank 0; exit 1 when anything failed. */
#include <math.h>
#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fatal.h"
#include "core/float16.h"
#include "core/rng.h"
#include "engine/parallel/tp_comm.h"
#include "launcher/mpi_check.h"
#include "launcher/parallel/tp_comm_mpi.h"
#ifdef UNIPREFILL_HAVE_CUDA
#include "kernels/cuda/cuda_device.h"
#endif
#ifdef UNIPREFILL_HAVE_NCCL
#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_backend.h"
#include "launcher/parallel/nccl/tp_comm_nccl.h"
#endif

static int g_rank, g_size, g_failed_checks, g_passed_checks;

/* Where the communicator's buffers live: host memory for self and mpi, the GPU for
 * nccl. The checks fill and read host copies and move them with put and get, which the
 * checks call after comm->ops->synchronize (the nccl collectives are queued, not done). */
typedef struct comm_memory {
  void *(*alloc)(size_t bytes);
  void (*release)(void *buf);
  void (*put)(void *dst, const void *host, size_t bytes);
  void (*get)(void *host, const void *src, size_t bytes);
} comm_memory;

static void *host_alloc(size_t bytes) { return up_malloc_or_die(bytes ? bytes : 1, "a communicator buffer"); }
static void host_release(void *buf) { free(buf); }
static void host_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
static const comm_memory k_host_memory = {host_alloc, host_release, host_copy, host_copy};

#ifdef UNIPREFILL_HAVE_NCCL
static up_backend *g_gpu;

static void *gpu_alloc(size_t bytes) { return g_gpu->ops->alloc(g_gpu, bytes ? bytes : 1, "a communicator buffer"); }
static void gpu_release(void *buf) { g_gpu->ops->free(g_gpu, buf); }

/* On the backend's stream, where the collectives run, and waited for. */
static void gpu_copy(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind) {
  cudaStream_t stream = up_cuda_backend_stream(g_gpu);
  cudaError_t rc = cudaMemcpyAsync(dst, src, bytes, kind, stream);
  if (rc == cudaSuccess) rc = cudaStreamSynchronize(stream);
  if (rc != cudaSuccess) UP_FATAL("copying %zu B %s the GPU: %s", bytes, kind == cudaMemcpyHostToDevice ? "to" : "from",
                                  cudaGetErrorString(rc));
}
static void gpu_put(void *dst, const void *host, size_t bytes) { gpu_copy(dst, host, bytes, cudaMemcpyHostToDevice); }
static void gpu_get(void *host, const void *src, size_t bytes) { gpu_copy(host, src, bytes, cudaMemcpyDeviceToHost); }
static const comm_memory k_gpu_memory = {gpu_alloc, gpu_release, gpu_put, gpu_get};
#endif

static const comm_memory *g_mem = &k_host_memory;

/* One check's verdict, agreed by every rank so the counts are the job's. */
static void verdict(bool ok_here, const char *name) {
  int ok = ok_here, all_ok = 0;
  UP_CHECK_MPI(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (!ok_here) fprintf(stderr, "rank %d: FAIL %s\n", g_rank, name);
  if (all_ok) ++g_passed_checks;
  else ++g_failed_checks;
}

/* Rank r's exact-sum input i: a small integer times 2^-4 (f32, bf16: at most 8
 * significant bits per term and per sum of four), or a wide integer (i32, u64). */
static void exact_input(up_comm_elem elem, int r, size_t i, void *out) {
  const uint64_t bits = up_rng_u64(11, (uint64_t)r, i);
  const int small = (int)(bits % 61) - 30;
  switch (elem) {
    case UP_COMM_F32: *(float *)out = (float)small * 0.0625f; break;
    case UP_COMM_BF16: *(uint16_t *)out = up_f32_to_bf16((float)small * 0.0625f); break;
    case UP_COMM_I32: *(int32_t *)out = (int32_t)(bits % (1u << 29)) - (1 << 28); break;
    case UP_COMM_U64: *(uint64_t *)out = bits >> 4; break;
  }
}

/* The sum of every rank's input i, computed exactly here. */
static void exact_sum(up_comm_elem elem, int ranks, size_t i, void *out) {
  double fsum = 0;
  int64_t isum = 0;
  uint64_t usum = 0;
  for (int r = 0; r < ranks; ++r) {
    unsigned char v[8];
    exact_input(elem, r, i, v);
    switch (elem) {
      case UP_COMM_F32: fsum += *(float *)v; break;
      case UP_COMM_BF16: fsum += up_bf16_to_f32(*(uint16_t *)v); break;
      case UP_COMM_I32: isum += *(int32_t *)v; break;
      case UP_COMM_U64: usum += *(uint64_t *)v; break;
    }
  }
  switch (elem) {
    case UP_COMM_F32: *(float *)out = (float)fsum; break;
    case UP_COMM_BF16: *(uint16_t *)out = up_f32_to_bf16((float)fsum); break;
    case UP_COMM_I32: *(int32_t *)out = (int32_t)isum; break;
    case UP_COMM_U64: *(uint64_t *)out = usum; break;
  }
}

static void fill(up_comm_elem elem, int r, size_t n, unsigned char *buf) {
  const size_t es = up_comm_elem_size(elem);
  for (size_t i = 0; i < n; ++i) exact_input(elem, r, i, buf + i * es);
}

static const up_comm_elem k_elems[] = {UP_COMM_F32, UP_COMM_BF16, UP_COMM_I32, UP_COMM_U64};
enum { N_ELEMS = 4 };
/* Odd sizes, and two past the MPI transport's chunks (4M fp32 staging elements for bf16,
 * 32 MiB of gathered slices for the deterministic sum). */
static const size_t k_sizes[] = {1, 3, 7, 1001, 65537, (1u << 22) + 5};
enum { N_SIZES = 6 };

/* The largest size only where a transport chunks (the floating-point types), once. */
static bool worth_checking(up_comm_elem elem, int size_index, int in_place) {
  if (size_index < N_SIZES - 1) return true;
  return !in_place && (elem == UP_COMM_F32 || elem == UP_COMM_BF16);
}

static void check_exact_all_reduce(up_tp_comm *comm) {
  for (int e = 0; e < N_ELEMS; ++e)
    for (int s = 0; s < N_SIZES; ++s)
      for (int in_place = 0; in_place < 2; ++in_place) {
        const up_comm_elem elem = k_elems[e];
        if (!worth_checking(elem, s, in_place)) continue;
        const size_t n = k_sizes[s], es = up_comm_elem_size(elem);
        unsigned char *src = up_malloc_or_die(n * es, "src"), *got = up_malloc_or_die(n * es, "result");
        void *comm_src = g_mem->alloc(n * es), *comm_dst = in_place ? comm_src : g_mem->alloc(n * es);
        fill(elem, g_rank, n, src);
        g_mem->put(comm_src, src, n * es);
        comm->ops->all_reduce_sum(comm, comm_src, comm_dst, n, elem, "exact-sum check");
        comm->ops->synchronize(comm, "exact-sum check");
        g_mem->get(got, comm_dst, n * es);
        bool ok = true;
        for (size_t i = 0; i < n && ok; ++i) {
          unsigned char want[8];
          exact_sum(elem, comm->size, i, want);
          if (memcmp(want, got + i * es, es) != 0) {
            fprintf(stderr, "rank %d: all_reduce_sum %s n=%zu%s: element %zu differs\n", g_rank,
                    up_comm_elem_name(elem), n, in_place ? " in place" : "", i);
            ok = false;
          }
        }
        char name[128];
        snprintf(name, sizeof name, "all_reduce_sum exact %s n=%zu%s", up_comm_elem_name(elem), n,
                 in_place ? " in place" : "");
        verdict(ok, name);
        free(src);
        free(got);
        g_mem->release(comm_src);
        if (!in_place) g_mem->release(comm_dst);
      }
}

/* Non-exact input: random values spread over several binades, so sums round. */
static float random_input(int r, size_t i) {
  const float scale = ldexpf(1.0f, (int)(up_rng_u64(5, (uint64_t)r + 100, i) % 16) - 8);
  return up_rng_symmetric(5, (uint64_t)r, i) * scale;
}

/* What the deterministic contract promises: the fp32 sum in rank order. */
static void rank_order_sum(up_comm_elem elem, int ranks, size_t i, void *out) {
  float acc = 0;
  for (int r = 0; r < ranks; ++r) {
    const float v = elem == UP_COMM_BF16 ? up_bf16_to_f32(up_f32_to_bf16(random_input(r, i))) : random_input(r, i);
    acc = r == 0 ? v : acc + v;
  }
  if (elem == UP_COMM_BF16) *(uint16_t *)out = up_f32_to_bf16(acc);
  else *(float *)out = acc;
}

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static void check_deterministic(up_tp_comm *comm) {
  if (!comm->deterministic) return;
  for (int e = 0; e < 2; ++e) {
    const up_comm_elem elem = e == 0 ? UP_COMM_F32 : UP_COMM_BF16;
    const size_t es = up_comm_elem_size(elem);
    const size_t longest = k_sizes[N_SIZES - 1];
    unsigned char *first = up_malloc_or_die(longest * es, "first result");
    unsigned char *src = up_malloc_or_die(longest * es, "src"), *dst = up_malloc_or_die(longest * es, "dst");
    void *comm_src = g_mem->alloc(longest * es), *comm_dst = g_mem->alloc(longest * es);
    for (int s = 0; s < N_SIZES; ++s) {
      const size_t n = k_sizes[s];
      bool ok = true;
      for (size_t i = 0; i < n; ++i) {
        const float v = random_input(g_rank, i);
        if (elem == UP_COMM_BF16) ((uint16_t *)src)[i] = up_f32_to_bf16(v);
        else ((float *)src)[i] = v;
      }
      g_mem->put(comm_src, src, n * es);
      for (int repeat = 0; repeat < 3; ++repeat) {
        comm->ops->all_reduce_sum(comm, comm_src, comm_dst, n, elem, "deterministic check");
        comm->ops->synchronize(comm, "deterministic check");
        g_mem->get(dst, comm_dst, n * es);
        if (repeat == 0) memcpy(first, dst, n * es);
        else if (memcmp(first, dst, n * es) != 0) ok = false;
      }
      for (size_t i = 0; i < n && ok; ++i) {
        unsigned char want[4];
        rank_order_sum(elem, comm->size, i, want);
        if (memcmp(want, first + i * es, es) != 0) {
          fprintf(stderr, "rank %d: deterministic %s n=%zu: element %zu is not the rank-order sum\n", g_rank,
                  up_comm_elem_name(elem), n, i);
          ok = false;
        }
      }
      /* Every rank holds the same bits (the check above is per rank; this is across). */
      const bool same = comm->ops->all_equal_u64(comm, hash_bytes(first, n * es), "deterministic result hash");
      char name[128];
      snprintf(name, sizeof name, "all_reduce_sum deterministic %s n=%zu", up_comm_elem_name(elem), n);
      verdict(ok && same, name);
    }
    free(first);
    free(src);
    free(dst);
    g_mem->release(comm_src);
    g_mem->release(comm_dst);
  }
}

static void check_all_gather(up_tp_comm *comm) {
  for (int e = 0; e < N_ELEMS; ++e)
    for (int s = 0; s < N_SIZES - 1; ++s) {
      const up_comm_elem elem = k_elems[e];
      const size_t n = k_sizes[s], es = up_comm_elem_size(elem);
      unsigned char *src = up_malloc_or_die(n * es, "src");
      unsigned char *dst = up_malloc_or_die(n * es * (size_t)comm->size, "dst");
      unsigned char *want = up_malloc_or_die(n * es, "want");
      void *comm_src = g_mem->alloc(n * es), *comm_dst = g_mem->alloc(n * es * (size_t)comm->size);
      fill(elem, g_rank, n, src);
      g_mem->put(comm_src, src, n * es);
      comm->ops->all_gather(comm, comm_src, comm_dst, n, elem, "all_gather check");
      comm->ops->synchronize(comm, "all_gather check");
      g_mem->get(dst, comm_dst, n * es * (size_t)comm->size);
      g_mem->release(comm_src);
      g_mem->release(comm_dst);
      bool ok = true;
      for (int r = 0; r < comm->size && ok; ++r) {
        fill(elem, r, n, want);
        ok = memcmp(want, dst + (size_t)r * n * es, n * es) == 0;
        if (!ok) fprintf(stderr, "rank %d: all_gather %s n=%zu: rank %d's slice differs\n", g_rank,
                         up_comm_elem_name(elem), n, r);
      }
      char name[128];
      snprintf(name, sizeof name, "all_gather %s n=%zu", up_comm_elem_name(elem), n);
      verdict(ok, name);
      free(src);
      free(dst);
      free(want);
    }
}

static void check_broadcast(up_tp_comm *comm) {
  for (int root = comm->size - 1; root >= 0; --root)
    for (int e = 0; e < N_ELEMS; ++e) {
      const up_comm_elem elem = k_elems[e];
      const size_t n = 1001, es = up_comm_elem_size(elem);
      unsigned char *buf = up_malloc_or_die(n * es, "buf"), *want = up_malloc_or_die(n * es, "want");
      void *comm_buf = g_mem->alloc(n * es);
      fill(elem, g_rank, n, buf); /* every rank starts from its own data */
      fill(elem, root, n, want);
      g_mem->put(comm_buf, buf, n * es);
      comm->ops->broadcast(comm, comm_buf, n, elem, root, "broadcast check");
      comm->ops->synchronize(comm, "broadcast check");
      g_mem->get(buf, comm_buf, n * es);
      g_mem->release(comm_buf);
      char name[128];
      snprintf(name, sizeof name, "broadcast %s from group rank %d", up_comm_elem_name(elem), root);
      verdict(memcmp(buf, want, n * es) == 0, name);
      free(buf);
      free(want);
    }
}

static void check_all_equal(up_tp_comm *comm) {
  const uint64_t values[] = {0, 1, 0x8000000000000000ull, UINT64_MAX};
  for (int v = 0; v < 4; ++v) {
    char name[128];
    snprintf(name, sizeof name, "all_equal_u64 true for %llu everywhere", (unsigned long long)values[v]);
    verdict(comm->ops->all_equal_u64(comm, values[v], "all-equal check"), name);
  }
  if (comm->size < 2) return;
  /* The last rank alone differs, by one bit or from one extreme to the other. */
  const bool last = comm->rank == comm->size - 1;
  verdict(!comm->ops->all_equal_u64(comm, last ? 43 : 42, "all-equal check"), "all_equal_u64 false: 42 vs 43");
  verdict(!comm->ops->all_equal_u64(comm, last ? UINT64_MAX : 0, "all-equal check"),
          "all_equal_u64 false: 0 vs UINT64_MAX");
  verdict(!comm->ops->all_equal_u64(comm, comm->rank == 0 ? 7 : 0, "all-equal check"),
          "all_equal_u64 false: the first rank differs");
}

/* The collective time (tp_comm.h): every call counted once, none after a reset; no time
 * in a group of one (self), some time in a real group's all-reduce of 256 KiB. */
static void check_collective_time(up_tp_comm *comm) {
  enum { CALLS = 5, COUNT = 65536 };
  void *buf = g_mem->alloc(COUNT * sizeof(float));
  unsigned char *host = up_malloc_or_die(COUNT * sizeof(float), "time check input");
  fill(UP_COMM_F32, g_rank, COUNT, host);
  g_mem->put(buf, host, COUNT * sizeof(float));
  comm->ops->time_reset(comm);
  for (int i = 0; i < CALLS; ++i) comm->ops->all_reduce_sum(comm, buf, buf, COUNT, UP_COMM_F32, "time check");
  comm->ops->synchronize(comm, "time check");
  const up_tp_comm_time spent = comm->ops->time_read(comm);
  const bool self = strcmp(comm->ops->name, "self") == 0;
  verdict(spent.calls == CALLS, "collective time: every call counted");
  verdict(isfinite(spent.ms) && spent.ms >= 0.0, "collective time: finite, not negative");
  if (self)
    verdict(spent.ms == 0.0, "collective time: none in a group of one");
  else if (comm->size > 1)
    verdict(spent.ms > 0.0, "collective time: some in a group of several");
  comm->ops->time_reset(comm);
  const up_tp_comm_time after = comm->ops->time_read(comm);
  verdict(after.calls == 0 && after.ms == 0.0, "collective time: zero after a reset");
  g_mem->release(buf);
  free(host);
}

/* Rank fault_rank fails while the others wait inside an all-reduce. */
static void inject_fault(up_tp_comm *comm, int fault_rank, const char *kind) {
  const float x[5] = {1, 2, 3, 4, 5};
  void *buf = g_mem->alloc(sizeof x);
  g_mem->put(buf, x, sizeof x);
  comm->ops->all_reduce_sum(comm, buf, buf, 5, UP_COMM_F32, "before the fault");
  comm->ops->synchronize(comm, "before the fault");
  if (comm->rank == fault_rank) {
    sleep(1); /* the others are inside the next all-reduce by now */
    if (strcmp(kind, "exit") == 0) {
      fprintf(stderr, "rank %d: exiting without MPI_Finalize (injected)\n", g_rank);
      _exit(7);
    }
    if (strcmp(kind, "hang") == 0) {
      fprintf(stderr, "rank %d: hanging (injected)\n", g_rank);
      for (;;) pause();
    }
    UP_FATAL("injected fault on rank %d inside all_reduce_sum of 'layer 0 attention output'", g_rank);
  }
  comm->ops->all_reduce_sum(comm, buf, buf, 5, UP_COMM_F32, "layer 0 attention output");
  comm->ops->synchronize(comm, "the wait after layer 0");
  fprintf(stderr, "rank %d: the all-reduce returned although rank %d failed\n", g_rank, fault_rank);
  g_mem->release(buf);
}

static void abort_job(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

/* The visible CUDA devices: how many ranks the nccl checks can have (tests/tp_comm.sh). */
static int count_gpus(void) {
#ifdef UNIPREFILL_HAVE_CUDA
  char why[256];
  return up_cuda_device_count(why, sizeof why);
#else
  return 0;
#endif
}

#ifdef UNIPREFILL_HAVE_NCCL
/* The GPU of this rank's place on its host (as the launcher's topology picks it), its
 * backend for the buffers, and the nccl communicator over the world. */
static up_tp_comm *create_nccl(bool deterministic, double timeout_s) {
  if (!g_gpu) {
    MPI_Comm host;
    int local_rank = 0, local_size = 0;
    UP_CHECK_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &host));
    UP_CHECK_MPI(MPI_Comm_rank(host, &local_rank));
    UP_CHECK_MPI(MPI_Comm_size(host, &local_size));
    UP_CHECK_MPI(MPI_Comm_free(&host));
    const int gpus = count_gpus();
    if (gpus < local_size)
      UP_FATAL("--transport nccl needs one GPU per rank: %d ranks on this host, %d GPU(s) visible", local_size, gpus);
    char err[512];
    g_gpu = up_cuda_backend_create(local_rank, err, sizeof err);
    if (!g_gpu) UP_FATAL("could not open GPU %d: %s", local_rank, err);
    g_mem = &k_gpu_memory;
  }
  return up_tp_comm_create_nccl(MPI_COMM_WORLD, g_gpu, deterministic, timeout_s);
}
#endif

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--count-gpus") == 0) {
    printf("%d\n", count_gpus());
    return 0;
  }
  if (MPI_Init(&argc, &argv) != MPI_SUCCESS) return 1;
  up_fatal_set_abort_hook(abort_job);
  UP_CHECK_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  UP_CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
  UP_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &g_size));
  char prefix[32];
  snprintf(prefix, sizeof prefix, "rank %d", g_rank);
  up_fatal_set_prefix(prefix);
  const char *transport = "mpi", *fault = NULL;
  int fault_rank = -1;
  double timeout_s = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--transport") == 0 && i + 1 < argc) transport = argv[++i];
    else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) timeout_s = atof(argv[++i]);
    else if (strcmp(argv[i], "--fault-rank") == 0 && i + 1 < argc) fault_rank = atoi(argv[++i]);
    else if (strcmp(argv[i], "--fault") == 0 && i + 1 < argc) fault = argv[++i];
    else {
      if (g_rank == 0) fprintf(stderr, "tp_comm_check: unknown argument %s\n", argv[i]);
      MPI_Finalize();
      return 2;
    }
  }
  const bool nccl = strcmp(transport, "nccl") == 0;
  if (strcmp(transport, "self") != 0 && strcmp(transport, "mpi") != 0 && !nccl) {
    if (g_rank == 0) fprintf(stderr, "tp_comm_check: --transport '%s' is not self, mpi or nccl\n", transport);
    MPI_Finalize();
    return 2;
  }
#ifndef UNIPREFILL_HAVE_NCCL
  if (nccl) {
    if (g_rank == 0) fprintf(stderr, "tp_comm_check: --transport nccl: this build has no NCCL\n");
    MPI_Finalize();
    return 2;
  }
#endif
  for (int deterministic = 1; deterministic >= 0; --deterministic) {
    up_tp_comm *comm;
    if (strcmp(transport, "self") == 0) {
      if (g_size != 1) UP_FATAL("--transport self runs on one rank, not %d", g_size);
      comm = up_tp_comm_create_self(NULL, NULL);
    } else if (nccl) {
#ifdef UNIPREFILL_HAVE_NCCL
      comm = create_nccl(deterministic, timeout_s);
#else
      UP_FATAL("unreachable: --transport nccl is refused above in a build without NCCL");
#endif
    } else {
      comm = up_tp_comm_create_mpi(MPI_COMM_WORLD, deterministic, timeout_s);
    }
    if (fault) {
      inject_fault(comm, fault_rank, fault);
      comm->ops->destroy(comm);
      MPI_Finalize();
      return 1;
    }
    verdict(comm->size == g_size && comm->rank == g_rank, "group rank and size");
    check_exact_all_reduce(comm);
    check_deterministic(comm);
    check_all_gather(comm);
    check_broadcast(comm);
    check_all_equal(comm);
    check_collective_time(comm);
    comm->ops->synchronize(comm, "end of checks");
    comm->ops->destroy(comm);
    if (strcmp(transport, "self") == 0) break; /* a group of one is deterministic either way */
  }
  if (g_rank == 0) printf("tp_comm_check (%s, %d ranks): %d passed, %d failed\n", transport, g_size,
                          g_passed_checks, g_failed_checks);
#ifdef UNIPREFILL_HAVE_NCCL
  if (g_gpu) g_gpu->ops->destroy(g_gpu);
#endif
  MPI_Finalize();
  return g_failed_checks ? 1 : 0;
}
