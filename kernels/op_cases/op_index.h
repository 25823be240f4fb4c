/* op_index.h — the members of the backend interface (up_backend_ops, kernels/ops.h) as
 * data: name, offset, size and role, so that a test can ask of every op whether a case
 * in the op-case list covers it. Built with offsetof rather than kept as a list inside
 * ops.h: ops.h stays the interface alone, and the sizes and offsets must tile the struct
 * exactly (test_op_cases checks it), so a member added to ops.h without a row here fails
 * that test instead of going unnoticed. */
#ifndef UP_OP_INDEX_H
#define UP_OP_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef enum up_op_role {
  UP_OP_COMPUTES, /* moves or computes values: some case compares it with the CPU reference */
  UP_OP_HARNESS,  /* what every case runs on (memory, the phase clock, teardown): see `why` */
} up_op_role;

typedef struct up_op_entry {
  const char *name; /* the member's name in up_backend_ops */
  size_t offset;    /* offsetof(up_backend_ops, member) */
  size_t size;      /* sizeof the member */
  up_op_role role;
  const char *why;  /* where a harness op is exercised; NULL for the others */
} up_op_entry;

/* The ops in declaration order (the `name` field of up_backend_ops is no op: the
 * first entry starts right after it). */
int32_t up_op_index_count(void);
const up_op_entry *up_op_index_at(int32_t i);

/* The entry of a member name, or NULL. */
const up_op_entry *up_op_index_find(const char *name);

#endif
