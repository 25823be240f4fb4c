/* gpu_ops_test.c — every op of the CUDA backend against the CPU reference backend.
 * Both get the same inputs, drawn fresh each run (the seed is printed; UP_GPU_TEST_SEED
 * repeats one) and rounded to bf16 on the host, so only the arithmetic differs. GPU
 * outputs are poisoned with NaN before each call; results are compared by
 * ||out - ref|| / ||ref||, below 2e-2 for bf16 (NaN never passes), exactly for copies
 * and indices. Exits 77 where no GPU is visible. Attention is tested with its op. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/model/model_config.h"
#include "core/rng.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_device.h"
#include "tests/gpu/gpu_check.h"

static const double bf16_tol = 2e-2;

static up_backend *cpu, *gpu;
static uint64_t seed, next_stream;

/* --- host data ------------------------------------------------------------------------ */

/* Round to the nearest bf16, ties to even (what the backend's upload does). */
static float bf16_round(float x) {
  if (isnan(x)) return x;
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  bits &= 0xFFFF0000u;
  memcpy(&x, &bits, sizeof x);
  return x;
}

/* Every buffer a test makes, host or GPU, is owned by the test and freed together by
 * release_buffers() at its end. */
enum { MAX_OWNED = 64 };
static void *host_owned[MAX_OWNED], *gpu_owned[MAX_OWNED];
static int n_host_owned, n_gpu_owned;

static void *own(void **list, int *count, void *p) {
  if (*count == MAX_OWNED) {
    fprintf(stderr, "gpu_ops_test: more than %d buffers in one test\n", MAX_OWNED);
    exit(1);
  }
  list[(*count)++] = p;
  return p;
}

static void release_buffers(void) {
  for (int i = 0; i < n_host_owned; ++i) free(host_owned[i]);
  for (int i = 0; i < n_gpu_owned; ++i) gpu->ops->free(gpu, gpu_owned[i]);
  n_host_owned = n_gpu_owned = 0;
}

static void *xmalloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) {
    fprintf(stderr, "out of host memory (%zu bytes)\n", bytes);
    exit(1);
  }
  return own(host_owned, &n_host_owned, p);
}

static void *gpu_alloc(size_t bytes) { return own(gpu_owned, &n_gpu_owned, gpu->ops->alloc(gpu, bytes, "test buffer")); }

/* n bf16-representable values uniform in [-amplitude, amplitude), a fresh stream each call. */
static float *random_bf16(size_t n, float amplitude) {
  const uint64_t stream = ++next_stream;
  float *x = xmalloc(sizeof(float) * n);
  for (size_t i = 0; i < n; ++i) x[i] = bf16_round(amplitude * up_rng_symmetric(seed, stream, i));
  return x;
}

/* Uniform integers in [0, bound). */
static int32_t *random_indices(size_t n, int32_t bound) {
  const uint64_t stream = ++next_stream;
  int32_t *x = xmalloc(sizeof(int32_t) * n);
  for (size_t i = 0; i < n; ++i) x[i] = (int32_t)(up_rng_unit(seed, stream, i) * bound);
  return x;
}

static float *copy_floats(const float *src, size_t n) {
  float *x = xmalloc(sizeof(float) * n);
  memcpy(x, src, sizeof(float) * n);
  return x;
}

/* ||out - ref|| / ||ref|| (||out - ref|| where ref is all zeros); NaN if out has one. */
static double rel_err(const float *out, const float *ref, size_t n) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (isnan(out[i])) return NAN;
    const double d = (double)out[i] - ref[i];
    diff += d * d;
    norm += (double)ref[i] * ref[i];
  }
  return norm > 0.0 ? sqrt(diff / norm) : sqrt(diff);
}

/* --- GPU buffers ---------------------------------------------------------------------- */

static void *gpu_from(const float *host, size_t n) {
  void *d = gpu_alloc(2 * n);
  gpu->ops->upload_f32(gpu, d, 0, host, n);
  return d;
}

