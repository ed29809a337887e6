#!/usr/bin/env bash
# Twelve nodes on one PostgreSQL site (the pg fixture), each with its own
# key, each rotating it. Every node's gateway accepts a client token issued
# by any node, signed before the rotation (the key is now retiring) or after
# it (the new active key): 24 keys in the set, 24 tokens x 11 other nodes.
TEST_NAME=node_many
. "$(dirname "$0")/harness.sh"
set -e
server_env
: "${SITETOKEN_DB:?the pg fixture sets SITETOKEN_DB}"
N=${STK_NODES:-12}
PIDS=()
stop_all() {
	local i
	for i in "${!PIDS[@]}"; do
		[ -n "${PIDS[$i]}" ] || continue
		stop_node "${PIDS[$i]}" "n$i"
		PIDS[$i]=
	done
}
on_exit stop_all
sq() { psql "$SITETOKEN_DB" -v ON_ERROR_STOP=1 -qAtc "SET search_path TO $SCHEMA; $1"; }
sitedir() { if [ "$1" = 1 ]; then echo "$SITE"; else echo "$T/site$1"; fi; }

make_site
SCHEMA=$(sed -n 's/^schema=//p' "$SITE/site.conf")
[ -n "$SCHEMA" ] || fail "the site is not on PostgreSQL"
for i in $(seq 2 "$N"); do
	$STK node add --site "$(sitedir "$i")" --node "node$i" --db "$SITETOKEN_DB" \
		--db-schema "$SCHEMA" --key-type p256 >/dev/null || fail "node add node$i"
	# The site's first node vouches for the new node's key (a key row
	# nobody trusted endorsed is ignored by every verifier).
	kid=$($STK key show --site "$(sitedir "$i")" --json | json_get kid)
	$STK key endorse --site "$SITE" --kid "$kid" >/dev/null || fail "key endorse node$i"
done
MPP=() CMGP=()
start_all() {
	local i
	for i in $(seq "$N"); do
		serve_node "$(sitedir "$i")" "n$i" "${MPP[$i]:-0}" "${CMGP[$i]:-0}" 0 --threads 2
		PIDS[$i]=$SERVED_PID MPP[$i]=$SERVED_MP_PORT CMGP[$i]=$SERVED_CMG_PORT
	done
}
# register TAG NODE: a new device registers with NODE's MP; its certificate,
# key and token in $T/TAG.{crt,key,tok}.
register() {
	local tag=$1 MP=http://127.0.0.1:${MPP[$2]} got
	dev_cert "$tag"
	mp_pop_body "$T/$tag.crt" "$T/$tag.key"
	got=$(post_json "$MP/sitetoken/v1/register" "$T/body")
	[ "${got%% *}" = 200 ] || fail "registration $tag on node $2: $got $(cat "$T/resp")"
	( umask 077; json_get client_token <"$T/resp" >"$T/$tag.tok" )
}
# policy TAG NODE: the device's token at NODE's gateway -> HTTP status.
policy() {
	local cmg=https://127.0.0.1:${CMGP[$2]}/CCM_Proxy_MutualAuth/$SITE_NUMBER
	http GET "$cmg/sitetoken/v1/policy" --cert "$T/$1.crt" --key "$T/$1.key" \
		-H @"$(bearer_hdr "$T/$1.tok")" | http_status
}
active_kid() { # active_kid NODE_NAME
	$STK key list --site "$SITE" --json | json "[k['kid'] for k in d if k['node']=='$1' and k['status']=='active'][0]"
}
node_name() { if [ "$1" = 1 ]; then echo main; else echo "node$1"; fi; }

start_all
ok "$N nodes serving one PostgreSQL site"
for i in $(seq "$N"); do register "old$i" "$i"; done
stop_all
for i in $(seq "$N"); do
	$STK key rotate --site "$(sitedir "$i")" >/dev/null || fail "key rotate on node $i"
done
[ "$(sq "SELECT count(*) FROM site_keys WHERE status = 'active'")" = "$N" ] || fail "active keys"
[ "$(sq "SELECT count(*) FROM site_keys WHERE status = 'retiring'")" = "$N" ] || fail "retiring keys"
ok "every node rotated its key: $N active and $N retiring keys in the set"
start_all
for i in $(seq "$N"); do
	register "new$i" "$i"
	[ "$(kid_of "$T/new$i.tok")" = "$(active_kid "$(node_name "$i")")" ] ||
		fail "node $i does not sign with its new key"
	[ "$(kid_of "$T/old$i.tok")" != "$(kid_of "$T/new$i.tok")" ] || fail "node $i: same kid after rotation"
done
bad=0 checked=0
for tag in old new; do
	for i in $(seq "$N"); do
		for j in $(seq "$N"); do
			[ "$i" != "$j" ] || continue
			code=$(policy "$tag$i" "$j")
			checked=$((checked + 1))
			if [ "$code" != 200 ]; then
				bad=$((bad + 1))
				[ "$bad" -gt 3 ] || echo "# node $j refused node $i's $tag token: $code $(cat "$T/resp")"
			fi
		done
	done
done
[ "$bad" = 0 ] || fail "$bad of $checked cross-node verifications refused"
ok "each of $N nodes accepts every other node's tokens, old key and new ($checked checks)"
stop_all
$STK audit verify --site "$SITE" >/dev/null || fail "audit verify"
ok "audit verify"
psql "$SITETOKEN_DB" -qc "SET client_min_messages TO warning; DROP SCHEMA $SCHEMA CASCADE" >/dev/null
