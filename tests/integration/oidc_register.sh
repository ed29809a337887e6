#!/usr/bin/env bash
# OIDC ID tokens as a registration credential (issue 21, SPEC.md
# "Registration credentials"). The test is its own issuer
# (oidc_issuer.py: RSA and EC keys, a JWKS, ID tokens signed with them) and,
# for the URL mode, its own HTTPS JWKS server on loopback with a test CA.
#  - oidc add/list/remove; a JWKS with a key too small refused at add;
#  - a device registers through the CMG (agent --id-token-file, and the
#    seed-style /idtoken:-) and through the HTTP MP (challenge proof), gets a
#    client token, and the audit log names issuer, device and subject;
#  - one device per issuer + device claim: the same key registers again
#    (lost response, threat model 6), another key is refused 409;
#  - every bad ID token refused with its reason and nothing recorded.
# Attacker (SPEC threat model 1): a network attacker sending forged, altered,
# replayed-elsewhere or stolen ID tokens: alg none/HS256 (the JWK's public key
# as an HMAC secret), a kid the issuer never published, another issuer or
# audience, expired, without a device claim, oversized, duplicate members
# (a lax parser would read another device), a JWKS key too small, an issuer
# the site does not trust, or a stolen token presented with another key.
# And attacker 3 (database writer): an issuer row added or edited in the
# store without the site key's signature.
TEST_NAME=oidc_register
. "$(dirname "$0")/harness.sh" server
ISS=https://issuer.test/tenant1/v2.0
AUD=api://sitetoken
PY="python3 $STK_SRC/tests/integration/oidc_issuer.py"
JWKS_PID=
stop_jwks() {
	if [ -n "$JWKS_PID" ]; then kill "$JWKS_PID" 2>/dev/null || true; wait "$JWKS_PID" 2>/dev/null || true; fi
	JWKS_PID=
}
on_exit stop_jwks
mint() { ( umask 077; $PY mint "$T/iss" "$@" > "$T/idt" ); }
q() { sqlite3 "$SITE/site.db" "$1"; }
n_reg() { q "SELECT count(*) FROM registrations"; }
n_oidc_dev() { q "SELECT count(*) FROM oidc_devices"; }
id_body() { # id_body [extra json members] -> $T/body {"id_token": <$T/idt>}
	python3 -c 'import json,sys; d={"id_token": open(sys.argv[1]).read()}
d.update(json.loads(sys.argv[2])); print(json.dumps(d))' "$T/idt" "${1:-{\}}" > "$T/body"
}
# id_post "STATUS ERROR" WHAT NAME: CMG registration with $T/idt over
# identity NAME (made on first use): that answer.
id_post() {
	local got
	[ -e "$T/$3.crt" ] || dev_identity "$3"
	id_body
	got=$(post_json "$CMG/sitetoken/v1/register" "$T/body" --cert "$T/$3.crt" --key "$T/$3.key")
	expect_eq "$got" "$1" "$2"
}

make_site
mkdir -m 700 "$T/iss"
$PY keygen "$T/iss"

# --- oidc add: bad input, exit 2, nothing recorded --------------------------
audit0=$(audit_count)
for args in "--jwks $T/iss/jwks_small.json" "--jwks http://127.0.0.1:1/keys" \
	"--jwks $T/iss/none.json" "--jwks $T/iss/jwks.json --device-claim a-b" \
	"--jwks $T/iss/jwks.json --jwks-ca $T/iss/jwks.json"; do
	# shellcheck disable=SC2086
	expect_exit 2 "oidc add $args" -- $STK oidc add --issuer "$ISS" --audience "$AUD" $args
done
expect_refusal 2 "small1: RSA key of 1024 bits is too small" "small JWKS key" -- \
	$STK oidc add --issuer "$ISS" --audience "$AUD" --jwks "$T/iss/jwks_small.json"
expect_refusal 2 "--issuer must be an https://" "http issuer" -- \
	$STK oidc add --issuer http://issuer.test --audience "$AUD" --jwks "$T/iss/jwks.json"
