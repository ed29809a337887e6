#!/usr/bin/env bash
# Several nodes on one PostgreSQL site, each with its own key; key rotation
# and retirement by the store's record and clock; one audit chain written by both nodes at once.
. "$(dirname "$0")/harness.sh"
: "${SITETOKEN_DB:?the pg fixture sets SITETOKEN_DB}"
A="$T/nodeA" B="$T/nodeB"
unset SITETOKEN_SITE SITETOKEN_TIME_OFFSET
sq() { psql "$SITETOKEN_DB" -v ON_ERROR_STOP=1 -qAtc "SET search_path TO $SCHEMA; $1"; }
bulk() { "$ST" bulk new --site "$1" --lifetime 60 --json | json 'd["token"]'; }

expect_exit 0 "site init (node main)" -- "$ST" site init --site "$A" --key-type p256
SCHEMA=$(sed -n 's/^schema=//p' "$A/site.conf")

# Joining needs the shared store; a name in use or a password is refused.
expect_exit 2 "node add without a database" -- env -u SITETOKEN_DB "$ST" node add --site "$T/x" --node b
expect_exit 2 "node add with a password in the connection string" -- "$ST" node add \
  --site "$T/x" --node b --db "postgresql://u:pw@localhost/x" --db-schema "$SCHEMA"
expect_exit 2 "node add with a bad node name" -- "$ST" node add --site "$T/x" --node 'b"x' --db-schema "$SCHEMA"
expect_exit 1 "node add with the name in use" -- "$ST" node add --site "$T/x" --node main --db-schema "$SCHEMA"
[ ! -e "$T/x" ] && ok "refused joins leave nothing" || bad "refused join left $T/x"

expect_exit 0 "node add B (its own key)" -- "$ST" node add --site "$B" --node nodeB \
  --db-schema "$SCHEMA" --key-type p256 --json
expect_eq "$(sed -n 's/^node=//p' "$B/site.conf")" "nodeB" "site.conf names the node"
[ -f "$B/site.key" ] && ! cmp -s "$A/site.key" "$B/site.key" && ok "node B made a key of its own" || bad "node B key"
expect_exit 0 "key list" -- "$ST" key list --site "$B" --json
expect_eq "$(json '" ".join(sorted(k["node"]+":"+k["status"] for k in d))' <<<"$OUT")" "main:active nodeB:active" "one active key per node"
kidA=$(json '[k["kid"] for k in d if k["node"]=="main"][0]' <<<"$OUT")
kidB=$(json '[k["kid"] for k in d if k["node"]=="nodeB"][0]' <<<"$OUT")

# Tokens carry the kid of the node that signed; every node verifies them
# once node B's key is endorsed by a key node A trusts.
tA=$(bulk "$A")
jB=$("$ST" bulk new --site "$B" --lifetime 60 --json)
tB=$(json 'd["token"]' <<<"$jB"); gB=$(json 'd["guid"]' <<<"$jB")
expect_eq "$(kid_of "$tA") $(kid_of "$tB")" "$kidA $kidB" "each node signs with its own key (kid)"
expect_exit 1 "node A refuses node B's token before endorsing its key" -- "$ST" verify --site "$A" --type bulk "$tB"
expect_exit 0 "key list on node A before endorsing" -- "$ST" key list --site "$A" --json
expect_eq "$(json '[k["trusted"] for k in d if k["node"]=="nodeB"][0]' <<<"$OUT")" "False" "node B's key listed as untrusted"
expect_exit 2 "key endorse without a kid" -- "$ST" key endorse --site "$A"
expect_exit 1 "key endorse of an unknown kid" -- "$ST" key endorse --site "$A" nosuchkid
# --kid: a kid may begin with '-' (base64url)
expect_exit 0 "node A endorses node B's key" -- "$ST" key endorse --site "$A" --kid "$kidB"
expect_eq "$(sq "SELECT count(*) FROM audit WHERE event='key.endorse' AND subject='$kidB'")" "1" "endorsement audited"
expect_exit 0 "node A verifies node B's token" -- "$ST" verify --site "$A" --type bulk "$tB"
expect_exit 0 "node B verifies node A's token" -- "$ST" verify --site "$B" --type bulk "$tA"
# Blocking on node A writes the one shared store.
expect_exit 0 "block node B's token on node A" -- "$ST" bulk block --site "$A" "$gB"
expect_exit 1 "node B refuses it at once" -- "$ST" verify --site "$B" --type bulk "$tB"
expect_in "is blocked" "$ERR" "refused as blocked"

# Rotation on node A: the new key signs, the old one keeps verifying.
expect_exit 0 "key rotate on node A" -- "$ST" key rotate --site "$A" --json
kidA2=$(json 'd["kid"]' <<<"$OUT")
[ "$kidA2" != "$kidA" ] && ok "a new kid" || bad "same kid after rotation"
tA2=$(bulk "$A")
expect_eq "$(kid_of "$tA2")" "$kidA2" "node A signs with the new key"
expect_exit 0 "node B verifies the new key's token" -- "$ST" verify --site "$B" --type bulk "$tA2"
expect_exit 0 "the old key's token still verifies" -- "$ST" verify --site "$B" --type bulk "$tA"
expect_exit 0 "key list after rotation" -- "$ST" key list --site "$A" --json
expect_eq "$(json '" ".join(k["node"]+":"+k["status"] for k in sorted(d,key=lambda k:(k["node"],k["status"])))' <<<"$OUT")" \
  "main:active main:retiring nodeB:active" "old key retiring, new key active"
na=$(json '[k["not_after"] for k in d if k["status"]=="retiring"][0]' <<<"$OUT")
now=$(date +%s)
[ $((na - now)) -ge $((90 * 86400)) ] && [ $((na - now)) -le $((90 * 86400 + 600)) ] \
  && ok "the old key verifies for the client token lifetime (90 days) and no longer" || bad "not_after $na"
