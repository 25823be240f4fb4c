/* cuda_backend.cu — builds the CUDA backend: device choice, its stream and library
 * handles, GPU memory, host transfers (fp32 <-> bf16 converted on the host through
 * pinned staging buffers), the kernels' index-error report, and the op table. The
 * kernels live in cuda_elementwise.cu, the GEMM in cuda_matmul.cu, attention in
 * cuda_attention.cu, the UniPrefill selection in uniprefill_select.cu. */
#include "kernels/cuda/cuda_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/attention/cuda_attention.h"
#include "kernels/cuda/cuda_backend_impl.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/cuda/deltanet/deltanet_ops.h"
#include "kernels/cuda/selection/uniprefill_bounded_attention.h"
#include "kernels/cuda/selection/uniprefill_select.h"
#include "kernels/cuda/sparse/sparse_cuda.h"
#include "kernels/method_kernels.h"

static void *cuda_alloc(up_backend *be, size_t bytes, const char *what) {
  void *ptr = NULL;
  const cudaError_t rc = cudaMalloc(&ptr, bytes ? bytes : 1); /* never NULL, even for 0 bytes */
  if (rc != cudaSuccess) {
    size_t free_bytes = 0, total_bytes = 0;
    (void)cudaGetLastError(); /* an allocation failure is not sticky: clear it to ask what is free */
    (void)cudaMemGetInfo(&free_bytes, &total_bytes);
    UP_FATAL("out of GPU memory allocating %zu bytes for %s: %s (%.2f GiB of %.2f GiB free)", bytes, what,
             cudaGetErrorString(rc), free_bytes / 1073741824.0, total_bytes / 1073741824.0);
  }
  return ptr;
}

static void cuda_free(up_backend *be, void *ptr) {
  if (ptr) UP_CUDA_CHECK(cudaFree(ptr));
}

static size_t cuda_memory_available(up_backend *be) {
  size_t free_bytes = 0, total_bytes = 0;
  UP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return free_bytes;
}

static const char *index_op_name(int32_t op) {
  switch (op) {
    case UP_CUDA_OP_EMBED: return "embed: token id";
    case UP_CUDA_OP_GATHER_ROWS: return "gather_rows: source row";
    case UP_CUDA_OP_GATHER_I32: return "gather_i32: source index";
    case UP_CUDA_OP_KV_STORE: return "kv_store: slot";
    case UP_CUDA_OP_SPARSE_KV_LEN: return "sparse_attention: cache length (must equal a sparse sequence's rows)";
    case UP_CUDA_OP_SPARSE_QBLOCKS: return "sparse_attention: query-block count (must be ceil(rows / block_q))";
    case UP_CUDA_OP_BOUNDED_FIRST_ENTRY: return "bounded attention: first visible entry (must lie in 0..the row's index)";
    default: return "unknown op: index";
  }
}

void up_cuda_sync_and_check(up_cuda_backend *cb) {
  UP_CUDA_CHECK(cudaMemcpyAsync(cb->index_error_host, cb->index_error, sizeof *cb->index_error,
                                cudaMemcpyDeviceToHost, cb->stream));
  UP_CUDA_CHECK(cudaStreamSynchronize(cb->stream));
  const up_cuda_index_error *e = cb->index_error_host;
  if (e->flagged)
    UP_FATAL("%s %d of row %d is out of range (negative, or outside the KV pool); seen by the GPU, reported at "
             "the next synchronisation", index_op_name(e->op), e->value, e->row);
}

static void cuda_synchronize(up_backend *be) { up_cuda_sync_and_check(up_cuda_impl(be)); }

/* Host -> bf16: convert a chunk into the pinned buffer the copy before last has
 * released, so the host converts while the previous chunk is in flight. The source
 * may be reused as soon as this returns. */
