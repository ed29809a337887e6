# A test's own throw-away PostgreSQL clusters (sourced after server_lib.sh),
# for tests that kill, promote or starve the server and so cannot share the
# pg fixture's cluster. Loopback and a unix socket in $PGD only; stopped by
# the postmaster's pid (pgo_stop_all, from the test's exit trap).
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] || fail "PostgreSQL server not installed (postgresql)"
PGD=$T/pg
PGO_DIRS=()
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mkdir -p "$PGD"
chmod 700 "$PGD"
# As root the clusters run as "postgres", which must reach PGD (searchable
# $T, nothing listable; every file in it is 0600 or public).
if [ "$(id -u)" -eq 0 ]; then chmod 711 "$T"; chown postgres: "$PGD"; fi

# pgo_initdb NAME: a new cluster in $PGD/NAME (TCP logins need a password).
pgo_initdb() {
	as_pg "$PGBIN/initdb" -D "$PGD/$1" -U postgres --auth-local=trust --no-sync \
		--auth-host=scram-sha-256 -E UTF8 --no-instructions >"$PGD/$1.initdb.log" 2>&1 ||
		fail "initdb: $(cat "$PGD/$1.initdb.log")"
}
# pgo_start NAME PORT [server options...]: listen on 127.0.0.1:PORT and $PGD.
pgo_start() {
	local name=$1 port=$2; shift 2
	PGO_DIRS+=("$PGD/$name")
	as_pg "$PGBIN/pg_ctl" -D "$PGD/$name" -l "$PGD/$name.log" -w -t 60 \
		-o "-k $PGD -p $port -c listen_addresses=127.0.0.1 $*" start >/dev/null ||
		fail "postgres $name: $(cat "$PGD/$name.log")"
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
# $T/pgpass (0600, PGPASSFILE) for TCP on every port given after PORT.
pgo_make_db() {
	local port=$1 pw p; shift
	pw=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
	as_pg "$PGBIN/psql" -h "$PGD" -p "$port" -U postgres -X -q -v ON_ERROR_STOP=1 -f - postgres >/dev/null <<-SQL
		CREATE ROLE sitetoken LOGIN PASSWORD '$pw';
		CREATE DATABASE sitetoken OWNER sitetoken;
		SQL
	( umask 077; for p in "$port" "$@"; do printf '127.0.0.1:%s:sitetoken:sitetoken:%s\n' "$p" "$pw"; done > "$T/pgpass" )
	export PGPASSFILE=$T/pgpass
}
