/* backend_select.c — backend choice: the CPU reference always; the CUDA backend when
 * this build has CUDA and a GPU is visible, on device local_rank % device_count so the
 * ranks of one node spread over its GPUs. --backend auto takes the GPU when there is
 * one and falls back to the CPU, with a notice, when it cannot be used. */
#include "launcher/backend_select.h"

#include <stdio.h>
#include <string.h>

#include "kernels/cpu/cpu_backend.h"
#ifdef UNIPREFILL_HAVE_CUDA
#include "kernels/cuda/attention/cuda_attention.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_device.h"
#endif

int up_backend_gpu_present(void) {
#ifdef UNIPREFILL_HAVE_CUDA
  char why[256];
  return up_cuda_device_count(why, sizeof why) > 0;
#else
  return 0;
#endif
}

void up_backend_device_key(const up_backend *be, char *key, size_t key_size) {
#ifdef UNIPREFILL_HAVE_CUDA
  if (strcmp(be->ops->name, "cuda") == 0) {
    char id[64];
    snprintf(key, key_size, "cuda:%s", up_cuda_current_device_pci_bus_id(id, sizeof id) ? id : "?");
    return;
  }
#endif
  snprintf(key, key_size, "%s", be->ops->name);
}

#ifdef UNIPREFILL_HAVE_CUDA
/* The CUDA backend for this rank, or NULL with the reason in err. */
static up_backend *create_cuda(int local_rank, char *err, size_t err_size) {
  char why[256];
  const int count = up_cuda_device_count(why, sizeof why);
  if (count == 0) {
    snprintf(err, err_size, "no usable CUDA device%s%s", why[0] ? ": " : "", why);
    return NULL;
  }
  const int device = (local_rank < 0 ? 0 : local_rank) % count;
  return up_cuda_backend_create(device, err, err_size);
}
#endif

up_backend *up_backend_select(up_backend_choice choice, int threads, int local_rank, char *notice,
                              size_t notice_size, char *err, size_t err_size) {
  notice[0] = '\0';
  if (choice == UP_BACKEND_CUDA) {
#ifdef UNIPREFILL_HAVE_CUDA
    char why[512];
    up_backend *be = create_cuda(local_rank, why, sizeof why);
    if (!be) snprintf(err, err_size, "--backend cuda: %s", why);
    return be;
#else
    (void)local_rank;
    snprintf(err, err_size, "--backend cuda: this build has no CUDA support (configure with -DUNIPREFILL_CUDA=ON)");
    return NULL;
#endif
  }
#ifdef UNIPREFILL_HAVE_CUDA
  if (choice == UP_BACKEND_AUTO && up_backend_gpu_present()) {
    char why[512];
    up_backend *be = create_cuda(local_rank, why, sizeof why);
    if (be) return be;
    snprintf(notice, notice_size, "a GPU is present but the CUDA backend could not start (%s): running on the CPU",
             why);
  }
#else
  (void)local_rank;
#endif
  return up_cpu_backend_create(threads);
}

bool up_backend_set_attention_kernel(up_backend *be, up_attention_kernel kernel, int32_t kv_block, char *err,
                                     size_t err_size) {
  if (kernel == UP_ATTN_KERNEL_AUTO) return true;
  const char *name = up_attention_kernel_names[kernel];
  if (strcmp(be->ops->name, "cuda") != 0) {
    snprintf(err, err_size, "--attention-kernel %s: picks a CUDA kernel, but this rank runs on the %s backend", name,
             be->ops->name);
    return false;
  }
#ifdef UNIPREFILL_HAVE_CUDA
  /* up_cuda_attention_prefill's variants, in up_attention_kernel order. */
  static const int variant_of[UP_ATTN_KERNEL_COUNT] = {
      UP_ATTN_PREFILL_DEFAULT,
      UP_ATTN_PREFILL_SM90_TMA,
      UP_ATTN_PREFILL_SM90,
      UP_ATTN_PREFILL_MMA_SYNC};
  const bool hopper = kernel != UP_ATTN_KERNEL_MMA_SYNC;
  const bool tma = kernel == UP_ATTN_KERNEL_TMA;
  if (hopper && !up_cuda_attention_prefill_sm90_available()) {
    snprintf(err, err_size, "--attention-kernel %s: needs a Hopper GPU (compute capability 9.0)", name);
    return false;
  }
  if (tma && !up_cuda_attention_prefill_sm90_tma_block_fits(kv_block)) {
    snprintf(err, err_size, "--attention-kernel %s: copies whole KV blocks into 128-entry tiles, so --kv-block must "
             "divide 128 and be at least 8 (it is %d)", name, (int)kv_block);
    return false;
  }
  up_cuda_backend_set_attention_variant(be, variant_of[kernel]);
  return true;
#else
  (void)kv_block;
  snprintf(err, err_size, "--attention-kernel %s: this build has no CUDA support", name);
  return false;
#endif
}
