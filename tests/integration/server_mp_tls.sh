#!/usr/bin/env bash
# MP over HTTPS: registration needs a credential -- a client certificate
# issued by the configured trusted CA, or a bulk registration token.
TEST_NAME=server_mp_tls
. "$(dirname "$0")/harness.sh" server
make_site
# A CA and a client certificate it issued (e.g. a domain PKI).
dev_cert ca -subj /CN=test-ca
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/pki.key" \
	-out "$T/pki.csr" -subj /CN=pki-device 2>/dev/null
openssl x509 -req -in "$T/pki.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial \
	-out "$T/pki.crt" -days 30 2>/dev/null
chmod 600 "$T"/*.key
start_server 0 --mp-tls --trusted-ca "$T/ca.crt"
MPS=https://127.0.0.1:$mp_port

# No credential: refused.
expect_refusal 1 "HTTP 401 credential_required" "HTTPS MP without a credential" -- agent P 0 register --mp "$MPS"

# Bulk token as the credential.
new_bulk "$T/bulk.tok" >/dev/null
agent P 0 register --mp "$MPS" --regtoken-file "$T/bulk.tok" | has "via mp" || fail "bulk credential"
ok "HTTPS MP with a bulk registration token accepted"

# TLS client certificate from the trusted CA: the registered certificate is
# the TLS client certificate (the handshake proved its key).
agent Q 0 status >/dev/null 2>&1 || true
agent Q 0 register --mp "$MPS" 2>/dev/null || true   # makes Q's identity (refused)
python3 -c 'import json,sys; print(json.dumps({"certificate": open(sys.argv[1]).read()}))' "$T/Q/device.crt" > "$T/body"
# Attacker 1 with a trusted-CA certificate: a body naming another device's
# (public) certificate is refused; before, that certificate was registered.
PKI=(--cert "$T/pki.crt" --key "$T/pki.key")
expect_eq "$(post_json "$MPS/sitetoken/v1/register" "$T/body" "${PKI[@]}")" "401 certificate_mismatch" \
	"HTTPS MP: a body certificate other than the TLS client certificate refused"
echo '{}' >"$T/empty"
expect_eq "$(post_json "$MPS/sitetoken/v1/register" "$T/empty" "${PKI[@]}")" "200 -" "trusted CA credential"
guid=$(json_get device_guid < "$T/resp")
[ "$(sqlite3 "$SITE/site.db" "SELECT cert_thumbprint FROM devices WHERE guid='$guid'")" = "$(cert_x5t "$T/pki.crt")" ] ||
	fail "bound to the wrong certificate"
rm -f "$T/resp"
ok "HTTPS MP with a client certificate from the trusted CA accepted, bound to that certificate"

# A self-signed TLS client certificate is not a credential on the MP.
st=$(post_json "$MPS/sitetoken/v1/register" "$T/body" --cert "$T/Q/device.crt" --key "$T/Q/device.key")
expect_eq "${st% *}" 401 "self-signed TLS client certificate is not a credential"
assert_no_tokens_in_logs
