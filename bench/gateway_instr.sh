#!/usr/bin/env bash
# Instructions per CMG request, which machine load does not move:
# `sitetoken serve` under valgrind --tool=callgrind (loopback, fresh site),
# one registered device, then on ONE kept-alive mutual-TLS connection
# (curl, N URLs) N and 2N authenticated `GET policy` and the same for
# `GET health`; counts are zeroed and dumped around each batch
# (callgrind_control), and per request = (I(2N) - I(N)) / N, so the
# handshake and start-up cancel out. Prints both and their ratio, and
# leaves the per-function profile of the policy batch in OUT (default: a
# temporary directory, removed) for callgrind_annotate. With
# STK_INSTR_DEVICES=M the site holds M registered devices (filler rows, as
# sitetoken-bench's 100k figure adds) while it is measured.
#   bench/gateway_instr.sh BUILD_DIR [N] [OUT_DIR]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [N] [OUT_DIR]" >&2; exit 2; }
BUILD=$(cd "$1" && pwd)
N=${2:-200}
STK=$BUILD/sitetoken
AGENT=$BUILD/sitetoken-agent
T=$(mktemp -d "${TMPDIR:-/tmp}/stk-instr.XXXXXX")
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
OUT=${3:-$T/out}
mkdir -p "$OUT"
PID=
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
	local rc=$?
	[ -z "$PID" ] || { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
	rm -rf "$T"
	exit "$rc"
}
trap cleanup EXIT
export SITETOKEN_SITE=$T/site
"$STK" site init --site "$SITETOKEN_SITE" >/dev/null
tls_pair
bulk_token "$SITETOKEN_SITE" "$T/bulk.tok"
valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.%p" \
	"$STK" serve --site "$SITETOKEN_SITE" --mp 127.0.0.1:0 --cmg 127.0.0.1:0 \
	--tls-cert "$T/tls.crt" --tls-key "$T/tls.key" --threads 1 \
	--ready-file "$T/ready" 2>"$T/server.stderr" &
PID=$!
cmg_port=
wait_ready "$PID" "$T/ready" server 600
CMG=https://127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/72186325152220500
"$AGENT" --state "$T/dev" --ca "$T/tls.crt" register --cmg "$CMG" \
	--regtoken-file "$T/bulk.tok" >/dev/null
( umask 077; printf 'Authorization: Bearer %s' "$(cat "$T/dev/client.token")" >"$T/hdr" )
FILL=${STK_INSTR_DEVICES:-0}
if [ "$FILL" -gt 1 ]; then
	sqlite3 -cmd '.timeout 30000' "$SITETOKEN_SITE/site.db" "WITH RECURSIVE n(i) AS
		(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $FILL - 1) INSERT INTO devices
		(guid, cert_thumbprint, cert, registered_at, via) SELECT printf(
		'%08x-0000-4000-8000-%012x', i, i), 'bench-fake-' || i, x'00', 0, 'mp' FROM n;
		PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
fi

# batch PATH COUNT: COUNT requests on one connection; prints instructions.
batch() {
	local path=$1 n=$2 urls=() i f files
	for ((i = 0; i < n; i++)); do urls+=("$CMG/sitetoken/v1/$path"); done
	callgrind_control -z "$PID" >/dev/null 2>&1
	curl -s --fail --cacert "$T/tls.crt" --cert "$T/dev/device.crt" \
		--key "$T/dev/device.key" -H @"$T/hdr" "${urls[@]}" >/dev/null
	rm -f "$OUT"/cg."$PID".*
	callgrind_control -d "$path-$n" "$PID" >/dev/null 2>&1
	files=("$OUT"/cg."$PID".*)   # the one dump just written
	f=${files[0]}
	awk '/^summary:|^totals:/ { print $2; exit }' "$f"
	[ "$path" = policy ] && [ "$n" = $((2 * N)) ] && cp "$f" "$OUT/policy.cg"
	[ "$path" = health ] && [ "$n" = $((2 * N)) ] && cp "$f" "$OUT/health.cg"
	return 0
}
batch policy 20 >/dev/null   # warm: the cache, the worker handle
p1=$(batch policy "$N"); h1=$(batch health "$N")
p2=$(batch policy $((2 * N))); h2=$(batch health $((2 * N)))
python3 - "$p1" "$p2" "$h1" "$h2" "$N" "$(sqlite3 "$SITETOKEN_SITE/site.db" "SELECT count(*) FROM devices")" <<'PY'
import sys
p1, p2, h1, h2, n = map(int, sys.argv[1:6])
p, h = (p2 - p1) / n, (h2 - h1) / n
print(f"instructions per request ({sys.argv[6]} devices): policy {p:,.0f}  health {h:,.0f}  "
      f"health/policy {h / p:.2f} (the rate ratio a CPU-bound server would show)")
PY
[ -n "${3:-}" ] && echo "profiles: $OUT/policy.cg $OUT/health.cg (callgrind_annotate)"
exit 0
