#!/usr/bin/env bash
# Renewal through the CMG with clock jumps: day 31 accepted, day 89 still
# valid, day 91 refused with "register on the internal network", then
# internal re-registration works. Also `run` (renews only when due) and
# durability across a server restart.
TEST_NAME=server_renewal
. "$(dirname "$0")/harness.sh" server
serve_site 0
new_bulk "$T/bulk.tok" >/dev/null
agent X 0 register --mp "$MP" --cmg "$CMG" --regtoken-file "$T/bulk.tok" >/dev/null
agent Y 0 register --mp "$MP" --cmg "$CMG" --regtoken-file "$T/bulk.tok" >/dev/null
jx0=$(agent X 0 status --json | json_get jti)

# Day 29: run does not renew (not due yet).
stop_server; start_server 29
agent X 29 run --once | has "renewal not due" || fail "renewed before 30 days"
[ "$(agent X 29 status --json | json_get jti)" = "$jx0" ] || fail "token changed at day 29"
ok "day 29: run leaves the token alone (renews at 30 days)"

# Day 31: renewal accepted, new token valid 90 days from renewal.
stop_server; start_server 31
agent X 31 run --once | has "renewed: device" || fail "run did not renew at day 31"
read -r iat exp < <(agent X 31 status --json | json 'd["issued_at"], d["expires_at"]' | tr -d '(),')
expect_eq $((exp - iat)) $((90 * 86400)) "renewed token 90 days"
now=$(( $(date +%s) + 31 * 86400 ))
[ $((iat - now)) -le 5 ] && [ $((now - iat)) -le 60 ] || fail "renewed token not issued at day 31"
grep -q "Renewed client token through" "$T/X/ClientIDManagerStartup.log" || fail "agent log"
grep -q "(renewal)" "$SITE/logs/CCM_STS.log" || fail "STS log"
ok "day 31: renewal accepted, new token valid 90 days from renewal"

# Durability: the registration and renewal survive a restart (SIGTERM).
stop_server; start_server 31
agent X 31 policy >/dev/null || fail "renewed token after restart"
ok "renewed token still accepted after a server restart"

# Day 89: Y's original token is still valid.
stop_server; start_server 89
agent Y 89 policy >/dev/null || fail "day 89 token refused"
ok "day 89: an unrenewed token is still accepted"

# Day 91: Y's token expired: gateway and renewal refused, with the reason.
stop_server; start_server 91
expect_refusal 1 "token_expired" "day 91 policy" -- agent Y 91 policy
expect_refusal 1 "HTTP 401 token_expired" "day 91 renewal" -- agent Y 91 renew
grep -q "register again directly with the management point on the internal network" "$T/err" || fail "day 91 hint: $(cat "$T/err")"
grep -q "register again with the management point on the internal network" "$T/Y/ClientIDManagerStartup.log" || fail "agent log hint"
grep -q "Refused renew from 127.0.0.1: token_expired" "$SITE/logs/ClientAuth.log" || fail "ClientAuth.log"
ok "day 91: expired token and its renewal refused (401 token_expired, register internally)"

# X, renewed at day 31, is fine at day 91.
agent X 91 policy >/dev/null || fail "X at day 91"
# Y registers again with the MP on the internal network and is back.
gY=$(agent Y 91 status --json | json_get device_guid)
agent Y 91 register --mp "$MP" >/dev/null || fail "internal re-registration"
[ "$(agent Y 91 status --json | json_get device_guid)" = "$gY" ] || fail "GUID changed"
agent Y 91 policy >/dev/null || fail "after re-registration"
ok "day 91: renewed device accepted; expired device re-registers on the MP and is accepted"

assert_no_tokens_in_logs
stop_server
$STK audit verify >/dev/null || fail "audit verify"
expect_eq "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE event='device.renew' AND outcome='ok'")" 1 \
	"renewals audited"
ok "renewal audited; chain verifies"
