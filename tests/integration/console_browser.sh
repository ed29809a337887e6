#!/usr/bin/env bash
# The admin console in a real browser: headless Chromium (Debian chromium)
# driven by playwright-core (tests/browser, installed here with npm from the
# committed package-lock.json). Signs in, creates a bulk token, filters and
# sorts, blocks it (the CMG then refuses a registration), unblocks it, and
# keeps screenshots in the build tree. Skips (77) for a missing tool only
# outside CI.
TEST_NAME=console_browser
. "$(dirname "$0")/harness.sh" server
BROWSER_DIR=$STK_SRC/tests/browser
CHROMIUM=${STK_CHROMIUM:-/usr/bin/chromium}
ARTIFACTS=${STK_ARTIFACTS:-$T/artifacts}

[ -x "$CHROMIUM" ] || skip_missing "$CHROMIUM is not installed (apt-get install chromium)"
browser_deps playwright-core jose
ok "node $(node --version), $("$CHROMIUM" --version 2>/dev/null | head -n 1), playwright-core $(node -p "require('$BROWSER_DIR/node_modules/playwright-core/package.json').version")"

make_site
# Some history for the table: an expired token, a blocked one, an active one.
SITETOKEN_TIME_OFFSET=$((-4 * 86400)) $STK bulk new --lifetime 1440 >/dev/null
$STK bulk new --lifetime 4320 >/dev/null
blocked=$(new_bulk "$T/blocked.tok" 10080)
$STK bulk block "$blocked" >/dev/null
rm -f "$T/blocked.tok"
start_server 0 --admin 127.0.0.1:0
$STK admin token >/dev/null
# Devices for the Devices view and the dashboard: two through the MP, and
# one registration refused with internal registration off.
agent M1 0 register --mp "$MP" >/dev/null
agent M2 0 register --mp "$MP" >/dev/null
$STK settings set internal-registration off >/dev/null
expect_exit 1 "registration with internal registration off" -- agent M3 0 register --mp "$MP"
$STK settings set internal-registration on >/dev/null
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/console*.png

ADMIN_URL=https://127.0.0.1:$admin_port SECRET_FILE=$SITE/admin.token AGENT=$AGENT CMG=$CMG MP=$MP \
	EXPECT_REGS=2 EXPECT_MP=2 \
	TLS_CRT=$T/tls.crt T=$T ARTIFACTS=$ARTIFACTS CHROMIUM=$CHROMIUM \
	node "$BROWSER_DIR/console.test.mjs" || fail "browser test"

# What the browser did, as the site recorded it.
G=$(cat "$T/browser-guid")
actor_like="admin-console/%@127.0.0.1"
n() { sqlite3 "$SITE/site.db" "SELECT count(*) FROM audit WHERE $1"; }
[ "$(n "event='bulk.new' AND subject='$G' AND actor LIKE '$actor_like'")" = 1 ] || fail "bulk.new not audited as the admin"
[ "$(n "event='bulk.block' AND subject='$G' AND outcome='ok' AND actor LIKE '$actor_like'")" = 1 ] || fail "block not audited"
[ "$(n "event='bulk.unblock' AND subject='$G' AND outcome='ok' AND actor LIKE '$actor_like'")" = 1 ] || fail "unblock not audited"
[ "$(n "event='device.register.cmg' AND detail LIKE '%$G%' AND outcome='refused'")" = 1 ] || fail "refused registration not audited"
[ "$(sqlite3 "$SITE/site.db" "SELECT count(*) FROM devices WHERE bulk_guid='$G'")" = 1 ] || fail "one device with the token"
[ "$(sqlite3 "$SITE/site.db" 'SELECT count(*) FROM bulk_tokens')" = 4 ] || fail "refused lifetimes created tokens"
[ "$(n "event='admin.auth' AND outcome='refused' AND detail='wrong bearer secret'")" = 1 ] || fail "wrong secret sign-in not audited"
D=$(json_get device_guid < "$T/browser-dev2/state.json")
[ "$(n "event='device.block' AND subject='$D' AND outcome='ok' AND actor LIKE '$actor_like'")" = 1 ] || fail "device block not audited as the admin"
[ "$(n "event='device.unblock' AND subject='$D' AND outcome='ok' AND actor LIKE '$actor_like'")" = 1 ] || fail "device unblock not audited"
[ "$(n "event='setting.set' AND subject='internal-registration' AND actor LIKE '$actor_like'")" = 2 ] || fail "settings not audited as the admin"
[ "$(n "event='setting.device' AND subject='$D' AND actor LIKE '$actor_like'")" = 2 ] || fail "per-device allow-cmg not audited"
[ "$(sqlite3 "$SITE/site.db" "SELECT blocked || '/' || ifnull(allow_cmg, 'default') FROM devices WHERE guid='$D'")" = 0/default ] || fail "device left changed"
ok "audit: new, block, unblock by the admin identity; the refused registration; the wrong sign-in"
ok "audit: device block/unblock, per-device allow-cmg and site settings by the admin identity"

for f in console.png console-new-token.png console-login.png console-confirm.png \
	console-dashboard.png console-devices.png console-settings.png console-audit.png console-keys.png; do
	[ -s "$ARTIFACTS/$f" ] || fail "no screenshot $f"
	head -c 8 "$ARTIFACTS/$f" | od -An -tx1 | has '89 50 4e 47' || fail "$f is not a PNG"
done
ok "screenshots in $ARTIFACTS: console.png, console-new-token.png, console-login.png, console-confirm.png, console-dashboard.png, console-devices.png, console-settings.png, console-audit.png, console-keys.png"

assert_no_tokens_in_logs
stop_server
$STK audit verify >/dev/null || fail "audit verify"
ok "audit chain verifies"
