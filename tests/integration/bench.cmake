# bench_smoke: the load generators in bench/ (and bench/run-benchmarks.sh) run briefly against a
# real derp-relay on 127.0.0.1. Included from tests/integration/CMakeLists.txt.
add_test(NAME bench_smoke
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/bench_smoke_test.sh ${PROJECT_BINARY_DIR})
set_tests_properties(bench_smoke PROPERTIES TIMEOUT 300)
