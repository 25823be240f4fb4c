/* dtype.h — the element types backends store activations and weights in. */
#ifndef UP_DTYPE_H
#define UP_DTYPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum up_dtype { UP_DTYPE_F32 = 0, UP_DTYPE_BF16 = 1 } up_dtype;

size_t up_dtype_size(up_dtype dtype);
const char *up_dtype_name(up_dtype dtype);

#ifdef __cplusplus
}
#endif

#endif
