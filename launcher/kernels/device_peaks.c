/* device_peaks.c — datasheet peaks per device (see device_peaks.h). Dense bf16 is half
 * the datasheet's "with sparsity" figure. Entries are matched in order by a substring
 * of the reported name, so the more specific names (NVL, PCIe) come before the SXM
 * parts whose names carry no form factor. docs/kernels/ also quotes rates measured on
 * one H100 SXM (about 790 TFLOP/s for cuBLAS, 3.0 TB/s copy); the floors here use the
 * datasheet so that every device is held to the same kind of number. */
#include "launcher/kernels/device_peaks.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

typedef struct up_device_entry {
  const char *match; /* substring of the reported device name */
  up_device_peaks peaks;
} up_device_entry;

static const up_device_entry up_devices[] = {
    {"H100 NVL", {"H100 NVL", 835.5, 3900.0}},
    {"H100 PCIe", {"H100 PCIe", 756.5, 2000.0}},
    {"H100", {"H100 SXM", 989.5, 3350.0}}, /* "NVIDIA H100 80GB HBM3" */
    {"H200 NVL", {"H200 NVL", 835.5, 4800.0}},
    {"H200", {"H200 SXM", 989.5, 4800.0}},
};

up_device_peaks up_device_peaks_find(const char *device_name) {
  for (size_t i = 0; device_name && i < sizeof up_devices / sizeof up_devices[0]; ++i)
    if (strstr(device_name, up_devices[i].match)) return up_devices[i].peaks;
  return (up_device_peaks){"unknown", NAN, NAN};
}
