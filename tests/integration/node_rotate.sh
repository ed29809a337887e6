#!/usr/bin/env bash
# Key rotation on a one-node site, on whichever store SITETOKEN_DB names
# (SQLite when unset): the new key signs, the old one verifies until every
# token it signed has expired (by the store's record and clock), then
# `key retire` retires it; restore undoes it; all of it audited. On
# SQLite also: a site made before site_keys existed gets its key registered.
. "$(dirname "$0")/harness.sh"
S="$T/site"
export SITETOKEN_SITE="$S"
unset SITETOKEN_TIME_OFFSET
bulk() { "$ST" bulk new --lifetime 60 --json | json 'd["token"]'; }

expect_exit 0 "site init" -- "$ST" site init --key-type p256
if [ -z "${SITETOKEN_DB:-}" ]; then
  # Upgrade: the schema as it was before site_keys (version 2), without the
  # later migrations' tables and columns either.
  sqlite3 "$S/site.db" "DROP TABLE site_keys; DROP TABLE registrations; DROP TABLE attest_roots;
    DROP TABLE oidc_issuers; DROP TABLE oidc_devices;
    ALTER TABLE devices DROP COLUMN prev_token_jti; ALTER TABLE devices DROP COLUMN token_used;
    ALTER TABLE audit DROP COLUMN ref; ALTER TABLE audit_checkpoints DROP COLUMN counter;
    ALTER TABLE devices DROP COLUMN attestation; ALTER TABLE devices DROP COLUMN ek_sha256;
    ALTER TABLE bulk_tokens DROP COLUMN require_attestation; PRAGMA user_version=2"
  expect_exit 0 "key list after the upgrade" -- "$ST" key list --json
  expect_eq "$(json 'str(len(d))+" "+d[0]["node"]+" "+d[0]["status"]+" "+str(d[0]["this_node"])' <<<"$OUT")" \
    "1 main active True" "the existing site key registered by the migration"
  expect_eq "$(sqlite3 "$S/site.db" "PRAGMA user_version")" "9" "schema version 9 (site_keys, then the later migrations)"
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
expect_in "RS256" "$(jws_header "$t1")" "algorithm follows the new key"
expect_exit 0 "old key's token verifies" -- "$ST" verify --type bulk "$t0"
expect_exit 0 "new key's token verifies" -- "$ST" verify --type bulk "$t1"
expect_exit 0 "certs list" -- "$ST" certs list
expect_eq "$(grep -c "Site Signing" <<<"$OUT")" "2" "both key certificates listed"
expect_in "Retiring" "$OUT" "the old one as Retiring"
openssl x509 -in "$S/site.crt" -noout 2>/dev/null && ok "site.crt is the new certificate" || bad "site.crt"

# A clock 91 days ahead (attacker 4: a wrong clock on one CLI run): reading
# and verifying retire nothing; the old key keeps verifying.
SITETOKEN_TIME_OFFSET=$((91 * 86400)) "$ST" verify --type bulk "$(SITETOKEN_TIME_OFFSET=$((91 * 86400)) bulk)" >/dev/null || bad "day 91 verify"
SITETOKEN_TIME_OFFSET=$((91 * 86400)) "$ST" key list --json >"$T/k91"
expect_eq "$(json '[k["status"] for k in d if k["kid"]=="'"$k0"'"][0]' <"$T/k91")" "retiring" "day 91: verify and key list retired nothing"
expect_exit 0 "the old key's token still verifies" -- "$ST" verify --type bulk "$t0"
# Retirement is housekeeping's (or `key retire`'s) alone, decided by the
# store's record of the latest token expiry per key and the store's clock:
# today the token t0 has not expired, so nothing is due.
expect_exit 0 "key retire (nothing due)" -- "$ST" key retire --json
expect_eq "$(json 'd["retired"]' <<<"$OUT")" "0" "key retire: nothing due while the old key's token is valid"
# On SQLite the store's clock is the serving node's: at day 91 it says
# every token the old key signed has expired. On PostgreSQL the store's
# clock is now(): a node 91 days ahead cannot retire it; the store's record
# moved past the expiry can.
expect_exit 0 "key retire with a clock 91 days ahead" -- env SITETOKEN_TIME_OFFSET=$((91 * 86400)) "$ST" key retire --json
if [ -z "${SITETOKEN_DB:-}" ]; then
  expect_eq "$(json 'd["retired"]' <<<"$OUT")" "1" "day 91: the old key is due and retired"
else
  expect_eq "$(json 'd["retired"]' <<<"$OUT")" "0" "PostgreSQL: a fast clock retires nothing"
  sqlite3 "$S/site.db" "UPDATE site_keys SET max_exp = max_exp - 86400, retiring_at = retiring_at - 86400 WHERE kid = '$k0'" >/dev/null
  expect_exit 0 "key retire once the store says every token expired" -- "$ST" key retire --json
  expect_eq "$(json 'd["retired"]' <<<"$OUT")" "1" "the old key is retired"
fi
expect_exit 0 "key list after retirement" -- "$ST" key list --json
expect_eq "$(json '[k["status"] for k in d if k["kid"]=="'"$k0"'"][0]' <<<"$OUT")" "retired" "the old key is retired"
expect_exit 1 "the old key's token no longer verifies" -- "$ST" verify --type bulk "$t0"
expect_exit 0 "audit show" -- "$ST" audit show --json
expect_eq "$(json '" ".join(r["event"] for r in d if r["event"].startswith("key."))' <<<"$OUT")" "key.rotate key.retire" "rotation and retirement audited"
# Undo: restored, it verifies again (audited); housekeeping would retire it
# again only once the store says its tokens expired.
expect_exit 1 "key restore of a key that is not retired" -- "$ST" key restore "$k1"
expect_exit 0 "key restore" -- "$ST" key restore "$k0"
expect_eq "$("$ST" key list --json | json '[k["status"] for k in d if k["kid"]=="'"$k0"'"][0]')" "retiring" "restored: retiring again"
expect_exit 0 "the restored key's token verifies again" -- "$ST" verify --type bulk "$t0"
expect_refusal 2 "rotate" "key retire refuses the active key" -- "$ST" key retire "$k1"
expect_exit 0 "key retire KID by hand" -- "$ST" key retire "$k0"
if [ -z "${SITETOKEN_DB:-}" ]; then # (on PostgreSQL the record was moved past t0's expiry)
  expect_in "no longer verify" "$ERR" "retiring by hand warns that valid tokens stop verifying"
fi
expect_exit 0 "key restore again" -- "$ST" key restore "$k0"
expect_exit 0 "audit show" -- "$ST" audit show --json
expect_eq "$(json '" ".join(r["event"] for r in d if r["event"].startswith("key."))' <<<"$OUT")" \
  "key.rotate key.retire key.restore key.retire key.restore" "retire and restore audited"
"$ST" audit checkpoint >/dev/null
expect_exit 0 "audit verify (checkpoints by both keys)" -- "$ST" audit verify
finish
