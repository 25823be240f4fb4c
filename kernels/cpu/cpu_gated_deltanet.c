/* cpu_gated_deltanet.c — the CPU reference of the Gated DeltaNet ops of kernels/ops.h
 * (HYBRIDS.md C.3-C.5): the gates, the chunked delta rule over a packed batch (the
 * WY/UT form of C.4, fp32 throughout), the per-token recurrence that is its oracle, and
 * the gated RMSNorm of the layer's output. The conv is cpu_causal_conv.c's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "kernels/cpu/cpu_deltanet.h"

static float softplus_torch(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

void up_cpu_gdn_gates(up_backend *be, float *g, float *beta, const void *a, const void *b, int32_t ab_stride,
                      const void *a_log, const void *dt_bias, int32_t n_tokens, int32_t n_heads) {
  const float *as = a, *bs = b, *al = a_log, *dt = dt_bias;
  for (int32_t t = 0; t < n_tokens; ++t)
    for (int32_t h = 0; h < n_heads; ++h) {
      const int64_t in = (int64_t)t * ab_stride + h, o = (int64_t)t * n_heads + h;
      g[o] = -expf(al[h]) * softplus_torch(as[in] + dt[h]);
      beta[o] = 1.0f / (1.0f + expf(-bs[in]));
    }
}

static void check_shape(const char *op, const up_gdn_shape *shape) {
  const int32_t hk = shape->n_key_heads, hv = shape->n_value_heads, d = shape->head_dim;
  if (hk < 1 || hv < hk || hv % hk != 0 || d < 1 || shape->qkv_stride < hv * d)
    UP_FATAL("%s: %d key heads, %d value heads of %d, row stride %d", op, (int)hk, (int)hv, (int)d,
             (int)shape->qkv_stride);
}

/* x / sqrt(sum x^2 + eps) * scale into dst (d values). */
static void l2_normalised(float *dst, const float *x, int32_t d, float scale) {
  float ss = 0.0f;
  for (int32_t i = 0; i < d; ++i) ss += x[i] * x[i];
  const float f = scale / sqrtf(ss + UP_GDN_L2_EPS);
  for (int32_t i = 0; i < d; ++i) dst[i] = x[i] * f;
}

/* One sequence's state for value head h: zeros or the slot's. */
static float *head_state(float *state, const up_recurrent_batch *batch, int32_t s, int32_t h, int32_t hv, int32_t d) {
  float *S = state + ((int64_t)batch->state_slots[s] * hv + h) * d * d;
  if (!batch->has_initial_state[s]) memset(S, 0, sizeof(float) * (size_t)d * (size_t)d);
  return S;
}

void up_cpu_gated_deltanet_recurrent(up_backend *be, void *out, const void *q, const void *k, const void *v,
                                     const float *g, const float *beta, float *state,
                                     const up_recurrent_batch *batch, const up_gdn_shape *shape) {
  check_shape("gated_deltanet (recurrent)", shape);
  const int32_t hv = shape->n_value_heads, d = shape->head_dim, group = hv / shape->n_key_heads;
  const int64_t stride = shape->qkv_stride;
  const float *qs = q, *ks = k, *vs = v;
  float *os = out;
  float *qn = up_malloc_or_die(sizeof(float) * 3 * (size_t)d, "deltanet recurrence vectors");
  float *kn = qn + d, *delta = kn + d;
  for (int32_t s = 0; s < batch->n_seqs; ++s)
    for (int32_t h = 0; h < hv; ++h) {
      float *S = head_state(state, batch, s, h, hv, d);
      const int64_t kh = (int64_t)(h / group) * d;
      for (int32_t t = batch->cu_seqlens[s]; t < batch->cu_seqlens[s + 1]; ++t) {
        l2_normalised(qn, qs + t * stride + kh, d, shape->scale);
        l2_normalised(kn, ks + t * stride + kh, d, 1.0f);
        const float decay = expf(g[(int64_t)t * hv + h]), b = beta[(int64_t)t * hv + h];
        const float *vt = vs + t * stride + (int64_t)h * d;
        for (int64_t i = 0; i < (int64_t)d * d; ++i) S[i] *= decay;
        for (int32_t c = 0; c < d; ++c) {
          float u = 0.0f;
          for (int32_t a = 0; a < d; ++a) u += S[(int64_t)a * d + c] * kn[a];
          delta[c] = b * (vt[c] - u);
        }
        for (int32_t a = 0; a < d; ++a)
          for (int32_t c = 0; c < d; ++c) S[(int64_t)a * d + c] += kn[a] * delta[c];
        float *ot = os + ((int64_t)t * hv + h) * d;
        for (int32_t c = 0; c < d; ++c) {
          float acc = 0.0f;
          for (int32_t a = 0; a < d; ++a) acc += S[(int64_t)a * d + c] * qn[a];
          ot[c] = acc;
        }
      }
    }
  free(qn);
}

