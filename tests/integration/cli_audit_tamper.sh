#!/usr/bin/env bash
# The audit log detects an edited, removed, reordered, truncated or rewritten record.
. "$(dirname "$0")/harness.sh"
S="$T/site"
export SITETOKEN_SITE="$S"
"$ST" site init --key-type p256 >/dev/null || { bad "init"; finish; exit 1; }
for i in $(seq 1 40); do "$ST" bulk new --lifetime 5 >/dev/null; done
g=$(sqlite3 "$S/site.db" "SELECT guid FROM bulk_tokens LIMIT 1")
"$ST" bulk block "$g" >/dev/null; "$ST" bulk unblock "$g" >/dev/null
expect_exit 0 "intact log verifies" -- "$ST" audit verify
expect_in "43 records" "$OUT" "all records counted"
expect_exit 0 "audit show --json" -- "$ST" audit show --json
expect_eq "$(json 'd[0]["event"]+" "+d[1]["event"]+" "+d[-1]["event"]+" "+str(len(d))' <<<"$OUT")" "site.init bulk.new bulk.unblock 43" "events recorded in order"
expect_eq "$(json 'str(all(d[i]["prev_hash"]==d[i-1]["hash"] for i in range(1,len(d))))' <<<"$OUT")" "True" "each record holds the previous hash"
cp "$S/site.db" "$T/good.db"
reset() { rm -f "$S/site.db-wal" "$S/site.db-shm"; cp "$T/good.db" "$S/site.db"; }
tamper() { # tamper DESCRIPTION WANT_SEQ SQL
  reset
  sqlite3 "$S/site.db" "$3"
  expect_exit 1 "$1 detected" -- "$ST" audit verify --json
  expect_eq "$(json 'd["first_bad_record"]' <<<"$OUT")" "$2" "$1: first bad record named"
}
tamper "edited record" 7 "UPDATE audit SET actor='mallory' WHERE seq=7"
tamper "removed record" 10 "DELETE FROM audit WHERE seq=10"
tamper "reordered records" 12 "UPDATE audit SET seq=-1 WHERE seq=12; UPDATE audit SET seq=12 WHERE seq=13; UPDATE audit SET seq=13 WHERE seq=-1"
# checkpoints sit at records 1, 17 and 33: cutting the log below 33 is caught
tamper "truncated log" 30 "DELETE FROM audit WHERE seq>=30"
reset
"$ST" audit checkpoint >/dev/null
cp "$S/site.db" "$T/good.db"
tamper "truncated after a checkpoint" 41 "DELETE FROM audit WHERE seq>=41"
# A forger who recomputes every hash after an edit: the signed checkpoints catch it.
reset
# (forge.py rehash: the database writer's tool of audit_forge.sh)
q="SELECT seq, at, actor, event, subject, outcome, ref, detail FROM audit ORDER BY seq"
sqlite3 "$S/site.db" "$q" >"$T/records"
sqlite3 "$S/site.db" "$(python3 "$(dirname "$0")/forge.py" rehash 5 <"$T/records")"
expect_exit 1 "rewritten chain detected" -- "$ST" audit verify --json
expect_in "rewritten" "$(json 'd["problem"]' <<<"$OUT")" "problem says rewritten"
expect_eq "$(json 'd["first_bad_record"]' <<<"$OUT")" "2" "first record of the rewritten span named"
reset
sqlite3 "$S/site.db" "UPDATE audit_checkpoints SET sig='AAAA' WHERE seq=(SELECT max(seq) FROM audit_checkpoints)"
expect_exit 1 "forged checkpoint signature detected" -- "$ST" audit verify
expect_in "not signed by the site key" "$ERR" "checkpoint signature reason"
# A checkpoint row naming a record that cannot exist (was an out-of-bounds read).
reset
sqlite3 "$S/site.db" "INSERT INTO audit_checkpoints SELECT 0, head_hash, at, kid, sig, counter FROM audit_checkpoints WHERE seq=1"
expect_refusal 1 "cannot exist" "checkpoint at record 0 refused" -- "$ST" audit verify
# Records appended after the last checkpoint with a valid chain are accepted (chain-only).
reset
expect_exit 0 "appended records with a valid chain" -- "$ST" bulk new --lifetime 5
expect_exit 0 "still intact" -- "$ST" audit verify
finish
