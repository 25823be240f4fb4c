/* op_case_list.h — the correctness list: every op of the backend interface at the
 * Llama-3.1-8B sizes (taken from its preset and the layer GEMM shapes of
 * kernel_cases.h, never written out again) and at odd sizes that take the kernels'
 * one-element paths, with the GPU tests' tolerances. tests/gpu runs it on the CUDA
 * backend against the CPU; test_op_cases runs its cheap cases CPU against CPU and checks
 * that every op has a case.
 *
 * It sits in launcher/kernels/ beside the --kernels case list rather than in
 * kernels/op_cases/ with the drivers because its shapes come from the model presets
 * (engine/), which kernels/ may not include; both the GPU tests and the binary link it
 * through up_launcher. */
#ifndef UP_OP_CASE_LIST_H
#define UP_OP_CASE_LIST_H

#include <stdint.h>

#include "kernels/op_cases/op_case.h"

/* The cases (malloc'd into *cases; the caller frees it); returns how many. */
int32_t up_op_case_list(up_op_case **cases);

#endif