/* n bf16 values all NaN: any element an op fails to write shows up as NaN. */
static void *gpu_poisoned(size_t n) {
  float *nan_host = xmalloc(sizeof(float) * n);
  for (size_t i = 0; i < n; ++i) nan_host[i] = NAN;
  return gpu_from(nan_host, n);
}

static int32_t *gpu_from_i32(const int32_t *host, size_t n) {
  int32_t *d = gpu_alloc(sizeof(int32_t) * n);
  gpu->ops->upload_i32(gpu, d, host, n);
  return d;
}

static float *gpu_read(const void *d, size_t n) {
  float *h = xmalloc(sizeof(float) * n);
  gpu->ops->download_f32(gpu, h, d, 0, n);
  return h;
}

/* Compare GPU buffer d against the CPU's ref. */
static void check_against(const char *op, const char *shape, const void *d, const float *ref, size_t n) {
  CHECK_REL_ERR(rel_err(gpu_read(d, n), ref, n), bf16_tol, "%s %s", op, shape);
}

/* --- transfers ------------------------------------------------------------------------ */

static void test_transfers(void) {
  /* More than two staging chunks, at an offset, so chunking and offsets both count. */
  const size_t n = 10000019, offset = 5;
  float *src = random_bf16(n, 1000.0f);
  void *d = gpu_poisoned(n + offset + 3);
  gpu->ops->upload_f32(gpu, d, offset, src, n);
  float *back = xmalloc(sizeof(float) * n);
  gpu->ops->download_f32(gpu, back, d, offset, n);
  size_t wrong = 0;
  for (size_t i = 0; i < n; ++i) wrong += memcmp(&back[i], &src[i], sizeof(float)) != 0;
  CHECK(wrong == 0, "upload_f32/download_f32 round trip of %zu values at offset %zu: %zu differ", n, offset, wrong);
  /* Host rounding: 1 + 2^-8 is halfway between bf16 neighbours and must go to the even one. */
  const float tricky[4] = {1.00390625f, 1.01171875f, -3.0e38f, 1.0e-40f};
  gpu->ops->upload_f32(gpu, d, 0, tricky, 4);
  gpu->ops->download_f32(gpu, back, d, 0, 4);
  int rounding_ok = 1;
  for (int i = 0; i < 4; ++i) rounding_ok &= back[i] == bf16_round(tricky[i]);
  CHECK(rounding_ok, "upload_f32 rounds to nearest even (%g -> %g, %g -> %g)", tricky[0], back[0], tricky[1],
        back[1]);

  const size_t n_i = 100003;
  int32_t *idx = random_indices(n_i, INT32_MAX);
  int32_t *di = gpu_from_i32(idx, n_i), *idx_back = xmalloc(sizeof(int32_t) * n_i);
  gpu->ops->download_i32(gpu, idx_back, di, n_i);
  CHECK(memcmp(idx, idx_back, sizeof(int32_t) * n_i) == 0, "upload_i32/download_i32 round trip of %zu values", n_i);

  const size_t avail = gpu->ops->memory_available(gpu);
  CHECK(avail > ((size_t)1 << 30), "memory_available reports %.2f GiB free", avail / 1073741824.0);
  release_buffers();
}

/* --- per-token ops -------------------------------------------------------------------- */

/* Device-side weight init draws the host's values: equal after bf16 rounding. */
static void test_fill_uniform(size_t n, size_t offset) {
  float *ref = xmalloc(sizeof(float) * (n + offset));
  cpu->ops->fill_uniform(cpu, ref, offset, n, 0.75f, seed, 12345);
  void *d = gpu_alloc(2 * (n + offset));
  gpu->ops->fill_uniform(gpu, d, offset, n, 0.75f, seed, 12345);
  char shape[64];
  snprintf(shape, sizeof shape, "n=%zu offset=%zu", n, offset);
  const float *got = gpu_read(d, n + offset);
  CHECK_REL_ERR(rel_err(got + offset, ref + offset, n), bf16_tol, "fill_uniform %s", shape);
  release_buffers();
}

