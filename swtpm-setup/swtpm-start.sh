#!/usr/bin/env bash
# Start a software TPM 2.0 (swtpm) on free loopback ports for tests, CI and
# the demo.
#
#   eval "$(swtpm-setup/swtpm-start.sh STATE_DIR)"
#
# Prints, for eval:
#   export SITETOKEN_TCTI='swtpm:host=127.0.0.1,port=N'
#   export SWTPM_PID=N
# and writes STATE_DIR/swtpm.pid and STATE_DIR/tcti. Stop it with
# swtpm-setup/swtpm-stop.sh STATE_DIR. Starting again with the same
# STATE_DIR keeps the TPM's keys and seeds (only the volatile state is reset,
# as on a reboot).
#
# Ports: we pick a random pair above the ephemeral-looking range and let
# swtpm itself tell us whether it could bind them; on a collision (another
# test run picked the same port in the meantime) we try another pair. That
# avoids the "check then bind" race a port scan alone would have.
set -euo pipefail

die() { echo "swtpm-start: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $0 STATE_DIR"
command -v swtpm >/dev/null || die "swtpm is not installed (apt-get install swtpm swtpm-tools)"
STATE=$1
mkdir -p "$STATE"
chmod 700 "$STATE"
STATE=$(cd "$STATE" && pwd)

if [ -f "$STATE/swtpm.pid" ]; then
  old=$(cat "$STATE/swtpm.pid" 2>/dev/null || true)
  if [ -n "$old" ] && kill -0 "$old" 2>/dev/null &&
      grep -q swtpm "/proc/$old/cmdline" 2>/dev/null; then
    die "swtpm already running for $STATE (pid $old); stop it first"
  fi
  rm -f "$STATE/swtpm.pid"
fi

port_busy() { # port_busy PORT: something listens on it already
  ss -Htln "sport = :$1" 2>/dev/null | grep -q . && return 0
  return 1
}

# Send TPM2_GetRandom(8) on the command port and expect TPM_RC_SUCCESS:
# "it answers" means the TPM itself executes commands, not just that a
# socket accepts connections.
tpm_answers() { # tpm_answers PORT
  local out
  out=$(timeout 3 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/'"$1"' || exit 1
    printf "\x80\x01\x00\x00\x00\x0c\x00\x00\x01\x7b\x00\x08" >&3
    head -c 10 <&3 | od -An -tx1' 2>/dev/null) || return 1
  [ "$(echo $out)" = "80 01 00 00 00 14 00 00 00 00" ]
}

started=""
for attempt in $(seq 1 20); do
  port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
  port=$(( port - port % 2 ))
  ctrl=$(( port + 1 ))
  if port_busy "$port" || port_busy "$ctrl"; then
    continue
  fi
  rm -f "$STATE/swtpm.pid"
  : >"$STATE/swtpm.log"
  # --daemon returns only after the sockets are bound, so a bind failure
  # shows up as a non-zero exit here and we retry with other ports.
  if swtpm socket --tpm2 \
      --tpmstate dir="$STATE",mode=0600 \
      --server type=tcp,port="$port",bindaddr=127.0.0.1 \
      --ctrl type=tcp,port="$ctrl",bindaddr=127.0.0.1 \
      --flags not-need-init,startup-clear \
      --pid file="$STATE/swtpm.pid" \
      --log file="$STATE/swtpm.log",level=1 \
      --daemon 2>>"$STATE/swtpm.log"; then
    for _ in $(seq 1 50); do
      [ -s "$STATE/swtpm.pid" ] && break
      sleep 0.1
    done
    pid=$(cat "$STATE/swtpm.pid" 2>/dev/null || true)
    [ -n "$pid" ] || die "swtpm started but wrote no pid file (see $STATE/swtpm.log)"
    for _ in $(seq 1 50); do
      if tpm_answers "$port"; then
        started=1
        break
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    [ -n "$started" ] && break
    # Bound but not answering: stop it and try afresh.
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$STATE/swtpm.pid"
  fi
  grep -qiE "address already in use|bind" "$STATE/swtpm.log" ||
    die "swtpm failed to start: $(tail -5 "$STATE/swtpm.log")"
done
[ -n "$started" ] || die "could not start swtpm on a free port after 20 tries"

tcti="swtpm:host=127.0.0.1,port=$port"
echo "$tcti" >"$STATE/tcti"
echo "export SITETOKEN_TCTI='$tcti'"
echo "export SWTPM_PID=$pid"
