#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the site store tests.
#   pg_cluster.sh start DIR   initdb in DIR/data; listen on a unix socket in
#                             DIR and on 127.0.0.1 at a free port; make role
#                             and database "sitetoken"
#   pg_cluster.sh stop DIR    stop it by the postmaster's pid, remove DIR
# Clients use the libpq service file DIR/pg_service.conf (PGSERVICEFILE):
#   service=sitetoken      the unix socket; trust, safe here: the socket
#                          lives in a 0700 directory of the test user
#   service=sitetoken_tcp  TCP to 127.0.0.1 with a SCRAM password, which is
#                          in DIR/pgpass (0600, PGPASSFILE), as a node on
#                          another machine would connect
# As root, the server runs as the "postgres" user (PostgreSQL refuses root)
# and DIR is handed to it.
set -euo pipefail
cmd=${1:?start|stop} dir=${2:?DIR}

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
	BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1) || true
	[ -n "$BIN" ] && [ -x "$BIN/initdb" ] ||
		{ echo "pg_cluster: PostgreSQL server not installed (postgresql)" >&2; exit 1; }
	if [ -f "$dir/data/postmaster.pid" ]; then
		"$0" stop "$dir" || true
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	chmod 700 "$dir"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$dir"
		runuser -u postgres -- test -w "$dir" || {
			echo "pg_cluster: the postgres user cannot reach $dir: make its parent" \
				"directories searchable (chmod o+x) or run the tests as a non-root user" >&2
			exit 1
		}
	fi
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	as_pg "$BIN/initdb" -D "$dir/data" -U postgres --auth-local=trust \
		--auth-host=scram-sha-256 -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; exit 1; }
	as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
		start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
	# The password goes to psql on stdin and to the 0600 pgpass file only.
	pw=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
	as_pg "$BIN/psql" -h "$dir" -p "$port" -U postgres -X -q -v ON_ERROR_STOP=1 \
		-f - postgres >/dev/null <<-SQL
		CREATE ROLE sitetoken LOGIN PASSWORD '$pw';
		CREATE DATABASE sitetoken OWNER sitetoken;
		SQL
	( umask 077; printf '127.0.0.1:%s:sitetoken:sitetoken:%s\n' "$port" "$pw" > "$dir/pgpass" )
	unset pw
	for svc in "sitetoken $dir" "sitetoken_tcp 127.0.0.1"; do
		# shellcheck disable=SC2086 # "NAME HOST"
		printf '[%s]\nhost=%s\nport=%s\ndbname=sitetoken\nuser=sitetoken\n' $svc "$port"
	done >"$dir/pg_service.conf"
	echo "pg_cluster: started pid $(head -n 1 "$dir/data/postmaster.pid") on $dir and 127.0.0.1:$port"
	;;
stop)
	pidf=$dir/data/postmaster.pid
	if [ -f "$pidf" ]; then
		pid=$(head -n 1 "$pidf")
		# SIGINT: fast shutdown (roll back sessions, stop cleanly).
		kill -INT "$pid" 2>/dev/null || true
		for _ in $(seq 300); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "pg_cluster: postmaster $pid did not stop" >&2
			exit 1
		fi
		echo "pg_cluster: stopped pid $pid"
	fi
	rm -rf "$dir"
	;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
