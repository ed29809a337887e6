# Registration path (issue 16): the device-certificate cache against the
# uncached check.
stk_unit_test(test_devcert)
# Registrations racing for --max-uses during a junk flood (server, SQLite;
# the PostgreSQL variant is in tests/pg.cmake).
stk_script_test(register_flood integration/register_flood.sh)
set_tests_properties(register_flood PROPERTIES LABELS "integration;server" TIMEOUT 300)
# Group commit (stk_site_batch_*) against one-by-one commits.
stk_unit_test(test_regbatch)
