#!/usr/bin/env bash
# Keys for relying parties: /.well-known/jwks.json and the discovery document
# on the MP and the CMG, reachable without a client certificate while the
# gateway paths still refuse a request without one, with caching headers
# (max-age, ETag, If-None-Match -> 304); an independent JOSE library (npm
# jose, tests/browser/jwks.test.mjs) verifies our client and bulk tokens with
# the served key set. Attacker: 1 (network) only sees public keys here.
TEST_NAME=server_wellknown
. "$(dirname "$0")/harness.sh" server
BROWSER_DIR=$STK_SRC/tests/browser

browser_deps jose

serve_site
GUID=$(sqlite3 "$SITE/site.db" 'SELECT tenant FROM site' | tr 'A-Z' 'a-z')
ISS=urn:sccm:oauth2:$GUID
CMGROOT=https://127.0.0.1:$cmg_port

get() { # get URL OUTFILE [curl args] -> status; headers in OUTFILE.hdr
	local url=$1 out=$2; shift 2
	curl -s --cacert "$T/tls.crt" -D "$out.hdr" -o "$out" -w '%{http_code}' "$@" "$url"
}
hdr() { grep -i "^$1:" "$2.hdr" | cut -d' ' -f2- | tr -d '\r'; }

# The MP (plain HTTP here) and the CMG without a client certificate.
[ "$(get "$MP/.well-known/jwks.json" "$T/mp.jwks")" = 200 ] || fail "MP jwks"
[ "$(get "$CMGROOT/.well-known/jwks.json" "$T/cmg.jwks")" = 200 ] || fail "CMG jwks without a client certificate"
cmp -s "$T/mp.jwks" "$T/cmg.jwks" || fail "the MP and the CMG serve different key sets"
$STK key export --jwks > "$T/cli.jwks"
python3 - "$T/cmg.jwks" "$T/cli.jwks" <<'PY' || fail "served JWKS differs from key export --jwks"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
assert sorted(k["kid"] for k in a["keys"]) == sorted(k["kid"] for k in b["keys"]), (a, b)
assert all("d" not in k and "p" not in k for k in a["keys"]), "private members"
PY
[ "$(hdr Content-Type "$T/cmg.jwks")" = application/jwk-set+json ] || fail "content type"
cmg_expect "401 no_client_certificate" "gateway path without a client certificate" GET policy "" ""
ok "JWKS on the MP and on the CMG without a client certificate (same keys as key export --jwks); the gateway path still refuses 401 no_client_certificate"

# Caching: max-age, a strong ETag, If-None-Match -> 304 without a body.
cc=$(hdr Cache-Control "$T/cmg.jwks")
[ "$cc" = "public, max-age=300" ] || fail "Cache-Control: $cc"
etag=$(hdr ETag "$T/cmg.jwks")
[[ "$etag" =~ ^\"[0-9a-f]{32}\"$ ]] || fail "ETag: $etag"
[ "$(hdr ETag "$T/mp.jwks")" = "$etag" ] || fail "the MP and the CMG tag the same set differently"
[ "$(get "$CMGROOT/.well-known/jwks.json" "$T/304" -H "If-None-Match: $etag")" = 304 ] || fail "If-None-Match did not give 304"
[ ! -s "$T/304" ] || fail "304 with a body"
[ "$(hdr ETag "$T/304")" = "$etag" ] || fail "304 without the ETag"
[ "$(get "$MP/.well-known/jwks.json" "$T/200" -H 'If-None-Match: "0123"')" = 200 ] || fail "another tag must get the set"
[ "$(get "$MP/.well-known/jwks.json" "$T/405" -X POST)" = 405 ] || fail "POST jwks"
[ "$(get "$MP/.well-known/other" "$T/404")" = 404 ] || fail "unknown well-known path"
ok "Cache-Control: $cc, ETag $etag, If-None-Match -> 304 (no body); POST 405, other paths 404"

# Discovery document.
[ "$(get "$CMGROOT/.well-known/openid-configuration" "$T/disc")" = 200 ] || fail "discovery"
python3 - "$T/disc" "$ISS" "$CMGROOT/.well-known/jwks.json" <<'PY' || fail "discovery document: $(cat "$T/disc")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["issuer"] == sys.argv[2], d
assert d["jwks_uri"] == sys.argv[3], d
PY
[ "$(get "$MP/.well-known/openid-configuration" "$T/disc2")" = 200 ] &&
	grep -q "\"jwks_uri\":\"$MP/.well-known/jwks.json\"" "$T/disc2" || fail "MP discovery: $(cat "$T/disc2")"
[ "$(get "$MP/.well-known/openid-configuration" "$T/disc3" -H 'Host: evil"host')" = 400 ] || fail "odd Host echoed"
ok "discovery: issuer $ISS, jwks_uri on the listener asked; a Host that is not host[:port] is refused"

# An independent JOSE library verifies our tokens with what we serve.
new_bulk "$T/bulk.tok" >/dev/null
agent A 0 register --mp "$MP" --cmg "$CMG" --regtoken-file "$T/bulk.tok" >/dev/null
DEV=$(agent A 0 status --json | json_get device_guid)
( umask 077; printf 'client %s\nbulk %s\n' "$(cat "$T/A/client.token")" "$(cat "$T/bulk.tok")" > "$T/tokens" )
DISCOVERY=$CMGROOT/.well-known/openid-configuration TOKENS=$T/tokens EXPECT_ISS=$ISS \
	DEVICE=$DEV NODE_EXTRA_CA_CERTS=$T/tls.crt node "$BROWSER_DIR/jwks.test.mjs" ||
	fail "jose did not verify our tokens with the served JWKS"
rm -f "$T/tokens"
stop_server

# The same with a P-256 site key (ES256: the JWK's crv/x/y members).
SITE2=$T/site-p256
$STK site init --site "$SITE2" --key-type p256 >/dev/null
serve_node "$SITE2" 2 0 0 0
SERVER_PID=$SERVED_PID
MP2=http://127.0.0.1:$SERVED_MP_PORT
CMG2=https://127.0.0.1:$SERVED_CMG_PORT/CCM_Proxy_MutualAuth/$SITE_NUMBER
GUID2=$(sqlite3 "$SITE2/site.db" 'SELECT tenant FROM site' | tr 'A-Z' 'a-z')
SITETOKEN_SITE=$SITE2 new_bulk "$T/bulk2.tok" >/dev/null
agent E 0 register --mp "$MP2" --cmg "$CMG2" --regtoken-file "$T/bulk2.tok" >/dev/null
DEV2=$(agent E 0 status --json | json_get device_guid)
( umask 077; printf 'client %s\nbulk %s\n' "$(cat "$T/E/client.token")" "$(cat "$T/bulk2.tok")" > "$T/tokens" )
DISCOVERY=https://127.0.0.1:$SERVED_CMG_PORT/.well-known/openid-configuration TOKENS=$T/tokens \
	EXPECT_ISS=urn:sccm:oauth2:$GUID2 DEVICE=$DEV2 NODE_EXTRA_CA_CERTS=$T/tls.crt \
	node "$BROWSER_DIR/jwks.test.mjs" > "$T/jose2.out" || fail "jose did not verify ES256 tokens: $(cat "$T/jose2.out")"
grep -q "client token verified by jose with the served JWKS (alg ES256" "$T/jose2.out" || fail "not ES256: $(cat "$T/jose2.out")"
cat "$T/jose2.out"
rm -f "$T/tokens"
pid=$SERVER_PID; SERVER_PID=
stop_node "$pid" 2
assert_no_tokens_in_logs
