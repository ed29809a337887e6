#!/usr/bin/env bash
# Bulk registration tokens through `sitetoken bulk` and BulkRegistrationTokenTool.
. "$(dirname "$0")/harness.sh"
S="$T/site"
export SITETOKEN_SITE="$S"
expect_exit 0 "site init p256" -- "$ST" site init --key-type p256
count() { sqlite3 "$S/site.db" "SELECT count(*) FROM bulk_tokens"; }
audits() { sqlite3 "$S/site.db" "SELECT count(*) FROM audit"; }

# Every bad lifetime: exit 2, a clear message, nothing recorded.
before=$(count); abefore=$(audits)
for v in 0 -1 -4320 10081 99999999999999999999999 abc 1.5 "" " 5" 0x10 1e3; do
  expect_exit 2 "bulk new --lifetime '$v' refused" -- "$ST" bulk new --lifetime "$v"
  [ -n "$ERR" ] || bad "no message for '$v'"
  [ -z "$OUT" ] || bad "output for refused lifetime '$v'"
done
expect_in "over the maximum of 10080" "$("$ST" bulk new --lifetime 10081 2>&1)" "max message"
expect_in "at least 1 minute" "$("$ST" bulk new --lifetime 0 2>&1)" "min message"
expect_eq "$(count) $(audits)" "$before $abefore" "refused lifetimes recorded nothing"

# Default 4320, max 10080, min 1.
expect_exit 0 "bulk new default" -- "$ST" bulk new --json
expect_eq "$(json 'str(d["exp"]-d["nbf"])+" "+str(d["lifetime_minutes"])' <<<"$OUT")" "259200 4320" "default lifetime 3 days"
expect_exit 0 "bulk new max" -- "$ST" bulk new --lifetime 10080 --json
expect_eq "$(json 'str(d["exp"]-d["nbf"])' <<<"$OUT")" "604800" "max lifetime 7 days"
expect_exit 0 "bulk new min (human output)" -- "$ST" bulk new --lifetime 1
expect_in "Token GUID:" "$OUT" "human output shows the GUID"
expect_in "(1 minutes)" "$OUT" "human output shows the lifetime"
expect_in "is not stored" "$OUT" "human output warns the token is not stored"

# BulkRegistrationTokenTool, original syntax.
expect_exit 0 "BulkRegistrationTokenTool /?" -- "$BRT" /?
expect_in "/lifetime" "$OUT" "/? prints usage"
expect_exit 0 "BulkRegistrationTokenTool /new" -- "$BRT" /new
expect_in "Valid to:" "$OUT" "/new prints validity"
expect_in "(4320 minutes)" "$OUT" "/new default lifetime"
tok_line=$(grep -E '^eyJ' <<<"$OUT")
[ -n "$tok_line" ] && ok "/new prints the token" || bad "/new printed no token"
expect_exit 0 "BulkRegistrationTokenTool /new /lifetime 60" -- "$BRT" /new /lifetime 60
expect_in "(60 minutes)" "$OUT" "/lifetime 60 honoured"
before=$(count)
expect_exit 2 "/lifetime 10081 refused" -- "$BRT" /new /lifetime 10081
expect_exit 2 "/lifetime without a value" -- "$BRT" /new /lifetime
expect_exit 2 "/lifetime without /new" -- "$BRT" /lifetime 5
expect_eq "$(count)" "$before" "tool refusals recorded nothing"

