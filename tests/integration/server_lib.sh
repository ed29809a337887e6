# Shared helpers for the server/agent integration tests (sourced).
# Real server, real agent, loopback only, free ports (port 0 + ready file),
# every process stopped by its pid on exit.
set -euo pipefail

: "${STK_BIN:?}" "${STK_SRC:?}" "${STK_TEST_TMP:?}"
STK=$STK_BIN/sitetoken
AGENT=$STK_BIN/sitetoken-agent
T=$(mktemp -d "$STK_TEST_TMP/${TEST_NAME:-server}.XXXXXX")
SITE=$T/site
SITE_NUMBER=72186325152220500
SERVER_PID=
export SITETOKEN_SITE=$SITE
unset SITETOKEN_TIME_OFFSET SITETOKEN_REGTOKEN SITETOKEN_AGENT_STATE

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# stop_node PID TAG: SIGTERM a server started by serve_node, wait for it,
# and insist on a clean exit that removed its pid file.
stop_node() {
	local pid=$1 tag=$2 rc=0
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ] || fail "server$tag exited $rc after SIGTERM"
	[ ! -e "$T/server$tag.pid" ] || fail "server$tag left its pid file behind"
}

stop_server() {
	if [ -n "$SERVER_PID" ]; then
		local pid=$SERVER_PID
		SERVER_PID=
		stop_node "$pid" ""
	fi
}
cleanup() { local rc=$?; stop_server || true; exit $rc; }
trap cleanup EXIT

make_site() {
	$STK site init --site "$SITE" >/dev/null
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$T/tls.key" -out "$T/tls.crt" -days 400 -subj /CN=localhost \
		-addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null
	chmod 600 "$T/tls.key"
}

# serve_node DIR TAG MP_PORT CMG_PORT DAYS_OFFSET [extra serve args...]:
# `sitetoken serve` for the site in DIR (files $T/server$TAG.pid,
# $T/ready$TAG, $T/server$TAG.stderr), waiting until it listens; sets
# SERVED_PID, SERVED_MP_PORT and SERVED_CMG_PORT.
serve_node() {
	local dir=$1 tag=$2 mp=$3 cmg=$4 days=$5; shift 5
	local ready=$T/ready$tag i
	rm -f "$ready"
	SITETOKEN_TIME_OFFSET=$((days * 86400)) $STK serve --site "$dir" \
		--mp 127.0.0.1:"$mp" --cmg 127.0.0.1:"$cmg" --tls-cert "$T/tls.crt" \
		--tls-key "$T/tls.key" --pid-file "$T/server$tag.pid" --ready-file "$ready" \
		"$@" 2>>"$T/server$tag.stderr" &
	SERVED_PID=$!
	for i in $(seq 100); do
		[ -s "$ready" ] && break
		kill -0 "$SERVED_PID" 2>/dev/null || fail "server$tag did not start: $(cat "$T/server$tag.stderr")"
		sleep 0.1
	done
	[ -s "$ready" ] || fail "server$tag not ready"
	SERVED_MP_PORT=$(. "$ready"; echo "$mp_port")
	SERVED_CMG_PORT=$(. "$ready"; echo "$cmg_port")
}

# start_server [DAYS_OFFSET] [extra serve args...]
start_server() {
	local days=${1:-0}; shift || true
	# A restart keeps the ports: agents remember their MP and CMG URLs.
	serve_node "$SITE" "" "${mp_port:-0}" "${cmg_port:-0}" "$days" "$@"
	SERVER_PID=$SERVED_PID
	# shellcheck disable=SC1091
	. "$T/ready"
	MP=http://127.0.0.1:$mp_port
	CMG=https://127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/$SITE_NUMBER
	[ "$(cat "$T/server.pid")" = "$SERVER_PID" ] || fail "pid file does not hold the server pid"
}

# agent STATE_NAME [DAYS_OFFSET] ARGS... (offset via the agent's own option)
agent() {
	local st=$1 days=$2; shift 2
	$AGENT --state "$T/$st" --ca "$T/tls.crt" --clock-offset $((days * 86400)) "$@"
}

new_bulk() { # new_bulk FILE [lifetime] -> token in FILE (0600), GUID on stdout
	local f=$1 life=${2:-60}
	( umask 077; $STK bulk new --lifetime "$life" --json > "$f.json" )
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); open(sys.argv[2],"w").write(d["token"]); print(d["guid"])' "$f.json" "$f"
	rm -f "$f.json"
}

json_get() { # json_get KEY < json
	python3 -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print(str(v).lower() if isinstance(v,bool) else v)' "$1"
}

# raw HTTPS call with a given cert/key and bearer token file; prints "STATUS BODY"
cmg_call() { # cmg_call METHOD PATH STATE_NAME TOKEN_FILE [curl args]
	local method=$1 path=$2 st=$3 tokf=$4; shift 4
	local hdr=$T/hdr.$$
	if [ -n "$tokf" ]; then
		( umask 077; printf 'Authorization: Bearer %s' "$(cat "$tokf")" > "$hdr" )
	else
		: > "$hdr"
	fi
	local cert=()
	[ -n "$st" ] && cert=(--cert "$T/$st/device.crt" --key "$T/$st/device.key")
	curl -s --cacert "$T/tls.crt" "${cert[@]}" -H @"$hdr" -H 'Content-Type: application/json' -X "$method" \
		-w '\n%{http_code}' "$@" "$CMG/sitetoken/v1/$path"
	rm -f "$hdr"
}

# the status line of cmg_call output is last
http_status() { tail -n 1; }
http_body() { sed '$d'; }

count_devices() { sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices"; }

# No log may ever contain a full token (three base64url segments).
assert_no_tokens_in_logs() {
	local f
	for f in "$SITE"/logs/*.log "$T"/*/ccmsetup.log "$T"/*/ClientIDManagerStartup.log "$T/server.stderr"; do
		[ -e "$f" ] || continue
		if grep -Eq 'eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+' "$f"; then
			fail "a token appears in $f"
		fi
	done
	ok "no token in any log"
}

# device_tpms: the state directories of the device's swtpm ($DEV_TPM) and of
# a second device TPM ($OTHER_TPM) under $T, both stopped with the server on
# exit; no TPM or PKCS#11 settings come from the caller's environment.
device_tpms() {
	DEV_TPM=$T/dev-tpm
	OTHER_TPM=$T/other-tpm
	unset SITETOKEN_TCTI SITETOKEN_PKCS11_PIN SITETOKEN_PKCS11_PIN_FILE SITETOKEN_PKCS11_MODULE
	trap cleanup_device_tpms EXIT
}
cleanup_device_tpms() {
	local rc=$?
	stop_server || true
	bash "$STK_SRC/swtpm-setup/swtpm-stop.sh" "$DEV_TPM" >/dev/null 2>&1 || true
	bash "$STK_SRC/swtpm-setup/swtpm-stop.sh" "$OTHER_TPM" >/dev/null 2>&1 || true
	exit $rc
}
