# Registration service (MP + CMG) and device agent. Unit: device policy
# without HTTP. Integration: the real server and the real agent over
# loopback (free ports), stopped by pid. Nothing skips.
stk_unit_test(test_device)
stk_unit_test(test_bulk_limits)
stk_unit_test(test_server)
target_link_libraries(test_server PRIVATE sitetoken-server PkgConfig::CURL)
foreach(t server_register_mp server_mp_tls server_cmg_bulk server_cmg_auth
    server_renewal server_concurrent agent_state agent_devkey bulk_limits agent_pin)
  stk_script_test(${t} integration/${t}.sh)
  set_tests_properties(${t} PROPERTIES LABELS "integration;server" TIMEOUT 300)
endforeach()
# The end-to-end demo itself (swtpm, TPM site key, server, agent).
stk_script_test(server_demo ../demo/demo.sh)
set_tests_properties(server_demo PROPERTIES LABELS "integration;server" TIMEOUT 300
  ENVIRONMENT "STK_BIN=${CMAKE_BINARY_DIR};STK_TEST_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp;STK_DEMO_REQUIRE_TPM=1")
# Operations: Prometheus metrics (serve --metrics) and the relying parties'
# JWKS / discovery document (checked by an independent JOSE library, npm
# jose, from tests/browser).
foreach(t server_metrics server_wellknown)
  stk_script_test(${t} integration/${t}.sh)
  set_tests_properties(${t} PROPERTIES LABELS "integration;server" TIMEOUT 300)
endforeach()
