#!/usr/bin/env bash
# A new user's first steps (issue 15, list item 10): each message says what
# happened and what to do. Before the fixes: an expired bulk token read as
# "the client token expired", a TLS failure without --ca gave no hint,
# status showed negative ages, BulkRegistrationTokenTool refused the --site
# its own messages suggest, and `key list` columns drifted with long names.
TEST_NAME=newuser
. "$(dirname "$0")/harness.sh"
set -e
server_env
make_site

# BulkRegistrationTokenTool: without a site it says "--site DIR"; that works.
expect_refusal 2 "--site DIR" "BulkRegistrationTokenTool without a site" -- \
	env -u SITETOKEN_SITE "$BRT" /new
env -u SITETOKEN_SITE "$BRT" /new --site "$SITE" /lifetime 5 >"$T/brt.out" 2>&1 \
	&& grep -q "eyJ" "$T/brt.out" && ok "BulkRegistrationTokenTool --site DIR works as its message suggests" \
	|| fail "BRT --site: $(cat "$T/brt.out")"
env -u SITETOKEN_SITE "$BRT" /new --site="$SITE" /lifetime 5 >/dev/null 2>&1 && ok "and --site=DIR" || fail "BRT --site=DIR"

# An expired *bulk* token: the agent names the bulk token, not the client one.
new_bulk "$T/bulk" 1 >/dev/null
start_server 1
CCMH="127.0.0.1:$cmg_port/CCM_Proxy_MutualAuth/$SITE_NUMBER"
rc=0; agent dev 0 install /mp:"$CMG" CCMHOSTNAME="$CCMH" /regtoken:- <"$T/bulk" >"$T/inst.out" 2>&1 || rc=$?
grep -q "bulk registration token expired" "$T/inst.out" && ! grep -q "client token expired" "$T/inst.out" \
	&& ok "expired bulk token: the agent says the bulk token expired (exit $rc)" \
	|| fail "expired bulk token message: $(cat "$T/inst.out")"
stop_server

# The agent without --ca against the site's own certificate: a hint.
start_server 0
new_bulk "$T/bulk2" >/dev/null
rc=0; $AGENT --state "$T/noca" install /mp:"$CMG" CCMHOSTNAME="$CCMH" /regtoken:- <"$T/bulk2" >"$T/noca.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q -- "give --ca FILE" "$T/noca.out" && ok "TLS failure without --ca: the agent hints at --ca" \
	|| fail "no --ca hint (exit $rc): $(cat "$T/noca.out")"

# status with a clock behind the issue time: no negative ages.
agent dev 0 install /mp:"$CMG" CCMHOSTNAME="$CCMH" /regtoken:- <"$T/bulk2" >/dev/null 2>&1 || fail "install"
out=$(agent dev -2 status)
grep -q -- "-[0-9]* days" <<<"$out" && fail "negative age in status: $out"
grep -q "0 days old" <<<"$out" && ok "status with a clock behind: 0 days old, no negative age" || fail "status: $out"
[ "$(agent dev -2 status --json | json_get age_days)" = 0 ] || fail "status --json age_days negative"
out=$(agent dev 95 status)
grep -q "expired [0-9]* days ago" <<<"$out" && ! grep -q -- "-[0-9]* days" <<<"$out" \
	&& ok "status of an expired token: 'expired N days ago'" || fail "status expired: $out"
stop_server

# key list: every row's Status column starts where its header does.
$STK key rotate >/dev/null
$STK key list >"$T/kl"
col=$(head -1 "$T/kl" | awk '{print index($0, "Status")}')
bad=$(tail -n +2 "$T/kl" | awk -v c="$col" 'substr($0, c, 6) !~ /^(active|retiri|retire)/' | wc -l)
expect_eq "$bad" 0 "key list: columns align"
