#!/usr/bin/env bash
# Internal registration with the MP: device recorded, token bound to the
# certificate, state files and permissions, logs, audit, internal-registration off.
TEST_NAME=server_register_mp
. "$(dirname "$0")/harness.sh" server
serve_site

out=$(agent dev1 0 register --mp "$MP")
echo "$out" | has "registered: device .* via mp" || fail "register: $out"
guid=$(agent dev1 0 status --json | json_get device_guid)
[ "$(count_devices)" = 1 ] || fail "one device expected"
[ "$(sqlite3 "$SITE/site.db" "SELECT via FROM devices WHERE guid='$guid'")" = mp ] || fail "via"
# The expiry the agent prints is the token's, 90 days on, as a UTC time.
exp=$(agent dev1 0 status --json | json_get expires_at)
echo "$out" | has "valid until $(date -u -d "@$exp" +%Y-%m-%dT%H:%M:%SZ))" || fail "expiry shown: $out"
ok "internal registration recorded device $guid"

# The token is a client token bound to the device certificate.
$STK verify --type client --json < "$T/dev1/client.token" > "$T/claims.json" || fail "token does not verify"
cnf=$(json 'd.get("claims", d)["cnf"]["x5t#S256"]' <"$T/claims.json")
expect_eq "$cnf" "$(cert_x5t "$T/dev1/device.crt")" "cnf is the certificate thumbprint"
iat=$(agent dev1 0 status --json | json_get issued_at)
expect_eq $((exp - iat)) $((90 * 86400)) "token lifetime 90 days"
ok "client token bound to the certificate (cnf x5t#S256), 90 days"

# State directory and file modes.
[ "$(stat -c %a "$T/dev1")" = 700 ] || fail "state dir mode"
[ "$(stat -c %a "$T/dev1/device.key")" = 600 ] || fail "key mode"
[ "$(stat -c %a "$T/dev1/client.token")" = 600 ] || fail "token mode"
chmod 644 "$T/dev1/device.key"
expect_refusal 3 "mode 0644" "loose key refused" -- agent dev1 0 register --mp "$MP"
chmod 600 "$T/dev1/device.key"
ok "agent refuses a device key readable by others"

# Registering again with the same certificate keeps the device GUID.
agent dev1 0 register --mp "$MP" >/dev/null
[ "$(agent dev1 0 status --json | json_get device_guid)" = "$guid" ] || fail "GUID changed"
[ "$(count_devices)" = 1 ] || fail "re-registration duplicated the device"
ok "re-registration with the same certificate keeps the device"

# Logs, one line per event, no token.
grep -q "MP_RegistrationManager: New device $guid registered via mp" "$SITE/logs/MP_RegistrationManager.log" || fail "MP log"
grep -Eq '^[0-9-]{10}T[0-9:]{8}Z \[tid [0-9]+\] CCM_STS: Issued client authentication token jti=' "$SITE/logs/CCM_STS.log" || fail "STS log"
assert_no_tokens_in_logs

# Strict request parsing.
printf '{"certificate":"a","certificate":"b"}' >"$T/dup"
printf '{"certificate":"x","extra":1}' >"$T/extra"
head -c 20000 /dev/zero | tr '\0' a > "$T/big"
for c in "400 $T/dup" "400 $T/extra" "413 $T/big" "405 -"; do
	expect_eq "$(post_json "$MP/sitetoken/v1/register" "${c#* }" | cut -d' ' -f1)" "${c% *}" "body $c"
done
ok "duplicate members, unknown members, 16 KiB limit, wrong method refused"

# Internal registration can be turned off.
$STK settings set internal-registration off >/dev/null
expect_refusal 1 internal_registration_disabled "internal registration off" -- \
	agent dev2 0 register --mp "$MP"
$STK settings set internal-registration on >/dev/null
agent dev2 0 register --mp "$MP" >/dev/null || fail "internal registration back on"
ok "internal-registration off refused (403), on again accepted"

# Audit: registration and refusal recorded, chain intact.
for o in "ok 3" "refused 1"; do
	n=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE event='device.register.mp' AND outcome='${o% *}'")
	expect_eq "$n" "${o#* }" "audit device.register.mp $o"
done
stop_server
$STK audit verify >/dev/null || fail "audit verify"
ok "registrations and refusals audited; chain verifies; SIGTERM stops the server cleanly"
