#!/usr/bin/env bash
# `sitetoken serve --config FILE` with the packaged example config, the
# command line overriding the file, bad config files refused with the file
# and line, and SIGHUP reopening the logs the way logrotate needs.
TEST_NAME=serve_ops
. "$(dirname "$0")/harness.sh"
set -e
server_env
make_site

# The example config (dist/serve.conf, installed in the package's examples)
# with this test's paths and free loopback ports.
CONF=$T/serve.conf
sed -e "s#^site = .*#site = $SITE#" -e "s#^tls-cert = .*#tls-cert = $T/tls.crt#" \
	-e "s#^tls-key = .*#tls-key = $T/tls.key#" -e 's#^mp = .*#mp = 127.0.0.1:0#' \
	-e 's#^cmg = .*#cmg = 127.0.0.1:0#' -e 's#^admin = .*#admin = "127.0.0.1:0"#' \
	"$STK_SRC/dist/serve.conf" > "$CONF"
printf 'pid-file = %s\nready-file = %s   # trailing comment\nmp-tls = no\n' \
	"$T/conf.pid" "$T/conf.ready" >> "$CONF"
chmod 600 "$CONF"
grep -q '^cmg = 127.0.0.1:0$' "$CONF" || fail "example config rewrite"

# Only --config and --ready-file on the command line: the rest from the file;
# the command line's --ready-file wins over the file's.
env -u SITETOKEN_SITE "$STK" serve --config "$CONF" --ready-file "$T/ready" 2>"$T/server.stderr" &
SERVER_PID=$!
for _ in $(seq 100); do [ -s "$T/ready" ] && break; kill -0 "$SERVER_PID" || fail "server died: $(cat "$T/server.stderr")"; sleep 0.1; done
[ -s "$T/ready" ] || fail "not ready"
[ ! -e "$T/conf.ready" ] || fail "the config's ready-file was used over the command line's"
[ "$(cat "$T/conf.pid")" = "$SERVER_PID" ] || fail "pid-file from the config not written"
# shellcheck disable=SC1091
. "$T/ready"
[ "$admin_port" -gt 0 ] || fail "admin listener from the config (quoted value) not started"
curl -sf "http://127.0.0.1:$mp_port/sitetoken/v1/health" | has '"status": *"ok"' ||
	fail "MP (plain HTTP: mp-tls = no) not serving"
ok "serve --config: example config runs; command line overrides the file"

# SIGHUP reopens the logs: logrotate renames the file, signals, and the
# next line goes to a new file under the old name.
CMG=https://127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/$SITE_NUMBER
refuse() { curl -s -o /dev/null --cacert "$T/tls.crt" "$CMG/sitetoken/v1/policy" || true; }
LOG=$SITE/logs/ClientAuth.log
refuse
grep -q 'Refused policy' "$LOG" || fail "no refusal in ClientAuth.log: $(cat "$LOG")"
mv "$LOG" "$LOG.1"
before=$(wc -l < "$LOG.1")
refuse
[ "$(wc -l < "$LOG.1")" -gt "$before" ] || fail "without SIGHUP the server should still write to the renamed file"
[ ! -e "$LOG" ] || fail "log recreated without SIGHUP"
before=$(wc -l < "$LOG.1")
kill -HUP "$SERVER_PID"
sleep 0.2
refuse
kill -0 "$SERVER_PID" || fail "SIGHUP stopped the server"
[ -s "$LOG" ] || fail "SIGHUP: ClientAuth.log not reopened"
grep -q 'Refused policy' "$LOG" || fail "the new log lacks the new line"
[ "$(wc -l < "$LOG.1")" -eq "$before" ] || fail "a line after SIGHUP went to the renamed file"
[ "$(stat -c %a "$LOG")" = 640 ] || fail "reopened log mode $(stat -c %a "$LOG")"
ok "SIGHUP reopens the logs (rotated file untouched, new file 0640)"
# A log path turned into a symlink (a local user redirecting the site's
# writes, threat 5) is not followed on reopen: the old descriptor stays.
mv "$LOG" "$LOG.2"
ln -s "$T/elsewhere" "$LOG"
before=$(wc -l < "$LOG.2")
kill -HUP "$SERVER_PID"
sleep 0.2
refuse
[ ! -e "$T/elsewhere" ] || fail "reopen followed a symlink"
[ "$(wc -l < "$LOG.2")" -gt "$before" ] || fail "line lost when the reopen was refused"
ok "reopen does not follow a symlink (threat 5) and keeps logging to the old file"
rm -f "$LOG" "$LOG.1" "$LOG.2"

# The packaged logrotate file, pointed at this site and this server (the
# signal goes to the pid instead of through systemctl): a forced rotation
# moves the logs away and the server carries on in new files.
kill -HUP "$SERVER_PID"; sleep 0.2; refuse
[ -s "$LOG" ] || fail "log not back after SIGHUP"
sed -e "s#/var/lib/sitetoken/logs#$SITE/logs#" -e 's#^\(\s*\)create .*#\1create 0640#' \
	-e '/^\s*su /d' -e "s#systemctl kill .*#kill -HUP $SERVER_PID#" \
	"$STK_SRC/dist/sitetoken.logrotate" > "$T/logrotate.conf"
grep -q "kill -HUP $SERVER_PID" "$T/logrotate.conf" || fail "logrotate.conf rewrite"
logrotate -f -s "$T/logrotate.state" "$T/logrotate.conf" 2>"$T/lr.err" || fail "logrotate: $(cat "$T/lr.err")"
[ -s "$LOG.1" ] || fail "logrotate did not rotate ClientAuth.log"
before=$(wc -l < "$LOG.1")
sleep 0.2; refuse
grep -q 'Refused policy' "$LOG" || fail "no line in the new log after logrotate"
[ "$(wc -l < "$LOG.1")" -eq "$before" ] || fail "the server still writes to the rotated file"
ok "the packaged logrotate file rotates the logs and the server follows"
stop_server
[ ! -e "$T/conf.pid" ] || fail "pid file from the config not removed"

# Bad config files: a clear message naming file and line, exit 2, no server.
while IFS='|' read -r name mode content msg; do
	printf '%b\n' "$content" >"$T/$name.conf"
	chmod "$mode" "$T/$name.conf"
	expect_refusal 2 "$msg" "bad config $name" -- \
		timeout 10 "$STK" serve --config "$T/$name.conf" --ready-file "$T/bad.ready"
	[ ! -e "$T/bad.ready" ] || fail "$name: a server started"
done <<'EOF'
unknown|600|tls-cert = a\nlisten = 1.2.3.4:1|unknown.conf:2: unknown option 'listen'
novalue|600|tls-cert =|novalue.conf:1: 'tls-cert' needs a value
flagvalue|600|mp-tls = maybe|flagvalue.conf:1: 'mp-tls' is a flag
nested|600|config = /etc/passwd|nested.conf:1: unknown option 'config'
writable|620|tls-cert = a|must not be writable by group or others
EOF
expect_refusal 2 "cannot read config $T/nonexistent.conf" "missing config" -- "$STK" serve --config "$T/nonexistent.conf"
expect_refusal 2 "spell out --config" "abbreviated --config" -- "$STK" serve --conf "$T/unknown.conf"
