# The integration-test harness: source it first (needs STK_BIN; STK_SRC and
# STK_TEST_TMP from ctest). One place for
#   assertions  ok, bad, fail (count and continue: a failed check prints
#               FAIL - file:line and the script goes on), die (set-up that
#               cannot go on), expect_exit, expect_refusal, expect_in,
#               expect_eq, finish; wait_for (poll, no sleep-then-check);
#               the script's exit status is the number of failed checks
#               (capped at 76; 77 is ctest's skip code), or its own
#               non-zero status if it stopped without a failed check;
#   clean-up    on_exit CMD (also what `trap CMD EXIT` does here), run in
#               order at exit, then the running server stopped by pid and
#               $T removed (kept, and named, when something failed);
#   JSON        json EXPR, json_get KEY;
#   HTTP        http, cmg_call, post_json, expect_ok, bearer_hdr, http_status,
#               http_body;
#   certificates dev_cert, dev_identity, cert_x5t, mp_pop_body;
#   server      server_env, make_site, serve_node, start_server, stop_node,
#               stop_server, agent, new_bulk, refused, count_devices, db_state,
#               audit_count, audit_last, assert_no_tokens_in_logs, device_tpms;
#   TPM pair    tpm_pair ($TPM_A, $TPM_B, stopped at exit);
#   PostgreSQL  pgo_init, pgo_initdb, pgo_start, pgo_stop, pgo_stop_all, psu,
#               pgo_make_db, as_pg, free_port.
[ -n "${_STK_HARNESS:-}" ] && return 0
_STK_HARNESS=1
set -uo pipefail
: "${STK_BIN:?STK_BIN must point to the build directory}"
ST=$STK_BIN/sitetoken
STK=$ST
AGENT=$STK_BIN/sitetoken-agent
BRT=$STK_BIN/BulkRegistrationTokenTool
mkdir -p "${STK_TEST_TMP:-/tmp}"
T=$(mktemp -d "${STK_TEST_TMP:-/tmp}/${TEST_NAME:-$(basename "$0" .sh)}.XXXXXX")
# Failed checks, one a line: outside $T, which a hook may remove.
_FAILS=$(mktemp "${STK_TEST_TMP:-/tmp}/.${TEST_NAME:-$(basename "$0" .sh)}.failures.XXXXXX")
PASSED=0
FAILED=0
SERVER_PID=

# ---- assertions ----
# The caller's file:line (the first frame outside this file).
_where() {
	local i
	for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
		[ "${BASH_SOURCE[$i]}" = "${BASH_SOURCE[0]}" ] && continue
		echo "$(basename "${BASH_SOURCE[$i]}"):${BASH_LINENO[$((i - 1))]}"
		return
	done
	echo "?"
}
ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
# bad/fail MSG: one failed check; the script continues. Counted in a file
# too, so a check failing in a subshell or $(...) still counts.
bad() {
	local w
	w=$(_where)
	FAILED=$((FAILED + 1))
	local m="$w: $*"
	echo "${m//$'\n'/ | }" >>"$_FAILS"
	echo "FAIL - $w: $*" >&2
	return 0
}
fail() { bad "$@"; }
die() { bad "$@"; exit 1; }
# expect_exit CODE DESCRIPTION -- command...   (stdout in $OUT, stderr in $ERR)
expect_exit() {
	local want=$1 what=$2 got=0
	shift 3
	"$@" >"$T/out" 2>"$T/err" || got=$?
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
	if [ "$got" -eq "$want" ]; then ok "$what (exit $got)"; else
		bad "$what: want exit $want, got $got"; sed 's/^/    | /' "$T/err" | head -5; fi
}
# expect_refusal CODE TEXT DESCRIPTION -- command...: exit CODE, TEXT on stderr.
expect_refusal() {
	local text=$2
	expect_exit "$1" "$3" "${@:4}"
	expect_in "$text" "$ERR" "$3: stderr names the reason"
}
expect_in() { # expect_in TEXT HAYSTACK DESCRIPTION
	if grep -qF -- "$1" <<<"$2"; then ok "$3"; else bad "$3: '$1' not in: $(head -c 300 <<<"$2")"; fi
}
expect_eq() { if [ "$1" == "$2" ]; then ok "$3"; else bad "$3: '$1' != '$2'"; fi; }
# CMD | has GREP-ARGS...: grep -q, but only after reading all of stdin, so CMD
# never dies of SIGPIPE when grep matches early (pipefail would make that a
# failed check, or a negated check that passes without checking).
has() { local in; in=$(cat); grep -q "$@" <<<"$in"; }
# wait_for SECONDS COMMAND...: true once COMMAND succeeds (polled every
# 0.1 s), false when SECONDS passed first. Not a sleep: load only slows it.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do [ "$SECONDS" -lt "$end" ] || return 1; sleep 0.1; done
}
_failures() { if [ -f "$_FAILS" ]; then wc -l <"$_FAILS"; else echo 0; fi; }
# finish: the summary; true when something passed and nothing failed.
finish() {
	local n
	n=$(_failures)
	echo "$PASSED passed, $n failed"
	[ "$n" -eq 0 ] && [ "$PASSED" -gt 0 ]
}

