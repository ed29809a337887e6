#!/usr/bin/env bash
# The site on PostgreSQL (SITETOKEN_DB from the pg fixture): site.conf holds
# the connection string and schema (never a password), bulk tokens and the
# audit chain live in the database, tampering there is caught, and two
# writers appending at once produce one chain (the write lock is the
# database's, not a file's).
. "$(dirname "$0")/harness.sh"
: "${SITETOKEN_DB:?the pg fixture sets SITETOKEN_DB}"
S="$T/site"
export SITETOKEN_SITE="$S"
sq() { psql "$SITETOKEN_DB" -v ON_ERROR_STOP=1 -qAtc "SET search_path TO $SCHEMA; $1"; }

# A connection string with a password never reaches site.conf.
expect_refusal 2 "password" "init refuses a password in --db" -- "$ST" site init --site "$T/pw" \
  --db "postgresql://u:hunter2@localhost/sitetoken"
[ ! -e "$T/pw" ] && ok "nothing created" || bad "site dir left behind"

expect_exit 0 "site init on PostgreSQL" -- "$ST" site init --key-type p256 --json
[ ! -e "$S/site.db" ] && ok "no site.db" || bad "site.db created"
expect_eq "$(stat -c %a "$S/site.conf")" "600" "site.conf is 0600"
expect_in "db=$SITETOKEN_DB" "$(cat "$S/site.conf")" "site.conf names the database"
SCHEMA=$(sed -n 's/^schema=//p' "$S/site.conf")
guid=$(json 'd["site"]' <<<"$OUT")
expect_eq "$SCHEMA" "site_${guid//-/}" "schema named after the site"
expect_eq "$(sq "SELECT tenant FROM site")" "$guid" "site record in the schema"
expect_eq "$(sq "SELECT data_type FROM information_schema.columns WHERE table_schema='$SCHEMA' AND table_name='audit' AND column_name='seq'")" "bigint" "64-bit integers"
expect_eq "$(sq "SELECT data_type FROM information_schema.columns WHERE table_schema='$SCHEMA' AND table_name='site' AND column_name='cert'")" "bytea" "certificate as bytea"

# Bulk tokens, block and unblock.
expect_exit 0 "bulk new" -- "$ST" bulk new --lifetime 60 --json
g=$(json 'd["guid"]' <<<"$OUT")
tok=$(json 'd["token"]' <<<"$OUT")
expect_eq "$(sq "SELECT count(*) FROM bulk_tokens WHERE guid='$g'")" "1" "bulk token recorded"
[ "$(sq "SELECT count(*) FROM bulk_tokens, audit WHERE position('${tok##*.}' in audit.detail) > 0")" = 0 ] \
  && ok "token signature not in the database" || bad "token stored"
expect_exit 0 "bulk block" -- "$ST" bulk block "$g"
expect_eq "$(sq "SELECT blocked FROM bulk_tokens WHERE guid='$g'")" "1" "blocked in the database"
expect_exit 0 "bulk unblock" -- "$ST" bulk unblock "$g"
expect_eq "$(sq "SELECT blocked FROM bulk_tokens WHERE guid='$g'")" "0" "unblocked in the database"
expect_exit 0 "bulk unblock again: harmless" -- "$ST" bulk unblock "$g"

# Two writers at once (separate processes, separate connections): every
# record lands, the chain has no fork, and it verifies.
before=$(sq "SELECT count(*) FROM audit")
writer() { for _ in $(seq 1 15); do "$ST" bulk new --lifetime 5 >/dev/null || echo fail; done; }
writer >"$T/w1" 2>&1 & p1=$!
writer >"$T/w2" 2>&1 & p2=$!
writer >"$T/w3" 2>&1 & p3=$!
wait $p1 $p2 $p3
[ ! -s "$T/w1" ] && [ ! -s "$T/w2" ] && [ ! -s "$T/w3" ] && ok "45 concurrent bulk new" || bad "a writer failed: $(cat "$T"/w?)"
expect_eq "$(sq "SELECT count(*) FROM audit")" "$((before + 45))" "every record appended"
expect_eq "$(sq "SELECT count(DISTINCT prev_hash) FROM audit")" "$(sq "SELECT count(*) FROM audit")" "no two records share a predecessor (no fork)"
expect_eq "$(sq "SELECT max(seq) = count(*) FROM audit")" "t" "sequence has no gaps"
expect_exit 0 "audit verify after concurrent writers" -- "$ST" audit verify
expect_in "$((before + 45)) records" "$OUT" "all records verified"

# Tampering in the database is caught.
sq "UPDATE audit SET actor='mallory' WHERE seq=5"
expect_exit 1 "edited record detected" -- "$ST" audit verify --json
expect_eq "$(json 'd["first_bad_record"]' <<<"$OUT")" "5" "first bad record named"

psql "$SITETOKEN_DB" -qc "SET client_min_messages TO warning; DROP SCHEMA $SCHEMA CASCADE" >/dev/null
finish
