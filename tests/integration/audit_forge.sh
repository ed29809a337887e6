#!/usr/bin/env bash
# Attacker 3 (SPEC threat model): a database writer without the site
# directory and without the site key. Every forgery below passed
# `audit verify` (or got a token accepted) before key endorsements, the
# checkpoint schedule and the anchor file. Runs on SQLite and, with
# SITETOKEN_DB set (tests/pg.cmake), on PostgreSQL through the sqlite3
# stand-in.
. "$(dirname "$0")/harness.sh"
FORGE="python3 $(dirname "$0")/forge.py"
S="$T/site"
export SITETOKEN_SITE="$S"
unset SITETOKEN_TIME_OFFSET
"$ST" site init --key-type p256 >/dev/null || { bad "init"; finish; exit 1; }
STORE=sqlite; [ -f "$S/site.db" ] || STORE=pg
db() { sqlite3 "$S/site.db" "$1"; }
GUID=$("$ST" site show --json | json 'd["site"]')
for _ in $(seq 1 40); do "$ST" bulk new --lifetime 5 >/dev/null; done
expect_exit 0 "intact log verifies" -- "$ST" audit verify --json
expect_eq "$(json '(d["records"], d["checkpoints"], d["anchor"])' <<<"$OUT")" "(41, 3, 33)" \
  "41 records, checkpoints at 1, 17, 33; the anchor names 33"
[ "$(stat -c %a "$S/audit.anchor")" = 600 ] && ok "anchor file is 0600" || bad "anchor mode"

# The good state, kept in the store itself so the same resets work on both stores.
db "CREATE TABLE bak_audit AS SELECT * FROM audit; CREATE TABLE bak_cp AS SELECT * FROM audit_checkpoints; CREATE TABLE bak_keys AS SELECT * FROM site_keys"
cp "$S/audit.anchor" "$T/anchor.good"
reset() {
  db "DELETE FROM audit; INSERT INTO audit SELECT * FROM bak_audit; DELETE FROM audit_checkpoints; INSERT INTO audit_checkpoints SELECT * FROM bak_cp; DELETE FROM site_keys; INSERT INTO site_keys SELECT * FROM bak_keys"
  cp "$T/anchor.good" "$S/audit.anchor"
}
rehash() { # edit record $1, recompute every hash of the chain
  db "$($FORGE rehash "$1" <<<"$(db "SELECT seq, at, actor, event, subject, outcome, ref, detail FROM audit ORDER BY seq")")"
}
resign() { # re-sign every remaining checkpoint with the forger's key
  db "$($FORGE resign "$T" "$GUID" <<<"$(db "SELECT c.seq, a.hash, c.at FROM audit_checkpoints c JOIN audit a ON a.seq = c.seq ORDER BY c.seq")")"
}
detected() { # detected DESCRIPTION WANT_SEQ WANT_TEXT
  expect_exit 1 "$1: audit verify exits 1" -- "$ST" audit verify --json
  expect_eq "$(json 'd["first_bad_record"]' <<<"$OUT")" "$2" "$1: first bad record named"
  expect_in "$3" "$(json 'd["problem"]' <<<"$OUT")" "$1: problem says '$3'"
}

reset; rehash 5; db "DELETE FROM audit_checkpoints"
detected "edit + re-hash, every checkpoint deleted" 1 "records 1..41 have no signed checkpoint"

reset; rehash 20; db "DELETE FROM audit_checkpoints WHERE seq > 1"
detected "edit + re-hash, late checkpoints deleted" 2 "records 2..41 have no signed checkpoint"

reset; rehash 20; db "DELETE FROM audit_checkpoints WHERE seq > 17"
detected "edit + re-hash, last checkpoint deleted (the anchor names it)" 33 "named by the anchor is missing"

kidF=$($FORGE keygen "$T" "$GUID")
for status in retired active; do
  reset; db "$($FORGE keyrow "$T" main "$status" "$STORE")"; rehash 5; resign
  detected "edit + re-hash, checkpoints re-signed by an inserted $status key" 1 "not signed by the site key"
  expect_exit 0 "key list with the inserted $status key" -- "$ST" key list --json
  expect_eq "$(json '[k["trusted"] for k in d if k["kid"]=="'"$kidF"'"][0]' <<<"$OUT")" "False" "inserted $status key listed as untrusted"
  expect_in "no valid endorsement" "$(json 'd["untrusted_keys"]' <<<"$("$ST" audit verify --json 2>/dev/null)")$("$ST" audit verify 2>&1)" "inserted $status key reported"
