# Operations (issue 19): help and option tables, serve --config and SIGHUP
# log reopening, systemd units, the Debian package. Nothing skips.
stk_script_test(cli_help integration/cli_help.sh)
set_tests_properties(cli_help PROPERTIES LABELS "integration;ops" TIMEOUT 120)
stk_script_test(dist_units integration/dist_units.sh)
set_tests_properties(dist_units PROPERTIES LABELS "integration;ops" TIMEOUT 120)
