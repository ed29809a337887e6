#!/usr/bin/env bash
# serve --metrics: the Prometheus text format as the Python client's parser
# reads it (tests/integration/metrics_check.py, Debian
# python3-prometheus-client), values that move with real registrations,
# renewals and refusals by the real server and agent, counters that lose
# nothing under concurrent registrations (atomics), figures that match the
# site's own records, and a listener that stays on loopback unless told.
TEST_NAME=server_metrics
. "$(dirname "$0")/harness.sh" server
PY=/usr/bin/python3 # Debian's python3, which has python3-prometheus-client
CHECK=$STK_SRC/tests/integration/metrics_check.py

$PY -c 'import prometheus_client' 2>/dev/null ||
	fail "python3-prometheus-client is not installed (./run deps)"

serve_site 0 --metrics 127.0.0.1:0
[ -n "${metrics_port:-}" ] && [ "$metrics_port" != 0 ] || fail "no metrics_port in the ready file: $(cat "$T/ready")"
M=http://127.0.0.1:$metrics_port/metrics

scrape() { # scrape FILE: fetch, check with the parser, samples as JSON in FILE
	curl -sf -D "$1.hdr" "$M" > "$1.txt" || fail "GET /metrics"
	$PY "$CHECK" < "$1.txt" > "$1" || fail "the parser refused the metrics: $(cat "$1.txt")"
}
val() { # val FILE 'name{a=b,...}' -> the value (labels sorted by name)
	$PY -c 'import json,sys; print(int(json.load(open(sys.argv[1])).get(sys.argv[2], -1)))' "$1" "$2"
}
delta() { echo $(( $(val "$T/m2" "$1") - $(val "$T/m1" "$1") )); }

scrape "$T/m1"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$T/m1.hdr" || fail "content type: $(cat "$T/m1.hdr")"
ok "GET /metrics: Prometheus text format 0.0.4, accepted by prometheus_client's parser"

# Real traffic: MP registration, CMG bulk registration, renewal, refusals.
new_bulk "$T/bulk.tok" >/dev/null
agent A 0 register --mp "$MP" >/dev/null
agent B 0 register --mp "$MP" --cmg "$CMG" --regtoken-file "$T/bulk.tok" >/dev/null
agent B 0 renew --force >/dev/null
echo "not.a.token" > "$T/junk"
cmg_expect "401 token_invalid" "junk token" GET policy B "$T/junk"
cmg_expect "401 no_client_certificate" "no client certificate" GET policy "" "$T/B/client.token"
$STK settings set internal-registration off >/dev/null
expect_exit 1 "registration with internal-registration off" -- agent C 0 register --mp "$MP"
$STK settings set internal-registration on >/dev/null
bg=$(new_bulk "$T/blocked.tok")
$STK bulk block "$bg" >/dev/null
expect_exit 1 "registration with a blocked bulk token" -- \
	agent D 0 register --mp "$MP" --cmg "$CMG" --regtoken-file "$T/blocked.tok"

scrape "$T/m2"
for want in 'sitetoken_registrations_total{listener=mp} 1' \
	'sitetoken_registrations_total{listener=cmg} 1' \
	'sitetoken_renewals_total{listener=cmg} 1' \
	'sitetoken_refusals_total{listener=cmg,reason=token_invalid} 1' \
	'sitetoken_refusals_total{listener=cmg,reason=no_client_certificate} 1' \
	'sitetoken_refusals_total{listener=mp,reason=internal_registration_disabled} 1' \
	'sitetoken_refusals_total{listener=cmg,reason=bulk_token_blocked} 1' \
	'sitetoken_refusals_total{listener=mp,reason=token_invalid} 0'; do
	set -- $want
	[ "$(delta "$1")" = "$2" ] || fail "$1 moved by $(delta "$1"), expected $2"
done
ok "registrations (mp, cmg), renewal and refusals by reason and listener moved by exactly what was done"

# Every request was timed on its listener; every client token signed with
# the site key (file backend here) was timed.
[ "$(delta 'sitetoken_request_duration_seconds_count{listener=cmg}')" -ge 5 ] || fail "CMG requests not timed"
[ "$(delta 'sitetoken_request_duration_seconds_count{listener=mp}')" -ge 2 ] || fail "MP requests not timed"
signs=$(delta 'sitetoken_sign_duration_seconds_count{backend=file}')
[ "$signs" -ge 3 ] || fail "site key signatures timed: $signs (3 client tokens were issued)"
[ "$(val "$T/m2" 'sitetoken_sign_duration_seconds_count{backend=tpm}')" = 0 ] || fail "tpm signatures on a file-key site"
ok "request latency histograms per listener, $signs site-key signatures timed (backend file)"

