#!/usr/bin/env bash
# Agent state hygiene and command line: directory and file modes, refusals
# of loose permissions, usage errors, the bulk token never on disk, the
# original /regtoken:TOKEN syntax, and `run` stopping on SIGTERM.
TEST_NAME=agent_state
. "$(dirname "$0")/server_lib.sh"
make_site
start_server

# Usage errors exit 2 and change nothing.
rc=0; $AGENT --state "$T/u" 2>/dev/null || rc=$?; [ "$rc" = 2 ] || fail "no command: $rc"
rc=0; $AGENT --state "$T/u" install SMSSiteCode=ABC 2>/dev/null || rc=$?; [ "$rc" = 2 ] || fail "install without /mp: $rc"
rc=0; $AGENT --state "$T/u" install /mp:"$CMG" 2>"$T/err" || rc=$?
[ "$rc" = 2 ] && grep -q "needs a bulk registration token" "$T/err" || fail "install without token: $rc"
rc=0; $AGENT --state "$T/u" register --mp "$MP" extra 2>/dev/null || rc=$?; [ "$rc" = 2 ] || fail "stray argument: $rc"
rc=0; $AGENT --state "$T/u" install /mp:"$CMG" /bogus:1 2>/dev/null || rc=$?; [ "$rc" = 2 ] || fail "unknown property: $rc"
rc=0; $AGENT 2>/dev/null register --mp "$MP" || rc=$?; [ "$rc" = 2 ] || fail "no state dir: $rc"
rc=0; $AGENT --state "$T/u" status >/dev/null || rc=$?; [ "$rc" = 1 ] || fail "status unregistered: $rc"
ok "usage errors exit 2; status of an unregistered device exits 1"

# A state directory others can read is refused.
mkdir -m 755 "$T/loose"
rc=0; $AGENT --state "$T/loose" --ca "$T/tls.crt" register --mp "$MP" 2>"$T/err" || rc=$?
[ "$rc" = 3 ] && grep -q "mode 0755" "$T/err" || fail "loose state dir: $rc $(cat "$T/err")"
ok "state directory readable by others refused"

# Original seed syntax with the token on the command line still works, and
# the agent writes it nowhere.
tokf=$T/bulk.tok; new_bulk "$tokf" >/dev/null
agent S 0 install /mp:"$CMG" CCMHOSTNAME=127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/$SITE_NUMBER \
	SMSSiteCode=ABC /regtoken:"$(cat "$tokf")" >/dev/null || fail "argv /regtoken:"
sig=$(cut -d. -f3 "$tokf")
if grep -rqF "$sig" "$T/S" "$SITE"; then fail "bulk token on disk"; fi
for f in "$T/S"/*; do
	case "$(basename "$f")" in
	device.key|client.token|state.json) [ "$(stat -c %a "$f")" = 600 ] || fail "$f mode" ;;
	device.crt) [ "$(stat -c %a "$f")" = 644 ] || fail "$f mode" ;;
	esac
done
ok "seed syntax with /regtoken:TOKEN works; token not on disk; file modes 0600/0644"

# Loose client token file is refused.
chmod 644 "$T/S/client.token"
rc=0; agent S 0 policy 2>"$T/err" >/dev/null || rc=$?
[ "$rc" = 3 ] && grep -q "client.token has mode 0644" "$T/err" || fail "loose token: $rc $(cat "$T/err")"
chmod 600 "$T/S/client.token"
agent S 0 policy >/dev/null || fail "policy after chmod"
ok "client token readable by others refused"

# Server certificate trust: without --ca the self-signed server is refused.
rc=0; $AGENT --state "$T/S" policy 2>"$T/err" >/dev/null || rc=$?
[ "$rc" = 3 ] || fail "untrusted server accepted: $rc"
ok "server TLS certificate checked (no --ca: refused)"

# run stops cleanly on SIGTERM.
$AGENT --state "$T/S" --ca "$T/tls.crt" run --interval 3600 > "$T/run.out" &
rp=$!
sleep 1
kill -TERM "$rp"
rc=0; wait "$rp" || rc=$?
[ "$rc" = 0 ] || fail "run exit $rc after SIGTERM"
grep -q "renewal not due" "$T/run.out" || fail "run output"
ok "run checks renewal and stops on SIGTERM"
assert_no_tokens_in_logs
