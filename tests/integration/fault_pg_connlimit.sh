#!/usr/bin/env bash
# Store fault: the PostgreSQL server's connection limit is reached (its own
# cluster, max_connections=6 with 2 reserved for the superuser, so 4 for
# everyone else; other clients hold the free slots). What users see: a CLI
# run exits 3 with "too many clients" named; a running server keeps serving
# on the connection it holds; when that connection is lost and cannot be made
# again, registrations are refused (500, the reason in the server's log) and
# the server stays up; once slots free up, the same server and the CLI work
# again, and nothing was half-written (audit verify). PostgreSQL's words for
# the limit ("remaining connection slots are reserved ...") reach the user.
TEST_NAME=fault_pg_connlimit
. "$(dirname "$0")/harness.sh"
set -e
server_env
HOLDERS=()
# What PostgreSQL says when the slots left are the superuser's.
LIMIT_MSG="too many clients|remaining connection slots are reserved"
# At exit, before pgo_init's hook stops the cluster.
stop_all() {
	local p
	for p in "${HOLDERS[@]+"${HOLDERS[@]}"}"; do kill "$p" 2>/dev/null || true; done
	stop_server
}
on_exit stop_all
pgo_init
pgo_initdb limited
pgo_start limited P "-c max_connections=6 -c superuser_reserved_connections=2"
pgo_make_db "$P"
export SITETOKEN_DB="host=127.0.0.1 port=$P dbname=sitetoken user=sitetoken"
make_site
start_server 0
agent first 0 register --mp "$MP" >/dev/null || fail "registration before the limit"
users() { psu "$P" "SELECT count(*) FROM pg_stat_activity WHERE usename = 'sitetoken'"; }
# hold: one more client connection, sleeping, until killed.
hold() {
	psql "$SITETOKEN_DB" -X -qAtc "SELECT pg_sleep(600)" >/dev/null 2>&1 &
	HOLDERS+=($!)
}
fill() { # take every free slot
	local want=$1
	while [ "$(users)" -lt "$want" ]; do
		hold
		for _ in $(seq 50); do [ "$(users)" -ge $(( ${#HOLDERS[@]} + 1 )) ] && break; sleep 0.1; done
	done
}
fill 4
[ "$(users)" = 4 ] || fail "expected 4 client connections, have $(users)"

expect_exit 3 "CLI at the connection limit" -- $STK bulk new --lifetime 60
grep -Eq "$LIMIT_MSG" <<<"$ERR" || fail "bulk new at the limit: $ERR"
[[ $OUT != *eyJ* ]] || fail "bulk new printed a token"
agent second 0 register --mp "$MP" >/dev/null || fail "the server lost its held connection at the limit"
ok "the running server keeps serving on the connection it holds"

# The server's connections are cut (the shared one, and the one a worker
# thread checks registrations on); waiting clients take the slots at once.
spids=$(psu "$P" "SELECT pid FROM pg_stat_activity WHERE usename = 'sitetoken' AND query NOT LIKE '%pg_sleep%'")
[ -n "$spids" ] || fail "no server connection found"
for spid in $spids; do psu "$P" "SELECT pg_terminate_backend($spid)" >/dev/null; done
fill 4
rc=0; agent third 0 register --mp "$MP" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" != 0 ] && grep -q "HTTP 500" "$T/err" || fail "registration without a connection: rc $rc $(cat "$T/err")"
grep -Eq "$LIMIT_MSG" "$SITE/logs/MP_RegistrationManager.log" ||
	fail "the server's log does not say why: $(tail -2 "$SITE/logs/MP_RegistrationManager.log")"
kill -0 "$SERVER_PID" || fail "the server died"
ok "connection lost and the limit reached: HTTP 500, MP_RegistrationManager.log names the limit, server up"

# Slots free up: the same server reconnects on its next request.
# (A backend inside pg_sleep does not notice its client leave: end it.)
psu "$P" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'sitetoken' AND query LIKE '%pg_sleep(600)%'" >/dev/null
for p in "${HOLDERS[@]}"; do wait "$p" 2>/dev/null || true; done
HOLDERS=()
expect_exit 0 "registration after slots freed" -- agent third 0 register --mp "$MP"
expect_exit 0 "bulk new after slots freed" -- $STK bulk new --lifetime 60
stop_server
$STK audit verify >"$T/verify" 2>&1 || fail "audit verify: $(cat "$T/verify")"
[ "$(psql "$SITETOKEN_DB" -X -qAtc "SET search_path TO $(sed -n 's/^schema=//p' "$SITE/site.conf"); SELECT count(*) FROM devices")" = 3 ] ||
	fail "device rows"
ok "slots free: the same server registers again, bulk new works, 3 devices, audit verify: $(tail -1 "$T/verify")"