expect_exit 2 "no --audience" -- $STK oidc add --issuer "$ISS" --jwks "$T/iss/jwks.json"
[ "$(q "SELECT count(*) FROM oidc_issuers")" = 0 ] || fail "a refused oidc add recorded an issuer"
[ "$(audit_count)" = "$audit0" ] || fail "a refused oidc add was audited"
ok "oidc add: JWKS key too small (1024-bit RSA), http JWKS URL or issuer, bad claim name, missing options: exit 2, nothing recorded"

$STK oidc add --issuer "$ISS" --jwks "$T/iss/jwks.json" --audience "$AUD" --tenant tenant1 >/dev/null
expect_refusal 1 "trusted already" "second oidc add" -- \
	$STK oidc add --issuer "$ISS" --jwks "$T/iss/jwks.json" --audience "$AUD"
$STK oidc list --json | python3 -c 'import json,sys
d=json.load(sys.stdin); assert len(d)==1 and d[0]["issuer"]==sys.argv[1] and d[0]["audience"]==sys.argv[2] and d[0]["device_claim"]=="deviceId" and d[0]["tenant"]=="tenant1" and d[0]["jwks"]=="file", d' "$ISS" "$AUD" ||
	fail "oidc list --json"
[ "$(q "SELECT outcome || ' ' || event || ' ' || subject FROM audit WHERE event = 'oidc.issuer.add'")" = "ok oidc.issuer.add $ISS" ] ||
	fail "oidc add not audited"
ok "oidc add (JWKS file), list --json, a second add of the same issuer refused (exit 1), audited"

start_server 0

# --- registration through the CMG with an ID token (agent) ------------------
mint --key rsa --device dev-0001 --sub subject-1
agent d1 0 register --cmg "$CMG" --id-token-file "$T/idt" >"$T/out" 2>"$T/err" ||
	die "agent register with an ID token: $(cat "$T/err")"
g1=$(agent d1 0 status --json | json_get device_guid)
[ -s "$T/d1/client.token" ] || fail "no client token stored"
agent d1 0 policy >/dev/null || fail "the client token from an ID token registration does not authenticate at the CMG"
[ "$(q "SELECT device_guid || ' ' || sub FROM oidc_devices WHERE issuer = '$ISS' AND device_id = 'dev-0001'")" = "$g1 subject-1" ] ||
	fail "oidc_devices row"
detail=$(q "SELECT detail FROM audit WHERE event = 'device.register.cmg' AND subject = '$g1' AND outcome = 'ok'")
grep -q "^new oidc iss=$ISS device=dev-0001 sub=subject-1 " <<<"$detail" || fail "audit detail: $detail"
! grep -q "eyJ" <<<"$(q "SELECT detail || subject || ref FROM audit")" || fail "a token in the audit log"
$STK devices list --json | python3 -c 'import json,sys
d={r["guid"]: r for r in json.load(sys.stdin)}[sys.argv[1]]
assert d["oidc_issuer"] == sys.argv[2] and d["oidc_device"] == "dev-0001" and d["bulk_guid"] is None, d' "$g1" "$ISS" ||
	fail "devices list --json does not name the OIDC identity"
ok "agent register --cmg --id-token-file: device $g1 registered, client token works at the CMG, audit names issuer, device and subject"

# The same key again (a lost response): the same device, a new token.
agent d1 0 register --cmg "$CMG" --id-token-file - < "$T/idt" >/dev/null 2>"$T/err" ||
	fail "re-registration with the same key: $(cat "$T/err")"
[ "$(agent d1 0 status --json | json_get device_guid)" = "$g1" ] || fail "re-registration changed the GUID"
[ "$(count_devices)" = 1 ] && [ "$(n_oidc_dev)" = 1 ] || fail "re-registration added a device"
ok "the same identity with the same key registers again (--id-token-file -): same device GUID"

# Another key with the same identity (a stolen ID token): refused 409.
state0=$(db_state); reg0=$(n_reg)
expect_refusal 1 idtoken_identity_registered "second key for the same identity" -- \
	agent d2 0 register --cmg "$CMG" --id-token-file "$T/idt"
