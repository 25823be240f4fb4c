/* gemma3_fixture_check.c — the engine on the real Gemma 3 270M checkpoint against the
 * committed fixture tests/data/gemma3_270m/reference.txt, which an independent float64
 * numpy forward (tests/reference/gemma3_gguf_reference.py) wrote once from the same GGUF
 * weights. Per prompt the fixture pins the token ids, the reference's top-K logits with
 * their ids, the full-vocabulary logsumexp and logit RMS, and its greedy continuation.
 * This tool only reads the fixture and runs the engine; it never writes the fixture.
 *
 *   gemma3_fixture_check tokenize MODEL TEXT_FILE
 *       prints the engine tokenizer's ids (BOS first) of a text file, the ids the fixture
 *       script is given;
 *   gemma3_fixture_check probe cpu|cuda
 *       exit 0 when the backend can run here, 77 when not (callers skip their own
 *       preparation on machines without it);
 *   gemma3_fixture_check check cpu|cuda MODEL FIXTURE MAX_ERR MIN_GREEDY_MATCH [UNJUDGED]
 *       per prompt: the largest |engine - reference| over the top-K ids and the logsumexp
 *       difference, both divided by the reference's logit RMS (the logit scale), must stay
 *       within MAX_ERR, the top-1 id must agree, and the engine's greedy continuation must
 *       equal the reference's on at least its first MIN_GREEDY_MATCH tokens. UNJUDGED, a
 *       comma list of prompt names, are run and reported but cannot fail the check: the
 *       caller names prompts whose answer no engine at this precision can be held to
 *       (tests/qwen3_next_fixture_check.sh: a routing decision within bf16's reach).
 * Exit 77 (CTest's skip) when the model file or the backend is absent, 2 on bad usage or
 * an unreadable fixture, 1 when a check fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/checkpoint/checkpoint.h"
#include "engine/methods/method.h"
#include "engine/model/model.h"
#include "engine/serve/generation.h"
#include "engine/tokenizer/tokenizer.h"
#include "launcher/backend_select.h"
#include "tests/tools/tool_backend.h"

enum { MAX_IDS = 4096, MAX_TOP = 64, MAX_GREEDY = 64 };

typedef struct fixture_prompt {
  char name[64];
  int32_t ids[MAX_IDS], n_ids;
  int32_t top_ids[MAX_TOP], n_top;
  double top_logits[MAX_TOP];
  double logsumexp, logit_rms;
  int32_t greedy[MAX_GREEDY], n_greedy;
} fixture_prompt;

static int usage(void) {
  fprintf(stderr, "usage: gemma3_fixture_check tokenize MODEL TEXT_FILE\n"
                  "       gemma3_fixture_check probe cpu|cuda\n"
                  "       gemma3_fixture_check check cpu|cuda MODEL FIXTURE MAX_ERR MIN_GREEDY_MATCH [UNJUDGED]\n");
  return 2;
}

/* A comma list of ids into out; the count, or -1 when malformed or longer than cap. */
static int32_t parse_ids(const char *text, int32_t *out, int32_t cap) {
  int32_t n = 0;
  for (const char *p = text; *p && *p != '\n';) {
    char *end;
    const long v = strtol(p, &end, 10);
    if (end == p || n >= cap) return -1;
    out[n++] = (int32_t)v;
    p = *end == ',' ? end + 1 : end;
  }
  return n;
}

/* Reads the next "prompt ... end" block; 1 read, 0 at the end of the file, -1 malformed
 * (message printed). */
