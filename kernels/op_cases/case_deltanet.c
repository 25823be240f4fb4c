/* case_deltanet.c — drivers of the Gated DeltaNet ops (case_qwen.h): causal_conv1d and
 * gated_deltanet over a packed batch whose sequences may start from stored states
 * (their outputs and the states they leave are both checked), gdn_gates and
 * gated_rmsnorm row by row. States sit in slots in another order than the sequences,
 * with one spare slot that no sequence owns. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fatal.h"
#include "core/rng.h"
#include "kernels/op_cases/case_qwen.h"
#include "kernels/op_cases/op_check.h"
#include "kernels/op_cases/op_expected.h"

#define GDN_CONV_WIDTH 4
#define GDN_NORM_EPS 1e-6f

static float *host_uniform(size_t n, float lo, float hi, uint64_t seed, uint64_t stream, const char *what) {
  float *x = up_malloc_or_die(sizeof(float) * (n ? n : 1), what);
  for (size_t i = 0; i < n; ++i) x[i] = lo + (hi - lo) * (float)up_rng_unit(seed, stream, i);
  return x;
}

/* --- the packed batch both recurrent ops run on ------------------------------------- */

typedef struct recurrent_inputs {
  int32_t n_seqs, n_tokens, n_slots;
  int32_t *cu_host, *slots_host, *initial_host;
  int32_t *cu, *slots, *initial; /* backend */
  up_recurrent_batch batch, batch_host;
  void *x;            /* conv: inputs (strided rows); deltanet: the q|k|v rows */
  void *weight;       /* conv weight */
  void *out;
  float *g, *beta;    /* deltanet gates (backend fp32) */
  float *g_host, *beta_host;
  void *state;        /* conv: activation dtype; deltanet: fp32 */
  size_t state_per_slot;
} recurrent_inputs;

static int32_t rows_of(const up_op_batch_dims *d, int32_t s) { return d->per_sequence ? d->rows[s] : d->rows_each; }
static int32_t prior_of(const up_op_batch_dims *d, int32_t s) {
  return d->per_sequence ? d->prior[s] : d->prior_each;
}

static int64_t batch_tokens(const up_op_batch_dims *d) {
  int64_t n = 0;
  for (int32_t s = 0; s < d->n_seqs; ++s) n += rows_of(d, s);
  return n;
}

static void make_batch(up_backend *be, const up_op_batch_dims *d, recurrent_inputs *in) {
  in->n_seqs = d->n_seqs;
  in->n_slots = d->n_seqs + 1;
  const size_t ns = (size_t)d->n_seqs;
  in->cu_host = up_calloc_or_die(ns + 1, sizeof(int32_t), "recurrent case cu_seqlens");
  in->slots_host = up_calloc_or_die(ns ? ns : 1, sizeof(int32_t), "recurrent case slots");
  in->initial_host = up_calloc_or_die(ns ? ns : 1, sizeof(int32_t), "recurrent case initial flags");
  for (int32_t s = 0; s < d->n_seqs; ++s) {
    in->cu_host[s + 1] = in->cu_host[s] + rows_of(d, s);
    in->slots_host[s] = d->n_seqs - s; /* reversed, slot 0 spare */
    in->initial_host[s] = prior_of(d, s) > 0;
  }
  in->n_tokens = in->cu_host[ns];
  in->cu = up_op_upload_i32(be, in->cu_host, ns + 1, "recurrent case cu_seqlens");
  in->slots = up_op_upload_i32(be, in->slots_host, ns, "recurrent case slots");
  in->initial = up_op_upload_i32(be, in->initial_host, ns, "recurrent case initial flags");
  in->batch = (up_recurrent_batch){in->n_seqs, in->n_tokens, in->cu, in->slots, in->initial};
  in->batch_host = (up_recurrent_batch){in->n_seqs, in->n_tokens, in->cu_host, in->slots_host, in->initial_host};
}

