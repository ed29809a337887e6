#!/usr/bin/env bash
# The audit log's head anchored in the TPM (NV counter, tpm/tpm_nv.c)
# against someone who controls the whole disk: cut the log and restore an
# older copy of the whole site directory (database, anchor, everything) —
# consistent in itself, so the anchor cannot tell — and `audit verify`
# still reports it through the TPM counter. Real swtpm; plays attacker 3
# with, in addition, the site directory (README "Audit log").
. "$(dirname "$0")/harness.sh"
TPM="$T/tpm"
on_exit 'bash "$STK_SRC/swtpm-setup/swtpm-stop.sh" "$TPM"'
unset SITETOKEN_TPM_KEY_AUTH SITETOKEN_TPM_KEY_AUTH_FILE SITETOKEN_DB SITETOKEN_TIME_OFFSET
eval "$(bash "$STK_SRC/swtpm-setup/swtpm-start.sh" "$TPM")"
S="$T/site"
export SITETOKEN_SITE="$S"
expect_exit 0 "site init on the TPM" -- "$ST" site init --backend tpm --key-type p256
for _ in $(seq 1 20); do "$ST" bulk new --lifetime 5 >/dev/null; done
expect_exit 0 "audit verify at 21 records" -- "$ST" audit verify --json
c1=$(json 'd["tpm_counter"]' <<<"$OUT")
[ "$c1" -gt 0 ] && ok "TPM counter checked ($c1)" || bad "no TPM counter: $OUT"
expect_eq "$(sqlite3 "$S/site.db" "SELECT count(*) FROM audit_checkpoints WHERE counter IS NOT NULL")" \
  "$(sqlite3 "$S/site.db" "SELECT count(*) FROM audit_checkpoints")" "every checkpoint carries the counter"
# The whole site directory as it is now (consistent: log, anchor, keys).
cp -a "$S" "$T/site.old"
for _ in $(seq 1 20); do "$ST" bulk new --lifetime 5 >/dev/null; done
expect_exit 0 "audit checkpoint" -- "$ST" audit checkpoint
expect_exit 0 "audit verify at 42 records" -- "$ST" audit verify --json
c2=$(json 'd["tpm_counter"]' <<<"$OUT")
[ "$c2" -gt "$c1" ] && ok "the counter went up with the checkpoints ($c1 -> $c2)" || bad "counter $c1 -> $c2"
# Roll the whole disk back: the records after 21 vanish with their
# checkpoints and the anchor that named them.
rm -rf "$S"; cp -a "$T/site.old" "$S"
expect_exit 1 "restored older site directory detected" -- "$ST" audit verify --json
expect_in "TPM counter is at $c2" "$(json 'd["problem"]' <<<"$OUT")" "problem names the TPM counter"
expect_eq "$(json 'd["first_bad_record"]' <<<"$OUT")" \
  "$(( $(sqlite3 "$S/site.db" "SELECT max(seq) FROM audit_checkpoints") + 1 ))" \
  "first missing record named (after the newest surviving checkpoint)"
# The restored copy goes on and signs a new checkpoint (the TPM advances
# from where it really is): the gap in the node's run of counter values
# gives the cut away.
rm -rf "$S"; cp -a "$T/site.old" "$S"
"$ST" bulk new --lifetime 5 >/dev/null
expect_exit 0 "a new checkpoint on the restored copy" -- "$ST" audit checkpoint
expect_refusal 1 "with TPM counter" "still detected after a new checkpoint" -- "$ST" audit verify
# Without tampering, a fresh site on the same TPM keeps verifying (its own
# counter, by name).
expect_exit 0 "another site on the same TPM" -- "$ST" site init --site "$T/site2" --backend tpm --key-type p256
expect_exit 0 "verifies with its own counter" -- "$ST" audit verify --site "$T/site2"
finish
