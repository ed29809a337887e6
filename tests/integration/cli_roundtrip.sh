#!/usr/bin/env bash
# site init + issue + verify round trips through the CLI, on RS256 and ES256.
. "$(dirname "$0")/harness.sh"

expect_exit 0 "--help" -- "$ST" --help
expect_in "Exit codes:" "$OUT" "--help documents exit codes"
expect_exit 2 "no command" -- "$ST"
expect_exit 2 "unknown command" -- "$ST" frobnicate
expect_exit 2 "no site directory" -- env -u SITETOKEN_SITE "$ST" key show
expect_exit 2 "bad key type" -- "$ST" site init --site "$T/x" --key-type rsa1024

for kt in rsa2048 rsa3072 p256; do
  S="$T/site-$kt"
  alg=RS256; [ $kt = p256 ] && alg=ES256
  expect_exit 0 "site init $kt" -- "$ST" --site "$S" site init --backend file --key-type $kt
  expect_exit 1 "second init refused ($kt)" -- "$ST" --site "$S" site init --key-type $kt
  expect_exit 0 "key show --json ($kt)" -- "$ST" --site "$S" key show --json
  expect_eq "$(json 'd["alg"]+" "+d["key_type"]+" "+str(d["non_exportable"])' <<<"$OUT")" "$alg $kt False" "key show reports $alg, file keys exportable"
  kid=$(json 'd["kid"]' <<<"$OUT"); x5t=$(json 'd["x5t"]' <<<"$OUT")
  expect_exit 0 "issue --type bulk ($kt)" -- "$ST" --site "$S" issue --type bulk --lifetime 30 --json
  tok=$(json 'd["token"]' <<<"$OUT"); guid=$(json 'd["guid"]' <<<"$OUT")
  printf '%s\n' "$tok" > "$T/tok"
  expect_exit 0 "verify ($kt)" -- "$ST" --site "$S" verify --type bulk --json < "$T/tok"
  expect_eq "$(json 'd["header"]["alg"]+" "+d["header"]["kid"]+" "+d["header"]["x5t"]' <<<"$OUT")" "$alg $kid $x5t" "header alg/kid/x5t ($kt)"
  expect_eq "$(json '" ".join([d["claims"][k] for k in ["SCCMTokenCategory","Authority","License","Type","aud"]])' <<<"$OUT")" \
    "SCCMPreAuthToken SCCM SCCM BulkRegistration urn:sccm:service" "claims match SPEC ($kt)"
  site=$("$ST" --site "$S" site show --json | json 'd["site"]')
  expect_eq "$(json 'd["claims"]["TenantId"]+" "+d["claims"]["UniqueId"]+" "+d["claims"]["iss"]+" "+str(d["claims"]["exp"]-d["claims"]["nbf"])' <<<"$OUT")" \
    "${site^^} $guid urn:sccm:oauth2:$site 1800" "TenantId upper, UniqueId lower, iss, lifetime ($kt)"
  expect_exit 1 "client type refused for a bulk token ($kt)" -- "$ST" --site "$S" verify --type client < "$T/tok"
  expect_in "not accepted as a ClientAuthentication" "$ERR" "type refusal reason"
  # verification needs only the site certificate
  expect_exit 0 "verify with --cert only ($kt)" -- "$ST" verify --cert "$S/site.crt" < "$T/tok"
  expect_exit 0 "key export PEM ($kt)" -- "$ST" --site "$S" key export --out "$T/pub.pem"
  expect_in "BEGIN PUBLIC KEY" "$(cat "$T/pub.pem")" "PEM public key written"
  expect_exit 0 "key export --jwks ($kt)" -- "$ST" --site "$S" key export --jwks
  expect_eq "$(json 'd["keys"][0]["kid"]+" "+d["keys"][0]["alg"]' <<<"$OUT")" "$kid $alg" "JWKS kid/alg ($kt)"
  # one flipped byte anywhere is refused with exit 1
  n=${#tok}; flips_ok=1
  for ((i=0; i<n; i+=7)); do
    c=${tok:i:1}; if [ "$c" = "A" ]; then r=B; else r=A; fi
    [ "$c" = "." ] && r=A
    printf '%s\n' "${tok:0:i}$r${tok:i+1}" > "$T/flip"
    "$ST" --site "$S" verify < "$T/flip" >/dev/null 2>&1; rc=$?
    [ $rc -eq 1 ] || { flips_ok=0; echo "    byte $i: exit $rc"; }
  done
  [ $flips_ok = 1 ] && ok "every flipped byte refused with exit 1 ($kt)" || bad "flipped byte not refused ($kt)"
  # the token is not on disk anywhere in the site directory
  if grep -rqF -e "${tok##*.}" "$S"; then bad "token signature found in site dir"; else ok "token not stored ($kt)"; fi
done

S="$T/site-rsa2048"
expect_exit 1 "garbage token" -- "$ST" --site "$S" verify not.a.token
expect_exit 2 "two tokens" -- "$ST" --site "$S" verify a b
expect_exit 2 "bad --type" -- "$ST" --site "$S" verify --type user -
head -c 9000 /dev/zero | tr '\0' 'A' > "$T/big"
expect_exit 1 "over 8 KiB refused" -- "$ST" --site "$S" verify < "$T/big"
expect_in "over the 8192-byte limit" "$ERR" "size refusal reason"
chmod 644 "$S/site.key"
expect_refusal 3 "chmod 600" "loose key file refused" -- "$ST" --site "$S" bulk new
chmod 600 "$S/site.key"
expect_exit 3 "missing key" -- bash -c "mv '$S/site.key' '$S/k'; '$ST' --site '$S' bulk new; rc=\$?; mv '$S/k' '$S/site.key'; exit \$rc"
finish
