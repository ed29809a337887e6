#!/usr/bin/env bash
# The syslog copy of audit checkpoints (SITETOKEN_AUDIT_SYSLOG): one
# LOG_AUTHPRIV line per checkpoint, from the CLI and the library alike,
# received here on a datagram socket of the test's own (as journald or
# rsyslog receive /dev/log). The attacker: SPEC threat model 3 who also
# holds the site directory (root on the node, file key: the README's "what
# audit verify does not detect"). It cuts the log with its checkpoints and
# puts back an older audit.anchor: `audit verify` on the host passes, and
# the README's check against the off-host copy reports the cut.
. "$(dirname "$0")/harness.sh"
S="$T/site"
export SITETOKEN_SITE="$S"
unset SITETOKEN_TIME_OFFSET SITETOKEN_AUDIT_SYSLOG
SOCK="$T/log.sock" LOG="$T/syslog.txt"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2], "w").close()
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(4096).decode() + "\n")
        f.flush()' "$SOCK" "$LOG" &
LISTENER=$!
on_exit "kill $LISTENER"
wait_for 20 test -e "$LOG" || { bad "syslog listener did not start"; finish; exit 1; }
db() { sqlite3 "$S/site.db" "$1"; }
# lines: the checkpoint lines received so far. A marker datagram sent now
# queues behind every line already sent (one socket): wait for it, not a sleep.
lines() {
  local mark
  mark="sync $(date +%s%N)"
  python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(sys.argv[2].encode(), sys.argv[1])' "$SOCK" "$mark"
  wait_for 20 grep -qxF "$mark" "$LOG" || bad "the syslog listener did not get the marker in 20 s"
  grep -c 'sitetoken audit checkpoint' "$LOG"
}

export SITETOKEN_AUDIT_SYSLOG="$SOCK"
"$ST" site init --key-type p256 >/dev/null || { bad "init"; finish; exit 1; }
GUID=$("$ST" site show --json | json 'd["site"]')
for _ in $(seq 1 40); do "$ST" bulk new --lifetime 5 >/dev/null; done
expect_eq "$(lines)" "$(db 'SELECT count(*) FROM audit_checkpoints')" "one syslog line per checkpoint (site init and bulk new)"
# Each line: LOG_AUTHPRIV|LOG_NOTICE (<85>), the checkpoint's seq, head hash, kid.
python3 - "$LOG" "$GUID" "$(db "SELECT seq || ' ' || head_hash || ' ' || kid FROM audit_checkpoints ORDER BY seq")" <<'PY' && ok "each line is <85> (authpriv.notice) with the site, seq, head hash and kid of its checkpoint" || bad "syslog lines do not match the checkpoints: $(cat "$LOG")"
import re, sys
lines = [l for l in open(sys.argv[1]) if "sitetoken audit checkpoint" in l]
want = [r.split() for r in sys.argv[3].splitlines()]
assert len(lines) == len(want) >= 3, (lines, want)
for l, (seq, h, kid) in zip(lines, want):
    m = re.match(r"<85>\w{3} [ \d]\d \d\d:\d\d:\d\d sitetoken\[\d+\]: sitetoken audit checkpoint "
                 r"site=(\S+) node=main seq=(\d+) hash=([0-9a-f]{64}) kid=(\S+) at=\d+ counter=0$", l.rstrip("\n"))
    assert m and m.groups() == (sys.argv[2], seq, h, kid), (l, seq, h, kid)
PY

# The README's check against the off-host copy (section "The syslog copy").
offhost_check() {
  local last seq hash
  last=$(grep "sitetoken audit checkpoint site=$GUID " "$LOG" | tail -n 1)
  seq=${last##* seq=}; seq=${seq%% *}; hash=${last##* hash=}; hash=${hash%% *}
  "$ST" audit show --json | python3 -c 'import json,sys; s,h=int(sys.argv[1]),sys.argv[2]; sys.exit(0 if any(r["seq"]==s and r["hash"]==h for r in json.load(sys.stdin)) else 1)' "$seq" "$hash"
}
offhost_check && ok "intact log: the newest checkpoint syslog saw is in the log with its hash" || bad "check fails on an intact log"

# The attacker with the database and the site directory: keep the anchor
# of checkpoint 17, let the site go on to checkpoint 33, then cut the log
# above 20 with its checkpoints and put the old anchor back.
"$ST" audit verify >/dev/null || bad "verify before the attack"
db "SELECT max(seq) FROM audit_checkpoints" | has -x 33 || bad "checkpoints: $(db 'SELECT seq FROM audit_checkpoints')"
cp "$S/audit.anchor" "$T/anchor.33"
sed -e "s/^seq=.*/seq=17/" -e "s/^hash=.*/hash=$(db 'SELECT head_hash FROM audit_checkpoints WHERE seq = 17')/" \
  "$T/anchor.33" > "$S/audit.anchor"
db "DELETE FROM audit WHERE seq > 20; DELETE FROM audit_checkpoints WHERE seq > 20"
expect_exit 0 "on the host, audit verify passes over the cut log (anchor rolled back with it)" -- \
  env SITETOKEN_AUDIT_SYSLOG= "$ST" audit verify
if offhost_check; then bad "the off-host check missed the cut"; else ok "the off-host copy shows the cut: checkpoint 33 is no longer in the log"; fi

# Off when unset: no line; a socket that is not there: the checkpoint is
# still made (best effort), with a warning.
n=$(lines)
SITETOKEN_AUDIT_SYSLOG= "$ST" audit checkpoint >/dev/null 2>&1
expect_eq "$(lines)" "$n" "SITETOKEN_AUDIT_SYSLOG unset: no line"
c0=$(db 'SELECT count(*) FROM audit_checkpoints')
"$ST" bulk new --lifetime 5 >/dev/null
expect_exit 0 "a checkpoint with the syslog socket missing" -- env SITETOKEN_AUDIT_SYSLOG="$T/nothing.sock" "$ST" audit checkpoint
expect_in "not copied to syslog" "$ERR" "says the copy failed"
expect_eq "$(db 'SELECT count(*) FROM audit_checkpoints')" "$((c0 + 1))" "and the checkpoint is made"
finish