static void test_embed(int32_t vocab, int32_t n_tokens, int32_t dim) {
  char shape[96];
  snprintf(shape, sizeof shape, "%d tokens x %d (vocab %d)", n_tokens, dim, vocab);
  float *table = random_bf16((size_t)vocab * dim, 1.0f), *ref = xmalloc(sizeof(float) * (size_t)n_tokens * dim);
  int32_t *tokens = random_indices((size_t)n_tokens, vocab);
  tokens[0] = vocab - 1; /* the last row too */
  cpu->ops->embed(cpu, ref, table, tokens, n_tokens, dim);
  void *d_table = gpu_from(table, (size_t)vocab * dim), *d_out = gpu_poisoned((size_t)n_tokens * dim);
  int32_t *d_tokens = gpu_from_i32(tokens, (size_t)n_tokens);
  gpu->ops->embed(gpu, d_out, d_table, d_tokens, n_tokens, dim);
  check_against("embed", shape, d_out, ref, (size_t)n_tokens * dim);
  release_buffers();
}

/* rmsnorm of res, then add_rmsnorm of x into res (both outputs checked). */
static void test_norms(int32_t rows, int32_t dim) {
  char shape[64];
  snprintf(shape, sizeof shape, "%d x %d", rows, dim);
  const size_t n = (size_t)rows * dim;
  float *res = random_bf16(n, 4.0f), *x = random_bf16(n, 1.0f), *w = random_bf16((size_t)dim, 2.0f);
  float *res_ref = copy_floats(res, n), *ref = xmalloc(sizeof(float) * n);
  void *d_res = gpu_from(res, n), *dx = gpu_from(x, n), *dw = gpu_from(w, (size_t)dim), *d_out = gpu_poisoned(n);
  cpu->ops->rmsnorm(cpu, ref, res_ref, w, rows, dim, 1e-5f);
  gpu->ops->rmsnorm(gpu, d_out, d_res, dw, rows, dim, 1e-5f);
  check_against("rmsnorm", shape, d_out, ref, n);
  d_out = gpu_poisoned(n);
  cpu->ops->add_rmsnorm(cpu, ref, res_ref, x, w, rows, dim, 1e-5f);
  gpu->ops->add_rmsnorm(gpu, d_out, d_res, dx, dw, rows, dim, 1e-5f);
  check_against("add_rmsnorm out", shape, d_out, ref, n);
  check_against("add_rmsnorm residual", shape, d_res, res_ref, n);
  release_buffers();
}

/* a_offset > 0 shifts a by that many elements inside its buffer: a pointer that is not
 * 256-byte (for odd offsets not even 4-byte) aligned, which cuBLASLt must be told. */
static void test_matmul(int32_t m, int32_t n, int32_t k, int32_t a_offset) {
  char shape[96];
  snprintf(shape, sizeof shape, "m=%d n=%d k=%d%s", m, n, k, a_offset ? " (a misaligned)" : "");
  const size_t na = (size_t)m * k, nw = (size_t)n * k, no = (size_t)m * n;
  float *a = random_bf16(na, 1.0f), *w = random_bf16(nw, 1.0f), *ref = xmalloc(sizeof(float) * no);
  cpu->ops->matmul(cpu, ref, a, w, m, n, k);
  float *a_padded = xmalloc(sizeof(float) * (na + (size_t)a_offset));
  for (int32_t i = 0; i < a_offset; ++i) a_padded[i] = 0.0f;
  memcpy(a_padded + a_offset, a, sizeof(float) * na);
  void *da = gpu_from(a_padded, na + (size_t)a_offset), *dw = gpu_from(w, nw), *d_out = gpu_poisoned(no);
  gpu->ops->matmul(gpu, d_out, (uint16_t *)da + a_offset, dw, m, n, k);
  check_against("matmul", shape, d_out, ref, no);
  release_buffers();
}

