/* backend_select.h — turns --backend auto|cpu|cuda into a backend instance for this
 * rank, saying plainly when the requested one cannot be had. */
#ifndef UP_BACKEND_SELECT_H
#define UP_BACKEND_SELECT_H

#include <stddef.h>

#include "kernels/ops.h"
#include "launcher/cli.h"

/* The backend for this rank, or NULL with a message (exit code 2: a choice that cannot
 * be satisfied here). `notice` receives a line worth showing the user ("" when none). */
up_backend *up_backend_select(up_backend_choice choice, int threads, int local_rank, char *notice,
                              size_t notice_size, char *err, size_t err_size);

/* Devices of be's kind this process can use (1 for the CPU): on one host, the rank of
 * local rank r runs on device r % this count, so ranks from this count on share a
 * device with a lower local rank. */
int up_backend_device_count(const up_backend *be);

/* Whether a usable GPU is visible to this process (false without the CUDA build). */
int up_backend_gpu_present(void);

#endif
