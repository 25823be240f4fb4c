/* tool_backend.h — the backend a test tool names on its command line ("cpu" or "cuda"),
 * or CTest's skip when this machine cannot run it: one rule for every tool that checks
 * a checkpoint on a chosen backend. Header-only: each tool is one executable. */
#ifndef UP_TESTS_TOOLS_TOOL_BACKEND_H
#define UP_TESTS_TOOLS_TOOL_BACKEND_H

#include <stdio.h>
#include <string.h>

#include "launcher/backend_select.h"

/* The backend, or NULL after printing the SKIP line (the caller returns 77). */
static inline up_backend *tool_backend_or_skip(const char *backend_name) {
  char err[1024] = "", notice[256] = "";
  const up_backend_choice choice = strcmp(backend_name, "cuda") == 0 ? UP_BACKEND_CUDA : UP_BACKEND_CPU;
  up_backend *be = up_backend_select(choice, 0, 0, notice, sizeof notice, err, sizeof err);
  if (!be) printf("SKIP: no %s backend here: %s\n", backend_name, err);
  return be;
}

#endif
