/* arch_registry.c — the architectures the engine knows, one line each: a new
 * architecture is its file under engine/model/arch/ plus its line here. */
#include <string.h>

#include "core/fatal.h"
#include "engine/model/arch.h"

extern const up_arch up_arch_llama;
extern const up_arch up_arch_gemma3;
extern const up_arch up_arch_qwen3_next;

static const up_arch *const g_archs[] = {
    &up_arch_llama,
    &up_arch_gemma3,
    &up_arch_qwen3_next,
};

int32_t up_arch_count(void) { return (int32_t)(sizeof g_archs / sizeof g_archs[0]); }

const up_arch *up_arch_at(int32_t index) { return index >= 0 && index < up_arch_count() ? g_archs[index] : NULL; }

const up_arch *up_arch_find(const char *name) {
  for (int32_t i = 0; i < up_arch_count(); ++i)
    if (strcmp(g_archs[i]->name, name) == 0) return g_archs[i];
  return NULL;
}

const up_arch *up_arch_of(const up_model_config *cfg) {
  const up_arch *arch = up_arch_find(cfg->architecture);
  UP_ASSERT(arch, "model %s: architecture '%s' is not registered", cfg->name, cfg->architecture);
  return arch;
}
