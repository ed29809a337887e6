#!/usr/bin/env bash
# Run every unit test binary under valgrind memcheck: zero errors and zero
# definite leaks, or the run fails.
set -euo pipefail
B=$1
fail=0
n=0
for t in $(cd "$B" && ctest -L unit -N | awk '/Test +#/ {print $3}'); do
  exe=$(find "$B/tests" -maxdepth 1 -type f -name "$t" -perm -u+x | head -1)
  [ -n "$exe" ] || continue
  n=$((n+1))
  if ! STK_TEST_TMP="$B/tests/tmp" valgrind -q --error-exitcode=99 --leak-check=full \
      --errors-for-leak-kinds=definite --show-leak-kinds=definite "$exe" >"$B/tests/tmp/valgrind-$t.log" 2>&1; then
    echo "valgrind: $t FAILED"; tail -40 "$B/tests/tmp/valgrind-$t.log"; fail=1
  fi
done
echo "valgrind: $n unit test programs checked"
[ $n -gt 0 ] && [ $fail -eq 0 ]
