#!/usr/bin/env bash
# The CLI with the site key in a SoftHSM token: site init, bulk new and
# verify on RS256 and ES256; key show reports the attributes read back
# from the token; wrong PIN, missing token, missing object and a module
# that will not load give clear errors and the right exit codes.
. "$STK_SRC/tests/integration/lib.sh"

eval "$(bash "$STK_SRC/swtpm-setup/softhsm-token.sh" "$T/hsm" cli)" || { bad "make SoftHSM token"; finish; exit 1; }
unset SITETOKEN_PKCS11_PIN
export SITETOKEN_TIME_OFFSET=0

for kt in rsa2048 p256; do
  case $kt in rsa2048) alg=RS256 ;; p256) alg=ES256 ;; esac
  S="$T/site-$kt"
  expect_exit 0 "$kt: site init in the token" -- \
    "$ST" --site "$S" site init --backend pkcs11 --key-type "$kt" \
    --pkcs11-uri "pkcs11:token=cli;object=site-$kt" --json
  uri=$(json 'd["key_uri"]' <<<"$OUT")
  expect_in "pkcs11:token=cli;object=site-$kt;id=" "$uri" "$kt: stored key URI names token, object and id"
  if grep -q pin <<<"$uri"; then bad "$kt: stored URI mentions a PIN"; else ok "$kt: stored URI holds no PIN"; fi

  expect_exit 0 "$kt: key show --json" -- "$ST" --site "$S" key show --json
  expect_eq "$(json 'd["alg"]' <<<"$OUT")" "$alg" "$kt: alg $alg"
  expect_eq "$(json 'd["non_exportable"]' <<<"$OUT")" "True" "$kt: non_exportable"
  expect_eq "$(json 'd["attributes"]["CKA_SENSITIVE"]' <<<"$OUT")" "true" "$kt: CKA_SENSITIVE=true (read from the token)"
  expect_eq "$(json 'd["attributes"]["CKA_EXTRACTABLE"]' <<<"$OUT")" "false" "$kt: CKA_EXTRACTABLE=false"
  expect_eq "$(json 'd["attributes"]["CKA_ALWAYS_SENSITIVE"]' <<<"$OUT")" "true" "$kt: CKA_ALWAYS_SENSITIVE=true"
  expect_eq "$(json 'd["attributes"]["CKA_NEVER_EXTRACTABLE"]' <<<"$OUT")" "true" "$kt: CKA_NEVER_EXTRACTABLE=true"
  expect_eq "$(json 'd["attributes"]["CKA_TOKEN"]' <<<"$OUT")" "true" "$kt: CKA_TOKEN=true"
  expect_eq "$(json 'd["attestation"]' <<<"$OUT")" "none" "$kt: key show: no attestation on PKCS#11"
  # PKCS#11 has no standard key attestation: a plain explanation, exit 2.
  expect_exit 2 "$kt: key attest refused on pkcs11" -- "$ST" --site "$S" key attest --nonce 00112233445566778899aabbccddeeff
  expect_in "PKCS#11 defines no standard" "$ERR" "$kt: key attest says why"

  expect_exit 0 "$kt: bulk new signs in the token" -- "$ST" --site "$S" bulk new --json
  tok=$(json 'd["token"]' <<<"$OUT")
  hdr=$(cut -d. -f1 <<<"$tok" | tr '_-' '/+' | base64 -d 2>/dev/null || true)
  expect_in "\"alg\":\"$alg\"" "$hdr" "$kt: token header says $alg"
  expect_exit 0 "$kt: verify the token" -- bash -c "printf '%s' '$tok' | '$ST' --site '$S' verify --type bulk"
  expect_in "Token is valid" "$OUT" "$kt: token valid"
  # Verification needs only the public key: no module, no PIN.
  expect_exit 0 "$kt: verify without module or PIN" -- env -u SITETOKEN_PKCS11_MODULE \
    -u SITETOKEN_PKCS11_PIN_FILE bash -c "printf '%s' '$tok' | '$ST' --site '$S' verify --type bulk"
  # The public key agrees with the token's key: openssl verifies the site
  # certificate's self-signature made inside the token.
  expect_exit 0 "$kt: site certificate self-signature verifies" -- \
    openssl verify -check_ss_sig -CAfile "$S/site.crt" "$S/site.crt"
done