/* One chunk's workspace: C rows of d for Q, K, U (then V'), W; C x C for A; C gammas, betas. */
typedef struct chunk_work {
  float *qc, *kc, *uc, *wc, *a, *gamma, *beta;
} chunk_work;

/* The chunk of n rows starting at row t0 for value head h, state S (d x d) in and out:
 * HYBRIDS.md C.4 with the triangular solve done by forward substitution. */
static void chunk_step(const chunk_work *cw, float *S, float *ot, int64_t out_stride, int32_t n, int32_t d) {
  float *qc = cw->qc, *kc = cw->kc, *uc = cw->uc, *wc = cw->wc, *A = cw->a, *gm = cw->gamma, *bt = cw->beta;
  /* A_ij = beta_i (k_i . k_j) exp(gamma_i - gamma_j), j < i; then (I + A) U = diag(beta) V
   * and (I + A) W = diag(beta exp(gamma)) K by forward substitution, row by row. */
  for (int32_t i = 0; i < n; ++i) {
    for (int32_t j = 0; j < i; ++j) {
      float dot = 0.0f;
      for (int32_t a = 0; a < d; ++a) dot += kc[(int64_t)i * d + a] * kc[(int64_t)j * d + a];
      A[i * UP_GDN_CHUNK + j] = bt[i] * dot * expf(gm[i] - gm[j]);
    }
    const float wscale = bt[i] * expf(gm[i]);
    for (int32_t c = 0; c < d; ++c) {
      float u = bt[i] * uc[(int64_t)i * d + c], w = wscale * kc[(int64_t)i * d + c];
      for (int32_t j = 0; j < i; ++j) {
        u -= A[i * UP_GDN_CHUNK + j] * uc[(int64_t)j * d + c];
        w -= A[i * UP_GDN_CHUNK + j] * wc[(int64_t)j * d + c];
      }
      uc[(int64_t)i * d + c] = u;
      wc[(int64_t)i * d + c] = w;
    }
  }
  /* V' = U - W S: what the state does not already predict. */
  for (int32_t i = 0; i < n; ++i)
    for (int32_t c = 0; c < d; ++c) {
      float ws = 0.0f;
      for (int32_t a = 0; a < d; ++a) ws += wc[(int64_t)i * d + a] * S[(int64_t)a * d + c];
      uc[(int64_t)i * d + c] -= ws;
    }
  /* O_i = exp(gamma_i) q_i S + sum_{j <= i} (q_i . k_j) exp(gamma_i - gamma_j) V'_j. */
  for (int32_t i = 0; i < n; ++i) {
    float *o = ot + (int64_t)i * out_stride;
    const float qdecay = expf(gm[i]);
    for (int32_t c = 0; c < d; ++c) {
      float acc = 0.0f;
      for (int32_t a = 0; a < d; ++a) acc += qc[(int64_t)i * d + a] * S[(int64_t)a * d + c];
      o[c] = qdecay * acc;
    }
    for (int32_t j = 0; j <= i; ++j) {
      float dot = 0.0f;
      for (int32_t a = 0; a < d; ++a) dot += qc[(int64_t)i * d + a] * kc[(int64_t)j * d + a];
      const float p = dot * expf(gm[i] - gm[j]);
      for (int32_t c = 0; c < d; ++c) o[c] += p * uc[(int64_t)j * d + c];
    }
  }
  /* S = exp(gamma_last) S + sum_j exp(gamma_last - gamma_j) k_j V'_j^T. */
  const float last = gm[n - 1], state_decay = expf(last);
  for (int64_t i = 0; i < (int64_t)d * d; ++i) S[i] *= state_decay;
  for (int32_t j = 0; j < n; ++j) {
    const float f = expf(last - gm[j]);
    for (int32_t a = 0; a < d; ++a) {
      const float ka = f * kc[(int64_t)j * d + a];
      for (int32_t c = 0; c < d; ++c) S[(int64_t)a * d + c] += ka * uc[(int64_t)j * d + c];
    }
  }
}

