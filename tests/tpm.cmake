# TPM 2.0 backend: unit tests and CLI integration against a real swtpm
# (swtpm-setup/ starts one per test on free loopback ports, so runs in
# parallel do not collide). Nothing is skipped: no swtpm is a failure.
if(TARGET sitetoken AND STK_BACKEND_TPM AND EXISTS ${CMAKE_SOURCE_DIR}/tpm/CMakeLists.txt)
  stk_unit_test(test_tpm)
  # The swtpm scripts are found from the source tree even when the binary
  # runs outside ctest (valgrind.sh).
  target_compile_definitions(test_tpm PRIVATE STK_SRC_DIR="${CMAKE_SOURCE_DIR}")
  set_tests_properties(test_tpm PROPERTIES TIMEOUT 300)
  # Key attestation: two swtpms with EK certificates from distinct local CAs.
  stk_script_test(attest_tpm integration/attest_tpm.sh TIMEOUT 300)
  stk_script_test(tpm_audit integration/tpm_audit.sh TIMEOUT 300)
endif()
