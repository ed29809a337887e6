# The site store on PostgreSQL: a throw-away cluster (unix socket in the
# build tree, no TCP) is started before and stopped after the tests labelled
# "pg", which run the same site tests with SITETOKEN_DB pointing at it (each
# site gets its own schema). Nothing skips: CI installs postgresql.
# test_store: the store interface itself, on SQLite here and on PostgreSQL
# below.
stk_unit_test(test_store)
# test_tokcache: the gateway cache across two nodes (SQLite: two handles).
stk_unit_test(test_tokcache)
stk_script_test(node_rotate integration/node_rotate.sh)
if(STK_STORE_PG)
  set(STK_PG_DIR ${CMAKE_CURRENT_BINARY_DIR}/tmp/pg)
  # pg_cluster.sh writes the service file (socket and TCP, free port) and
  # the password file when it starts the cluster.
  set(STK_PG_DB "service=sitetoken")
  add_test(NAME pg_start COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/pg_cluster.sh
    start ${STK_PG_DIR})
  add_test(NAME pg_stop COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/pg_cluster.sh
    stop ${STK_PG_DIR})
  set_tests_properties(pg_start PROPERTIES FIXTURES_SETUP pg LABELS pg)
  set_tests_properties(pg_stop PROPERTIES FIXTURES_CLEANUP pg LABELS pg)
  set(STK_PG_ENV "STK_TEST_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp;SITETOKEN_DB=${STK_PG_DB}"
    "PGSERVICEFILE=${STK_PG_DIR}/pg_service.conf;PGPASSFILE=${STK_PG_DIR}/pgpass")
  foreach(t test_site test_store test_device test_tokcache test_device_race
      test_attest_policy)
    add_test(NAME ${t}_pg COMMAND ${t})
    set_tests_properties(${t}_pg PROPERTIES LABELS "unit;pg" FIXTURES_REQUIRED pg
      ENVIRONMENT "${STK_PG_ENV}")
  endforeach()
  foreach(t cli_roundtrip pg_store node_keys)
    add_test(NAME ${t}_pg COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/${t}.sh)
    set_tests_properties(${t}_pg PROPERTIES LABELS "integration;pg" FIXTURES_REQUIRED pg
      ENVIRONMENT "STK_BIN=${CMAKE_BINARY_DIR};STK_SRC=${CMAKE_SOURCE_DIR};${STK_PG_ENV}")
  endforeach()
  # The server, hardening, admin API and two-node tests on a PostgreSQL
  # site. Their checks read
  # the site database with `sqlite3 DIR/site.db "SELECT ..."`: a stand-in
  # first on PATH sends those queries to the site's schema (pg_sqlite3.sh).
  set(STK_PG_BIN ${CMAKE_CURRENT_BINARY_DIR}/pgbin)
  file(MAKE_DIRECTORY ${STK_PG_BIN})
  file(CREATE_LINK ${CMAKE_CURRENT_SOURCE_DIR}/integration/pg_sqlite3.sh
    ${STK_PG_BIN}/sqlite3 SYMBOLIC)
  # The database writer's forgeries (attacker 3), on the PostgreSQL store.
  add_test(NAME audit_forge_pg COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/audit_forge.sh)
  set_tests_properties(audit_forge_pg PROPERTIES LABELS "integration;pg" FIXTURES_REQUIRED pg
    ENVIRONMENT "STK_BIN=${CMAKE_BINARY_DIR};STK_SRC=${CMAKE_SOURCE_DIR};${STK_PG_ENV};PATH=${STK_PG_BIN}:$ENV{PATH}")
  foreach(t server_register_mp server_mp_tls server_cmg_bulk server_cmg_auth
      server_renewal server_concurrent node_serve crash hostile secrets console_api
      server_metrics node_rotate key_clock device_cert_policy hostile_register
      audit_clean attest_reg bulk_limits oidc_register)
    add_test(NAME ${t}_pg COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/${t}.sh)
    set_tests_properties(${t}_pg PROPERTIES LABELS "integration;server;pg"
      FIXTURES_REQUIRED pg TIMEOUT 500
      ENVIRONMENT "STK_BIN=${CMAKE_BINARY_DIR};STK_SRC=${CMAKE_SOURCE_DIR};${STK_PG_ENV};PATH=${STK_PG_BIN}:$ENV{PATH}")
  endforeach()
endif()
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
  # Twelve nodes, each rotating its key, verify each other's tokens (the
  # verifier's key set has no cap: 24 keys).
  add_test(NAME node_many_pg COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/node_many.sh)
  set_tests_properties(node_many_pg PROPERTIES LABELS "integration;server;pg"
    FIXTURES_REQUIRED pg TIMEOUT 300
    ENVIRONMENT "STK_BIN=${CMAKE_BINARY_DIR};STK_SRC=${CMAKE_SOURCE_DIR};${STK_PG_ENV}")
  stk_script_test(pg_failover integration/pg_failover.sh)
  # RUN_SERIAL: two clusters and a busy load; alone, it neither slows the
  # other server tests into their timeouts nor is slowed by them.
  set_tests_properties(pg_failover PROPERTIES LABELS "integration;pg;failover" TIMEOUT 180
    RUN_SERIAL TRUE)
endif()
