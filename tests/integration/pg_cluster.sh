#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the site store tests.
#   pg_cluster.sh start DIR   initdb in DIR/data, listen on a unix socket in
#                             DIR only (no TCP), make database "sitetoken"
#   pg_cluster.sh stop DIR    stop it by the postmaster's pid, remove DIR
# Connection string for clients: "host=DIR port=5432 dbname=sitetoken
# user=postgres". Trust authentication is safe here: the socket lives in a
# 0700 directory of the user running the tests. As root, the server runs as
# the "postgres" user (PostgreSQL refuses root) and DIR is handed to it.
set -euo pipefail
cmd=${1:?start|stop} dir=${2:?DIR}
PORT=5432

pgbin() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$d" ] && [ -x "$d/initdb" ] || { echo "pg_cluster: PostgreSQL server not installed (postgresql)" >&2; exit 1; }
	echo "$d"
}
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
	BIN=$(pgbin)
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
	as_pg "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
		--no-instructions >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
	as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-k $dir -p $PORT -c listen_addresses='' -c fsync=off -c max_connections=200" \
		start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
	as_pg "$BIN/createdb" -h "$dir" -p $PORT -U postgres sitetoken
	echo "pg_cluster: started pid $(head -n 1 "$dir/data/postmaster.pid") on $dir"
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
