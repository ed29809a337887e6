# Registration service (MP + CMG) and device agent. Unit: device policy
# without HTTP. Integration: the real server and the real agent over
# loopback (free ports), stopped by pid. Nothing skips.
stk_unit_test(test_device STORES "sqlite;pg")
# Renewals racing on two site handles (fault injection between read and write).
stk_unit_test(test_device_race STORES "sqlite;pg")
target_link_options(test_device_race PRIVATE -Wl,--wrap=stk_site_tx_begin)
# Attested registration policy (site/registration/attest_policy.c).
stk_unit_test(test_attest_policy STORES "sqlite;pg")
stk_unit_test(test_bulk_limits)
stk_unit_test(test_server)
target_link_libraries(test_server PRIVATE sitetoken-server PkgConfig::CURL)
foreach(t server_register_mp server_mp_tls server_cmg_bulk server_cmg_auth
    server_renewal server_concurrent hostile_register attest_reg bulk_limits)
  stk_script_test(${t} integration/${t}.sh STORES "sqlite;pg" LABELS "integration;server" TIMEOUT 300)
endforeach()
foreach(t agent_state agent_devkey agent_pin)
  stk_script_test(${t} integration/${t}.sh LABELS "integration;server" TIMEOUT 300)
endforeach()
# The end-to-end demo itself (swtpm, TPM site key, server, agent).
stk_script_test(server_demo ../demo/demo.sh)
set_tests_properties(server_demo PROPERTIES LABELS "integration;server" TIMEOUT 300
  ENVIRONMENT "STK_BIN=${CMAKE_BINARY_DIR};STK_TEST_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp;STK_DEMO_REQUIRE_TPM=1")
# Operations: Prometheus metrics (serve --metrics) and the relying parties'
# JWKS / discovery document (checked by an independent JOSE library, npm
# jose, from tests/browser).
stk_script_test(server_metrics integration/server_metrics.sh STORES "sqlite;pg"
  LABELS "integration;server" TIMEOUT 300)
stk_script_test(server_wellknown integration/server_wellknown.sh LABELS "integration;server" TIMEOUT 300)
# attest_reg's attacker: the real agent with fault injection (-Wl,--wrap)
# presenting another TPM's EK certificate (integration/agent_attest_evil.c).
if(STK_BACKEND_TPM AND EXISTS ${CMAKE_SOURCE_DIR}/tpm/CMakeLists.txt)
  add_executable(agent_attest_evil integration/agent_attest_evil.c
    ${CMAKE_SOURCE_DIR}/agent/main.c ${STK_AGENT_SOURCES})
  target_link_libraries(agent_attest_evil PRIVATE sitetoken PkgConfig::CURL OpenSSL::SSL)
  target_link_options(agent_attest_evil PRIVATE -Wl,--wrap=stk_tpm_attest
    -Wl,--wrap=stk_tpm_activate_credential)
  set_target_properties(agent_attest_evil PROPERTIES RUNTIME_OUTPUT_DIRECTORY
    ${CMAKE_BINARY_DIR})
endif()
