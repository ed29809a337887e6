# Operations (issue 19): help and option tables, serve --config and SIGHUP
# log reopening, systemd units, the Debian package. Nothing skips.
foreach(t cli_help dist_units cli_progress)
  stk_script_test(${t} integration/${t}.sh LABELS "integration;ops" TIMEOUT 120)
endforeach()
# The package is made from the release build only (the sanitizer build is
# not what ships).
if(NOT STK_SANITIZE)
  stk_script_test(dist_package integration/dist_package.sh LABELS "integration;ops" TIMEOUT 300)
endif()
stk_script_test(serve_ops integration/serve_ops.sh LABELS "integration;ops;server" TIMEOUT 120)