done

reset; db "DELETE FROM audit WHERE seq > 20; DELETE FROM audit_checkpoints WHERE seq > 20"
detected "tail cut together with its checkpoints" 21 "records 21..33 are missing"

# Someone restores an older audit.anchor (attacker with the site directory,
# without cutting the store): this node's later checkpoints give it away.
reset; "$ST" audit checkpoint >/dev/null
cp "$T/anchor.good" "$S/audit.anchor"
"$ST" bulk new --lifetime 5 >/dev/null; "$ST" audit checkpoint >/dev/null
cp "$T/anchor.good" "$S/audit.anchor"
detected "anchor rolled back" 34 "anchor rolled back"

# An inserted active key cannot get a token accepted, and the site keeps
# signing with its own key.
reset; db "$($FORGE keyrow "$T" main active "$STORE")"
read -r tguid tok <<<"$($FORGE token "$T" "$GUID")"
now=$(date +%s)
db "INSERT INTO bulk_tokens (guid, nbf, exp, created_at, created_by) VALUES ('$tguid', $((now - 10)), $((now + 3600)), $now, 'mallory')"
expect_exit 1 "a token signed by the inserted active key is refused" -- "$ST" verify --type bulk "$tok"
expect_in "does not trust" "$ERR" "refused as signed by an untrusted key"
t=$("$ST" bulk new --lifetime 5 --json | json 'd["token"]')
expect_exit 0 "the site still signs with its own key" -- "$ST" verify --type bulk "$t"
expect_exit 0 "key export --jwks" -- "$ST" key export --jwks
expect_eq "$(json 'str("'"$kidF"'" in [k["kid"] for k in d["keys"]])' <<<"$OUT")" "False" "the inserted key is not in the JWKS"

# Fail closed. A store that refuses the audit insert (a trigger stands in
# for a full disk or a revoked grant): the action is not done either.
reset
block() { # block TABLE: every insert into TABLE fails
  if [ "$STORE" = sqlite ]; then
    db "CREATE TRIGGER no_$1 BEFORE INSERT ON $1 BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
  else
    db "CREATE FUNCTION no_ins() RETURNS trigger LANGUAGE plpgsql AS \$f\$ BEGIN RAISE EXCEPTION 'refused by test'; END \$f\$; CREATE TRIGGER no_$1 BEFORE INSERT ON $1 FOR EACH ROW EXECUTE FUNCTION no_ins()"
  fi
}
unblock() { db "DROP TRIGGER no_$1$([ "$STORE" = pg ] && echo " ON $1; DROP FUNCTION no_ins()")"; }
n0=$(db "SELECT count(*) FROM bulk_tokens")
block audit
expect_exit 3 "bulk new refused when its audit record cannot be written" -- "$ST" bulk new --lifetime 5
expect_eq "$(db "SELECT count(*) FROM bulk_tokens")" "$n0" "no bulk token recorded without its audit record"
unblock audit
# Checkpoints that cannot be signed or stored: appends go on for at most
# STK_AUDIT_CHECKPOINT_MAX_GAP (32) records, then actions are refused.
block audit_checkpoints
a0=$(db "SELECT count(*) FROM audit")
for _ in $(seq 1 40); do "$ST" bulk new --lifetime 5 >/dev/null 2>&1; done
expect_exit 3 "bulk new refused once 32 records wait for a checkpoint" -- "$ST" bulk new --lifetime 5
expect_in "without a signed checkpoint" "$ERR" "says why"
a1=$(db "SELECT count(*) FROM audit")
expect_eq "$(( $(db "SELECT count(*) FROM bulk_tokens") - n0 ))" "$((a1 - a0))" "every bulk token made has its audit record"
expect_eq "$(db "SELECT max(seq) FROM audit")" "65" "the log stops at 32 records past the checkpoint at 33"
unblock audit_checkpoints
expect_exit 0 "a checkpoint once the store takes it again" -- "$ST" audit checkpoint
expect_exit 0 "bulk new works again" -- "$ST" bulk new --lifetime 5
expect_exit 0 "and the log verifies" -- "$ST" audit verify
finish
