# Admin console (sitetoken serve --admin): the JSON API from the shell, and
# the page in headless Chromium (Debian chromium) driven by playwright-core.
# The browser test keeps its screenshots in tests/console-artifacts/ of the
# build tree (a CI artifact). Nothing skips when CI=true.
stk_script_test(console_api integration/console_api.sh)
set_tests_properties(console_api PROPERTIES LABELS "integration;server;console"
  TIMEOUT 300)
