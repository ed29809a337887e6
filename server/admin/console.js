// sitetoken admin console. Vanilla JS, no framework, no build step.
//
// The admin secret lives in this closure only (no cookie, no storage) and
// goes out as "Authorization: Bearer" on each API call, so no other site can
// make the browser act with it. Everything shown is set with textContent.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  let secret = null;
  const state = { type: '', sort: 'from', desc: true, selected: null, rows: [] };

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const init = {
      method,
      headers: { Authorization: 'Bearer ' + secret },
      cache: 'no-store',
      credentials: 'omit',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch('/api/v1/' + path, init);
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const err = new ApiError(res.status, data && data.error,
        (data && data.message) || 'HTTP ' + res.status);
      if (res.status === 401 && secret !== null && path !== 'session')
        signOut('The admin secret is no longer accepted (rotated?). Sign in again.');
      throw err;
    }
    return data;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // "2026-11-25T17:40:00Z" -> "2026-11-25 17:40:00 UTC"
  function when(iso) {
    return iso.replace('T', ' ').replace('Z', ' UTC');
  }

  // A table cell with the time to the minute; the full time as its title.
  function whenCell(iso) {
    const td = el('td', 'time', iso.slice(0, 16).replace('T', ' ') + ' UTC');
    td.title = when(iso);
    return td;
  }

  function showError(id, msg) {
    const p = $(id);
    p.textContent = msg || '';
    p.hidden = !msg;
  }

  // ---- sign in / out ----

  async function signIn(ev) {
    ev.preventDefault();
    const input = $('secret');
    const value = input.value.trim();
    input.value = '';
    showError('login-error', '');
    if (!value) return;
    secret = value;
    $('login-submit').disabled = true;
    try {
      const s = await api('GET', 'session');
      $('who-site').textContent = s.site;
      $('who-actor').textContent = s.actor;
      $('lifetime').value = String(s.lifetime_default);
      $('login').hidden = true;
      $('console').hidden = false;
      $('who').hidden = false;
      await show(current);
    } catch (e) {
      secret = null;
      showError('login-error', e.status === 401
        ? 'That is not the admin secret of this site.' : e.message);
    } finally {
      $('login-submit').disabled = false;
    }
  }

  function signOut(msg) {
    secret = null;
    state.selected = null;
    state.rows = [];
    forgetToken();
    $('certs-body').replaceChildren();
    $('audit-body').replaceChildren();
    for (const id of ['devices-body', 'log-body', 'keys-body', 'key-attrs', 'settings-list',
      'chart-activity', 'chart-refusals', 'legend-activity', 'legend-refusals'])
      $(id).replaceChildren();
    $('verify-result').hidden = true;
    $('console').hidden = true;
    $('who').hidden = true;
    $('login').hidden = false;
    showError('login-error', typeof msg === 'string' ? msg : '');
    $('secret').focus();
  }

  // ---- certificates table ----

  async function refresh() {
    const q = new URLSearchParams();
    if (state.type) q.set('type', state.type);
    q.set('sort', (state.desc ? '-' : '') + state.sort);
    try {
      const data = await api('GET', 'certs?' + q.toString());
      state.rows = data.rows;
      showError('list-error', '');
      render();
    } catch (e) {
      if (e.status !== 401) showError('list-error', 'Cannot load the list: ' + e.message);
    }
  }

  function render() {
    const body = $('certs-body');
    const rows = state.rows.map(rowFor);
    if (rows.length === 0) {
      const tr = el('tr');
      const td = el('td', 'empty', 'Nothing of this type.');
      td.colSpan = 7;
      tr.append(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    const n = state.rows.length;
    $('count').textContent = n + (n === 1 ? ' item' : ' items');
    for (const th of document.querySelectorAll('#certs th[data-col]')) {
      if (th.dataset.col === state.sort)
        th.setAttribute('aria-sort', state.desc ? 'descending' : 'ascending');
      else
        th.removeAttribute('aria-sort');
    }
  }

  function rowFor(r) {
    const tr = el('tr');
    tr.dataset.id = r.id;
    tr.dataset.kind = r.kind;
    tr.dataset.status = r.status;
    if (r.id === state.selected) tr.classList.add('selected');
    const type = el('td');
    type.append(el('span', 'type ' + r.kind, r.type));
    const id = el('td', 'id');
    id.append(el('code', null, r.id));
    const status = el('td');
    status.append(el('span', 'badge ' + r.status.toLowerCase(), r.status));
    const actions = el('td', 'actions');
    if (r.kind === 'bulk') {
      const block = r.status !== 'Blocked';
      const b = el('button', 'btn small' + (block ? '' : ' primary'), block ? 'Block' : 'Unblock');
      b.type = 'button';
      b.dataset.action = block ? 'block' : 'unblock';
      b.addEventListener('click', (ev) => {
        ev.stopPropagation();
        setBlocked(r.id, block);
      });
      actions.append(b);
    }
    // Limits of a bulk token (bulk new --max-uses / --source), under its
    // GUID: uses/limit and its networks.
    if (r.kind === 'bulk' && (r.max_uses != null || r.sources)) {
      const limits = el('span', 'limits');
      if (r.max_uses != null) limits.append(el('span', 'uses', r.uses + '/' + r.max_uses + ' uses'));
      if (r.sources) limits.append(el('span', 'nets', 'from ' + r.sources.replaceAll(',', ', ')));
      id.append(limits);
    }
    tr.append(type, id, whenCell(r.valid_from), whenCell(r.valid_to),
      status, el('td', 'num', String(r.devices)), actions);
    tr.addEventListener('click', () => select(r));
    return tr;
  }

  function sortBy(col) {
    if (state.sort === col) state.desc = !state.desc;
    else {
      state.sort = col;
      state.desc = false;
    }
    refresh();
  }

  // ---- block / unblock ----

  function confirmDialog(title, text, okLabel) {
    const d = $('confirm');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    $('confirm-ok').className = 'btn ' + (okLabel === 'Block' ? 'danger' : 'primary');
    d.returnValue = 'cancel';
    return new Promise((resolve) => {
      d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
      d.showModal();
    });
  }

  async function setBlocked(guid, block) {
    const ok = await confirmDialog(
      block ? 'Block this bulk token?' : 'Unblock this bulk token?',
      block
        ? 'Registrations that present bulk token ' + guid + ' will be refused until it is unblocked. Devices already registered keep their own client tokens.'
        : 'Bulk token ' + guid + ' will be accepted again for registrations while it is valid.',
      block ? 'Block' : 'Unblock');
    if (!ok) return;
    try {
      await api('POST', 'bulk/' + guid + '/' + (block ? 'block' : 'unblock'));
      state.selected = guid;
      await refresh();
      await loadAudit(guid);
    } catch (e) {
      if (e.status !== 401) showError('list-error', (block ? 'Block' : 'Unblock') + ' failed: ' + e.message);
    }
  }

  // ---- audit trail ----

  function select(r) {
    state.selected = r.id;
    for (const tr of $('certs-body').children)
      tr.classList.toggle('selected', tr.dataset.id === r.id);
    if (r.kind !== 'bulk') {
      $('audit-subject').textContent = '';
      $('audit-table').hidden = true;
      $('audit-hint').hidden = false;
      $('audit-hint').textContent = 'The site certificate is made at site init; select a bulk registration token to see its audit trail.';
      return;
    }
    loadAudit(r.id);
  }

  async function loadAudit(guid) {
    try {
      const data = await api('GET', 'bulk/' + guid + '/audit');
      $('audit-subject').textContent = data.guid;
      const rows = data.records.slice().reverse().map((a) => {
        const tr = el('tr');
        const outcome = el('td');
        outcome.append(el('span', 'badge ' + a.outcome, a.outcome));
        tr.append(el('td', 'num', String(a.seq)), el('td', null, when(a.time)),
          el('td', null, a.actor), el('td', null, a.event), outcome,
          el('td', 'detail', a.detail));
        return tr;
      });
      $('audit-body').replaceChildren(...rows);
      $('audit-table').hidden = false;
      $('audit-hint').hidden = true;
    } catch (e) {
      if (e.status !== 401) {
        $('audit-hint').hidden = false;
        $('audit-hint').textContent = 'Cannot load the audit trail: ' + e.message;
      }
    }
  }

  // ---- new bulk token ----

  function openNew() {
    forgetToken();
    showError('new-error', '');
    $('new-form').hidden = false;
    $('lifetime').focus();
    $('lifetime').select();
  }

  async function createToken(ev) {
    ev.preventDefault();
    showError('new-error', '');
    const life = $('lifetime').value.trim();
    const maxUses = $('max-uses').value.trim();
    const source = $('source').value.trim();
    $('new-create').disabled = true;
    try {
      // Sent as typed: the server applies the CLI's rules (lifetime,
      // --max-uses, --source); an empty optional field is left out.
      const body = { lifetime_minutes: life };
      if (maxUses) body.max_uses = maxUses;
      if (source) body.source = source;
      const t = await api('POST', 'bulk', body);
      $('new-form').hidden = true;
      $('new-guid').textContent = t.guid;
      $('new-from').textContent = when(t.valid_from);
      $('new-to').textContent = when(t.valid_to) + ' (' + t.lifetime_minutes + ' minutes)';
      $('new-max-uses').textContent = t.max_uses != null ? t.max_uses + ' registrations' : 'no limit';
      $('new-sources').textContent = t.sources ? t.sources.replaceAll(',', ', ') : 'anywhere';
      $('new-token').value = t.token;
      $('copied').hidden = true;
      $('new-result').hidden = false;
      state.selected = t.guid;
      await refresh();
      await loadAudit(t.guid);
    } catch (e) {
      if (e.status !== 401) showError('new-error', e.message);
    } finally {
      $('new-create').disabled = false;
    }
  }

  async function copyToken() {
    const ta = $('new-token');
    try {
      await navigator.clipboard.writeText(ta.value);
    } catch (e) {
      ta.select();
      document.execCommand('copy');
    }
    $('copied').hidden = false;
  }

  function forgetToken() {
    $('new-token').value = '';
    $('new-guid').textContent = '';
    $('new-result').hidden = true;
  }

  // ---- views ----

  const views = {
    dashboard: ['Monitoring', 'Dashboard', () => loadStats()],
    devices: ['Assets', 'Devices', () => loadDevices()],
    certs: ['Security', 'Certificates', () => refresh()],
    auditlog: ['Monitoring', 'Audit log', () => loadLog(false)],
    keys: ['Security', 'Site keys', () => loadKeys()],
    settings: ['Site', 'Settings', () => loadSettings()],
  };
  let current = 'certs';

  function show(view) {
    current = view;
    for (const b of document.querySelectorAll('#tabs button')) {
      if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    }
    for (const v of Object.keys(views)) $('view-' + v).hidden = v !== view;
    $('crumb-area').textContent = views[view][0];
    $('crumb').textContent = views[view][1];
    return views[view][2]();
  }

  function badge(cls, text) {
    return el('span', 'badge ' + cls, text);
  }

  function shortTime(iso) {
    return iso.slice(0, 16).replace('T', ' ');
  }

  // ---- dashboard: SVG drawn here, nothing fetched from outside ----

  const SVGNS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Stacked bars: series = [{name, values}], one colour class per series.
  function drawChart(id, legendId, times, step, series) {
    const W = 960, H = 220, L = 44, R = 12, T = 12, B = 28;
    const box = $(id);
    const n = times.length;
    const totals = times.map((_, i) => series.reduce((s, x) => s + x.values[i], 0));
    const max = Math.max(1, ...totals);
    // A round scale: 1, 2, 5 x 10^k, four grid lines.
    const pow = Math.pow(10, Math.floor(Math.log10(max / 4 || 1)));
    // Counts are whole numbers: no grid step under 1.
    const unit = Math.max(1, [1, 2, 5, 10].map((m) => m * pow).find((u) => u * 4 >= max) || max);
    const top = unit * 4;
    const y = (v) => H - B - (v / top) * (H - T - B);
    const bw = (W - L - R) / n;
    const parts = [];
    for (let g = 0; g <= 4; g++) {
      const gy = y(g * unit);
      parts.push(svg('line', { x1: L, x2: W - R, y1: gy, y2: gy, class: g ? 'grid-line' : 'axis' }));
      parts.push(svg('text', { x: L - 6, y: gy + 4, 'text-anchor': 'end' }, String(g * unit)));
    }
    const every = Math.ceil(n / 12);
    for (let i = 0; i < n; i++) {
      let base = 0;
      series.forEach((s, k) => {
        const v = s.values[i];
        if (!v) return;
        const r = svg('rect', { x: L + i * bw + bw * 0.15, width: Math.max(1, bw * 0.7),
          y: y(base + v), height: y(base) - y(base + v), class: 'c' + (s.color ?? k) });
        r.append(svg('title', {}, `${s.name}: ${v} (${new Date(times[i] * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC)`));
        r.dataset.series = s.name;
        parts.push(r);
        base += v;
      });
      if (i % every === 0) {
        const d = new Date(times[i] * 1000).toISOString();
        parts.push(svg('text', { x: L + i * bw + bw / 2, y: H - 10, 'text-anchor': 'middle' },
          step < 86400 ? d.slice(11, 16) : d.slice(5, 10)));
      }
    }
    if (totals.every((t) => t === 0))
      parts.push(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty-note' },
        'Nothing in this period'));
    box.replaceChildren(...parts);
    $(legendId).replaceChildren(...series.map((s, k) => {
      const li = el('li');
      li.append(el('span', 'sw c' + (s.color ?? k)), el('span', null,
        `${s.name} (${s.values.reduce((a, b) => a + b, 0)})`));
      return li;
    }));
  }

  async function loadStats() {
    const [bucket, days] = $('dash-range').value.split(':');
    try {
      const d = await api('GET', `stats?bucket=${bucket}&days=${days}`);
      $('tile-reg').textContent = String(d.totals.registrations);
      $('tile-ren').textContent = String(d.totals.renewals);
      $('tile-ref').textContent = String(d.totals.refusals);
      drawChart('chart-activity', 'legend-activity', d.times, d.step, [
        { name: 'Registrations', values: d.registrations, color: 0 },
        { name: 'Renewals', values: d.renewals, color: 1 }]);
      const reasons = Object.keys(d.refusals).sort();
      drawChart('chart-refusals', 'legend-refusals', d.times, d.step,
        reasons.map((r, k) => ({ name: r, values: d.refusals[r], color: 2 + (k % 6) })));
      showError('dash-error', '');
    } catch (e) {
      if (e.status !== 401) showError('dash-error', 'Cannot load the figures: ' + e.message);
    }
  }

  // ---- devices ----

  let devTimer = null;
  async function loadDevices() {
    const q = new URLSearchParams();
    const search = $('dev-search').value.trim();
    if (search) q.set('q', search);
    if ($('dev-status').value) q.set('status', $('dev-status').value);
    if ($('dev-via').value) q.set('via', $('dev-via').value);
    const bulk = $('dev-bulk').value.trim();
    if (bulk) q.set('bulk', bulk);
    try {
      const d = await api('GET', 'devices?' + q.toString());
      const rows = d.rows.map((r) => deviceRow(r, d.allow_cmg_default));
      if (rows.length === 0) {
        const tr = el('tr');
        const td = el('td', 'empty', 'No device matches.');
        td.colSpan = 8;
        tr.append(td);
        rows.push(tr);
      }
      $('devices-body').replaceChildren(...rows);
      $('dev-count').textContent = d.total + (d.total === 1 ? ' device' : ' devices') +
        (d.total > d.rows.length ? ` (first ${d.rows.length} shown)` : '');
      $('dev-default').textContent = 'Site default for the cloud gateway: ' +
        (d.allow_cmg_default ? 'on' : 'off') + ' (Settings).';
      showError('dev-error', '');
    } catch (e) {
      if (e.status !== 401) showError('dev-error', 'Cannot load the devices: ' + e.message);
    }
  }

  function deviceRow(r, siteDefault) {
    const tr = el('tr');
    tr.dataset.guid = r.guid;
    tr.dataset.status = r.status;
    const guid = el('td', 'guid');
    const code = el('code', null, r.guid);
    code.title = 'certificate x5t#S256 ' + r.thumbprint + '\nlast token jti ' + r.last_jti;
    guid.append(code);
    const via = el('td');
    via.append(badge(r.via, r.via.toUpperCase()));
    const bulk = el('td', 'guid');
    if (r.bulk_guid) {
      // The first group is enough to tell tokens apart; all of it on hover.
      const c = el('code', null, r.bulk_guid.slice(0, 8) + '…');
      c.title = r.bulk_guid;
      bulk.append(c);
    }
    else bulk.append(el('span', 'muted', '—'));
    const status = el('td');
    status.append(badge(r.status.toLowerCase(), r.status));
    const allow = el('td');
    const sel = el('select');
    sel.setAttribute('aria-label', 'Allow cloud gateway for ' + r.guid);
    sel.dataset.role = 'allow-cmg';
    for (const [v, label] of [['default', `Site default (${siteDefault ? 'on' : 'off'})`],
      ['on', 'On'], ['off', 'Off']]) {
      const o = el('option', null, label);
      o.value = v;
      sel.append(o);
    }
    sel.value = r.allow_cmg;
    sel.addEventListener('change', () => setAllowCmg(r.guid, sel.value));
    allow.append(sel);
    const actions = el('td', 'actions');
    const block = !r.blocked;
    const b = el('button', 'btn small' + (block ? '' : ' primary'), block ? 'Block' : 'Unblock');
    b.type = 'button';
    b.dataset.action = block ? 'block' : 'unblock';
    b.addEventListener('click', () => setDeviceBlocked(r.guid, block));
    actions.append(b);
    tr.append(guid, el('td', 'time', shortTime(r.registered)), via, bulk,
      el('td', 'time', shortTime(r.token_expires)), status, allow, actions);
    return tr;
  }

  async function setDeviceBlocked(guid, block) {
    const ok = await confirmDialog(block ? 'Block this device?' : 'Unblock this device?',
      block
        ? 'Device ' + guid + ' will be refused by the cloud gateway (policy, renewal) and cannot register again until it is unblocked.'
        : 'Device ' + guid + ' will be accepted again.',
      block ? 'Block' : 'Unblock');
    if (!ok) return;
    try {
      await api('POST', 'devices/' + guid + '/' + (block ? 'block' : 'unblock'));
      await loadDevices();
    } catch (e) {
      if (e.status !== 401) showError('dev-error', (block ? 'Block' : 'Unblock') + ' failed: ' + e.message);
    }
  }

  async function setAllowCmg(guid, value) {
    try {
      await api('POST', 'devices/' + guid + '/allow-cmg', { value });
      await loadDevices();
    } catch (e) {
      if (e.status !== 401) showError('dev-error', 'Cannot change the setting: ' + e.message);
    }
  }

  // ---- audit log ----

  const log = { before: 0, rows: [] };
  async function loadLog(more) {
    const q = new URLSearchParams();
    q.set('limit', '100');
    const search = $('log-search').value.trim();
    if (search) q.set('q', search);
    if ($('log-outcome').value) q.set('outcome', $('log-outcome').value);
    if (more && log.before) q.set('before', String(log.before));
    try {
      const d = await api('GET', 'audit?' + q.toString());
      const rows = d.records.map((a) => {
        const tr = el('tr');
        tr.dataset.seq = String(a.seq);
        const outcome = el('td');
        outcome.append(badge(a.outcome, a.outcome));
        tr.append(el('td', 'num', String(a.seq)), el('td', null, when(a.time)),
          el('td', null, a.actor), el('td', null, a.event), el('td', 'detail', a.subject),
          outcome, el('td', 'detail', a.detail));
        return tr;
      });
      if (more) $('log-body').append(...rows);
      else $('log-body').replaceChildren(...rows);
      log.before = d.next_before;
      $('log-more').hidden = !d.next_before;
      $('log-count').textContent = d.matched + (d.matched === 1 ? ' record' : ' records');
      showError('log-error', '');
    } catch (e) {
      if (e.status !== 401) showError('log-error', 'Cannot load the audit log: ' + e.message);
    }
  }

  async function verifyLog() {
    const box = $('verify-result');
    $('log-verify').disabled = true;
    box.hidden = false;
    box.className = 'verify';
    box.textContent = 'Verifying every record and checkpoint signature…';
    try {
      const v = await api('GET', 'audit/verify');
      box.className = 'verify ' + (v.intact ? 'intact' : 'broken');
      box.dataset.intact = String(v.intact);
      box.textContent = v.intact
        ? `Audit log intact: ${v.records} records, ${v.checkpoints} signed checkpoints (last at record ${v.last_checkpoint_seq}).`
        : `Audit log TAMPERED at record ${v.bad_seq}: ${v.problem}`;
    } catch (e) {
      box.className = 'verify broken';
      box.textContent = 'Cannot verify: ' + e.message;
    } finally {
      $('log-verify').disabled = false;
    }
  }

  // ---- keys ----

  async function loadKeys() {
    try {
      const d = await api('GET', 'keys');
      $('keys-where').textContent = `node ${d.node}, ${d.store} store`;
      $('keys-body').replaceChildren(...d.keys.map((k) => {
        const tr = el('tr');
        tr.dataset.kid = k.kid;
        const kid = el('td', 'guid');
        kid.append(el('code', null, k.kid));
        if (k.mine) kid.append(el('span', 'muted', ' (this node)'));
        const st = el('td');
        st.append(badge(k.status === 'active' ? 'active' : k.status === 'retiring' ? 'unchanged' : 'expired', k.status));
        const iso = (t) => (t ? new Date(t * 1000).toISOString().slice(0, 16).replace('T', ' ') : '—');
        tr.append(kid, el('td', null, k.node), el('td', null, k.backend),
          el('td', null, k.key_type), st, el('td', 'time', iso(k.created_at)),
          el('td', 'time', iso(k.not_after)));
        return tr;
      }));
      const mine = d.keys.find((k) => k.mine);
      const dl = $('key-attrs');
      const items = [];
      const add = (name, value) => items.push(el('dt', null, name), el('dd', null, value));
      if (mine && mine.attributes) {
        add('kid', mine.kid);
        add('location', mine.location);
        add('non-exportable', mine.non_exportable ? 'yes (enforced by the device)' : 'no');
        for (const a of mine.attributes) add(a.name, a.value);
        if (mine.attestation !== undefined)
          add('attestation', typeof mine.attestation === 'string' ? mine.attestation : JSON.stringify(mine.attestation));
      } else
        add('error', (mine && mine.describe_error) || 'this node has no active key');
      dl.replaceChildren(...items);
      showError('keys-error', '');
    } catch (e) {
      if (e.status !== 401) showError('keys-error', 'Cannot load the keys: ' + e.message);
    }
  }

  // ---- settings ----

  function renderSettings(list) {
    $('settings-list').replaceChildren(...list.map((s) => {
      const div = el('div', 'setting');
      div.dataset.name = s.name;
      const sel = el('select');
      sel.setAttribute('aria-label', s.name);
      for (const v of ['on', 'off']) {
        const o = el('option', null, v === 'on' ? 'On' : 'Off');
        o.value = v;
        sel.append(o);
      }
      sel.value = s.value;
      sel.addEventListener('change', () => saveSetting(s.name, sel.value));
      div.append(el('span', 'name', s.name), el('span', 'what', s.description + ` (default ${s.default})`), sel);
      return div;
    }));
  }

  async function loadSettings() {
    try {
      renderSettings((await api('GET', 'settings')).settings);
      showError('settings-error', '');
    } catch (e) {
      if (e.status !== 401) showError('settings-error', 'Cannot load the settings: ' + e.message);
    }
  }

  async function saveSetting(name, value) {
    $('settings-saved').hidden = true;
    try {
      renderSettings((await api('POST', 'settings', { name, value })).settings);
      $('settings-saved').hidden = false;
      showError('settings-error', '');
    } catch (e) {
      if (e.status !== 401) showError('settings-error', 'Cannot save: ' + e.message);
      await loadSettings();
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', signIn);
    $('signout').addEventListener('click', () => signOut(''));
    $('refresh').addEventListener('click', refresh);
    $('type-filter').addEventListener('change', (ev) => {
      state.type = ev.target.value;
      refresh();
    });
    for (const b of document.querySelectorAll('#certs th button[data-sort]'))
      b.addEventListener('click', () => sortBy(b.dataset.sort));
    $('new-open').addEventListener('click', openNew);
    $('new-cancel').addEventListener('click', () => { $('new-form').hidden = true; });
    $('new-form').addEventListener('submit', createToken);
    $('copy').addEventListener('click', copyToken);
    $('new-done').addEventListener('click', forgetToken);
    for (const b of document.querySelectorAll('#tabs button'))
      b.addEventListener('click', () => show(b.dataset.view));
    $('dash-range').addEventListener('change', loadStats);
    $('dash-refresh').addEventListener('click', loadStats);
    $('dev-refresh').addEventListener('click', loadDevices);
    for (const id of ['dev-status', 'dev-via'])
      $(id).addEventListener('change', loadDevices);
    for (const id of ['dev-search', 'dev-bulk'])
      $(id).addEventListener('input', () => {
        clearTimeout(devTimer);
        devTimer = setTimeout(loadDevices, 250);
      });
    $('log-refresh').addEventListener('click', () => loadLog(false));
    $('log-more').addEventListener('click', () => loadLog(true));
    $('log-verify').addEventListener('click', verifyLog);
    $('log-outcome').addEventListener('change', () => loadLog(false));
    $('log-search').addEventListener('input', () => {
      clearTimeout(devTimer);
      devTimer = setTimeout(() => loadLog(false), 250);
    });
    $('keys-refresh').addEventListener('click', loadKeys);
    $('secret').focus();
  });
})();