# Block, unblock, verify.
"$ST" bulk new --lifetime 120 --json > "$T/b.json"
guid=$(json 'd["guid"]' < "$T/b.json"); json 'd["token"]' < "$T/b.json" > "$T/tok"
expect_exit 0 "fresh token verifies" -- "$ST" verify --type bulk < "$T/tok"
expect_exit 0 "bulk block" -- "$ST" bulk block "$guid"
expect_exit 0 "bulk block again is harmless" -- "$ST" bulk block "$guid"
expect_refusal 1 "blocked" "blocked token refused" -- "$ST" verify --type bulk < "$T/tok"
"$ST" verify --json < "$T/tok" > "$T/v.json"
expect_eq "$(json 'd["code"]' < "$T/v.json")" "bulk_token_blocked" "--json refusal code"
expect_exit 0 "bulk unblock" -- "$ST" bulk unblock "$guid"
expect_exit 0 "bulk unblock again is harmless" -- "$ST" bulk unblock "$guid"
expect_exit 0 "unblocked token verifies" -- "$ST" verify --type bulk < "$T/tok"
expect_exit 1 "block unknown GUID" -- "$ST" bulk block 00000000-0000-4000-8000-000000000000
expect_in "no bulk registration token" "$ERR" "unknown GUID message"
expect_exit 2 "block a non-GUID" -- "$ST" bulk block nonsense
# Expired: the same token four hours later.
expect_exit 1 "expired token refused" -- env SITETOKEN_TIME_OFFSET=14400 "$ST" verify --type bulk < "$T/tok"
expect_in "expired" "$ERR" "reason says expired"

# Certificates view.
"$ST" bulk block "$guid" >/dev/null
expect_exit 0 "certs list" -- "$ST" certs list
expect_in "Site Signing" "$OUT" "site certificate listed"
expect_in "Bulk Registration Token" "$OUT" "bulk tokens listed"
expect_exit 0 "certs list --type bulk --json" -- "$ST" certs list --type bulk --json
expect_eq "$(json 'sorted(set(r["type"] for r in d))' <<<"$OUT")" "['Bulk Registration Token']" "--type bulk filters"
expect_eq "$(json 'len(d)' <<<"$OUT")" "$(count)" "every bulk token listed"
expect_eq "$(json '[r["status"] for r in d if r["id"]=="'"$guid"'"][0]' <<<"$OUT")" "Blocked" "blocked status shown"
expect_exit 0 "certs list --type site --json" -- "$ST" certs list --type site --json
expect_eq "$(json 'len(d)' <<<"$OUT")" "1" "--type site filters"
expect_exit 0 "sort by valid-to descending" -- "$ST" certs list --type bulk --sort -to --json
expect_eq "$(json 'str([r["exp"] for r in d]==sorted([r["exp"] for r in d], reverse=True))' <<<"$OUT")" "True" "sorted by valid-to desc"
expect_exit 0 "sort by status" -- "$ST" certs list --sort status --json
expect_eq "$(json 'str([r["status"] for r in d]==sorted([r["status"] for r in d]))' <<<"$OUT")" "True" "sorted by status"
expect_eq "$(json 'sorted(set(r["devices"] for r in d))' <<<"$OUT")" "[0]" "devices column (none registered yet)"
expect_exit 0 "sort by devices" -- "$ST" certs list --sort -devices
expect_in "Devices" "$OUT" "human output has a Devices column"
expect_exit 2 "bad sort column" -- "$ST" certs list --sort colour
expect_exit 2 "bad type filter" -- "$ST" certs list --type user
expect_exit 0 "expired status with clock jump" -- env SITETOKEN_TIME_OFFSET=700000 "$ST" certs list --type bulk --json
expect_eq "$(json 'sorted(set(r["status"] for r in d))' <<<"$OUT")" "['Blocked', 'Expired']" "all unblocked tokens expired after 8 days"

# Concurrent `bulk new` from several processes: no "database is locked", all recorded once.
before=$(count)
pids=()
for i in $(seq 1 12); do "$ST" bulk new --lifetime 5 --json > "$T/c$i.json" 2>"$T/c$i.err" & pids+=($!); done
fails=0; for p in "${pids[@]}"; do wait "$p" || fails=$((fails+1)); done
expect_eq "$fails" "0" "12 concurrent bulk new all succeeded"
cat "$T"/c*.err | has locked && bad "database is locked seen" || ok "no 'database is locked'"
expect_eq "$(count)" "$((before+12))" "12 records added"
expect_eq "$(cat "$T"/c*.json | json_guids=1 python3 -c 'import sys,json,re; print(len(set(re.findall(r"\"guid\": \"([0-9a-f-]+)\"", sys.stdin.read()))))')" "12" "12 distinct GUIDs"
expect_exit 0 "audit verify after concurrency" -- "$ST" audit verify
finish
