#!/usr/bin/env bash
# Registration, renewal and re-key against a network attacker and lost
# messages (issue 15 items 1-3, 5-7), on the real server and agent. Each
# block names the SPEC threat-model attacker it plays. Runs on SQLite and
# on PostgreSQL (tests/pg.cmake): the store checks read the database through
# `sqlite3`, which the PostgreSQL variant redirects to the site's schema.
TEST_NAME=hostile_register
. "$(dirname "$0")/harness.sh"
server_env
check() { # check WHAT COMMAND... : ok when the command succeeds
	local what=$1; shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
pol() { # pol TOKEN_FILE [CERT]: post_json's answer to GET policy over CERT.{crt,key} (A's)
	local c=${2:-$T/A/device}
	post_json "$POL" - --cert "$c.crt" --key "$c.key" -H @"$(bearer_hdr "$1")"
}
bulk_devices() { # bulk_devices GUID: the Devices count of that bulk token (certs list)
	$STK certs list --type bulk --json | json "[r['devices'] for r in d if r['id'] == '$1'][0]"
}

serve_site
REG=$MP/sitetoken/v1/register
CREG=$CMG/sitetoken/v1/register
POL=$CMG/sitetoken/v1/policy
REN=$CMG/sitetoken/v1/renew
new_bulk "$T/bulk.tok" >/dev/null

# Device A registers with the MP (the agent answers the challenge) and
# through the CMG is known from then on.
agent A 0 register --mp "$MP" > /dev/null || fail "agent registration with the MP"
ACERT=(--cert "$T/A/device.crt" --key "$T/A/device.key")
cp "$T/A/client.token" "$T/a.tok"
gA=$(json_get device_guid < "$T/A/state.json")
# The agent's state names the MP only; policy and renewal go to the CMG.
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["cmg"]=sys.argv[2]; json.dump(d,open(sys.argv[1],"w"))' \
	"$T/A/state.json" "$CMG"
expect_eq "$(pol "$T/a.tok")" "200 -" \
	"agent registered over HTTP with the signed challenge; its token works"

# --- Attacker 1 (network attacker), proof of possession on the HTTP MP:
# A's certificate is public; without A's key nothing registers and A's
# token stays the latest. (Before: posting the certificate re-registered A
# and superseded its token.)
python3 -c 'import json,sys; print(json.dumps({"certificate": open(sys.argv[1]).read()}))' \
	"$T/A/device.crt" > "$T/body"
refused "401 proof_required" 1 "A's certificate without a proof" -- "$REG" "$T/body"
dev_identity x
mp_pop_body "$T/A/device.crt" "$T/x.key"
refused "401 proof_invalid" 1 "A's certificate, challenge signed by another key" -- "$REG" "$T/body"
mp_pop_body "$T/A/device.crt" "$T/A/device.key" "$(head -c 54 /dev/zero | tr '\0' A)"
refused "401 challenge_invalid" 1 "a nonce the MP never issued" -- "$REG" "$T/body"
# A genuine proof by x for x's own certificate registers once; its replay
# (the same body seen on the network) does not.
mp_pop_body "$T/x.crt" "$T/x.key"
expect_ok "x registers with its own proof" -- "$REG" "$T/body"
refused "401 challenge_invalid" 1 "the same registration replayed" -- "$REG" "$T/body"
expect_eq "$(pol "$T/a.tok")" "200 -" "device A's token still the latest after the attempts"

# --- Attacker 1 from a browser (CSRF): a page the LAN browser opens can
# post a form (text/plain, urlencoded) or fetch with an Origin. Refused
# before the site: nothing changes, nothing audited.
mp_pop_body "$T/A/device.crt" "$T/A/device.key"
refused "415 unsupported_media_type" 0 "text/plain register (HTML form)" -- "$REG" - \
	-H 'Content-Type: text/plain' --data-binary @"$T/body"
refused "415 unsupported_media_type" 0 "urlencoded register" -- "$REG" - --data-binary @"$T/body"
refused "403 cross_origin_refused" 0 "register with a browser Origin" -- "$REG" "$T/body" \
	-H 'Origin: http://intranet.example'
refused "403 cross_origin_refused" 0 "challenge with a browser Origin" -- "$MP/sitetoken/v1/challenge" - \
	-H 'Content-Type: application/json' -d '{}' -H 'Origin: null'

# --- Attacker 1 with a bulk token and its own TLS key: the registered
# certificate is the TLS client certificate; naming A's in the body fails.
printf '{"bulk_token":"%s","certificate":%s}' "$(cat "$T/bulk.tok")" \
	"$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$T/A/device.crt")" > "$T/body"