static int read_prompt(FILE *f, const char *path, fixture_prompt *fp) {
  char *line = NULL;
  size_t cap = 0;
  int state = 0; /* 0: before "prompt", 1: inside, 2: done */
  memset(fp, 0, sizeof *fp);
  fp->n_ids = fp->n_greedy = -1;
  while (state != 2 && getline(&line, &cap, f) > 0) {
    if (line[0] == '#' || line[0] == '\n') continue;
    char key[32];
    int used = 0;
    if (sscanf(line, "%31s %n", key, &used) != 1) continue;
    const char *rest = line + used;
    if (state == 0 && strcmp(key, "prompt") == 0 && sscanf(rest, "%63s", fp->name) == 1) state = 1;
    else if (state == 1 && strcmp(key, "ids") == 0) fp->n_ids = parse_ids(rest, fp->ids, MAX_IDS);
    else if (state == 1 && strcmp(key, "greedy") == 0) fp->n_greedy = parse_ids(rest, fp->greedy, MAX_GREEDY);
    else if (state == 1 && strcmp(key, "logsumexp") == 0) fp->logsumexp = strtod(rest, NULL);
    else if (state == 1 && strcmp(key, "logit_rms") == 0) fp->logit_rms = strtod(rest, NULL);
    else if (state == 1 && strcmp(key, "top") == 0) {
      for (const char *p = rest; fp->n_top < MAX_TOP;) {
        int id, n = 0;
        double v;
        if (sscanf(p, " %d:%lf%n", &id, &v, &n) != 2) break;
        fp->top_ids[fp->n_top] = id;
        fp->top_logits[fp->n_top++] = v;
        p += n;
      }
    } else if (state == 1 && strcmp(key, "end") == 0) state = 2;
    else {
      fprintf(stderr, "gemma3_fixture_check: %s: unexpected line \"%s\"\n", path, key);
      free(line);
      return -1;
    }
  }
  free(line);
  if (state == 0) return 0;
  if (state != 2 || fp->n_ids <= 0 || fp->n_top <= 0 || fp->n_greedy < 0 || !(fp->logit_rms > 0)) {
    fprintf(stderr, "gemma3_fixture_check: %s: prompt \"%s\" is incomplete or malformed\n", path, fp->name);
    return -1;
  }
  return 1;
}

static int tokenize_file(const char *model_path, const char *text_path) {
  char err[1024] = "";
  up_checkpoint *ck = up_checkpoint_open(model_path, err, sizeof err);
  up_tokenizer *tok = ck ? up_tokenizer_from_checkpoint(ck, err, sizeof err) : NULL;
  FILE *f = fopen(text_path, "rb");
  if (!tok || !f) {
    fprintf(stderr, "gemma3_fixture_check: %s\n", f ? err : "cannot open the text file");
    return 2;
  }
  static char text[1 << 20];
  const size_t len = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  static int32_t ids[MAX_IDS];
  const int32_t n = up_tokenizer_encode(tok, text, len, true, false, ids, MAX_IDS, err, sizeof err);
  if (n < 0 || n > MAX_IDS) {
    fprintf(stderr, "gemma3_fixture_check: %s: %s\n", text_path, n < 0 ? err : "more tokens than the tool holds");
    return 2;
  }
  for (int32_t i = 0; i < n; ++i) printf("%s%d", i ? "," : "", (int)ids[i]);
  printf("\n");
  up_tokenizer_free(tok);
  up_checkpoint_close(ck);
  return 0;
}

/* 0 when the named backend can be created here, 77 (CTest's skip) when not. */
static int probe_backend(const char *backend_name) {
  up_backend *be = tool_backend_or_skip(backend_name);
  if (!be) return 77;
  be->ops->destroy(be);
  return 0;
}

/* Whether `name` is one of the comma list's entries. */
static int name_listed(const char *list, const char *name) {
  const size_t n = strlen(name);
  for (const char *p = list; *p;) {
    const char *end = strchr(p, ',');
    const size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, name, n) == 0) return 1;
    p += len + (end ? 1 : 0);
  }
  return 0;
}

