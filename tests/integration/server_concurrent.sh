#!/usr/bin/env bash
# 50 devices register at the same time (half through the CMG with a bulk
# token, half with the internal MP): every one is recorded exactly once,
# audited once, and the audit chain stays intact. Prints registrations/s.
TEST_NAME=server_concurrent
. "$(dirname "$0")/harness.sh" server
N=${STK_CONCURRENT_DEVICES:-50}
serve_site 0 --threads 8
new_bulk "$T/bulk.tok" >/dev/null

# Make the device identities first so the timing below is registration only.
for i in $(seq "$N"); do mkdir -m 700 "$T/d$i"; done
start=$(date +%s.%N)
pids=()
for i in $(seq "$N"); do
	if [ $((i % 2)) -eq 0 ]; then
		agent "d$i" 0 register --cmg "$CMG" --regtoken-file "$T/bulk.tok" >"$T/d$i.out" 2>&1 &
	else
		agent "d$i" 0 register --mp "$MP" >"$T/d$i.out" 2>&1 &
	fi
	pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
end=$(date +%s.%N)
[ "$failed" = 0 ] || { cat "$T"/d*.out | grep -v registered | head; fail "$failed registrations failed"; }
rate=$(python3 -c "import sys; print('%.1f' % ($N / ($end - $start)))")
echo "# $N concurrent registrations (agents incl. key generation) in $(python3 -c "print('%.2f' % ($end - $start))") s: $rate registrations/s"

[ "$(count_devices)" = "$N" ] || fail "devices recorded: $(count_devices), want $N"
[ "$(sqlite3 "$SITE/site.db" "SELECT count(DISTINCT cert_thumbprint) FROM devices")" = "$N" ] || fail "thumbprints"
[ "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices WHERE via='cmg'")" = $((N / 2)) ] || fail "cmg count"
expect_eq "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE event LIKE 'device.register.%' AND outcome='ok'")" \
	"$N" "audited registrations"
for i in $(seq "$N"); do agent "d$i" 0 status --json | json_get device_guid; done | sort > "$T/agent_guids"
sqlite3 "$SITE/site.db" "SELECT guid FROM devices" | sort > "$T/db_guids"
cmp -s "$T/agent_guids" "$T/db_guids" || fail "agents' GUIDs differ from the database"
ok "$N concurrent registrations recorded exactly once, each audited once"

# Every CMG device can authenticate at once too.
pids=()
for i in $(seq 2 2 "$N"); do agent "d$i" 0 policy >/dev/null 2>&1 & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "concurrent policy request failed"; done
ok "concurrent authenticated requests accepted"

expect_eq "$(grep -c "registered via" "$SITE/logs/MP_RegistrationManager.log")" "$N" \
	"MP_RegistrationManager.log lines"
assert_no_tokens_in_logs
stop_server
$STK audit verify >/dev/null || fail "audit verify"
ok "one log line per registration; audit chain verifies"
