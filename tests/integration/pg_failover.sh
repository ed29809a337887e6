#!/usr/bin/env bash
# Database failover under load. A PostgreSQL primary and a synchronous
# standby (pg_basebackup -R, synchronous_commit=on, synchronous_standby_names)
# on free loopback ports; two `sitetoken serve` nodes reach them through one
# libpq multi-host string (host=127.0.0.1,127.0.0.1 port=P1,P2
# target_session_attrs=read-write). While clients register devices, renew
# tokens and block bulk tokens on both nodes, the primary is killed -9 (the
# postmaster and every backend: a host that died) at a random moment and the
# standby promoted (pg_ctl promote). The nodes carry on without a restart.
# Afterwards, on the promoted database: every acknowledged registration,
# renewal and block is there; no certificate has two devices; audit verify
# passes. Prints the window of refused requests in seconds.
# Bulk tokens with a use limit (--max-uses N) are redeemed through the CMG
# across the failover, each until it is refused bulk_token_exhausted: each
# has exactly N enrollments on the promoted database (a retry after an
# unknown outcome does not use a token twice).
# Also: a node started against the standby refuses it (exit 3, names it), and
# a node whose reconnect lands on the standby (no target_session_attrs)
# refuses requests until the promotion, then carries on.
TEST_NAME=pg_failover
. "$(dirname "$0")/harness.sh"
set -e
server_env
PIDB= PIDC= CLIENTS= GEN=
now() { date +%s.%N; }
# At exit, before pgo_init's hook stops the clusters: the load, then the nodes.
stop_all() {
	local p
	for p in $CLIENTS $GEN $PIDB $PIDC; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	stop_server
}
on_exit stop_all
pgo_init

# Device identities for the load, made while the clusters start.
mkdir -p "$T/ids"
(
	for i in $(seq 460); do
		dev_cert "$T/ids/d$i" || exit 1
	done
) &
GEN=$!

# ---- primary and synchronous standby ----
pgo_initdb primary
# Settings on the command line, not in the data directory, so the standby's
# copy does not inherit the primary's synchronous_standby_names.
PGOPTS="-c max_connections=60 -c wal_level=replica -c max_wal_senders=4"
pgo_start primary P1 "$PGOPTS"
pgo_make_db "$P1"
as_pg "$PGBIN/pg_basebackup" -h "$PGD" -p "$P1" -U postgres -D "$PGD/standby" -R -X stream -c fast \
	>"$PGD/basebackup.log" 2>&1 || fail "pg_basebackup: $(cat "$PGD/basebackup.log")"
pgo_start standby P2 "$PGOPTS -c cluster_name=stk_standby -c hot_standby=on"
psu "$P1" "ALTER SYSTEM SET synchronous_standby_names = 'stk_standby'" >/dev/null
psu "$P1" "ALTER SYSTEM SET synchronous_commit = 'on'" >/dev/null
psu "$P1" "SELECT pg_reload_conf()" >/dev/null
synced() { [ "$(psu "$P1" "SELECT sync_state FROM pg_stat_replication
	WHERE application_name = 'stk_standby'")" = sync ]; }
wait_for 10 synced || fail "the standby is not synchronous"
[ "$(psu "$P2" "SELECT pg_is_in_recovery()")" = t ] || fail "the standby is not in recovery"
ok "primary on 127.0.0.1:$P1, synchronous standby on 127.0.0.1:$P2 (pg_basebackup -R)"

# ---- a standby is not a primary ----
STANDBY_ONLY="host=127.0.0.1 port=$P2 dbname=sitetoken user=sitetoken"
expect_refusal 3 "127.0.0.1 port $P2 is a read-only standby" "site init against the standby" -- \
	$STK site init --site "$T/on_standby" --db "$STANDBY_ONLY"
[ ! -e "$T/on_standby" ] || fail "site init on the standby left $T/on_standby"

# ---- the site, on the multi-host string ----
MULTI="host=127.0.0.1,127.0.0.1 port=$P1,$P2 dbname=sitetoken user=sitetoken target_session_attrs=read-write connect_timeout=5"
export SITETOKEN_DB=$MULTI
make_site
SCHEMA=$(sed -n 's/^schema=//p' "$SITE/site.conf")
SITEB=$T/siteB
$STK node add --site "$SITEB" --node nodeB --db "$MULTI" --db-schema "$SCHEMA" >/dev/null ||
	fail "node add"