refused "401 certificate_mismatch" 1 "CMG register naming A's certificate over x's TLS" -- \
	"$CREG" "$T/body" --cert "$T/x.crt" --key "$T/x.key"

# --- Attacker 6 (lost messages): a renewal whose response is lost is retried
# with the token the device still holds and succeeds; the lost token is dead
# and the retried one is the device's one valid token. Once that one has
# been used, the old token renews no more.
expect_ok "renewal (response dropped)" -- "$REN" - "${ACERT[@]}" -X POST \
	-H @"$(bearer_hdr "$T/a.tok")"
json_get client_token < "$T/resp" > "$T/lost.tok"
expect_ok "lost renewal retried with the previous token" -- "$REN" - "${ACERT[@]}" -X POST \
	-H @"$(bearer_hdr "$T/a.tok")"
json_get client_token < "$T/resp" > "$T/a2.tok"
expect_eq "$(pol "$T/a2.tok")" "200 -" "the retried renewal's token works"
refused "401 token_superseded" 1 "the lost renewal's token" -- "$POL" - "${ACERT[@]}" \
	-H @"$(bearer_hdr "$T/lost.tok")"
refused "401 token_superseded" 1 "renewal replayed after the new token was used" -- "$REN" - \
	"${ACERT[@]}" -X POST -H @"$(bearer_hdr "$T/a.tok")"
# A lost registration response: registering again gives the same device.
agent A 0 register --mp "$MP" > /dev/null || bad "re-registration after a lost response"
check "registration retried: same device GUID" [ "$(json_get device_guid < "$T/A/state.json")" = "$gA" ]
cp "$T/A/client.token" "$T/a.tok"

# --- Attacker 6, concurrent renewals: two server processes on the same
# store (two nodes), 8 renewals of one token at once. Every answer is a
# token or 401 token_superseded, exactly one returned token is valid, and
# the device goes on renewing with it.
serve_node "$SITE" 2 0 0 0
PID2=$SERVED_PID
CMG2=https://127.0.0.1:$SERVED_CMG_PORT/CCM_Proxy_MutualAuth/$SITE_NUMBER
pol "$T/a.tok" > /dev/null  # first use
hdr=$(bearer_hdr "$T/a.tok")
for i in 1 2 3 4 5 6 7 8; do
	base=$CMG; [ $((i % 2)) = 0 ] && base=$CMG2
	curl -s --max-time 20 --cacert "$T/tls.crt" "${ACERT[@]}" -X POST -H @"$hdr" \
		-o "$T/race$i.json" -w '%{http_code}' "$base/sitetoken/v1/renew" > "$T/race$i.code" &
done
wait $(jobs -p | grep -v "^$SERVER_PID$" | grep -v "^$PID2$") 2>/dev/null
wins=0; valid=0; other=0
for i in 1 2 3 4 5 6 7 8; do
	code=$(cat "$T/race$i.code")
	if [ "$code" = 200 ]; then
		wins=$((wins + 1))
		json_get client_token < "$T/race$i.json" > "$T/race$i.tok"
		[ "$(pol "$T/race$i.tok")" = "200 -" ] &&
			{ valid=$((valid + 1)); cp "$T/race$i.tok" "$T/a.tok"; }
	elif ! grep -q token_superseded "$T/race$i.json"; then
		other=$((other + 1)); echo "# race $i: $code $(cat "$T/race$i.json")"
	fi
done
echo "# concurrent renewals: $wins answered with a token, $((8 - wins - other)) token_superseded"
expect_eq "$((wins >= 1)) valid:$valid other:$other" "1 valid:1 other:0" \
	"concurrent renewals: one valid token, no other answer ($wins won)"
expect_ok "the device renews on with the winner" -- "$REN" - "${ACERT[@]}" -X POST \
	-H @"$(bearer_hdr "$T/a.tok")"
json_get client_token < "$T/resp" > "$T/a.tok"
stop_node "$PID2" 2
expect_exit 0 "audit chain intact after the race" -- "$STK" audit verify

# --- allow-cmg applies to CMG registration (before the bulk token counts).
bguid=$(new_bulk "$T/bulk2.tok")
$STK settings set allow-cmg off > /dev/null
expect_refusal 1 "HTTP 403 cloud_gateway_disabled" "CMG registration with allow-cmg off" -- \
	agent C 0 install /mp:"$CMG" SMSSiteCode=ABC /regtoken:- < "$T/bulk2.tok"
expect_eq "$(bulk_devices "$bguid")" 0 "the bulk token enrolled nobody"
$STK settings set allow-cmg on > /dev/null

