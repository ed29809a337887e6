#!/usr/bin/env bash
# Device keys and certificate validity on every registration path (the CMG
# with the TLS client certificate, the MP over HTTP with the certificate in
# the body). Attacker 1 (network attacker, SPEC threat model) gets no weak
# device key accepted: RSA-512/1024, P-224, secp256k1 are refused
# `400 bad_certificate` with a reason, and so are expired and not yet valid
# certificates; the refusal changes no record and spends no bulk token use.
TEST_NAME=device_cert_policy
. "$(dirname "$0")/harness.sh"
set -e
server_env
make_site
start_server 0
new_bulk "$T/bulk" >/dev/null

mk() { dev_cert "$@"; } # mk NAME OPENSSL-NEWKEY-ARGS... -> $T/NAME.{crt,key}, valid 30 days
mk rsa512 -newkey rsa:512
mk rsa1024 -newkey rsa:1024
mk p224 -newkey ec -pkeyopt ec_paramgen_curve:P-224
mk k256 -newkey ec -pkeyopt ec_paramgen_curve:secp256k1
mk rsa2048 -newkey rsa:2048
mk p384 -newkey ec -pkeyopt ec_paramgen_curve:P-384
mk p256 -newkey ec -pkeyopt ec_paramgen_curve:P-256
# Expired yesterday (notAfter = now - 1 day).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/old.key" \
	-out "$T/old.csr" -subj /CN=old 2>/dev/null
openssl x509 -req -in "$T/old.csr" -signkey "$T/old.key" -days -1 -out "$T/old.crt" 2>/dev/null
chmod 600 "$T/old.key"

# cmg_register NAME -> "STATUS ERROR", response in $T/resp. Python's ssl at
# OpenSSL security level 0 (curl refuses to load a key under 2048 bits), so
# that it is the site, not our client, that judges the key.
cmg_register() {
	printf '{"bulk_token":"%s","hostname":"%s"}' "$(cat "$T/bulk")" "$1" > "$T/body.json"
	python3 - "$cmg_port" "$SITE_NUMBER" "$T/tls.crt" "$T/$1.crt" "$T/$1.key" "$T/body.json" "$T/resp" <<'PY'
import http.client, json, ssl, sys
port, num, ca, crt, key, body, out = sys.argv[1:]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
ctx.load_verify_locations(ca)
ctx.load_cert_chain(crt, key)
open(out, "w").close()
try:
    c = http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx, timeout=20)
    c.request("POST", "/CCM_Proxy_MutualAuth/%s/sitetoken/v1/register" % num,
              open(body, "rb").read(), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    open(out, "wb").write(data)
    try:
        err = json.loads(data).get("error", "-")
    except Exception:
        err = "?"
    print(r.status, err)
except (ssl.SSLError, ConnectionError, OSError):
    print("000 ?")
PY
}
# The HTTP MP with the proof of possession (a signed challenge): the
# certificate rules are checked before the proof, so a weak key is refused
# as bad_certificate whatever it signs.
mp_register() {
	mp_pop_body "$T/$1.crt" "$T/$1.key"
	post_json "$MP/sitetoken/v1/register" "$T/body"
}

for n in rsa512 rsa1024 p224 k256 old; do
	s0=$(db_state)
	got=$(cmg_register "$n")
	case "$n" in
	rsa512) want_msg="RSA-512" ;; rsa1024) want_msg="RSA-1024" ;;
	p224) want_msg="secp224r1" ;; k256) want_msg="secp256k1" ;; old) want_msg="expired" ;;
	esac
	# RSA-512 cannot make a TLS 1.3 signature (RSA-PSS with SHA-256 needs
	# 66 bytes) and the TLS policy has no signature scheme for P-224 or
	# secp256k1: the client sends no certificate, or the handshake fails.
	# RSA-1024 and the expired certificate reach the site's check.
	if [ "$got" = "400 bad_certificate" ] && grep -q "$want_msg" "$T/resp"; then
		ok "CMG: $n refused 400 bad_certificate ($want_msg)"
	elif [ "$n" != rsa1024 ] && [ "$n" != old ] && { [ "$got" = "000 ?" ] || [ "$got" = "401 no_client_certificate" ]; }; then
		ok "CMG: $n cannot even be presented over TLS ($got)"
	else
		fail "CMG: $n: $got $(cat "$T/resp")"
	fi
	[ "$(db_state)" = "$s0" ] || fail "CMG: refusing $n changed the store"
	got=$(mp_register "$n")
	[ "$got" = "400 bad_certificate" ] && grep -q "$want_msg" "$T/resp" \
		&& ok "MP: $n refused 400 bad_certificate" || fail "MP: $n: $got $(cat "$T/resp")"
done
[ "$(count_devices)" = 0 ] || fail "a refused certificate was registered"
for n in rsa2048 p384; do
	got=$(cmg_register "$n")
	[ "$got" = "200 -" ] && ok "CMG: $n registers" || fail "CMG: $n: $got $(cat "$T/resp")"
done
got=$(mp_register p256)
[ "$got" = "200 -" ] && ok "MP: P-256 registers" || fail "MP: p256: $got $(cat "$T/resp")"
stop_server

# The site's clock two days behind the certificate's notBefore: not yet
# valid (beyond the documented 300 s leeway).
mk fresh -newkey ec -pkeyopt ec_paramgen_curve:P-256
start_server -2
got=$(cmg_register fresh)
[ "$got" = "400 bad_certificate" ] && grep -q "not yet valid" "$T/resp" \
	&& ok "CMG: a certificate not yet valid is refused" || fail "not yet valid: $got $(cat "$T/resp")"
got=$(mp_register fresh)
[ "$got" = "400 bad_certificate" ] && grep -q "not yet valid" "$T/resp" \
	&& ok "MP: a certificate not yet valid is refused" || fail "MP not yet valid: $got $(cat "$T/resp")"
stop_server
