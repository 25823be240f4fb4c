# tests/gpu/select.cmake — the CUDA UniPrefill selection tests (label gpu, skip with 77
# where no GPU is visible); included from tests/gpu/CMakeLists.txt.
add_executable(gpu_select_test gpu_select_test.c)
target_link_libraries(gpu_select_test PRIVATE up_launcher up_kernels_cuda)
add_test(NAME gpu_select_test COMMAND gpu_select_test)
set_tests_properties(gpu_select_test PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                     ENVIRONMENT "OPENBLAS_NUM_THREADS=8")
# The same on the two-pass (by-token) path at every block: the by-block path's fallback
# when its partials pass their 1 GiB cap, which no test shape reaches.
add_test(NAME gpu_select_test_by_token COMMAND gpu_select_test)
set_tests_properties(gpu_select_test_by_token PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                     ENVIRONMENT "OPENBLAS_NUM_THREADS=8;UP_SELECT_PATH=by_token")

# The per-head block scores of tensor parallelism (uniprefill_head_scores) against the
# CPU reference, bitwise repeatable, and their sum choosing the selection's rows.
add_executable(gpu_head_scores_test gpu_head_scores_test.c)
target_link_libraries(gpu_head_scores_test PRIVATE up_launcher up_kernels_cuda)
add_test(NAME gpu_head_scores_test COMMAND gpu_head_scores_test)
set_tests_properties(gpu_head_scores_test PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                     ENVIRONMENT "OPENBLAS_NUM_THREADS=8")
