#!/usr/bin/env bash
# A pinned gateway (issue 21): `sitetoken bulk new --tls-cert` prints the
# install line with /cahash:sha256:<SPKI hash>; the agent installs with it
# and no --ca, renews with the kept pin; a CA pin works for a chain (the
# kubeadm semantics: a CA in the chain). Attacker (SPEC threat model 1): a
# network attacker impersonating the gateway with another certificate gets
# no bulk token: the handshake fails before any request, so the impostor
# sees no bytes of HTTP and the real server's logs and audit see nothing
# for a wrong pin. Malformed pins are usage errors (exit 2), nothing sent.
TEST_NAME=agent_pin
. "$(dirname "$0")/harness.sh" server
IMP_PID=
on_exit '[ -z "$IMP_PID" ] || { kill "$IMP_PID"; wait "$IMP_PID"; } 2>/dev/null'
spki() { openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1; }
nagent() { local st=$1; shift; $AGENT --state "$T/$st" "$@"; } # no --ca

serve_site
pin=sha256:$(spki "$T/tls.crt")

# The install line, with the pin computed independently (openssl).
( umask 077; $STK bulk new --lifetime 60 --tls-cert "$T/tls.crt" --cmg "$CMG" --json > "$T/b.json" )
json_get token < "$T/b.json" > "$T/bulk.tok"
[ "$(json_get ca_hash < "$T/b.json")" = "$pin" ] || fail "ca_hash $(json_get ca_hash < "$T/b.json") != $pin"
line=$(json_get install < "$T/b.json")
[ "$line" = "sitetoken-agent install /mp:$CMG /cahash:$pin /regtoken:-" ] || fail "install line: $line"
$STK bulk new --lifetime 60 --tls-cert "$T/tls.crt" | has -xF "sitetoken-agent install /mp:https://GATEWAY/CCM_Proxy_MutualAuth/SITE-NUMBER /cahash:$pin /regtoken:-" ||
	fail "text install line"
for bad in "$T/nonexistent" "$T/bulk.tok"; do
	expect_refusal 2 --tls-cert "--tls-cert $bad" -- $STK bulk new --tls-cert "$bad"
done
expect_exit 2 "--cmg http" -- $STK bulk new --tls-cert "$T/tls.crt" --cmg http://x/
ok "bulk new --tls-cert prints the install line with the pin (SHA-256 of the SPKI, as openssl computes it)"

# Malformed pins: usage errors, nothing reaches the server.
a0=$(audit_count); l0=$(wc -l < "$SITE/logs/MP_RegistrationManager.log" 2>/dev/null || echo 0)
for p in "sha256:" "sha256:${pin#sha256:}0" "sha256:${pin:7:63}" "md5:${pin#sha256:}" "${pin#sha256:}" "sha256:$(printf 'zz%.0s' $(seq 32))"; do
	expect_refusal 2 pin "/cahash:$p" -- nagent m1 install /mp:"$CMG" /cahash:"$p" /regtoken:- < "$T/bulk.tok"
	expect_refusal 2 pin "--ca-hash $p" -- nagent m2 register --cmg "$CMG" --ca-hash "$p" --regtoken-file "$T/bulk.tok"
done
[ "$(audit_count)" = "$a0" ] || fail "a malformed pin reached the server"
ok "malformed /cahash: and --ca-hash values refused (exit 2), nothing sent"

# The pinned install, no --ca anywhere; then renewal with the kept pin.
out=$(nagent d1 install /mp:"$CMG" /cahash:"$pin" /regtoken:- < "$T/bulk.tok") || fail "pinned install: $out"
echo "$out" | has "installed: device" || fail "install: $out"
grep -q "\"ca_hash\": \"$pin\"" "$T/d1/state.json" || fail "pin not kept in state.json"
nagent d1 renew --force >/dev/null || fail "renewal with the kept pin"
nagent d1 policy >/dev/null || fail "policy with the kept pin"
expect_exit 3 "without pin nor --ca the site's own certificate is not trusted" -- \
	nagent d0 register --cmg "$CMG" --regtoken-file "$T/bulk.tok"
ok "/cahash: install with no --ca registers; the pin is kept and renewal/policy use it"

# A wrong pin (another key's) against the real server: TLS fails, the server
# sees no registration (logs and audit unchanged), exit 3 with the reason.
dev_cert imp -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1
wrong=sha256:$(spki "$T/imp.crt")
a0=$(audit_count); r0=$(grep -c . "$SITE/logs/MP_RegistrationManager.log"); c0=$(grep -c "registration" "$SITE/logs/ClientAuth.log")
expect_refusal 3 "pinned public key hash: nothing was sent" "wrong pin" -- \
	nagent w1 install /mp:"$CMG" /cahash:"$wrong" /regtoken:- < "$T/bulk.tok"
