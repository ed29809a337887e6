# Hardening (issue 8): hostile input against the running server, slow
# clients and odd TLS client certificates, kill -9 during registrations,
# secret hygiene of the demo flow. Fuzz corpora replay as fuzz_replay_*
# (fuzz/CMakeLists.txt). Each script stops what it starts, by pid.
foreach(t hostile crash secrets audit_clean)
  stk_script_test(${t} integration/${t}.sh STORES "sqlite;pg" LABELS "integration;server;hardening" TIMEOUT 400)
endforeach()
stk_script_test(hostile_conn integration/hostile_conn.sh LABELS "integration;server;hardening" TIMEOUT 400)
