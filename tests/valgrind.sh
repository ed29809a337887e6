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
# Slowest first (by ctest's own timings of the plain run, when there are any),
# so the two queues end together instead of one long test running alone last.
mapfile -t tests < <(cd "$B" && ctest -L unit -LE pg --show-only=json-v1 | python3 -c '
import json, os, shlex, sys
cost = {}
try:
    for line in open(os.path.join(sys.argv[1], "Testing/Temporary/CTestCostData.txt")):
        f = line.split()
        if len(f) == 3:
            cost[f[0]] = float(f[2])
except (OSError, ValueError):
    pass
rows = []
for t in json.load(sys.stdin)["tests"]:
    c = t.get("command") or []
    if c and os.path.dirname(c[0]) == os.path.join(sys.argv[1], "tests") and os.access(c[0], os.X_OK):
        rows.append((-cost.get(t["name"], 0.0), shlex.join([t["name"]] + c)))
for _, r in sorted(rows):
    print(r)' "$B")
echo "valgrind: ${#tests[@]} unit test programs"
[ ${#tests[@]} -gt 0 ]
printf '%s\n' "${tests[@]}" | xargs -P2 -I{} bash -c 'eval "one $1"' _ {}
