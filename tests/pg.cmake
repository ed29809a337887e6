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
  foreach(t test_site test_store test_device test_tokcache)
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
  foreach(t server_register_mp server_mp_tls server_cmg_bulk server_cmg_auth
      server_renewal server_concurrent node_serve crash hostile secrets console_api
      server_metrics node_rotate key_clock device_cert_policy bulk_limits)
    add_test(NAME ${t}_pg COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/integration/${t}.sh)
    set_tests_properties(${t}_pg PROPERTIES LABELS "integration;server;pg"
      FIXTURES_REQUIRED pg TIMEOUT 500
      ENVIRONMENT "STK_BIN=${CMAKE_BINARY_DIR};STK_SRC=${CMAKE_SOURCE_DIR};${STK_PG_ENV};PATH=${STK_PG_BIN}:$ENV{PATH}")
  endforeach()
endif()
