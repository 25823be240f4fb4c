/* checkpoint_logits.c — loads a checkpoint through the engine (engine/checkpoint/checkpoint.h) on
 * a chosen backend, prefills one prompt given as token ids and writes the last
 * position's logits as raw little-endian float32, for comparison with an independent
 * recomputation (tests/reference/llama_gguf_reference.py). Also prints the greedy
 * continuation's ids, so a run shows whether a real model answers coherently.
 * `checkpoint_logits compare A.f32 B.f32 MAX_REL_ERR` compares two such dumps (for
 * machines without numpy, where the CPU engine, itself checked against numpy, is the
 * reference of the GPU one). Exit 77 when the backend or the model file is absent
 * (CTest's skip code). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/checkpoint/checkpoint.h"
#include "engine/serve/generation.h"
#include "engine/methods/method.h"
#include "engine/model/model.h"
#include "launcher/backend_select.h"
#include "tests/tools/tool_backend.h"

static int usage(void) {
  fprintf(stderr, "usage: checkpoint_logits cpu|cuda MODEL TOKENS(comma list) OUT.f32 [GREEDY_TOKENS]\n"
                  "       checkpoint_logits compare TEST.f32 REFERENCE.f32 MAX_REL_ERR\n");
  return 2;
}

/* A whole float32 dump; NULL (message printed) when unreadable. */
static float *read_dump(const char *path, long *n) {
  FILE *f = fopen(path, "rb");
  float *data = NULL;
  if (f && fseek(f, 0, SEEK_END) == 0 && (*n = ftell(f) / (long)sizeof(float)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (data = malloc(sizeof(float) * (size_t)*n)) && fread(data, sizeof(float), (size_t)*n, f) != (size_t)*n) {
    free(data);
    data = NULL;
  }
  if (f) fclose(f);
  if (!data) fprintf(stderr, "checkpoint_logits: cannot read %s\n", path);
  return data;
}

/* ||a - b|| / ||b|| and the same argmax, as tests/reference/compare_logits.py judges. */
static int compare_dumps(const char *test_path, const char *ref_path, double max_rel_err) {
  long n = 0, m = 0;
  float *a = read_dump(test_path, &n), *b = read_dump(ref_path, &m);
  if (!a || !b || n != m) {
    if (a && b) fprintf(stderr, "checkpoint_logits: %ld logits against %ld\n", n, m);
    free(a);
    free(b);
    return 2;
  }
  double diff = 0.0, norm = 0.0;
  long arg_a = 0, arg_b = 0;
  int finite = 1;
  for (long i = 0; i < n; ++i) {
    finite &= isfinite(a[i]) && isfinite(b[i]);
    diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    norm += (double)b[i] * b[i];
    if (a[i] > a[arg_a]) arg_a = i;
    if (b[i] > b[arg_b]) arg_b = i;
  }
  const double rel = sqrt(diff / norm);
  printf("normalised error ||a-b||/||b|| = %.3e (tolerance %.3e); argmax %ld vs %ld\n", rel, max_rel_err, arg_a, arg_b);
  free(a);
  free(b);
  return finite && rel <= max_rel_err && arg_a == arg_b ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "compare") == 0) return compare_dumps(argv[2], argv[3], atof(argv[4]));
  if (argc < 5) return usage();
  const char *backend_name = argv[1], *model_path = argv[2], *out_path = argv[4];
  const int32_t n_greedy = argc > 5 ? atoi(argv[5]) : 1;
  struct stat st;
  if (stat(model_path, &st) != 0) {
    printf("SKIP: %s is absent (scripts/fetch-smollm2.sh fetches the real model)\n", model_path);
    return 77;
  }
  int32_t tokens[4096], n = 0;
  for (char *p = argv[3]; *p && n < 4096;) {
    char *end;
    tokens[n++] = (int32_t)strtol(p, &end, 10);
    if (end == p) return usage();
    p = *end == ',' ? end + 1 : end;
  }
  char err[1024] = "";
  up_backend *be = tool_backend_or_skip(backend_name);
  if (!be) return 77;
  up_checkpoint *ck = up_checkpoint_open(model_path, err, sizeof err);
  if (!ck) {
    fprintf(stderr, "checkpoint_logits: %s\n", err);
    return 1;
  }
  up_model *model = up_model_create_from_checkpoint(ck, be, err, sizeof err);
  if (!model) {
    fprintf(stderr, "checkpoint_logits: %s\n", err);
    return 1;
  }
  const int32_t max_new = n_greedy > 0 ? n_greedy : 1;
  up_generator *gen = up_generator_create(model, 1, n, max_new, err, sizeof err);
  if (!gen) {
    fprintf(stderr, "checkpoint_logits: %s\n", err);
    return 1;
  }
  up_method_spec spec;
  up_method_spec_reference(&spec);
  up_method dense;
  char method_err[256];
  if (!up_method_init(&dense, &spec, be, method_err, sizeof method_err)) {
    fprintf(stderr, "checkpoint_logits: %s\n", method_err);
    return 1;
  }
  const int32_t *prompts[1] = {tokens};
  up_generation g;
  up_generator_run(gen, &dense, prompts, &n, 1, max_new, NULL, 0, &g);
  FILE *f = fopen(out_path, "wb");
  const int32_t vocab = up_checkpoint_config(ck)->vocab;
  if (!f || fwrite(g.first_logits, sizeof(float), (size_t)vocab, f) != (size_t)vocab || fclose(f) != 0) {
    fprintf(stderr, "checkpoint_logits: cannot write %s\n", out_path);
    return 1;
  }
  printf("greedy:");
  for (int32_t i = 0; i < g.n_tokens; ++i) printf("%s%d", i ? "," : " ", (int)g.tokens[i]);
  printf("\n");
  up_generation_free(&g);
  up_generator_destroy(gen);
  up_model_destroy(model);
  up_checkpoint_close(ck);
  be->ops->destroy(be);
  return 0;
}