static void cuda_upload_f32(up_backend *be, void *dst, size_t offset, const float *src, size_t n) {
  up_cuda_backend *cb = up_cuda_impl(be);
  __nv_bfloat16 *d = (__nv_bfloat16 *)dst + offset;
  for (size_t done = 0; done < n; done += UP_CUDA_STAGING_ELEMS) {
    const size_t len = n - done < UP_CUDA_STAGING_ELEMS ? n - done : UP_CUDA_STAGING_ELEMS;
    const int32_t i = cb->next_staging;
    cb->next_staging ^= 1;
    UP_CUDA_CHECK(cudaEventSynchronize(cb->staging_free[i]));
    __nv_bfloat16 *stage = cb->staging[i];
    for (size_t j = 0; j < len; ++j) stage[j] = __float2bfloat16_rn(src[done + j]);
    UP_CUDA_CHECK(cudaMemcpyAsync(d + done, stage, len * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice,
                                  cb->stream));
    UP_CUDA_CHECK(cudaEventRecord(cb->staging_free[i], cb->stream));
  }
}

/* bf16 -> host fp32, chunk by chunk; waits for all queued work first (stream order). */
static void cuda_download_f32(up_backend *be, float *dst, const void *src, size_t offset, size_t n) {
  up_cuda_backend *cb = up_cuda_impl(be);
  const __nv_bfloat16 *s = (const __nv_bfloat16 *)src + offset;
  for (size_t done = 0; done < n; done += UP_CUDA_STAGING_ELEMS) {
    const size_t len = n - done < UP_CUDA_STAGING_ELEMS ? n - done : UP_CUDA_STAGING_ELEMS;
    __nv_bfloat16 *stage = cb->staging[0];
    UP_CUDA_CHECK(cudaMemcpyAsync(stage, s + done, len * sizeof(__nv_bfloat16), cudaMemcpyDeviceToHost,
                                  cb->stream));
    up_cuda_sync_and_check(cb); /* also orders after any upload still reading stage */
    for (size_t j = 0; j < len; ++j) dst[done + j] = __bfloat162float(stage[j]);
  }
}

/* Pageable source: the runtime copies it out before returning, so the engine may
 * refill its host arrays at once; the device copy stays ordered on the stream. */
static void cuda_upload_i32(up_backend *be, int32_t *dst, const int32_t *src_host, size_t n) {
  if (n == 0) return;
  UP_CUDA_CHECK(cudaMemcpyAsync(dst, src_host, n * sizeof(int32_t), cudaMemcpyHostToDevice,
                                up_cuda_impl(be)->stream));
}

static void cuda_download_i32(up_backend *be, int32_t *dst_host, const int32_t *src, size_t n) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (n > 0)
    UP_CUDA_CHECK(cudaMemcpyAsync(dst_host, src, n * sizeof(int32_t), cudaMemcpyDeviceToHost, cb->stream));
  up_cuda_sync_and_check(cb);
}

/* Raw bytes, as the int32 copies: pageable source copied out before the call returns. */
static void cuda_upload_bytes(up_backend *be, void *dst, const void *src_host, size_t bytes) {
  if (bytes == 0) return;
  UP_CUDA_CHECK(cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice, up_cuda_impl(be)->stream));
}

static void cuda_download_bytes(up_backend *be, void *dst_host, const void *src, size_t bytes) {
  up_cuda_backend *cb = up_cuda_impl(be);
  if (bytes > 0) UP_CUDA_CHECK(cudaMemcpyAsync(dst_host, src, bytes, cudaMemcpyDeviceToHost, cb->stream));
  up_cuda_sync_and_check(cb);
}

/* Also the failure path of create: every member may still be unset. */
static void cuda_destroy(up_backend *be) {
  if (!be) return;
  up_cuda_backend *cb = up_cuda_impl(be);
  if (cb) {
    if (cb->stream) UP_CUDA_CHECK(cudaStreamSynchronize(cb->stream));
    up_cuda_attention_release(be);
    up_cuda_uniprefill_select_release(cb);
    up_cuda_matmul_release(cb);
    up_cuda_grouped_matmul_release(cb);
    up_cuda_gdn_chunked_release(cb);
    up_cuda_phase_release(cb);
    for (int i = 0; i < 2; ++i) {
      if (cb->staging[i]) UP_CUDA_CHECK(cudaFreeHost(cb->staging[i]));
      if (cb->staging_free[i]) UP_CUDA_CHECK(cudaEventDestroy(cb->staging_free[i]));
    }
    if (cb->index_error) UP_CUDA_CHECK(cudaFree(cb->index_error));
    if (cb->index_error_host) UP_CUDA_CHECK(cudaFreeHost(cb->index_error_host));
    if (cb->argmax_out) UP_CUDA_CHECK(cudaFree(cb->argmax_out));
    if (cb->moe_sort_scratch) UP_CUDA_CHECK(cudaFree(cb->moe_sort_scratch));
    if (cb->lt) UP_CUBLAS_CHECK(cublasLtDestroy(cb->lt));
    if (cb->stream) UP_CUDA_CHECK(cudaStreamDestroy(cb->stream));
    free(cb);
  }
  free(be);
}

