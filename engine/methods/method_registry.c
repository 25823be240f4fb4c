/* method_registry.c — the table of prefill methods: a new method is one new file
 * (engine/methods/<name>.c defining its up_method_ops) plus one line here. Lookup by
 * name and the --help text of every method come from this table alone. */
#include "engine/methods/method.h"

#include <string.h>

extern const up_method_ops up_method_dense;      /* dense.c */
extern const up_method_ops up_method_uniprefill; /* uniprefill.c */
extern const up_method_ops up_method_minference;  /* minference.c */
extern const up_method_ops up_method_flexprefill; /* flexprefill.c */
extern const up_method_ops up_method_xattention;  /* xattention.c */

static const up_method_ops *const up_method_table[] = {
    &up_method_dense,
    &up_method_uniprefill,
    &up_method_minference,
    &up_method_flexprefill,
    &up_method_xattention,
};

#define UP_N_METHODS ((int32_t)(sizeof up_method_table / sizeof up_method_table[0]))
_Static_assert(UP_N_METHODS <= UP_METHOD_REGISTRY_MAX, "raise UP_METHOD_REGISTRY_MAX");

int32_t up_method_count(void) { return UP_N_METHODS; }

const up_method_ops *up_method_at(int32_t index) {
  return index >= 0 && index < UP_N_METHODS ? up_method_table[index] : NULL;
}

const up_method_ops *up_method_find(const char *name) {
  for (int32_t i = 0; i < UP_N_METHODS; ++i)
    if (strcmp(up_method_table[i]->name, name) == 0) return up_method_table[i];
  return NULL;
}

int32_t up_method_index(const up_method_ops *method) {
  for (int32_t i = 0; i < UP_N_METHODS; ++i)
    if (up_method_table[i] == method) return i;
  return -1;
}

void up_method_names(char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int32_t i = 0; i < UP_N_METHODS && used < size; ++i)
    used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", up_method_table[i]->name);
}

void up_method_print_help(FILE *out) {
  for (int32_t i = 0; i < UP_N_METHODS; ++i) {
    const up_method_ops *m = up_method_table[i];
    fprintf(out, "  %s\n      %s\n", m->usage, m->summary);
    for (int32_t k = 0; k < m->n_options; ++k) {
      const up_method_option *o = &m->options[k];
      if (o->kind == UP_OPTION_CHOICE) /* default_value lists the choices, the first being the default */
        fprintf(out, "      %-8s %s (one of %s, default %.*s)\n", o->key, o->help, o->default_value,
                (int)strcspn(o->default_value, "|"), o->default_value);
      else
        fprintf(out, "      %-8s %s (default %s)\n", o->key, o->help, o->default_value);
    }
  }
}
