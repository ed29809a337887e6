#!/usr/bin/env bash
# Attacker 4 (SPEC threat model: a wrong clock on one node or one CLI run)
# against key retirement, on whichever store SITETOKEN_DB names. A CLI run
# 92 days ahead (verify, certs list, key list, ...) changes nothing in the
# site: reads never retire keys nor write audit records (issue 13). The
# server's housekeeping retires a key only when the store's record of the
# latest expiry of its tokens and the store's clock say they all expired.
TEST_NAME=key_clock
. "$(dirname "$0")/harness.sh"
set -e
server_env
make_site
new_bulk "$T/t0" >/dev/null
k0=$($STK key show --json | json_get kid)
$STK key rotate --json >/dev/null
new_bulk "$T/t1" >/dev/null

keys() { sqlite3 "$SITE/site.db" "SELECT kid, status, coalesce(retired_at, 0), coalesce(max_exp, -1), coalesce(retiring_at, 0) FROM site_keys ORDER BY kid"; }
audits() { sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit"; }
status_of() { sqlite3 "$SITE/site.db" "SELECT status FROM site_keys WHERE kid = '$1'"; }
before=$(keys); nbefore=$(audits)
[ "$(status_of "$k0")" = retiring ] || fail "the old key is not retiring after rotation"

# Every read command, 92 days ahead. Their verdicts may differ (tokens look
# expired to that clock); the site must not change.
export SITETOKEN_TIME_OFFSET=$((92 * 86400))
for args in "verify --type bulk $(cat "$T/t0")" "verify --type bulk $(cat "$T/t1")" \
	"certs list" "certs list --json" "key list" "key list --json" "key show" \
	"key export --jwks" "site show" "audit show" "audit verify" "devices list" \
	"settings show"; do
	# shellcheck disable=SC2086
	$STK $args >/dev/null 2>&1 || true
done
unset SITETOKEN_TIME_OFFSET
expect_eq "$(keys)" "$before" "a CLI run 92 days ahead left every key's status as it was"
expect_eq "$(audits)" "$nbefore" "and wrote no audit record"
expect_exit 0 "the old key's token still verifies" -- $STK verify --type bulk "$(cat "$T/t0")"

# Housekeeping runs at start-up. While the store says the old key's token
# is valid it retires nothing; on PostgreSQL even a server 92 days ahead
# (the store's clock is now()). On SQLite the store's clock is the serving
# node's own, so that case is PostgreSQL's only.
days=0
[ -n "${SITETOKEN_DB:-}" ] && days=92
start_server "$days"
wait_for 30 grep -q "Housekeeping: no site key is due for retirement" "$SITE/logs/CCM_STS.log" \
	|| fail "housekeeping did not run at start-up: $(tail -2 "$SITE/logs/CCM_STS.log")"
stop_server
expect_eq "$(status_of "$k0")" retiring "housekeeping (server at day $days) retired nothing while a token is valid"

# The store's record says every token the old key signed has expired:
# housekeeping retires it at start-up, audited with actor serve.
sqlite3 "$SITE/site.db" "UPDATE site_keys SET max_exp = max_exp - 2*86400, retiring_at = retiring_at - 2*86400 WHERE kid = '$k0'" >/dev/null
start_server 0
for _ in $(seq 50); do [ "$(status_of "$k0")" = retired ] && break; sleep 0.1; done
expect_eq "$(status_of "$k0")" retired "housekeeping retired the key once the store said its tokens expired"
grep -q "Housekeeping: 1 site key(s) retired" "$SITE/logs/CCM_STS.log" && ok "retirement logged (CCM_STS)" \
	|| fail "no housekeeping line in CCM_STS.log"
stop_server
expect_eq "$(sqlite3 "$SITE/site.db" "SELECT actor || ' ' || event FROM audit WHERE subject = '$k0' \
AND event = 'key.retire'")" "serve key.retire" "retirement audited once, by serve"
$STK key restore "$k0" >/dev/null && [ "$(status_of "$k0")" = retiring ] && ok "key restore brings it back" \
	|| fail "key restore"
