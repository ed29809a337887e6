#!/usr/bin/env bash
# Key rotation on a one-node site, on whichever store SITETOKEN_DB names
# (SQLite when unset): the new key signs, the old one verifies until every
# token it signed has expired, then is retired; all of it audited. On
# SQLite also: a site made before site_keys existed gets its key registered.
. "$(dirname "$0")/lib.sh"
S="$T/site"
export SITETOKEN_SITE="$S"
unset SITETOKEN_TIME_OFFSET
kid_of() { python3 -c 'import base64,json,sys; h=sys.argv[1].split(".")[0]; print(json.loads(base64.urlsafe_b64decode(h+"="*(-len(h)%4)))["kid"])' "$1"; }
bulk() { "$ST" bulk new --lifetime 60 --json | json 'd["token"]'; }

expect_exit 0 "site init" -- "$ST" site init --key-type p256
if [ -z "${SITETOKEN_DB:-}" ]; then
  # Upgrade: the schema as it was before site_keys (version 2).
  sqlite3 "$S/site.db" "DROP TABLE site_keys; ALTER TABLE audit DROP COLUMN ref; ALTER TABLE audit_checkpoints DROP COLUMN counter; PRAGMA user_version=2"
  expect_exit 0 "key list after the upgrade" -- "$ST" key list --json
  expect_eq "$(json 'str(len(d))+" "+d[0]["node"]+" "+d[0]["status"]+" "+str(d[0]["this_node"])' <<<"$OUT")" \
    "1 main active True" "the existing site key registered by the migration"
  expect_eq "$(sqlite3 "$S/site.db" "PRAGMA user_version")" "4" "schema version 4 (site_keys, then key endorsements and audit ref)"
fi
k0=$("$ST" key show --json | json 'd["kid"]')
t0=$(bulk)
expect_eq "$(kid_of "$t0")" "$k0" "tokens carry the key's kid"

expect_exit 2 "key rotate refuses a bad key type" -- "$ST" key rotate --key-type rsa1024
expect_exit 0 "key rotate" -- "$ST" key rotate --key-type rsa2048 --json
k1=$(json 'd["kid"]' <<<"$OUT")
[ "$k1" != "$k0" ] && ok "new kid" || bad "same kid"
expect_eq "$("$ST" key show --json | json 'd["kid"]+" "+d["key_type"]')" "$k1 rsa2048" "key show names the new key"
t1=$(bulk)
expect_eq "$(kid_of "$t1")" "$k1" "the new key signs"
expect_in "RS256" "$(python3 -c 'import base64,sys; h=sys.argv[1].split(".")[0]; print(base64.urlsafe_b64decode(h+"="*(-len(h)%4)).decode())' "$t1")" "algorithm follows the new key"
expect_exit 0 "old key's token verifies" -- "$ST" verify --type bulk "$t0"
expect_exit 0 "new key's token verifies" -- "$ST" verify --type bulk "$t1"
expect_exit 0 "certs list" -- "$ST" certs list
expect_eq "$(grep -c "Site Signing" <<<"$OUT")" "2" "both key certificates listed"
expect_in "Retiring" "$OUT" "the old one as Retiring"
openssl x509 -in "$S/site.crt" -noout 2>/dev/null && ok "site.crt is the new certificate" || bad "site.crt"

# Day 89: still verifying; day 91: retired, audited once.
SITETOKEN_TIME_OFFSET=$((89 * 86400)) "$ST" key list --json >"$T/k89"
expect_eq "$(json '[k["status"] for k in d if k["kid"]=="'"$k0"'"][0]' <"$T/k89")" "retiring" "day 89: the old key still verifies"
SITETOKEN_TIME_OFFSET=$((91 * 86400)) "$ST" verify --type bulk "$(SITETOKEN_TIME_OFFSET=$((91 * 86400)) bulk)" >/dev/null || bad "day 91 verify"
expect_exit 0 "key list at day 91" -- "$ST" key list --json
expect_eq "$(json '[k["status"] for k in d if k["kid"]=="'"$k0"'"][0]' <<<"$OUT")" "retired" "day 91: the old key is retired"
expect_exit 0 "audit show" -- "$ST" audit show --json
expect_eq "$(json '" ".join(r["event"] for r in d if r["event"].startswith("key."))' <<<"$OUT")" "key.rotate key.retire" "rotation and retirement audited"
"$ST" audit checkpoint >/dev/null
expect_exit 0 "audit verify (checkpoints by both keys)" -- "$ST" audit verify
finish
