#!/usr/bin/env bash
# cppcheck and clang-tidy over the project's sources (not tests/fuzz/bench).
# Any finding fails the run: fix it, or suppress it at the line with a
# NOLINT/cppcheck-suppress comment that says why (see .clang-tidy).
# The compilation database names files by absolute path, so the paths
# cppcheck leaves out (-i) are absolute too: relative ones match nothing.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "$1" && pwd)   # a build dir configured with -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
cd "$SRC"
mapfile -t files < <(git ls-files '*.c' | grep -v '^tests/\|^fuzz/\|^bench/')
fail=0
echo "cppcheck: ${#files[@]} files"
if ! cppcheck --project="$B/compile_commands.json" --enable=warning,performance,portability \
    --inline-suppr --suppress=missingIncludeSystem --quiet -j2 --error-exitcode=1 \
    -i "$SRC/tests" -i "$SRC/fuzz" -i "$SRC/bench" 2>"$B/cppcheck.log"; then
  cat "$B/cppcheck.log"; fail=1
fi
echo "clang-tidy: ${#files[@]} files"
printf '%s\n' "${files[@]}" | xargs -P2 -n4 clang-tidy -p "$B" --quiet 2>/dev/null \
  | grep -E "warning:|error:" | sort -u > "$B/clang-tidy.log"
if [ -s "$B/clang-tidy.log" ]; then cat "$B/clang-tidy.log"; fail=1; fi
[ $fail -eq 0 ] && echo "static analysis: no findings"
exit $fail