static void recurrent_destroy(up_backend *be, void *inputs) {
  recurrent_inputs *in = inputs;
  void *const buffers[] = {in->cu, in->slots, in->initial, in->x, in->weight, in->out, in->g, in->beta, in->state};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
    if (buffers[i]) be->ops->free(be, buffers[i]);
  free(in->cu_host);
  free(in->slots_host);
  free(in->initial_host);
  free(in->g_host);
  free(in->beta_host);
  free(in);
}

/* --- causal_conv1d -------------------------------------------------------------------- */

static int32_t conv_channels(const up_op_batch_dims *d) {
  return (2 * d->shape.n_kv_heads + d->shape.n_heads) * d->shape.head_dim;
}

/* The conv's input rows carry the z part after the channels, as the projection's do. */
static int32_t conv_stride(const up_op_batch_dims *d) {
  return conv_channels(d) + d->shape.n_heads * d->shape.head_dim;
}

static double conv_work(const up_op_case *c) {
  return (double)batch_tokens(&c->batch) * conv_channels(&c->batch) * GDN_CONV_WIDTH;
}

static void *conv_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  recurrent_inputs *in = up_calloc_or_die(1, sizeof *in, "conv case");
  make_batch(be, &c->batch, in);
  const int32_t ch = conv_channels(&c->batch);
  in->x = up_op_alloc_filled(be, (size_t)in->n_tokens * conv_stride(&c->batch), 2.0f, seed, 1, "conv input");
  in->weight = up_op_alloc_filled(be, (size_t)ch * GDN_CONV_WIDTH, 0.5f, seed, 2, "conv weight");
  in->state_per_slot = (size_t)(GDN_CONV_WIDTH - 1) * ch;
  in->state = up_op_alloc_filled(be, in->n_slots * in->state_per_slot, 2.0f, seed, 3, "conv state");
  in->out = be->ops->alloc(be, ((size_t)in->n_tokens * ch + 1) * up_dtype_size(be->act_dtype), "conv output");
  if (c->poison) up_op_fill_nan(be, in->out, 0, (size_t)in->n_tokens * ch);
  return in;
}

static int64_t conv_run(up_backend *be, const up_op_case *c, void *inputs) {
  recurrent_inputs *in = inputs;
  be->ops->causal_conv1d(be, in->out, in->x, conv_stride(&c->batch), in->weight, in->state, &in->batch,
                         conv_channels(&c->batch), GDN_CONV_WIDTH);
  return 0;
}

/* values[0]: the output; values[1]: every slot's state after the op. */
static void *conv_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  recurrent_inputs *in = inputs;
  const int32_t ch = conv_channels(&c->batch);
  float *x = up_op_download(be, in->x, 0, (size_t)in->n_tokens * conv_stride(&c->batch), "conv input");
  float *w = up_op_download(be, in->weight, 0, (size_t)ch * GDN_CONV_WIDTH, "conv weight");
  up_op_expected *e = up_op_expected_new((size_t)in->n_tokens * ch, in->n_slots * in->state_per_slot, 0);
  be->ops->download_f32(be, e->values[1], in->state, 0, e->n[1]);
  ref->ops->causal_conv1d(ref, e->values[0], x, conv_stride(&c->batch), w, e->values[1], &in->batch_host, ch,
                          GDN_CONV_WIDTH);
  free(x);
  free(w);
  return e;
}

static void conv_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                         up_op_check *check) {
  const up_op_expected *e = reference;
  const recurrent_inputs *in = inputs;
  const double out_err = up_op_error_of(be, in->out, 0, e->values[0], e->n[0]);
  const double state_err = up_op_error_of(be, in->state, 0, e->values[1], e->n[1]);
  check->error = fmax(out_err, state_err);
  snprintf(check->detail, sizeof check->detail, "%d rows x %d channels in %d sequences: out %.3e, state %.3e",
           (int)in->n_tokens, (int)conv_channels(&c->batch), (int)in->n_seqs, out_err, state_err);
}