/* The kernels of individual methods this backend has (kernels/method_kernels.h). */
static const up_method_kernel_entry cuda_method_kernels[] = {
    {UP_UNIPREFILL_SELECT_KERNEL, (up_method_kernel_fn)up_cuda_uniprefill_select},
    {UP_UNIPREFILL_HEAD_SCORES_KERNEL, (up_method_kernel_fn)up_cuda_uniprefill_head_scores},
    {UP_UNIPREFILL_BOUNDED_ATTENTION_KERNEL, (up_method_kernel_fn)up_cuda_bounded_attention},
    {UP_SPARSE_ATTENTION_KERNEL, (up_method_kernel_fn)up_cuda_sparse_attention},
    {UP_MINFERENCE_ESTIMATE_KERNEL, (up_method_kernel_fn)up_cuda_minference_estimate},
    {UP_XATTENTION_ESTIMATE_KERNEL, (up_method_kernel_fn)up_cuda_xattention_estimate},
    {UP_FLEXPREFILL_ESTIMATE_KERNEL, (up_method_kernel_fn)up_cuda_flexprefill_estimate},
};

static up_method_kernel_fn cuda_method_kernel(up_backend *be, const char *name) {
  return up_method_kernel_lookup(cuda_method_kernels, sizeof cuda_method_kernels / sizeof cuda_method_kernels[0],
                                 name);
}

static const up_backend_ops cuda_op_table = {
    .name = "cuda",
    .alloc = cuda_alloc,
    .free = cuda_free,
    .memory_available = cuda_memory_available,
    .upload_f32 = cuda_upload_f32,
    .download_f32 = cuda_download_f32,
    .upload_i32 = cuda_upload_i32,
    .download_i32 = cuda_download_i32,
    .upload_bytes = cuda_upload_bytes,
    .download_bytes = cuda_download_bytes,
    .fill_uniform = up_cuda_fill_uniform,
    .synchronize = cuda_synchronize,
    .embed = up_cuda_embed,
    .rmsnorm = up_cuda_rmsnorm,
    .add_rmsnorm = up_cuda_add_rmsnorm,
    .matmul = up_cuda_matmul,
    .rope = up_cuda_rope,
    .swiglu = up_cuda_swiglu,
    .geglu = up_cuda_geglu,
    .head_rmsnorm = up_cuda_head_rmsnorm,
    .scale = up_cuda_scale,
    .gather_rows = up_cuda_gather_rows,
    .gather_i32 = up_cuda_gather_i32,
    .argmax_rows = up_cuda_argmax_rows,
    .kv_store = up_cuda_kv_store,
    .attention = up_cuda_attention,
    .method_kernel = cuda_method_kernel,
    .phase_mark = up_cuda_phase_mark,
    .phase_collect = up_cuda_phase_collect,
    /* Qwen3-Next ops (issue 14): kernels/cuda/deltanet/ */
    .causal_conv1d = up_cuda_causal_conv1d,
    .gdn_gates = up_cuda_gdn_gates,
    .gated_deltanet = up_cuda_gated_deltanet,
    .gated_rmsnorm = up_cuda_gated_rmsnorm,
    .moe_route = up_cuda_moe_route,
    .moe_sort = up_cuda_moe_sort,
    .moe_combine = up_cuda_moe_combine,
    .split_query_gate = up_cuda_split_query_gate,
    .sigmoid_gate = up_cuda_sigmoid_gate,
    .rope_partial = up_cuda_rope_partial,
    .grouped_matmul = up_cuda_grouped_matmul,
    .destroy = cuda_destroy,
};