# --- Enrollment history: C enrolls with bulk2, then re-registers with the
# MP; bulk2 still counts it and lists it; blocking by bulk token blocks it.
agent C 0 install /mp:"$CMG" SMSSiteCode=ABC /regtoken:- < "$T/bulk2.tok" > /dev/null 2>&1 ||
	bad "C install"
gC=$(json_get device_guid < "$T/C/state.json")
agent C 0 register --mp "$MP" > /dev/null || bad "C re-registers with the MP"
expect_eq "$(bulk_devices "$bguid")" 1 "re-registration keeps C on bulk2's Devices count"
check "registrations history keeps both enrollments" \
	[ "$(sqlite3 "$SITE/site.db" "SELECT via || ':' || coalesce(bulk_guid, '-') FROM registrations WHERE device_guid = '$gC' ORDER BY at, via")" = "cmg:$bguid
mp:-" ]
$STK devices list --bulk "$bguid" > "$T/list"
grep -q "$gC" "$T/list" && ! grep -q "$gA" "$T/list"
check "devices list --bulk names C only" [ $? = 0 ]
$STK devices block --bulk "$bguid" > "$T/out"
check "devices block --bulk: $(cat "$T/out")" grep -q "^1 device" "$T/out"
expect_refusal 1 device_blocked "C is blocked at the gateway" -- agent C 0 policy
check "block by bulk token audited" [ "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE event = 'bulk.block_devices' AND subject = '$bguid'")" = 1 ]
expect_exit 1 "devices block --bulk of an unknown token" -- $STK devices block --bulk 00000000-0000-4000-8000-000000000000

# --- verify gives the gateway's verdict on a site; --jwks offline.
expect_exit 1 "verify: superseded token refused" -- $STK verify --type client --json < "$T/lost.tok"
expect_eq "$(json_get code <<<"$OUT")" token_superseded "verify: superseded token's code"
expect_exit 1 "verify: blocked device's token refused" -- \
	$STK verify --type client --json < "$T/C/client.token"
expect_eq "$(json_get code <<<"$OUT")" device_blocked "verify: blocked device's token's code"
expect_exit 0 "verify: the device's latest token valid" -- "$STK" verify --type client < "$T/a.tok"
$STK key export --jwks --out "$T/site.jwks" > /dev/null
expect_exit 0 "verify --jwks offline: valid signature and claims" -- \
	"$STK" verify --jwks "$T/site.jwks" --type client < "$T/a.tok"
printf '{"keys":[]}' > "$T/empty.jwks"
expect_exit 2 "verify --jwks with no keys: usage error" -- $STK verify --jwks "$T/empty.jwks" < "$T/a.tok"

# --- Re-key (item 3): the agent moves its token to a new key and
# certificate through the CMG, proving the old key (TLS) and the new one.
cp "$T/A/device.crt" "$T/old.crt"; cp "$T/A/device.key" "$T/old.key"; cp "$T/a.tok" "$T/A/client.token"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["jti"]=sys.argv[2]; json.dump(d,open(sys.argv[1],"w"))' \
	"$T/A/state.json" "$($STK verify --type client --json < "$T/a.tok" | python3 -c 'import json,sys; print(json.load(sys.stdin)["claims"]["jti"])')"
agent A 0 rekey > "$T/out" 2> "$T/err"; rc=$?
check "agent rekey not due with a fresh certificate (exit $rc)" grep -q "not due" "$T/out"
agent A 0 --rekey-days 3650 rekey > "$T/out" 2> "$T/err"; rc=$?
check "agent re-keyed (exit $rc: $(cat "$T/out" "$T/err"))" [ "$rc" = 0 ]
expect_exit 1 "new certificate differs from the old" -- cmp -s "$T/old.crt" "$T/A/device.crt"
expect_eq "$(pol "$T/A/client.token")" "200 -" "the new token works with the new certificate"
check "the device keeps its GUID" [ "$(json_get device_guid < "$T/A/state.json")" = "$gA" ]
expect_eq "$(pol "$T/a.tok" "$T/old")" "401 certificate_mismatch" \
	"the old certificate and token are finished"
# Attacker 2 (a thief of the token with the old key only): cannot move the
# token to a key the thief made without the signature of that key over it.
dev_identity z
printf '{"certificate":%s,"proof":"AAAA"}' "$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$T/z.crt")" > "$T/body"
refused "401 proof_invalid" 1 "re-key without the new key's signature" -- "$CMG/sitetoken/v1/rekey" "$T/body" \
	"${ACERT[@]}" -H @"$(bearer_hdr "$T/A/client.token")"

assert_no_tokens_in_logs
finish
