/* cuda_device.cu — asks the CUDA runtime which GPUs this rank can see and describes
 * them for the run's metadata. Every runtime call is checked; failures are reported
 * with the runtime's own message. */
#include "kernels/cuda/cuda_device.h"

#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int up_cuda_device_count(char *why, size_t why_size) {
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (why_size) why[0] = '\0';
  if (rc == cudaErrorNoDevice || rc == cudaErrorInsufficientDriver) return 0;
  if (rc != cudaSuccess) {
    snprintf(why, why_size, "cudaGetDeviceCount failed: %s", cudaGetErrorString(rc));
    return 0;
  }
  return count;
}

extern "C" int up_cuda_device_describe(int index, char *name, size_t name_size) {
  cudaDeviceProp prop;
  const cudaError_t rc = cudaGetDeviceProperties(&prop, index);
  if (rc != cudaSuccess) {
    snprintf(name, name_size, "cudaGetDeviceProperties(%d) failed: %s", index, cudaGetErrorString(rc));
    return 0;
  }
  /* No comma: run files join the names of all ranks with commas. */
  snprintf(name, name_size, "%s (sm_%d%d; %.1f GiB)", prop.name, prop.major, prop.minor,
           (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
  return 1;
}

extern "C" int up_cuda_current_device_pci_bus_id(char *id, size_t id_size) {
  int device = 0;
  cudaError_t rc = cudaGetDevice(&device);
  if (rc == cudaSuccess) rc = cudaDeviceGetPCIBusId(id, (int)id_size, device);
  if (rc != cudaSuccess) {
    snprintf(id, id_size, "cudaDeviceGetPCIBusId failed: %s", cudaGetErrorString(rc));
    return 0;
  }
  return 1;
}