const up_op_driver up_op_causal_conv1d = {{"causal_conv1d"}, conv_make, conv_run, conv_reference, conv_compare,
                                          up_op_expected_free, recurrent_destroy, conv_work};

/* --- gated_deltanet ----------------------------------------------------------------------- */

static up_gdn_shape gdn_shape(const up_op_batch_dims *d) {
  const int32_t hd = d->shape.head_dim;
  return (up_gdn_shape){d->shape.n_kv_heads, d->shape.n_heads, hd, conv_channels(d), 1.0f / sqrtf((float)hd)};
}

/* Per token and value head: the chunk's products (A, P: 64 x d each), U and W (64 x d),
 * V' and the query read-out (2 d^2) and the state update (d^2). */
static double gdn_work(const up_op_case *c) {
  const double d = c->batch.shape.head_dim;
  return (double)batch_tokens(&c->batch) * c->batch.shape.n_heads * (4.0 * 64.0 * d + 3.0 * d * d);
}

/* Decays exp(g) from about 0.37 to 0.95 (the model's gates sit there), beta in (0.1, 0.9). */
static void *gdn_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  recurrent_inputs *in = up_calloc_or_die(1, sizeof *in, "deltanet case");
  make_batch(be, &c->batch, in);
  const up_gdn_shape sh = gdn_shape(&c->batch);
  const size_t gates = (size_t)in->n_tokens * sh.n_value_heads;
  in->x = up_op_alloc_filled(be, (size_t)in->n_tokens * sh.qkv_stride, 1.0f, seed, 1, "deltanet q|k|v");
  in->g_host = host_uniform(gates, -1.0f, -0.05f, seed, 2, "deltanet g");
  in->beta_host = host_uniform(gates, 0.1f, 0.9f, seed, 3, "deltanet beta");
  in->g = up_op_upload_f32_bits(be, in->g_host, gates, "deltanet g");
  in->beta = up_op_upload_f32_bits(be, in->beta_host, gates, "deltanet beta");
  in->state_per_slot = (size_t)sh.n_value_heads * sh.head_dim * sh.head_dim;
  float *state = host_uniform(in->n_slots * in->state_per_slot, -0.5f, 0.5f, seed, 4, "deltanet state");
  in->state = up_op_upload_f32_bits(be, state, in->n_slots * in->state_per_slot, "deltanet state");
  free(state);
  const size_t out_n = (size_t)in->n_tokens * sh.n_value_heads * sh.head_dim;
  in->out = be->ops->alloc(be, (out_n + 1) * up_dtype_size(be->act_dtype), "deltanet output");
  if (c->poison) up_op_fill_nan(be, in->out, 0, out_n);
  return in;
}

static void gdn_pointers(up_backend *be, const up_gdn_shape *sh, const void *x, const void **q, const void **k,
                         const void **v) {
  const size_t e = up_dtype_size(be->act_dtype), kd = (size_t)sh->n_key_heads * sh->head_dim;
  *q = x;
  *k = (const char *)x + e * kd;
  *v = (const char *)x + 2 * e * kd;
}

static int64_t gdn_run(up_backend *be, const up_op_case *c, void *inputs) {
  recurrent_inputs *in = inputs;
  const up_gdn_shape sh = gdn_shape(&c->batch);
  const void *q, *k, *v;
  gdn_pointers(be, &sh, in->x, &q, &k, &v);
  be->ops->gated_deltanet(be, in->out, q, k, v, in->g, in->beta, in->state, &in->batch, &sh);
  return 0;
}

/* The rows the reference computes: each sequence's first `sample` rows (all when sample
 * is 0 or the sequence is shorter). Outputs of a causal recurrence depend only on the
 * rows before them, so a prefix checks the op on the timed inputs without the CPU
 * running a whole long prompt; the states left after a cut sequence are not compared. */