# ---- clean-up at exit ----
_exit_hooks=()
on_exit() { _exit_hooks+=("$1"); }
# `trap CMD EXIT` adds CMD to the hooks instead of replacing the harness's
# exit handler; other traps are bash's.
trap() {
	if [ "$#" -ge 2 ] && [ "${!#}" = EXIT ]; then
		if [ "$1" = - ]; then _exit_hooks=(); else on_exit "$1"; fi
	else builtin trap "$@"; fi
}
_harness_exit() {
	local rc=$? h n
	# A hook's own `exit N` (written for a plain EXIT trap) ends the hook only.
	exit() { return 0; }
	for h in "${_exit_hooks[@]+"${_exit_hooks[@]}"}"; do
		(builtin exit "$rc")
		eval "$h" || true
	done
	stop_server || true
	unset -f exit
	n=$(_failures)
	rm -f "$_FAILS"
	if [ "$n" -gt 0 ]; then
		echo "$n check(s) failed; scratch kept in $T" >&2
		rc=$((n < 77 ? n : 76))
	elif [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		echo "FAIL - stopped with exit $rc (set -e: the last command above failed); scratch kept in $T" >&2
	else
		rm -rf "$T"
	fi
	builtin exit "$rc"
}
builtin trap _harness_exit EXIT

# ---- JSON ----
# json EXPR [LOWER_BOOLS] < json: print EXPR of the document d (python).
json() {
	python3 -c 'import json, os, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1])
print(str(v).lower() if sys.argv[2] == "1" and isinstance(v, bool) else v)' "$1" "${2:-0}"
}
json_get() { JSON_KEY=$1 json 'd[os.environ["JSON_KEY"]]' 1; } # json_get KEY < json
# jws_header TOKEN|FILE: the token's decoded header (JSON); kid_of: its kid.
jws_header() {
	local t=$1
	[ -f "$t" ] && t=$(cat "$t")
	python3 -c 'import base64, sys; h = sys.argv[1].split(".")[0]
print(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)).decode())' "$t"
}
kid_of() { jws_header "$1" | json 'd["kid"]'; }
nonce() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; } # 16 random bytes, hex

# ---- HTTP ----
# http METHOD URL [curl args...]: one request (the test's TLS certificate
# trusted, 20 s limit; METHOD '' leaves it to curl); prints the body, then
# the status on a last line (000: no answer); the body also in $T/resp.
http() {
	local url=$2 code m=()
	[ -z "$1" ] || m=(-X "$1")
	shift 2
	: >"$T/resp"
	code=$(curl -s --max-time 20 --cacert "$T/tls.crt" -o "$T/resp" -w '%{http_code}' \
		"${m[@]}" "$@" "$url") || code=${code:-000}
	cat "$T/resp"
	printf '\n%s\n' "$code"
}
http_status() { tail -n 1; }
http_body() { sed '$d'; }
# bearer_hdr TOKEN_FILE -> a curl header file (0600), so no token is on argv
bearer_hdr() {
	( umask 077; printf 'Authorization: Bearer %s' "$(cat "$1")" >"$T/bearer.hdr" )
	echo "$T/bearer.hdr"
}
# cmg_call METHOD PATH STATE_NAME TOKEN_FILE [curl args]: the CMG API with
# the device's client certificate and bearer token; `http`'s output.
cmg_call() {
	local method=$1 path=$2 st=$3 tokf=$4 hdr=/dev/null
	shift 4
	[ -n "$tokf" ] && hdr=$(bearer_hdr "$tokf")
	local cert=()
	[ -n "$st" ] && cert=(--cert "$T/$st/device.crt" --key "$T/$st/device.key")
	http "$method" "$CMG/sitetoken/v1/$path" "${cert[@]}" -H @"$hdr" \
		-H 'Content-Type: application/json' "$@"
}
# post_json URL BODY_FILE|- [curl args...] -> "STATUS ERROR" (ERROR '-'
# without one, '?' if the body is not JSON); body in $T/resp. '-': a GET.
post_json() {
	local url=$1 body=$2 code err
	shift 2
	[ "$body" = - ] || set -- -H 'Content-Type: application/json' --data-binary @"$body" "$@"
	code=$(http "" "$url" "$@" | http_status)
	err=$(json 'd.get("error", "-")' <"$T/resp" 2>/dev/null) || err='?'
	echo "$code $err"
}

