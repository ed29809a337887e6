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
      await refresh();
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
    $('new-create').disabled = true;
    try {
      // Sent as typed: the server applies the CLI's lifetime rules.
      const t = await api('POST', 'bulk', { lifetime_minutes: life });
      $('new-form').hidden = true;
      $('new-guid').textContent = t.guid;
      $('new-from').textContent = when(t.valid_from);
      $('new-to').textContent = when(t.valid_to) + ' (' + t.lifetime_minutes + ' minutes)';
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
    $('secret').focus();
  });
})();