/* Frequencies: the model's own (llama3-scaled) where the head size matches, else plain
 * theta 10000. Positions first_position + t, so both ends of a 128K context are covered. */
static void test_rope(int32_t n_heads, int32_t n_kv_heads, int32_t head_dim, int32_t n_tokens,
                      int32_t first_position) {
  char shape[128];
  snprintf(shape, sizeof shape, "%d tokens of %d/%d heads x %d at positions %d..%d", n_tokens, n_heads, n_kv_heads,
           head_dim, first_position, first_position + n_tokens - 1);
  const up_attn_shape sh = {.n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = head_dim, .scale = 1.0f};
  const int32_t half = head_dim / 2;
  float *inv_freq = xmalloc(sizeof(float) * (size_t)half);
  const up_model_config *llama = up_model_preset_find("llama-3.1-8b");
  if (llama && llama->head_dim == head_dim)
    up_model_config_rope_inv_freq(llama, inv_freq);
  else
    for (int32_t i = 0; i < half; ++i) inv_freq[i] = (float)pow(10000.0, -2.0 * i / head_dim);
  int32_t *positions = xmalloc(sizeof(int32_t) * (size_t)n_tokens);
  for (int32_t t = 0; t < n_tokens; ++t) positions[t] = first_position + t;
  const size_t n = (size_t)n_tokens * (size_t)(n_heads + 2 * n_kv_heads) * head_dim;
  float *qkv = random_bf16(n, 2.0f), *ref = copy_floats(qkv, n);
  cpu->ops->rope(cpu, ref, positions, inv_freq, n_tokens, &sh);
  void *d_qkv = gpu_from(qkv, n);
  int32_t *d_pos = gpu_from_i32(positions, (size_t)n_tokens);
  /* fp32 frequencies travel as raw bytes, as engine/model/model.c sends them */
  float *d_freq = gpu_alloc(sizeof(float) * (size_t)half);
  gpu->ops->upload_i32(gpu, (int32_t *)d_freq, (const int32_t *)inv_freq, (size_t)half);
  gpu->ops->rope(gpu, d_qkv, d_pos, d_freq, n_tokens, &sh);
  check_against("rope", shape, d_qkv, ref, n);
  release_buffers();
}

static void test_swiglu(int32_t rows, int32_t inter) {
  char shape[64];
  snprintf(shape, sizeof shape, "%d x %d", rows, inter);
  const size_t n_in = (size_t)rows * 2 * inter, n_out = (size_t)rows * inter;
  float *gate_up = random_bf16(n_in, 6.0f), *ref = xmalloc(sizeof(float) * n_out);
  cpu->ops->swiglu(cpu, ref, gate_up, rows, inter);
  void *d_in = gpu_from(gate_up, n_in), *d_out = gpu_poisoned(n_out);
  gpu->ops->swiglu(gpu, d_out, d_in, rows, inter);
  check_against("swiglu", shape, d_out, ref, n_out);
  release_buffers();
}

