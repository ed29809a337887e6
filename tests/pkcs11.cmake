# PKCS#11 key backend: URI/PIN unit tests, the backend against a real
# SoftHSM token, --wrap fault injection, and the CLI end to end. Nothing
# here skips: a missing softhsm2 is a failure (CI installs it).
if(STK_BACKEND_PKCS11 AND EXISTS ${CMAKE_SOURCE_DIR}/pkcs11/CMakeLists.txt)
  pkg_check_modules(P11KIT_T REQUIRED IMPORTED_TARGET p11-kit-1)

  stk_unit_test(test_pkcs11_uri)
  target_include_directories(test_pkcs11_uri PRIVATE ${CMAKE_SOURCE_DIR}/pkcs11)

  foreach(t test_pkcs11 test_pkcs11_faults)
    stk_unit_test(${t} unit/test_pkcs11_token.c)
    target_include_directories(${t} PRIVATE ${P11KIT_T_INCLUDE_DIRS})
    # Compiled in rather than passed by ctest, so tests/valgrind.sh (which
    # sets only STK_TEST_TMP) runs them the same way.
    target_compile_definitions(${t} PRIVATE STK_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
    target_link_libraries(${t} PRIVATE ${CMAKE_DL_LIBS} Threads::Threads)
    set_tests_properties(${t} PROPERTIES TIMEOUT 300)
  endforeach()
  # Fault injection: the backend's call into libp11's signing key
  # (EVP_PKEY_sign) and its login (PKCS11_login) go through wrappers.
  target_link_options(test_pkcs11_faults PRIVATE
    -Wl,--wrap=EVP_PKEY_sign -Wl,--wrap=PKCS11_login)

  stk_script_test(pkcs11_softhsm_setup integration/pkcs11_softhsm_setup.sh)
endif()
