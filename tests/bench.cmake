# Bench smoke (label bench): sitetoken-bench in a very short mode against a
# real SoftHSM token, swtpm and server must print every figure. No timing
# is asserted. The full bench is bench/run.sh BUILD_DIR (about 2 minutes).
if(STK_BENCH)
  add_test(NAME bench_smoke COMMAND bash ${CMAKE_SOURCE_DIR}/bench/smoke.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(bench_smoke PROPERTIES LABELS bench TIMEOUT 120
    ENVIRONMENT "TMPDIR=${CMAKE_CURRENT_BINARY_DIR}/tmp")
endif()
