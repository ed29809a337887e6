#!/usr/bin/env bash
# Run every unit test binary under valgrind memcheck, two at a time: zero
# errors and zero definite leaks, or the run fails.
set -euo pipefail
B=$(cd "$1" && pwd)
export B
one() { # one TEST: 0 when clean; log in $B/tests/tmp/valgrind-TEST.log
  local t=$1 exe=$B/tests/$1 log=$B/tests/tmp/valgrind-$1.log s=$SECONDS
  if STK_TEST_TMP="$B/tests/tmp" valgrind -q --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite --show-leak-kinds=definite "$exe" >"$log" 2>&1; then
    echo "valgrind: $t clean ($((SECONDS - s)) s)"
  else
    echo "valgrind: $t FAILED"; tail -40 "$log"; return 1
  fi
}
export -f one
mapfile -t tests < <(cd "$B" && ctest -L unit -N | awk '/Test +#/ {print $3}' |
  while read -r t; do [ -x "$B/tests/$t" ] && [ -f "$B/tests/$t" ] && echo "$t"; done)
echo "valgrind: ${#tests[@]} unit test programs"
[ ${#tests[@]} -gt 0 ]
printf '%s\n' "${tests[@]}" | xargs -P2 -I{} bash -c 'one "$1"' _ {}
