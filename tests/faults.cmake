# Device and store faults under load (issue 20): the TPM killed and
# restarted during signing, the SQLite site's file system filling up, the
# PostgreSQL connection limit reached; and many nodes verifying each other's
# rotating keys. Real swtpm, server and PostgreSQL; nothing skips.
if(TARGET sitetoken AND STK_BACKEND_TPM AND EXISTS ${CMAKE_SOURCE_DIR}/tpm/CMakeLists.txt)
  stk_script_test(fault_swtpm integration/fault_swtpm.sh)
  set_tests_properties(fault_swtpm PROPERTIES LABELS "integration;server;faults" TIMEOUT 180)
endif()
# A tmpfs mounted by the test (root) or in a user+mount namespace.
stk_script_test(fault_diskfull integration/fault_diskfull.sh)
set_tests_properties(fault_diskfull PROPERTIES LABELS "integration;server;faults" TIMEOUT 180)
if(STK_STORE_PG)
  # Its own cluster with max_connections=6 (not the pg fixture's).
  stk_script_test(fault_pg_connlimit integration/fault_pg_connlimit.sh)
  set_tests_properties(fault_pg_connlimit PROPERTIES LABELS "integration;server;pg;faults" TIMEOUT 180)
endif()