# expect_ok DESCRIPTION -- post_json args...: the answer "200 -".
expect_ok() { expect_eq "$(post_json "${@:3}")" "200 -" "$1"; }

# cmg_expect "STATUS ERROR" DESCRIPTION cmg_call args...: that answer
# (ERROR as post_json gives it).
cmg_expect() {
	local want=$1 what=$2 got err
	shift 2
	got=$(cmg_call "$@" | http_status)
	err=$(json 'd.get("error", "-")' <"$T/resp" 2>/dev/null) || err='?'
	expect_eq "$got $err" "$want" "$what"
}

# ---- certificates ----
# dev_cert NAME|PATH [openssl req options...] -> PATH.crt, PATH.key (0600):
# a self-signed certificate, P-256, 30 days, CN=NAME unless the options
# give -newkey, -days or -subj. NAME without a slash is $T/NAME.
dev_cert() {
	local p=$1 args=()
	shift
	[[ $p == */* ]] || p=$T/$p
	local a=" $* "
	[[ $a == *" -newkey "* ]] || args+=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
	[[ $a == *" -days "* ]] || args+=(-days 30)
	[[ $a == *" -subj "* ]] || args+=(-subj "/CN=${p##*/}")
	openssl req -x509 -nodes "${args[@]}" "$@" -keyout "$p.key" -out "$p.crt" 2>/dev/null ||
		{ bad "openssl could not make $p.crt"; return 1; }
	chmod 600 "$p.key"
}
dev_identity() { dev_cert "$1"; } # dev_identity NAME -> $T/NAME.{crt,key}
# x5t#S256 of a PEM certificate file.
cert_x5t() {
	openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -binary | basenc --base64url | tr -d '=\n'
}
# mp_pop_body CERT SIGNING_KEY [NONCE] -> $T/body: an HTTP MP register body
# with CERT and its proof of possession (docs/api.md): the MP's challenge
# (or NONCE) signed by SIGNING_KEY, as any third-party agent can do it with
# openssl. The nonce used is left in $T/nonce.
mp_pop_body() {
	local crt=$1 key=$2 nonce=${3:-}
	[ -n "$nonce" ] || nonce=$(curl -s -H 'Content-Type: application/json' -d '{}' \
		"$MP/sitetoken/v1/challenge" | json_get nonce)
	printf '%s' "$nonce" >"$T/nonce"
	printf 'sitetoken-register-v1\n%s\n%s' "$nonce" "$(cert_x5t "$crt")" |
		openssl dgst -sha256 -sign "$key" | basenc --base64url | tr -d '=\n' >"$T/proof"
	python3 -c 'import json,sys; print(json.dumps({"certificate": open(sys.argv[1]).read(),
	    "nonce": open(sys.argv[2]).read(), "proof": open(sys.argv[3]).read()}))' \
		"$crt" "$T/nonce" "$T/proof" >"$T/body"
}

# ---- server and agent (real, loopback only, free ports, stopped by pid) ----
# server_env: the site $SITE (SITETOKEN_SITE) under $T, no time offset,
# registration token or agent state from the caller's environment.
server_env() {
	: "${STK_SRC:?}" "${STK_TEST_TMP:?}"
	SITE=$T/site
	SITE_NUMBER=72186325152220500
	export SITETOKEN_SITE=$SITE
	unset SITETOKEN_TIME_OFFSET SITETOKEN_REGTOKEN SITETOKEN_AGENT_STATE
}

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

