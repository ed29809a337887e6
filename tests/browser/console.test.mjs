// The admin console in headless Chromium (Debian chromium), driven by
// playwright-core. Run by tests/integration/console_browser.sh, which starts
// the server and passes: ADMIN_URL, SECRET_FILE, AGENT, CMG, MP, TLS_CRT, T,
// ARTIFACTS, CHROMIUM, and what it registered before: EXPECT_REGS devices,
// EXPECT_MP of them through the MP. Prints "ok - ..." per step; any failure throws.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = process.env;
for (const k of ['ADMIN_URL', 'SECRET_FILE', 'AGENT', 'CMG', 'MP', 'TLS_CRT', 'T', 'ARTIFACTS',
  'EXPECT_REGS', 'EXPECT_MP'])
  assert.ok(env[k], `${k} not set`);
const ok = (msg) => console.log(`ok - ${msg}`);
const tokFile = path.join(env.T, 'browser-bulk.tok');

// Register a new device through the CMG with the bulk token, as the agent
// does on the internet (mutual TLS with its own certificate).
function register(name) {
  return spawnSync(env.AGENT, ['--state', path.join(env.T, name), '--ca', env.TLS_CRT,
    '--clock-offset', '0', 'register', '--cmg', env.CMG, '--regtoken-file', tokFile],
  { encoding: 'utf8', timeout: 60000 });
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const problems = [];
try {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true, // the test's self-signed server certificate
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: env.ADMIN_URL });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  // A CSP violation or a script error shows up here.
  // The refusals this test provokes (one wrong secret, four bad lifetimes,
  // four bad limits)
  // are logged by Chromium as failed loads: counted, not problems.
  const refusals = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (/Failed to load resource: .* status of 40[01] /.test(m.text())) refusals.push(m.text());
    else problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // Chromium must not talk to anything but the console.
  page.on('request', (r) => {
    if (!r.url().startsWith(env.ADMIN_URL)) problems.push(`request outside the console: ${r.url()}`);
  });

  const rows = page.locator('#certs-body tr');
  const row = (id) => page.locator(`#certs-body tr[data-id="${id}"]`);
  const status = (id) => row(id).locator('td').nth(4);

  // ---- sign in ----
  const resp = await page.goto(env.ADMIN_URL + '/');
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-security-policy'], /default-src 'self'/);
  await page.locator('#login').waitFor();
  await page.screenshot({ path: path.join(env.ARTIFACTS, 'console-login.png') });
  await page.fill('#secret', 'A'.repeat(43));
  await page.click('#login-submit');
  await page.locator('#login-error').filter({ hasText: 'not the admin secret' }).waitFor();
  assert.ok(await page.locator('#console').isHidden());
  ok('wrong secret: stays on the sign-in form with an error');
  const secret = fs.readFileSync(env.SECRET_FILE, 'utf8').trim();
  await page.fill('#secret', secret);
  await page.click('#login-submit');
  await page.locator('#console').waitFor();
  await page.locator('#certs-body tr[data-kind="site"]').waitFor();
  assert.equal(await page.inputValue('#secret'), '', 'the secret is cleared from the field');
  const initial = await rows.count();
  assert.equal(initial, 4, 'site certificate and three bulk tokens');
  ok(`signed in with the admin secret; table shows ${initial} rows`);

  // ---- new bulk token: the CLI's lifetime rules, then a good one ----
  await page.click('#new-open');
  for (const [v, msg] of [['0', 'at least 1 minute'], ['10081', 'over the maximum'],
    ['abc', 'not a whole number'], ['-5', 'negative']]) {
    await page.fill('#lifetime', v);
    await page.click('#new-create');
    await page.locator('#new-error').filter({ hasText: msg }).waitFor();
  }
  assert.equal(await rows.count(), initial, 'nothing created by a refused lifetime');
  ok('lifetime 0, 10081, abc, -5 refused in the form with the CLI\'s messages');
  // Use limit and networks (bulk new --max-uses / --source): the CLI's rules.
  await page.fill('#lifetime', '120');
  for (const [mu, src, msg] of [['0', '', 'must be at least 1'], ['1000001', '', 'over the maximum'],
    ['5', '10.1.2.3/8', 'host bits set'], ['5', '300.0.0.0/8', 'not an IPv4 or IPv6 network']]) {
    await page.fill('#max-uses', mu);
    await page.fill('#source', src);
    await page.click('#new-create');
    await page.locator('#new-error').filter({ hasText: msg }).waitFor();
  }
  assert.equal(await rows.count(), initial, 'nothing created by a refused limit');
  ok('max uses 0 and 1000001, a source with host bits set and a malformed one refused with the CLI\'s messages');
  // The test's registrations come from loopback: bound to it, 5 uses.
  await page.fill('#max-uses', '5');
  await page.fill('#source', '127.0.0.0/8');
  await page.click('#new-create');
  await page.locator('#new-result').waitFor();
  const token = await page.inputValue('#new-token');
  const guid = (await page.textContent('#new-guid')).trim();
  assert.match(token, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWS compact token');
  assert.match(guid, /^[0-9a-f-]{36}$/);
  assert.match(await page.textContent('#new-result .warn'), /not stored anywhere/);
  assert.match(await page.textContent('#new-to'), /\(120 minutes\)/);
  assert.equal((await page.textContent('#new-max-uses')).trim(), '5 registrations');
  assert.equal((await page.textContent('#new-sources')).trim(), '127.0.0.0/8');
  fs.writeFileSync(tokFile, token, { mode: 0o600 });
  await row(guid).waitFor();
  assert.equal((await status(guid).textContent()).trim(), 'Active');
  assert.equal((await row(guid).locator('td').nth(5).textContent()).trim(), '0');
  assert.equal((await row(guid).locator('td.id .limits').textContent()).trim(), '0/5 usesfrom 127.0.0.0/8');
  ok(`new bulk token ${guid} shown once with the not-stored warning and its limits; in the table as Active, 0/5 uses from 127.0.0.0/8`);

  await page.click('#copy');
  await page.locator('#copied').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
  ok('copy button puts the token on the clipboard');
  await page.screenshot({ path: path.join(env.ARTIFACTS, 'console-new-token.png'), fullPage: true });
  await page.click('#new-done');
  assert.ok(await page.locator('#new-result').isHidden());
  assert.equal(await page.inputValue('#new-token'), '');
  ok('"Done" removes the token from the page');

  // ---- filter by Type ----
  await page.selectOption('#type-filter', 'site');
  await page.waitForFunction(() => document.querySelectorAll('#certs-body tr').length === 1);
  assert.equal(await page.locator('#certs-body tr[data-kind="site"]').count(), 1);
  await page.selectOption('#type-filter', 'bulk');
  await row(guid).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#certs-body tr').length === 4);
  assert.equal(await page.locator('#certs-body tr[data-kind="site"]').count(), 0);
  ok('filter by Type: Site Signing shows the site certificate only; Bulk Registration Token the four tokens');
  await page.selectOption('#type-filter', '');
  await page.waitForFunction(() => document.querySelectorAll('#certs-body tr').length === 5);

  // ---- sort by a column, both ways ----
  const colText = (i) => page.$$eval('#certs-body tr', (trs, i) =>
    trs.map((tr) => tr.children[i].textContent), i);
  await page.click('#certs th[data-col="to"] button');
  await page.waitForSelector('#certs th[data-col="to"][aria-sort="ascending"]');
  let to = await colText(3);
  assert.deepEqual(to, [...to].sort(), 'valid to ascending');
  await page.click('#certs th[data-col="to"] button');
  await page.waitForSelector('#certs th[data-col="to"][aria-sort="descending"]');
  to = await colText(3);
  assert.deepEqual(to, [...to].sort().reverse(), 'valid to descending');
  await page.click('#certs th[data-col="status"] button');
  await page.waitForSelector('#certs th[data-col="status"][aria-sort="ascending"]');
  const st = await colText(4);
  assert.deepEqual(st, [...st].sort(), 'status ascending');
  ok('sort by Valid to (both ways) and by Status');
  await page.click('#certs th[data-col="from"] button');
  await page.click('#certs th[data-col="from"] button');
  await page.waitForSelector('#certs th[data-col="from"][aria-sort="descending"]');

  // ---- block, with confirmation; the CMG then refuses the token ----
  await row(guid).locator('button[data-action="block"]').click();
  await page.locator('#confirm').waitFor();
  assert.match(await page.textContent('#confirm-text'), new RegExp(guid));
  await page.click('#confirm-cancel');
  assert.equal((await status(guid).textContent()).trim(), 'Active');
  ok('Block asks for confirmation; Cancel changes nothing');
  await row(guid).locator('button[data-action="block"]').click();
  await page.locator('#confirm').waitFor();
  await page.screenshot({ path: path.join(env.ARTIFACTS, 'console-confirm.png') });
  await page.click('#confirm-ok');
  await status(guid).filter({ hasText: 'Blocked' }).waitFor();
  await page.locator('#audit-body td', { hasText: /^bulk\.block$/ }).waitFor();
  let r = register('browser-dev1');
  assert.equal(r.status, 1, `blocked token: agent exit ${r.status}: ${r.stderr}`);
  assert.match(r.stderr, /HTTP 403 bulk_token_blocked/);
  ok('blocked in the console: registration through the CMG refused (403 bulk_token_blocked)');
  await page.click('#refresh');
  await row(guid).click();
  await page.locator('#audit-body tr', { hasText: 'device.register.cmg' })
    .filter({ has: page.locator('span.badge.refused') }).waitFor();
  ok('the refused registration appears in the token\'s audit trail');

  // ---- unblock; the token works again ----
  await row(guid).locator('button[data-action="unblock"]').click();
  await page.click('#confirm-ok');
  await status(guid).filter({ hasText: 'Active' }).waitFor();
  r = register('browser-dev2');
  assert.equal(r.status, 0, `unblocked token: agent exit ${r.status}: ${r.stderr}`);
  await page.click('#refresh');
  await row(guid).locator('td').nth(5).filter({ hasText: /^1$/ }).waitFor();
  assert.equal((await row(guid).locator('td.id .limits .uses').textContent()).trim(), '1/5 uses');
  await row(guid).click();
  await page.locator('#audit-body tr', { hasText: 'device.register.cmg' })
    .filter({ has: page.locator('span.badge.ok') }).waitFor();
  await page.locator('#audit-body td', { hasText: /^bulk\.unblock$/ }).waitFor();
  ok('unblocked: registration accepted; devices registered with it: 1; audit trail updated');

  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(env.ARTIFACTS, 'console.png'), fullPage: true });
  ok(`screenshots in ${env.ARTIFACTS}`);

  // ---- dashboard: registrations, renewals, refusals drawn as SVG here ----
  await page.click('#tabs button[data-view="dashboard"]');
  await page.locator('#chart-activity rect[data-series="Registrations"]').first().waitFor();
  const regs = Number(await page.textContent('#tile-reg'));
  assert.equal(regs, Number(env.EXPECT_REGS) + 1, 'registrations in 14 days: the script\'s and the browser test\'s');
  assert.ok(Number(await page.textContent('#tile-ref')) >= 1);
  await page.locator('#legend-refusals li', { hasText: 'bulk_token_blocked (1)' }).waitFor();
  await page.locator('#legend-refusals li', { hasText: 'internal_registration_disabled (1)' }).waitFor();
  assert.ok(await page.locator('#chart-refusals rect[data-series="bulk_token_blocked"]').count() === 1);
  await page.selectOption('#dash-range', 'hour:1');
  await page.waitForFunction(() => document.querySelectorAll('#chart-activity text').length > 12);
  await page.screenshot({ path: path.join(env.ARTIFACTS, 'console-dashboard.png'), fullPage: true });
  ok(`dashboard: ${regs} registrations, refusals by reason (bulk_token_blocked, internal_registration_disabled) as SVG bars`);

  // ---- devices: search, filters, block/unblock, per-device allow-cmg ----
  const policy = (name) => spawnSync(env.AGENT, ['--state', path.join(env.T, name), '--ca',
    env.TLS_CRT, '--clock-offset', '0', 'policy'], { encoding: 'utf8', timeout: 60000 });
  const dev = fs.readFileSync(path.join(env.T, 'browser-dev2', 'state.json'), 'utf8');
  const devGuid = JSON.parse(dev).device_guid;
  assert.match(devGuid, /^[0-9a-f-]{36}$/);
  const devRows = page.locator('#devices-body tr[data-guid]');
  const devRow = page.locator(`#devices-body tr[data-guid="${devGuid}"]`);
  await page.click('#tabs button[data-view="devices"]');
  await devRow.waitFor();
  const allDevs = await devRows.count();
  assert.equal(allDevs, Number(env.EXPECT_REGS) + 1);
  await page.fill('#dev-search', devGuid.slice(0, 13));
  await page.waitForFunction(() => document.querySelectorAll('#devices-body tr[data-guid]').length === 1);
  await page.fill('#dev-search', '');
  await page.selectOption('#dev-via', 'mp');
  await page.waitForFunction((n) => document.querySelectorAll('#devices-body tr[data-guid]').length === n,
    Number(env.EXPECT_MP));
  assert.equal(await devRow.count(), 0, 'a CMG device is not in the MP filter');
  await page.selectOption('#dev-via', 'cmg');
  await devRow.waitFor();
  await page.selectOption('#dev-via', '');
  await page.fill('#dev-bulk', guid);
  await page.waitForFunction(() => document.querySelectorAll('#devices-body tr[data-guid]').length === 1);
  await devRow.waitFor();
  ok(`devices: ${allDevs} listed; search by GUID part, filter by via (mp, cmg) and by bulk token`);

  await devRow.locator('button[data-action="block"]').click();
  await page.locator('#confirm').waitFor();
  assert.match(await page.textContent('#confirm-text'), new RegExp(devGuid));
  await page.click('#confirm-ok');
  await devRow.locator('span.badge.blocked').waitFor();
  r = policy('browser-dev2');
  assert.equal(r.status, 1, `blocked device: ${r.stderr}`);
  assert.match(r.stderr, /device_blocked/);
  await page.fill('#dev-bulk', '');
  await page.selectOption('#dev-status', 'blocked');
  await page.waitForFunction(() => document.querySelectorAll('#devices-body tr[data-guid]').length === 1);
  await page.selectOption('#dev-status', '');
  await devRow.locator('button[data-action="unblock"]').click();
  await page.click('#confirm-ok');
  await devRow.locator('span.badge.active').waitFor();
  r = policy('browser-dev2');
  assert.equal(r.status, 0, `unblocked device: ${r.stderr}`);
  ok('device blocked in the console: the gateway refuses it (device_blocked); unblocked: accepted; status filter');

  await devRow.locator('select[data-role="allow-cmg"]').selectOption('off');
  await page.waitForFunction((g) => document.querySelector(`#devices-body tr[data-guid="${g}"] select`).value === 'off', devGuid);
  r = policy('browser-dev2');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /cloud_gateway_disabled/);
  await page.screenshot({ path: path.join(env.ARTIFACTS, 'console-devices.png'), fullPage: true });
  await devRow.locator('select[data-role="allow-cmg"]').selectOption('default');
  await page.waitForFunction((g) => document.querySelector(`#devices-body tr[data-guid="${g}"] select`).value === 'default', devGuid);
  r = policy('browser-dev2');
  assert.equal(r.status, 0, r.stderr);
  ok('per-device allow-cmg off: the gateway refuses (cloud_gateway_disabled); back to the site default: accepted');

  // ---- settings ----
  await page.click('#tabs button[data-view="settings"]');
  const internal = page.locator('#settings-list .setting[data-name="internal-registration"] select');
  await internal.waitFor();
  assert.equal(await internal.inputValue(), 'on');
  await internal.selectOption('off');
  await page.locator('#settings-saved').waitFor();
  r = spawnSync(env.AGENT, ['--state', path.join(env.T, 'browser-dev3'), '--ca', env.TLS_CRT,
    '--clock-offset', '0', 'register', '--mp', env.MP], { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 1, `internal registration off: ${r.stderr}`);
  assert.match(r.stderr, /internal_registration_disabled/);
  await page.screenshot({ path: path.join(env.ARTIFACTS, 'console-settings.png'), fullPage: true });
  await internal.selectOption('on');
  await page.locator('#settings-saved').waitFor();
  ok('site setting internal-registration off in the console: the MP refuses a registration; on again');

  // ---- audit log and its verification ----
  await page.click('#tabs button[data-view="auditlog"]');
  await page.locator('#log-body tr').first().waitFor();
  await page.click('#log-verify');
  await page.locator('#verify-result.intact').waitFor();
  assert.match(await page.textContent('#verify-result'), /intact: \d+ records, \d+ signed checkpoints/);
  await page.fill('#log-search', 'setting.set');
  await page.waitForFunction(() => [...document.querySelectorAll('#log-body tr')].length === 4 &&
    [...document.querySelectorAll('#log-body tr')].every((tr) => tr.children[3].textContent === 'setting.set'));
  const first = await page.$$eval('#log-body tr', (trs) => trs.map((tr) => tr.children[6].textContent));
  assert.deepEqual(first, ['on', 'off', 'on', 'off'], 'newest first (the console\'s, then the CLI\'s)');
  await page.fill('#log-search', '');
  await page.selectOption('#log-outcome', 'refused');
  await page.waitForFunction(() => document.querySelectorAll('#log-body tr').length > 0 &&
    [...document.querySelectorAll('#log-body tr')].every((tr) => tr.children[5].textContent === 'refused'));
  await page.selectOption('#log-outcome', '');
  await page.waitForFunction(() => [...document.querySelectorAll('#log-body tr')].some((tr) => tr.children[5].textContent === 'ok'));
  await page.screenshot({ path: path.join(env.ARTIFACTS, 'console-audit.png') });
  ok('audit log: newest first, search and outcome filter; "Verify the chain" reports it intact');

  // ---- keys ----
  await page.click('#tabs button[data-view="keys"]');
  await page.locator('#keys-body tr').first().waitFor();
  const keyRow = await page.$$eval('#keys-body tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.equal(keyRow.length, 1);
  assert.deepEqual(keyRow[0].slice(1, 5), ['main', 'file', 'rsa2048', 'active']);
  await page.locator('#key-attrs dt', { hasText: 'file-mode' }).waitFor();
  assert.match(await page.textContent('#key-attrs'), /0600/);
  await page.screenshot({ path: path.join(env.ARTIFACTS, 'console-keys.png'), fullPage: true });
  ok('keys: node main, file backend, rsa2048, active; attributes read back from the device (file-mode 0600)');
  await page.click('#tabs button[data-view="certs"]');
  await page.locator('#certs-body tr').first().waitFor();

  // ---- nothing kept by the browser ----
  assert.equal(await page.evaluate(() => document.cookie), '');
  assert.equal(await page.evaluate(() => localStorage.length + sessionStorage.length), 0);
  assert.deepEqual(await context.cookies(), []);
  await page.click('#signout');
  await page.locator('#login').waitFor();
  assert.ok(await page.locator('#console').isHidden());
  await page.reload();
  await page.locator('#login').waitFor();
  assert.ok(await page.locator('#console').isHidden());
  ok('no cookie or storage; sign out and reload both end at the sign-in form');

  assert.deepEqual(problems, [], 'no script error, CSP violation or outside request');
  assert.equal(refusals.length, 9, `expected refusals only: ${refusals.join('; ')}`);
  ok('no script error, no CSP violation, no request outside the console');
  fs.writeFileSync(path.join(env.T, 'browser-guid'), guid + '\n');
} finally {
  await browser.close();
}