[ "$(db_state)" = "$state0" ] && [ "$(n_reg)" = "$reg0" ] || fail "the refused second key changed the store"
id_post "409 idtoken_identity_registered" "thief over curl" thief
ok "the identity with another key (attacker 1 with a stolen ID token): 409 idtoken_identity_registered, nothing recorded"

# Seed-style install: /idtoken:- with an EC (ES256) key, the token on stdin.
mint --key ec --device dev-0002 --sub subject-2
$AGENT --state "$T/d3" --ca "$T/tls.crt" install "/mp:$CMG" SMSSiteCode=ABC /idtoken:- \
	< "$T/idt" >"$T/out" 2>"$T/err" || fail "install /idtoken:-: $(cat "$T/err")"
grep -q "^installed: device" "$T/out" || fail "install output: $(cat "$T/out")"
grep -q "/idtoken:(hidden)" "$T/d3/ccmsetup.log" || fail "ccmsetup.log: $(cat "$T/d3/ccmsetup.log")"
expect_refusal 2 "standard input" "/idtoken:TOKEN on argv" -- \
	$AGENT --state "$T/d4" --ca "$T/tls.crt" install "/mp:$CMG" "/idtoken:$(cat "$T/idt")"
expect_exit 2 "/idtoken with /regtoken" -- \
	$AGENT --state "$T/d4" --ca "$T/tls.crt" install "/mp:$CMG" /idtoken:- /regtoken:- < "$T/idt"
ok "install /idtoken:- (ES256 ID token on stdin) registers; an ID token on argv or with /regtoken is refused (exit 2)"

# HTTP MP: the ID token with the challenge proof of possession.
dev_identity mpdev
mint --device dev-0003 --sub subject-3
mp_pop_body "$T/mpdev.crt" "$T/mpdev.key"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["id_token"]=open(sys.argv[2]).read(); print(json.dumps(d))' \
	"$T/body" "$T/idt" > "$T/body2"
[ "$(post_json "$MP/sitetoken/v1/register" "$T/body2")" = "200 -" ] || fail "HTTP MP with ID token: $(cat "$T/resp")"
[ "$(q "SELECT count(*) FROM oidc_devices WHERE device_id = 'dev-0003'")" = 1 ] || fail "MP registration not mapped"
ok "HTTP MP: ID token with the challenge proof registers (one device per identity recorded)"

# --- every bad ID token: its reason, nothing recorded ------------------------
dev_identity bad
cmg_bad() { # cmg_bad EXPECTED DESCRIPTION [extra json]
	local want=$1 what=$2 got state reg odev
	state=$(db_state); reg=$(n_reg); odev=$(n_oidc_dev)
	id_body "${3:-}"
	got=$(post_json "$CMG/sitetoken/v1/register" "$T/body" --cert "$T/bad.crt" --key "$T/bad.key")
	[ "$got" = "$want" ] || fail "$what: got '$got', want '$want' ($(cat "$T/resp"))"
	[ "$(db_state)" = "$state" ] && [ "$(n_reg)" = "$reg" ] && [ "$(n_oidc_dev)" = "$odev" ] ||
		fail "$what: the refusal recorded something"
}
mint --device dev-bad --alg none; cmg_bad "401 idtoken_invalid" "alg none"
mint --device dev-bad --alg HS256; cmg_bad "401 idtoken_invalid" "alg HS256"
mint --device dev-bad --key rsa --alg ES256 --kid rsa1; cmg_bad "401 idtoken_invalid" "alg ES256 on an RSA key"
mint --device dev-bad --key rsa2 --kid rsa2; cmg_bad "401 idtoken_unknown_key" "kid not in the JWKS"
mint --device dev-bad --key rsa2 --kid rsa1; cmg_bad "401 idtoken_invalid" "signed by another key under a known kid"
mint --device dev-bad --iss https://evil.test/v2.0; cmg_bad "401 idtoken_issuer_untrusted" "untrusted issuer"
mint --device dev-bad --aud api://other; cmg_bad "401 idtoken_audience" "wrong aud"
mint --device dev-bad --aud '["api://other","x"]'; cmg_bad "401 idtoken_audience" "wrong aud array"
mint --device dev-bad --exp-in -3600; cmg_bad "401 idtoken_expired" "expired"
mint --device dev-bad --tid tenant2; cmg_bad "401 idtoken_tenant" "wrong tid"
mint --no-device; cmg_bad "401 idtoken_device_claim" "missing device claim"
mint --device 'dev bad'; cmg_bad "401 idtoken_device_claim" "device claim with a space"
mint --device dev-bad --pad 9000; cmg_bad "401 idtoken_invalid" "oversized (over 8192 bytes)"
mint --device dev-bad --dup dev-0001; cmg_bad "401 idtoken_invalid" "duplicate members"
mint --device dev-bad; cmg_bad "400 credential_conflict" "bulk token and ID token" '{"bulk_token": "x.y.z"}'
grep -q "over 8192 bytes" <<<"$(q "SELECT detail FROM audit WHERE outcome = 'refused'") $(cat "$SITE"/logs/*.log 2>/dev/null)" ||
	fail "the oversize refusal's reason is not recorded"
