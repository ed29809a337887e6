#!/usr/bin/env bash
# Soak: `sitetoken serve` on a fresh site (file key, SQLite; or PostgreSQL
# when SITETOKEN_DB is set) and sitetoken-soak's mixed load on it for a set
# time. Prints the server's RSS, open descriptors and request latencies
# (p50/p99) over the first and the last window of the run: they should be
# flat. Every process started here is stopped by its pid; the work
# directory is removed.
#   bench/soak.sh BUILD_DIR [--minutes N | --seconds N]   (default 10 minutes)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [--minutes N | --seconds N]" >&2; exit 2; }
BUILD=$(cd "$1" && pwd); shift
STK=$BUILD/sitetoken
SOAK=$BUILD/bench/sitetoken-soak
T=$(mktemp -d "${TMPDIR:-/tmp}/stk-soak.XXXXXX")
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
SERVER_PID=
cleanup() {
	local rc=$?
	if [ -n "$SERVER_PID" ]; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT
export SITETOKEN_SITE=$T/site
"$STK" site init --site "$SITETOKEN_SITE" --key-type p256 >/dev/null
tls_pair
"$STK" serve --site "$SITETOKEN_SITE" --mp 127.0.0.1:0 --cmg 127.0.0.1:0 \
	--tls-cert "$T/tls.crt" --tls-key "$T/tls.key" --pid-file "$T/server.pid" \
	--ready-file "$T/ready" 2>>"$T/server.stderr" &
SERVER_PID=$!
mp_port='' cmg_port=''
wait_ready "$SERVER_PID" "$T/ready" server
mkdir -m 700 "$T/work"
"$SOAK" --mp "http://127.0.0.1:$mp_port" \
	--cmg "https://127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/72186325152220500" \
	--ca "$T/tls.crt" --site "$SITETOKEN_SITE" --stk "$STK" --server-pid "$SERVER_PID" \
	--tmp "$T/work" "$@"
"$STK" audit verify --site "$SITETOKEN_SITE"