static int32_t prefix_rows(const up_op_case *c, const recurrent_inputs *in, int32_t s) {
  const int32_t n = in->cu_host[s + 1] - in->cu_host[s];
  return c->sample > 0 && c->sample < n ? c->sample : n;
}

static bool prefix_cuts(const up_op_case *c, const recurrent_inputs *in) {
  for (int32_t s = 0; s < in->n_seqs; ++s)
    if (prefix_rows(c, in, s) < in->cu_host[s + 1] - in->cu_host[s]) return true;
  return false;
}

/* values[0]: the output of each sequence's prefix rows, packed; values[1]: every slot's
 * state after the op (meaningful when no sequence was cut). */
static void *gdn_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  recurrent_inputs *in = inputs;
  const up_gdn_shape sh = gdn_shape(&c->batch);
  const size_t stride = (size_t)sh.qkv_stride, width = (size_t)sh.n_value_heads * sh.head_dim;
  int32_t *cu = up_calloc_or_die((size_t)in->n_seqs + 1, sizeof(int32_t), "deltanet prefix offsets");
  for (int32_t s = 0; s < in->n_seqs; ++s) cu[s + 1] = cu[s] + prefix_rows(c, in, s);
  float *x = up_malloc_or_die(sizeof(float) * ((size_t)cu[in->n_seqs] * stride + 1), "deltanet q|k|v");
  for (int32_t s = 0; s < in->n_seqs; ++s)
    be->ops->download_f32(be, x + (size_t)cu[s] * stride, in->x, (size_t)in->cu_host[s] * stride,
                          (size_t)(cu[s + 1] - cu[s]) * stride);
  up_op_expected *e = up_op_expected_new((size_t)cu[in->n_seqs] * width, in->n_slots * in->state_per_slot, 0);
  float *state = up_op_download_f32_bits(be, in->state, e->n[1], "deltanet state");
  memcpy(e->values[1], state, sizeof(float) * e->n[1]);
  free(state);
  const up_recurrent_batch prefix = {in->n_seqs, cu[in->n_seqs], cu, in->slots_host, in->initial_host};
  const void *q, *k, *v;
  gdn_pointers(ref, &sh, x, &q, &k, &v);
  ref->ops->gated_deltanet(ref, e->values[0], q, k, v, in->g_host, in->beta_host, e->values[1], &prefix, &sh);
  free(x);
  free(cu);
  return e;
}

static void gdn_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                        up_op_check *check) {
  const up_op_expected *e = reference;
  const recurrent_inputs *in = inputs;
  const size_t width = (size_t)c->batch.shape.n_heads * c->batch.shape.head_dim;
  float *out = up_malloc_or_die(sizeof(float) * (e->n[0] + 1), "deltanet output prefix");
  for (int32_t s = 0, packed = 0; s < in->n_seqs; packed += prefix_rows(c, in, s), ++s)
    be->ops->download_f32(be, out + (size_t)packed * width, in->out, (size_t)in->cu_host[s] * width,
                          (size_t)prefix_rows(c, in, s) * width);
  const double out_err = up_op_normalised_error(out, e->values[0], e->n[0]);
  free(out);
  const bool cut = prefix_cuts(c, in);
  double state_err = 0.0;
  if (!cut) {
    float *state = up_op_download_f32_bits(be, in->state, e->n[1], "deltanet state");
    state_err = up_op_normalised_error(state, e->values[1], e->n[1]);
    free(state);
  }
  check->error = fmax(out_err, state_err);
  char state_text[48];
  if (cut) snprintf(state_text, sizeof state_text, "first %d rows, states not compared", (int)c->sample);
  else snprintf(state_text, sizeof state_text, "state %.3e", state_err);
  snprintf(check->detail, sizeof check->detail, "%d rows, %d/%d heads x %d, %d sequences: out %.3e, %s",
           (int)in->n_tokens, (int)c->batch.shape.n_kv_heads, (int)c->batch.shape.n_heads,
           (int)c->batch.shape.head_dim, (int)in->n_seqs, out_err, state_text);
}

