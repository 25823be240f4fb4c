# tests/gpu/sparse.cmake — the CUDA sparse-attention test (label gpu, skips with 77 where
# no GPU is visible): both paths of the sparse baselines' attention kernel against the
# CPU reference; included from tests/gpu/CMakeLists.txt.
add_executable(gpu_sparse_attention_test gpu_sparse_attention_test.c)
target_link_libraries(gpu_sparse_attention_test PRIVATE up_launcher up_kernels_cuda)
add_test(NAME gpu_sparse_attention_test COMMAND gpu_sparse_attention_test)
set_tests_properties(gpu_sparse_attention_test PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900
                     ENVIRONMENT "OPENBLAS_NUM_THREADS=8")
