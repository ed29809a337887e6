#!/usr/bin/env bash
# sitetoken end-to-end demo (./run demo): a site whose key lives in a
# software TPM, the registration service (MP + cloud gateway over mutual
# TLS), and a device agent that installs with a bulk registration token,
# makes an authenticated request and renews its token a month later.
#
#   demo/demo.sh BUILD_DIR
#
# Everything runs on loopback with free ports; everything started here is
# stopped on exit (by pid). The work directory is kept for inspection.
set -euo pipefail

BUILD=$(cd "${1:-${STK_BIN:?usage: demo/demo.sh BUILD_DIR}}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
STK=$BUILD/sitetoken
AGENT=$BUILD/sitetoken-agent
for b in "$STK" "$AGENT"; do
	[ -x "$b" ] || { echo "demo: $b not built (run ./run build)" >&2; exit 2; }
done
W=$(mktemp -d "${STK_TEST_TMP:-${TMPDIR:-/tmp}}/sitetoken-demo.XXXXXX")
chmod 700 "$W"
SITE=$W/site
export SITETOKEN_SITE=$SITE
unset SITETOKEN_TIME_OFFSET SITETOKEN_REGTOKEN
SERVER_PID=
TPM_STARTED=0
STEP=0

bold= norm=
if [ -t 1 ]; then
	bold=$(tput bold 2>/dev/null || true)
	norm=$(tput sgr0 2>/dev/null || true)
fi
step() { STEP=$((STEP + 1)); printf '\n%s== %d. %s%s\n' "$bold" "$STEP" "$*" "$norm"; }
run() { printf '$ %s\n' "$*"; "$@"; }
note() { printf '   %s\n' "$*"; }

stop_server() {
	if [ -n "$SERVER_PID" ]; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=
	fi
}
cleanup() {
	local rc=$?
	stop_server
	if [ "$TPM_STARTED" = 1 ]; then
		bash "$SRC/swtpm-setup/swtpm-stop.sh" "$W/tpm" >/dev/null 2>&1 || true
	fi
	if [ $rc -eq 0 ]; then
		printf '\n%sDemo complete.%s Everything it started is stopped. Files: %s\n' "$bold" "$norm" "$W"
	else
		printf '\ndemo: failed (exit %d) at step %d; files kept in %s\n' "$rc" "$STEP" "$W" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() { # start_server DAYS_OFFSET
	rm -f "$W/ready"
	SITETOKEN_TIME_OFFSET=$(($1 * 86400)) "$STK" serve --site "$SITE" \
		--mp 127.0.0.1:"${mp_port:-0}" --cmg 127.0.0.1:"${cmg_port:-0}" \
		--tls-cert "$W/tls.crt" --tls-key "$W/tls.key" \
		--pid-file "$W/server.pid" --ready-file "$W/ready" 2>>"$W/server.stderr" &
	SERVER_PID=$!
	for _ in $(seq 100); do
		[ -s "$W/ready" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || { cat "$W/server.stderr" >&2; exit 3; }
		sleep 0.1
	done
	# shellcheck disable=SC1091
	. "$W/ready"
}

agent() { "$AGENT" --state "$W/device" --ca "$W/tls.crt" "$@"; }

# ---------------------------------------------------------------------------
step "Start a software TPM 2.0 (swtpm) and make the site key inside it"
BACKEND=file
# grep reads all of --help (-q would stop early, and the help is over one
# pipe write: SIGPIPE under pipefail).
if "$STK" --help | grep "tpm" >/dev/null && command -v swtpm >/dev/null &&
    [ -x "$SRC/swtpm-setup/swtpm-start.sh" -o -f "$SRC/swtpm-setup/swtpm-start.sh" ]; then
	if eval "$(bash "$SRC/swtpm-setup/swtpm-start.sh" "$W/tpm")"; then
		TPM_STARTED=1
		note "swtpm pid $SWTPM_PID, TCTI $SITETOKEN_TCTI"
		if run "$STK" site init --site "$SITE" --backend tpm; then
			BACKEND=tpm
		else
			note "the tpm key backend refused (see above)"
		fi
	fi
fi
if [ "$BACKEND" != tpm ] && [ -n "${STK_DEMO_REQUIRE_TPM:-}" ]; then
	echo "demo: the TPM backend is required here (STK_DEMO_REQUIRE_TPM) but unavailable" >&2
	exit 3
fi
if [ "$BACKEND" != tpm ]; then
	printf '\n   *** The TPM backend is not available in this build or swtpm could not\n'
	printf '   *** start: falling back to the development-only PEM file backend.\n\n'
	rm -rf "$SITE"
	run "$STK" site init --site "$SITE" --backend file
fi
run "$STK" key show

# ---------------------------------------------------------------------------
step "Make the TLS certificate of the MP and CMG listeners"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$W/tls.key" -out "$W/tls.crt" -days 30 -subj /CN=localhost \
	-addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null
chmod 600 "$W/tls.key"
note "server TLS certificate: $W/tls.crt (the device agent trusts it with --ca)"
note "(the TLS listener key is a file; the token-signing key is in the $BACKEND backend)"

# ---------------------------------------------------------------------------
step "Start the registration service (MP + cloud gateway)"
start_server 0
MP=http://127.0.0.1:$mp_port
CMG=https://127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/72186325152220500
note "server pid $SERVER_PID"
note "MP  (internal network): $MP"
note "CMG (internet, mutual TLS): $CMG"

# ---------------------------------------------------------------------------
step "Administrator creates a bulk registration token (valid 60 minutes)"
( umask 077; "$STK" bulk new --lifetime 60 --json > "$W/bulk.json" )
python3 - "$W/bulk.json" "$W/bulk.tok" <<'EOF'
import json, os, sys
d = json.load(open(sys.argv[1]))
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, d["token"].encode()); os.close(fd)
print("   Token GUID: %s\n   Valid:      %s .. %s\n   Token:      %s... (%d characters; shown in full only to the admin)"
      % (d["guid"], d["valid_from"], d["valid_to"], d["token"][:40], len(d["token"])))
EOF
rm -f "$W/bulk.json"
BULK_GUID=$(sqlite3 "$SITE/site.db" "SELECT guid FROM bulk_tokens" 2>/dev/null || true)

# ---------------------------------------------------------------------------
step "Device installs from the internet with the bulk token (through the CMG)"
note "seed syntax; the token comes from stdin (/regtoken:-), so it is not in argv"
printf '$ sitetoken-agent install /mp:%s CCMHOSTNAME=%s SMSSiteCode=ABC /regtoken:- < bulk.tok\n' \
	"$CMG" "127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/72186325152220500"
agent install /mp:"$CMG" CCMHOSTNAME="127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/72186325152220500" \
	SMSSiteCode=ABC /regtoken:- < "$W/bulk.tok"
rm -f "$W/bulk.tok"
note "device state: $(ls "$W/device" | tr '\n' ' ')"
note "the bulk token is not on the device and not on the site: only its GUID is recorded"
grep -h "Rotating internet management point" "$W/device/ClientIDManagerStartup.log" | sed 's/^/   /'

# ---------------------------------------------------------------------------
step "Authenticated request through the CMG (TLS client certificate + bound token)"
run "$AGENT" --state "$W/device" --ca "$W/tls.crt" policy

# ---------------------------------------------------------------------------
step "A month later: the agent renews its token (clock jumped 31 days)"
stop_server
start_server 31
note "server restarted with SITETOKEN_TIME_OFFSET=31 days (same ports)"
run "$AGENT" --state "$W/device" --ca "$W/tls.crt" --clock-offset $((31 * 86400)) run --once
run "$AGENT" --state "$W/device" --clock-offset $((31 * 86400)) status
run "$AGENT" --state "$W/device" --ca "$W/tls.crt" --clock-offset $((31 * 86400)) policy

# ---------------------------------------------------------------------------
step "The same device with the gateway turned off, then on again"
run "$STK" settings set allow-cmg off
agent --clock-offset $((31 * 86400)) policy || note "refused as expected (exit $?)"
run "$STK" settings set allow-cmg on

# ---------------------------------------------------------------------------
step "Certificates view, devices and logs"
run "$STK" certs list
run "$STK" devices list
note "server logs in $SITE/logs:"
for f in CCM_STS MP_RegistrationManager ClientAuth; do
	printf '   -- %s.log (last 2 lines)\n' "$f"
	tail -n 2 "$SITE/logs/$f.log" | cut -c1-200 | sed 's/^/   /'
done

# ---------------------------------------------------------------------------
step "Stop the server (SIGTERM) and verify the audit log"
stop_server
run "$STK" audit verify
[ -n "$BULK_GUID" ] && note "bulk token $BULK_GUID: $("$STK" certs list --type bulk | grep -c "$BULK_GUID") row in the certificates view"
