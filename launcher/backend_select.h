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

/* Whether a usable GPU is visible to this process (false without the CUDA build). */
int up_backend_gpu_present(void);

#endif