ok "alg none/HS256/mismatch, unknown kid, wrong key, untrusted issuer, wrong aud (string and array), expired, wrong tid, missing/bad device claim, oversized, duplicate members, both credentials: each refused with its reason, nothing recorded"

# The aud array form that names us is accepted.
mint --device dev-0005 --aud "[\"api://other\",\"$AUD\"]"
id_post "200 -" "aud array" arr
ok "an aud array holding the audience is accepted"

# --- JWKS URL mode: the test's own HTTPS JWKS server ------------------------
dev_cert "$T/iss/ca" -days 2 -subj /CN=oidc-test-ca
dev_cert "$T/iss/https" -subj /CN=127.0.0.1 -CA "$T/iss/ca.crt" -CAkey "$T/iss/ca.key" \
	-addext basicConstraints=critical,CA:FALSE -addext subjectAltName=IP:127.0.0.1
cp "$T/iss/jwks.json" "$T/iss/served.json"
$PY serve "$T/iss" "$T/iss/https.crt" "$T/iss/https.key" "$T/iss/ready" 2>"$T/jwks.stderr" &
JWKS_PID=$!
wait_for 20 test -s "$T/iss/ready" || die "JWKS server did not start: $(cat "$T/jwks.stderr")"
URL=https://127.0.0.1:$(cat "$T/iss/ready")/keys
ISS2=https://issuer-url.test/v2.0
fetches() { wc -l < "$T/iss/fetches" 2>/dev/null || echo 0; }
# Without the test CA the system CAs do not know the server: exit 3, nothing recorded.
expect_exit 3 "unknown JWKS CA" -- $STK oidc add --issuer "$ISS2" --jwks "$URL" --audience "$AUD"
[ "$(q "SELECT count(*) FROM oidc_issuers WHERE issuer = '$ISS2'")" = 0 ] ||
	fail "JWKS URL with an unknown CA recorded"
$STK oidc add --issuer "$ISS2" --jwks "$URL" --jwks-ca "$T/iss/ca.crt" --audience "$AUD" >/dev/null ||
	die "oidc add with a JWKS URL"
$STK oidc list | has "keys $URL" || fail "oidc list does not show the URL"
mint --iss "$ISS2" --device url-0001
id_post "200 -" "URL mode registration" u1
f1=$(fetches)
# The issuer rotates: rsa2 appears. Within the refresh interval the server
# does not fetch again (junk kids cost nothing); after it, one fetch finds it.
cp "$T/iss/jwks2.json" "$T/iss/served.json"
mint --iss "$ISS2" --key rsa2 --device url-0002
for _ in 1 2 3; do
	id_post "401 idtoken_unknown_key" "new kid within the refresh interval" u2
