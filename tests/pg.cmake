# The site store on PostgreSQL: a throw-away cluster (unix socket in the
# build tree, no TCP) is started before and stopped after the tests labelled
# "pg". Every test declared with STORES "sqlite;pg" (tests/CMakeLists.txt)
# runs again as NAME_pg with SITETOKEN_DB pointing at it (each site gets its
# own schema). Nothing skips: CI installs postgresql.
# test_store: the store interface itself; test_tokcache: the gateway cache
# across two nodes (SQLite: two handles).
stk_unit_test(test_store STORES "sqlite;pg")
stk_unit_test(test_tokcache STORES "sqlite;pg")
stk_script_test(node_rotate integration/node_rotate.sh STORES "sqlite;pg")
if(STK_STORE_PG)
  set(STK_PG_DIR ${CMAKE_CURRENT_BINARY_DIR}/tmp/pg)
  # pg_cluster.sh writes the service file (socket and TCP, free port) and
  # the password file when it starts the cluster.
  add_test(NAME pg_start COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/pg_cluster.sh
    start ${STK_PG_DIR})
  add_test(NAME pg_stop COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/pg_cluster.sh
    stop ${STK_PG_DIR})
  set_tests_properties(pg_start PROPERTIES FIXTURES_SETUP pg LABELS pg)
  set_tests_properties(pg_stop PROPERTIES FIXTURES_CLEANUP pg LABELS pg)
  set(STK_PG_ENV "STK_TEST_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp;SITETOKEN_DB=service=sitetoken"
    "PGSERVICEFILE=${STK_PG_DIR}/pg_service.conf;PGPASSFILE=${STK_PG_DIR}/pgpass")
  # The `sqlite3` stand-in of the PostgreSQL runs (pg_sqlite3.sh).
  set(STK_PG_BIN ${CMAKE_CURRENT_BINARY_DIR}/pgbin)
  file(MAKE_DIRECTORY ${STK_PG_BIN})
  file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR}/integration/pg_sqlite3.sh
    ${STK_PG_BIN}/sqlite3 SYMBOLIC)
endif()
# PostgreSQL only: the store's own behaviour, two nodes on one database, and
# twelve nodes, each rotating its key, verifying each other's tokens (the
# verifier's key set has no cap: 24 keys).
stk_script_test(pg_store integration/pg_store.sh STORES pg)
stk_script_test(node_keys integration/node_keys.sh STORES pg)
stk_script_test(node_serve integration/node_serve.sh STORES pg LABELS "integration;server" TIMEOUT 300)
stk_script_test(node_many integration/node_many.sh STORES pg LABELS "integration;server" TIMEOUT 300)
# Database failover: its own primary and synchronous standby (not the pg
# fixture's cluster), two nodes on a multi-host connection string, the
# primary killed -9 under load and the standby promoted. Part of the default
# run (about a minute).
if(STK_STORE_PG)
  # libpq's PQexec wrapped: the connection dies around a registration's
  # COMMIT or between requests (fault injection only; the server is real).
  add_executable(test_pg_faults unit/test_pg_faults.c)
  target_include_directories(test_pg_faults PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/unit)
  target_link_libraries(test_pg_faults PRIVATE sitetoken PkgConfig::CMOCKA PkgConfig::PQ)
  target_link_options(test_pg_faults PRIVATE -Wl,--wrap=PQexec)
  add_test(NAME test_pg_faults_pg COMMAND test_pg_faults)
  set_tests_properties(test_pg_faults_pg PROPERTIES LABELS "unit;pg;failover"
    FIXTURES_REQUIRED pg ENVIRONMENT "${STK_PG_ENV}")
  # RUN_SERIAL: two clusters and a busy load; alone, it neither slows the
  # other server tests into their timeouts nor is slowed by them.
  stk_script_test(pg_failover integration/pg_failover.sh LABELS "integration;pg;failover"
    TIMEOUT 180 RUN_SERIAL TRUE)
endif()