const up_op_driver up_op_gated_deltanet = {{"gated_deltanet"}, gdn_make, gdn_run, gdn_reference, gdn_compare,
                                           up_op_expected_free, recurrent_destroy, gdn_work};

/* --- gdn_gates and gated_rmsnorm: rows ----------------------------------------------- */

typedef struct row_inputs {
  void *x, *z, *weight, *a_log, *dt_bias, *out;
  float *g, *beta;
} row_inputs;

static void row_destroy(up_backend *be, void *inputs) {
  row_inputs *in = inputs;
  void *const buffers[] = {in->x, in->z, in->weight, in->a_log, in->dt_bias, in->out, in->g, in->beta};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
    if (buffers[i]) be->ops->free(be, buffers[i]);
  free(in);
}

static size_t rows_n(const up_op_case *c) { return (size_t)c->rows.rows * (size_t)c->rows.dim; }

static double gates_work(const up_op_case *c) { return 4.0 * (double)rows_n(c); }

/* a and b side by side in rows of 2 * heads (the in_proj_ba output, regrouped). */
static void *gates_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  row_inputs *in = up_calloc_or_die(1, sizeof *in, "gates case");
  in->x = up_op_alloc_filled(be, 2 * rows_n(c), 8.0f, seed, 1, "gates a|b");
  in->a_log = up_op_alloc_filled(be, (size_t)c->rows.dim, 2.0f, seed, 2, "gates A_log");
  in->dt_bias = up_op_alloc_filled(be, (size_t)c->rows.dim, 2.0f, seed, 3, "gates dt_bias");
  /* Outputs start as NaN (fp32 here, so not up_op_fill_nan): a value never written shows. */
  float *nan = up_malloc_or_die(sizeof(float) * (rows_n(c) + 1), "gates poison");
  for (size_t i = 0; i < rows_n(c); ++i) nan[i] = NAN;
  in->g = up_op_upload_f32_bits(be, nan, rows_n(c), "gates g");
  in->beta = up_op_upload_f32_bits(be, nan, rows_n(c), "gates beta");
  free(nan);
  return in;
}

static const void *gates_b(up_backend *be, const up_op_case *c, const void *ab) {
  return (const char *)ab + up_dtype_size(be->act_dtype) * (size_t)c->rows.dim;
}

static int64_t gates_run(up_backend *be, const up_op_case *c, void *inputs) {
  row_inputs *in = inputs;
  be->ops->gdn_gates(be, in->g, in->beta, in->x, gates_b(be, c, in->x), 2 * c->rows.dim, in->a_log, in->dt_bias,
                     c->rows.rows, c->rows.dim);
  return 0;
}

static void *gates_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  row_inputs *in = inputs;
  float *ab = up_op_download(be, in->x, 0, 2 * rows_n(c), "gates a|b");
  float *a_log = up_op_download(be, in->a_log, 0, (size_t)c->rows.dim, "gates A_log");
  float *dt = up_op_download(be, in->dt_bias, 0, (size_t)c->rows.dim, "gates dt_bias");
  up_op_expected *e = up_op_expected_new(rows_n(c), rows_n(c), 0);
  ref->ops->gdn_gates(ref, e->values[0], e->values[1], ab, gates_b(ref, c, ab), 2 * c->rows.dim, a_log, dt,
                      c->rows.rows, c->rows.dim);
  free(ab);
  free(a_log);
  free(dt);
  return e;
}