S="$T/site-rsa2048"
# Wrong PIN: exit 3, a message that names the cause, the PIN not echoed.
expect_exit 3 "wrong PIN refused" -- env SITETOKEN_PKCS11_PIN=9999-wrong "$ST" --site "$S" bulk new
expect_in "wrong PIN for PKCS#11 token 'cli'" "$ERR" "wrong PIN: clear message"
expect_in "CKR_PIN_INCORRECT" "$ERR" "wrong PIN: names CKR_PIN_INCORRECT"
if grep -q 9999-wrong <<<"$ERR$OUT"; then bad "wrong PIN echoed"; else ok "wrong PIN not echoed"; fi
for i in 1 2 3 4 5; do env SITETOKEN_PKCS11_PIN=9999-wrong "$ST" --site "$S" bulk new >/dev/null 2>&1; done
expect_exit 0 "token not locked after six wrong PINs: right PIN works" -- "$ST" --site "$S" bulk new
flags=$(pkcs11-tool --module "$SITETOKEN_PKCS11_MODULE" -L 2>/dev/null | sed -n '/token label *: cli/,/^Slot/p')
if grep -qi "locked" <<<"$flags"; then bad "token reports a locked PIN: $flags"; else ok "token flags show no lock"; fi

# No PIN in the environment: prompted for on a terminal (script(1) gives
# the command a pty), not echoed; without a terminal, a clear refusal.
pin=$(cat "$SITETOKEN_PKCS11_PIN_FILE")
out=$( (sleep 0.5; printf '%s\n' "$pin") | env -u SITETOKEN_PKCS11_PIN_FILE \
  timeout 20 script -qec "'$ST' --site '$S' bulk new" /dev/null 2>&1)
expect_in "PIN for PKCS#11 token 'cli':" "$out" "PIN prompt on a terminal"
expect_in "Token GUID:" "$out" "prompted PIN works"
if grep -qF -- "$pin" <<<"$out"; then bad "prompted PIN echoed"; else ok "prompted PIN not echoed"; fi
expect_exit 3 "no PIN and no terminal" -- env -u SITETOKEN_PKCS11_PIN_FILE "$ST" --site "$S" bulk new </dev/null
expect_in "needs a user PIN" "$ERR" "no PIN: says how to give one"

# PIN file with loose permissions: refused.
cp "$SITETOKEN_PKCS11_PIN_FILE" "$T/loose.pin"; chmod 644 "$T/loose.pin"
expect_exit 3 "PIN file readable by others refused" -- env SITETOKEN_PKCS11_PIN_FILE="$T/loose.pin" "$ST" --site "$S" bulk new
expect_in "chmod 600" "$ERR" "loose PIN file: says chmod 600"
# PIN file owned by another user (attacker 5 could replace it): refused.
if [ "$(id -u)" = 0 ]; then
  cp "$SITETOKEN_PKCS11_PIN_FILE" "$T/other.pin"; chmod 600 "$T/other.pin"; chown 65534 "$T/other.pin"
  expect_exit 3 "PIN file owned by another user refused" -- env SITETOKEN_PKCS11_PIN_FILE="$T/other.pin" "$ST" --site "$S" bulk new
  expect_in "belongs to uid 65534" "$ERR" "foreign PIN file: says whose it is"
fi

# Module that will not load.
expect_exit 3 "module that will not load" -- env SITETOKEN_PKCS11_MODULE=/nonexistent/libnone.so "$ST" --site "$S" bulk new
expect_in "cannot load PKCS#11 module /nonexistent/libnone.so" "$ERR" "module: clear message"

# Missing token.
expect_exit 3 "missing token" -- "$ST" --site "$T/site-none" site init --backend pkcs11 \
  --pkcs11-uri "pkcs11:token=no-such-token;object=k"
expect_in "no PKCS#11 token labelled 'no-such-token'" "$ERR" "missing token: clear message"
[ -e "$T/site-none/site.db" ] && bad "missing token left a site behind" || ok "missing token: nothing created"

# PIN in the URI: refused before anything happens.
expect_exit 2 "pin-value in the URI refused" -- "$ST" --site "$T/site-pv" site init --backend pkcs11 \
  --pkcs11-uri "pkcs11:token=cli;object=k?pin-value=123456"
expect_in "pin-value is refused" "$ERR" "pin-value: clear message"

# Missing object: the key was deleted from the token under the site.
S="$T/site-p256"
# (pkcs11-tool only takes the PIN as an option; a throw-away test token)
pkcs11-tool --module "$SITETOKEN_PKCS11_MODULE" --token-label cli --login --pin "$pin" \
  --delete-object --type privkey --label site-p256 >/dev/null 2>&1 || bad "delete key with pkcs11-tool"
expect_exit 3 "missing object" -- "$ST" --site "$S" bulk new
expect_in "no private key object 'site-p256'" "$ERR" "missing object: clear message"

finish
