#!/usr/bin/env bash
# Gateway authentication: certificate binding, client setting "allow cloud
# gateway" (site default and per device), device block, bulk token offered
# for renewal, replaced tokens.
TEST_NAME=server_cmg_auth
. "$(dirname "$0")/harness.sh" server
# applied CLI-ARGS...: the CLI, another process: the server's gateway cache
# applies its changes to every request that starts 1 s after they committed
# (site/registration/tokcache.c). Wait out that bound after each one.
applied() { $STK "$@" >/dev/null || fail "sitetoken $*"; sleep 1.05; }
serve_site
new_bulk "$T/bulk.tok" >/dev/null
agent A 0 register --cmg "$CMG" --regtoken-file "$T/bulk.tok" >/dev/null
agent B 0 register --cmg "$CMG" --regtoken-file "$T/bulk.tok" >/dev/null
gA=$(agent A 0 status --json | json_get device_guid)

# Token bound to certificate A presented with certificate B.
cmg_expect "401 certificate_mismatch" "A's token, B's certificate" GET policy B "$T/A/client.token"
grep -q "Refused policy from 127.0.0.1: certificate_mismatch" "$SITE/logs/ClientAuth.log" || fail "ClientAuth.log"
cmg_expect "401 certificate_mismatch" "renew, wrong certificate" POST renew B "$T/A/client.token"
cmg_expect "200 -" "A with its own certificate" GET policy A "$T/A/client.token"
# The two lines every accepted request leaves (formatted without printf).
jA=$(agent A 0 status --json | json_get jti)
grep -Eq "^[0-9T:-]+Z \[tid [0-9]+\] ClientAuth: Accepted policy from 127\.0\.0\.1: device $gA jti $jA, certificate bound\$" "$SITE/logs/ClientAuth.log" || fail "accepted line: $(tail -1 "$SITE/logs/ClientAuth.log")"
grep -Eq "^[0-9T:-]+Z \[tid [0-9]+\] CCM_STS: Validated client token jti=$jA sub=$gA\$" "$SITE/logs/CCM_STS.log" || fail "validated line: $(tail -1 "$SITE/logs/CCM_STS.log")"
ok "token bound to certificate A refused with certificate B (401 certificate_mismatch)"

# No token, garbage token.
cmg_expect "401 no_token" "no token" GET policy A ""
echo "not.a.token" > "$T/junk"
cmg_expect "401 token_invalid" "junk token" GET policy A "$T/junk"
ok "missing or malformed token refused (401)"

# allow-cmg off at the site: a valid token is refused; on again accepted.
applied settings set allow-cmg off
expect_refusal 1 "HTTP 403 cloud_gateway_disabled" "allow-cmg off" -- agent A 0 policy
expect_exit 1 "renewal with allow-cmg off" -- agent A 0 renew --force
# per-device override wins over the site default
applied settings set allow-cmg on --device "$gA"
agent A 0 policy >/dev/null || fail "per-device on should override site off"
expect_exit 1 "B still refused" -- agent B 0 policy
applied settings set allow-cmg default --device "$gA"
applied settings set allow-cmg on
agent A 0 policy >/dev/null || fail "allow-cmg on again"
agent B 0 policy >/dev/null || fail "allow-cmg on again (B)"
applied settings set allow-cmg off --device "$gA"
expect_exit 1 "per-device off" -- agent A 0 policy
applied settings set allow-cmg default --device "$gA"
$STK settings show | has "allow-cmg *on" || fail "settings show"
ok "allow-cmg off refused (403), on accepted; per-device override both ways"

# Blocked device.
applied devices block "$gA"
expect_refusal 1 device_blocked "blocked device" -- agent A 0 policy
applied devices unblock "$gA"
agent A 0 policy >/dev/null || fail "unblocked device"
ok "blocked device refused (403 device_blocked), unblocked accepted"

# A bulk token can never be renewed.
cmg_expect "401 wrong_token_type" "bulk renewal" POST renew A "$T/bulk.tok"
expect_in 'cannot be renewed' "$(cat "$T/resp")" "bulk renewal message"
ok "bulk token offered for renewal refused (401 wrong_token_type)"

# After a renewal the previous token is replaced.
cp "$T/A/client.token" "$T/old.token"
agent A 0 renew --force >/dev/null || fail "forced renewal"
cmg_expect "401 token_superseded" "old token after renewal" GET policy A "$T/old.token"
agent A 0 policy >/dev/null || fail "new token"
ok "renewal replaces the previous token (401 token_superseded)"

n=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE outcome='refused' AND event IN ('gateway.auth','device.renew')")
[ "$n" -ge 8 ] || fail "gateway refusals audited: $n"
assert_no_tokens_in_logs
stop_server
$STK audit verify >/dev/null || fail "audit verify"
ok "gateway refusals audited; audit chain verifies"