# make_site: `site init` at $SITE and the server's TLS certificate $T/tls.crt.
make_site() {
	$STK site init --site "$SITE" >/dev/null
	dev_cert tls -days 400 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost
}

# serve_node DIR TAG MP_PORT CMG_PORT DAYS_OFFSET [extra serve args...]:
# `sitetoken serve` for the site in DIR (files $T/server$TAG.pid,
# $T/ready$TAG, $T/server$TAG.stderr), waiting until it listens; sets
# SERVED_PID, SERVED_MP_PORT and SERVED_CMG_PORT.
serve_node() {
	local dir=$1 tag=$2 mp=$3 cmg=$4 days=$5
	shift 5
	local ready=$T/ready$tag i
	rm -f "$ready"
	SITETOKEN_TIME_OFFSET=$((days * 86400)) $STK serve --site "$dir" \
		--mp 127.0.0.1:"$mp" --cmg 127.0.0.1:"$cmg" --tls-cert "$T/tls.crt" \
		--tls-key "$T/tls.key" --pid-file "$T/server$tag.pid" --ready-file "$ready" \
		"$@" 2>>"$T/server$tag.stderr" &
	SERVED_PID=$!
	for i in $(seq 100); do
		[ -s "$ready" ] && break
		kill -0 "$SERVED_PID" 2>/dev/null || die "server$tag did not start: $(cat "$T/server$tag.stderr")"
		sleep 0.1
	done
	[ -s "$ready" ] || die "server$tag not ready"
	SERVED_MP_PORT=$(. "$ready"; echo "$mp_port")
	SERVED_CMG_PORT=$(. "$ready"; echo "$cmg_port")
}

# start_server [DAYS_OFFSET] [extra serve args...]: the server of $SITE; sets
# SERVER_PID, mp_port, cmg_port, MP, CMG and HOSTPATH (the CMG's, as
# CCMHOSTNAME= wants it).
start_server() {
	local days=${1:-0}
	shift || true
	# A restart keeps the ports: agents remember their MP and CMG URLs.
	serve_node "$SITE" "" "${mp_port:-0}" "${cmg_port:-0}" "$days" "$@"
	SERVER_PID=$SERVED_PID
	# shellcheck disable=SC1091
	. "$T/ready"
	MP=http://127.0.0.1:$mp_port
	CMG=https://127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/$SITE_NUMBER
	HOSTPATH=127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/$SITE_NUMBER
	[ "$(cat "$T/server.pid")" = "$SERVER_PID" ] || fail "pid file does not hold the server pid"
}

# serve_site [DAYS_OFFSET] [extra serve args...]: make_site, then start_server.
serve_site() {
	make_site
	start_server "$@"
}

# agent STATE_NAME [DAYS_OFFSET] ARGS... (offset via the agent's own option)
agent() {
	local st=$1 days=$2
	shift 2
	$AGENT --state "$T/$st" --ca "$T/tls.crt" --clock-offset $((days * 86400)) "$@"
}

