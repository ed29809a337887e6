#!/usr/bin/env bash
# Admin console API (sitetoken serve --admin): bearer secret, 401 + audit
# record without it, security headers, the CLI's lifetime rules, list with
# type filter and sort, new / block / unblock (a blocked token is refused by
# the CMG), audit trail of one token, devices (filters, block, allow-cmg),
# settings, the audit log and its verification, keys, stats, secret
# rotation, loopback only.
TEST_NAME=console_api
. "$(dirname "$0")/harness.sh" server
serve_site 0 --admin 127.0.0.1:0
[ -n "${admin_port:-}" ] && [ "$admin_port" -gt 0 ] || fail "no admin_port in the ready file"
ADMIN=https://127.0.0.1:$admin_port
SECRET=$($STK admin token)
[ "$(stat -c %a "$SITE/admin.token")" = 600 ] || fail "admin.token mode"
[ ${#SECRET} = 43 ] || fail "secret length ${#SECRET}"

# adm METHOD PATH [curl args] -> body, then the status on the last line.
# The secret goes through a 0600 header file, never argv.
adm() {
	local method=$1 path=$2; shift 2
	( umask 077; printf 'Authorization: Bearer %s' "$SECRET" > "$T/adm.hdr" )
	http "$method" "$ADMIN$path" -H @"$T/adm.hdr" "$@"
}
anon() { # anon METHOD PATH [curl args]: no credentials
	local method=$1 path=$2; shift 2
	http "$method" "$ADMIN$path" "$@"
}
audit_count() { sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE $1"; }
# api_bulk FILE BODY: POST /api/v1/bulk answers 201; the token in FILE, the
# answer in $T/new.json (both 0600).
api_bulk() {
	local res
	res=$(adm POST /api/v1/bulk --data "$2")
	[ "$(http_status <<<"$res")" = 201 ] || fail "new bulk token $2: $res"
	( umask 077; http_body <<<"$res" > "$T/new.json"; json_get token < "$T/new.json" > "$1" )
}
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---- 401 and audit without the secret ----
before=$(audit_count "event='admin.auth'")
res=$(anon GET /api/v1/certs)
[ "$(echo "$res" | http_status)" = 401 ] || fail "no secret: $res"
echo "$res" | http_body | has '"error":"unauthorized"' || fail "401 body"
[ "$(audit_count "event='admin.auth' AND outcome='refused' AND actor='anonymous@127.0.0.1' AND subject='GET /api/v1/certs' AND detail='no bearer secret'")" = 1 ] \
	|| fail "401 not audited"
expect_eq "$(anon POST /api/v1/bulk/00000000-0000-4000-8000-000000000000/block \
	-H 'Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' | http_status)" 401 "wrong secret"
expect_eq "$(anon GET /api/v1/certs -u admin:"$SECRET" | http_status)" 401 "basic auth must not count"
expect_eq "$(anon GET /nothing-here | http_status)" 401 "unknown path without secret"
expect_eq "$(anon POST /api/v1/bulk --data '{}' | http_status)" 401 "new token without secret"
[ "$(sqlite3 "$SITE/site.db" 'SELECT count(*) FROM bulk_tokens')" = 0 ] || fail "token made without secret"
after=$(audit_count "event='admin.auth' AND outcome='refused'")
[ "$after" = $((before + 5)) ] || fail "each 401 audited: $before -> $after"
[ "$(audit_count "event='admin.auth' AND detail='wrong bearer secret'")" -ge 1 ] || fail "wrong secret audited"
grep -q "AdminConsole: Refused GET /api/v1/certs from 127.0.0.1: no bearer secret" "$SITE/logs/CCM_STS.log" \
	|| fail "refusal log line"
ok "no or wrong secret (or Basic auth): 401 with WWW-Authenticate, one audit record and one log line each"

# ---- headers ----
hdrs=$(curl -s -D - -o "$T/index.html" --cacert "$T/tls.crt" "$ADMIN/")
echo "$hdrs" | has -i "^content-type: text/html" || fail "index content type"
for h in "content-security-policy: default-src 'self'; script-src 'self'; style-src 'self';" \
	"frame-ancestors 'none'" "x-content-type-options: nosniff" "x-frame-options: deny" \
	"referrer-policy: no-referrer" "cache-control: no-store"; do
	echo "$hdrs" | has -iF "$h" || fail "index lacks header: $h"
done
if echo "$hdrs" | has -i "unsafe-inline\|set-cookie"; then fail "unsafe-inline or a cookie"; fi
# No inline script or style in the page: scripts by src only, no style
# attributes or elements, no on* handlers.
if grep -Eq '<script>|<script [^>]*>[^<]|<style|style=|[[:space:]]on[a-z]+=' "$T/index.html"; then
	fail "inline script or style in the page"
fi
grep -q '<script src="/console.js" defer></script>' "$T/index.html" || fail "page script"
for p in /console.js /console.css /favicon.svg; do
	h=$(curl -s -D - -o /dev/null --cacert "$T/tls.crt" -w '%{http_code}' "$ADMIN$p")
	echo "$h" | tail -n 1 | has 200 || fail "$p not served"
	grep -qi "content-security-policy: default-src 'self'" <<<"$h" || fail "$p: no CSP in: $h"
	grep -qi "x-content-type-options: nosniff" <<<"$h" || fail "$p: no nosniff"
done
curl -s -D - -o /dev/null --cacert "$T/tls.crt" "$ADMIN/console.js" | has -i '^content-type: text/javascript' \
	|| fail "console.js content type"
for p in /api/v1/certs /api/v1/nothing; do
	h=$(curl -s -D - -o /dev/null --cacert "$T/tls.crt" -H @"$T/adm.hdr" "$ADMIN$p")
	grep -qi "content-security-policy: default-src 'self'.*frame-ancestors 'none'" <<<"$h" || fail "$p: no CSP in: $h"
	grep -qi "x-content-type-options: nosniff" <<<"$h" || fail "$p: no nosniff"
	if grep -qi set-cookie <<<"$h"; then fail "$p sets a cookie"; fi
done
h=$(curl -s -D - -o /dev/null --cacert "$T/tls.crt" "$ADMIN/api/v1/certs")
grep -qi "content-security-policy: default-src 'self'" <<<"$h" || fail "401: no CSP"
grep -qi 'www-authenticate: Bearer realm="sitetoken-admin"' <<<"$h" || fail "401: no WWW-Authenticate"
ok "CSP (default-src 'self', no inline, frame-ancestors 'none'), nosniff, DENY, no-store, no cookies; page without inline script/style"

# ---- the session ----
res=$(adm GET /api/v1/session)
[ "$(echo "$res" | http_status)" = 200 ] || fail "session: $res"
actor=$(echo "$res" | http_body | jq_py 'd["actor"]')
[[ "$actor" =~ ^admin-console/[0-9a-f]{8}@127\.0\.0\.1$ ]] || fail "actor: $actor"
[ "$(echo "$res" | http_body | jq_py 'd["site"]')" = "$($STK site show --json | json_get site)" ] || fail "session site"
ok "session names the admin identity $actor"

# ---- lifetime: the CLI's rules, nothing created on a refusal ----
# 60.0, 1e3, 6e1: JSON reals equal to whole numbers, refused like the CLI's
# "--lifetime 60.0" (one parser: stk_bulk_parse_lifetime).
for v in '"0"' 0 -5 '"-5"' '"abc"' '"12x"' 10081 '"10081"' '""' 1.5 '"99999999999999999999"' 99999999999999999999 null true '[]' \
	60.0 1e3 6e1 1E3 '"1e3"' '"60.0"'; do
	res=$(adm POST /api/v1/bulk --data "{\"lifetime_minutes\":$v}")
	[ "$(echo "$res" | http_status)" = 400 ] || fail "lifetime $v accepted: $res"
done
[ "$(sqlite3 "$SITE/site.db" 'SELECT count(*) FROM bulk_tokens')" = 0 ] || fail "a refused lifetime created a token"
msg=$(adm POST /api/v1/bulk --data '{"lifetime_minutes":"10081"}' | http_body | json_get message)
cli=$($STK bulk new --lifetime 10081 2>&1 || true)
[ -n "$msg" ] && echo "$cli" | has -F "$msg" || fail "API and CLI messages differ: '$msg' vs '$cli'"
for b in '{"lifetime_minutes":60,"extra":1}' '{"lifetime_minutes":60,"lifetime_minutes":61}'; do
	expect_eq "$(adm POST /api/v1/bulk --data "$b" | http_status)" 400 "strict members: $b"
done
[ "$(sqlite3 "$SITE/site.db" 'SELECT count(*) FROM bulk_tokens')" = 0 ] || fail "a refused body created a token"
ok "lifetime 0, negative, not a number, over 10080, overflow, non-integer refused (400, CLI's message); strict JSON"

# ---- new bulk token ----
expect_eq "$(adm POST /api/v1/bulk --data '' | http_status)" 201 "new with the default lifetime"
expect_eq "$(jq_py 'd["exp"]-d["nbf"]' <"$T/resp")" 259200 "default lifetime 4320 minutes"
api_bulk "$T/bulk.tok" '{"lifetime_minutes":"120"}'
G=$(json_get guid < "$T/new.json")
[ "$(json_get lifetime_minutes < "$T/new.json")" = 120 ] || fail "lifetime echo"
$STK verify --type bulk - < "$T/bulk.tok" | has "$G" || fail "token does not verify as a bulk token of this site"
[ "$(sqlite3 "$SITE/site.db" "SELECT created_by FROM bulk_tokens WHERE guid='$G'")" = "$actor" ] || fail "created_by"
[ "$(audit_count "event='bulk.new' AND subject='$G' AND actor='$actor'")" = 1 ] || fail "bulk.new audited as the admin"
tok=$(cat "$T/bulk.tok")
if grep -rqF -e "${tok##*.}" "$SITE"; then fail "bulk token stored by the site"; fi
ok "new bulk token: 201, returned once, verifies, audited with the admin identity, not stored"

# ---- list: type filter and sort ----
res=$(adm GET '/api/v1/certs?type=bulk&sort=-to')
[ "$(echo "$res" | http_status)" = 200 ] || fail "list: $res"
echo "$res" | http_body | jq_py '",".join(r["kind"] for r in d["rows"])' | has -x 'bulk,bulk' || fail "type=bulk: $res"
echo "$res" | http_body | jq_py 'd["rows"][1]["id"]' | has -x "$G" || fail "sort=-to puts the 120-minute token last: $res"
res=$(adm GET '/api/v1/certs?type=site')
echo "$res" | http_body | jq_py '[r["type"] for r in d["rows"]]' | has -x "\['Site Signing'\]" || fail "type=site: $res"
res=$(adm GET '/api/v1/certs?sort=type')
echo "$res" | http_body | jq_py '",".join(r["kind"] for r in d["rows"])' | has -x 'bulk,bulk,site' || fail "sort=type: $res"
res=$(adm GET '/api/v1/certs?sort=-type')
echo "$res" | http_body | jq_py 'd["rows"][0]["kind"]' | has -x site || fail "sort=-type: $res"
for col in id from to status devices created; do
	[ "$(adm GET "/api/v1/certs?sort=$col" | http_status)" = 200 ] || fail "sort=$col"
done
[ "$(adm GET '/api/v1/certs?sort=bogus' | http_status)" = 400 ] || fail "bad sort accepted"
[ "$(adm GET '/api/v1/certs?type=user' | http_status)" = 400 ] || fail "bad type accepted"
ok "list: type filter (site, bulk), sort by every column either way, bad values 400"

# ---- block: the CMG refuses the token; unblock: accepted again ----
res=$(adm POST "/api/v1/bulk/$G/block")
[ "$(echo "$res" | http_status)" = 200 ] && echo "$res" | has '"status":"Blocked"' || fail "block: $res"
expect_refusal 1 "HTTP 403 bulk_token_blocked" "blocked token" -- \
	agent devA 0 register --cmg "$CMG" --regtoken-file "$T/bulk.tok"
res=$(adm POST "/api/v1/bulk/$G/unblock")
[ "$(echo "$res" | http_status)" = 200 ] && echo "$res" | has '"status":"Active"' || fail "unblock: $res"
agent devA 0 register --cmg "$CMG" --regtoken-file "$T/bulk.tok" >/dev/null || fail "unblocked token refused"
res=$(adm GET '/api/v1/certs?type=bulk')
echo "$res" | http_body | jq_py "[r['devices'] for r in d['rows'] if r['id']=='$G'][0]" | has -x 1 || fail "devices count: $res"
echo "$res" | http_body | jq_py "[r['status'] for r in d['rows'] if r['id']=='$G'][0]" | has -x Active || fail "status"
adm GET '/api/v1/certs?type=site' | http_body | jq_py 'd["rows"][0]["devices"]' | has -x 1 || fail "site cert devices"
[ "$(adm POST "/api/v1/bulk/$G/unblock" | http_status)" = 200 ] || fail "repeat unblock"
[ "$(audit_count "event='bulk.unblock' AND subject='$G' AND outcome='unchanged'")" = 1 ] || fail "repeat audited"
ok "block (CMG registration refused 403 bulk_token_blocked), unblock (accepted), devices registered with it: 1"

# ---- audit trail of the token ----
res=$(adm GET "/api/v1/bulk/$G/audit")
[ "$(echo "$res" | http_status)" = 200 ] || fail "audit: $res"
ev=$(echo "$res" | http_body | jq_py '" ".join(r["event"]+":"+r["outcome"] for r in d["records"])')
[ "$ev" = "bulk.new:ok bulk.block:ok device.register.cmg:refused bulk.unblock:ok device.register.cmg:ok bulk.unblock:unchanged" ] \
	|| fail "audit trail: $ev"
echo "$res" | http_body | jq_py 'd["records"][1]["actor"]' | has -x "$actor" || fail "block actor"
ok "audit trail of one token: new, block, refused registration, unblock, registration, repeat"

# ---- not found, bad GUID, wrong method ----
[ "$(adm POST /api/v1/bulk/00000000-0000-4000-8000-000000000000/block | http_status)" = 404 ] || fail "unknown GUID"
[ "$(adm GET /api/v1/bulk/00000000-0000-4000-8000-000000000000/audit | http_status)" = 404 ] || fail "unknown GUID audit"
[ "$(adm POST /api/v1/bulk/zzzzzzzz-0000-4000-8000-000000000000/block | http_status)" = 400 ] || fail "bad GUID"
[ "$(adm GET "/api/v1/bulk/$G/block" | http_status)" = 405 ] || fail "GET block"
[ "$(adm POST /api/v1/certs | http_status)" = 405 ] || fail "POST certs"
[ "$(adm GET /api/v1/bulk | http_status)" = 405 ] || fail "GET bulk"
[ "$(adm GET /api/v1/nothing | http_status)" = 404 ] || fail "unknown path"
head -c 6000 /dev/zero | tr '\0' ' ' > "$T/big"
[ "$(adm POST /api/v1/bulk --data-binary @"$T/big" | http_status)" = 413 ] || fail "big body"
ok "unknown GUID 404, bad GUID 400, wrong method 405, body over 4 KiB 413"

# ---- devices: list, search, filters, block/unblock, per-device allow-cmg ----
D=$(agent devA 0 status --json | json_get device_guid)
agent devM 0 register --mp "$MP" >/dev/null
DM=$(agent devM 0 status --json | json_get device_guid)
devs() { adm GET "/api/v1/devices$1" | http_body | jq_py '" ".join(r["guid"] for r in d["rows"])'; }
[ "$(devs '' | wc -w)" = 2 ] || fail "devices: $(devs '')"
[ "$(devs '?via=cmg')" = "$D" ] || fail "via=cmg"
[ "$(devs '?via=mp')" = "$DM" ] || fail "via=mp"
[ "$(devs "?bulk=$G")" = "$D" ] || fail "bulk filter"
[ "$(devs "?q=${D:9:9}")" = "$D" ] || fail "search by part of the GUID"
thumb=$(adm GET "/api/v1/devices?q=${DM:0:8}" | http_body | jq_py 'd["rows"][0]["thumbprint"]')
[ "$(devs "?q=${thumb:0:12}")" = "$DM" ] || fail "search by thumbprint"
[ -z "$(devs '?q=no-such-device')" ] || fail "search matched nothing"
[ -z "$(devs '?status=blocked')" ] || fail "no device is blocked yet"
[ "$(adm GET '/api/v1/devices?limit=1' | http_body | jq_py 'len(d["rows"]), d["total"]')" = "1 2" ] || fail "limit"
for q in '?status=gone' '?via=vpn' '?limit=0' '?limit=abc' '?limit=501' '?offset=-1' \
	"?q=$(printf 'x%.0s' $(seq 65))"; do
	[ "$(adm GET "/api/v1/devices$q" | http_status)" = 400 ] || fail "devices$q not 400"
done
ok "devices: list, via and bulk filters, search by GUID part and thumbprint, limit; bad values 400"

# Attacker 1 (network) without the secret cannot block a device.
[ "$(anon POST "/api/v1/devices/$D/block" | http_status)" = 401 ] || fail "block without secret"
[ "$(anon POST "/api/v1/settings" --data '{"name":"allow-cmg","value":"off"}' | http_status)" = 401 ] || fail "settings without secret"
[ "$(sqlite3 "$SITE/site.db" "SELECT blocked FROM devices WHERE guid='$D'")" = 0 ] || fail "blocked without secret"
$STK settings show | has "allow-cmg *on" || fail "setting changed without secret"
res=$(adm POST "/api/v1/devices/$D/block")
[ "$(echo "$res" | http_status)" = 200 ] && echo "$res" | has '"status":"Blocked"' || fail "device block: $res"
[ "$(devs '?status=blocked')" = "$D" ] || fail "status=blocked"
expect_refusal 1 device_blocked "blocked device" -- agent devA 0 policy
[ "$(audit_count "event='device.block' AND subject='$D' AND actor='$actor'")" = 1 ] || fail "device block audit"
res=$(adm POST "/api/v1/devices/$D/unblock")
echo "$res" | has '"status":"Active"' || fail "device unblock: $res"
agent devA 0 policy >/dev/null || fail "unblocked device refused"
for body in '' '{"value":"maybe"}' '{"value":"on","x":1}' '{"value":true}' '[]'; do
	[ "$(adm POST "/api/v1/devices/$D/allow-cmg" --data "$body" | http_status)" = 400 ] || fail "allow-cmg body '$body'"
done
res=$(adm POST "/api/v1/devices/$D/allow-cmg" --data '{"value":"off"}')
echo "$res" | http_body | jq_py 'd["allow_cmg"], d["allow_cmg_effective"]' | has -x "off False" || fail "allow-cmg off: $res"
expect_refusal 1 cloud_gateway_disabled "allow-cmg off applied" -- agent devA 0 policy
expect_in '"allow_cmg":"default"' "$(adm POST "/api/v1/devices/$D/allow-cmg" --data '{"value":"default"}')" "allow-cmg default"
agent devA 0 policy >/dev/null || fail "allow-cmg default refused"
[ "$(audit_count "event='setting.device' AND subject='$D' AND actor='$actor'")" = 2 ] || fail "allow-cmg audit"
[ "$(adm POST /api/v1/devices/00000000-0000-4000-8000-000000000000/block | http_status)" = 404 ] || fail "unknown device"
[ "$(adm POST /api/v1/devices/zzzzzzzz-0000-4000-8000-000000000000/block | http_status)" = 400 ] || fail "bad device GUID"
[ "$(adm GET "/api/v1/devices/$D/block" | http_status)" = 405 ] || fail "GET device block"
[ "$(adm POST "/api/v1/devices/$D/delete" | http_status)" = 404 ] || fail "unknown device action"
ok "device block/unblock and allow-cmg (off, default) through the API: applied by the CMG at once, audited as the admin; none without the secret (attacker 1)"

# ---- site settings ----
for body in '{"name":"other","value":"on"}' '{"name":"allow-cmg","value":"maybe"}' \
	'{"name":"allow-cmg"}' '{"name":"allow-cmg","value":"on","x":1}' 'nope'; do
	[ "$(adm POST /api/v1/settings --data "$body" | http_status)" = 400 ] || fail "settings body '$body'"
done
res=$(adm POST /api/v1/settings --data '{"name":"internal-registration","value":"off"}')
echo "$res" | http_body | jq_py '[s["value"] for s in d["settings"] if s["name"]=="internal-registration"][0]' | has -x off || fail "setting: $res"
$STK settings show | has "internal-registration *off" || fail "CLI does not see the setting"
expect_refusal 1 internal_registration_disabled "internal registration off applied" -- \
	agent devN 0 register --mp "$MP"
adm POST /api/v1/settings --data '{"name":"internal-registration","value":"on"}' >/dev/null
[ "$(audit_count "event='setting.set' AND subject='internal-registration' AND actor='$actor'")" = 2 ] || fail "settings audit"
[ "$(adm DELETE /api/v1/settings | http_status)" = 405 ] || fail "DELETE settings"
ok "settings: internal-registration off through the API refuses an MP registration; bad names and values 400"

# ---- audit log, verify ----
res=$(adm GET '/api/v1/audit?limit=2')
seqs=$(echo "$res" | http_body | jq_py '" ".join(str(r["seq"]) for r in d["records"])')
last=$(sqlite3 "$SITE/site.db" 'SELECT max(seq) FROM audit')
[ "$seqs" = "$last $((last - 1))" ] || fail "newest first: $seqs (last $last)"
nb=$(echo "$res" | http_body | jq_py 'd["next_before"]')
[ "$(adm GET "/api/v1/audit?limit=2&before=$nb" | http_body | jq_py '" ".join(str(r["seq"]) for r in d["records"])')" = "$((last - 2)) $((last - 3))" ] || fail "paging"
adm GET '/api/v1/audit?outcome=refused&limit=500' | http_body | jq_py 'all(r["outcome"]=="refused" for r in d["records"]) and len(d["records"])>0' | has -x True || fail "outcome filter"
adm GET '/api/v1/audit?q=device.block' | http_body | jq_py '[r["event"] for r in d["records"]]' | has -x "\['device.block'\]" || fail "search"
for q in '?limit=0' '?limit=501' '?before=x'; do
	[ "$(adm GET "/api/v1/audit$q" | http_status)" = 400 ] || fail "audit$q"
done
adm GET /api/v1/audit/verify | http_body | jq_py 'd["intact"], d["records"] == '"$(sqlite3 "$SITE/site.db" 'SELECT count(*) FROM audit')" | has -x "True True" || fail "verify intact"
# Attacker 3 (database writer) edits a record: the console's verify says so.
orig=$(sqlite3 "$SITE/site.db" "SELECT detail FROM audit WHERE seq=2")
sqlite3 "$SITE/site.db" "UPDATE audit SET detail='edited' WHERE seq=2"
res=$(adm GET /api/v1/audit/verify)
echo "$res" | http_body | jq_py 'd["intact"], d["bad_seq"]' | has -x "False 2" || fail "tampering not reported: $res"
sqlite3 "$SITE/site.db" "UPDATE audit SET detail='$orig' WHERE seq=2"
adm GET /api/v1/audit/verify | http_body | jq_py 'd["intact"]' | has -x True || fail "verify after restoring"
ok "audit log newest first with paging, outcome filter and search; verify reports intact, and an edited record (attacker 3) as tampered at its number"

# ---- keys, stats ----
res=$(adm GET /api/v1/keys)
echo "$res" | http_body | jq_py 'len(d["keys"]), d["keys"][0]["mine"], d["keys"][0]["backend"], d["keys"][0]["status"]' |
	has -x "1 True file active" || fail "keys: $res"
echo "$res" | http_body | jq_py '{a["name"]: a["value"] for a in d["keys"][0]["attributes"]}["file-mode"]' | has -x 0600 || fail "key attributes: $res"
res=$(adm GET '/api/v1/stats?days=1')
want=$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE event LIKE 'device.register.%' AND outcome='ok'")
echo "$res" | http_body | jq_py 'd["totals"]["registrations"], sum(d["registrations"]), len(d["times"])' | has -x "$want $want 1" || fail "stats registrations ($want): $res"
echo "$res" | http_body | jq_py 'sum(d["refusals"]["bulk_token_blocked"]), sum(d["refusals"]["device_blocked"]), sum(d["refusals"]["internal_registration_disabled"])' |
	has -x "1 1 1" || fail "stats refusals: $res"
[ "$(adm GET '/api/v1/stats?days=1&bucket=hour' | http_body | jq_py 'len(d["times"]), d["step"]')" = "24 3600" ] || fail "hourly"
for q in '?days=0' '?days=91' '?bucket=week' '?bucket=hour&days=30'; do
	[ "$(adm GET "/api/v1/stats$q" | http_status)" = 400 ] || fail "stats$q"
done
ok "keys with attributes read back; stats: registrations ($want) and refusals by reason as in the audit log, hourly buckets; bad values 400"

# ---- limits on a new bulk token: the CLI's --max-uses and --source ----
# Each bad value is 400 with the reason the CLI gives, and nothing is
# created (same parsers: stk_bulk_parse_max_uses, stk_bulk_parse_sources).
ntok=$(sqlite3 "$SITE/site.db" 'SELECT count(*) FROM bulk_tokens')
for v in 0 -1 '"-1"' '"abc"' 1000001 '"1000001"' '"99999999999999999999"' 1.5 2.0 '""' true '[]'; do
	res=$(adm POST /api/v1/bulk --data "{\"lifetime_minutes\":60,\"max_uses\":$v}")
	[ "$(echo "$res" | http_status)" = 400 ] && grep -q '"error":"bad_max_uses"' <<<"$res" ||
		fail "max_uses $v: $res"
done
for v in '"10.1.2.3/8"' '"300.0.0.0/8"' '"10.0.0.0/33"' '"10.0.0.0/8,,"' '""' '"fe80::1/129"' 5 \
	"\"$(printf '10.0.%d.0/24,' 1 2 3 4 5 6 7 8 9 | sed 's/,$//')\""; do
	res=$(adm POST /api/v1/bulk --data "{\"lifetime_minutes\":60,\"source\":$v}")
	[ "$(echo "$res" | http_status)" = 400 ] && grep -q '"error":"bad_source"' <<<"$res" ||
		fail "source $v: $res"
done
for pair in 'max_uses 0 --max-uses 0' 'max_uses 1000001 --max-uses 1000001' \
	'source "10.1.2.3/8" --source 10.1.2.3/8' 'source "300.0.0.0/8" --source 300.0.0.0/8'; do
	set -- $pair
	msg=$(adm POST /api/v1/bulk --data "{\"$1\":$2}" | http_body | json_get message)
	cli=$($STK bulk new "$3" "$4" 2>&1 || true)
	[ -n "$msg" ] && grep -qF -- "$msg" <<<"$cli" || fail "API and CLI messages differ for $3 $4: '$msg' vs '$cli'"
done
# JSON numbers too large for the parser: 400 bad_request.
[ "$(adm POST /api/v1/bulk --data '{"max_uses":99999999999999999999}' | http_status)" = 400 ] || fail "max_uses overflow"
[ "$(sqlite3 "$SITE/site.db" 'SELECT count(*) FROM bulk_tokens')" = "$ntok" ] || fail "a refused limit created a token"
[ "$(sqlite3 "$SITE/site.db" 'SELECT count(*) FROM bulk_limits')" = 0 ] || fail "a refused limit recorded limits"
ok "max_uses 0, negative, not a number, over 1000000, a fraction; malformed, host-bit, over-long or non-string source: 400 bad_max_uses/bad_source with the CLI's message, nothing created"

# Made through the API, the limits hold at the gateway (attacker 1 with a
# leaked token: from another network, or once it is used up).
api_bulk "$T/lim.tok" '{"lifetime_minutes":60,"max_uses":"1","source":"127.0.0.0/8,2001:db8::/32"}'
LG=$(json_get guid < "$T/new.json")
expect_eq "$(jq_py '(d["max_uses"], d["sources"])' < "$T/new.json")" \
	"(1, '127.0.0.0/8,2001:db8::/32')" "limits echo"
row() { adm GET '/api/v1/certs?type=bulk' | http_body | jq_py "[(r['uses'], r['max_uses'], r['sources']) for r in d['rows'] if r['id']=='$1'][0]"; }
[ "$(row "$LG")" = "(0, 1, '127.0.0.0/8,2001:db8::/32')" ] || fail "certs row: $(row "$LG")"
[ "$(row "$G")" = "(0, None, None)" ] || fail "token without limits: $(row "$G")"
$STK certs list --type bulk --json | python3 -c '
import json, sys
r = [x for x in json.load(sys.stdin) if x["id"] == sys.argv[1]][0]
assert (r["max_uses"], r["sources"]) == (1, "127.0.0.0/8,2001:db8::/32"), r' "$LG" || fail "certs list --json"
agent limA 0 register --cmg "$CMG" --regtoken-file "$T/lim.tok" >/dev/null || fail "first use refused"
expect_refusal 1 "HTTP 403 bulk_token_exhausted" "second use" -- \
	agent limB 0 register --cmg "$CMG" --regtoken-file "$T/lim.tok"
[ "$(row "$LG")" = "(1, 1, '127.0.0.0/8,2001:db8::/32')" ] || fail "certs row after use: $(row "$LG")"
api_bulk "$T/far.tok" '{"source":"192.0.2.0/24","max_uses":null}'
expect_refusal 1 "HTTP 403 bulk_token_source" "registration from outside the source" -- \
	agent limC 0 register --cmg "$CMG" --regtoken-file "$T/far.tok"
grep -q "at most 1 uses, from 127.0.0.0/8,2001:db8::/32" "$SITE/logs/CCM_STS.log" || fail "CCM_STS.log lacks the limits"
ok "POST bulk with max_uses and source: echoed, in the certs rows (uses/max_uses/sources) and certs list --json; a second registration 403 bulk_token_exhausted, one from outside the source 403 bulk_token_source"

# ---- rotation takes effect at once; a loose secret file is refused ----
OLD=$SECRET
SECRET=$($STK admin token --rotate 2>/dev/null)
[ "$SECRET" != "$OLD" ] || fail "rotate kept the secret"
[ "$(adm GET /api/v1/session | http_status)" = 200 ] || fail "new secret refused"
NEW=$SECRET; SECRET=$OLD
[ "$(adm GET /api/v1/session | http_status)" = 401 ] || fail "old secret still accepted"
SECRET=$NEW
[ "$(audit_count "event='admin.secret' AND detail='rotated'")" = 1 ] || fail "rotation audited"
chmod 644 "$SITE/admin.token"
[ "$(adm GET /api/v1/session | http_status)" = 401 ] || fail "secret readable by others still used"
grep -q "AdminConsole: Admin secret unavailable: .*must be mode 0600" "$SITE/logs/CCM_STS.log" || fail "loose file log line"
chmod 600 "$SITE/admin.token"
[ "$(adm GET /api/v1/session | http_status)" = 200 ] || fail "secret after chmod 600"
ok "admin token --rotate: old secret 401 at once, new accepted; a secret file readable by others is refused"

stop_server

# ---- loopback only unless --admin-remote ----
expect_refusal 2 "loopback only" "--admin on a non-loopback address without --admin-remote" -- \
	$STK serve --site "$SITE" --mp 127.0.0.1:0 --cmg 127.0.0.1:0 --admin 0.0.0.0:0 \
	--tls-cert "$T/tls.crt" --tls-key "$T/tls.key"

assert_no_tokens_in_logs
if grep -qF -e "$SECRET" "$SITE"/logs/*.log "$T/server.stderr"; then fail "admin secret in a log"; fi
$STK audit verify >/dev/null || fail "audit verify"
ok "no admin secret in any log; audit chain verifies"
