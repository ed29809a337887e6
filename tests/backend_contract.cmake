# The key backend contract (unit/test_key_contract.c): one program, run as
# test_key_contract_<backend> for file, pkcs11 (real SoftHSM token) and tpm
# (real swtpm). Backend-only tests stay in test_file_backend, test_pkcs11
# and test_tpm; the CLI contract is backend_cli_<backend>.
add_executable(test_key_contract unit/test_key_contract.c)
target_include_directories(test_key_contract PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/unit)
target_link_libraries(test_key_contract PRIVATE sitetoken PkgConfig::CMOCKA Threads::Threads)
if("pkcs11" IN_LIST STK_TEST_BACKENDS)
  pkg_check_modules(P11KIT_C REQUIRED IMPORTED_TARGET p11-kit-1)
  target_sources(test_key_contract PRIVATE unit/test_pkcs11_token.c)
  target_include_directories(test_key_contract PRIVATE ${P11KIT_C_INCLUDE_DIRS})
  target_compile_definitions(test_key_contract PRIVATE STK_TEST_PKCS11
    STK_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  target_link_libraries(test_key_contract PRIVATE ${CMAKE_DL_LIBS})
endif()
if("tpm" IN_LIST STK_TEST_BACKENDS)
  target_compile_definitions(test_key_contract PRIVATE STK_TEST_TPM
    STK_SRC_DIR="${CMAKE_SOURCE_DIR}")
endif()
stk_backend_test(test_key_contract unit $<TARGET_FILE:test_key_contract>)
stk_backend_test(backend_cli integration bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/backend_cli.sh)
