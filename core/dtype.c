/* dtype.c — sizes and names of the activation dtypes backends store. */
#include "core/dtype.h"

size_t up_dtype_size(up_dtype dtype) { return dtype == UP_DTYPE_BF16 ? 2 : 4; }

const char *up_dtype_name(up_dtype dtype) { return dtype == UP_DTYPE_BF16 ? "bf16" : "fp32"; }