static void gates_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                          up_op_check *check) {
  const up_op_expected *e = reference;
  const row_inputs *in = inputs;
  float *g = up_op_download_f32_bits(be, in->g, e->n[0], "gates g");
  float *beta = up_op_download_f32_bits(be, in->beta, e->n[1], "gates beta");
  const double g_err = up_op_normalised_error(g, e->values[0], e->n[0]);
  const double beta_err = up_op_normalised_error(beta, e->values[1], e->n[1]);
  free(g);
  free(beta);
  check->error = fmax(g_err, beta_err);
  snprintf(check->detail, sizeof check->detail, "%d tokens x %d heads: g %.3e, beta %.3e", (int)c->rows.rows,
           (int)c->rows.dim, g_err, beta_err);
}

const up_op_driver up_op_gdn_gates = {{"gdn_gates"}, gates_make, gates_run, gates_reference, gates_compare,
                                      up_op_expected_free, row_destroy, gates_work};

/* rows tokens of src_rows heads of dim; z rows carry other values between them. */
static size_t norm_values(const up_op_case *c) { return rows_n(c) * (size_t)c->rows.src_rows; }
static int32_t norm_z_stride(const up_op_case *c) { return 3 * c->rows.src_rows * c->rows.dim; }

static double gated_norm_work(const up_op_case *c) { return 4.0 * (double)norm_values(c); }

static void *gated_norm_make(up_backend *be, const up_op_case *c, uint64_t seed) {
  row_inputs *in = up_calloc_or_die(1, sizeof *in, "gated norm case");
  in->x = up_op_alloc_filled(be, norm_values(c), 3.0f, seed, 1, "gated norm input");
  in->z = up_op_alloc_filled(be, (size_t)c->rows.rows * norm_z_stride(c), 4.0f, seed, 2, "gated norm z");
  in->weight = up_op_alloc_filled(be, (size_t)c->rows.dim, 2.0f, seed, 3, "gated norm weight");
  in->out = be->ops->alloc(be, (norm_values(c) + 1) * up_dtype_size(be->act_dtype), "gated norm output");
  if (c->poison) up_op_fill_nan(be, in->out, 0, norm_values(c));
  return in;
}

static int64_t gated_norm_run(up_backend *be, const up_op_case *c, void *inputs) {
  row_inputs *in = inputs;
  be->ops->gated_rmsnorm(be, in->out, in->x, in->z, norm_z_stride(c), in->weight, c->rows.rows, c->rows.src_rows,
                         c->rows.dim, GDN_NORM_EPS);
  return 0;
}

static void *gated_norm_reference(up_backend *be, const up_op_case *c, void *inputs, up_backend *ref) {
  row_inputs *in = inputs;
  float *x = up_op_download(be, in->x, 0, norm_values(c), "gated norm input");
  float *z = up_op_download(be, in->z, 0, (size_t)c->rows.rows * norm_z_stride(c), "gated norm z");
  float *w = up_op_download(be, in->weight, 0, (size_t)c->rows.dim, "gated norm weight");
  up_op_expected *e = up_op_expected_new(norm_values(c), 0, 0);
  ref->ops->gated_rmsnorm(ref, e->values[0], x, z, norm_z_stride(c), w, c->rows.rows, c->rows.src_rows, c->rows.dim,
                          GDN_NORM_EPS);
  free(x);
  free(z);
  free(w);
  return e;
}

static void gated_norm_compare(up_backend *be, const up_op_case *c, void *inputs, const void *reference,
                               up_op_check *check) {
  const up_op_expected *e = reference;
  check->error = up_op_error_of(be, ((row_inputs *)inputs)->out, 0, e->values[0], e->n[0]);
  snprintf(check->detail, sizeof check->detail, "%d tokens x %d heads x %d", (int)c->rows.rows,
           (int)c->rows.src_rows, (int)c->rows.dim);
}

const up_op_driver up_op_gated_rmsnorm = {{"gated_rmsnorm"}, gated_norm_make, gated_norm_run, gated_norm_reference,
                                          gated_norm_compare, up_op_expected_free, row_destroy, gated_norm_work};