# Figures read from the site agree with the site's own records.
[ "$(val "$T/m2" sitetoken_audit_records)" = "$(sqlite3 "$SITE/site.db" 'SELECT count(*) FROM audit')" ] || fail "audit records"
[ "$(val "$T/m2" sitetoken_audit_checkpoints)" = "$(sqlite3 "$SITE/site.db" 'SELECT count(*) FROM audit_checkpoints')" ] || fail "audit checkpoints"
exp_at=$(openssl x509 -in "$SITE/site.crt" -noout -enddate | cut -d= -f2)
want=$(( $(date -d "$exp_at" +%s) - $(date +%s) ))
got=$(val "$T/m2" sitetoken_site_certificate_expiry_seconds)
[ $((want - got)) -le 60 ] && [ $((got - want)) -le 60 ] || fail "site certificate expiry $got, openssl says $want"
kid=$(sqlite3 "$SITE/site.db" "SELECT kid FROM site_keys WHERE status='active'")
got=$(val "$T/m2" "sitetoken_site_key_certificate_expiry_seconds{kid=$kid,node=main,status=active}")
[ $((want - got)) -le 60 ] && [ $((got - want)) -le 60 ] || fail "key $kid certificate expiry $got"
ok "audit records and checkpoints equal the store's; certificate expiry ($got s) equals openssl's"

# Attacker 3 (SPEC threat model): a database writer inserts a site_keys row
# of its own key, active, "endorsed" by itself. Verifiers ignore it (no
# valid endorsement), so the key-expiry gauges must not list it as a key
# that verifies; the site's own key stays.
FORGE="python3 $STK_SRC/tests/integration/forge.py"
fkid=$($FORGE keygen "$T" "$($STK site show --json | json_get site)") || fail "forge keygen"
STORE=sqlite; [ -f "$SITE/site.db" ] || STORE=pg
sqlite3 "$SITE/site.db" "$($FORGE keyrow "$T" main active $STORE)" || fail "insert the forged key row"
$STK key list | has -e "$fkid.*UNTRUSTED" || fail "key list does not call the forged row untrusted: $($STK key list)"
scrape "$T/mf"
! grep -q -e "$fkid" "$T/mf.txt" || fail "the forged key is in the metrics: $(grep -e "$fkid" "$T/mf.txt")"
[ "$(val "$T/mf" "sitetoken_site_key_certificate_expiry_seconds{kid=$kid,node=main,status=active}")" -gt 0 ] || fail "the site's key left the metrics"
sqlite3 "$SITE/site.db" "DELETE FROM site_keys WHERE kid = '$fkid'"
ok "a key row inserted by a database writer (no endorsement) is not in the key-expiry gauges"

# Concurrent registrations: the counters are atomics and lose nothing.
before=$(val "$T/m2" 'sitetoken_registrations_total{listener=mp}')
pids=()
for i in $(seq 8); do
	agent "P$i" 0 register --mp "$MP" >/dev/null 2>"$T/P$i.err" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "concurrent registration"; done
scrape "$T/m3"
[ "$(val "$T/m3" 'sitetoken_registrations_total{listener=mp}')" = $((before + 8)) ] || fail "8 concurrent registrations counted as $(( $(val "$T/m3" 'sitetoken_registrations_total{listener=mp}') - before ))"
ok "8 concurrent registrations counted exactly"

# Only GET /metrics.
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$metrics_port/")" = 404 ] || fail "/ on the metrics listener"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$M")" = 405 ] || fail "POST /metrics"
ok "other paths 404, other methods 405"
stop_server

# Plain HTTP without authentication: loopback unless --metrics-remote.
expect_refusal 2 --metrics-remote "--metrics 0.0.0.0 without --metrics-remote" -- $STK serve \
	--mp 127.0.0.1:0 --cmg 127.0.0.1:0 --tls-cert "$T/tls.crt" --tls-key "$T/tls.key" \
	--metrics 0.0.0.0:0
assert_no_tokens_in_logs