# The first node vouches for each new node's key (key endorse).
endorse() { $STK key endorse --site "$SITE" --kid "$($STK key show --site "$1" --json | json_get kid)" >/dev/null; }
endorse "$SITEB" || fail "key endorse nodeB"
# A node of this site pointed at the standby alone is refused as well: no
# migration check, no serving from a copy whose block list may lag.
cp -a "$SITEB" "$T/siteS"
sed -i "s|^db=.*|db=$STANDBY_ONLY|" "$T/siteS/site.conf"
expect_refusal 3 "read-only standby" "serve against the standby" -- $STK serve --site "$T/siteS" \
	--mp 127.0.0.1:0 --cmg 127.0.0.1:0 --tls-cert "$T/tls.crt" --tls-key "$T/tls.key"

# Node C lists both servers but not target_session_attrs: after the kill
# libpq's next connection lands on the standby, which it must not use.
SITEC=$T/siteC
$STK node add --site "$SITEC" --node nodeC --db "host=127.0.0.1,127.0.0.1 port=$P1,$P2 dbname=sitetoken user=sitetoken" \
	--db-schema "$SCHEMA" >/dev/null || fail "node add C"
endorse "$SITEC" || fail "key endorse nodeC"

start_server 0 --threads 4
serve_node "$SITEB" B 0 0 0 --threads 4
PIDB=$SERVED_PID
MPB_PORT=$SERVED_MP_PORT CMGB_PORT=$SERVED_CMG_PORT
serve_node "$SITEC" C 0 0 0
PIDC=$SERVED_PID MPC="http://127.0.0.1:$SERVED_MP_PORT"
agent c0 0 register --mp "$MPC" >/dev/null || fail "registration on node C"
ok "two nodes on $MULTI (and node C without target_session_attrs)"

# ---- load, kill -9 the primary, promote the standby ----
wait "$GEN" || fail "making device identities"
GEN=
for i in $(seq 20); do new_bulk "$T/b.tok"; done > "$T/ids/bulk.guids"
rm -f "$T/b.tok"
# Tokens with a use limit, redeemed through the CMG during the failover.
MAXU=5
( umask 077
  for i in $(seq 30); do
	$STK bulk new --lifetime 60 --max-uses $MAXU --json |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["guid"], d["token"], d["max_uses"])'
  done > "$T/ids/limited" ) || fail "bulk new --max-uses"

python3 "$(dirname "$0")/failover_clients.py" "$T/ids" "$mp_port,$MPB_PORT" "$cmg_port,$CMGB_PORT" \
	"/CCM_Proxy_MutualAuth/$SITE_NUMBER" "$T/tls.crt" "$SITE,$SITEB" "$STK" "$T/stop" \
	> "$T/clients.out" 2> "$T/clients.err" &
CLIENTS=$!
started() { [ -e "$T/ids/ready" ] || ! kill -0 "$CLIENTS" 2>/dev/null; }
wait_for 30 started || :
[ -e "$T/ids/ready" ] || fail "client driver did not start: $(cat "$T/clients.err")"
sleep "$(python3 -c 'import random; print(round(random.uniform(1.5, 5.0), 2))')"
acked_before=$(wc -l < "$T/ids/acked")
# The host dies: the postmaster and every process it started, at once.
ppid_primary=$(head -n 1 "$PGD/primary/postmaster.pid")
kids=$(ps -o pid= --ppid "$ppid_primary" | tr -d ' ')
t_kill=$(now) t_kill_ns=$(( $(date +%s%N) + 1000000000 ))
# shellcheck disable=SC2086
kill -9 "$ppid_primary" $kids
# Before the promotion node C's reconnect reaches the standby: refused, and said so.
rc=0; agent c1 0 register --mp "$MPC" >/dev/null 2>"$T/errC" || rc=$?
[ "$rc" != 0 ] && grep -q "HTTP 500" "$T/errC" || fail "node C before the promotion: rc $rc $(cat "$T/errC")"
grep -q "is a read-only standby" "$SITEC/logs/MP_RegistrationManager.log" ||
	fail "node C's log: $(tail -1 "$SITEC/logs/MP_RegistrationManager.log")"
