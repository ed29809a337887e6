#!/usr/bin/env bash
# Crash safety: concurrent registrations (MP and CMG) while the server is
# killed -9 at random moments and restarted, many times. Afterwards the
# database passes PRAGMA integrity_check, the audit chain verifies, every
# registration a client saw acknowledged (200 with a token) is present with
# that token's jti, and nothing is half-written: every device row is
# complete and has exactly one accepted registration record in the audit
# log, and every such record has its device.
TEST_NAME=crash
. "$(dirname "$0")/harness.sh"
set -e
server_env
KILLS=${STK_CRASH_KILLS:-20}
IDS=${STK_CRASH_IDENTITIES:-1200}

make_site
start_server 0 --threads 8
new_bulk "$T/bulk.tok" >/dev/null
mkdir -p "$T/ids"
# Identities up front (several openssl at a time), so the load is registration only.
# (Wait for these pids only: a bare wait would wait for the server too.)
gen=()
for i in $(seq "$IDS"); do
	dev_cert "$T/ids/d$i" &
	gen+=($!)
	if [ ${#gen[@]} -ge 16 ]; then wait "${gen[@]}"; gen=(); fi
done
[ ${#gen[@]} -eq 0 ] || wait "${gen[@]}"
chmod 600 "$T"/ids/*.key

python3 "$(dirname "$0")/crash_clients.py" "$T/ids" "$mp_port" "$cmg_port" \
	"/CCM_Proxy_MutualAuth/$SITE_NUMBER" "$T/tls.crt" "$T/bulk.tok" 6 "$T/stop" 0.06 \
	> "$T/clients.out" 2> "$T/clients.err" &
CLIENTS=$!
# Stop the client driver on any exit (the harness stops the server).
on_exit '[ -z "${CLIENTS:-}" ] || kill "$CLIENTS" 2>/dev/null'

kills=0
for k in $(seq "$KILLS"); do
	# A random moment: 50..550 ms into the load.
	sleep "$(python3 -c 'import random; print(random.uniform(0.05, 0.55))')"
	kill -9 "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
	kills=$((kills + 1))
	rm -f "$T/server.pid"
	start_server 0 --threads 8
	kill -0 "$CLIENTS" 2>/dev/null || break
done
sleep 0.5
touch "$T/stop"
wait "$CLIENTS" || fail "client driver failed: $(tail -3 "$T/clients.err")"
CLIENTS=
stop_server
echo "# $kills kills; $(cat "$T/clients.out")"
[ "$kills" -ge 10 ] || fail "only $kills kills"
acked=$(wc -l < "$T/ids/acked")
[ "$acked" -ge 20 ] || fail "only $acked acknowledged registrations: the load did not run"
grep -v '^refused 5' "$T/clients.err" | grep '^refused' && fail "a registration was refused (not a crash effect)"

if [ -e "$SITE/site.db" ]; then
	got=$(sqlite3 "$SITE/site.db" "PRAGMA integrity_check")
	[ "$got" = ok ] && ok "PRAGMA integrity_check: ok" || fail "integrity_check: $got"
fi # PostgreSQL keeps its own files consistent; the checks below are on the rows
$STK audit verify > "$T/verify.out" 2>&1 && ok "audit verify: $(tail -1 "$T/verify.out")" ||
	fail "audit verify: $(cat "$T/verify.out")"

# Every acknowledged registration, exactly as acknowledged.
sqlite3 "$SITE/site.db" "SELECT guid || ' ' || last_token_jti || ' ' || cert_thumbprint ||
	' ' || via FROM devices" | sort > "$T/devices"
sort "$T/ids/acked" > "$T/acked.sorted"
missing=$(comm -23 "$T/acked.sorted" "$T/devices" | wc -l)
[ "$missing" = 0 ] && ok "all $acked acknowledged registrations present (guid, jti, certificate, via)" ||
	{ comm -23 "$T/acked.sorted" "$T/devices" | head -3; fail "$missing acknowledged registrations missing"; }

# Nothing half-written: complete rows, and rows <-> accepted audit records 1:1.
got=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices WHERE last_token_jti IS NULL
	OR last_issued_at IS NULL OR token_exp IS NULL OR length(cert) = 0 OR registered_at IS NULL")
[ "$got" = 0 ] && ok "every device row complete" || fail "$got incomplete device rows"
PYTHONPATH=$(dirname "$0") python3 -c 'import glob, sys, stkpy
for f in glob.glob(sys.argv[1] + "/*.crt"):
    print(stkpy.thumb(open(f).read()))' "$T/ids" >"$T/thumbs"
sqlite3 "$SITE/site.db" "SELECT cert_thumbprint FROM devices" | sort > "$T/dev_thumbs"
sort "$T/thumbs" > "$T/thumbs.sorted"
[ -z "$(comm -23 "$T/dev_thumbs" "$T/thumbs.sorted")" ] && ok "every device row is one of the test's certificates" ||
	fail "a device row with an unknown certificate"
sqlite3 "$SITE/site.db" "SELECT guid FROM devices" | sort > "$T/dev_guids"
sqlite3 "$SITE/site.db" "SELECT subject FROM audit WHERE event LIKE 'device.register.%' AND outcome = 'ok'" |
	sort > "$T/audit_guids"
[ "$(uniq -d "$T/audit_guids" | wc -l)" = 0 ] || fail "a device with two accepted registration records"
if cmp -s "$T/dev_guids" "$T/audit_guids"; then
	ok "$(wc -l < "$T/dev_guids") devices, each with exactly one accepted registration record, and no record without its device"
else
	diff "$T/dev_guids" "$T/audit_guids" | head -5
	fail "devices and accepted registration records differ"
fi
# The site still works after all that.
start_server
dev_identity after
printf '{"bulk_token":"%s"}' "$(cat "$T/bulk.tok")" > "$T/body"
got=$(post_json "$CMG/sitetoken/v1/register" "$T/body" --cert "$T/after.crt" --key "$T/after.key")
expect_eq "$got" "200 -" "registration after the crashes"
stop_server
$STK audit verify >/dev/null 2>&1 && ok "audit verify after a clean restart" || fail "audit verify after restart"
