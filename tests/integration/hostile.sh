#!/usr/bin/env bash
# Hostile input against the running server, one SPEC security rule at a time
# (RFC 8725): each crafted token changes exactly one thing in a real token
# and is re-signed with the site key (tests/integration/hostile_jws.py), so
# only the rule under test can refuse it. Every refusal must carry its
# documented reason code (docs/api.md "Errors"), leave devices and
# bulk_tokens byte-for-byte unchanged, and be audited exactly as documented:
# a refusal by the site policy (401/403) appends one "refused" record naming
# the reason; a request refused before it reaches the site (400, 404, 405,
# 413) appends none.
TEST_NAME=hostile
. "$(dirname "$0")/harness.sh"
server_env
JWS="python3 $(dirname "$0")/hostile_jws.py"

serve_site
new_bulk "$T/bulk.tok" >/dev/null
openssl genrsa -out "$T/foreign.key" 2048 2>/dev/null
dev_identity x                      # the hostile registrant's certificate
# A registered device with a client token, for the policy/renew matrix.
agent A 0 install /mp:"$CMG" SMSSiteCode=ABC /regtoken:- < "$T/bulk.tok" >/dev/null ||
	fail "device A install"
cp "$T/A/client.token" "$T/client.tok"
REG=$CMG/sitetoken/v1/register
XCERT=(--cert "$T/x.crt" --key "$T/x.key")

bulk_body() { printf '{"bulk_token":"%s"}' "$(cat "$1")" > "$T/body"; }
# bulk_refused / pol_refused "STATUS CODE" WHAT TOKEN_FILE: that token as
# the bulk token of a CMG registration over x's certificate / as the bearer
# of device A's GET policy: refused, audited, nothing changed.
bulk_refused() { bulk_body "$3"; refused "$1" 1 "$2" -- "$REG" "$T/body" "${XCERT[@]}"; }
pol_refused() { refused "$1" 1 "$2" -- "$POL" - "${ACERT[@]}" -H @"$(bearer_hdr "$3")"; }

# --- bulk token rules, CMG register (mutual TLS with a fresh certificate) ---
while read -r variant status error; do
	$JWS "$variant" "$T/bulk.tok" "$SITE/site.key" "$T/foreign.key" > "$T/h.tok" ||
		{ bad "craft $variant"; continue; }
	bulk_refused "$status $error" "bulk $variant" "$T/h.tok"
done <<'M'
alg_none 401 token_invalid
alg_hs256 401 token_invalid
alg_es256 401 token_invalid
crit 401 token_invalid
jku 401 token_invalid
x5u 401 token_invalid
jwk 401 token_invalid
iss 401 token_invalid
iss_case 401 token_invalid
aud 401 token_invalid
type_client 401 wrong_token_type
type_missing 401 token_invalid
expired 401 token_expired
not_yet 401 token_not_yet_valid
oversized 401 token_invalid
padding 401 token_invalid
stray_bits 401 token_invalid
dup_member 401 token_invalid
dup_header 401 token_invalid
float_exp 401 token_invalid
string_exp 401 token_invalid
truncated 401 token_invalid
extra_segment 401 token_invalid
foreign 401 token_invalid
bad_sig 401 token_invalid
M
# A client token is never a bulk token.
bulk_refused "401 wrong_token_type" "client token as bulk token" "$T/client.tok"
# Signed by the site but not on its record; on record but blocked.
$JWS unknown_id "$T/bulk.tok" "$SITE/site.key" "$T/foreign.key" > "$T/h.tok"
bulk_refused "401 bulk_token_unknown" "bulk token not on record" "$T/h.tok"
bguid=$(new_bulk "$T/blocked.tok")
$STK bulk block "$bguid" >/dev/null || fail "bulk block"
bulk_refused "403 bulk_token_blocked" "blocked bulk token" "$T/blocked.tok"
# The CMG without a TLS client certificate.
bulk_body "$T/bulk.tok"
refused "401 no_client_certificate" 1 "register without client certificate" -- "$REG" "$T/body"
printf '{}' > "$T/body"
refused "401 no_token" 1 "CMG register without bulk token" -- "$REG" "$T/body" "${XCERT[@]}"

# --- client token rules: GET policy with device A's certificate ---
POL=$CMG/sitetoken/v1/policy
REN=$CMG/sitetoken/v1/renew
ACERT=(--cert "$T/A/device.crt" --key "$T/A/device.key")
while read -r variant status error; do
	$JWS "$variant" "$T/client.tok" "$SITE/site.key" "$T/foreign.key" > "$T/h.tok" ||
		{ bad "craft $variant"; continue; }
	pol_refused "$status $error" "client $variant" "$T/h.tok"
