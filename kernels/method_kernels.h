/* method_kernels.h — how a backend lists the kernels that belong to one method (the
 * `method_kernel` op of kernels/ops.h): a table of names and functions, searched by
 * name. Each backend keeps one table beside its op table; a method kernel joins a
 * backend by one line there. Owns nothing else: the kernels' types and contracts live
 * in each method's kernel header (e.g. kernels/uniprefill_ops.h). */
#ifndef UP_METHOD_KERNELS_H
#define UP_METHOD_KERNELS_H

#include <stddef.h>
#include <string.h>

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct up_method_kernel_entry {
  const char *name; /* the name the method's kernel header defines */
  up_method_kernel_fn fn;
} up_method_kernel_entry;

/* The entry named `name` of a backend's table, NULL when it has none. */
static inline up_method_kernel_fn up_method_kernel_lookup(const up_method_kernel_entry *table, size_t n,
                                                          const char *name) {
  for (size_t i = 0; i < n; ++i)
    if (strcmp(table[i].name, name) == 0) return table[i].fn;
  return NULL;
}

#ifdef __cplusplus
}
#endif

#endif
