# Shared helpers for integration scripts. Source it; needs STK_BIN.
set -uo pipefail
: "${STK_BIN:?STK_BIN must point to the build directory}"
ST="$STK_BIN/sitetoken"
BRT="$STK_BIN/BulkRegistrationTokenTool"
T=$(mktemp -d "${STK_TEST_TMP:-/tmp}/it.XXXXXX")
PASSED=0
FAILED=0
_cleanup_hooks=()
on_exit() { _cleanup_hooks+=("$1"); }
_run_cleanup() {
  local h
  for h in "${_cleanup_hooks[@]+"${_cleanup_hooks[@]}"}"; do eval "$h" || true; done
  rm -rf "$T"
}
trap _run_cleanup EXIT

ok()   { PASSED=$((PASSED+1)); echo "ok - $*"; }
bad()  { FAILED=$((FAILED+1)); echo "FAIL - $*"; }
# expect_exit CODE DESCRIPTION -- command...   (stdout in $OUT, stderr in $ERR)
expect_exit() {
  local want=$1 what=$2; shift 3
  "$@" >"$T/out" 2>"$T/err"
  local got=$?
  OUT=$(cat "$T/out"); ERR=$(cat "$T/err")
  if [ "$got" -eq "$want" ]; then ok "$what (exit $got)"; else
    bad "$what: want exit $want, got $got"; sed 's/^/    | /' "$T/err" | head -5; fi
}
expect_in() { # expect_in TEXT HAYSTACK DESCRIPTION
  if grep -qF -- "$1" <<<"$2"; then ok "$3"; else bad "$3: '$1' not in: $(head -c 300 <<<"$2")"; fi
}
expect_eq() { if [ "$1" == "$2" ]; then ok "$3"; else bad "$3: '$1' != '$2'"; fi; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
}