done <<'M'
alg_none 401 token_invalid
alg_hs256 401 token_invalid
crit 401 token_invalid
jku 401 token_invalid
jwk 401 token_invalid
iss 401 token_invalid
aud 401 token_invalid
type_bulk 401 wrong_token_type
expired 401 token_expired
not_yet 401 token_not_yet_valid
cnf 401 certificate_mismatch
oversized 401 token_invalid
padding 401 token_invalid
stray_bits 401 token_invalid
dup_member 401 token_invalid
float_exp 401 token_invalid
truncated 401 token_invalid
extra_segment 401 token_invalid
foreign 401 token_invalid
M
pol_refused "401 wrong_token_type" "bulk token as client token" "$T/bulk.tok"
refused "401 wrong_token_type" 1 "bulk token renewed" -- "$REN" - "${ACERT[@]}" -X POST \
	-H @"$(bearer_hdr "$T/bulk.tok")"
refused "401 no_token" 1 "policy without bearer" -- "$POL" - "${ACERT[@]}"
refused "401 no_client_certificate" 1 "policy without client certificate" -- "$POL" - \
	-H @"$(bearer_hdr "$T/client.tok")"
refused "401 certificate_mismatch" 1 "A's token over another certificate" -- "$POL" - \
	"${XCERT[@]}" -H @"$(bearer_hdr "$T/client.tok")"
refused "401 certificate_mismatch" 1 "A's token renewed over another certificate" -- "$REN" - \
	"${XCERT[@]}" -X POST -H @"$(bearer_hdr "$T/client.tok")"
expect_ok "device A's own token still accepted after the matrix" -- "$POL" - "${ACERT[@]}" \
	-H @"$(bearer_hdr "$T/client.tok")"

# --- requests refused before the site sees them (no audit record) ---
while IFS='|' read -r what body; do
	printf '%s' "$body" > "$T/body"
	refused "400 bad_request" 0 "$what" -- "$REG" "$T/body" "${XCERT[@]}"
done <<'M'
duplicate body member|{"bulk_token":"a","bulk_token":"b"}
unknown body member|{"bulk_token":"a","admin":true}
body not an object|["bulk_token"]
truncated JSON body|{"bulk_token":"a"
non-string member|{"bulk_token":7}
M
printf '{"bulk_token":"%s","hostname":"a\\nFAKE 2026-01-01 [tid 1] MP_RegistrationManager: forged"}' "$(cat "$T/bulk.tok")" > "$T/body"
refused "400 bad_request" 0 "control characters in hostname" -- "$REG" "$T/body" "${XCERT[@]}"
python3 -c 'import sys; open(sys.argv[1],"w").write("{\"hostname\":\"%s\"}" % ("h" * 256))' "$T/body"
refused "400 bad_request" 0 "hostname over 255 characters" -- "$REG" "$T/body" "${XCERT[@]}"
python3 -c 'import sys; open(sys.argv[1],"w").write("{\"bulk_token\":\"%s\"}" % ("A" * 17000))' "$T/body"
refused "413 body_too_large" 0 "body over 16 KiB" -- "$REG" "$T/body" "${XCERT[@]}"
head -c 4000000 /dev/zero | tr '\0' 'A' > "$T/body"
refused "413 body_too_large" 0 "4 MB body" -- "$REG" "$T/body" "${XCERT[@]}"
printf '{}' > "$T/body"
refused "404 not_found" 0 "other site number" -- "${REG/$SITE_NUMBER/1$SITE_NUMBER}" "$T/body" "${XCERT[@]}"
refused "405 method_not_allowed" 0 "PUT register" -- "$REG" "$T/body" "${XCERT[@]}" -X PUT

# --- the HTTP MP's certificate member and media type (checked by the
# server before the site: not audited) ---
printf '{"certificate":"-----BEGIN CERTIFICATE-----\\nnot base64\\n-----END CERTIFICATE-----\\n"}' > "$T/body"
refused "400 bad_certificate" 0 "MP: certificate PEM unreadable" -- "$MP/sitetoken/v1/register" "$T/body"
python3 -c 'import sys,base64; open(sys.argv[1],"w").write("{\"certificate\":\"-----BEGIN CERTIFICATE-----\\n%s\\n-----END CERTIFICATE-----\\n\"}" % base64.b64encode(b"\x30\x03\x02\x01\x01").decode())' "$T/body"
refused "400 bad_certificate" 0 "MP: certificate PEM not X.509" -- "$MP/sitetoken/v1/register" "$T/body"

# --- replays of a registration ---
Arow=$(sqlite3 "$SITE/site.db" "SELECT * FROM devices WHERE guid='$(json_get device_guid < "$T/A/state.json")'")
# A's CMG registration body replayed from another TLS identity: a separate
# device bound to the replayer's certificate, never device A.
dev_identity y
bulk_body "$T/bulk.tok"
n0=$(count_devices)
got=$(post_json "$REG" "$T/body" --cert "$T/y.crt" --key "$T/y.key")
new=$(json_get device_guid < "$T/resp" 2>/dev/null)
[ "$got" = "200 -" ] && [ "$new" != "$(json_get device_guid < "$T/A/state.json")" ] &&
	[ "$(count_devices)" = $((n0 + 1)) ] && ok "replayed CMG registration from another certificate: a new device $new" ||
	bad "replayed CMG registration: '$got' $new"
[ "$(sqlite3 "$SITE/site.db" "SELECT * FROM devices WHERE guid='$(json_get device_guid < "$T/A/state.json")'")" = "$Arow" ] &&
	ok "device A's row unchanged by the replay" || bad "device A's row changed by the replay"
expect_ok "device A's token still accepted after the replay" -- "$POL" - "${ACERT[@]}" \
	-H @"$(bearer_hdr "$T/client.tok")"

# --- oversized headers ---
python3 -c 'import sys; open(sys.argv[1],"w").write("X-Pad: " + "a" * 100000)' "$T/big.hdr"
got=$(post_json "$CMG/sitetoken/v1/health" - "${XCERT[@]}" -H @"$T/big.hdr")
case "$got" in 431\ *|413\ *|400\ *|"000 ?") ok "100 KB header refused: ${got% *}" ;; *) bad "100 KB header: '$got'" ;; esac
got=$(post_json "$CMG/sitetoken/v1/policy" - "${ACERT[@]}" -H @"$(python3 -c 'import sys; open(sys.argv[1],"w").write("Authorization: Bearer " + "a." * 20000 + "b")' "$T/bb.hdr"; echo "$T/bb.hdr")")
case "$got" in 431\ *|413\ *|400\ *|"401 token_invalid") ok "40 KB bearer refused: $got" ;; *) bad "40 KB bearer: '$got'" ;; esac
expect_ok "server healthy after the header flood" -- "$CMG/sitetoken/v1/health" - "${XCERT[@]}"

