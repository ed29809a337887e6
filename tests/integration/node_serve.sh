#!/usr/bin/env bash
# Two `sitetoken serve` processes (nodes A and B), each with its own key, on
# one PostgreSQL site; node A reaches the database on its unix socket, node B
# over TCP on 127.0.0.1 with a SCRAM password from PGPASSFILE, as a node on
# another machine would. A device registered on node A renews through node B;
# a bulk token blocked on node A is refused on node B at once; node B learns
# a key made after it started (unknown kid -> key set re-read); a device
# blocked on node A is refused by node B's token cache at once; devices
# registering on both nodes at once leave one intact audit chain.
TEST_NAME=node_serve
. "$(dirname "$0")/harness.sh"
set -e
server_env
: "${SITETOKEN_DB:?the pg fixture sets SITETOKEN_DB}"
SITEB=$T/siteB
PIDB=
stop_b() { # node B, once
	local pid=$PIDB
	PIDB=
	[ -z "$pid" ] || stop_node "$pid" B
}
on_exit stop_b
sq() { psql "$SITETOKEN_DB" -v ON_ERROR_STOP=1 -qAtc "SET search_path TO $SCHEMA; $1"; }
start_b() {
	serve_node "$SITEB" B "${mpb_port:-0}" "${cmgb_port:-0}" 0
	PIDB=$SERVED_PID mpb_port=$SERVED_MP_PORT cmgb_port=$SERVED_CMG_PORT
	MPB=http://127.0.0.1:$mpb_port
	CMGB=https://127.0.0.1:$cmgb_port/CCM_Proxy_MutualAuth/$SITE_NUMBER
}

make_site
SCHEMA=$(sed -n 's/^schema=//p' "$SITE/site.conf")
[ -n "$SCHEMA" ] || fail "site A is not on PostgreSQL"
$STK node add --site "$SITEB" --node nodeB --db service=sitetoken_tcp --db-schema "$SCHEMA" \
	>/dev/null || fail "node add over TCP"
grep -qx 'db=service=sitetoken_tcp' "$SITEB/site.conf" || fail "node B's site.conf: $(cat "$SITEB/site.conf")"
! grep -v '^#' "$SITEB/site.conf" | has -i password || fail "a password in node B's site.conf"
expect_refusal 3 password "TCP without the password file" -- \
	env -u PGPASSFILE $STK site show --site "$SITEB"
kid_of_node() { $STK key list --site "$SITE" --json | json "[k['kid'] for k in d if k['node']=='$1'][0]"; }
kidA=$(kid_of_node main)
kidB=$(kid_of_node nodeB)
# Node A vouches for node B's key (a key row alone is not trusted).
$STK key endorse --site "$SITE" --kid "$kidB" >/dev/null || fail "node A endorses node B's key"
start_server 0
MPA=$MP CMGA=$CMG
start_b
tcp=$(psql "$SITETOKEN_DB" -qAtc "SELECT count(*) FROM pg_stat_activity WHERE datname = 'sitetoken' AND client_addr = '127.0.0.1'")
[ "$tcp" -ge 1 ] || fail "node B has no TCP connection to the database"
ok "two nodes serving one PostgreSQL site (A: $MPA on the socket, B: $MPB over TCP 127.0.0.1)"

# Registered on node A (internal MP), renewed through node B's gateway.
agent X 0 register --mp "$MPA" --cmg "$CMGB" >/dev/null || fail "register on node A"
[ "$(kid_of "$T/X/client.token")" = "$kidA" ] || fail "token from node A not signed by A's key"
gx=$(agent X 0 status --json | json_get device_guid)
agent X 0 policy | has "\"device_guid\":\"$gx\"" || fail "node B refused node A's token"
ok "node B's gateway accepts a token node A issued"
j0=$(agent X 0 status --json | json_get jti)
agent X 0 renew --force >/dev/null || fail "renewal through node B"
[ "$(agent X 0 status --json | json_get jti)" != "$j0" ] || fail "token not renewed"
[ "$(kid_of "$T/X/client.token")" = "$kidB" ] || fail "renewed token not signed by node B's key"
[ "$(sq "SELECT last_token_jti FROM devices WHERE guid='$gx'")" = "$(agent X 0 status --json | json_get jti)" ] || fail "renewal not in the shared store"
grep -q "(renewal)" "$SITEB/logs/CCM_STS.log" || fail "node B's STS log"
ok "a device registered on node A renews through node B (new token signed by B, recorded in the one store)"

