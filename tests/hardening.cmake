# Hardening (issue 8): hostile input against the running server, slow
# clients and odd TLS client certificates, kill -9 during registrations,
# secret hygiene of the demo flow. Fuzz corpora replay as fuzz_replay_*
# (fuzz/CMakeLists.txt). Each script stops what it starts, by pid.
foreach(t hostile hostile_conn crash secrets audit_clean)
  stk_script_test(${t} integration/${t}.sh)
  set_tests_properties(${t} PROPERTIES LABELS "integration;server;hardening" TIMEOUT 400)
endforeach()
