#!/usr/bin/env bash
# Stop the swtpm that swtpm-start.sh started for STATE_DIR, by its process
# id, and wait until it has exited (so its state files are complete and a
# restart with the same STATE_DIR sees everything). Idempotent.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 1; }
STATE=$1
pidfile="$STATE/swtpm.pid"
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile" 2>/dev/null || true)
rm -f "$STATE/tcti"
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
  rm -f "$pidfile"
  exit 0
fi
# Never signal a recycled pid that is no longer our swtpm.
if ! grep -q swtpm "/proc/$pid/cmdline" 2>/dev/null; then
  rm -f "$pidfile"
  exit 0
fi
kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
if kill -0 "$pid" 2>/dev/null; then
  echo "swtpm-stop: swtpm $pid did not exit on TERM; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
fi
rm -f "$pidfile"
