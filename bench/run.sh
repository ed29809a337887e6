#!/usr/bin/env bash
# Run sitetoken-bench with everything it compares against: a throw-away
# SoftHSM token, a swtpm on free loopback ports, and `sitetoken serve` with
# a fresh site on loopback (CMG with mutual TLS). Every process started here
# is stopped by its pid on exit; the work directory is removed.
#   bench/run.sh BUILD_DIR [sitetoken-bench options...]   (e.g. --quick, --json)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [bench options]" >&2; exit 2; }
BUILD=$(cd "$1" && pwd); shift
SRC=$(cd "$(dirname "$0")/.." && pwd)
STK=$BUILD/sitetoken
BENCH=$BUILD/bench/sitetoken-bench
T=$(mktemp -d "${TMPDIR:-/tmp}/stk-bench-run.XXXXXX")
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"
SERVER_PID=
COLD_PID=
HSM_PID=
TPM_UP=

cleanup() {
	local rc=$?
	for p in $SERVER_PID $COLD_PID $HSM_PID; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	[ -z "$TPM_UP" ] || bash "$SRC/swtpm-setup/swtpm-stop.sh" "$T/tpm" >/dev/null 2>&1 || true
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT

eval "$(bash "$SRC/swtpm-setup/softhsm-token.sh" "$T/hsm" stk-bench)"
eval "$(bash "$SRC/swtpm-setup/swtpm-start.sh" "$T/tpm")"
TPM_UP=1

# Site (file key: the gateway figure is about the HTTP/TLS path) + server.
export SITETOKEN_SITE=$T/site
"$STK" site init --site "$SITETOKEN_SITE" >/dev/null
tls_pair
bulk_token "$SITETOKEN_SITE" "$T/bulk.tok"
# The server needs one descriptor per connection for the RSS figure.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$STK" serve --site "$SITETOKEN_SITE" --mp 127.0.0.1:0 --cmg 127.0.0.1:0 \
	--tls-cert "$T/tls.crt" --tls-key "$T/tls.key" --pid-file "$T/server.pid" \
	--ready-file "$T/ready" 2>>"$T/server.stderr" &
SERVER_PID=$!
wait_ready "$SERVER_PID" "$T/ready" server
main_cmg=$cmg_port
# A second server on the same site with the verified-token cache off: the
# "cache cold" reference.
SITETOKEN_TOKEN_CACHE=0 "$STK" serve --site "$SITETOKEN_SITE" --mp 127.0.0.1:0 \
	--cmg 127.0.0.1:0 --tls-cert "$T/tls.crt" --tls-key "$T/tls.key" \
	--pid-file "$T/cold.pid" --ready-file "$T/ready-cold" 2>>"$T/server.stderr" &
COLD_PID=$!
wait_ready "$COLD_PID" "$T/ready-cold" "cold server"
cold_cmg=$cmg_port
# A third server on its own site whose key is in the SoftHSM token: the
# registrations-through-SoftHSM figures (group register).
SITETOKEN_SITE=$T/site-hsm "$STK" site init --site "$T/site-hsm" --backend pkcs11 \
	--pkcs11-uri "pkcs11:token=$SITETOKEN_PKCS11_TOKEN;object=stk-bench-site" >/dev/null
bulk_token "$T/site-hsm" "$T/bulk-hsm.tok"
"$STK" serve --site "$T/site-hsm" --mp 127.0.0.1:0 --cmg 127.0.0.1:0 \
	--tls-cert "$T/tls.crt" --tls-key "$T/tls.key" --pid-file "$T/hsm.pid" \
	--ready-file "$T/ready-hsm" 2>>"$T/server.stderr" &
HSM_PID=$!
wait_ready "$HSM_PID" "$T/ready-hsm" "SoftHSM server"
hsm_cmg=$cmg_port
cmg_port=$main_cmg

"$BENCH" --tmp "$T" --cmg "https://127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/72186325152220500" \
	--ca "$T/tls.crt" --bulk-token-file "$T/bulk.tok" --server-pid "$SERVER_PID" \
	--cmg-cold "https://127.0.0.1:$cold_cmg/CCM_Proxy_MutualAuth/72186325152220500" \
	--cold-pid "$COLD_PID" --site-db "$SITETOKEN_SITE/site.db" \
	--cmg-hsm "https://127.0.0.1:$hsm_cmg/CCM_Proxy_MutualAuth/72186325152220500" \
	--hsm-bulk-token-file "$T/bulk-hsm.tok" "$@"
