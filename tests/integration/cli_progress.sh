#!/usr/bin/env bash
# Long work shows progress on stderr when stderr is a terminal (a pty made
# by script(1)), and nothing extra when it is not (scripts, cron, systemd):
# audit verify over a log of a few hundred records, and the schema
# migrations of site init.
. "$(dirname "$0")/harness.sh"
set -e
export SITETOKEN_SITE=$T/site
unset SITETOKEN_TIME_OFFSET
command -v script >/dev/null || fail "script(1) missing (bsdutils)"

# on_tty CMD...: run with stdin/stdout/stderr on a pty; output in $T/tty.out
on_tty() { script -qec "$(printf '%q ' "$@")" /dev/null > "$T/tty.out" 2>&1 < /dev/null; }

on_tty "$STK" site init --key-type p256
grep -q 'migrating the site database: schema version [0-9]*/[0-9]*' "$T/tty.out" ||
	fail "site init on a terminal shows no migration progress: $(cat -v "$T/tty.out")"
grep -q "Site .* initialised" "$T/tty.out" || fail "site init output"
ok "site init on a terminal: migration progress"

for _ in $(seq 40); do "$STK" bulk new --lifetime 5 > /dev/null; done
for _ in $(seq 20); do "$STK" bulk block 00000000-0000-0000-0000-000000000000 2>/dev/null || true; done
n=$(sqlite3 "$T/site/site.db" 'SELECT count(*) FROM audit')
[ "$n" -ge 41 ] || fail "only $n audit records"

"$STK" audit verify > "$T/plain.out" 2> "$T/plain.err" || fail "audit verify"
[ ! -s "$T/plain.err" ] || fail "audit verify wrote to a non-terminal stderr: $(cat -v "$T/plain.err")"
grep -q "Audit log intact: $n records" "$T/plain.out" || fail "audit verify output"
ok "audit verify in a script: no progress, stderr empty"

on_tty "$STK" audit verify
grep -q 'audit verify: records checked: [0-9]' "$T/tty.out" ||
	fail "audit verify on a terminal shows no progress: $(cat -v "$T/tty.out")"
# The line is cleared before the result, which reads as without a terminal.
tr '\r' '\n' < "$T/tty.out" | sed 's/\x1b\[K//g' | has -x "$(cat "$T/plain.out")" ||
	fail "the result line is garbled on a terminal: $(cat -v "$T/tty.out")"
ok "audit verify on a terminal: progress, then the clean result line"

# --json output stays parseable whatever stderr is.
"$STK" audit verify --json 2>/dev/null | python3 -c 'import json,sys; assert json.load(sys.stdin)["intact"]'
ok "audit verify --json unchanged"