# A bulk token blocked on node A is refused on node B at once.
bguid=$(new_bulk "$T/bulk.tok")
agent Y 0 register --cmg "$CMGB" --regtoken-file "$T/bulk.tok" >/dev/null || fail "bulk registration on node B"
$STK bulk block --site "$SITE" "$bguid" >/dev/null || fail "block on node A"
expect_refusal 1 "HTTP 403 bulk_token_blocked" "node B after the block" -- \
	agent Z 0 register --cmg "$CMGB" --regtoken-file "$T/bulk.tok"
grep -q "Refused registration from 127.0.0.1: bulk_token_blocked" "$SITEB/logs/ClientAuth.log" || fail "node B ClientAuth.log"
ok "a bulk token blocked on node A is refused on node B at once (403 bulk_token_blocked)"

# Node A rotates its key while node B runs: B has never seen the new kid and
# re-reads the key set when a token names it.
$STK key rotate --site "$SITE" >/dev/null || fail "rotate on node A"
stop_server; start_server 0
agent W 0 register --mp "$MP" --cmg "$CMGB" >/dev/null || fail "register after rotation"
kidA2=$(kid_of "$T/W/client.token")
[ "$kidA2" != "$kidA" ] || fail "node A still signs with the old key"
agent W 0 policy >/dev/null || fail "node B refused the new key: $(tail -3 "$SITEB/logs/ClientAuth.log")"
agent X 0 policy >/dev/null || fail "node B token refused after rotation"
ok "node B verifies node A's new key at once (unknown kid -> key set re-read)"

# Node B has verified device X's token before, and its gateway cache holds
# X's state (site/registration/tokcache.c): a block made on node A (the CLI, another
# process) is refused by node B on every request that starts 1 s after the
# block committed (B polls the site's generation counter at most once a
# second), and the unblock is accepted within the same bound.
agent X 0 policy >/dev/null || fail "node B policy (warm)"
agent X 0 policy >/dev/null || fail "node B policy (warm, cached)"
$STK devices block --site "$SITE" "$gx" >/dev/null || fail "device block on node A"
sleep 1.05
rc=0; agent X 0 policy 2>"$T/err" >/dev/null || rc=$?
[ "$rc" != 0 ] && grep -q "device_blocked" "$T/err" || fail "node B 1 s after the device block: rc $rc $(cat "$T/err")"
$STK devices unblock --site "$SITE" "$gx" >/dev/null || fail "device unblock on node A"
sleep 1.05
agent X 0 policy >/dev/null || fail "node B after the unblock: $(tail -2 "$SITEB/logs/ClientAuth.log")"
ok "a device blocked on node A is refused on node B within the 1 s bound though B has it cached (403 device_blocked), and accepted again after the unblock"

# Registrations on both nodes at once: one chain, no fork.
N=16
pids=()
for i in $(seq "$N"); do
	if [ $((i % 2)) -eq 0 ]; then mp=$MPA; else mp=$MPB; fi
	agent "c$i" 0 register --mp "$mp" >"$T/c$i.out" 2>&1 &
	pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
[ "$failed" = 0 ] || fail "$failed concurrent registrations failed: $(cat "$T"/c*.out | head -5)"
[ "$(sq "SELECT count(*) FROM audit WHERE event LIKE 'device.register.%' AND outcome='ok' AND subject IN (SELECT guid FROM devices)")" -ge "$((N + 3))" ] || fail "registrations audited"
[ "$(sq "SELECT count(DISTINCT prev_hash) = count(*) AND max(seq) = count(*) FROM audit")" = t ] || fail "audit chain forked"
stop_b; stop_server
$STK audit verify --site "$SITE" >/dev/null || fail "audit verify on node A"
$STK audit verify --site "$SITEB" >/dev/null || fail "audit verify on node B"
ok "$N registrations on two nodes at once: one audit chain, verified from both nodes"
assert_no_tokens_in_logs
psql "$SITETOKEN_DB" -qc "SET client_min_messages TO warning; DROP SCHEMA $SCHEMA CASCADE" >/dev/null