t_c=$(now)
# Failure detection is an operator's or a tool's job (Patroni, pg_auto_failover): one second here.
while [ "$(date +%s%N)" -lt "$t_kill_ns" ]; do sleep 0.02; done
t_promote=$(now)
as_pg "$PGBIN/pg_ctl" -D "$PGD/standby" -w -t 60 promote >/dev/null || fail "pg_ctl promote"
t_promoted=$(now)
[ "$(psu "$P2" "SELECT pg_is_in_recovery()")" = f ] || fail "the standby was not promoted"
sleep 6
touch "$T/stop"
rc=0; wait "$CLIENTS" || rc=$?
CLIENTS=
[ "$rc" = 0 ] || fail "clients: $(cat "$T/clients.out" "$T/clients.err" | tail -5)"
echo "# clients: $(cat "$T/clients.out")"
acked_after=$(wc -l < "$T/ids/acked")
[ "$acked_before" -ge 10 ] || fail "only $acked_before operations acknowledged before the kill"
[ $((acked_after - acked_before)) -ge 10 ] || fail "only $((acked_after - acked_before)) operations acknowledged after the kill"
t_c=$(python3 -c "print(round($t_c - $t_kill, 2))")
ok "node C, $t_c s after the kill, refused the standby its reconnect reached ('read-only standby' in its log)"
ok "primary killed -9 after $acked_before acknowledged operations; promoted in $(python3 -c "print(round($t_promoted - $t_promote, 2))") s; $acked_after acknowledged in all"

# The window: from the kill to the end of the last refused attempt.
read -r nfail window first_ok <<<"$(python3 - "$T/ids/attempts" "$t_kill" <<-'PY'
	import sys
	t_kill = float(sys.argv[2])
	rows = [l.split() for l in open(sys.argv[1])]
	fails = [(float(a), float(b)) for a, b, s, _ in rows if s == "fail"]
	last = max((b for _, b in fails), default=t_kill)
	oks = [float(b) for a, b, s, _ in rows if s == "ok" and float(a) > t_kill]
	first_ok = min((t for t in oks if t >= last), default=float("nan"))
	print(len(fails), round(last - t_kill, 2), round(first_ok - t_kill, 2))
	PY
)"
echo "# failover window: $nfail refused attempts, last refused ${window} s after the kill," \
	"service back (first acknowledged request after the last refusal) ${first_ok} s after the kill" \
	"(promotion started $(python3 -c "print(round($t_promote - $t_kill, 2))") s after the kill)"
fails_before=$(awk -v k="$t_kill" '$3 == "fail" && $1 < k - 1' "$T/ids/attempts" | wc -l)
[ "$fails_before" = 0 ] || fail "$fails_before requests refused before the kill"
python3 -c "import sys; sys.exit(0 if $first_ok < 30 else 1)" || fail "service not back within 30 s"
ok "failover window ${first_ok} s (refused attempts: $nfail)"

# ---- everything acknowledged is on the promoted database ----
sq() { psu "$P2" "SET search_path TO $SCHEMA; $1"; }
# none_missing ACKED HAVE WHAT: every line of ACKED (sorted) is in HAVE (sorted).
none_missing() {
	local m
	m=$(comm -23 "$1" "$2")
	[ -z "$m" ] || fail "$(wc -l <<<"$m") $3 missing: $(head -3 <<<"$m")"
}
sq "SELECT guid || ' ' || cert_thumbprint FROM devices" | sort > "$T/dev_rows"
awk '$1 == "reg" { print $2 " " $4 } $1 == "use" { print $3 " " $5 }' "$T/ids/acked" | sort -u > "$T/acked_regs"
none_missing "$T/acked_regs" "$T/dev_rows" "acknowledged registrations"
ok "all $(wc -l < "$T/acked_regs") acknowledged registrations present (device GUID and certificate)"
[ "$(sq "SELECT count(*) = count(DISTINCT cert_thumbprint) FROM devices")" = t ] || fail "a certificate with two devices"
# Beyond the acknowledged ones: node C's c0, and any whose every attempt
# failed (none: each retried until acknowledged).
extra=$(( $(sq "SELECT count(*) FROM devices") - $(wc -l < "$T/acked_regs") - 1 ))
[ "$extra" = 0 ] || fail "$extra device rows beyond the acknowledged registrations"
dup=$(sq "SELECT count(*) FROM (SELECT subject FROM audit WHERE event LIKE 'device.register.%' AND outcome = 'ok' AND detail LIKE 'new %' GROUP BY subject HAVING count(*) > 1) x")
[ "$dup" = 0 ] || fail "$dup devices created twice"
ok "no device duplicated (one device per certificate, one 'new' registration record per device)"
sq "SELECT detail FROM audit WHERE event = 'device.renew' AND outcome = 'ok'" |
	sed -n 's/^jti=\([^ ]*\) .*/\1/p' | sort > "$T/renew_jtis"