# new_bulk FILE [LIFETIME [bulk new options...]] -> token in FILE (0600), GUID on stdout
new_bulk() {
	local f=$1 life=${2:-60}
	shift $(($# < 2 ? $# : 2))
	( umask 077; $STK bulk new --lifetime "$life" "$@" --json >"$f.json"
	  printf '%s' "$(json 'd["token"]' <"$f.json")" >"$f" )
	json 'd["guid"]' <"$f.json"
	rm -f "$f.json"
}

count_devices() { sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices"; }
# Devices and bulk tokens, every column: equal before and after a refusal.
db_state() {
	sqlite3 "$SITE/site.db" "SELECT * FROM devices ORDER BY guid; SELECT * FROM bulk_tokens ORDER BY guid;" | sha256sum | cut -c1-16
}
audit_count() { sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit"; }
audit_last() { sqlite3 "$SITE/site.db" "SELECT outcome || ' ' || event || ' ' || detail FROM audit ORDER BY seq DESC LIMIT 1"; }

# refused "STATUS CODE" AUDITED WHAT -- post_json args...: that answer, no
# change to devices or bulk tokens, and one audit record "refused ... CODE:"
# (AUDITED=1, a site refusal) or none (0, refused before the site).
refused() {
	local want=$1 audited=$2 what=$3 s0 a0 got a1
	shift 4
	s0=$(db_state); a0=$(audit_count)
	got=$(post_json "$@")
	a1=$(audit_count)
	if [ "$got" != "$want" ]; then
		bad "$what: want '$want', got '$got' $(head -c 200 "$T/resp")"
	elif [ "$(db_state)" != "$s0" ]; then
		bad "$what: devices or bulk tokens changed"
	elif [ "$a1" != $((a0 + audited)) ]; then
		bad "$what: $((a1 - a0)) audit records, want $audited"
	elif [ "$audited" = 1 ] && [[ "$(audit_last)" != "refused "*" ${want#* }: "* ]]; then
		bad "$what: audit record '$(audit_last)'"
	else
		ok "$what: $want"
	fi
}

# No log may ever contain a full token (three base64url segments).
assert_no_tokens_in_logs() {
	local f
	for f in "$SITE"/logs/*.log "$T"/*/ccmsetup.log "$T"/*/ClientIDManagerStartup.log "$T/server.stderr"; do
		[ -e "$f" ] || continue
		if grep -Eq 'eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+' "$f"; then
			fail "a token appears in $f"
			return
		fi
	done
	ok "no token in any log"
}

# skip_missing WHY: a missing tool skips the test (77), except in CI, which
# installs every tool.
skip_missing() {
	if [ "${CI:-}" = true ]; then fail "$1 (CI installs it: ./run deps)"; fi
	echo "SKIP: $1"
	exit 77
}
_browser_has() {
	local p
	for p in "$@"; do [ -f "$STK_SRC/tests/browser/node_modules/$p/package.json" ] || return 1; done
}
# browser_deps NPM_PACKAGE...: node, and these packages installed in
# tests/browser from its lock file (one install at a time: the plain and
# sanitizer builds share the folder).
browser_deps() {
	command -v node >/dev/null || skip_missing "node is not installed (apt-get install nodejs npm)"
	_browser_has "$@" && return 0
	command -v npm >/dev/null || skip_missing "npm is not installed (apt-get install npm)"
	(
		flock 9
		_browser_has "$@" || (cd "$STK_SRC/tests/browser" &&
			npm install --no-audit --no-fund --loglevel=error) >"$T/npm.log" 2>&1
	) 9>"$STK_TEST_TMP/.npm-browser.lock" || {
		cat "$T/npm.log" >&2
		skip_missing "npm install of $* failed"
	}
}

# ---- swtpm ----
_swtpm_stop() { bash "$STK_SRC/swtpm-setup/swtpm-stop.sh" "$1" >/dev/null 2>&1 || true; }
# device_tpms: the state directories of the device's swtpm ($DEV_TPM) and of
# a second device TPM ($OTHER_TPM) under $T, both stopped after the server
# at exit; no TPM or PKCS#11 settings come from the caller's environment.
device_tpms() {
	DEV_TPM=$T/dev-tpm
	OTHER_TPM=$T/other-tpm
	unset SITETOKEN_TCTI SITETOKEN_PKCS11_PIN SITETOKEN_PKCS11_PIN_FILE SITETOKEN_PKCS11_MODULE
	on_exit cleanup_device_tpms
}
# swtpm_up DIR TCTI_VAR [EK_CA_VAR]: start the swtpm of DIR; its TCTI (and
# EK CA) in these variables, not in the environment.
swtpm_up() {
	eval "$(bash "$STK_SRC/swtpm-setup/swtpm-start.sh" "$1")"
	printf -v "$2" %s "$SITETOKEN_TCTI"
	[ -z "${3:-}" ] || printf -v "$3" %s "$SITETOKEN_EK_CA"
	unset SITETOKEN_TCTI SITETOKEN_EK_CA
}
cleanup_device_tpms() { stop_server; _swtpm_stop "$DEV_TPM"; _swtpm_stop "$OTHER_TPM"; }
# tpm_pair: two swtpm state directories $TPM_A and $TPM_B (start them with
# swtpm-setup/swtpm-start.sh), stopped at exit; $W is $T; no TPM key auth or
# site from the caller's environment.
tpm_pair() {
	: "${STK_SRC:?}"
	W=$T
	TPM_A=$T/tpm-a
	TPM_B=$T/tpm-b
	unset SITETOKEN_TPM_KEY_AUTH SITETOKEN_TPM_KEY_AUTH_FILE SITETOKEN_SITE
	on_exit '_swtpm_stop "$TPM_A"; _swtpm_stop "$TPM_B"'
}

# `. harness.sh server` (or tpm): set -e, then server_env (or tpm_pair).
if [ "${1:-}" = server ] || [ "${1:-}" = tpm ]; then
	set -e
	if [ "$1" = server ]; then server_env; else tpm_pair; fi
fi

# ---- a test's own PostgreSQL clusters ----
# For tests that kill, promote or starve the server and so cannot share the
# pg fixture's cluster. Loopback and a unix socket in $PGD only; stopped by
# the postmaster's pid at exit.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pgo_init() {
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] || die "PostgreSQL server not installed (postgresql)"
	PGD=$T/pg
	PGO_DIRS=()
	mkdir -p "$PGD"
	chmod 700 "$PGD"
	# As root the clusters run as "postgres", which must reach PGD (searchable
	# $T, nothing listable; every file in it is 0600 or public).
	if [ "$(id -u)" -eq 0 ]; then chmod 711 "$T"; chown postgres: "$PGD"; fi
	on_exit pgo_stop_all
}
# pgo_initdb NAME: a new cluster in $PGD/NAME (TCP logins need a password).
pgo_initdb() {
	as_pg "$PGBIN/initdb" -D "$PGD/$1" -U postgres --auth-local=trust --no-sync \
		--auth-host=scram-sha-256 -E UTF8 --no-instructions >"$PGD/$1.initdb.log" 2>&1 ||
		die "initdb: $(cat "$PGD/$1.initdb.log")"
}
# pgo_start NAME PORT|VAR [server options...]: listen on 127.0.0.1:PORT and
# $PGD. Given a variable name, on a free port, put in VAR: picked again when
# another process took it between free_port and the bind (a port race).
pgo_start() {
	local name=$1 port=$2 var='' try
	shift 2
	[[ $port == [0-9]* ]] || var=$port
	PGO_DIRS+=("$PGD/$name")
	for try in 1 2 3 4 5; do
		[ -z "$var" ] || port=$(free_port)
		as_pg "$PGBIN/pg_ctl" -D "$PGD/$name" -l "$PGD/$name.log" -w -t 60 \
			-o "-k $PGD -p $port -c listen_addresses=127.0.0.1 $*" start >/dev/null && break
		if [ -z "$var" ] || [ "$try" = 5 ] || ! has "could not bind" <"$PGD/$name.log"; then
			die "postgres $name: $(cat "$PGD/$name.log")"
		fi
	done
	[ -z "$var" ] || printf -v "$var" %s "$port"
}
# pgo_stop DATA_DIR: fast shutdown by the postmaster's pid.
pgo_stop() {
	local pidf=$1/postmaster.pid pid
	[ -f "$pidf" ] || return 0
	pid=$(head -n 1 "$pidf")
	kill -INT "$pid" 2>/dev/null || return 0
	for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}
pgo_stop_all() { local d; for d in "${PGO_DIRS[@]+"${PGO_DIRS[@]}"}"; do pgo_stop "$d" || true; done; }
# psu PORT SQL: as the superuser, on the socket, database sitetoken.
psu() { as_pg "$PGBIN/psql" -h "$PGD" -p "$1" -U postgres -X -qAt -v ON_ERROR_STOP=1 -c "$2" sitetoken; }
# pgo_make_db PORT: role and database "sitetoken"; the password goes to
# $T/pgpass (0600, PGPASSFILE) for TCP on 127.0.0.1, any port (a standby's
# too, which may start later).
pgo_make_db() {
	local port=$1 pw
	pw=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
	as_pg "$PGBIN/psql" -h "$PGD" -p "$port" -U postgres -X -q -v ON_ERROR_STOP=1 -f - postgres >/dev/null <<-SQL
		CREATE ROLE sitetoken LOGIN PASSWORD '$pw';
		CREATE DATABASE sitetoken OWNER sitetoken;
		SQL
	( umask 077; printf '127.0.0.1:*:sitetoken:sitetoken:%s\n' "$pw" >"$T/pgpass" )
	export PGPASSFILE=$T/pgpass
}