/* Compares one prompt's engine run with its fixture entry; 0 when it passes. */
static int judge(const fixture_prompt *fp, const up_generation *g, int32_t vocab, double max_err, int32_t min_match) {
  double max_abs = 0.0, lse_max = -INFINITY, lse_sum = 0.0;
  int32_t arg = 0;
  for (int32_t i = 0; i < vocab; ++i) {
    if (g->first_logits[i] > g->first_logits[arg]) arg = i;
    if (g->first_logits[i] > lse_max) lse_max = g->first_logits[i];
  }
  for (int32_t i = 0; i < vocab; ++i) lse_sum += exp((double)g->first_logits[i] - lse_max);
  const double lse = lse_max + log(lse_sum);
  for (int32_t k = 0; k < fp->n_top; ++k) {
    const double d = fabs((double)g->first_logits[fp->top_ids[k]] - fp->top_logits[k]);
    if (!(d <= max_abs)) max_abs = d; /* a NaN sticks */
  }
  const double top_err = max_abs / fp->logit_rms, lse_err = fabs(lse - fp->logsumexp) / fp->logit_rms;
  int32_t match = 0;
  while (match < g->n_tokens && match < fp->n_greedy && g->tokens[match] == fp->greedy[match]) ++match;
  const int32_t need = min_match < fp->n_greedy ? min_match : fp->n_greedy;
  const int ok = top_err <= max_err && lse_err <= max_err && arg == fp->top_ids[0] && match >= need;
  printf("%-16s %5d tokens: top-%d max|err|/rms %.3e, logsumexp err/rms %.3e, top-1 %d vs %d, "
         "greedy %d/%d match (need %d) %s\n",
         fp->name, (int)fp->n_ids, (int)fp->n_top, top_err, lse_err, (int)arg, (int)fp->top_ids[0], (int)match,
         (int)fp->n_greedy, (int)need, ok ? "ok" : "FAIL");
  printf("  engine greedy:");
  for (int32_t i = 0; i < g->n_tokens; ++i) printf("%s%d", i ? "," : " ", (int)g->tokens[i]);
  printf("\n");
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "tokenize") == 0) return tokenize_file(argv[2], argv[3]);
  if (argc == 3 && strcmp(argv[1], "probe") == 0) return probe_backend(argv[2]);
  if ((argc != 7 && argc != 8) || strcmp(argv[1], "check") != 0) return usage();
  const char *unjudged = argc == 8 ? argv[7] : "";
  const char *backend_name = argv[2], *model_path = argv[3], *fixture_path = argv[4];
  const double max_err = atof(argv[5]);
  const int32_t min_match = atoi(argv[6]);
  struct stat st;
  if (stat(model_path, &st) != 0) {
    printf("SKIP: %s is absent (scripts/fetch-gemma3.sh fetches it)\n", model_path);
    return 77;
  }
  FILE *fixture = fopen(fixture_path, "r");
  if (!fixture) {
    fprintf(stderr, "gemma3_fixture_check: cannot open the fixture %s\n", fixture_path);
    return 2;
  }
  char err[1024] = "";
  up_backend *be = tool_backend_or_skip(backend_name);
  if (!be) return 77;
  up_checkpoint *ck = up_checkpoint_open(model_path, err, sizeof err);
  up_model *model = ck ? up_model_create_from_checkpoint(ck, be, err, sizeof err) : NULL;
  if (!model) {
    fprintf(stderr, "gemma3_fixture_check: %s: %s\n", model_path, err);
    return 1;
  }
  const int32_t vocab = up_checkpoint_config(ck)->vocab;
  up_method_spec spec;
  up_method_spec_reference(&spec);
  up_method dense;
  if (!up_method_init(&dense, &spec, be, err, sizeof err)) {
    fprintf(stderr, "gemma3_fixture_check: %s\n", err);
    return 1;
  }
  static fixture_prompt fp;
  int read, failures = 0, prompts = 0, not_judged = 0;
  while ((read = read_prompt(fixture, fixture_path, &fp)) == 1) {
    const int32_t max_new = fp.n_greedy > 0 ? fp.n_greedy : 1;
    up_generator *gen = up_generator_create(model, 1, fp.n_ids, max_new, err, sizeof err);
    if (!gen) {
      fprintf(stderr, "gemma3_fixture_check: %s\n", err);
      return 1;
    }
    const int32_t *ids[1] = {fp.ids};
    up_generation g;
    up_generator_run(gen, &dense, ids, &fp.n_ids, 1, max_new, NULL, 0, &g);
    const int failed = judge(&fp, &g, vocab, max_err, min_match);
    if (name_listed(unjudged, fp.name)) {
      printf("  %s: not judged (named by the caller as beyond this precision)\n", fp.name);
      ++not_judged;
    } else {
      failures += failed;
      ++prompts;
    }
    up_generation_free(&g);
    up_generator_destroy(gen);
  }
  fclose(fixture);
  up_model_destroy(model);
  up_checkpoint_close(ck);
  be->ops->destroy(be);
  if (read < 0 || prompts == 0) {
    if (read == 0) fprintf(stderr, "gemma3_fixture_check: %s holds no prompt it may judge\n", fixture_path);
    return 2;
  }
  printf("%d of %d prompts within %.1e of the reference", prompts - failures, prompts, max_err);
  if (not_judged) printf(" (%d more not judged)", not_judged);
  printf("\n");
  return failures ? 1 : 0;
}
