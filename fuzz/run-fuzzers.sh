#!/usr/bin/env bash
# Run every libFuzzer target for a bounded time (all at once: each is
# single-threaded). Fails if any target finds a crash, leak or UB.
set -uo pipefail
B=$1; SECS=${2:-30}
SRC=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
pids=(); names=()
for f in "$B"/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  t=${f##*/fuzz_}
  mkdir -p "$work/$t"
  ( cd "$work" && "$f" -max_total_time="$SECS" -max_len=9000 -timeout=10 -rss_limit_mb=2048 \
      "$work/$t" "$SRC/corpus/$t" >"$work/$t.log" 2>&1 ) &
  pids+=($!); names+=("$t")
done
fail=0
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then
    echo "fuzz ${names[$i]}: $(grep -E '^Done' "$work/${names[$i]}.log")"
  else
    fail=1; echo "fuzz ${names[$i]}: FAILED"; tail -30 "$work/${names[$i]}.log"
    ls "$work"/crash-* "$work"/leak-* 2>/dev/null | sed 's/^/  finding: /'
  fi
done
[ ${#pids[@]} -gt 0 ] || { echo "no fuzz targets built"; exit 1; }
exit $fail