static void test_gather(int32_t src_rows, int32_t n_rows, int32_t dim) {
  char shape[96];
  snprintf(shape, sizeof shape, "%d of %d rows x %d", n_rows, src_rows, dim);
  float *src = random_bf16((size_t)src_rows * dim, 1.0f), *ref = xmalloc(sizeof(float) * (size_t)n_rows * dim);
  int32_t *rows = random_indices((size_t)n_rows, src_rows);
  cpu->ops->gather_rows(cpu, ref, src, rows, n_rows, dim);
  void *d_src = gpu_from(src, (size_t)src_rows * dim), *d_out = gpu_poisoned((size_t)n_rows * dim);
  int32_t *d_rows = gpu_from_i32(rows, (size_t)n_rows);
  gpu->ops->gather_rows(gpu, d_out, d_src, d_rows, n_rows, dim);
  check_against("gather_rows", shape, d_out, ref, (size_t)n_rows * dim);

  /* gather_i32 with the same indices over src_rows random ints */
  int32_t *vals = random_indices((size_t)src_rows, INT32_MAX), *ref_i = xmalloc(sizeof(int32_t) * (size_t)n_rows);
  int32_t *out_i = xmalloc(sizeof(int32_t) * (size_t)n_rows);
  cpu->ops->gather_i32(cpu, ref_i, vals, rows, n_rows);
  for (int32_t r = 0; r < n_rows; ++r) out_i[r] = -1; /* poison */
  int32_t *d_vals = gpu_from_i32(vals, (size_t)src_rows), *d_out_i = gpu_from_i32(out_i, (size_t)n_rows);
  gpu->ops->gather_i32(gpu, d_out_i, d_vals, d_rows, n_rows);
  gpu->ops->download_i32(gpu, out_i, d_out_i, (size_t)n_rows);
  CHECK(memcmp(out_i, ref_i, sizeof(int32_t) * (size_t)n_rows) == 0, "gather_i32 %d of %d values: exact", n_rows,
        src_rows);
  release_buffers();
}

/* bf16 values in [-1, 1) already tie often at the maximum (resolution 2^-8 near 1);
 * every other row also gets an explicit maximum planted at two or three columns, and
 * row 1 ties the first and the last column. */
static void test_argmax(int32_t rows, int32_t cols) {
  float *x = random_bf16((size_t)rows * cols, 1.0f);
  int32_t *where = random_indices((size_t)rows * 3, cols);
  for (int32_t r = 0; r < rows; r += 2)
    for (int32_t j = 0; j < 2 + (r / 2) % 2; ++j) x[(size_t)r * cols + where[r * 3 + j]] = 4.0f;
  if (rows > 1) x[(size_t)cols] = x[(size_t)2 * cols - 1] = 8.0f;
  int32_t *ref = xmalloc(sizeof(int32_t) * (size_t)rows), *out = xmalloc(sizeof(int32_t) * (size_t)rows);
  cpu->ops->argmax_rows(cpu, ref, x, rows, cols);
  for (int32_t r = 0; r < rows; ++r) out[r] = -1;
  void *dx = gpu_from(x, (size_t)rows * cols);
  gpu->ops->argmax_rows(gpu, out, dx, rows, cols);
  int32_t wrong = 0;
  for (int32_t r = 0; r < rows; ++r) wrong += out[r] != ref[r];
  CHECK(wrong == 0, "argmax_rows %d x %d with ties: %d rows differ (row 0: gpu %d, cpu %d)", rows, cols, wrong,
        out[0], ref[0]);
  release_buffers();
}

/* Two sequences write into a pool whose blocks are a random permutation (a scattered
 * block table): one continues a cache at entry prior0, one starts empty. Both pools
 * start from the same random contents and are compared whole, so a stray write shows. */
