/* op_index.c — the rows of op_index.h, one per member of up_backend_ops, in
 * declaration order. A member that moves out of the interface loses its row here. */
#include "kernels/op_cases/op_index.h"

#include <string.h>

#include "kernels/ops.h"

#define UP_OP(member, role, why) \
  {#member, offsetof(up_backend_ops, member), sizeof(((up_backend_ops *)0)->member), role, why}

static const up_op_entry up_op_entries[] = {
    UP_OP(alloc, UP_OP_HARNESS, "holds every case's buffers"),
    UP_OP(free, UP_OP_HARNESS, "releases every case's buffers"),
    UP_OP(memory_available, UP_OP_COMPUTES, NULL),
    UP_OP(upload_f32, UP_OP_COMPUTES, NULL),
    UP_OP(download_f32, UP_OP_COMPUTES, NULL),
    UP_OP(upload_i32, UP_OP_COMPUTES, NULL),
    UP_OP(download_i32, UP_OP_COMPUTES, NULL),
    UP_OP(upload_bytes, UP_OP_COMPUTES, NULL),
    UP_OP(download_bytes, UP_OP_COMPUTES, NULL),
    UP_OP(fill_uniform, UP_OP_COMPUTES, NULL),
    UP_OP(synchronize, UP_OP_HARNESS, "ends every timed call (op_check.c) and every --kernels case"),
    UP_OP(embed, UP_OP_COMPUTES, NULL),
    UP_OP(rmsnorm, UP_OP_COMPUTES, NULL),
    UP_OP(add_rmsnorm, UP_OP_COMPUTES, NULL),
    UP_OP(matmul, UP_OP_COMPUTES, NULL),
    UP_OP(rope, UP_OP_COMPUTES, NULL),
    UP_OP(swiglu, UP_OP_COMPUTES, NULL),
    UP_OP(geglu, UP_OP_COMPUTES, NULL),
    UP_OP(head_rmsnorm, UP_OP_COMPUTES, NULL),
    UP_OP(scale, UP_OP_COMPUTES, NULL),
    UP_OP(gather_rows, UP_OP_COMPUTES, NULL),
    UP_OP(gather_i32, UP_OP_COMPUTES, NULL),
    UP_OP(argmax_rows, UP_OP_COMPUTES, NULL),
    UP_OP(kv_store, UP_OP_COMPUTES, NULL),
    UP_OP(attention, UP_OP_COMPUTES, NULL),
    /* A method's kernels are reached through this lookup; the case that covers it runs
     * the UniPrefill selection, today's only method kernel (kernels/uniprefill_ops.h). */
    UP_OP(method_kernel, UP_OP_COMPUTES, NULL),
    UP_OP(phase_mark, UP_OP_HARNESS, "times every checked call (op_check.c) and every --kernels repeat"),
    UP_OP(phase_collect, UP_OP_HARNESS, "reads the time of every checked call and --kernels repeat"),
    /* Qwen3-Next ops (issue 14): their cases are case_deltanet.c's, case_moe.c's and
     * case_moe_experts.c's (grouped_matmul). */
    UP_OP(causal_conv1d, UP_OP_COMPUTES, NULL),
    UP_OP(gdn_gates, UP_OP_COMPUTES, NULL),
    UP_OP(gated_deltanet, UP_OP_COMPUTES, NULL),
    UP_OP(gated_rmsnorm, UP_OP_COMPUTES, NULL),
    UP_OP(moe_route, UP_OP_COMPUTES, NULL),
    UP_OP(moe_sort, UP_OP_COMPUTES, NULL),
    UP_OP(moe_combine, UP_OP_COMPUTES, NULL),
    UP_OP(split_query_gate, UP_OP_COMPUTES, NULL),
    UP_OP(sigmoid_gate, UP_OP_COMPUTES, NULL),
    UP_OP(rope_partial, UP_OP_COMPUTES, NULL),
    UP_OP(grouped_matmul, UP_OP_COMPUTES, NULL),
    UP_OP(destroy, UP_OP_HARNESS, "ends every backend a test or run creates"),
};

#undef UP_OP

int32_t up_op_index_count(void) { return (int32_t)(sizeof up_op_entries / sizeof up_op_entries[0]); }

const up_op_entry *up_op_index_at(int32_t i) { return &up_op_entries[i]; }

const up_op_entry *up_op_index_find(const char *name) {
  for (int32_t i = 0; i < up_op_index_count(); ++i)
    if (strcmp(up_op_entries[i].name, name) == 0) return &up_op_entries[i];
  return NULL;
}
