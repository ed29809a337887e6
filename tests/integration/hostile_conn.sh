#!/usr/bin/env bash
# Hostile connections: slow clients (slowloris over HTTP on the MP and a
# stalled TLS handshake on the CMG) must not starve a legitimate client,
# and malformed or unusual TLS client certificates get a documented answer
# (docs/api.md) without crashing the server or touching the database.
TEST_NAME=hostile_conn
. "$(dirname "$0")/harness.sh"
server_env
# server/server.h: SRV_CONN_PER_IP, SRV_CONN_TIMEOUT
PER_IP=$(sed -n 's/^#define SRV_CONN_PER_IP \([0-9]*\)u.*/\1/p' "$STK_SRC/server/server.h")
IDLE=$(sed -n 's/^#define SRV_CONN_TIMEOUT \([0-9]*\)u.*/\1/p' "$STK_SRC/server/server.h")
[ -n "$PER_IP" ] && [ -n "$IDLE" ] || fail "connection limits not found in server/server.h"

serve_site
new_bulk "$T/bulk.tok" >/dev/null

# --- slow clients, both listeners at once (600 > the 512 total limit) ---
SL="python3 $(dirname "$0")/hostile_slowloris.py"
$SL "$mp_port" 0 "$T/tls.crt" 600 "$PER_IP" "$IDLE" > "$T/sl_mp.out" 2>&1 &
p1=$!
$SL "$cmg_port" 1 "$T/tls.crt" 600 "$PER_IP" "$IDLE" "/CCM_Proxy_MutualAuth/$SITE_NUMBER" > "$T/sl_cmg.out" 2>&1 &
p2=$!

# --- TLS client certificates (meanwhile: different source address) ---
REG=$CMG/sitetoken/v1/register
bulk_body() { printf '{"bulk_token":"%s"}' "$(cat "$1")" > "$T/body"; }
bulk_body "$T/bulk.tok"
# register_with WHAT CERT KEY WANT...: the answer must be one of WANT
register_with() {
	local what=$1 crt=$2 key=$3; shift 3
	local s0 n0 got w
	s0=$(db_state); n0=$(count_devices)
	got=$(post_json "$REG" "$T/body" --cert "$crt" --key "$key")
	for w in "$@"; do
		if [ "$got" = "$w" ]; then
			if [ "$w" != "200 -" ] && [ "$(db_state)" != "$s0" ]; then
				bad "$what: refused but the database changed"; return
			fi
			if [ "$w" = "200 -" ] && [ "$(count_devices)" != $((n0 + 1)) ]; then
				bad "$what: 200 but no new device"; return
			fi
			ok "$what: $got"; return
		fi
	done
	bad "$what: got '$got', want one of: $*"
}
cert_der() { openssl x509 -in "$1" -outform DER; }
pem_of() { openssl x509 -inform DER -outform PEM; }

# A self-signed certificate whose signature is corrupt: the CMG checks no
# chain (docs/api.md "Mutual TLS"), the handshake proves the key, and the
# token is bound to exactly these bytes.
dev_identity c1
cert_der "$T/c1.crt" > "$T/c1.der"
python3 -c 'import sys; d=bytearray(open(sys.argv[1],"rb").read()); d[-3]^=0xff; open(sys.argv[1],"wb").write(d)' "$T/c1.der"
pem_of < "$T/c1.der" > "$T/c1bad.crt"
register_with "certificate with a corrupt self-signature" "$T/c1bad.crt" "$T/c1.key" "200 -"
t1=$(python3 -c 'import json; print(json.load(open("'"$T/resp"'"))["client_token"])' 2>/dev/null)
# Expired certificate (validity in the past): refused (site/registration/devcert.c).
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/c2.key" \
	-out "$T/c2.csr" -subj /CN=c2 2>/dev/null
openssl x509 -req -in "$T/c2.csr" -signkey "$T/c2.key" -days -1 -out "$T/c2.crt" 2>/dev/null
register_with "expired certificate" "$T/c2.crt" "$T/c2.key" "400 bad_certificate"
# Over the 16 KiB DER the site accepts (a 20 KB subjectAltName): refused
# as a bad certificate, or by the TLS stack.
python3 -c 'import sys; print("subjectAltName=" + ",".join("DNS:h%05d.example" % i for i in range(1400)))' > "$T/san.ext"
dev_cert c3 -addext "$(cat "$T/san.ext")"
register_with "20 KB client certificate" "$T/c3.crt" "$T/c3.key" "400 bad_certificate" "000 ?"
# A chain of 30 extra certificates after the leaf: the leaf is the identity.
dev_identity c4
for i in $(seq 30); do dev_identity "ch$i"; cat "$T/ch$i.crt"; done > "$T/extra.pem"
cat "$T/c4.crt" "$T/extra.pem" > "$T/c4chain.crt"
register_with "leaf plus 30 unrelated certificates" "$T/c4chain.crt" "$T/c4.key" "200 -"
got=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices WHERE cert = X'$(cert_der "$T/c4.crt" | od -An -tx1 -v | tr -d ' \n')'")
expect_eq "$got" 1 "the leaf certificate is the one recorded"
# RSA 1024: refused, by curl's OpenSSL (it will not send a key that weak)
# or by the site (device_cert_policy.sh); never a crash.
dev_cert c5 -newkey rsa:1024
register_with "RSA-1024 certificate" "$T/c5.crt" "$T/c5.key" "400 bad_certificate" "000 ?"
dev_cert c6 -newkey rsa:4096
register_with "RSA-4096 certificate" "$T/c6.crt" "$T/c6.key" "200 -"
# A token bound to the corrupt-signature certificate is useless with another one.
if [ -n "$t1" ]; then
	printf '%s' "$t1" > "$T/t1.tok"
	s0=$(db_state)
	got=$(post_json "$CMG/sitetoken/v1/policy" - --cert "$T/c4.crt" --key "$T/c4.key" -H @"$(bearer_hdr "$T/t1.tok")")
	[ "$got" = "401 certificate_mismatch" ] && [ "$(db_state)" = "$s0" ] &&
		ok "its token over another certificate: $got" || bad "token over another certificate: $got"
fi

wait "$p1"; r1=$?
wait "$p2"; r2=$?
cat "$T/sl_mp.out" "$T/sl_cmg.out"
[ "$r1" = 0 ] && [ "$r2" = 0 ] || bad "slow-client checks (see above)"
expect_eq "$(post_json "$CMG/sitetoken/v1/health" -)" "200 -" "server healthy at the end"
kill -0 "$SERVER_PID" || bad "server died"
finish
