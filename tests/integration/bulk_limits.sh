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
. "$(dirname "$0")/harness.sh"
set -e
server_env
SITEB=$T/siteB
PIDB=
on_exit '[ -z "$PIDB" ] || stop_node "$PIDB" B'
uses_of() { # uses_of GUID -> "uses/max" from certs list --json
	$STK certs list --type bulk --json |
		json "''.join(f'{r[\"uses\"]}/{r[\"max_uses\"]}' for r in d if r['id'] == '$1')"
}
n_bulk() { sqlite3 "$SITE/site.db" "SELECT count(*) FROM bulk_tokens"; }
# agent_refused STATE URL_OPTION URL TOKEN_FILE TEXT: the agent's registration
# fails (exit 1) and names TEXT.
agent_refused() {
	expect_refusal 1 "$5" "$1: registration refused" -- \
		agent "$1" 0 register "$2" "$3" --regtoken-file "$4"
}

make_site

# Bad input: exit 2, a clear message, nothing recorded (no token, no audit).
before=$(n_bulk)
audit0=$(audit_count)
for v in 0 -1 1000001 99999999999999999999 abc 1.5 ""; do
	expect_refusal 2 --max-uses "--max-uses '$v'" -- $STK bulk new --max-uses "$v"
	[[ $OUT != *eyJ* ]] || fail "--max-uses '$v' printed a token"
done
for v in 10.0.0.0/33 10.0.0.1/8 300.1.2.3 10.0.0.0/ 10.0.0.0/8, ,10.0.0.0/8 "2001:db8::/129" \
	"2001:zz8::/32" "10.0.0.0/8 " "a,b" ""; do
	expect_refusal 2 --source "--source '$v'" -- $STK bulk new --source "$v"
done
expect_exit 2 "/maxuses 0" -- "$BRT" /new /maxuses 0
expect_eq "$(n_bulk)" "$before" "a refused value recorded no token"
expect_eq "$(audit_count)" "$audit0" "a refused value was not audited"

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
g1=$(new_bulk "$T/one.tok" 60 --max-uses 1)
expect_eq "$(uses_of "$g1")" 0/1 "certs list before use"
$STK certs list --type bulk | grep "$g1" | has " 0/1$" || fail "certs list text: $($STK certs list --type bulk)"
pids=()
for i in $(seq 16); do
	mkdir -m 700 "$T/r$i"
	if [ $((i % 2)) -eq 0 ]; then url=$CMG; else url=$CMGB; fi
	agent "r$i" 0 register --cmg "$url" --regtoken-file "$T/one.tok" >"$T/r$i.out" 2>&1 &
	pids+=($!)
done
okn=0
for p in "${pids[@]}"; do if wait "$p"; then okn=$((okn + 1)); fi; done
[ "$okn" = 1 ] || cat "$T"/r*.out >&2
expect_eq "$okn" 1 "--max-uses 1 under 16 concurrent registrations ($where): one succeeded"
expect_eq "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices WHERE bulk_guid='$g1'")" 1 \
	"exactly one device enrolled with the token"
expect_eq "$(grep -l "HTTP 403 bulk_token_exhausted" "$T"/r*.out | wc -l)" 15 \
	"15 refusals say 403 bulk_token_exhausted"
expect_eq "$(uses_of "$g1")" 1/1 "certs list after use"

# The refusals are audited and logged with the reason.
expect_eq "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE event='device.register.cmg' \
AND outcome='refused' AND detail LIKE 'bulk_token_exhausted%'")" 15 "each refusal audited"
l=$(cat "$SITE/logs/ClientAuth.log" ${PIDB:+"$SITEB/logs/ClientAuth.log"} |
	grep -c "Refused registration from 127.0.0.1: bulk_token_exhausted")
expect_eq "$l" 15 "each refusal in ClientAuth.log"
expect_exit 0 "audit verify" -- $STK audit verify

# The device that got the use may retry (lost response, threat model 6)
# without using the token again.
winner=
gw=$(sqlite3 "$SITE/site.db" "SELECT guid FROM devices WHERE bulk_guid='$g1'")
for i in $(seq 16); do
	if [ "$(agent "r$i" 0 status --json 2>/dev/null | json_get device_guid 2>/dev/null)" = "$gw" ]; then winner=r$i; fi
done
[ -n "$winner" ] || fail "no winner state"
expect_exit 0 "the enrolled device registers again with the same token" -- \
	agent "$winner" 0 register --cmg "$CMG" --regtoken-file "$T/one.tok"
expect_eq "$(uses_of "$g1")" 1/1 "the retry used nothing"

# --max-uses 3 with the seed-style tool: counted one by one.
"$BRT" /new /lifetime 60 /maxuses 3 /json >"$T/three.json"
g3=$(json_get guid <"$T/three.json")
expect_eq "$(json_get max_uses <"$T/three.json")" 3 "BulkRegistrationTokenTool /json max_uses"
json_get token <"$T/three.json" >"$T/three.tok"
for i in 1 2 3; do
	agent "t$i" 0 register --cmg "$CMGB" --regtoken-file "$T/three.tok" >/dev/null || fail "use $i of 3"
	expect_eq "$(uses_of "$g3")" "$i/3" "/maxuses 3: after use $i"
done
agent_refused t4 --cmg "$CMG" "$T/three.tok" "HTTP 403 bulk_token_exhausted"

# --source: a token bound to networks the peer (127.0.0.1) is not in.
gs=$(new_bulk "$T/src.tok" 60 --source 192.0.2.0/24,2001:db8::/32)
agent_refused s1 --cmg "$CMG" "$T/src.tok" "HTTP 403 bulk_token_source"
expect_in "may only be used from 192.0.2.0/24,2001:db8::/32, not from 127.0.0.1" "$ERR" \
	"--source message"
expect_eq "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices WHERE bulk_guid='$gs'")" 0 \
	"--source refusal recorded no device"
gl=$(new_bulk "$T/lo.tok" 60 --source 10.0.0.0/8,127.0.0.0/8 --max-uses 5)
agent s2 0 register --cmg "$CMGB" --regtoken-file "$T/lo.tok" >/dev/null || fail "--source 127.0.0.0/8 refused"
agent s3 0 register --mp "$MP" --regtoken-file "$T/lo.tok" >/dev/null || fail "--source via the MP"
expect_eq "$(uses_of "$gl")" 2/5 "--source: registrations from inside accepted"

# The admin API's certificates view shows uses and the limit too.
SECRET=$($STK admin token)
( umask 077; printf 'Authorization: Bearer %s' "$SECRET" >"$T/adm.hdr" )
curl -sf --cacert "$T/tls.crt" -H @"$T/adm.hdr" "$ADMIN/api/v1/certs?type=bulk" >"$T/certs.json" ||
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