static void test_kv_store(int32_t n_heads, int32_t n_kv_heads, int32_t head_dim) {
  char shape[96];
  snprintf(shape, sizeof shape, "%d/%d heads x %d, scattered blocks", n_heads, n_kv_heads, head_dim);
  const up_attn_shape sh = {.n_heads = n_heads, .n_kv_heads = n_kv_heads, .head_dim = head_dim, .scale = 1.0f};
  const int32_t block_tokens = 16, n_blocks = 64, kv_dim = n_kv_heads * head_dim;
  const int32_t rows0 = 37, prior0 = 5, rows1 = 60, n_tokens = rows0 + rows1;
  int32_t *perm = xmalloc(sizeof(int32_t) * n_blocks);
  for (int32_t b = 0; b < n_blocks; ++b) perm[b] = b;
  int32_t *swaps = random_indices((size_t)n_blocks, n_blocks);
  for (int32_t b = n_blocks - 1; b > 0; --b) {
    const int32_t j = swaps[b] % (b + 1), t = perm[b];
    perm[b] = perm[j], perm[j] = t;
  }
  int32_t *slots = xmalloc(sizeof(int32_t) * n_tokens);
  for (int32_t t = 0; t < n_tokens; ++t) {
    const int32_t seq = t >= rows0, e = seq ? t - rows0 : prior0 + t;
    const int32_t *table = perm + seq * 32; /* each sequence owns 32 blocks of the permutation */
    slots[t] = table[e / block_tokens] * block_tokens + e % block_tokens;
  }
  const size_t pool_n = (size_t)n_blocks * block_tokens * kv_dim;
  const size_t qkv_n = (size_t)n_tokens * (n_heads + 2 * n_kv_heads) * head_dim;
  float *k0 = random_bf16(pool_n, 1.0f), *v0 = random_bf16(pool_n, 1.0f), *qkv = random_bf16(qkv_n, 1.0f);
  float *k_ref = copy_floats(k0, pool_n), *v_ref = copy_floats(v0, pool_n);
  up_kv_pool cpu_pool = {.k = k_ref, .v = v_ref, .n_blocks = n_blocks, .block_tokens = block_tokens,
                         .kv_dim = kv_dim};
  cpu->ops->kv_store(cpu, &cpu_pool, qkv, slots, n_tokens, &sh);
  up_kv_pool gpu_pool = cpu_pool;
  gpu_pool.k = gpu_from(k0, pool_n);
  gpu_pool.v = gpu_from(v0, pool_n);
  void *d_qkv = gpu_from(qkv, qkv_n);
  int32_t *d_slots = gpu_from_i32(slots, (size_t)n_tokens);
  gpu->ops->kv_store(gpu, &gpu_pool, d_qkv, d_slots, n_tokens, &sh);
  check_against("kv_store K pool", shape, gpu_pool.k, k_ref, pool_n);
  check_against("kv_store V pool", shape, gpu_pool.v, v_ref, pool_n);
  release_buffers();
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  gpu = gpu_check_cuda_backend();
  cpu = up_cpu_backend_create(0);
  const char *fixed = getenv("UP_GPU_TEST_SEED");
  seed = fixed ? strtoull(fixed, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  printf("# gpu_ops_test on %s, seed %llu (UP_GPU_TEST_SEED=%llu repeats this run)\n", gpu->device_name,
         (unsigned long long)seed, (unsigned long long)seed);

  test_transfers();
  test_fill_uniform(3000001, 0);
  test_fill_uniform(1000, 7);

  /* llama-3.1-8b sizes, then odd ones that take the one-element-per-access paths */
  test_embed(1000, 300, 4096);
  test_embed(77, 13, 1001);
  test_norms(300, 4096);
  test_norms(17, 1001);
  test_swiglu(300, 14336);
  test_swiglu(7, 1003);
  test_gather(500, 300, 4096);
  test_gather(50, 19, 1001);
  test_argmax(9, 128256);
  test_argmax(5, 1001);

  test_rope(32, 8, 128, 64, 0);
  test_rope(32, 8, 128, 64, 131071 - 63);
  test_rope(4, 2, 64, 33, 100000);
  test_rope(3, 1, 6, 11, 131060); /* half = 3: the scalar path */

  test_kv_store(32, 8, 128);
  test_kv_store(3, 1, 6);

  /* Llama-3.1-8B projections: qkv, o, gate_up, down */
  const int32_t nk[4][2] = {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}};
  const int32_t ms[4] = {1, 7, 333, 2048};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) test_matmul(ms[j], nk[i][0], nk[i][1], 0);
  test_matmul(5, 37, 19, 0);
  test_matmul(33, 64, 64, 1);
  test_matmul(64, 128, 256, 8);
  test_matmul(3, 5, 0, 0);

  cpu->ops->destroy(cpu);
  gpu->ops->destroy(gpu);
  return gpu_check_finish();
}