# --- the agent's seed-style install arguments (agent_install_parse) ---
for args in "/mp:http://127.0.0.1:$mp_port SMSSiteCode=ABC" "/mp:$CMG SMSSiteCode=ABCD" \
	"/mp:$CMG /mp:$CMG" "/mp:$CMG SMSSiteCode=A\$C" "CCMHOSTNAME=" "/mp:$CMG /regtoken:"; do
	n0=$(count_devices)
	# shellcheck disable=SC2086
	expect_exit 2 "install $args: usage error" -- \
		$AGENT --state "$T/inst" --ca "$T/tls.crt" install $args < "$T/bulk.tok"
	expect_eq "$(count_devices)" "$n0" "install $args: nothing registered"
done
printf '/mp:%s\nFORGED' "$CMG" > "$T/arg"
$AGENT --state "$T/inst" install "$(cat "$T/arg")" > /dev/null 2>&1
[ "$?" = 2 ] && ! grep -q '^FORGED' "$T/inst/ccmsetup.log" 2>/dev/null && ok "install URL with a newline refused" ||
	bad "install URL with a newline"

# A hostile MP (plain HTTP) answering with a multi-line refusal message and
# reason: the agent's logs keep one event per line.
python3 - "$T/fake.port" > /dev/null 2>&1 <<'PY' &
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        b = json.dumps({"error": "x\nFORGED error", "message": "m\r\nFORGED 2026-01-01T00:00:00Z line"}).encode()
        self.send_response(401); self.send_header("Content-Length", str(len(b))); self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.handle_request()
PY
fake=$!
wait_for 20 test -s "$T/fake.port" || bad "the hostile MP did not start"
$AGENT --state "$T/fakedev" register --mp "http://127.0.0.1:$(cat "$T/fake.port")" > /dev/null 2>&1
rc=$?
wait "$fake"
[ "$rc" = 1 ] && ! grep -q '^FORGED' "$T/fakedev/ClientIDManagerStartup.log" &&
	grep -q 'FORGED 2026' "$T/fakedev/ClientIDManagerStartup.log" &&
	ok "a server's multi-line refusal stays one agent log line" ||
	bad "agent log with a hostile refusal (exit $rc): $(cat "$T/fakedev/ClientIDManagerStartup.log")"

# --- controls: the crafting itself is sound (a re-signed unmodified token
# is accepted), so every refusal above is the rule under test ---
$JWS valid "$T/client.tok" "$SITE/site.key" "$T/foreign.key" > "$T/h.tok"
expect_ok "re-signed client token (control)" -- "$POL" - "${ACERT[@]}" -H @"$(bearer_hdr "$T/h.tok")"
n0=$(count_devices)
$JWS valid "$T/bulk.tok" "$SITE/site.key" "$T/foreign.key" > "$T/h.tok"; bulk_body "$T/h.tok"
expect_ok "re-signed bulk token registers (control)" -- "$REG" "$T/body" "${XCERT[@]}"
[ "$(count_devices)" = $((n0 + 1)) ] && ok "control registration recorded" || bad "control device count"

finish
