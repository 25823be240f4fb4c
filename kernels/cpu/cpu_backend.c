/* cpu_backend.c — builds the CPU reference backend: host memory behind the memory ops,
 * the device name from /proc/cpuinfo, and the op table pointing at cpu_ops.c,
 * cpu_gemma_ops.c, cpu_attention.c and uniprefill_select.c. */
#include "kernels/cpu/cpu_backend.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_deltanet.h"
#include "kernels/cpu/cpu_moe.h"
#include "kernels/cpu/cpu_ops.h"
#include "core/clock.h"
#include "kernels/cpu/host_memory.h"
#include "kernels/cpu/sparse_ops.h"
#include "kernels/cpu/uniprefill_select.h"
#include "kernels/method_kernels.h"
#include "core/fatal.h"
#include "core/rng.h"

static void *cpu_alloc(up_backend *be, size_t bytes, const char *what) { return up_malloc_or_die(bytes, what); }

static void cpu_free(up_backend *be, void *ptr) { free(ptr); }

/* MemAvailable (which counts reclaimable page cache, what a large allocation can really
 * get), or less where RLIMIT_AS or a cgroup limit leaves less (host_memory.h). */
static size_t cpu_memory_available(up_backend *be) { return (size_t)up_host_memory_available(); }

static void cpu_upload_f32(up_backend *be, void *dst, size_t offset, const float *src, size_t n) {
  memcpy((float *)dst + offset, src, sizeof(float) * n);
}

static void cpu_download_f32(up_backend *be, float *dst, const void *src, size_t offset, size_t n) {
  memcpy(dst, (const float *)src + offset, sizeof(float) * n);
}

static void cpu_upload_i32(up_backend *be, int32_t *dst, const int32_t *src_host, size_t n) {
  memcpy(dst, src_host, sizeof(int32_t) * n);
}

static void cpu_download_i32(up_backend *be, int32_t *dst_host, const int32_t *src, size_t n) {
  memcpy(dst_host, src, sizeof(int32_t) * n);
}

static void cpu_upload_bytes(up_backend *be, void *dst, const void *src_host, size_t bytes) {
  memcpy(dst, src_host, bytes);
}

static void cpu_download_bytes(up_backend *be, void *dst_host, const void *src, size_t bytes) {
  memcpy(dst_host, src, bytes);
}

static void cpu_fill_uniform(up_backend *be, void *dst, size_t offset, size_t n, float bound, uint64_t seed,
                             uint64_t stream) {
  float *out = (float *)dst + offset;
  for (size_t i = 0; i < n; ++i) out[i] = bound * up_rng_symmetric(seed, stream, i);
}

static void cpu_synchronize(up_backend *be) {} /* every op finishes before it returns */

/* The step-phase clock: the phase in progress and when it began. */
typedef struct cpu_phase_clock {
  int active;
  up_phase phase;
  double since_s;
  double ms[UP_PHASE_COUNT];
} cpu_phase_clock;

static double cpu_now_s(void) { return up_clock_monotonic_s(); }

static void cpu_phase_mark(up_backend *be, up_phase phase) {
  cpu_phase_clock *c = be->impl;
  const double now = cpu_now_s();
  if (c->active) c->ms[c->phase] += 1e3 * (now - c->since_s);
  c->active = 1;
  c->phase = phase;
  c->since_s = now;
}

static void cpu_phase_collect(up_backend *be, double *ms) {
  cpu_phase_clock *c = be->impl;
  if (c->active) c->ms[c->phase] += 1e3 * (cpu_now_s() - c->since_s);
  for (int p = 0; p < UP_PHASE_COUNT; ++p) ms[p] += c->ms[p];
  memset(c, 0, sizeof *c);
}

static void cpu_destroy(up_backend *be) {
  free(be->impl);
  free(be);
}

