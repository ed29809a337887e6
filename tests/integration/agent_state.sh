#!/usr/bin/env bash
# Agent state hygiene and command line: directory and file modes, refusals
# of loose permissions, usage errors, the bulk token never on disk, the
# original /regtoken:TOKEN syntax, and `run` stopping on SIGTERM.
TEST_NAME=agent_state
. "$(dirname "$0")/harness.sh" server
serve_site

# Usage errors exit 2 and change nothing.
expect_exit 2 "no command" -- $AGENT --state "$T/u"
expect_exit 2 "install without /mp" -- $AGENT --state "$T/u" install SMSSiteCode=ABC
expect_refusal 2 "needs a bulk registration token" "install without token" -- $AGENT --state "$T/u" install /mp:"$CMG"
expect_exit 2 "stray argument" -- $AGENT --state "$T/u" register --mp "$MP" extra
expect_exit 2 "unknown property" -- $AGENT --state "$T/u" install /mp:"$CMG" /bogus:1
expect_exit 2 "no state dir" -- $AGENT register --mp "$MP"
expect_exit 1 "status of an unregistered device" -- $AGENT --state "$T/u" status

# A state directory others can read is refused.
mkdir -m 755 "$T/loose"
expect_refusal 3 "mode 0755" "state directory readable by others" -- \
	$AGENT --state "$T/loose" --ca "$T/tls.crt" register --mp "$MP"

# Original seed syntax with the token on the command line still works, and
# the agent writes it nowhere.
tokf=$T/bulk.tok; new_bulk "$tokf" >/dev/null
agent S 0 install /mp:"$CMG" CCMHOSTNAME=127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/$SITE_NUMBER \
	SMSSiteCode=ABC /regtoken:"$(cat "$tokf")" >/dev/null || fail "argv /regtoken:"
sig=$(cut -d. -f3 "$tokf")
if grep -rqF -e "$sig" "$T/S" "$SITE"; then fail "bulk token on disk"; fi
for f in "$T/S"/*; do
	case "$(basename "$f")" in
	device.key|client.token|state.json) [ "$(stat -c %a "$f")" = 600 ] || fail "$f mode" ;;
	device.crt) [ "$(stat -c %a "$f")" = 644 ] || fail "$f mode" ;;
	esac
done
ok "seed syntax with /regtoken:TOKEN works; token not on disk; file modes 0600/0644"

# Loose client token file is refused.
chmod 644 "$T/S/client.token"
expect_refusal 3 "client.token has mode 0644" "client token readable by others" -- agent S 0 policy
chmod 600 "$T/S/client.token"
agent S 0 policy >/dev/null || fail "policy after chmod"

# Server certificate trust: without --ca the self-signed server is refused.
expect_exit 3 "server TLS certificate checked (no --ca: refused)" -- $AGENT --state "$T/S" policy

# run stops cleanly on SIGTERM.
$AGENT --state "$T/S" --ca "$T/tls.crt" run --interval 3600 > "$T/run.out" &
rp=$!
# SIGTERM once the first round is done (a fixed sleep could signal a loaded
# agent before it set its handler).
wait_for 30 grep -q "renewal not due" "$T/run.out" || fail "run output: $(cat "$T/run.out")"
kill -TERM "$rp"
expect_exit 0 "run after SIGTERM" -- wait "$rp"
ok "run checks renewal and stops on SIGTERM"
assert_no_tokens_in_logs
