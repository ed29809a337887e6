#!/usr/bin/env bash
# Attacker 1 (SPEC threat model): a network client sends ESC, CR, LF and a
# forged log line through every refusal path (CMG and MP registration,
# gateway policy and renewal, admin console). No byte below 0x20 other than
# the line end, and none in 0x7f-0x9f, may reach `audit show`, the console's
# per-token trail or a log line; the refusal stays one line; and a refusal
# that names another token's GUID does not join that token's trail.
# Before: the alg header value and jansson's "near '...'" text were echoed
# into refusal messages, and the trail matched GUIDs inside the detail text.
TEST_NAME=audit_clean
. "$(dirname "$0")/harness.sh"
server_env

make_site
start_server 0 --admin 127.0.0.1:0
ADMIN=https://127.0.0.1:$admin_port
SECRET=$($STK admin token)
( umask 077; printf 'Authorization: Bearer %s' "$SECRET" > "$T/adm.hdr" )
G=$(new_bulk "$T/bulk.tok")
dev_identity x
agent A 0 install /mp:"$CMG" SMSSiteCode=ABC /regtoken:- < "$T/bulk.tok" >/dev/null ||
	fail "device A install"
XCERT=(--cert "$T/x.crt" --key "$T/x.key")
ACERT=(--cert "$T/A/device.crt" --key "$T/A/device.key")

# Hostile tokens: header values and broken JSON carrying control bytes, a
# forged line, and the real bulk token's GUID.
python3 - "$T" "$G" <<'PY'
import base64, json, sys
d, g = sys.argv[1], sys.argv[2]
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
evil = "RS256\x1b[2J\x1b]0;owned\x07\r\n2026-01-01T00:00:00Z [tid 1] ClientAuth: FORGED accepted\x85\x9b bulk=" + g
toks = {
  "alg": b(json.dumps({"typ": "JWT", "alg": evil, "kid": "k"}).encode()) + "." + b(b"{}") + ".AAAA",
  "kid": b(json.dumps({"typ": "JWT", "alg": "RS256", "kid": evil}).encode()) + "." + b(b"{}") + ".AAAA",
  "json": b(b'{"alg":"\x1b[31m\r\nFORGED ' + g.encode() + b'"') + "." + b(b"{}") + ".AAAA",
  "crit": b(json.dumps({"typ": "JWT", "alg": "RS256", "kid": "k", "crit": [evil]}).encode()) + "." + b(b"{}") + ".AAAA",
}
for k, v in toks.items():
    open(f"{d}/evil_{k}.tok", "w").write(v)
    open(f"{d}/evil_{k}.body", "w").write(json.dumps({"bulk_token": v}))
    open(f"{d}/evil_{k}.mpbody", "w").write(json.dumps({
        "certificate": open(f"{d}/x.crt").read(), "bulk_token": v}))
open(f"{d}/evil_mp.body", "w").write(json.dumps({
    "certificate": open(f"{d}/x.crt").read(), "hostname": evil, "bulk_token": toks["alg"]}))
open(f"{d}/evil_mp2.body", "w").write(json.dumps({
    "certificate": open(f"{d}/x.crt").read(), "bulk_token": toks["json"]}))
PY

a0=$(audit_count)
st() { echo "    $(post_json "$@")" >> "$T/statuses"; }
for k in alg kid json crit; do
	st "$CMG/sitetoken/v1/register" "$T/evil_$k.body" "${XCERT[@]}"
	st "$MP/sitetoken/v1/register" "$T/evil_$k.mpbody"
	st "$CMG/sitetoken/v1/policy" - "${ACERT[@]}" -H @"$(bearer_hdr "$T/evil_$k.tok")"
	st "$CMG/sitetoken/v1/renew" - "${ACERT[@]}" -X POST -H @"$(bearer_hdr "$T/evil_$k.tok")"
done
st "$MP/sitetoken/v1/register" "$T/evil_mp.body"
st "$MP/sitetoken/v1/register" "$T/evil_mp2.body"
# Admin console: a path and a bearer value with control bytes, unauthenticated.
curl -s -o /dev/null --cacert "$T/tls.crt" \
	"$ADMIN/api/v1/bulk/$G/%1b%5b2J%0d%0a2026-01-01T00:00:00Z%20FORGED%c2%85/audit"
curl -s -o /dev/null --cacert "$T/tls.crt" -H $'Authorization: Bearer \x1b[2Jx' \
	"$ADMIN/api/v1/certs%0aFORGED"
a1=$(audit_count)
# 16 token refusals, the MP's bad JSON token, two admin refusals (the hostname
# with control bytes is refused 400 before the site: not audited).
[ $((a1 - a0)) -eq 19 ] && ok "$((a1 - a0)) refusals audited" ||
	{ bad "$((a1 - a0)) refusals audited, want 19"; cat "$T/statuses"; }

# clean FILE WHAT: no C0 (but LF), DEL or C1 byte, and no line that starts
# with the forged text.
clean() {
	local f0=$FAILED
	python3 - "$1" <<'PY' || bad "$2 carries control bytes or a forged line"
import sys
data = open(sys.argv[1], "rb").read()
bad = [i for i, c in enumerate(data) if (c < 0x20 and c != 0x0a) or 0x7f <= c <= 0x9f]
if bad:
    print("    | bytes", [hex(data[i]) for i in bad[:8]], "at", bad[:8]); sys.exit(1)
for line in data.split(b"\n"):
    if line.startswith(b"2026-01-01T00:00:00Z") or line.startswith(b"FORGED"):
        print("    | forged line:", line[:80]); sys.exit(1)
PY
	[ "$FAILED" != "$f0" ] || ok "$2: no control byte, no forged line"
}
$STK audit show >"$T/show.txt"
$STK audit show --json >"$T/show.json"
for f in "$T/show.txt" "$T/show.json" "$SITE"/logs/*.log "$T/server.stderr"; do
	clean "$f" "$(basename "$f")"
done
grep -c 'x1b' "$T/show.txt" >/dev/null && ok "control bytes kept visible as \\x escapes" ||
	bad "no escaped control byte in audit show"
# The per-token trail: only records about the token (subject or ref), not a
# refusal whose text names its GUID.
curl -s --cacert "$T/tls.crt" -H @"$T/adm.hdr" "$ADMIN/api/v1/bulk/$G/audit" > "$T/trail.json"
clean "$T/trail.json" "console trail"
python3 - "$T/trail.json" <<'PY' && ok "trail holds bulk.new and the registration only" || bad "trail: $(head -c 400 "$T/trail.json")"
import json, sys
d = json.load(open(sys.argv[1]))
recs = d["records"] if isinstance(d, dict) and "records" in d else d
ev = sorted((r["event"], r["outcome"]) for r in recs)
assert ("bulk.new", "ok") in ev, ev
assert all(o == "ok" for _, o in ev), ev
PY
finish