extern "C" up_backend *up_cuda_backend_create(int device, char *err, size_t err_size) {
  char why[256];
  const int count = up_cuda_device_count(why, sizeof why);
  if (count == 0) {
    snprintf(err, err_size, "no usable CUDA device%s%s", why[0] ? ": " : "", why);
    return NULL;
  }
  if (device < 0 || device >= count) {
    snprintf(err, err_size, "CUDA device %d does not exist (%d visible)", device, count);
    return NULL;
  }
  cudaError_t rc = cudaSetDevice(device);
  if (rc != cudaSuccess) {
    snprintf(err, err_size, "CUDA device %d: cudaSetDevice failed: %s", device, cudaGetErrorString(rc));
    return NULL;
  }
  up_backend *be = (up_backend *)up_calloc_or_die(1, sizeof *be, "cuda backend");
  up_cuda_backend *cb = (up_cuda_backend *)up_calloc_or_die(1, sizeof *cb, "cuda backend state");
  be->ops = &cuda_op_table;
  be->act_dtype = UP_DTYPE_BF16;
  be->impl = cb;
  cb->device = device;
  if (!up_cuda_device_describe(device, be->device_name, sizeof be->device_name)) {
    snprintf(err, err_size, "%s", be->device_name);
    goto fail;
  }

#define TRY(call)                                                                                          \
  do {                                                                                                     \
    rc = (call);                                                                                           \
    if (rc != cudaSuccess) {                                                                               \
      snprintf(err, err_size, "CUDA device %d: %s failed: %s", device, #call, cudaGetErrorString(rc));     \
      goto fail;                                                                                           \
    }                                                                                                      \
  } while (0)
  TRY(cudaDeviceGetAttribute(&cb->sm_count, cudaDevAttrMultiProcessorCount, device));
  /* Non-blocking: nothing on the legacy default stream (another library's) serialises with our ops. */
  TRY(cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking));
  for (int i = 0; i < 2; ++i) {
    TRY(cudaHostAlloc((void **)&cb->staging[i], UP_CUDA_STAGING_ELEMS * sizeof(__nv_bfloat16), cudaHostAllocDefault));
    TRY(cudaEventCreateWithFlags(&cb->staging_free[i], cudaEventDisableTiming));
  }
  TRY(cudaMalloc((void **)&cb->index_error, sizeof *cb->index_error));
  TRY(cudaMemsetAsync(cb->index_error, 0, sizeof *cb->index_error, cb->stream));
  TRY(cudaHostAlloc((void **)&cb->index_error_host, sizeof *cb->index_error_host, cudaHostAllocDefault));
#undef TRY
  {
    const cublasStatus_t st = cublasLtCreate(&cb->lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
      snprintf(err, err_size, "CUDA device %d: cublasLtCreate failed: %s", device, cublasGetStatusString(st));
      goto fail;
    }
  }
  if (up_cuda_matmul_init(cb, err, err_size) != 0) goto fail;
  if (up_cuda_phase_init(cb, err, err_size) != 0) goto fail;
  rc = cudaStreamSynchronize(cb->stream);
  if (rc != cudaSuccess) {
    snprintf(err, err_size, "CUDA device %d: cudaStreamSynchronize after setup failed: %s", device,
             cudaGetErrorString(rc));
    goto fail;
  }
  return be;

fail:
  cuda_destroy(be);
  return NULL;
}

extern "C" cudaStream_t up_cuda_backend_stream(up_backend *be) { return up_cuda_impl(be)->stream; }

extern "C" int up_cuda_backend_device(up_backend *be) { return up_cuda_impl(be)->device; }

extern "C" void up_cuda_backend_copy_device(void *be, void *dst, const void *src, size_t bytes) {
  up_cuda_backend *cb = up_cuda_impl((up_backend *)be);
  UP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cb->stream));
}

extern "C" void up_cuda_backend_set_attention_variant(up_backend *be, int variant) {
  up_cuda_impl(be)->attn_prefill_variant = variant;
}
