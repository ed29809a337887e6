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
port=$(sed -n 's/^swtpm:host=127\.0\.0\.1,port=\([0-9]*\)$/\1/p' "$STATE/tcti" 2>/dev/null || true)
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
# An orderly TPM2_Shutdown(CLEAR) first, as an OS does at power-off. A TPM
# that is just killed counts the next start-up as a possible attack and
# raises its dictionary-attack counter: a few test restarts would then lock
# out every DA-protected key.
if [ -n "$port" ]; then
  timeout 3 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/'"$port"' || exit 1
    printf "\x80\x01\x00\x00\x00\x0c\x00\x00\x01\x45\x00\x00" >&3
    head -c 10 <&3 >/dev/null' 2>/dev/null || true
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
