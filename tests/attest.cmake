# Key attestation, verifier side: no TPM needed (real swtpm evidence from
# fuzz/corpus/attest). The TPM side is attest_tpm in tpm.cmake.
if(TARGET sitetoken)
  stk_unit_test(test_attest)
  target_compile_definitions(test_attest PRIVATE STK_SRC_DIR="${CMAKE_SOURCE_DIR}")
endif()
