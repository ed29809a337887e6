# Operations (issue 19): help and option tables, serve --config and SIGHUP
# log reopening, systemd units, the Debian package. Nothing skips.
stk_script_test(cli_help integration/cli_help.sh)
set_tests_properties(cli_help PROPERTIES LABELS "integration;ops" TIMEOUT 120)
stk_script_test(dist_units integration/dist_units.sh)
set_tests_properties(dist_units PROPERTIES LABELS "integration;ops" TIMEOUT 120)
# The package is made from the release build only (the sanitizer build is
# not what ships).
if(NOT STK_SANITIZE)
  stk_script_test(dist_package integration/dist_package.sh)
  set_tests_properties(dist_package PROPERTIES LABELS "integration;ops" TIMEOUT 300)
endif()
stk_script_test(serve_ops integration/serve_ops.sh)
set_tests_properties(serve_ops PROPERTIES LABELS "integration;ops;server" TIMEOUT 120)
stk_script_test(cli_progress integration/cli_progress.sh)
set_tests_properties(cli_progress PROPERTIES LABELS "integration;ops" TIMEOUT 120)