[ "$(audit_count)" = "$a0" ] || fail "a wrong pin reached the site's audit"
[ "$(grep -c . "$SITE/logs/MP_RegistrationManager.log")" = "$r0" ] || fail "MP_RegistrationManager.log saw the wrong-pin attempt"
# (ClientAuth.log records the aborted handshake itself, but no registration.)
[ "$(grep -c "registration" "$SITE/logs/ClientAuth.log")" = "$c0" ] || fail "ClientAuth.log saw a registration"
[ ! -e "$T/w1/client.token" ] || fail "a token was stored"
ok "a wrong pin: handshake refused, the server logged and audited nothing"

# An impostor gateway (its own certificate, valid for 127.0.0.1) with the
# real site's pin: records every byte it receives after the handshake.
python3 - "$T/imp.crt" "$T/imp.key" "$T/imp.port" "$T/imp.got" <<'PY' &
import socket, ssl, sys
crt, key, portf, got = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(crt, key)
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
open(portf, "w").write(str(s.getsockname()[1]))
open(got, "wb").close()
s.settimeout(60)
while True:
    try:
        c, _ = s.accept()
    except Exception:
        break
    try:
        t = ctx.wrap_socket(c, server_side=True); t.settimeout(5)
        buf = b""
        while True:
            d = t.recv(65536)
            if not d: break
            buf += d
            open(got, "ab").write(d)
            head, sep, body = buf.partition(b"\r\n\r\n")
            if sep:
                n = 0
                for h in head.split(b"\r\n"):
                    if h.lower().startswith(b"content-length:"): n = int(h.split(b":")[1])
                if len(body) >= n:
                    t.sendall(b"HTTP/1.1 503 Impostor\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    break
    except Exception:
        pass
    finally:
        c.close()
PY
IMP_PID=$!
wait_for 20 test -s "$T/imp.port" || die "the impostor did not start"
IMP=https://127.0.0.1:$(cat "$T/imp.port")/CCM_Proxy_MutualAuth/$SITE_NUMBER
expect_exit 3 "impostor with the site's pin refused" -- nagent i1 install /mp:"$IMP" /cahash:"$pin" /regtoken:- < "$T/bulk.tok"
# Control: with a CA file that trusts it, the same impostor does receive the
# request, so the check above is not vacuous.
rc=0; $AGENT --state "$T/i2" --ca "$T/imp.crt" install /mp:"$IMP" /regtoken:- < "$T/bulk.tok" >/dev/null 2>&1 || rc=$?
kill "$IMP_PID" 2>/dev/null || true; wait "$IMP_PID" 2>/dev/null || true; IMP_PID=
grep -q "POST " "$T/imp.got" || fail "control: the impostor received nothing even when trusted"
n=$(grep -c "POST " "$T/imp.got")
[ "$n" = 1 ] || fail "the impostor received $n requests (want only the control's)"
tok=$(cat "$T/bulk.tok")
[ "$(grep -c -e "${tok##*.}" "$T/imp.got")" = 1 ] || fail "bulk token count at the impostor"
ok "an impostor gateway with another key receives nothing under the pin (a trusting control does)"

# kubeadm semantics: the pin names a CA in the chain. A leaf issued by a
# local CA, served with its chain; pin the CA.
stop_server
dev_cert ca -subj /CN=test-ca -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign
dev_cert leaf -subj /CN=localhost -CA "$T/ca.crt" -CAkey "$T/ca.key" \
	-addext basicConstraints=critical,CA:FALSE -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
	-addext extendedKeyUsage=serverAuth
cat "$T/leaf.crt" "$T/ca.crt" > "$T/tls.crt"; cp "$T/leaf.key" "$T/tls.key"; chmod 600 "$T/tls.key"
start_server
capin=sha256:$(spki "$T/ca.crt")
[ "$($STK bulk new --tls-cert "$T/tls.crt" --json | json_get ca_hash)" = "$capin" ] || fail "pin of a chain file is not its CA's"
nagent c1 register --cmg "$CMG" --ca-hash "$capin" --regtoken-file "$T/bulk.tok" >/dev/null || fail "CA pin"
nagent c2 register --cmg "$CMG" --ca-hash "sha256:$(spki "$T/leaf.crt")" --regtoken-file "$T/bulk.tok" >/dev/null || fail "leaf pin"
ok "a pin of the CA in the served chain (or of the leaf) is trusted"
assert_no_tokens_in_logs
