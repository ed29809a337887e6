#!/usr/bin/env bash
# Bulk token limits (issue 21): --max-uses counted exactly once per
# registration, even when 16 devices race for the last use (on PostgreSQL
# across two nodes of one site), shown in the certificates view, exhausted
# tokens refused with 403 bulk_token_exhausted; --source binds a token to
# networks; bad values refused with exit 2 and nothing recorded.
# Attacker (SPEC threat model 1): a network attacker holding a leaked bulk
# token enrols more devices than the administrator allowed, or uses it from
# outside the networks it was made for.
TEST_NAME=bulk_limits
. "$(dirname "$0")/server_lib.sh"
SITEB=$T/siteB
PIDB=
cleanup_nodes() {
	local rc=$?
	if [ -n "$PIDB" ]; then stop_node "$PIDB" B || true; fi
	stop_server || true
	exit $rc
}
trap cleanup_nodes EXIT
bulk_json() { # bulk_json FILE ARGS... -> token in FILE, GUID on stdout
	local f=$1; shift
	( umask 077; $STK bulk new --lifetime 60 --json "$@" > "$f.json" )
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); open(sys.argv[2],"w").write(d["token"]); print(d["guid"])' "$f.json" "$f"
}
uses_of() { # uses_of GUID -> "uses/max" from certs list --json
	$STK certs list --type bulk --json | python3 -c 'import json,sys
for r in json.load(sys.stdin):
    if r["id"] == sys.argv[1]: print("%s/%s" % (r["uses"], r["max_uses"]))' "$1"
}
n_bulk() { sqlite3 "$SITE/site.db" "SELECT count(*) FROM bulk_tokens"; }

make_site

# Bad input: exit 2, a clear message, nothing recorded (no token, no audit).
before=$(n_bulk)
audit0=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit")
for v in 0 -1 1000001 99999999999999999999 abc 1.5 ""; do
	rc=0; $STK bulk new --max-uses "$v" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = 2 ] || fail "--max-uses '$v': rc $rc"
	grep -q -- "--max-uses" "$T/err" || fail "--max-uses '$v' message: $(cat "$T/err")"
	! grep -q "eyJ" "$T/out" || fail "--max-uses '$v' printed a token"
done
for v in 10.0.0.0/33 10.0.0.1/8 300.1.2.3 10.0.0.0/ 10.0.0.0/8, ,10.0.0.0/8 "2001:db8::/129" \
	"2001:zz8::/32" "10.0.0.0/8 " "a,b" ""; do
	rc=0; $STK bulk new --source "$v" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = 2 ] || fail "--source '$v': rc $rc"
	grep -q -- "--source" "$T/err" || fail "--source '$v' message: $(cat "$T/err")"
done
rc=0; $STK_BIN/BulkRegistrationTokenTool /new /maxuses 0 >/dev/null 2>"$T/err" || rc=$?
[ "$rc" = 2 ] || fail "/maxuses 0: rc $rc"
[ "$(n_bulk)" = "$before" ] || fail "a refused value recorded a token"
[ "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit")" = "$audit0" ] || fail "a refused value was audited"
ok "--max-uses 0/negative/huge/not a number and malformed CIDRs refused (exit 2), nothing recorded"

start_server 0 --admin 127.0.0.1:0
ADMIN=https://127.0.0.1:$admin_port
if [ -n "${SITETOKEN_DB:-}" ]; then
	SCHEMA=$(sed -n 's/^schema=//p' "$SITE/site.conf")
	$STK node add --site "$SITEB" --node nodeB --db service=sitetoken_tcp --db-schema "$SCHEMA" \
		>/dev/null || fail "node add"
	# The first node vouches for node B's key: checkpoints B signs are then
	# trusted by `audit verify` (a key row nobody endorsed is ignored).
	$STK key endorse --site "$SITE" --kid "$($STK key show --site "$SITEB" --json | json_get kid)" \
		>/dev/null || fail "key endorse nodeB"
	serve_node "$SITEB" B 0 0 0
	PIDB=$SERVED_PID
	CMGB=https://127.0.0.1:$SERVED_CMG_PORT/CCM_Proxy_MutualAuth/$SITE_NUMBER
	where="two nodes on PostgreSQL"
else
	CMGB=$CMG
	where="one node on SQLite"
fi

# --max-uses 1: 16 devices race for the one use, half on each node.
g1=$(bulk_json "$T/one.tok" --max-uses 1)
[ "$(uses_of "$g1")" = "0/1" ] || fail "certs list before use: $(uses_of "$g1")"
$STK certs list --type bulk | grep "$g1" | grep -q " 0/1$" || fail "certs list text: $($STK certs list --type bulk)"
for i in $(seq 16); do mkdir -m 700 "$T/r$i"; done
pids=()
for i in $(seq 16); do
	if [ $((i % 2)) -eq 0 ]; then url=$CMG; else url=$CMGB; fi
	agent "r$i" 0 register --cmg "$url" --regtoken-file "$T/one.tok" >"$T/r$i.out" 2>&1 &
	pids+=($!)
