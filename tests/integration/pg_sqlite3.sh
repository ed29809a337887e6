#!/usr/bin/env bash
# A `sqlite3` stand-in (put first on PATH as "sqlite3" by tests/pg.cmake) so
# the integration tests that read the site database with
#   sqlite3 DIR/site.db "SELECT ..."
# run unchanged on a PostgreSQL site: when DIR has a site.conf and no
# site.db, the query goes to the site's schema through psql, with sqlite3's
# default output (no header, '|' between columns). Anything else goes to
# the real sqlite3.
set -euo pipefail
if [ $# -eq 2 ] && [ ! -e "$1" ] && [ -f "$(dirname -- "$1")/site.conf" ]; then
	conf=$(dirname -- "$1")/site.conf
	conn=$(sed -n 's/^db=//p' "$conf")
	schema=$(sed -n 's/^schema=//p' "$conf")
	exec psql "$conn" -X -q -A -t -v ON_ERROR_STOP=1 \
		-c "SET search_path TO \"$schema\"" -c "$2"
fi
self=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
IFS=: read -r -a dirs <<<"$PATH"
for d in "${dirs[@]}"; do
	[ -x "$d/sqlite3" ] || continue
	[ "$(readlink -f -- "$d/sqlite3")" = "$(readlink -f -- "$0")" ] && continue
	exec "$d/sqlite3" "$@"
done
echo "sqlite3: not found" >&2
exit 127