void up_cpu_gated_deltanet(up_backend *be, void *out, const void *q, const void *k, const void *v, const float *g,
                           const float *beta, float *state, const up_recurrent_batch *batch,
                           const up_gdn_shape *shape) {
  check_shape("gated_deltanet", shape);
  const int32_t hv = shape->n_value_heads, d = shape->head_dim, group = hv / shape->n_key_heads;
  const int64_t stride = shape->qkv_stride, rows = (int64_t)UP_GDN_CHUNK * d;
  const float *qs = q, *ks = k, *vs = v;
  float *os = out;
  float *buf = up_malloc_or_die(sizeof(float) * (size_t)(4 * rows + UP_GDN_CHUNK * (UP_GDN_CHUNK + 2)),
                                "deltanet chunk workspace");
  const chunk_work cw = {buf, buf + rows, buf + 2 * rows, buf + 3 * rows, buf + 4 * rows,
                         buf + 4 * rows + UP_GDN_CHUNK * UP_GDN_CHUNK,
                         buf + 4 * rows + UP_GDN_CHUNK * (UP_GDN_CHUNK + 1)};
  for (int32_t s = 0; s < batch->n_seqs; ++s)
    for (int32_t h = 0; h < hv; ++h) {
      float *S = head_state(state, batch, s, h, hv, d);
      const int64_t kh = (int64_t)(h / group) * d;
      for (int32_t t0 = batch->cu_seqlens[s]; t0 < batch->cu_seqlens[s + 1]; t0 += UP_GDN_CHUNK) {
        const int32_t left = batch->cu_seqlens[s + 1] - t0, n = left < UP_GDN_CHUNK ? left : UP_GDN_CHUNK;
        float cum = 0.0f;
        for (int32_t i = 0; i < n; ++i) {
          const int64_t t = t0 + i;
          l2_normalised(cw.qc + (int64_t)i * d, qs + t * stride + kh, d, shape->scale);
          l2_normalised(cw.kc + (int64_t)i * d, ks + t * stride + kh, d, 1.0f);
          memcpy(cw.uc + (int64_t)i * d, vs + t * stride + (int64_t)h * d, sizeof(float) * (size_t)d);
          cum += g[t * hv + h];
          cw.gamma[i] = cum;
          cw.beta[i] = beta[t * hv + h];
        }
        chunk_step(&cw, S, os + ((int64_t)t0 * hv + h) * d, (int64_t)hv * d, n, d);
      }
    }
  free(buf);
}

void up_cpu_gated_rmsnorm(up_backend *be, void *out, const void *x, const void *z, int32_t z_stride,
                          const void *weight, int32_t n_tokens, int32_t n_heads, int32_t head_dim, float eps) {
  const float *xs = x, *zs = z, *w = weight;
  float *os = out;
  for (int32_t t = 0; t < n_tokens; ++t)
    for (int32_t h = 0; h < n_heads; ++h) {
      const int64_t row = ((int64_t)t * n_heads + h) * head_dim;
      const float *xr = xs + row, *zr = zs + (int64_t)t * z_stride + (int64_t)h * head_dim;
      float ss = 0.0f;
      for (int32_t i = 0; i < head_dim; ++i) ss += xr[i] * xr[i];
      const float inv = 1.0f / sqrtf(ss / (float)head_dim + eps);
      for (int32_t i = 0; i < head_dim; ++i) os[row + i] = xr[i] * inv * w[i] * (zr[i] / (1.0f + expf(-zr[i])));
    }
}
