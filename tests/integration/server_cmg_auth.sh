#!/usr/bin/env bash
# Gateway authentication: certificate binding, client setting "allow cloud
# gateway" (site default and per device), device block, bulk token offered
# for renewal, replaced tokens.
TEST_NAME=server_cmg_auth
. "$(dirname "$0")/server_lib.sh"
# The CLI is another process: the server's gateway cache applies its changes
# to every request that starts 1 s after they committed (site/registration/tokcache.c).
# Wait out that bound after each one.
settle() { sleep 1.05; }
make_site
start_server
new_bulk "$T/bulk.tok" >/dev/null
agent A 0 register --cmg "$CMG" --regtoken-file "$T/bulk.tok" >/dev/null
agent B 0 register --cmg "$CMG" --regtoken-file "$T/bulk.tok" >/dev/null
gA=$(agent A 0 status --json | json_get device_guid)

# Token bound to certificate A presented with certificate B.
res=$(cmg_call GET policy B "$T/A/client.token")
[ "$(echo "$res" | http_status)" = 401 ] || fail "A's token with B's certificate: $res"
echo "$res" | http_body | grep -q '"error":"certificate_mismatch"' || fail "reason: $res"
grep -q "Refused policy from 127.0.0.1: certificate_mismatch" "$SITE/logs/ClientAuth.log" || fail "ClientAuth.log"
res=$(cmg_call POST renew B "$T/A/client.token")
[ "$(echo "$res" | http_status)" = 401 ] || fail "renew with the wrong certificate: $res"
res=$(cmg_call GET policy A "$T/A/client.token")
[ "$(echo "$res" | http_status)" = 200 ] || fail "A with its own certificate: $res"
# The two lines every accepted request leaves (formatted without printf).
jA=$(agent A 0 status --json | json_get jti)
grep -Eq "^[0-9T:-]+Z \[tid [0-9]+\] ClientAuth: Accepted policy from 127\.0\.0\.1: device $gA jti $jA, certificate bound\$" "$SITE/logs/ClientAuth.log" || fail "accepted line: $(tail -1 "$SITE/logs/ClientAuth.log")"
grep -Eq "^[0-9T:-]+Z \[tid [0-9]+\] CCM_STS: Validated client token jti=$jA sub=$gA\$" "$SITE/logs/CCM_STS.log" || fail "validated line: $(tail -1 "$SITE/logs/CCM_STS.log")"
ok "token bound to certificate A refused with certificate B (401 certificate_mismatch)"

# No token, garbage token.
res=$(cmg_call GET policy A "")
echo "$res" | http_body | grep -q '"error":"no_token"' || fail "no token: $res"
echo "not.a.token" > "$T/junk"
res=$(cmg_call GET policy A "$T/junk")
[ "$(echo "$res" | http_status)" = 401 ] && echo "$res" | grep -q token_invalid || fail "junk token: $res"
ok "missing or malformed token refused (401)"

# allow-cmg off at the site: a valid token is refused; on again accepted.
$STK settings set allow-cmg off >/dev/null
settle
rc=0; agent A 0 policy 2>"$T/err" >/dev/null || rc=$?
[ "$rc" = 1 ] && grep -q "HTTP 403 cloud_gateway_disabled" "$T/err" || fail "allow-cmg off: $(cat "$T/err")"
rc=0; agent A 0 renew --force 2>"$T/err" >/dev/null || rc=$?
[ "$rc" = 1 ] || fail "renewal with allow-cmg off"
# per-device override wins over the site default
$STK settings set allow-cmg on --device "$gA" >/dev/null
settle
agent A 0 policy >/dev/null || fail "per-device on should override site off"
rc=0; agent B 0 policy 2>/dev/null >/dev/null || rc=$?
[ "$rc" = 1 ] || fail "B should still be refused"
$STK settings set allow-cmg default --device "$gA" >/dev/null
settle
$STK settings set allow-cmg on >/dev/null
settle
agent A 0 policy >/dev/null || fail "allow-cmg on again"
agent B 0 policy >/dev/null || fail "allow-cmg on again (B)"
$STK settings set allow-cmg off --device "$gA" >/dev/null
settle
rc=0; agent A 0 policy 2>/dev/null >/dev/null || rc=$?
[ "$rc" = 1 ] || fail "per-device off"
$STK settings set allow-cmg default --device "$gA" >/dev/null
settle
$STK settings show | grep -q "allow-cmg *on" || fail "settings show"
ok "allow-cmg off refused (403), on accepted; per-device override both ways"

# Blocked device.
$STK devices block "$gA" >/dev/null
settle
rc=0; agent A 0 policy 2>"$T/err" >/dev/null || rc=$?
[ "$rc" = 1 ] && grep -q device_blocked "$T/err" || fail "blocked device: $(cat "$T/err")"
$STK devices unblock "$gA" >/dev/null
settle
agent A 0 policy >/dev/null || fail "unblocked device"
ok "blocked device refused (403 device_blocked), unblocked accepted"

# A bulk token can never be renewed.
res=$(cmg_call POST renew A "$T/bulk.tok")
[ "$(echo "$res" | http_status)" = 401 ] || fail "bulk renewal: $res"
echo "$res" | http_body | grep -q '"error":"wrong_token_type"' || fail "bulk renewal reason: $res"
echo "$res" | http_body | grep -q 'cannot be renewed' || fail "bulk renewal message: $res"
ok "bulk token offered for renewal refused (401 wrong_token_type)"

# After a renewal the previous token is replaced.
cp "$T/A/client.token" "$T/old.token"
agent A 0 renew --force >/dev/null || fail "forced renewal"
res=$(cmg_call GET policy A "$T/old.token")
echo "$res" | http_body | grep -q token_superseded || fail "old token after renewal: $res"
agent A 0 policy >/dev/null || fail "new token"
ok "renewal replaces the previous token (401 token_superseded)"

n=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE outcome='refused' AND event IN ('gateway.auth','device.renew')")
[ "$n" -ge 8 ] || fail "gateway refusals audited: $n"
assert_no_tokens_in_logs
stop_server
$STK audit verify >/dev/null || fail "audit verify"
ok "gateway refusals audited; audit chain verifies"
