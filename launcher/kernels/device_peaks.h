/* device_peaks.h — the one place that knows what a device can do at best: dense bf16
 * tensor throughput and memory bandwidth from the vendor's datasheet, keyed by the
 * device name the backend reports. The --kernels floors are measured against these.
 * A device not in the table is "unknown": NaN peaks, so floors read as missing rather
 * than as made-up numbers (the CPU backend is always unknown). */
#ifndef UP_DEVICE_PEAKS_H
#define UP_DEVICE_PEAKS_H

typedef struct up_device_peaks {
  const char *name;     /* the table's name for the device, or "unknown" */
  double bf16_tflops;   /* dense (no sparsity) bf16 tensor-core peak, TFLOP/s; NaN when unknown */
  double gb_per_s;      /* memory bandwidth, 1e9 bytes/s; NaN when unknown */
} up_device_peaks;

/* The peaks of the device whose reported name is device_name (e.g. "NVIDIA H100 80GB
 * HBM3 (sm_90, 79.1 GiB)"); the "unknown" entry when none matches. */
up_device_peaks up_device_peaks_find(const char *device_name);

#endif
