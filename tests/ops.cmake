# Operations (issue 19): help and option tables, serve --config and SIGHUP
# log reopening, systemd units, the Debian package. Nothing skips.
stk_script_test(cli_help integration/cli_help.sh)
set_tests_properties(cli_help PROPERTIES LABELS "integration;ops" TIMEOUT 120)
