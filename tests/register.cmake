# Registration path (issue 16): the device-certificate cache against the
# uncached check; group commit (stk_site_batch_*) and signing ahead against
# one-by-one commits, on both stores; registrations racing for --max-uses
# during a junk flood (server).
stk_unit_test(test_devcert)
stk_unit_test(test_regbatch STORES "sqlite;pg")
stk_script_test(register_flood integration/register_flood.sh STORES "sqlite;pg"
  LABELS "integration;server" TIMEOUT 300)
