# shellcheck shell=bash
# Sourced by the bench scripts (after they set STK and T): the loopback TLS
# pair, a bulk token, and waiting for `sitetoken serve` to be ready.

# tls_pair: $T/tls.crt and $T/tls.key (P-256, localhost and 127.0.0.1).
tls_pair() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$T/tls.key" -out "$T/tls.crt" -days 30 -subj /CN=localhost \
		-addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null
	chmod 600 "$T/tls.key"
}

# bulk_token SITE FILE: a new 60-minute bulk token of SITE in FILE (mode 600),
# never in argv.
bulk_token() {
	( umask 077; SITETOKEN_SITE=$1 "$STK" bulk new --lifetime 60 --json >"$2.json" )
	python3 -c 'import json,sys; open(sys.argv[2],"w").write(json.load(open(sys.argv[1]))["token"])' \
		"$2.json" "$2"
	rm -f "$2.json"
}

# wait_ready PID READY_FILE WHAT [TENTHS]: wait up to TENTHS/10 s (default
# 10 s) for the server PID to write READY_FILE, then source it ($mp_port,
# $cmg_port); exit 1 with the server's stderr if it dies first.
wait_ready() {
	local _
	for _ in $(seq "${4:-100}"); do
		[ -s "$2" ] && break
		kill -0 "$1" 2>/dev/null || { cat "$T/server.stderr" >&2; exit 1; }
		sleep 0.1
	done
	[ -s "$2" ] || { echo "$3 not ready" >&2; exit 1; }
	# shellcheck disable=SC1090
	. "$2"
}
