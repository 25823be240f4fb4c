# tests/gpu/select.cmake — the CUDA UniPrefill selection test (label gpu, skips with 77
# where no GPU is visible); included from tests/gpu/CMakeLists.txt.
add_executable(gpu_select_test gpu_select_test.c)
target_link_libraries(gpu_select_test PRIVATE up_launcher up_kernels_cuda)
add_test(NAME gpu_select_test COMMAND gpu_select_test)
set_tests_properties(gpu_select_test PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                     ENVIRONMENT "OPENBLAS_NUM_THREADS=8")
