#!/usr/bin/env bash
# Device fault under load: the TPM holding the site key (swtpm) is killed -9
# while two clients register devices as fast as they can (every
# registration is a TPM2_Sign), and started again on the same ports with the
# same state a moment later. What clients see: 200s, then during the outage
# 500s whose message says the TPM cannot be reached, then 200s again from
# the same server process (the backend reconnects and reloads the key). No
# registration is half-done: every device row has its audit record, and the
# audit chain (its checkpoints are TPM signatures) verifies.
TEST_NAME=fault_swtpm
. "$(dirname "$0")/harness.sh"
set -e
server_env
command -v swtpm >/dev/null || fail "swtpm missing (apt-get install swtpm swtpm-tools)"
TPM=$T/tpm
LOOPS=()
cleanup_tpm() {
	local p
	for p in "${LOOPS[@]+"${LOOPS[@]}"}"; do kill "$p" 2>/dev/null || true; done
	stop_server || true
	_swtpm_stop "$TPM"
	[ -z "${SWTPM2:-}" ] || kill "$SWTPM2" 2>/dev/null || true
}
on_exit cleanup_tpm
eval "$(bash "$STK_SRC/swtpm-setup/swtpm-start.sh" "$TPM")"
export TSS2_LOG=all+none
port=${SITETOKEN_TCTI##*port=}
$STK site init --site "$SITE" --backend tpm --key-type p256 >/dev/null || fail "site init on swtpm"
dev_cert tls -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1
start_server 0 --threads 4
dev_cert d1
dev_cert d2
STOP=$T/stop
# Each loop re-registers its device (same certificate: a new token each time)
# with its proof of possession (mp_pop_body), in a scratch directory of its own.
load() {
	local code codes=$T/codes$1 crt=$T/d$1.crt key=$T/d$1.key T=$T/load$1
	mkdir "$T"
	while [ ! -e "$STOP" ]; do
		mp_pop_body "$crt" "$key" 2>/dev/null || true
		code=$(post_json "$MP/sitetoken/v1/register" "$T/body")
		echo "$(date +%s.%N) ${code%% *} $(head -c 300 "$T/resp" | tr -d '\n' | grep -o '"message": *"[^"]*"' || true)" >>"$codes"
	done
}
for c in 1 2; do load "$c" & LOOPS+=($!); done
# ok200 SINCE: registrations answered 200 after time SINCE (both clients);
# n500 SINCE: the same for 500s.
ok200() { cat "$T"/codes[12] 2>/dev/null | awk -v t="$1" '$1 > t && $2 == 200' | wc -l; }
n500() { cat "$T"/codes[12] 2>/dev/null | awk -v t="$1" '$1 > t && $2 == 500' | wc -l; }
# Under load first (at least 3 registrations, whatever the machine's speed).
for _ in $(seq 300); do [ "$(ok200 0)" -ge 3 ] && break; sleep 0.1; done
t_kill=$(date +%s.%N)
kill -9 "$SWTPM_PID"
# Down for 2 s, and until a client has been answered while it was down: on a
# loaded machine one registration can take longer than 2 s.
sleep 2
down_since=$(awk -v k="$t_kill" 'BEGIN { printf "%.3f", k + 0.3 }')
for _ in $(seq 600); do [ "$(n500 "$down_since")" -ge 1 ] && break; sleep 0.1; done
t_back=$(date +%s.%N)
# Same ports, same state directory: the TPM "reboots".
swtpm socket --tpm2 --tpmstate dir="$TPM",mode=0600 \
	--server type=tcp,port="$port",bindaddr=127.0.0.1 \
	--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
	--flags not-need-init,startup-clear --pid file="$TPM/swtpm.pid" \
	--log file="$TPM/swtpm.log",level=1 --daemon || fail "swtpm restart on port $port"
for _ in $(seq 50); do [ -s "$TPM/swtpm.pid" ] && break; sleep 0.1; done
SWTPM2=$(cat "$TPM/swtpm.pid")
# Then at least 3 registrations more than a second after the restart.
for _ in $(seq 300); do
	[ "$(ok200 "$(awk -v b="$t_back" 'BEGIN { printf "%.3f", b + 1 }')")" -ge 3 ] && break
	sleep 0.1
done
touch "$T/stop"
for p in "${LOOPS[@]}"; do wait "$p"; done
LOOPS=()
kill -0 "$SERVER_PID" || fail "the server died with the TPM"
cat "$T/codes1" "$T/codes2" | sort -n > "$T/codes"
read -r before during after other <<<"$(awk -v k="$t_kill" -v b="$t_back" '
	$1 < k && $2 == 200 { before++ }
	$1 > k + 0.3 && $1 < b && $2 == 500 { during++ }
	$1 > b + 1 && $2 == 200 { after++ }
	$2 != 200 && $2 != 500 { other++ }
	END { print before + 0, during + 0, after + 0, other + 0 }' "$T/codes")"
echo "# registrations: $before before the kill, $during refused while the TPM was down, $after after its restart"
[ "$before" -ge 3 ] || fail "only $before registrations before the kill"
[ "$during" -ge 1 ] || fail "no refusal while the TPM was down: $(head -3 "$T/codes")"
[ "$after" -ge 3 ] || fail "only $after registrations after the TPM came back: $(tail -3 "$T/codes")"
[ "$other" = 0 ] || fail "unexpected answers: $(awk '$2 != 200 && $2 != 500' "$T/codes" | head -3)"
msg=$(awk '$2 == 500 { $1 = $2 = ""; sub(/^ +/, ""); print; exit }' "$T/codes")
[[ "$msg" == *"see the server logs"* ]] || fail "the refusal: $msg"
grep -q "Refused registration via mp from 127.0.0.1: internal_error (TPM unreachable: " \
	"$SITE/logs/MP_RegistrationManager.log" || fail "MP_RegistrationManager.log does not name the TPM"
grep -q "TPM connection lost or TPM reset; reloaded key" "$T/server.stderr" || fail "no key reload logged"
ok "swtpm killed -9 under load: clients get 500 ($msg), MP_RegistrationManager.log says 'TPM unreachable', and the same server signs again after the TPM restarts (key reloaded)"
late=$(awk -v b="$t_back" '$1 > b + 1 && $2 != 200' "$T/codes")
[ -z "$late" ] || fail "refusals after the TPM was back: ${late:0:300}"
stop_server
# Nothing half-done: devices and accepted registration records match.
[ "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices")" = 2 ] || fail "device rows"
acked=$(awk '$2 == 200' "$T/codes" | wc -l)
recs=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE event = 'device.register.mp' AND outcome = 'ok'")
[ "$recs" -ge "$acked" ] || fail "$acked registrations acknowledged, $recs recorded"
$STK audit verify --site "$SITE" > "$T/verify" 2>&1 || fail "audit verify: $(cat "$T/verify")"
ok "every acknowledged registration recorded ($acked, $recs records); audit verify: $(tail -1 "$T/verify")"
