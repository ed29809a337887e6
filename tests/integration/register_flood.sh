#!/usr/bin/env bash
# Registrations under a junk flood, with the registration checks running
# outside the server's registration lock (issue 16): a network attacker
# (SPEC threat model 1) floods the CMG with junk bulk tokens from one source
# while devices race for the last uses of a --max-uses token.
#  - exactly --max-uses devices enrol, the others get 403
#    bulk_token_exhausted (the use limit is still taken exactly once);
#  - no junk request leaves a device, and the audit log holds each junk
#    refusal either as its own record (the first STK_AUDIT_REFUSAL_BURST of
#    an interval) or in an aggregated "N more" count: nothing dropped,
#    nothing more; the chain verifies.
# Runs on SQLite and on PostgreSQL (tests/pg.cmake; `sqlite3` then reads the
# site's schema).
TEST_NAME=register_flood
. "$(dirname "$0")/harness.sh"
set -e
server_env
JUNK_N=80
RACERS=12
USES=5

make_site
start_server
CREG=$CMG/sitetoken/v1/register
( umask 077; $STK bulk new --lifetime 60 --max-uses $USES --json >"$T/lim.json"
  json_get token <"$T/lim.json" >"$T/lim.tok" )
g=$(json_get guid <"$T/lim.json")
dev_cert junk
# HS256 over a public key: the algorithm confusion a verifier must refuse.
printf '{"bulk_token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAA"}' > "$T/junk.json"

junk_one() {
	curl -s --max-time 30 --cacert "$T/tls.crt" --cert "$T/junk.crt" --key "$T/junk.key" \
		-H 'Content-Type: application/json' --data-binary @"$T/junk.json" \
		-o /dev/null -w '%{http_code}\n' "$CREG" || echo 000
}
export -f junk_one
export T CREG

t0=$(date +%s)
# The flood: 8 connections at a time, JUNK_N requests ...
seq "$JUNK_N" | xargs -P 8 -I{} bash -c junk_one > "$T/junk.codes" &
flood=$!
# ... while RACERS devices race for USES uses of one token.
pids=()
for i in $(seq "$RACERS"); do
	mkdir -m 700 "$T/r$i"
	agent "r$i" 0 register --cmg "$CMG" --regtoken-file "$T/lim.tok" >"$T/r$i.out" 2>&1 &
	pids+=($!)
done
okn=0
for p in "${pids[@]}"; do if wait "$p"; then okn=$((okn + 1)); fi; done
wait "$flood"
t1=$(date +%s)

exh=$(grep -l "HTTP 403 bulk_token_exhausted" "$T"/r*.out | wc -l)
[ "$okn $exh" = "$USES $((RACERS - USES))" ] || cat "$T"/r*.out >&2
expect_eq "$okn" "$USES" "--max-uses $USES: $RACERS devices racing during a flood of $JUNK_N junk tokens"
expect_eq "$exh" $((RACERS - USES)) "the other racers refused 403 bulk_token_exhausted"
expect_eq "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices WHERE bulk_guid='$g'")" "$USES" \
	"devices enrolled with the token"
expect_eq "$(count_devices)" "$USES" "no junk request left a device"

expect_eq "$(sort -u "$T/junk.codes" | tr '\n' ' ')$(wc -l <"$T/junk.codes")" "401 $JUNK_N" \
	"each of the $JUNK_N junk requests refused with 401"

# Closing the server records the counts it still holds.
stop_server
q="SELECT detail FROM audit WHERE event='device.register.cmg' AND outcome='refused' AND actor='127.0.0.1' AND detail NOT LIKE 'bulk_token_exhausted%'"
sqlite3 "$SITE/site.db" "$q" > "$T/junk.audit"
python3 - "$T/junk.audit" "$JUNK_N" "$((t1 - t0))" <<'PY' || fail "junk refusals in the audit log"
import re, sys
lines = [l for l in open(sys.argv[1]).read().splitlines() if l]
want, secs = int(sys.argv[2]), int(sys.argv[3])
one, more = 0, 0
for l in lines:
    m = re.search(r": (\d+) more refusals from this source .*\(aggregated\)$", l)
    if m:
        more += int(m.group(1))
    else:
        one += 1
print("records one by one: %d, aggregated: %d, total %d of %d (%d s)" % (one, more, one + more, want, secs))
assert one + more == want, "refusals recorded != refusals made"
# The burst (24) per 10 s interval, at most: the rest only counted.
assert one <= 24 * (secs // 10 + 2), "more records than the aggregation allows"
assert more > 0, "nothing aggregated"
PY
$STK audit verify >/dev/null || fail "audit verify"
ok "junk refusals: each recorded one by one or in an aggregated count (sum $JUNK_N), audit chain verifies"