done
okn=0
for p in "${pids[@]}"; do if wait "$p"; then okn=$((okn + 1)); fi; done
[ "$okn" = 1 ] || { cat "$T"/r*.out >&2; fail "$okn of 16 registrations succeeded with --max-uses 1"; }
n=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices WHERE bulk_guid='$g1'")
[ "$n" = 1 ] || fail "devices enrolled with the token: $n"
exh=$(grep -l "HTTP 403 bulk_token_exhausted" "$T"/r*.out | wc -l)
[ "$exh" = 15 ] || { cat "$T"/r*.out >&2; fail "$exh of 15 refusals say 403 bulk_token_exhausted"; }
[ "$(uses_of "$g1")" = "1/1" ] || fail "certs list after use: $(uses_of "$g1")"
ok "--max-uses 1 under 16 concurrent registrations ($where): exactly one device, 15 x 403 bulk_token_exhausted, certs list 1/1"

# The refusals are audited and logged with the reason.
a=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE event='device.register.cmg' AND outcome='refused' AND detail LIKE 'bulk_token_exhausted%'")
[ "$a" = 15 ] || fail "audited exhausted refusals: $a"
l=$(cat "$SITE/logs/ClientAuth.log" ${PIDB:+"$SITEB/logs/ClientAuth.log"} |
	grep -c "Refused registration from 127.0.0.1: bulk_token_exhausted")
[ "$l" = 15 ] || fail "ClientAuth.log refusals: $l"
$STK audit verify >/dev/null || fail "audit verify"
ok "each refusal audited (15) and logged; audit chain verifies"

# The device that got the use may retry (lost response, threat model 6)
# without using the token again.
winner=
gw=$(sqlite3 "$SITE/site.db" "SELECT guid FROM devices WHERE bulk_guid='$g1'")
for i in $(seq 16); do
	if [ "$(agent "r$i" 0 status --json 2>/dev/null | json_get device_guid 2>/dev/null)" = "$gw" ]; then winner=r$i; fi
done
[ -n "$winner" ] || fail "no winner state"
agent "$winner" 0 register --cmg "$CMG" --regtoken-file "$T/one.tok" >/dev/null || fail "retry by the enrolled device"
[ "$(uses_of "$g1")" = "1/1" ] || fail "the retry used the token again: $(uses_of "$g1")"
ok "the enrolled device registering again with the same token is not refused and uses nothing"

# --max-uses 3 with the seed-style tool: counted one by one.
$STK_BIN/BulkRegistrationTokenTool /new /lifetime 60 /maxuses 3 /json > "$T/three.json"
g3=$(json_get guid < "$T/three.json")
[ "$(json_get max_uses < "$T/three.json")" = 3 ] || fail "/json max_uses"
json_get token < "$T/three.json" > "$T/three.tok"
for i in 1 2 3; do
	agent "t$i" 0 register --cmg "$CMGB" --regtoken-file "$T/three.tok" >/dev/null || fail "use $i of 3"
	[ "$(uses_of "$g3")" = "$i/3" ] || fail "after use $i: $(uses_of "$g3")"
done
rc=0; agent t4 0 register --cmg "$CMG" --regtoken-file "$T/three.tok" 2>"$T/err" >/dev/null || rc=$?
[ "$rc" = 1 ] && grep -q "HTTP 403 bulk_token_exhausted" "$T/err" || fail "4th use: rc $rc $(cat "$T/err")"
ok "BulkRegistrationTokenTool /maxuses 3 /json: three registrations counted 1/3..3/3, the fourth refused"

# --source: a token bound to networks the peer (127.0.0.1) is not in.
gs=$(bulk_json "$T/src.tok" --source 192.0.2.0/24,2001:db8::/32)
rc=0; agent s1 0 register --cmg "$CMG" --regtoken-file "$T/src.tok" 2>"$T/err" >/dev/null || rc=$?
[ "$rc" = 1 ] && grep -q "HTTP 403 bulk_token_source" "$T/err" || fail "--source refusal: rc $rc $(cat "$T/err")"
grep -q "may only be used from 192.0.2.0/24,2001:db8::/32, not from 127.0.0.1" "$T/err" || fail "source message: $(cat "$T/err")"
[ "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices WHERE bulk_guid='$gs'")" = 0 ] || fail "device recorded"
gl=$(bulk_json "$T/lo.tok" --source 10.0.0.0/8,127.0.0.0/8 --max-uses 5)
agent s2 0 register --cmg "$CMGB" --regtoken-file "$T/lo.tok" >/dev/null || fail "--source 127.0.0.0/8 refused"
agent s3 0 register --mp "$MP" --regtoken-file "$T/lo.tok" >/dev/null || fail "--source via the MP"
[ "$(uses_of "$gl")" = "2/5" ] || fail "uses with --source: $(uses_of "$gl")"
ok "--source: registrations from outside the networks refused (403 bulk_token_source), from inside accepted"


# The admin API's certificates view shows uses and the limit too.
SECRET=$($STK admin token)
( umask 077; printf 'Authorization: Bearer %s' "$SECRET" > "$T/adm.hdr" )
curl -sf --cacert "$T/tls.crt" -H @"$T/adm.hdr" "$ADMIN/api/v1/certs?type=bulk" > "$T/certs.json" ||
	fail "admin certs"
python3 - "$T/certs.json" "$g1" "$g3" "$gl" "$gs" <<'PY' || fail "admin API uses/max_uses"
import json, sys
rows = {r["id"]: r for r in json.load(open(sys.argv[1]))["rows"]}
want = {sys.argv[2]: (1, 1), sys.argv[3]: (3, 3), sys.argv[4]: (2, 5), sys.argv[5]: (0, None)}
for g, (u, m) in want.items():
    assert (rows[g]["uses"], rows[g]["max_uses"]) == (u, m), (g, rows[g])
PY
ok "admin API GET certs: uses and max_uses per bulk token"
assert_no_tokens_in_logs