expect_eq "$(sq "SELECT count(*) FROM audit WHERE event='key.rotate' AND subject='$kidA2'")" "1" "rotation audited"
expect_exit 0 "key export --jwks" -- "$ST" key export --site "$B" --jwks
expect_eq "$(json '" ".join(sorted(k["kid"] for k in d["keys"]))' <<<"$OUT")" "$(printf '%s\n' "$kidA" "$kidA2" "$kidB" | sort | tr '\n' ' ' | sed 's/ $//')" "JWKS holds every node's key and the retiring one"

# Day 91 on node B's clock (attacker 4: one node's clock runs ahead):
# verifying retires nothing; housekeeping there asks the store's clock
# (now()), which says node A's old key still has valid tokens.
export SITETOKEN_TIME_OFFSET=$((91 * 86400))
tA3=$(bulk "$A")
expect_exit 0 "node B verifies at day 91" -- "$ST" verify --site "$B" --type bulk "$tA3"
expect_exit 0 "key retire on node B at day 91" -- "$ST" key retire --site "$B" --json
expect_eq "$(json 'd["retired"]' <<<"$OUT")" "0" "a fast clock on node B retires nothing"
unset SITETOKEN_TIME_OFFSET
expect_eq "$(sq "SELECT status FROM site_keys WHERE kid='$kidA'")" "retiring" "old key still retiring after a fast-clock run"
expect_exit 0 "node A's old token still verifies" -- "$ST" verify --site "$B" --type bulk "$tA"
# The store's record says every token the old key signed has expired (its
# clock moved on): node B retires it, audited once; node A sees it gone.
sq "UPDATE site_keys SET max_exp = max_exp - 86400, retiring_at = retiring_at - 86400 WHERE kid='$kidA'"
expect_exit 0 "key retire on node B" -- "$ST" key retire --site "$B" --json
expect_eq "$(json 'd["retired"]' <<<"$OUT")" "1" "one key retired"
expect_exit 0 "key retire again: nothing more" -- "$ST" key retire --site "$A" --json
expect_eq "$(json 'd["retired"]' <<<"$OUT")" "0" "another node finds nothing due"
expect_eq "$(sq "SELECT status FROM site_keys WHERE kid='$kidA'")" "retired" "old key retired after its last token expired"
expect_eq "$(sq "SELECT count(*) FROM audit WHERE event='key.retire' AND subject='$kidA'")" "1" "retirement audited once"
expect_exit 0 "key export --jwks after retirement" -- "$ST" key export --site "$A" --jwks
expect_eq "$(json 'str(len(d["keys"]))+" "+str("'"$kidA"'" in [k["kid"] for k in d["keys"]])' <<<"$OUT")" "2 False" "the retired key left the JWKS"

# Two nodes appending at once: one chain, no fork, checkpoints signed by
# three keys (old A, new A, B) all verify.
before=$(sq "SELECT count(*) FROM audit")
w() { for _ in $(seq 1 20); do "$ST" bulk new --site "$1" --lifetime 5 >/dev/null || echo fail; done; }
w "$A" >"$T/wa" 2>&1 & pa=$!
w "$B" >"$T/wb" 2>&1 & pb=$!
wait $pa $pb
[ ! -s "$T/wa" ] && [ ! -s "$T/wb" ] && ok "40 records from two nodes at once" || bad "writer failed: $(cat "$T/wa" "$T/wb")"
# Which node signs the every-16-records checkpoints depends on timing:
# make each node sign one.
for n in "$A" "$B"; do
  "$ST" bulk new --site "$n" --lifetime 5 >/dev/null && "$ST" audit checkpoint --site "$n" >/dev/null || bad "checkpoint on $n"
done
expect_eq "$(sq "SELECT count(*) FROM audit")" "$((before + 42))" "every record appended"
expect_eq "$(sq "SELECT count(DISTINCT prev_hash) = count(*) AND max(seq) = count(*) FROM audit")" "t" "no fork, no gap"
expect_eq "$(sq "SELECT count(DISTINCT kid) FROM audit_checkpoints WHERE kid IN ('$kidA', '$kidA2', '$kidB')")" "3" "checkpoints signed by three keys (old A, new A, B)"
expect_exit 0 "audit verify on node A" -- "$ST" audit verify --site "$A"
expect_exit 0 "audit verify on node B" -- "$ST" audit verify --site "$B"

# New user: a schema that does not exist is named as such (was a raw
# "no schema has been selected to create in"); nothing is left behind.
expect_exit 2 "node add with a schema that does not exist" -- "$ST" node add --site "$T/y" \
  --node c --db-schema site_nosuchschema
expect_in "no schema 'site_nosuchschema'" "$ERR" "says which schema is missing"
[ ! -e "$T/y" ] && ok "the refused join left nothing" || bad "left $T/y"
# key list with a node name longer than the old fixed column: aligned.
expect_exit 0 "node add with a long name" -- "$ST" node add --site "$T/long" \
  --node a-rather-long-node-name --db-schema "$SCHEMA" --key-type p256
"$ST" key list --site "$A" >"$T/kl"
col=$(head -1 "$T/kl" | awk '{print index($0, "Status")}')
expect_eq "$(tail -n +2 "$T/kl" | awk -v c="$col" 'substr($0, c, 6) !~ /^(active|retiri|retire)/' | wc -l)" "0" \
  "key list: the Status column aligns with a long node name"

psql "$SITETOKEN_DB" -qc "SET client_min_messages TO warning; DROP SCHEMA $SCHEMA CASCADE" >/dev/null
finish
