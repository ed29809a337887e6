# Admin console (sitetoken serve --admin): the JSON API from the shell, and
# the page in headless Chromium (Debian chromium) driven by playwright-core.
# The browser test keeps its screenshots in tests/console-artifacts/ of the
# build tree (a CI artifact). Nothing skips when CI=true.
stk_script_test(console_api integration/console_api.sh STORES "sqlite;pg"
  LABELS "integration;server;console" TIMEOUT 300)
stk_script_test(console_browser integration/console_browser.sh)
set_tests_properties(console_browser PROPERTIES LABELS "integration;server;console"
  TIMEOUT 600 SKIP_RETURN_CODE 77
  ENVIRONMENT "STK_BIN=${CMAKE_BINARY_DIR};STK_SRC=${CMAKE_SOURCE_DIR};STK_TEST_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp;STK_ARTIFACTS=${CMAKE_CURRENT_BINARY_DIR}/console-artifacts")
