/* backend_select.c — backend choice: CPU reference always; CUDA when built, a GPU is
 * present and the CUDA op backend exists (it does not yet: the CUDA issue adds it, and
 * until then a GPU machine runs the CPU backend and says so). */
#include "launcher/backend_select.h"

#include <stdio.h>

#include "kernels/cpu/cpu_backend.h"
#ifdef UNIPREFILL_HAVE_CUDA
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

up_backend *up_backend_select(up_backend_choice choice, int threads, int local_rank, char *notice,
                              size_t notice_size, char *err, size_t err_size) {
  (void)local_rank;
  notice[0] = '\0';
  if (choice == UP_BACKEND_CUDA) {
#ifdef UNIPREFILL_HAVE_CUDA
    snprintf(err, err_size, "--backend cuda: the CUDA op backend is not implemented yet (only GPU discovery is); "
             "use --backend cpu");
#else
    snprintf(err, err_size, "--backend cuda: this build has no CUDA support (configure with -DUNIPREFILL_CUDA=ON)");
#endif
    return NULL;
  }
  if (choice == UP_BACKEND_AUTO && up_backend_gpu_present())
    snprintf(notice, notice_size, "a GPU is present but the CUDA op backend is not implemented yet: running on the CPU");
  return up_cpu_backend_create(threads);
}
