#!/usr/bin/env bash
# Run every unit test binary under valgrind memcheck, two at a time: zero
# errors and zero definite leaks, or the run fails.
set -euo pipefail
B=$(cd "$1" && pwd)
export B
one() { # one TEST PROGRAM [ARGS...]: 0 when clean; log in $B/tests/tmp/valgrind-TEST.log
  local t=$1 log=$B/tests/tmp/valgrind-$1.log s=$SECONDS; shift
  if STK_TEST_TMP="$B/tests/tmp" valgrind -q --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite --show-leak-kinds=definite "$@" >"$log" 2>&1; then
    echo "valgrind: $t clean ($((SECONDS - s)) s)"
  else
    echo "valgrind: $t FAILED"; tail -40 "$log"; return 1
  fi
}
export -f one
# Every unit test whose program is built in tests/ (a backend-matrix test
# runs once per backend, its argument from ctest), not the PostgreSQL runs.
mapfile -t tests < <(cd "$B" && ctest -L unit -LE pg --show-only=json-v1 | python3 -c '
import json, os, shlex, sys
for t in json.load(sys.stdin)["tests"]:
    c = t.get("command") or []
    if c and os.path.dirname(c[0]) == os.path.join(sys.argv[1], "tests") and os.access(c[0], os.X_OK):
        print(shlex.join([t["name"]] + c))' "$B")
echo "valgrind: ${#tests[@]} unit test programs"
[ ${#tests[@]} -gt 0 ]
printf '%s\n' "${tests[@]}" | xargs -P2 -I{} bash -c 'eval "one $1"' _ {}
