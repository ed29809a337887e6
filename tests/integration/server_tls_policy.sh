#!/usr/bin/env bash
# TLS policy of every listener (MP over HTTPS, CMG, admin console).
# Attacker 1 (network attacker, SPEC threat model) tries to negotiate TLS
# below 1.2, a CBC suite, or a static-RSA key exchange (no forward secrecy):
# every listener refuses; TLS 1.2 ECDHE-GCM and TLS 1.3 succeed. The server
# certificate is RSA so that static-RSA suites would be possible at all.
TEST_NAME=server_tls_policy
. "$(dirname "$0")/harness.sh" server

$STK site init --site "$SITE" >/dev/null
dev_cert tls -newkey rsa:2048 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1

# try PORT ARGS...: 0 when the handshake completes
try() {
	local port=$1; shift
	echo | timeout 10 openssl s_client -connect 127.0.0.1:"$port" -CAfile "$T/tls.crt" \
		"$@" >"$T/sc.out" 2>&1 && grep -q '^ *Protocol *: *TLSv1\.[23]\|^New, TLSv1\.[23]' "$T/sc.out"
}

check_listener() { # check_listener NAME PORT
	local name=$1 port=$2
	try "$port" -tls1_3 && ok "$name: TLS 1.3 accepted" || fail "$name: TLS 1.3 refused: $(tail -3 "$T/sc.out")"
	try "$port" -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 && ok "$name: TLS 1.2 ECDHE-GCM accepted" \
		|| fail "$name: TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256 refused: $(tail -3 "$T/sc.out")"
	try "$port" -tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305 && ok "$name: TLS 1.2 ChaCha20-Poly1305 accepted" \
		|| fail "$name: TLS 1.2 ChaCha20 refused"
	# @SECLEVEL=0 so that it is the server, not our own OpenSSL, that refuses.
	! try "$port" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' && ok "$name: TLS 1.1 refused" || fail "$name: TLS 1.1 accepted"
	! try "$port" -tls1 -cipher 'DEFAULT:@SECLEVEL=0' && ok "$name: TLS 1.0 refused" || fail "$name: TLS 1.0 accepted"
	! try "$port" -tls1_2 -cipher 'ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384' \
		&& ok "$name: CBC suites refused" || fail "$name: a CBC suite accepted"
	! try "$port" -tls1_2 -cipher 'AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA' \
		&& ok "$name: static-RSA key exchange refused" || fail "$name: a static-RSA suite accepted"
	! try "$port" -tls1_2 -cipher 'DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0' \
		&& ok "$name: finite-field DHE refused" || fail "$name: a DHE suite accepted"
}

start_server 0 --mp-tls --admin 127.0.0.1:0
admin_port=$(. "$T/ready"; echo "$admin_port")
check_listener MP "$mp_port"
check_listener CMG "$cmg_port"
check_listener admin "$admin_port"
stop_server

# Configurable: a priority string that allows TLS 1.2 only is obeyed.
start_server 0 --mp-tls --tls-priority 'NORMAL:-VERS-ALL:+VERS-TLS1.2'
try "$mp_port" -tls1_2 && ok "--tls-priority: TLS 1.2 accepted" || fail "--tls-priority: TLS 1.2 refused"
! try "$mp_port" -tls1_3 && ok "--tls-priority: TLS 1.3 refused as configured" || fail "--tls-priority ignored"
stop_server

# A priority string GnuTLS does not understand: a clear start-up error, exit 2.
expect_refusal 2 --tls-priority "a bad --tls-priority" -- $STK serve --site "$SITE" \
	--mp 127.0.0.1:0 --cmg 127.0.0.1:0 --tls-cert "$T/tls.crt" \
	--tls-key "$T/tls.key" --tls-priority 'NORMAL:+NO-SUCH-THING'

# README: a TLS key that cannot be read is an I/O failure, exit 3 (was 2).
expect_refusal 3 missing.key "serve --tls-key missing" -- \
	$STK serve --site "$SITE" --tls-cert "$T/tls.crt" --tls-key "$T/missing.key"
echo "all ok"
