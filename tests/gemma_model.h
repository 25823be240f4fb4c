/* gemma_model.h — where the tests find the real Gemma 3 270M checkpoint that
 * scripts/fetch-gemma3.sh caches, and opening it or skipping the test visibly when it
 * is absent (Criterion tests only). */
#ifndef UP_TEST_GEMMA_MODEL_H
#define UP_TEST_GEMMA_MODEL_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/checkpoint/gguf.h"

#define UP_GEMMA3_270M_FILE "gemma-3-270m-q4_k_m.gguf"

/* Writes the cached file's path (UNIPREFILL_MODEL_CACHE, else ~/.cache/uniprefill-bench/
 * models, as the fetch script) to path; true when the file is there. */
static inline bool up_test_gemma3_270m_path(char *path, size_t size) {
  const char *cache = getenv("UNIPREFILL_MODEL_CACHE");
  const char *home = getenv("HOME");
  if (cache && cache[0]) snprintf(path, size, "%s/" UP_GEMMA3_270M_FILE, cache);
  else snprintf(path, size, "%s/.cache/uniprefill-bench/models/" UP_GEMMA3_270M_FILE, home ? home : "");
  FILE *probe = fopen(path, "rb");
  if (!probe) return false;
  fclose(probe);
  return true;
}

/* The real checkpoint's reader; skips the calling test when the file is not cached. */
static inline up_gguf *up_test_open_gemma3_270m_or_skip(void) {
  char path[1024];
  if (!up_test_gemma3_270m_path(path, sizeof path))
    cr_skip_test("Gemma 3 270M is not cached at %s (scripts/fetch-gemma3.sh fetches it)", path);
  char err[512] = "";
  up_gguf *g = up_gguf_open(path, err, sizeof err);
  cr_assert_not_null(g, "%s", err);
  return g;
}

#endif
