#!/usr/bin/env bash
# Store fault: the file system of a SQLite site fills up while the server
# registers devices. The site directory lives on a small tmpfs mounted by
# the test in its own mount namespace (and user namespace when not root); a filler file
# takes the last byte. What users see: registrations refused with 500 (the
# server stays up), `bulk new` exits 3 saying the disk is full and prints no
# token; nothing is half-written (integrity_check, every device row has its
# audit record, audit verify); and once space returns the same server
# registers again and `bulk new` works.
if [ -z "${STK_IN_MNTNS:-}" ]; then
	# A private mount namespace: the tmpfs is gone with the test, even if it
	# is killed. Not root: a user namespace too, where we may mount it.
	if [ "$(id -u)" -eq 0 ]; then
		STK_IN_MNTNS=1 exec unshare -m --propagation private bash "$0" "$@"
	else
		STK_IN_MNTNS=1 exec unshare -rm bash "$0" "$@"
	fi
fi
TEST_NAME=fault_diskfull
. "$(dirname "$0")/harness.sh"
set -e
server_env
FS=$T/fs
mkdir -p "$FS"
mount -t tmpfs -o size=2m,mode=0700 sitetoken-test "$FS" || fail "cannot mount a tmpfs on $FS"
on_exit 'stop_server || true; umount "$FS" 2>/dev/null || umount -l "$FS" 2>/dev/null || true'
SITE=$FS/site
export SITETOKEN_SITE=$SITE
unset SITETOKEN_DB
make_site
start_server 0
agent first 0 register --mp "$MP" >/dev/null || fail "registration before the disk fills"
bulk_count() { sqlite3 "$SITE/site.db" "SELECT count(*) FROM bulk_tokens"; }
nbulk=$(bulk_count)

# Fill the file system to the last block.
dd if=/dev/zero of="$FS/filler" bs=16k 2>/dev/null || true
[ "$(df --output=avail -B1 "$FS" | tail -1 | tr -d ' ')" -lt 16384 ] || fail "the file system did not fill: $(df -h "$FS")"
# Registrations go on until SQLite needs a page it cannot get (the WAL may
# have room left from before); then each is refused.
acked=1 refused=0
for i in $(seq 400); do
	if agent "d$i" 0 register --mp "$MP" >/dev/null 2>"$T/err"; then
		acked=$((acked + 1))
	else
		grep -q "HTTP 500" "$T/err" || fail "registration on a full disk: $(cat "$T/err")"
		refused=$((refused + 1))
		[ "$refused" -ge 3 ] && break
	fi
done
[ "$refused" -ge 3 ] || fail "no registration refused on a full disk after $acked"
kill -0 "$SERVER_PID" || fail "the server died on a full disk"
ok "disk full: $refused registrations refused with HTTP 500 after $acked acknowledged; the server is up"
grep -q "disk is full" "$T/server.stderr" "$SITE"/logs/*.log 2>/dev/null ||
	echo "# note: no log could say so (the logs are on the full disk too): $(tail -2 "$T/server.stderr")"

expect_refusal 3 "disk is full" "bulk new on a full disk" -- $STK bulk new --lifetime 60
[[ $OUT != *eyJ* ]] || fail "bulk new printed a token it could not record"
expect_eq "$(bulk_count)" "$nbulk" "bulk new on a full disk recorded nothing"

# Nothing half-written.
[ "$(sqlite3 "$SITE/site.db" "PRAGMA integrity_check")" = ok ] || fail "integrity_check"
[ "$(count_devices)" = "$acked" ] || fail "$(count_devices) device rows for $acked acknowledged registrations"
[ "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices WHERE guid NOT IN
	(SELECT subject FROM audit WHERE event = 'device.register.mp' AND outcome = 'ok')")" = 0 ] ||
	fail "a device row without its audit record"
ok "nothing partial: integrity_check ok, $acked device rows = acknowledged registrations, each with its audit record"

# Space returns: the same server and the CLI work again.
rm -f "$FS/filler"
expect_exit 0 "registration after space returned" -- agent again 0 register --mp "$MP"
expect_exit 0 "bulk new after space returned" -- $STK bulk new --lifetime 60 --json
expect_eq "$(bulk_count)" $((nbulk + 1)) "bulk token recorded"
stop_server
$STK audit verify >"$T/verify" 2>&1 || fail "audit verify: $(cat "$T/verify")"
ok "space back: the same server registers, bulk new works, audit verify: $(tail -1 "$T/verify")"