done
[ "$(fetches)" = "$f1" ] || fail "the server fetched the JWKS again within 10 seconds ($(fetches) > $f1)"
sleep 10
id_post "200 -" "new kid after the refresh interval" u2
[ "$(fetches)" = $((f1 + 1)) ] || fail "refresh on the unknown kid: $(fetches) fetches, want $((f1 + 1))"
ok "JWKS URL (own HTTPS server, test CA): registration; a new kid is fetched on demand, at most once per 10 s"

# A key too small at refresh is ignored (logged); the other keys keep working.
cp "$T/iss/jwks_small.json" "$T/iss/served.json"
sleep 10
mint --iss "$ISS2" --key small --device url-0003
id_post "401 idtoken_unknown_key" "1024-bit key after refresh" u3
grep -q "small1: RSA key of 1024 bits is too small" "$T/server.stderr" || fail "the ignored small key is not logged"
mint --iss "$ISS2" --key ec --device url-0004
id_post "200 -" "EC key after a refresh with a small key" u4
ok "a JWKS key too small at refresh is ignored and logged, the others still verify"

# --- attacker 3 (database writer): issuer rows the site key did not sign ----
# A forged row (the legit row's endorsement copied) and an edit of the legit
# row trust nobody; restoring the edited field restores the signature.
kid=$(q "SELECT endorsed_by FROM oidc_issuers WHERE issuer = '$ISS'")
sig=$(q "SELECT endorsement FROM oidc_issuers WHERE issuer = '$ISS'")
[ -n "$kid" ] && [ -n "$sig" ] || fail "the issuer record is not endorsed"
q "INSERT INTO oidc_issuers (issuer, audience, device_claim, tenant, jwks_url, jwks, jwks_ca, added_at, endorsed_by, endorsement) VALUES ('https://forged.test', '$AUD', 'deviceId', '', '', '$(tr -d '\n' < "$T/iss/jwks.json")', '', 0, '$kid', '$sig')"
mint --iss https://forged.test --device forged-1
state=$(db_state); reg=$(n_reg)
id_post "401 idtoken_issuer_untrusted" "forged issuer row" f1
[ "$(db_state)" = "$state" ] && [ "$(n_reg)" = "$reg" ] || fail "the forged issuer registered something"
$STK oidc list --json | python3 -c 'import json,sys
d={r["issuer"]: r["endorsed"] for r in json.load(sys.stdin)}
assert d["https://forged.test"] is False and d[sys.argv[1]] is True, d' "$ISS" || fail "oidc list endorsed flags"
q "UPDATE oidc_issuers SET tenant = '' WHERE issuer = '$ISS'"
mint --device dev-0007 --tid tenant2
id_post "401 idtoken_issuer_untrusted" "edited issuer row" f2
grep -q "not endorsed by a trusted site key" "$T/server.stderr" || fail "the unendorsed record is not logged"
q "UPDATE oidc_issuers SET tenant = 'tenant1' WHERE issuer = '$ISS'"
q "DELETE FROM oidc_issuers WHERE issuer = 'https://forged.test'"
mint --device dev-0007
id_post "200 -" "restored issuer row" f2
ok "attacker 3: an issuer row added or edited in the database (not signed by the site key) trusts no one (idtoken_issuer_untrusted), oidc list flags it"

# --- oidc remove: the issuer is no longer trusted; its devices stay ----------
$STK oidc remove --issuer "$ISS" >/dev/null || fail "oidc remove"
expect_exit 1 "second oidc remove" -- $STK oidc remove --issuer "$ISS"
mint --device dev-0009
dev_identity r1
cmg_bad "401 idtoken_issuer_untrusted" "removed issuer"
agent d1 0 policy >/dev/null || fail "a device of a removed issuer lost its client token"
[ "$(q "SELECT count(*) FROM audit WHERE event = 'oidc.issuer.remove' AND subject = '$ISS'")" = 1 ] || fail "oidc remove not audited"
ok "oidc remove: its ID tokens refused (idtoken_issuer_untrusted), its devices stay, audited"

stop_jwks
assert_no_tokens_in_logs
$STK audit verify >/dev/null || fail "audit verify"
ok "audit verify passes"