awk '$1 == "renew" { print $3 }' "$T/ids/acked" | sort > "$T/acked_renews"
none_missing "$T/acked_renews" "$T/renew_jtis" "acknowledged renewals (audit log)"
# Each renewal device ends holding the token the database has as its latest.
awk '$1 == "renew" || $1 == "rereg" { last[$2] = $3 } END { for (g in last) print g " " last[g] }' \
	"$T/ids/acked" | sort > "$T/last_acked"
sq "SELECT guid || ' ' || last_token_jti FROM devices" | sort > "$T/dev_jtis"
none_missing "$T/last_acked" "$T/dev_jtis" "devices' last acknowledged tokens (as their latest)"
ok "all $(wc -l < "$T/acked_renews") acknowledged renewals present; each device's latest token is the one it holds"
awk '$1 == "block" { print $2 }' "$T/ids/acked" | sort > "$T/acked_blocks"
sq "SELECT guid FROM bulk_tokens WHERE blocked = 1" | sort > "$T/blocked"
none_missing "$T/acked_blocks" "$T/blocked" "acknowledged blocks"
ok "all $(wc -l < "$T/acked_blocks") acknowledged bulk-token blocks present"
# Use limits: every token the clients used up has exactly MAXU enrollments
# (devices, enrollment history, the counter), the ones they acknowledged;
# no token, used up or not, went past its limit.
nex=$(awk '$1 == "exhausted"' "$T/ids/acked" | wc -l)
[ "$nex" -ge 1 ] || fail "no use-limited token was used up during the test"
for g in $(awk '$1 == "exhausted" { print $2 }' "$T/ids/acked"); do
	acked_uses=$(awk -v g="$g" '$1 == "use" && $2 == g { print $3 }' "$T/ids/acked" | sort -u | wc -l)
	got=$(sq "SELECT (SELECT count(*) FROM devices WHERE bulk_guid = '$g') || ' ' ||
		(SELECT count(DISTINCT device_guid) FROM registrations WHERE bulk_guid = '$g') || ' ' ||
		(SELECT uses FROM bulk_limits WHERE guid = '$g')")
	[ "$got" = "$MAXU $MAXU $MAXU" ] && [ "$acked_uses" = "$MAXU" ] ||
		fail "bulk token $g (--max-uses $MAXU): devices, enrolled, counted = $got; acknowledged $acked_uses"
done
# ... and the redemptions spanned the failover: uses acknowledged before the
# kill and after the promotion.
read -r ub ua <<<"$(awk -v k="$t_kill" -v p="$t_promoted" '$4 == "use" && $3 == "ok" {
	if ($2 < k) b++; if ($1 > p) a++ } END { print b + 0, a + 0 }' "$T/ids/attempts")"
[ "$ub" -ge 1 ] && [ "$ua" -ge 1 ] || fail "use-limited redemptions did not span the failover: $ub before the kill, $ua after the promotion"
over=$(sq "SELECT count(*) FROM bulk_limits l WHERE l.uses > l.max_uses OR
	(SELECT count(*) FROM devices d WHERE d.bulk_guid = l.guid) > l.max_uses")
[ "$over" = 0 ] || fail "$over bulk tokens redeemed past their limit"
ok "$nex tokens with --max-uses $MAXU used up across the failover: exactly $MAXU enrollments each ($(awk '$1 == "use"' "$T/ids/acked" | wc -l) acknowledged uses in all); none past its limit; $ub redemption answers before the kill, $ua after the promotion"

# The nodes carry on (no restart) and the chain verifies on the promoted database.
agent after 0 register --mp "$MP" >/dev/null || fail "registration on node A after failover"
agent after2 0 register --mp "http://127.0.0.1:$MPB_PORT" >/dev/null || fail "registration on node B after failover"
agent c1 0 register --mp "$MPC" >/dev/null 2>"$T/errC" || fail "node C after the promotion: $(cat "$T/errC")"
ok "the nodes serve after the failover without a restart (node C too, on the promoted server)"
kill -TERM "$PIDB"; wait "$PIDB" || fail "node B exit"
PIDB=
kill -TERM "$PIDC"; wait "$PIDC" || fail "node C exit"
PIDC=
stop_server
$STK audit verify --site "$SITE" > "$T/verify.out" 2>&1 || fail "audit verify: $(cat "$T/verify.out")"
ok "audit verify on the promoted database: $(tail -1 "$T/verify.out")"
assert_no_tokens_in_logs
