#!/usr/bin/env bash
# Internal registration with the MP: device recorded, token bound to the
# certificate, state files and permissions, logs, audit, internal-registration off.
TEST_NAME=server_register_mp
. "$(dirname "$0")/server_lib.sh"
make_site
start_server

out=$(agent dev1 0 register --mp "$MP")
echo "$out" | grep -q "registered: device .* via mp" || fail "register: $out"
guid=$(agent dev1 0 status --json | json_get device_guid)
[ "$(count_devices)" = 1 ] || fail "one device expected"
[ "$(sqlite3 "$SITE/site.db" "SELECT via FROM devices WHERE guid='$guid'")" = mp ] || fail "via"
# The expiry the agent prints is the token's, 90 days on, as a UTC time.
exp=$(agent dev1 0 status --json | json_get expires_at)
echo "$out" | grep -q "valid until $(date -u -d "@$exp" +%Y-%m-%dT%H:%M:%SZ))" || fail "expiry shown: $out"
ok "internal registration recorded device $guid"

# The token is a client token bound to the device certificate.
$STK verify --type client --json < "$T/dev1/client.token" > "$T/claims.json" || fail "token does not verify"
cnf=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cnf"]["x5t#S256"])' "$T/claims.json" 2>/dev/null ||
      python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("claims",d)["cnf"]["x5t#S256"])' "$T/claims.json")
want=$(openssl x509 -in "$T/dev1/device.crt" -outform DER | openssl dgst -sha256 -binary | basenc --base64url | tr -d '=')
[ "$cnf" = "$want" ] || fail "cnf $cnf != certificate thumbprint $want"
exp=$(agent dev1 0 status --json | json_get expires_at)
iat=$(agent dev1 0 status --json | json_get issued_at)
[ $((exp - iat)) -eq $((90 * 86400)) ] || fail "token lifetime is not 90 days"
ok "client token bound to the certificate (cnf x5t#S256), 90 days"

# State directory and file modes.
[ "$(stat -c %a "$T/dev1")" = 700 ] || fail "state dir mode"
[ "$(stat -c %a "$T/dev1/device.key")" = 600 ] || fail "key mode"
[ "$(stat -c %a "$T/dev1/client.token")" = 600 ] || fail "token mode"
chmod 644 "$T/dev1/device.key"
if agent dev1 0 register --mp "$MP" 2>"$T/err"; then fail "loose key accepted"; fi
grep -q "mode 0644" "$T/err" || fail "loose key message: $(cat "$T/err")"
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
st=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d '{"certificate":"a","certificate":"b"}' "$MP/sitetoken/v1/register")
[ "$st" = 400 ] || fail "duplicate JSON members: $st"
st=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d '{"certificate":"x","extra":1}' "$MP/sitetoken/v1/register")
[ "$st" = 400 ] || fail "unknown member: $st"
head -c 20000 /dev/zero | tr '\0' a > "$T/big"
st=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$T/big" "$MP/sitetoken/v1/register")
[ "$st" = 413 ] || fail "oversized body: $st"
st=$(curl -s -o /dev/null -w '%{http_code}' "$MP/sitetoken/v1/register")
[ "$st" = 405 ] || fail "GET register: $st"
ok "duplicate members, unknown members, 16 KiB limit, wrong method refused"

# Internal registration can be turned off.
$STK settings set internal-registration off >/dev/null
if agent dev2 0 register --mp "$MP" 2>"$T/err"; then fail "registered with internal registration off"; fi
grep -q internal_registration_disabled "$T/err" || fail "reason: $(cat "$T/err")"
$STK settings set internal-registration on >/dev/null
agent dev2 0 register --mp "$MP" >/dev/null || fail "internal registration back on"
ok "internal-registration off refused (403), on again accepted"

# Audit: registration and refusal recorded, chain intact.
n=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE event='device.register.mp' AND outcome='ok'")
[ "$n" = 3 ] || fail "audit registrations: $n"
n=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE event='device.register.mp' AND outcome='refused'")
[ "$n" = 1 ] || fail "audit refusals: $n"
stop_server
$STK audit verify >/dev/null || fail "audit verify"
ok "registrations and refusals audited; chain verifies; SIGTERM stops the server cleanly"
