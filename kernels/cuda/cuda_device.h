/* cuda_device.h — GPU discovery for the launcher (C-callable). The CUDA op backend
 * joins this folder behind the same kernels/ops.h interface as the CPU one. */
#ifndef UP_CUDA_DEVICE_H
#define UP_CUDA_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices; 0 when there is no driver or no device. When the
 * runtime reports something other than "no device", its message goes to why. */
int up_cuda_device_count(char *why, size_t why_size);

/* "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" for device `index`; false on error (message in name). */
int up_cuda_device_describe(int index, char *name, size_t name_size);

/* The PCI bus id ("0000:3B:00.0") of the calling thread's current device, which a
 * backend makes current when it is created: two processes of one host share a GPU
 * exactly when these are equal, whatever CUDA_VISIBLE_DEVICES each one sees. False on
 * error (message in id). */
int up_cuda_current_device_pci_bus_id(char *id, size_t id_size);

#ifdef __cplusplus
}
#endif

#endif
