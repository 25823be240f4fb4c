/* backend_select.h — turns --backend auto|cpu|cuda into a backend instance for this
 * rank, saying plainly when the requested one cannot be had. */
#ifndef UP_BACKEND_SELECT_H
#define UP_BACKEND_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"
#include "launcher/cli.h"

/* The backend for this rank, or NULL with a message (exit code 2: a choice that cannot
 * be satisfied here). `notice` receives a line worth showing the user ("" when none). */
up_backend *up_backend_select(up_backend_choice choice, int threads, int local_rank, char *notice,
                              size_t notice_size, char *err, size_t err_size);

/* A name for the physical device be runs on, equal for two ranks of one host exactly
 * when they share it: "cuda:<PCI bus id>" for a GPU ("cuda:?" when the id cannot be
 * read, so that ranks are taken to share), "cpu" for the host's processors. */
void up_backend_device_key(const up_backend *be, char *key, size_t key_size);

/* Make `be` run the --attention-kernel choice for KV blocks of kv_block entries; false
 * with the reason in err when it cannot (a non-CUDA backend, a Hopper kernel on another
 * GPU, TMA page copies with a block size that does not divide 128). AUTO always works. */
bool up_backend_set_attention_kernel(up_backend *be, up_attention_kernel kernel, int32_t kv_block, char *err,
                                     size_t err_size);

/* Whether a usable GPU is visible to this process (false without the CUDA build). */
int up_backend_gpu_present(void);

#endif
