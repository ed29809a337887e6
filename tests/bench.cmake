# Bench smoke (label bench): sitetoken-bench in a very short mode against a
# real SoftHSM token, swtpm and server must print every figure. No timing
# is asserted. The full bench is bench/run.sh BUILD_DIR (about 2 minutes).
if(STK_BENCH)
  add_test(NAME bench_smoke COMMAND bash ${CMAKE_SOURCE_DIR}/bench/smoke.sh ${CMAKE_BINARY_DIR})
  # Soak smoke: bench/soak.sh for 12 s (registrations, renewals, policy, bulk
  # blocks, key rotations) must finish with nothing refused and the audit
  # chain intact; the figures are printed, not asserted.
  add_test(NAME bench_soak_smoke COMMAND bash ${CMAKE_SOURCE_DIR}/bench/soak.sh
    ${CMAKE_BINARY_DIR} --seconds 12)
  set_tests_properties(bench_smoke bench_soak_smoke PROPERTIES LABELS bench TIMEOUT 120
    ENVIRONMENT "TMPDIR=${CMAKE_CURRENT_BINARY_DIR}/tmp")
endif()
