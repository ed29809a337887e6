#!/usr/bin/env bash
# Bulk registration through the CMG (seed-style install), and the bulk token
# refusals: blocked, expired, unknown, missing client certificate.
TEST_NAME=server_cmg_bulk
. "$(dirname "$0")/harness.sh" server
serve_site

bguid=$(new_bulk "$T/bulk.tok")
out=$(agent devA 0 install /mp:"$CMG" CCMHOSTNAME="$HOSTPATH" SMSSiteCode=ABC /regtoken:- < "$T/bulk.tok")
echo "$out" | has "installed: device" || fail "install: $out"
guid=$(agent devA 0 status --json | json_get device_guid)
row=$(sqlite3 "$SITE/site.db" "SELECT via, bulk_guid FROM devices WHERE guid='$guid'")
[ "$row" = "cmg|$bguid" ] || fail "device row: $row"
ok "seed-style install registered through the CMG with bulk token $bguid"

grep -qF "Rotating internet management point, new management point [1] is: $CMG (0) with capabilities: <Capabilities SchemaVersion =\"1.0\"><Property Name=\"SSL\" Version=\"1\" /></Capabilities>" \
	"$T/devA/ClientIDManagerStartup.log" || fail "rotating line missing"
grep -q "ccmsetup started: /mp:$CMG CCMHOSTNAME=$HOSTPATH SMSSiteCode=ABC /regtoken:(hidden)" "$T/devA/ccmsetup.log" || fail "ccmsetup.log"
grep -q "ClientAuth: Accepted registration from 127.0.0.1: bulk token $bguid valid, device $guid" "$SITE/logs/ClientAuth.log" || fail "ClientAuth.log acceptance"
ok "ccmsetup.log, the 'Rotating internet management point' line, ClientAuth.log acceptance"

# The bulk token is never on disk: not in the state dir, not in the site.
tok=$(cat "$T/bulk.tok")
if grep -rqF -e "${tok##*.}" "$T/devA" "$SITE"; then fail "bulk token written to disk"; fi
ok "bulk token not stored by the agent nor the site"

# Authenticated request through the gateway.
agent devA 0 policy | has "\"device_guid\":\"$guid\"" || fail "policy"
ok "authenticated request through the CMG"

# The same bulk token registers a second device (it is a bulk token).
agent devB 0 register --cmg "$CMG" --regtoken-file "$T/bulk.tok" >/dev/null || fail "second device"
[ "$(count_devices)" = 2 ] || fail "two devices expected"
ok "a bulk token registers several devices; SITETOKEN_REGTOKEN/stdin/file all avoid argv"

# Blocked bulk token: refused (403 bulk_token_blocked), and unblocked again.
$STK bulk block "$bguid" >/dev/null
expect_refusal 1 "HTTP 403 bulk_token_blocked" "blocked bulk token" -- \
	agent devC 0 register --cmg "$CMG" --regtoken-file "$T/bulk.tok"
grep -q "Refused registration from 127.0.0.1: bulk_token_blocked" "$SITE/logs/ClientAuth.log" || fail "ClientAuth.log"
$STK bulk unblock "$bguid" >/dev/null
agent devC 0 register --cmg "$CMG" --regtoken-file "$T/bulk.tok" >/dev/null || fail "unblocked token refused"
ok "blocked bulk token refused (403 bulk_token_blocked, ClientAuth.log), unblocked accepted"

# Expired bulk token: created two hours ago with a one-minute lifetime.
SITETOKEN_TIME_OFFSET=-7200 new_bulk "$T/old.tok" 1 >/dev/null
SITETOKEN_REGTOKEN=$(cat "$T/old.tok") expect_refusal 1 "HTTP 401 token_expired" "expired bulk token" -- \
	agent devD 0 install /mp:"$CMG" SMSSiteCode=ABC
grep -q "Installation failed" "$T/devD/ccmsetup.log" || fail "ccmsetup.log failure line"
ok "expired bulk token refused (401 token_expired)"

# A client token is not a bulk token.
expect_refusal 1 wrong_token_type "client token as bulk token" -- \
	agent devE 0 register --cmg "$CMG" --regtoken-file "$T/devA/client.token"
ok "client token offered as a bulk token refused (wrong_token_type)"

# (No TLS client certificate: hostile.sh, "register without client certificate".)
res=$(http GET "https://127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/999/sitetoken/v1/policy")
expect_eq "$(http_status <<<"$res")" 404 "wrong site number"
ok "wrong site number 404"

n=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE event='device.register.cmg' AND outcome='refused'")
[ "$n" -ge 3 ] || fail "refusals audited: $n"
assert_no_tokens_in_logs
stop_server
$STK audit verify >/dev/null || fail "audit verify"
ok "refusals audited; audit chain verifies"