/* The kernels of individual methods this backend has (kernels/method_kernels.h). */
static const up_method_kernel_entry cpu_method_kernels[] = {
    {UP_UNIPREFILL_SELECT_KERNEL, (up_method_kernel_fn)up_cpu_uniprefill_select},
    {UP_UNIPREFILL_BOUNDED_ATTENTION_KERNEL, (up_method_kernel_fn)up_cpu_bounded_attention},
    {UP_UNIPREFILL_HEAD_SCORES_KERNEL, (up_method_kernel_fn)up_cpu_uniprefill_head_scores},
    {UP_SPARSE_ATTENTION_KERNEL, (up_method_kernel_fn)up_cpu_sparse_attention},
    {UP_MINFERENCE_ESTIMATE_KERNEL, (up_method_kernel_fn)up_cpu_minference_estimate},
    {UP_FLEXPREFILL_ESTIMATE_KERNEL, (up_method_kernel_fn)up_cpu_flexprefill_estimate},
    {UP_XATTENTION_ESTIMATE_KERNEL, (up_method_kernel_fn)up_cpu_xattention_estimate},
};

static up_method_kernel_fn cpu_method_kernel(up_backend *be, const char *name) {
  return up_method_kernel_lookup(cpu_method_kernels, sizeof cpu_method_kernels / sizeof cpu_method_kernels[0], name);
}

static const up_backend_ops cpu_op_table = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .memory_available = cpu_memory_available,
    .upload_f32 = cpu_upload_f32,
    .download_f32 = cpu_download_f32,
    .upload_i32 = cpu_upload_i32,
    .download_i32 = cpu_download_i32,
    .upload_bytes = cpu_upload_bytes,
    .download_bytes = cpu_download_bytes,
    .fill_uniform = cpu_fill_uniform,
    .synchronize = cpu_synchronize,
    .embed = up_cpu_embed,
    .rmsnorm = up_cpu_rmsnorm,
    .add_rmsnorm = up_cpu_add_rmsnorm,
    .matmul = up_cpu_matmul,
    .rope = up_cpu_rope,
    .swiglu = up_cpu_swiglu,
    .geglu = up_cpu_geglu,
    .head_rmsnorm = up_cpu_head_rmsnorm,
    .scale = up_cpu_scale,
    .gather_rows = up_cpu_gather_rows,
    .gather_i32 = up_cpu_gather_i32,
    .argmax_rows = up_cpu_argmax_rows,
    .kv_store = up_cpu_kv_store,
    .attention = up_cpu_attention,
    .method_kernel = cpu_method_kernel,
    .phase_mark = cpu_phase_mark,
    .phase_collect = cpu_phase_collect,
    /* Qwen3-Next ops (issue 14): cpu_causal_conv.c, cpu_gated_deltanet.c, cpu_moe.c, cpu_gated_attention.c */
    .causal_conv1d = up_cpu_causal_conv1d,
    .gdn_gates = up_cpu_gdn_gates,
    .gated_deltanet = up_cpu_gated_deltanet,
    .gated_rmsnorm = up_cpu_gated_rmsnorm,
    .moe_route = up_cpu_moe_route,
    .moe_sort = up_cpu_moe_sort,
    .moe_combine = up_cpu_moe_combine,
    .split_query_gate = up_cpu_split_query_gate,
    .sigmoid_gate = up_cpu_sigmoid_gate,
    .rope_partial = up_cpu_rope_partial,
    .grouped_matmul = up_cpu_grouped_matmul,
    .destroy = cpu_destroy,
};

/* "<model name> (<n> cores)" from /proc/cpuinfo, or "cpu" where it cannot be read. */
static void describe_cpu(char *dst, size_t size) {
  snprintf(dst, size, "cpu");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512], model[256] = "";
  int n_cores = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "processor", 9) == 0) ++n_cores;
    const char *colon = strchr(line, ':');
    if (!model[0] && colon && strncmp(line, "model name", 10) == 0) {
      snprintf(model, sizeof model, "%s", colon + 1 + (colon[1] == ' '));
      model[strcspn(model, "\n")] = '\0';
    }
  }
  fclose(f);
  if (model[0]) snprintf(dst, size, "%s (%d cores)", model, n_cores);
}

up_backend *up_cpu_backend_create(int n_threads) {
  up_backend *be = up_calloc_or_die(1, sizeof *be, "cpu backend");
  be->ops = &cpu_op_table;
  be->act_dtype = UP_DTYPE_F32;
  be->impl = up_calloc_or_die(1, sizeof(cpu_phase_clock), "cpu phase clock");
  describe_cpu(be->device_name, sizeof be->device_name);
  if (n_threads > 0) openblas_set_num_threads(n_threads);
  return be;
}
