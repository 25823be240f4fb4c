/* cpu_deltanet.h — private to kernels/cpu (and the tests that check it): the CPU
 * reference of the Gated DeltaNet ops of kernels/ops.h (causal conv, gates, the chunked
 * delta rule, the gated RMSNorm), plus the per-token recurrence the chunked form must
 * equal, which no backend table holds: it is the tests' oracle. */
#ifndef UP_CPU_DELTANET_H
#define UP_CPU_DELTANET_H

#include "kernels/ops.h"

/* The DeltaNet chunk length (HYBRIDS.md C.4): chunks restart at every sequence start. */
#define UP_GDN_CHUNK 64
/* The eps inside the root of the q/k l2 norm (use_qk_l2norm_in_kernel). */
#define UP_GDN_L2_EPS 1e-6f

/* cpu_causal_conv.c */
void up_cpu_causal_conv1d(up_backend *be, void *out, const void *x, int32_t x_stride, const void *weight,
                          void *conv_state, const up_recurrent_batch *batch, int32_t channels, int32_t width);

/* cpu_gated_deltanet.c */
void up_cpu_gdn_gates(up_backend *be, float *g, float *beta, const void *a, const void *b, int32_t ab_stride,
                      const void *a_log, const void *dt_bias, int32_t n_tokens, int32_t n_heads);
void up_cpu_gated_deltanet(up_backend *be, void *out, const void *q, const void *k, const void *v, const float *g,
                           const float *beta, float *state, const up_recurrent_batch *batch,
                           const up_gdn_shape *shape);
/* The same contract, one token at a time (HYBRIDS.md C.3 step 5): the oracle. */
void up_cpu_gated_deltanet_recurrent(up_backend *be, void *out, const void *q, const void *k, const void *v,
                                     const float *g, const float *beta, float *state,
                                     const up_recurrent_batch *batch, const up_gdn_shape *shape);
void up_cpu_gated_rmsnorm(up_backend *be, void *out, const void *x, const void *z, int32_t z_stride,
                          const void *weight, int32_t n_tokens, int32_t n_heads, int32_t head_dim, float eps);

#endif
