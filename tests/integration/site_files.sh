#!/usr/bin/env bash
# Attacker 5 (local unprivileged user on the site host, SPEC threat model):
# cannot redirect the site's writes (group/other-writable or foreign site
# directory or logs/, a symlink planted in logs/), cannot swap the site key
# (a key file or site directory of another owner; a key that does not match
# the site certificate is never used to sign), cannot read secrets from a
# core dump (every process holding one has RLIMIT_CORE 0 and is not dumpable).
. "$(dirname "$0")/harness.sh"
S="$T/site"
export SITETOKEN_SITE="$S"
unset SITETOKEN_TIME_OFFSET
root=0; [ "$(id -u)" = 0 ] && root=1
expect_exit 0 "site init" -- "$ST" site init --key-type p256
audits() { sqlite3 "$S/site.db" "SELECT count(*) FROM audit"; }

# Site directory and logs/ writable by group or others, or not ours.
chmod 0770 "$S"
expect_refusal 3 "chmod 700" "group-writable site directory refused" -- "$ST" key list
chmod 0757 "$S"
expect_exit 3 "other-writable site directory refused" -- "$ST" bulk new --lifetime 5
chmod 0700 "$S"
chmod 0777 "$S/logs"
expect_refusal 3 "log directory" "world-writable logs/ refused" -- "$ST" key list
chmod 0700 "$S/logs"
expect_exit 0 "private again: accepted" -- "$ST" key list
if [ "$root" = 1 ]; then
  chown 65534 "$S"
  expect_exit 3 "site directory owned by another user refused" -- "$ST" key list
  expect_in "belongs to uid 65534" "$ERR" "says whose it is"
  chown 0 "$S"
  chown 65534 "$S/site.key"
  expect_exit 3 "site.key owned by another user refused" -- "$ST" bulk new --lifetime 5
  expect_in "belongs to uid 65534" "$ERR" "key file: says whose it is"
  chown 0 "$S/site.key"
fi

# A symlink planted in logs/: serve refuses to start, the target is untouched.
dev_cert tls -subj /CN=localhost
echo "precious" > "$T/victim"
rm -f "$S/logs/CCM_STS.log"
ln -s "$T/victim" "$S/logs/CCM_STS.log"
expect_exit 3 "serve with a symlink in logs/" -- timeout 20 "$ST" serve --mp 127.0.0.1:0 --cmg 127.0.0.1:0 \
  --tls-cert "$T/tls.crt" --tls-key "$T/tls.key"
expect_in "symbolic link" "$ERR" "says the log is a symbolic link"
expect_eq "$(cat "$T/victim")" "precious" "the symlink's target was not written"
rm -f "$S/logs/CCM_STS.log"

# Core dumps: serve and a CLI command holding the site open.
"$ST" serve --mp 127.0.0.1:0 --cmg 127.0.0.1:0 --tls-cert "$T/tls.crt" --tls-key "$T/tls.key" \
  --ready-file "$T/ready" 2>"$T/serve.err" &
spid=$!
for _ in $(seq 100); do [ -s "$T/ready" ] && break; sleep 0.1; done
expect_eq "$(awk '/Max core file size/ {print $5 $6}' "/proc/$spid/limits")" "00" "serve: RLIMIT_CORE 0"
kill -TERM "$spid"; wait "$spid"
mkfifo "$T/fifo"
"$ST" verify --type bulk <"$T/fifo" >/dev/null 2>&1 &
vpid=$!
exec 9>"$T/fifo"
sleep 0.3
expect_eq "$(awk '/Max core file size/ {print $5 $6}' "/proc/$vpid/limits")" "00" "CLI (verify): RLIMIT_CORE 0"
exec 9>&-
wait "$vpid" 2>/dev/null
# (not dumpable, PR_GET_DUMPABLE: tests/unit/test_file_backend.c)

# A site key that does not match the site certificate: never signs, exit 3,
# nothing recorded.
cp -p "$S/site.key" "$T/site.key.orig"
n0=$(audits)
rm -f "$S/site.key"
( umask 077; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$S/site.key" 2>/dev/null )
expect_exit 3 "bulk new with a replaced site key" -- "$ST" bulk new --lifetime 5
expect_in "does not match the site certificate" "$ERR" "says the key does not match the certificate"
expect_eq "$(audits)" "$n0" "no audit record written with the wrong key"
cp -p "$T/site.key.orig" "$S/site.key"
expect_exit 0 "the right key signs again" -- "$ST" bulk new --lifetime 5
finish
