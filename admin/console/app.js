// Herald web console: a single-page app over the admin JSON API (admin/API.md).
// Plain ES modules, no build step. Every piece of text that reaches the DOM goes
// through `html` (escaped by default) or textContent; `raw()` marks markup that
// this file wrote itself.
import { t, getLang, setLang, langTag, LANGS } from './i18n.js';
import DOMPurify from './purify.es.mjs';

// ---------------------------------------------------------------- HTML helpers

class Safe {
  constructor(s) { this.s = s; }
  toString() { return this.s; }
}
const raw = (s) => new Safe(String(s));
const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
function esc(v) { return String(v ?? '').replace(/[&<>"']/g, (c) => ESC[c]); }
function part(v) {
  if (v instanceof Safe) return v.s;
  if (Array.isArray(v)) return v.map(part).join('');
  if (v === null || v === undefined || v === false) return '';
  return esc(v);
}
/** Tagged template: interpolated values are escaped unless they are Safe. */
function html(strings, ...vals) {
  let out = strings[0];
  vals.forEach((v, i) => { out += part(v) + strings[i + 1]; });
  return new Safe(out);
}
function setHtml(el, safe) {
  if (!(safe instanceof Safe)) throw new Error('setHtml needs html``');
  el.innerHTML = safe.s;
}
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const on = (root, sel, ev, fn) => $$(sel, root).forEach((el) => el.addEventListener(ev, fn));

// ------------------------------------------------------------------- API layer

class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

const state = { me: null, perms: new Set(), accountTypes: null };

/** The one way to talk to the backend. Throws ApiError; 401 → login page. */
async function api(method, path, body, opts = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json', 'Accept-Language': langTag() } };
  if (opts.bearer) init.headers.Authorization = `Bearer ${opts.bearer}`;
  if (opts.form) init.body = opts.form;
  else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch('/api/v1' + path, init);
  } catch (e) {
    throw new ApiError(0, 'network', t('err.network'));
  }
  const text = res.status === 204 ? '' : await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const err = new ApiError(res.status, e.code || String(res.status), e.message || `${res.status} ${res.statusText}`, e.field);
    if (res.status === 401 && !opts.no401) {
      const wasIn = !!state.me;
      state.me = null;
      state.perms = new Set();
      if (!['#/login', '#/register'].includes(location.hash)) {
        if (wasIn) toast(t('err.session'), 'error');
        go('#/login');
      }
    }
    throw err;
  }
  return data;
}
const items = (d) => (Array.isArray(d) ? d : (d && Array.isArray(d.items) ? d.items : []));
function qs(params) {
  const p = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '');
  return p.length ? '?' + p.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&') : '';
}
const can = (p) => state.perms.has(p);

// ------------------------------------------------------------ feedback helpers

/** Download an export (.xlsx) of the API, its headers in the console's language. */
async function download(path, filename) {
  let res;
  try {
    res = await fetch('/api/v1' + path, { credentials: 'same-origin', headers: { 'Accept-Language': getLang() === 'zh' ? 'zh-CN' : 'en' } });
  } catch { throw new ApiError(0, 'network', t('err.network')); }
  if (!res.ok) {
    let e = {};
    try { e = (await res.json()).error || {}; } catch { /* not JSON */ }
    throw new ApiError(res.status, e.code || String(res.status), e.message || `${res.status} ${res.statusText}`, e.field);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
function toast(message, kind = 'info') {
  const box = $('#toasts');
  const el = document.createElement('div');
  el.className = `toast ${kind}`;
  el.dataset.testid = kind === 'error' ? 'toast-error' : 'toast';
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  el.textContent = message;
  box.appendChild(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

/** Show an API error in a form: message in its error box, the named field highlighted. */
function showError(form, err) {
  const box = form ? $('.form-error', form) : null;
  if (form) $$('.invalid', form).forEach((el) => el.classList.remove('invalid'));
  if (!box) { toast(err.message, 'error'); return; }
  box.textContent = err.message;
  box.hidden = false;
  if (err.field) {
    const f = String(err.field);
    const cands = [f, f.replace(/\[\d+\]/g, ''), f.split('.')[0].replace(/\[\d+\]/g, ''), f.split('.').pop()];
    for (const name of cands) {
      const el = form.querySelector(`[name="${CSS.escape(name)}"]`) || form.querySelector(`[data-field="${CSS.escape(name)}"]`);
      if (el) { el.classList.add('invalid'); el.focus?.(); break; }
    }
  }
}
function clearError(form) {
  const box = $('.form-error', form);
  if (box) { box.hidden = true; box.textContent = ''; }
  $$('.invalid', form).forEach((el) => el.classList.remove('invalid'));
}
const errorBox = () => html`<div class="form-error" data-testid="form-error" role="alert" hidden></div>`;

function fmtTime(s) {
  if (s === null || s === undefined || s === '') return '';
  // Unix milliseconds per the contract (sdk/openapi/admin.json); RFC 3339 strings are accepted too.
  const d = typeof s === 'number' ? new Date(s < 1e11 ? s * 1000 : s) : new Date(s);
  return isNaN(d) ? String(s) : d.toLocaleString(getLang() === 'zh' ? 'zh-CN' : 'en-GB');
}
/** Unix milliseconds as a date, weekday and time in an IANA zone (a recurring push's own). */
function fmtIn(ms, tz) {
  try {
    const opts = { timeZone: tz, weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' };
    return `${new Date(ms).toLocaleString(getLang() === 'zh' ? 'zh-CN' : 'en-GB', opts)} (${tz})`;
  } catch { return fmtTime(ms); }
}
function fmtMoney(minor, currency) {
  if (minor === null || minor === undefined || minor === '') return '';
  const n = Number(minor) / 100;
  return `${n.toFixed(2)} ${currency || ''}`.trim();
}
/** "2026-05-01T10:00" (local) → Unix milliseconds */
function localToMillis(v) { return v ? new Date(v).getTime() : null; }
/** Unix milliseconds (or RFC 3339) → "2026-05-01T10:00" (local) */
function timeToLocal(s) {
  if (!s) return '';
  const d = new Date(s);
  if (isNaN(d)) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** What a send's confirmation adds about who is left out (POST /pushes/audience). */
function audienceNote(who) {
  const notes = [who.skipped ? t('push.confirmSkipped', { n: who.skipped }) : '', who.duplicates ? t('push.confirmDuplicates', { n: who.duplicates }) : ''];
  return notes.filter(Boolean).map((n) => ' ' + n).join('');
}

// -------------------------------------------------------------------- dialogs

/** Open a modal; returns {el, close}. `body` is Safe HTML. */
function modal(title, body, testid = 'dialog') {
  const root = $('#modal-root');
  const wrap = document.createElement('div');
  wrap.className = 'modal-backdrop';
  setHtml(wrap, html`<div class="modal" role="dialog" aria-modal="true" data-testid="${testid}">
    <div class="modal-head"><h2>${title}</h2><button type="button" class="icon" data-close data-testid="dialog-close" aria-label="${t('common.close')}">×</button></div>
    <div class="modal-body">${body}</div></div>`);
  root.appendChild(wrap);
  const close = () => wrap.remove();
  on(wrap, '[data-close]', 'click', close);
  wrap.addEventListener('keydown', (e) => { if (e.key === 'Escape') close(); });
  setTimeout(() => $('input:not([type=hidden]),select,textarea,button:not([data-close])', wrap)?.focus(), 0);
  return { el: wrap, close };
}
function confirmDialog(message) {
  return new Promise((resolve) => {
    const { el, close } = modal(t('common.confirm'), html`<p>${message}</p>
      <div class="actions"><button type="button" class="primary" data-testid="confirm-ok">${t('common.ok')}</button>
      <button type="button" data-testid="confirm-cancel">${t('common.cancel')}</button></div>`, 'confirm-dialog');
    $('[data-testid=confirm-ok]', el).onclick = () => { close(); resolve(true); };
    $('[data-testid=confirm-cancel]', el).onclick = () => { close(); resolve(false); };
    $('[data-close]', el).addEventListener('click', () => resolve(false));
  });
}
/** A form in a dialog. onSubmit(form) may throw ApiError → shown in the form. */
function formDialog(title, fields, onSubmit, testid = 'form-dialog') {
  const { el, close } = modal(title, html`<form novalidate data-testid="${testid}-form">${fields}${errorBox()}
    <div class="actions"><button type="submit" class="primary" data-testid="dialog-submit">${t('common.save')}</button>
    <button type="button" data-close>${t('common.cancel')}</button></div></form>`, testid);
  const form = $('form', el);
  on(el, 'button[data-close]', 'click', close);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError(form);
    const btn = $('[data-testid=dialog-submit]', form);
    btn.disabled = true;
    try {
      const keep = await onSubmit(form);
      if (keep !== 'keep') close();
    } catch (err) {
      if (err instanceof ApiError) showError(form, err); else showError(form, new ApiError(0, 'client', err.message));
    } finally { btn.disabled = false; }
  });
  return { el, form, close };
}
async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = document.createElement('textarea');
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    const ok = document.execCommand('copy');
    ta.remove();
    return ok;
  }
}
function showKeyDialog(key) {
  const { el } = modal(t('apps.keyTitle'), html`<p class="warn">${t('apps.keyOnce')}</p>
    <div class="keybox"><code data-testid="api-key-value">${key}</code>
    <button type="button" data-testid="api-key-copy">${t('common.copy')}</button></div>
    <p class="muted" data-testid="api-key-copied" hidden>${t('common.copied')}</p>
    <div class="actions"><button type="button" class="primary" data-close data-testid="api-key-done">${t('common.done')}</button></div>`, 'api-key-dialog');
  $('[data-testid=api-key-copy]', el).onclick = async () => {
    if (await copyText(key)) $('[data-testid=api-key-copied]', el).hidden = false;
  };
}

// ------------------------------------------------------------------- passwords

/** Two password inputs that must match; returns the Safe HTML. */
const newPasswordFields = (prefix) => html`<label>${t('users.newPassword')} *<input name="new_password" type="password" autocomplete="new-password" minlength="10" data-testid="${prefix}-new" required></label>
  <label>${t('users.confirmPassword')} *<input name="confirm" type="password" autocomplete="new-password" data-testid="${prefix}-confirm" required></label>`;
function matchingPassword(f) {
  const p = f.elements.new_password.value;
  if (p !== f.elements.confirm.value) throw new ApiError(0, 'client', t('users.passwordMismatch'), 'confirm');
  return p;
}
/** An administrator (users.password) sets another user's password. */
function resetPasswordDialog(user) {
  formDialog(t('users.resetTitle', { name: user.name }), html`<p class="muted">${t('users.resetHint')}</p>${newPasswordFields('reset-password')}`, async (f) => {
    const r = await api('POST', `/users/${encodeURIComponent(user.id)}/password`, { new_password: matchingPassword(f) });
    toast(t('users.resetDone', { n: r?.ended ?? 0 }));
  }, 'reset-password');
}
/** One's own password, with the current one (POST /me/password). */
function changePasswordDialog() {
  formDialog(t('me.changePassword'), html`${state.me?.user?.must_change_password ? html`<p class="warn">${t('me.mustChange')}</p>` : ''}
    <label>${t('me.currentPassword')} *<input name="current_password" type="password" autocomplete="current-password" data-testid="change-password-current" required></label>
    ${newPasswordFields('change-password')}`, async (f) => {
    await api('POST', '/me/password', { current_password: f.elements.current_password.value, new_password: matchingPassword(f) });
    toast(t('me.passwordChanged'));
    await loadMe();
    renderShell();
  }, 'change-password');
}

// -------------------------------------------------------------------- org tree

/** Units → nested nodes. Units whose parent is not visible become roots. */
function buildTree(units) {
  const byId = new Map(units.map((u) => [u.id, { ...u, children: [] }]));
  const roots = [];
  for (const n of byId.values()) {
    if (n.parent && byId.has(n.parent)) byId.get(n.parent).children.push(n);
    else roots.push(n);
  }
  const sort = (list) => { list.sort((a, b) => String(a.name).localeCompare(String(b.name))); list.forEach((c) => sort(c.children)); };
  sort(roots);
  return { roots, byId };
}
function subtreeIds(node) {
  const out = [node.id];
  node.children.forEach((c) => out.push(...subtreeIds(c)));
  return out;
}
/** Flattened (node, depth) in tree order. */
function flatTree(roots, depth = 0, out = []) {
  for (const n of roots) { out.push([n, depth]); flatTree(n.children, depth + 1, out); }
  return out;
}
function unitOptions(roots, selected, exclude = new Set()) {
  return flatTree(roots).filter(([n]) => !exclude.has(n.id)).map(([n, d]) =>
    html`<option value="${n.id}" ${raw(n.id === selected ? 'selected' : '')}>${'\u00a0\u00a0'.repeat(d)}${n.name}</option>`);
}
function treeCheckboxes(roots, checked, name = 'units') {
  const set = new Set(checked || []);
  const li = (n) => html`<li><label><input type="checkbox" name="${name}" value="${n.id}" data-name="${n.name}" ${raw(set.has(n.id) ? 'checked' : '')}> ${n.name}</label>
    ${n.children.length ? html`<ul>${n.children.map(li)}</ul>` : ''}</li>`;
  return html`<ul class="tree checks">${roots.map(li)}</ul>`;
}
async function loadUnits() {
  const d = await api('GET', '/units');
  return items(d);
}

// ------------------------------------------------------------- target picker

/**
 * Recipients editor: users (picked), units (picked from the tree), list (uploaded
 * .xls/.xlsx). `prefix` keeps test ids unique when several are on one page.
 */
function targetsEditor(container, targets, ctx, prefix = 'push', channel = null) {
  const tg = { users: [...(targets?.users || [])], units: [...(targets?.units || [])], list: [...(targets?.list || [])] };
  const userNames = new Map();
  const render = () => {
    const unitName = (id) => ctx.unitsById.get(id)?.name || id;
    setHtml(container, html`<div class="targets">
      <div class="target-row"><span class="lbl">${t('targets.users')}</span>
        <span class="chips" data-testid="${prefix}-target-users">${tg.users.map((id) => html`<span class="chip">${userNames.get(id) || id}<button type="button" class="icon" data-rm-user="${id}" aria-label="${t('common.remove')}">×</button></span>`)}</span>
        ${ctx.readonly ? '' : html`<button type="button" data-testid="${prefix}-pick-users">${t('targets.pickUsers')}</button>`}</div>
      <div class="target-row"><span class="lbl">${t('targets.units')}</span>
        <span class="chips" data-testid="${prefix}-target-units">${tg.units.map((id) => html`<span class="chip">${unitName(id)}<button type="button" class="icon" data-rm-unit="${id}" aria-label="${t('common.remove')}">×</button></span>`)}</span>
        ${ctx.readonly ? '' : html`<button type="button" data-testid="${prefix}-pick-units">${t('targets.pickUnits')}</button>`}</div>
      <div class="target-row"><span class="lbl">${t('targets.list')}</span>
        <span data-testid="${prefix}-target-list-count">${t('targets.listCount', { n: tg.list.length })}</span>
        ${ctx.readonly ? '' : html`<label class="filebtn">${t('targets.upload')}<input type="file" accept=".xls,.xlsx" data-testid="${prefix}-upload"></label>
        ${channel ? html`<a href="#" data-testid="${prefix}-upload-template">${t('targets.template')}</a>` : ''}
        ${tg.list.length ? html`<button type="button" data-testid="${prefix}-clear-list">${t('targets.clearList')}</button>` : ''}`}</div>
      <div class="upload-result" data-testid="${prefix}-upload-result"></div>
      ${tg.list.length ? html`<details><summary>${t('targets.showList')}</summary><table class="small"><thead><tr><th>${t('targets.to')}</th><th>${t('common.name')}</th><th>${t('targets.variables')}</th></tr></thead>
        <tbody>${tg.list.slice(0, 200).map((r) => html`<tr><td>${r.to}</td><td>${r.name || ''}</td><td>${r.variables ? JSON.stringify(r.variables) : ''}</td></tr>`)}</tbody></table></details>` : ''}
    </div>`);
    if (ctx.readonly) { $$('[data-rm-user],[data-rm-unit]', container).forEach((b) => b.remove()); return; }
    on(container, '[data-rm-user]', 'click', (e) => { tg.users = tg.users.filter((x) => x !== e.currentTarget.dataset.rmUser); render(); });
    on(container, '[data-rm-unit]', 'click', (e) => { tg.units = tg.units.filter((x) => x !== e.currentTarget.dataset.rmUnit); render(); });
    on(container, `[data-testid=${prefix}-clear-list]`, 'click', () => { tg.list = []; render(); });
    on(container, `[data-testid=${prefix}-pick-units]`, 'click', () => {
      const { el, form } = formDialog(t('targets.pickUnits'), treeCheckboxes(ctx.roots, tg.units), async (f) => {
        tg.units = $$('input[name=units]:checked', f).map((i) => i.value);
        render();
      }, 'units-picker');
      void el; void form;
    });
    on(container, `[data-testid=${prefix}-pick-users]`, 'click', () => pickUsers(tg.users, (picked) => {
      picked.forEach((u) => userNames.set(u.id, `${u.name}${u.login ? ' (' + u.login + ')' : ''}`));
      tg.users = picked.map((u) => u.id);
      render();
    }));
    on(container, `[data-testid=${prefix}-upload-template]`, 'click', (e) => {
      e.preventDefault();
      const ch = channel && channel();
      if (ch) window.location.href = `/api/v1/pushes/upload-template?channel=${encodeURIComponent(ch)}`;
    });
    on(container, `[data-testid=${prefix}-upload]`, 'change', async (e) => {
      const file = e.target.files[0];
      if (!file) return;
      const out = $(`[data-testid=${prefix}-upload-result]`, container);
      const fd = new FormData();
      fd.append('file', file, file.name);
      setHtml(out, uploadProgressHtml(prefix, file.name));
      const bar = $('progress', out);
      const pctEl = $(`[data-testid=${prefix}-upload-percent]`, out);
      let last = 0;
      const progress = (pct) => {
        pct = Math.max(last, Math.min(100, Math.round(pct))); // never backwards
        last = pct;
        bar.value = pct;
        bar.setAttribute('aria-valuenow', String(pct));
        pctEl.textContent = `${pct}%`;
      };
      try {
        // Checked as the push's channel's addresses; duplicates come back removed.
        const ch = channel && channel();
        const r = await uploadWithProgress(`/pushes/upload${ch ? '?channel=' + encodeURIComponent(ch) : ''}`, fd, progress);
        progress(100);
        const rows = r.rows || [];
        const errors = r.errors || [];
        const dups = r.duplicates || [];
        // A recipient already on the list (from an earlier upload) is not added twice.
        const listed = new Set(tg.list.map((r) => r.to));
        tg.list = tg.list.concat(rows.filter((r) => !listed.has(r.to)));
        render();
        const res = $(`[data-testid=${prefix}-upload-result]`, container);
        setHtml(res, html`${uploadProgressHtml(prefix, file.name, 100)}
          <p data-testid="${prefix}-upload-summary">${t('targets.parsed', { file: file.name, n: rows.length, e: errors.length, d: dups.length })}</p>
          ${dups.length ? html`<details data-testid="${prefix}-upload-duplicates"><summary>${t('targets.duplicates')} (${dups.length})</summary><table class="small">
            <thead><tr><th class="num">${t('targets.dupRow')}</th><th>${t('targets.to')}</th><th class="num">${t('targets.dupFirst')}</th></tr></thead>
            <tbody>${dups.slice(0, 500).map((d) => html`<tr><td class="num">${d.row}</td><td>${d.to}</td><td class="num">${d.first_row}</td></tr>`)}</tbody></table></details>` : ''}
          ${errors.length ? html`<table class="small errors" data-testid="${prefix}-upload-errors"><caption>${t('targets.rowErrors')}</caption>
            <thead><tr><th class="num">${t('targets.errRow')}</th><th>${t('targets.errColumn')}</th><th>${t('targets.errMessage')}</th></tr></thead>
            <tbody>${errors.map((er) => html`<tr data-testid="${prefix}-upload-error-row" data-row="${er.row ?? ''}"><td class="num">${er.row ?? ''}</td><td>${er.column ?? '—'}</td><td>${er.message}</td></tr>`)}</tbody></table>` : ''}`);
      } catch (err) {
        out.textContent = '';
        const p = document.createElement('p');
        p.className = 'error';
        p.dataset.testid = `${prefix}-upload-error`;
        p.textContent = err.message;
        out.appendChild(p);
        e.target.value = '';
      }
    });
  };
  // Resolve names of already-picked users (best effort).
  if (tg.users.length && can('directory.view')) {
    Promise.all(tg.users.map((id) => api('GET', `/users/${encodeURIComponent(id)}`).then((u) => userNames.set(id, u.name + (u.login ? ` (${u.login})` : '')), () => {})))
      .then(() => render());
  }
  render();
  return { value: () => ({ users: [...tg.users], units: [...tg.units], list: [...tg.list] }) };
}

/** The upload bar: a <progress> with its percentage (also for screen readers). */
function uploadProgressHtml(prefix, name, pct = 0) {
  return html`<div class="upload-progress" data-testid="${prefix}-upload-progress-wrap">
    <span class="muted">${t(pct >= 100 ? 'targets.uploaded' : 'targets.uploading', { file: name })}</span>
    <progress max="100" value="${pct}" data-testid="${prefix}-upload-progress" aria-label="${t('targets.uploadProgress')}" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${pct}"></progress>
    <span class="pct" data-testid="${prefix}-upload-percent">${pct}%</span></div>`;
}

/**
 * POST a form with upload progress (XMLHttpRequest: fetch has no upload
 * progress). onProgress(percent) gets 0–100; answers and errors as api().
 */
function uploadWithProgress(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1' + path);
    xhr.withCredentials = true;
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader('Accept-Language', langTag());
    xhr.upload.addEventListener('progress', (ev) => { if (ev.lengthComputable && ev.total) onProgress((ev.loaded / ev.total) * 100); });
    xhr.upload.addEventListener('load', () => onProgress(100));
    xhr.addEventListener('error', () => reject(new ApiError(0, 'network', t('err.network'))));
    xhr.addEventListener('abort', () => reject(new ApiError(0, 'network', t('err.network'))));
    xhr.addEventListener('load', () => {
      let data = null;
      try { data = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch { data = null; }
      if (xhr.status >= 200 && xhr.status < 300) { resolve(data || {}); return; }
      const e = (data && data.error) || {};
      if (xhr.status === 401) {
        state.me = null;
        state.perms = new Set();
        toast(t('err.session'), 'error');
        go('#/login');
      }
      reject(new ApiError(xhr.status, e.code || String(xhr.status), e.message || `${xhr.status} ${xhr.statusText}`, e.field));
    });
    onProgress(0);
    xhr.send(form);
  });
}

function pickUsers(current, done) {
  const picked = new Map(current.map((id) => [id, { id, name: id }]));
  const { el, form } = formDialog(t('targets.pickUsers'), html`<div class="searchbar">
      <input type="search" name="q" placeholder="${t('users.searchPh')}" data-testid="user-picker-search">
      <button type="button" data-testid="user-picker-go">${t('common.search')}</button></div>
      <div class="picker-list" data-testid="user-picker-list"></div>`, async () => {
    done([...picked.values()]);
  }, 'user-picker');
  const list = $('[data-testid=user-picker-list]', el);
  const load = async () => {
    try {
      const d = await api('GET', '/users' + qs({ q: form.elements.q.value, limit: 200 }));
      const us = items(d);
      us.forEach((u) => { if (picked.has(u.id)) picked.set(u.id, u); });
      setHtml(list, us.length ? html`${us.map((u) => html`<label class="pick"><input type="checkbox" value="${u.id}" ${raw(picked.has(u.id) ? 'checked' : '')} data-login="${u.login || ''}"> ${u.name} <span class="muted">${u.login || ''} ${u.email || ''} ${u.mobile || ''}</span></label>`)}` : html`<p class="muted">${t('common.empty')}</p>`);
      on(list, 'input[type=checkbox]', 'change', (e) => {
        const u = us.find((x) => x.id === e.target.value);
        if (e.target.checked) picked.set(u.id, u); else picked.delete(u.id);
      });
    } catch (err) { showError(form, err); }
  };
  $('[data-testid=user-picker-go]', el).onclick = load;
  form.elements.q.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); load(); } });
  load();
}

// ------------------------------------------------------------ rich text editor

// The one HTML policy (html-policy.json) the server's ammonia also applies on save.
const HTML_POLICY = await fetch('/html-policy.json').then((r) => r.json());
const PURIFY = {
  ALLOWED_TAGS: HTML_POLICY.tags,
  ALLOWED_ATTR: [...new Set([...HTML_POLICY.generic_attributes, ...Object.values(HTML_POLICY.tag_attributes).flat()])],
  ALLOWED_URI_REGEXP: new RegExp(`^(?:(?:${HTML_POLICY.url_schemes.join('|')}):|[^a-z]|[a-z+.-]+(?:[^a-z+.\\-:]|$))`, 'i'),
};
/**
 * Rich text cleaned with DOMPurify under the shared policy before it is shown
 * or edited (the server is the authority and sanitizes on save with the same
 * policy; this keeps the editor inert).
 */
function cleanHtml(s) {
  return DOMPurify.sanitize(s || '', PURIFY);
}

function richEditor(container, initial, { readonly = false, name = 'html', testid = 'rich' } = {}) {
  setHtml(container, html`<div class="rich">
    ${readonly ? '' : html`<div class="toolbar" role="toolbar">
      <button type="button" data-cmd="bold" title="${t('rich.bold')}" data-testid="${testid}-bold"><b>B</b></button>
      <button type="button" data-cmd="italic" title="${t('rich.italic')}" data-testid="${testid}-italic"><i>I</i></button>
      <button type="button" data-cmd="createLink" title="${t('rich.link')}" data-testid="${testid}-link">${t('rich.link')}</button>
      <button type="button" data-cmd="insertUnorderedList" title="${t('rich.ul')}" data-testid="${testid}-ul">•≡</button>
      <button type="button" data-cmd="insertOrderedList" title="${t('rich.ol')}" data-testid="${testid}-ol">1≡</button>
      <button type="button" data-source title="${t('rich.source')}" data-testid="${testid}-source">&lt;/&gt;</button>
    </div>`}
    <div class="editable" contenteditable="${readonly ? 'false' : 'true'}" data-testid="${testid}-editor" data-field="${name}" role="textbox" aria-multiline="true"></div>
    <textarea class="source" name="${name}" data-testid="${testid}-html" hidden></textarea></div>`);
  const ed = $('.editable', container);
  const src = $('textarea.source', container);
  ed.innerHTML = cleanHtml(initial); // cleaned in an inert document first
  let sourceMode = false;
  on(container, '[data-cmd]', 'mousedown', (e) => e.preventDefault());
  on(container, '[data-cmd]', 'click', (e) => {
    const cmd = e.currentTarget.dataset.cmd;
    ed.focus();
    if (cmd === 'createLink') {
      const url = prompt(t('rich.linkPrompt'), 'https://');
      if (url && /^(https?:|mailto:)/i.test(url)) document.execCommand('createLink', false, url);
    } else document.execCommand(cmd, false, null);
  });
  on(container, '[data-source]', 'click', () => {
    sourceMode = !sourceMode;
    if (sourceMode) { src.value = ed.innerHTML; src.hidden = false; ed.hidden = true; src.focus(); }
    else { ed.innerHTML = cleanHtml(src.value); src.hidden = true; ed.hidden = false; }
    $$('[data-cmd]', container).forEach((b) => { b.disabled = sourceMode; });
  });
  // In source mode the typed HTML is sent as typed: the server sanitizes it.
  return { value: () => (sourceMode ? src.value : ed.innerHTML), text: () => (sourceMode ? src.value.replace(/<[^>]*>/g, ' ') : ed.innerText) };
}

// ------------------------------------------------------ table sorting, scrolling

/**
 * Every table with a header row gets (1) a wrapper that scrolls sideways on
 * narrow screens and (2) clickable column headers that sort the loaded rows
 * (▲ ascending / ▼ descending, aria-sort). Applied to tables as they are added
 * to the DOM (a MutationObserver below), so the page renderers stay as they are.
 * The last sort of a table (by its data-testid) is kept while the page is open,
 * so a reload of the list after an edit keeps its order.
 */
const sortMemory = new Map(); // table testid → {col, dir}
const DMY = /^(\d{1,2})\/(\d{1,2})\/(\d{4}),?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?$/; // en-GB fmtTime
const YMD = /^(\d{4})[/-](\d{1,2})[/-](\d{1,2})[ T,]*(\d{1,2}):(\d{2})(?::(\d{2}))?$/; // zh-CN fmtTime, ISO
function sortKey(td) {
  if (!td) return { s: '' };
  const v = (td.dataset.sort ?? td.textContent).trim();
  const pad = (n) => String(n).padStart(2, '0');
  let m = v.match(DMY);
  if (m) return { s: `${m[3]}-${pad(m[2])}-${pad(m[1])} ${pad(m[4])}:${m[5]}:${m[6] || '00'}` };
  m = v.match(YMD);
  if (m) return { s: `${m[1]}-${pad(m[2])}-${pad(m[3])} ${pad(m[4])}:${m[5]}:${m[6] || '00'}` };
  // Numbers, also "12.30 CNY", "3 / 5", "1,234".
  m = v.match(/^-?\d[\d,]*(\.\d+)?(?=$|\s)/);
  if (m) return { n: Number(m[0].replace(/,/g, '')), s: v };
  return { s: v };
}
function compareKeys(a, b) {
  if (a.n !== undefined && b.n !== undefined) return a.n - b.n || a.s.localeCompare(b.s);
  if (a.n !== undefined && b.s === '') return 1;
  if (b.n !== undefined && a.s === '') return -1;
  return a.s.localeCompare(b.s, getLang() === 'zh' ? 'zh-CN' : 'en', { numeric: true, sensitivity: 'base' });
}
function sortTable(table, col, dir) {
  const tbody = table.tBodies[0];
  if (!tbody) return;
  const rows = Array.from(tbody.rows);
  // An "empty" placeholder row (one cell spanning the table) is not data.
  if (rows.length < 2 || rows.some((r) => r.cells.length === 1 && r.cells[0].colSpan > 1)) { markSorted(table, col, dir); return; }
  const keyed = rows.map((r, i) => ({ r, i, k: sortKey(r.cells[col]) }));
  keyed.sort((x, y) => (compareKeys(x.k, y.k) || x.i - y.i) * (dir === 'desc' ? -1 : 1));
  keyed.forEach(({ r }) => tbody.appendChild(r));
  markSorted(table, col, dir);
}
function markSorted(table, col, dir) {
  const ths = Array.from(table.tHead.rows[0].cells);
  ths.forEach((th, i) => {
    const ind = $('.sort-ind', th);
    if (!ind) return;
    const on = i === col;
    th.setAttribute('aria-sort', on ? (dir === 'desc' ? 'descending' : 'ascending') : 'none');
    th.classList.toggle('sorted', on);
    ind.textContent = on ? (dir === 'desc' ? '▼' : '▲') : '';
  });
  table.dataset.sortCol = String(col);
  table.dataset.sortDir = dir;
}
function enhanceTable(table) {
  if (table.dataset.enhanced) return;
  table.dataset.enhanced = '1';
  if (!table.parentElement?.classList.contains('table-scroll')) {
    const box = document.createElement('div');
    box.className = 'table-scroll';
    table.replaceWith(box);
    box.appendChild(table);
  }
  const head = table.tHead?.rows[0];
  if (!head) return;
  // A paged list (pagedList) sorts on the server: only its columns with a
  // data-sort field are sortable, and a click asks the server (all pages).
  const server = table.dataset.serverSort === '1';
  Array.from(head.cells).forEach((th, col) => {
    const label = th.textContent.trim();
    if (!label || th.colSpan > 1) return; // row-button columns
    if (server && !th.dataset.sort) return;
    th.classList.add('sortable');
    th.setAttribute('aria-sort', 'none');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'th-sort';
    btn.dataset.testid = 'sort-header';
    btn.title = t('common.sortBy', { col: label });
    btn.append(...Array.from(th.childNodes));
    const ind = document.createElement('span');
    ind.className = 'sort-ind';
    ind.setAttribute('aria-hidden', 'true');
    btn.appendChild(ind);
    th.replaceChildren(btn);
    btn.addEventListener('click', () => {
      if (server) { table.dispatchEvent(new CustomEvent('server-sort', { detail: th.dataset.sort })); return; }
      const dir = table.dataset.sortCol === String(col) && table.dataset.sortDir === 'asc' ? 'desc' : 'asc';
      sortTable(table, col, dir);
      if (table.dataset.testid) sortMemory.set(table.dataset.testid, { col, dir });
    });
  });
  if (server) {
    const col = Array.from(head.cells).findIndex((th) => th.dataset.sort && th.dataset.sort === table.dataset.sortField);
    if (col >= 0) markSorted(table, col, table.dataset.sortOrder === 'desc' ? 'desc' : 'asc');
    return;
  }
  const mem = table.dataset.testid && sortMemory.get(table.dataset.testid);
  if (mem && head.cells[mem.col]?.classList.contains('sortable')) sortTable(table, mem.col, mem.dir);
}
function enhanceTables(root) {
  if (root.tagName === 'TABLE') enhanceTable(root);
  else if (root.querySelectorAll) root.querySelectorAll('table').forEach(enhanceTable);
}
new MutationObserver((muts) => {
  for (const m of muts) m.addedNodes.forEach((n) => { if (n.nodeType === 1) enhanceTables(n); });
}).observe(document.body, { childList: true, subtree: true });

// ------------------------------------------------------------------ pagination

function pager(total, offset, limit, onPage, onSize) {
  const wrap = document.createElement('div');
  wrap.className = 'pager';
  const from = total ? offset + 1 : 0;
  const to = Math.min(offset + limit, total);
  const pages = Math.max(1, Math.ceil(total / limit));
  const pageNo = Math.min(pages, Math.floor(offset / limit) + 1);
  setHtml(wrap, html`<span data-testid="pager-info">${t('common.range', { from, to, total })}</span>
    <button type="button" data-p="first" data-testid="pager-first" title="${t('common.firstPage')}" ${raw(offset <= 0 ? 'disabled' : '')}>«</button>
    <button type="button" data-p="prev" data-testid="pager-prev" ${raw(offset <= 0 ? 'disabled' : '')}>‹</button>
    <span data-testid="pager-page">${t('common.pageOf', { page: pageNo, pages })}</span>
    <button type="button" data-p="next" data-testid="pager-next" ${raw(offset + limit >= total ? 'disabled' : '')}>›</button>
    <button type="button" data-p="last" data-testid="pager-last" title="${t('common.lastPage')}" ${raw(offset + limit >= total ? 'disabled' : '')}>»</button>
    ${onSize ? html`<select data-testid="pager-size" aria-label="${t('common.pageSize')}">${PAGE_SIZES.map((n) => html`<option value="${n}" ${raw(n === limit ? 'selected' : '')}>${t('common.perPage', { n })}</option>`)}</select>` : ''}`);
  $('[data-p=first]', wrap).onclick = () => onPage(0);
  $('[data-p=prev]', wrap).onclick = () => onPage(Math.max(0, offset - limit));
  $('[data-p=next]', wrap).onclick = () => onPage(offset + limit);
  $('[data-p=last]', wrap).onclick = () => onPage((pages - 1) * limit);
  if (onSize) $('[data-testid=pager-size]', wrap).onchange = (e) => onSize(Number(e.currentTarget.value));
  return wrap;
}
const PAGE_SIZES = [20, 50, 100, 200];

/**
 * A list paged, sorted and filtered by the server: the page (offset), the
 * page size and the sort column/direction, kept per table (by its testid)
 * while the console is open. `params()` goes into the list's request;
 * `attach(wrap, total, reload)` after rendering the table marks it
 * server-sorted (headers with data-sort="field" ask the server) and adds
 * the pager with a page-size choice.
 */
const listMemory = new Map(); // table testid → {sort, order, limit}
function pagedList(id) {
  if (!listMemory.has(id)) listMemory.set(id, { sort: '', order: '', limit: PAGE });
  const mem = listMemory.get(id);
  const list = { offset: 0 };
  list.params = () => ({ offset: list.offset, limit: mem.limit, sort: mem.sort, order: mem.sort ? mem.order : '' });
  list.attach = (wrap, total, reload) => {
    const table = $('table', wrap);
    if (table) {
      table.dataset.serverSort = '1';
      table.dataset.sortField = mem.sort;
      table.dataset.sortOrder = mem.order;
      table.addEventListener('server-sort', (e) => {
        mem.order = mem.sort === e.detail && mem.order === 'asc' ? 'desc' : 'asc';
        mem.sort = e.detail;
        list.offset = 0;
        reload();
      });
    }
    // Past the end (rows deleted, a narrower filter): back to the last page.
    if (total && list.offset >= total) { list.offset = Math.floor((total - 1) / mem.limit) * mem.limit; reload(); return; }
    wrap.appendChild(pager(total, list.offset, mem.limit, (o) => { list.offset = o; reload(); }, (l) => { mem.limit = l; list.offset = 0; reload(); }));
  };
  return list;
}
const PAGE = 50;

// ====================================================================== pages

// ------------------------------------------------------------- login/register

function pageLogin(root) {
  const remembered = sessionStorage.getItem('herald.lastLogin') || '';
  setHtml(root, html`<section class="auth" data-testid="page-login">
    <h1>${t('login.title')}</h1>
    <form data-testid="login-form" novalidate>
      <label>${t('login.login')}<input name="login" autocomplete="username" data-testid="login-login" value="${remembered}" required></label>
      <label>${t('login.password')}<input name="password" type="password" autocomplete="current-password" data-testid="login-password" required></label>
      ${errorBox()}
      <div class="actions"><button type="submit" class="primary" data-testid="login-submit">${t('login.submit')}</button>
      <a href="#/register" data-testid="goto-register">${t('register.link')}</a>
      <a href="#/operator" class="muted small" data-testid="goto-operator">${t('op.link')}</a></div>
    </form></section>`);
  const form = $('form', root);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError(form);
    try {
      await api('POST', '/login', { login: form.elements.login.value.trim(), password: form.elements.password.value }, { no401: true });
      sessionStorage.setItem('herald.lastLogin', form.elements.login.value.trim());
      await loadMe();
      go(firstPage());
    } catch (err) { showError(form, err); }
  });
}

function pageRegister(root) {
  setHtml(root, html`<section class="auth wide" data-testid="page-register">
    <h1>${t('register.title')}</h1>
    <form data-testid="register-form" novalidate>
      <label>${t('register.enterprise')}<input name="enterprise_name" data-testid="reg-enterprise" required></label>
      <label>${t('register.adminName')}<input name="admin_name" data-testid="reg-name" required></label>
      <label>${t('register.adminLogin')}<input name="admin_login" data-testid="reg-login" autocomplete="username" required></label>
      <label>${t('register.password')}<input name="admin_password" type="password" data-testid="reg-password" autocomplete="new-password" required minlength="10">
        <small class="muted">${t('register.passwordHint')}</small></label>
      <label>${t('register.email')}<input name="admin_email" type="email" data-testid="reg-email"></label>
      <label>${t('register.mobile')}<input name="admin_mobile" data-testid="reg-mobile"></label>
      ${errorBox()}
      <div class="actions"><button type="submit" class="primary" data-testid="reg-submit">${t('register.submit')}</button>
      <a href="#/login" data-testid="goto-login">${t('login.link')}</a></div>
    </form></section>`);
  const form = $('form', root);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError(form);
    const f = form.elements;
    const body = { enterprise_name: f.enterprise_name.value.trim(), admin_name: f.admin_name.value.trim(), admin_login: f.admin_login.value.trim(), admin_password: f.admin_password.value };
    if (f.admin_email.value.trim()) body.admin_email = f.admin_email.value.trim();
    if (f.admin_mobile.value.trim()) body.admin_mobile = f.admin_mobile.value.trim();
    try {
      await api('POST', '/register', body, { no401: true });
      sessionStorage.setItem('herald.lastLogin', body.admin_login);
      toast(t('register.done'));
      go('#/login');
    } catch (err) { showError(form, err); }
  });
}

// -------------------------------------------------------------------- directory

async function pageDirectory(root) {
  const edit = can('directory.edit');
  let units = await loadUnits();
  let tree = buildTree(units);
  let selected = sessionStorage.getItem('herald.unit');
  if (!tree.byId.has(selected)) selected = tree.roots[0]?.id || null;
  let q = '';
  const list = pagedList('users-table');
  let roles = null;

  setHtml(root, html`<section data-testid="page-directory"><h1>${t('menu.directory')}</h1>
    <div class="split">
      <aside class="panel"><div class="panel-head"><h2>${t('dir.units')}</h2></div>
        ${edit ? html`<div class="btnrow">
          <button type="button" data-testid="unit-add">${t('dir.addChild')}</button>
          <button type="button" data-testid="unit-rename">${t('dir.rename')}</button>
          <button type="button" data-testid="unit-move">${t('dir.move')}</button>
          <button type="button" class="danger" data-testid="unit-delete">${t('common.delete')}</button></div>` : ''}
        <div data-testid="unit-tree" class="tree-wrap"></div></aside>
      <div class="panel grow"><div class="panel-head"><h2 data-testid="users-title"></h2>
        ${edit ? html`<button type="button" class="primary" data-testid="user-add">${t('users.add')}</button>` : ''}</div>
        <form class="searchbar" data-testid="user-search-form"><input type="search" name="q" placeholder="${t('users.searchPh')}" data-testid="user-search">
          <button type="submit" data-testid="user-search-go">${t('common.search')}</button></form>
        <div data-testid="users-table-wrap"></div></div>
    </div></section>`);

  const treeEl = $('[data-testid=unit-tree]', root);
  const renderTree = () => {
    const li = (n) => html`<li><span class="unit-line"><a href="#" data-testid="unit-node" data-id="${n.id}" data-name="${n.name}" class="${n.id === selected ? 'selected' : ''}" ${raw(n.id === selected ? 'aria-current="true"' : '')}>${n.name}</a>
      ${edit ? html`<button type="button" class="unit-more" data-more="${n.id}" data-testid="unit-more" aria-haspopup="menu" aria-label="${t('dir.unitMenu', { unit: n.name })}" title="${t('dir.unitMenu', { unit: n.name })}">⋯</button>` : ''}</span>
      ${n.children.length ? html`<ul>${n.children.map(li)}</ul>` : ''}</li>`;
    setHtml(treeEl, html`<ul class="tree">${tree.roots.map(li)}</ul>`);
    const select = (id, force = false) => {
      if (selected === id && !force) return;
      selected = id;
      sessionStorage.setItem('herald.unit', selected);
      list.offset = 0;
      renderTree();
      loadUsers();
    };
    on(treeEl, 'a[data-id]', 'click', (e) => {
      e.preventDefault();
      select(e.currentTarget.dataset.id, true);
    });
    if (edit) {
      // Right-click on a unit, or its ⋯ button (keyboard, touch): the unit's actions.
      on(treeEl, 'a[data-id]', 'contextmenu', (e) => {
        e.preventDefault();
        const id = e.currentTarget.dataset.id;
        select(id);
        unitMenu(id, e.clientX, e.clientY);
      });
      on(treeEl, 'button[data-more]', 'click', (e) => {
        const id = e.currentTarget.dataset.more;
        const r = e.currentTarget.getBoundingClientRect();
        select(id);
        unitMenu(id, r.left, r.bottom, true);
      });
    }
    $$('[data-testid=unit-rename],[data-testid=unit-move],[data-testid=unit-delete],[data-testid=unit-add]', root).forEach((b) => { b.disabled = !selected; });
  };
  const reloadUnits = async () => {
    units = await loadUnits();
    tree = buildTree(units);
    if (!tree.byId.has(selected)) selected = tree.roots[0]?.id || null;
    renderTree();
  };

  const wrap = $('[data-testid=users-table-wrap]', root);
  const loadUsers = async () => {
    const unit = tree.byId.get(selected);
    $('[data-testid=users-title]', root).textContent = unit ? t('users.inUnit', { unit: unit.name }) : t('users.title');
    try {
      const d = await api('GET', '/users' + qs({ q, unit: selected, ...list.params() }));
      const us = items(d);
      const total = d.total ?? us.length;
      setHtml(wrap, html`<table data-testid="users-table"><thead><tr><th data-sort="name">${t('common.name')}</th><th data-sort="login">${t('users.login')}</th><th data-sort="mobile">${t('users.mobile')}</th><th data-sort="email">${t('users.email')}</th><th data-sort="unit">${t('users.unit')}</th><th></th></tr></thead>
        <tbody>${us.length ? us.map((u) => html`<tr data-testid="user-row" data-login="${u.login || ''}" data-id="${u.id}"><td>${u.name}</td><td>${u.login || ''}</td><td>${u.mobile || ''}</td><td>${u.email || ''}</td>
          <td>${tree.byId.get(u.unit)?.name || u.unit || ''}</td>
          <td class="rowbtns">${edit ? html`<button type="button" data-edit="${u.id}" data-testid="user-edit">${t('common.edit')}</button>` : ''}
          ${can('users.password') && u.login && u.id !== state.me?.user?.id ? html`<button type="button" data-reset="${u.id}" data-testid="user-reset-password">${t('users.resetPassword')}</button>` : ''}
          ${edit ? html`<button type="button" class="danger" data-del="${u.id}" data-testid="user-delete">${t('common.delete')}</button>` : ''}</td></tr>`) : html`<tr><td colspan="6" class="muted" data-testid="users-empty">${t('common.empty')}</td></tr>`}</tbody></table>`);
      list.attach(wrap, total, loadUsers);
      on(wrap, '[data-edit]', 'click', (e) => userDialog(us.find((u) => u.id === e.currentTarget.dataset.edit)));
      on(wrap, '[data-reset]', 'click', (e) => resetPasswordDialog(us.find((u) => u.id === e.currentTarget.dataset.reset)));
      on(wrap, '[data-del]', 'click', async (e) => {
        const u = us.find((x) => x.id === e.currentTarget.dataset.del);
        if (!(await confirmDialog(t('users.confirmDelete', { name: u.name })))) return;
        try { await api('DELETE', `/users/${encodeURIComponent(u.id)}`); toast(t('common.deleted')); loadUsers(); } catch (err) { toast(err.message, 'error'); }
      });
    } catch (err) {
      setHtml(wrap, html`<p class="error" data-testid="users-error">${err.message}</p>`);
    }
  };

  const userDialog = async (user, unit = selected) => {
    if (roles === null) {
      roles = can('roles.view') ? await api('GET', '/roles').then(items, () => []) : [];
    }
    const u = user || { unit, roles: [] };
    const ur = new Set(u.roles || []);
    // Changing one's own password or login needs the current password.
    const self = !!(user && state.me && state.me.user && state.me.user.id === user.id);
    const { form } = formDialog(user ? t('users.edit') : t('users.add'), html`<div class="grid2">
      <label>${t('common.name')} *<input name="name" value="${u.name || ''}" data-testid="uf-name" required></label>
      <label>${t('users.login')}<input name="login" value="${u.login || ''}" data-testid="uf-login" autocomplete="off"></label>
      <label>${t('users.password')}<input name="password" type="password" data-testid="uf-password" autocomplete="new-password" placeholder="${user ? t('users.passwordKeep') : ''}"></label>
      ${self ? html`<label>${t('users.currentPassword')}<input name="current_password" type="password" data-testid="uf-current-password" autocomplete="current-password"></label>` : ''}
      <label>${t('users.mobile')}<input name="mobile" value="${u.mobile || ''}" data-testid="uf-mobile"></label>
      <label>${t('users.email')}<input name="email" type="email" value="${u.email || ''}" data-testid="uf-email"></label>
      <label>${t('users.wecom')}<input name="wecom_id" value="${u.wecom_id || ''}" data-testid="uf-wecom"></label>
      <label>${t('users.dingtalk')}<input name="dingtalk_id" value="${u.dingtalk_id || ''}" data-testid="uf-dingtalk"></label>
      <label>${t('users.welink')}<input name="welink_id" value="${u.welink_id || ''}" data-testid="uf-welink"></label>
      <label>${t('users.unit')} *<select name="unit" data-testid="uf-unit">${unitOptions(tree.roots, u.unit)}</select></label>
      </div>
      ${roles.length ? html`<fieldset data-field="roles"><legend>${t('users.roles')}</legend>${roles.map((r) => html`<label class="inline"><input type="checkbox" name="roles" value="${r.id}" data-name="${r.name}" ${raw(ur.has(r.id) ? 'checked' : '')}> ${r.name}</label>`)}</fieldset>` : ''}`,
    async (f) => {
      const e = f.elements;
      const body = { name: e.name.value.trim(), unit: e.unit.value, roles: $$('input[name=roles]:checked', f).map((i) => i.value) };
      for (const k of ['login', 'mobile', 'email', 'wecom_id', 'dingtalk_id', 'welink_id']) {
        const v = e[k].value.trim();
        if (v || user) body[k] = v || null;
      }
      if (e.password.value) body.password = e.password.value;
      if (self && e.current_password.value) body.current_password = e.current_password.value;
      if (!roles.length && user) delete body.roles;
      if (user) await api('PATCH', `/users/${encodeURIComponent(user.id)}`, body);
      else await api('POST', '/users', body);
      toast(t('common.saved'));
      loadUsers();
    }, 'user-dialog');
    void form;
  };

  const nameDialog = (title, value, submit) => formDialog(title, html`<label>${t('common.name')}<input name="name" value="${value || ''}" data-testid="unit-name" required></label>`, async (f) => submit(f.elements.name.value.trim()), 'unit-dialog');

  /** The context menu of a unit: the same actions as the buttons above the tree. */
  const unitMenu = (id, x, y, fromKeyboard = false) => {
    document.querySelector('.ctxmenu')?.remove();
    const n = tree.byId.get(id);
    if (!n) return;
    const menu = document.createElement('div');
    menu.className = 'ctxmenu';
    menu.setAttribute('role', 'menu');
    menu.dataset.testid = 'unit-menu';
    menu.setAttribute('aria-label', t('dir.unitMenu', { unit: n.name }));
    setHtml(menu, html`<button type="button" role="menuitem" data-act="add" data-testid="unit-menu-add">${t('dir.addChildUnit')}</button>
      <button type="button" role="menuitem" data-act="rename" data-testid="unit-menu-rename">${t('dir.rename')}</button>
      <button type="button" role="menuitem" data-act="move" data-testid="unit-menu-move">${t('dir.move')}</button>
      <button type="button" role="menuitem" data-act="delete" class="danger" data-testid="unit-menu-delete">${t('common.delete')}</button>
      <button type="button" role="menuitem" data-act="user" data-testid="unit-menu-user">${t('users.addHere')}</button>`);
    document.body.appendChild(menu);
    const w = menu.offsetWidth;
    const h = menu.offsetHeight;
    menu.style.left = `${Math.max(0, Math.min(x, window.innerWidth - w - 4))}px`;
    menu.style.top = `${Math.max(0, Math.min(y, window.innerHeight - h - 4))}px`;
    const entries = $$('button', menu);
    const close = () => {
      menu.remove();
      document.removeEventListener('mousedown', outside, true);
      window.removeEventListener('hashchange', close);
    };
    const outside = (e) => { if (!menu.contains(e.target)) close(); };
    document.addEventListener('mousedown', outside, true);
    window.addEventListener('hashchange', close);
    menu.addEventListener('keydown', (e) => {
      const i = entries.indexOf(document.activeElement);
      if (e.key === 'Escape') { close(); $(`[data-more="${CSS.escape(id)}"]`, treeEl)?.focus(); }
      else if (e.key === 'ArrowDown') { e.preventDefault(); entries[(i + 1) % entries.length].focus(); }
      else if (e.key === 'ArrowUp') { e.preventDefault(); entries[(i - 1 + entries.length) % entries.length].focus(); }
      else if (e.key === 'Tab') close();
    });
    on(menu, 'button[data-act]', 'click', (e) => {
      const act = e.currentTarget.dataset.act;
      close();
      unitActions[act](tree.byId.get(id));
    });
    if (fromKeyboard) entries[0].focus();
  };
  const unitActions = {};

  if (edit) {
    unitActions.add = (node) => nameDialog(t('dir.addChildOf', { unit: node?.name || '' }), '', async (name) => {
      const u = await api('POST', '/units', { name, parent: node.id });
      selected = u?.id || selected;
      sessionStorage.setItem('herald.unit', selected);
      toast(t('common.saved'));
      await reloadUnits();
      loadUsers();
    });
    unitActions.rename = (n) => {
      nameDialog(t('dir.rename'), n.name, async (name) => {
        await api('PATCH', `/units/${encodeURIComponent(n.id)}`, { name });
        toast(t('common.saved'));
        await reloadUnits();
        loadUsers();
      });
    };
    unitActions.move = (n) => {
      const exclude = new Set(subtreeIds(n));
      formDialog(t('dir.moveUnit', { unit: n.name }), html`<label>${t('dir.newParent')}<select name="parent" data-testid="unit-parent">${unitOptions(tree.roots, n.parent, exclude)}</select></label>`, async (f) => {
        await api('PATCH', `/units/${encodeURIComponent(n.id)}`, { parent: f.elements.parent.value });
        toast(t('common.saved'));
        await reloadUnits();
      }, 'unit-dialog');
    };
    unitActions.delete = async (n) => {
      if (!(await confirmDialog(t('dir.confirmDelete', { unit: n.name })))) return;
      try {
        await api('DELETE', `/units/${encodeURIComponent(n.id)}`);
        toast(t('common.deleted'));
        selected = n.parent;
        await reloadUnits();
        loadUsers();
      } catch (err) { toast(err.message, 'error'); }
    };
    unitActions.user = (n) => userDialog(null, n.id);
    const current = () => tree.byId.get(selected);
    $('[data-testid=unit-add]', root).onclick = () => unitActions.add(current());
    $('[data-testid=unit-rename]', root).onclick = () => unitActions.rename(current());
    $('[data-testid=unit-move]', root).onclick = () => unitActions.move(current());
    $('[data-testid=unit-delete]', root).onclick = () => unitActions.delete(current());
    $('[data-testid=user-add]', root).onclick = () => userDialog(null);
  }
  $('[data-testid=user-search-form]', root).addEventListener('submit', (e) => {
    e.preventDefault();
    q = e.currentTarget.elements.q.value.trim();
    list.offset = 0;
    loadUsers();
  });
  renderTree();
  loadUsers();
}

// ------------------------------------------------------------------- app market

async function pageApps(root) {
  const manage = can('apps.manage');
  setHtml(root, html`<section data-testid="page-apps"><h1>${t('menu.apps')}</h1>
    <div class="cards" data-testid="apps-list"></div>
    <div class="panel"><div class="panel-head"><h2>${t('apps.keys')}</h2>
      ${manage ? html`<button type="button" class="primary" data-testid="api-key-create">${t('apps.createKey')}</button>` : ''}</div>
      <div data-testid="api-keys-wrap"></div></div></section>`);
  const list = $('[data-testid=apps-list]', root);
  const keysWrap = $('[data-testid=api-keys-wrap]', root);
  const loadApps = async () => {
    const apps = items(await api('GET', '/apps'));
    setHtml(list, html`${apps.map((a) => html`<article class="card" data-testid="app-card" data-id="${a.id}">
      <h3>${t('app.' + a.id + '.name', {}, a.name)}</h3><p>${t('app.' + a.id + '.desc', {}, a.description)}</p>
      ${a.enabled ? html`<p class="ok" data-testid="app-enabled">${t('apps.enabledAt', { at: fmtTime(a.enabled_at), by: a.enabled_by || '' })}</p>
          ${manage ? html`<button type="button" class="danger" data-disable="${a.id}" data-testid="app-disable-${a.id}">${t('apps.disable')}</button>` : ''}`
        : html`<p class="muted" data-testid="app-disabled">${t('apps.notEnabledHint')}</p>${manage ? html`<button type="button" class="primary" data-enable="${a.id}" data-testid="app-enable-${a.id}">${t('apps.enable')}</button>` : ''}`}
    </article>`)}`);
    on(list, '[data-enable]', 'click', async (e) => {
      const id = e.currentTarget.dataset.enable;
      e.currentTarget.disabled = true;
      try {
        const r = await api('POST', `/apps/${encodeURIComponent(id)}/enable`);
        toast(t('apps.enabled'));
        if (r && r.api_key) showKeyDialog(r.api_key);
        await appsChanged();
      } catch (err) { toast(err.message, 'error'); e.currentTarget.disabled = false; }
    });
    on(list, '[data-disable]', 'click', async (e) => {
      const id = e.currentTarget.dataset.disable;
      if (!(await confirmDialog(t('apps.confirmDisable', { name: t('app.' + id + '.name', {}, id) })))) return;
      try {
        await api('POST', `/apps/${encodeURIComponent(id)}/disable`);
        toast(t('apps.disabled'));
        await appsChanged();
      } catch (err) { toast(err.message, 'error'); }
    });
  };
  // The menus follow the enabled apps.
  const appsChanged = async () => {
    await loadMe();
    renderShell();
    loadApps();
    loadKeys();
  };
  const loadKeys = async () => {
    try {
      const keys = items(await api('GET', '/api-keys'));
      setHtml(keysWrap, html`<table data-testid="api-keys-table"><thead><tr><th>${t('apps.prefix')}</th><th>${t('common.createdAt')}</th><th>${t('common.createdBy')}</th><th></th></tr></thead>
        <tbody>${keys.length ? keys.map((k) => html`<tr data-testid="api-key-row" data-id="${k.id}"><td><code>${k.prefix}…</code></td><td>${fmtTime(k.created_at)}</td><td>${k.created_by || ''}</td>
        <td>${manage ? html`<button type="button" class="danger" data-revoke="${k.id}" data-testid="api-key-revoke">${t('apps.revoke')}</button>` : ''}</td></tr>`) : html`<tr><td colspan="4" class="muted">${t('common.empty')}</td></tr>`}</tbody></table>`);
      on(keysWrap, '[data-revoke]', 'click', async (e) => {
        const id = e.currentTarget.dataset.revoke;
        if (!(await confirmDialog(t('apps.confirmRevoke')))) return;
        try { await api('DELETE', `/api-keys/${encodeURIComponent(id)}`); toast(t('apps.revoked')); loadKeys(); } catch (err) { toast(err.message, 'error'); }
      });
    } catch (err) { setHtml(keysWrap, html`<p class="error">${err.message}</p>`); }
  };
  if (manage) {
    $('[data-testid=api-key-create]', root).onclick = async () => {
      try {
        const r = await api('POST', '/api-keys');
        showKeyDialog(r.api_key);
        loadKeys();
      } catch (err) { toast(err.message, 'error'); }
    };
  }
  await loadApps();
  loadKeys();
}

// ------------------------------------------------------------------------ roles

/** One line of a role's data scope: all units, or the names of its units. */
function scopeText(g, tree) {
  return g.all_units ? t('roles.allUnits') : ((g.units || []).map((id) => tree.byId.get(id)?.name || id).join('、') || t('roles.noUnits'));
}

async function pageRoles(root) {
  const manage = can('roles.manage');
  setHtml(root, html`<section data-testid="page-roles"><h1>${t('menu.roles')}</h1>
    <div class="panel"><div class="panel-head"><h2>${t('roles.list')}</h2>
      ${manage ? html`<button type="button" class="primary" data-testid="role-add">${t('roles.add')}</button>` : ''}</div>
      <div data-testid="roles-wrap"></div></div></section>`);
  const wrap = $('[data-testid=roles-wrap]', root);
  const [catalogue, units] = await Promise.all([api('GET', '/permissions').then(items), loadUnits().catch(() => [])]);
  const tree = buildTree(units);
  const load = async () => {
    const roles = items(await api('GET', '/roles'));
    setHtml(wrap, html`<table data-testid="roles-table"><thead><tr><th>${t('common.name')}</th><th>${t('roles.description')}</th><th>${t('roles.perms')}</th><th>${t('roles.data')}</th><th></th></tr></thead>
      <tbody>${roles.map((r) => {
        const scopes = [...new Set((r.permissions || []).map((g) => scopeText(g, tree)))];
        return html`<tr data-testid="role-row" data-name="${r.name}"><td>${r.name}</td><td data-testid="role-description">${r.description || ''}</td><td>${(r.permissions || []).length}</td>
        <td>${scopes.length > 1 ? t('roles.perPermission') : (scopes[0] || '')}</td>
        <td class="rowbtns">${manage ? html`<button type="button" data-edit="${r.id}" data-testid="role-edit">${t('common.edit')}</button>
        <button type="button" class="danger" data-del="${r.id}" data-testid="role-delete">${t('common.delete')}</button>` : html`<button type="button" data-edit="${r.id}" data-testid="role-view">${t('common.view')}</button>`}</td></tr>`;
      })}</tbody></table>`);
    on(wrap, '[data-edit]', 'click', (e) => roleDialog(roles.find((r) => r.id === e.currentTarget.dataset.edit)));
    on(wrap, '[data-del]', 'click', async (e) => {
      const r = roles.find((x) => x.id === e.currentTarget.dataset.del);
      if (!(await confirmDialog(t('roles.confirmDelete', { name: r.name })))) return;
      try { await api('DELETE', `/roles/${encodeURIComponent(r.id)}`); toast(t('common.deleted')); load(); } catch (err) { toast(err.message, 'error'); }
    });
  };
  const roleDialog = (role) => {
    const r = role || { name: '', description: '', permissions: [] };
    const has = new Map((r.permissions || []).map((g) => [g.id, g]));
    // app → menu → [menu permission, buttons…]
    const apps = new Map();
    for (const p of catalogue) {
      const app = p.app || 'base';
      if (!apps.has(app)) apps.set(app, new Map());
      const menus = apps.get(app);
      if (!menus.has(p.menu)) menus.set(p.menu, []);
      menus.get(p.menu).push(p);
    }
    const enabled = new Set(state.me?.apps || []);
    const scopeOf = (p) => {
      const g = has.get(p.id);
      const all = g ? g.all_units : true;
      return html`<div class="perm-scope" data-testid="scope-${p.id}-wrap">
        <select name="scope:${p.id}" data-testid="scope-${p.id}" aria-label="${t('roles.data')}">
          <option value="all" ${raw(all ? 'selected' : '')}>${t('roles.allUnits')}</option>
          <option value="some" ${raw(!all ? 'selected' : '')}>${t('roles.someUnits')}</option></select>
        <div class="role-units" data-testid="scope-units-${p.id}">${treeCheckboxes(tree.roots, g ? g.units : [], 'units:' + p.id)}</div></div>`;
    };
    const perm = (p) => html`<div class="perm" data-testid="perm-row" data-id="${p.id}" data-kind="${p.kind}">
      <label class="inline"><input type="checkbox" name="permissions" value="${p.id}" data-kind="${p.kind}" data-menu="${p.menu}" data-testid="perm-${p.id}" ${raw(has.has(p.id) ? 'checked' : '')}>
        ${t('perm.' + p.id, {}, p.id)} <span class="muted">(${t('perm.kind.' + p.kind, {}, p.kind)})</span></label>
      ${p.scoped ? scopeOf(p) : ''}</div>`;
    const { el, form } = formDialog(role ? t('roles.edit') : t('roles.add'), html`
      <label>${t('common.name')} *<input name="name" value="${r.name}" data-testid="role-name" required></label>
      <label>${t('roles.description')}<textarea name="description" rows="2" maxlength="500" data-testid="role-description-input">${r.description || ''}</textarea></label>
      <fieldset data-field="permissions"><legend>${t('roles.perms')}</legend><p class="muted">${t('roles.treeHint')}</p>
      <ul class="permtree" data-testid="perm-tree">${[...apps.entries()].map(([app, menus]) => html`<li class="permapp" data-testid="perm-app" data-app="${app}">
        <strong>${t('app.' + app + '.name', {}, app)}</strong>${app !== 'base' && !enabled.has(app) ? html` <span class="muted" data-testid="perm-app-off">${t('apps.notEnabled')}</span>` : ''}
        <ul>${[...menus.entries()].map(([menu, ps]) => html`<li class="permgroup" data-testid="perm-group" data-menu="${menu}"><h4>${t('menu.' + menuKey(menu), {}, menu)}</h4>
          ${ps.filter((p) => p.kind === 'menu').map(perm)}<ul class="permbuttons">${ps.filter((p) => p.kind !== 'menu').map((p) => html`<li>${perm(p)}</li>`)}</ul></li>`)}</ul></li>`)}
      </ul></fieldset>`,
    async (f) => {
      const permissions = $$('input[name=permissions]:checked', f).map((i) => {
        const p = catalogue.find((c) => c.id === i.value);
        if (!p?.scoped) return { id: i.value };
        const all = f.elements['scope:' + p.id].value === 'all';
        return { id: p.id, all_units: all, units: all ? [] : $$(`input[name="units:${CSS.escape(p.id)}"]:checked`, f).map((u) => u.value) };
      });
      const body = { name: f.elements.name.value.trim(), description: f.elements.description.value.trim(), permissions };
      if (role) await api('PATCH', `/roles/${encodeURIComponent(role.id)}`, body);
      else await api('POST', '/roles', body);
      toast(t('common.saved'));
      load();
    }, 'role-dialog');
    const sync = () => {
      $$('.perm', el).forEach((row) => {
        const box = $('input[name=permissions]', row);
        const sel = $('select', row);
        if (!sel) return;
        sel.disabled = !manage || !box.checked;
        const some = box.checked && sel.value === 'some';
        const units = $('.role-units', row);
        units.hidden = !some;
        $$('input', units).forEach((i) => { i.disabled = !manage || !some; });
      });
    };
    // A button needs its menu: checking a button checks the menu; unchecking the menu unchecks its buttons.
    on(el, 'input[name=permissions]', 'change', (e) => {
      const box = e.currentTarget;
      const group = box.closest('.permgroup');
      if (box.dataset.kind === 'button' && box.checked) { const m = $('input[name=permissions][data-kind=menu]', group); if (m) m.checked = true; }
      if (box.dataset.kind === 'menu' && !box.checked) $$('input[name=permissions][data-kind=button]', group).forEach((b) => { b.checked = false; });
      sync();
    });
    on(el, '.perm select', 'change', sync);
    sync();
    if (!manage) { $$('input,select,textarea', form).forEach((i) => { i.disabled = true; }); $('[data-testid=dialog-submit]', form).hidden = true; }
  };
  if (manage) $('[data-testid=role-add]', root).onclick = () => roleDialog(null);
  await load();
}
/** Catalogue menus may be ids ("directory") or names; map to our menu keys. */
function menuKey(menu) {
  const m = String(menu).toLowerCase();
  const map = { '通讯录': 'directory', '应用市场': 'apps', '角色权限': 'roles', '消息推送': 'pushes', '分级推送': 'tiered', '账户设置': 'accounts', '费用管理': 'cost', '报表': 'reports', push: 'pushes', app: 'apps', role: 'roles', account: 'accounts', report: 'reports' };
  return map[m] || map[menu] || m;
}

// ----------------------------------------------------------------------- pushes

const PUSH_STATUSES = ['draft', 'scheduled', 'sent', 'disabled'];

async function accountTypes() {
  if (!state.accountTypes) state.accountTypes = items(await api('GET', '/account-types'));
  return state.accountTypes;
}
/** A plugin's account schema as an object (the API may give it as a string). */
function schemaOf(types, ch) {
  let schema = types.find((x) => x.channel === ch)?.account_schema;
  if (typeof schema === 'string') { try { schema = JSON.parse(schema); } catch { schema = {}; } }
  return schema && typeof schema === 'object' ? schema : {};
}
const channelName = (types, ch) => {
  const tp = types.find((x) => x.channel === ch);
  // The console's own name, else the schema's localized title, else the plugin name.
  return t('channel.' + ch, {}, schemaText(schemaOf(types, ch), ch).title || tp?.name || ch);
};

async function pagePushes(root) {
  const editp = can('push.edit');
  const send = can('push.send');
  const f = JSON.parse(sessionStorage.getItem('herald.pushFilter') || '{}');
  const list = pagedList('pushes-table');
  setHtml(root, html`<section data-testid="page-pushes"><h1>${t('menu.pushes')}</h1>
    <div class="panel"><div class="panel-head"><h2>${t('push.list')}</h2>
      ${editp ? html`<a class="button primary" href="#/pushes/new" data-testid="push-add">${t('push.add')}</a>` : ''}</div>
    <form class="searchbar" data-testid="push-filter">
      <input name="number" placeholder="${t('common.number')}" value="${f.number || ''}" data-testid="push-filter-number">
      <input name="title" placeholder="${t('common.title')}" value="${f.title || ''}" data-testid="push-filter-title">
      <select name="status" data-testid="push-filter-status"><option value="">${t('common.allStatuses')}</option>
        ${PUSH_STATUSES.map((s) => html`<option value="${s}" ${raw(f.status === s ? 'selected' : '')}>${t('status.' + s)}</option>`)}</select>
      <button type="submit" data-testid="push-search">${t('common.search')}</button>
      <button type="button" data-testid="push-reset">${t('common.reset')}</button></form>
    <div data-testid="pushes-wrap"></div></div></section>`);
  const form = $('[data-testid=push-filter]', root);
  const wrap = $('[data-testid=pushes-wrap]', root);
  const types = await accountTypes().catch(() => []);
  const load = async () => {
    const e = form.elements;
    const filt = { number: e.number.value.trim(), title: e.title.value.trim(), status: e.status.value };
    sessionStorage.setItem('herald.pushFilter', JSON.stringify(filt));
    try {
      const d = await api('GET', '/pushes' + qs({ ...filt, ...list.params() }));
      const ps = items(d);
      setHtml(wrap, html`<table data-testid="pushes-table"><thead><tr><th data-sort="number">${t('common.number')}</th><th data-sort="title">${t('common.title')}</th><th data-sort="channel">${t('push.channel')}</th><th>${t('common.status')}</th><th data-sort="schedule">${t('push.schedule')}</th><th data-sort="updated_at">${t('common.updatedAt')}</th><th></th></tr></thead>
        <tbody>${ps.length ? ps.map((p) => html`<tr data-testid="push-row" data-number="${p.number}" data-id="${p.id}" data-status="${p.status}">
          <td>${p.number}</td><td><a href="#/pushes/${encodeURIComponent(p.id)}" data-testid="push-title-link">${p.title}</a></td>
          <td>${channelName(types, p.channel)}</td>
          <td><span class="badge s-${p.status}" data-testid="push-status">${t('status.' + p.status, {}, p.status)}</span>${p.enabled ? '' : html` <span class="badge s-disabled" data-testid="push-disabled">${t('common.disabled')}</span>`}</td>
          <td>${p.schedule?.mode === 'at' ? fmtTime(p.schedule.at) : t('push.now')}</td><td>${fmtTime(p.updated_at || p.created_at)}</td>
          <td class="rowbtns">
            <a class="button" href="#/pushes/${encodeURIComponent(p.id)}/deliveries" data-testid="push-deliveries">${t('push.deliveries')}</a>
            ${editp ? html`<button type="button" data-copy="${p.id}" data-testid="push-copy">${t('common.copy')}</button>` : ''}
            ${send ? html`<button type="button" data-toggle="${p.id}" data-testid="push-toggle">${p.enabled ? t('common.disable') : t('common.enable')}</button>` : ''}
            ${editp ? html`<button type="button" class="danger" data-del="${p.id}" data-testid="push-delete" title="${t('push.deleteHint')}">${t('common.delete')}</button>` : ''}
          </td></tr>`) : html`<tr><td colspan="7" class="muted" data-testid="pushes-empty">${t('common.empty')}</td></tr>`}</tbody></table>`);
      list.attach(wrap, d.total ?? ps.length, load);
      const byId = (id) => ps.find((p) => p.id === id);
      on(wrap, '[data-copy]', 'click', async (ev) => {
        try { const c = await api('POST', `/pushes/${encodeURIComponent(ev.currentTarget.dataset.copy)}/copy`); toast(t('push.copied', { number: c?.number || '' })); load(); } catch (err) { toast(err.message, 'error'); }
      });
      on(wrap, '[data-toggle]', 'click', async (ev) => {
        const p = byId(ev.currentTarget.dataset.toggle);
        try { await api('POST', `/pushes/${encodeURIComponent(p.id)}/${p.enabled ? 'disable' : 'enable'}`); toast(t('common.saved')); load(); } catch (err) { toast(err.message, 'error'); }
      });
      on(wrap, '[data-del]', 'click', async (ev) => {
        const p = byId(ev.currentTarget.dataset.del);
        if (!(await confirmDialog(t('push.confirmDelete', { number: p.number })))) return;
        try { await api('DELETE', `/pushes/${encodeURIComponent(p.id)}`); toast(t('common.deleted')); load(); } catch (err) { toast(err.message, 'error'); }
      });
    } catch (err) { setHtml(wrap, html`<p class="error" data-testid="pushes-error">${err.message}</p>`); }
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); list.offset = 0; load(); });
  $('[data-testid=push-reset]', root).onclick = () => { form.reset(); $$('input', form).forEach((i) => { i.value = ''; }); form.elements.status.value = ''; list.offset = 0; load(); };
  await load();
}

async function loadAccounts(channel) {
  const d = await api('GET', '/accounts' + qs({ limit: 200 }));
  return items(d).filter((a) => !channel || a.channel === channel);
}
async function treeCtx(readonly) {
  const units = await loadUnits().catch(() => []);
  const tree = buildTree(units);
  return { roots: tree.roots, unitsById: tree.byId, readonly };
}

/** The cron builder's presets (Unix cron: weekday 0/7 = Sunday, 1-5 = Monday to Friday). */
const CRON_PRESETS = [['0 9 * * *', 'push.preset.daily'], ['0 9 * * 1-5', 'push.preset.weekdays'], ['0 9 * * 1', 'push.preset.weekly'], ['0 9 1 * *', 'push.preset.monthly']];

// ------------------------------------------------------------- provider templates
// Template-based providers (Aliyun, Tencent SMS and voice) send only a template
// approved beforehand: the plugin declares it in its account schema
// (x-herald-provider-template), and a push or tiered template picks the code
// and fills the parameters, which may use {{ variables }}.
function templateBinding(type) { return type?.account_schema?.['x-herald-provider-template'] || null; }

function providerTemplateEditor(box, { type, account, initial, readonly, testid = 'pt' }) {
  const binding = templateBinding(type);
  box.hidden = !binding;
  if (!binding) { box.textContent = ''; return { value: () => null }; }
  const cfg = account?.config || {};
  const defaultCode = cfg[binding.code] || '';
  const defaultNames = Array.isArray(cfg[binding.names]) ? cfg[binding.names] : [];
  const rows = (initial?.params?.length ? initial.params : defaultNames.map((n) => ({ name: n, value: `{{ ${n} }}` }))).map((r) => ({ ...r }));
  setHtml(box, html`<p class="muted" data-testid="${testid}-note">${t('pt.note', { channel: type.name })}</p>
    <label>${t('pt.code')}<input name="pt.code" data-testid="${testid}-code" value="${initial?.code || ''}" placeholder="${defaultCode ? t('pt.codeDefault', { code: defaultCode }) : ''}" spellcheck="false"></label>
    <table class="small"><thead><tr><th>${t('pt.param')}</th><th>${t('pt.value')}</th><th></th></tr></thead><tbody data-testid="${testid}-params"></tbody></table>
    ${readonly ? '' : html`<button type="button" data-testid="${testid}-add">${t('pt.add')}</button>`}
    <p class="small" data-testid="${testid}-sent"></p>`);
  const tbody = $(`[data-testid=${testid}-params]`, box);
  const codeEl = $(`[data-testid=${testid}-code]`, box);
  const value = () => {
    const code = codeEl.value.trim();
    const params = rows.filter((r) => r.name.trim()).map((r) => ({ name: r.name.trim(), value: r.value }));
    return code || params.length ? { ...(code ? { code } : {}), params } : null;
  };
  // What the provider receives: the code and the parameters as the plugin takes them.
  const showSent = () => {
    const v = value() || { params: [] };
    const params = binding.format === 'array' ? v.params.map((p) => p.value) : Object.fromEntries(v.params.map((p) => [p.name, p.value]));
    const shown = v.params.length ? JSON.stringify(params) : t('pt.accountParams', { names: defaultNames.join(', ') || '—' });
    $(`[data-testid=${testid}-sent]`, box).textContent = t('pt.sent', { code: v.code || defaultCode || '—', params: shown });
  };
  const draw = () => {
    setHtml(tbody, html`${rows.map((r, i) => html`<tr data-testid="${testid}-param">
      <td><input data-i="${i}" data-k="name" value="${r.name}" data-testid="${testid}-param-name"></td>
      <td><input data-i="${i}" data-k="value" value="${r.value}" data-testid="${testid}-param-value"></td>
      <td>${readonly ? '' : html`<button type="button" data-i="${i}" data-testid="${testid}-param-remove">${t('common.remove')}</button>`}</td></tr>`)}`);
    if (readonly) $$('input', box).forEach((i) => { i.disabled = true; });
    showSent();
  };
  // Delegated: the rows are redrawn.
  tbody.addEventListener('input', (e) => { const el = e.target.closest('input[data-k]'); if (el) { rows[+el.dataset.i][el.dataset.k] = el.value; showSent(); } });
  tbody.addEventListener('click', (e) => { const b = e.target.closest('button[data-i]'); if (b) { rows.splice(+b.dataset.i, 1); draw(); } });
  on(box, `[data-testid=${testid}-add]`, 'click', () => { rows.push({ name: '', value: '' }); draw(); });
  codeEl.addEventListener('input', showSent);
  draw();
  return { value };
}

async function pagePushEdit(root, id) {
  const isNew = id === 'new';
  const p = isNew ? { title: '', channel: '', account: '', content: {}, targets: { users: [], units: [], list: [] }, schedule: { mode: 'now' }, enabled: true }
    : await api('GET', `/pushes/${encodeURIComponent(id)}`);
  const readonly = !can('push.edit');
  const sends = p.sends || [];
  const types = await accountTypes();
  if (!p.channel) p.channel = types.find((x) => x.channel === 'email')?.channel || types[0]?.channel || '';
  setHtml(root, html`<section data-testid="page-push-edit"><h1>${isNew ? t('push.add') : html`${t('push.view')} <span class="muted" data-testid="push-number">${p.number}</span>`}</h1>
    ${!isNew ? html`<p><span class="badge s-${p.status}" data-testid="push-status">${t('status.' + p.status, {}, p.status)}</span>
      ${p.message_id ? html` <span class="muted">${t('push.messageId')}: <code>${p.message_id}</code></span>` : ''}
      <a href="#/pushes/${encodeURIComponent(p.id)}/deliveries" data-testid="push-deliveries-link">${t('push.deliveries')}</a></p>` : ''}
    ${p.status === 'sent' ? html`<p class="muted" data-testid="push-sent-note">${t('push.sentNote', { n: sends.length || 1 })}
      ${can('push.send') && p.enabled ? html`<button type="button" data-testid="push-send-again">${t('push.sendAgain')}</button>` : ''}</p>` : ''}
    <form class="panel" data-testid="push-form" novalidate>
      <div class="grid2">
        <label>${t('common.title')} *<input name="title" value="${p.title}" data-testid="push-title" required></label>
        <label>${t('push.channel')} *<select name="channel" data-testid="push-channel">${types.map((tp) => html`<option value="${tp.channel}" ${raw(tp.channel === p.channel ? 'selected' : '')}>${channelName(types, tp.channel)}</option>`)}</select></label>
        <label>${t('push.account')} *<select name="account" data-testid="push-account"></select></label>
      </div>
      <fieldset><legend>${t('push.content')}</legend><div data-testid="push-content"></div></fieldset>
      <fieldset data-field="provider_template" data-testid="push-provider-wrap" hidden><legend>${t('pt.title')}</legend><div data-testid="push-provider"></div></fieldset>
      <fieldset data-field="targets"><legend>${t('push.targets')}</legend><div data-testid="push-targets"></div></fieldset>
      <fieldset><legend>${t('push.advanced')}</legend>
        <label class="inline"><input type="radio" name="mode" value="now" data-testid="push-mode-now" ${raw(!['at', 'cron'].includes(p.schedule?.mode) ? 'checked' : '')}> ${t('push.now')}</label>
        <label class="inline"><input type="radio" name="mode" value="at" data-testid="push-mode-at" ${raw(p.schedule?.mode === 'at' ? 'checked' : '')}> ${t('push.at')}</label>
        <input type="datetime-local" name="schedule.at" data-testid="push-at" value="${timeToLocal(p.schedule?.at)}">
        <label class="inline"><input type="radio" name="mode" value="cron" data-testid="push-mode-cron" ${raw(p.schedule?.mode === 'cron' ? 'checked' : '')}> ${t('push.cron')}</label>
        <div class="cron-builder" data-testid="push-cron-builder">
          <label>${t('push.preset')}<select data-testid="push-cron-preset"><option value="">${t('push.preset.pick')}</option>
            ${CRON_PRESETS.map(([expr, key]) => html`<option value="${expr}">${t(key)}</option>`)}</select></label>
          <label>${t('push.cronExpr')}<input name="schedule.cron" data-testid="push-cron" value="${p.schedule?.cron || ''}" placeholder="0 9 * * 1-5" spellcheck="false"></label>
          <label>${t('push.timeZone')}<input name="schedule.time_zone" data-testid="push-time-zone" value="${p.schedule?.time_zone || 'Asia/Shanghai'}"></label>
          <div><span class="lbl">${t('push.nextRuns')}</span><ol class="small" data-testid="push-next-runs"></ol><p class="error" data-testid="push-cron-error"></p></div>
        </div>
        ${isNew ? html`<label class="inline"><input type="checkbox" name="enabled" data-testid="push-enabled" ${raw(p.enabled !== false ? 'checked' : '')}> ${t('push.enableOnSave')}</label>` : ''}
      </fieldset>
      ${errorBox()}
      <div class="actions">${readonly ? '' : html`<button type="submit" class="primary" data-testid="push-save">${isNew ? t('push.create') : t('common.save')}</button>`}
        <a class="button" href="#/pushes" data-testid="push-back">${t('common.back')}</a></div>
    </form></section>`);
  const form = $('[data-testid=push-form]', root);
  const ctx = await treeCtx(readonly);
  const targets = targetsEditor($('[data-testid=push-targets]', root), p.targets, ctx, 'push', () => form.elements.channel.value);
  let content = null;
  const renderContent = () => {
    const box = $('[data-testid=push-content]', root);
    const ch = form.elements.channel.value;
    const c = p.content || {};
    if (ch === 'email') {
      setHtml(box, html`<label>${t('push.subject')} *<input name="content.subject" value="${c.subject || ''}" data-testid="push-subject"></label>
        <div class="lbl">${t('push.body')}</div><div data-testid="push-rich"></div>`);
      const ed = richEditor($('[data-testid=push-rich]', box), c.html || (c.text ? esc(c.text) : ''), { readonly, name: 'content.html', testid: 'rich' });
      content = () => {
        const subject = form.elements['content.subject'].value;
        const h = ed.value();
        return { subject, html: h, text: ed.text().trim() };
      };
    } else {
      setHtml(box, html`<label>${t('push.text')} *<textarea name="content.text" rows="6" data-testid="push-text">${c.text || ''}</textarea></label>`);
      content = () => ({ text: form.elements['content.text'].value });
    }
    if (readonly) $$('input,textarea,select', box).forEach((i) => { i.disabled = true; });
  };
  let provider = { value: () => null };
  let accounts = [];
  const renderProvider = () => {
    const ch = form.elements.channel.value;
    const type = types.find((x) => x.channel === ch);
    const account = accounts.find((a) => a.name === form.elements.account.value);
    const wrap = $('[data-testid=push-provider-wrap]', root);
    provider = providerTemplateEditor($('[data-testid=push-provider]', root), { type, account, initial: ch === p.channel ? p.provider_template : null, readonly, testid: 'push-pt' });
    wrap.hidden = !templateBinding(type);
  };
  const fillAccounts = async () => {
    const sel = form.elements.account;
    const ch = form.elements.channel.value;
    accounts = [];
    try { accounts = await loadAccounts(ch); } catch (err) { toast(err.message, 'error'); }
    setHtml(sel, html`<option value="">${t('push.pickAccount')}</option>${accounts.map((a) => html`<option value="${a.name}" ${raw(a.name === p.account ? 'selected' : '')}>${a.name}${a.config?.from ? ` <${a.config.from}>` : ''}</option>`)}`);
    if (!sel.value && accounts.length === 1) sel.value = accounts[0].name;
    renderProvider();
  };
  form.elements.channel.addEventListener('change', () => { renderContent(); fillAccounts(); });
  form.elements.account.addEventListener('change', renderProvider);
  // The cron builder: a preset fills the expression; the next runs come from the server (Unix cron semantics).
  const cronBox = $('[data-testid=push-cron-builder]', form);
  let previewSeq = 0;
  const previewCron = async () => {
    const seq = ++previewSeq;
    const list = $('[data-testid=push-next-runs]', form);
    const errEl = $('[data-testid=push-cron-error]', form);
    const expr = form.elements['schedule.cron'].value.trim();
    if (!expr || form.elements.mode.value !== 'cron') { list.textContent = ''; errEl.textContent = ''; return; }
    const q = new URLSearchParams({ cron: expr, time_zone: form.elements['schedule.time_zone'].value.trim() || 'Asia/Shanghai' });
    try {
      const r = await api('GET', `/pushes/schedule-preview?${q}`);
      if (seq !== previewSeq) return;
      errEl.textContent = '';
      const tz = q.get('time_zone');
      setHtml(list, html`${r.next_runs.map((ms) => html`<li data-testid="push-next-run" data-ms="${ms}">${fmtIn(ms, tz)}</li>`)}`);
    } catch (err) {
      if (seq !== previewSeq) return;
      list.textContent = '';
      errEl.textContent = err.message;
    }
  };
  let previewTimer = null;
  const previewSoon = () => { clearTimeout(previewTimer); previewTimer = setTimeout(previewCron, 250); };
  on(form, '[data-testid=push-cron-preset]', 'change', (e) => {
    if (!e.currentTarget.value) return;
    form.elements['schedule.cron'].value = e.currentTarget.value;
    previewCron();
  });
  on(form, '[data-testid=push-cron],[data-testid=push-time-zone]', 'input', previewSoon);
  const syncMode = () => {
    const mode = form.elements.mode.value;
    form.elements['schedule.at'].disabled = readonly || mode !== 'at';
    cronBox.hidden = mode !== 'cron';
    previewCron();
  };
  on(form, 'input[name=mode]', 'change', syncMode);
  renderContent();
  await fillAccounts();
  syncMode();
  if (readonly) $$('input,select,textarea', form).forEach((i) => { i.disabled = true; });
  on(root, '[data-testid=push-send-again]', 'click', async (e) => {
    const btn = e.currentTarget;
    btn.disabled = true;
    try {
      // The push as saved is what is sent: count its recipients, ask, send.
      const who = await api('POST', '/pushes/audience', { channel: p.channel, targets: p.targets });
      if (!(await confirmDialog(t('push.confirmNow', { n: who.recipients }) + audienceNote(who)))) return;
      const sent = await api('POST', `/pushes/${encodeURIComponent(p.id)}/send`);
      toast(t('push.sentAgain', { number: sent.number, n: (sent.sends || []).length }));
      go(`#/pushes/${encodeURIComponent(p.id)}/deliveries`);
    } catch (err) { toast(err.message, 'error'); } finally { btn.disabled = false; }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError(form);
    const el = form.elements;
    const mode = el.mode.value;
    const schedule = mode === 'at' ? { mode: 'at', at: localToMillis(el['schedule.at'].value) }
      : mode === 'cron' ? { mode: 'cron', cron: el['schedule.cron'].value.trim(), time_zone: el['schedule.time_zone'].value.trim() || 'Asia/Shanghai' }
        : { mode: 'now' };
    const body = { title: el.title.value.trim(), channel: el.channel.value, account: el.account.value, content: content(), targets: targets.value(), schedule };
    const chosen = provider.value();
    if (chosen) body.provider_template = chosen;
    if (isNew) body.enabled = el.enabled.checked;
    const btn = $('[data-testid=push-save]', form);
    btn.disabled = true;
    try {
      // An immediate send names its number of recipients first (as the manual describes).
      // Saving a push already sent sends nothing (it is sent again with its own button).
      if (mode === 'now' && !p.message_id && (isNew ? body.enabled : p.enabled !== false)) {
        // A push that cannot be counted (nothing picked yet) goes on to the save, which says what is missing.
        const who = await api('POST', '/pushes/audience', { channel: body.channel, targets: body.targets }).catch(() => null);
        if (who && !(await confirmDialog(t('push.confirmNow', { n: who.recipients }) + audienceNote(who)))) return;
      }
      const saved = isNew ? await api('POST', '/pushes', body) : await api('PUT', `/pushes/${encodeURIComponent(p.id)}`, body);
      toast(t('push.saved', { number: saved?.number || p.number || '' }));
      go('#/pushes');
    } catch (err) { showError(form, err); } finally { btn.disabled = false; }
  });
}

async function pageDeliveries(root, id) {
  const p = await api('GET', `/pushes/${encodeURIComponent(id)}`);
  const sends = p.sends || [];
  setHtml(root, html`<section data-testid="page-deliveries"><h1>${t('push.deliveries')}: <span data-testid="push-number">${p.number}</span> ${p.title}</h1>
    <p><a href="#/pushes/${encodeURIComponent(p.id)}" data-testid="push-title-link">${t('push.view')}</a> · <a href="#/pushes">${t('common.back')}</a>
      <button type="button" data-testid="deliveries-refresh">${t('common.refresh')}</button>
      <button type="button" data-testid="deliveries-export">${t('common.exportExcel')}</button>
      ${sends.length > 1 ? html`<label class="inline">${t('push.send')}<select data-testid="deliveries-send">${sends.map((sd, i) => html`<option value="${i}" ${raw(i === sends.length - 1 ? 'selected' : '')}>${t('push.sendN', { n: i + 1 })} · ${fmtTime(sd.at)} · ${t('targets.listCount', { n: sd.recipients })}</option>`)}</select></label>` : ''}</p>
    <div class="panel" data-testid="deliveries-wrap"></div></section>`);
  const wrap = $('[data-testid=deliveries-wrap]', root);
  const list = pagedList('deliveries-table');
  const load = async () => {
    try {
      const pick = $('[data-testid=deliveries-send]', root);
      const d = await api('GET', `/pushes/${encodeURIComponent(id)}/deliveries` + qs({ send: pick?.value, ...list.params() }));
      const ds = d?.deliveries || [];
      const counts = {};
      ds.forEach((x) => { counts[x.status] = (counts[x.status] || 0) + 1; });
      setHtml(wrap, html`<p>${t('push.messageId')}: <code data-testid="deliveries-message-id">${d?.message_id || '—'}</code>
        <span data-testid="deliveries-summary">${Object.entries(counts).map(([s, n]) => html`<span class="badge s-${s}">${t('dstatus.' + s, {}, s)} ${n}</span> `)}</span></p>
        <table data-testid="deliveries-table"><thead><tr><th data-sort="recipient">${t('deliv.recipient')}</th><th data-sort="status">${t('common.status')}</th><th data-sort="attempts">${t('deliv.attempts')}</th><th>${t('deliv.detail')}</th><th data-sort="cost_minor">${t('deliv.cost')}</th><th data-sort="updated_at">${t('common.updatedAt')}</th></tr></thead>
        <tbody>${ds.length ? ds.map((x) => html`<tr data-testid="delivery-row" data-recipient="${x.recipient}" data-status="${x.status}"><td>${x.recipient}</td>
          <td><span class="badge s-${x.status}" data-testid="delivery-status">${t('dstatus.' + x.status, {}, x.status)}</span></td><td>${x.attempts}</td><td>${x.detail || ''}</td>
          <td>${fmtMoney(x.cost_minor, x.currency)}</td><td>${fmtTime(x.updated_at)}</td></tr>`) : html`<tr><td colspan="6" class="muted" data-testid="deliveries-empty">${t('common.empty')}</td></tr>`}</tbody></table>`);
      list.attach(wrap, d?.total ?? ds.length, load);
    } catch (err) { setHtml(wrap, html`<p class="error">${err.message}</p>`); }
  };
  $('[data-testid=deliveries-refresh]', root).onclick = load;
  on(root, '[data-testid=deliveries-send]', 'change', () => { list.offset = 0; load(); });
  $('[data-testid=deliveries-export]', root).onclick = () => {
    const pick = $('[data-testid=deliveries-send]', root);
    download(`/pushes/${encodeURIComponent(id)}/deliveries/export${pick ? '?send=' + pick.value : ''}`, `deliveries-${p.number}.xlsx`).catch((err) => toast(err.message, 'error'));
  };
  await load();
}

// ----------------------------------------------------------------- tiered push

const EDITORS = ['text', 'rich_text', 'voice'];

async function pageTemplates(root) {
  const editp = can('tiered.edit');
  setHtml(root, html`<section data-testid="page-templates"><h1>${t('menu.tiered')} · ${t('tiered.templates')}</h1>
    ${tieredTabs('templates')}
    <div class="panel"><div class="panel-head"><h2>${t('tiered.templates')}</h2>
      ${editp ? html`<a class="button primary" href="#/tiered/templates/new" data-testid="tpl-add">${t('tiered.addTemplate')}</a>` : ''}</div>
    <form class="searchbar" data-testid="tpl-filter"><input name="number" placeholder="${t('common.number')}" data-testid="tpl-filter-number">
      <input name="title" placeholder="${t('common.title')}" data-testid="tpl-filter-title"><button type="submit" data-testid="tpl-search">${t('common.search')}</button></form>
    <div data-testid="tpl-wrap"></div></div></section>`);
  const form = $('[data-testid=tpl-filter]', root);
  const wrap = $('[data-testid=tpl-wrap]', root);
  const list = pagedList('tpl-table');
  const load = async () => {
    try {
      const d = await api('GET', '/tiered/templates' + qs({ number: form.elements.number.value.trim(), title: form.elements.title.value.trim(), ...list.params() }));
      const ts = items(d);
      setHtml(wrap, html`<table data-testid="tpl-table"><thead><tr><th data-sort="number">${t('common.number')}</th><th data-sort="title">${t('common.title')}</th><th>${t('tiered.editor')}</th><th>${t('tiered.variables')}</th><th data-sort="updated_at">${t('common.updatedAt')}</th><th></th></tr></thead>
        <tbody>${ts.length ? ts.map((x) => html`<tr data-testid="tpl-row" data-number="${x.number}" data-title="${x.title}"><td>${x.number}</td>
        <td><a href="#/tiered/templates/${encodeURIComponent(x.id)}" data-testid="tpl-title-link">${x.title}</a></td><td>${t('editor.' + x.editor, {}, x.editor)}</td>
        <td>${(x.variables || []).join(', ')}</td><td>${fmtTime(x.updated_at || x.created_at)}</td>
        <td class="rowbtns">${editp ? html`<button type="button" class="danger" data-del="${x.id}" data-testid="tpl-delete">${t('common.delete')}</button>` : ''}</td></tr>`) : html`<tr><td colspan="6" class="muted">${t('common.empty')}</td></tr>`}</tbody></table>`);
      list.attach(wrap, d.total ?? ts.length, load);
      on(wrap, '[data-del]', 'click', async (e) => {
        const x = ts.find((y) => y.id === e.currentTarget.dataset.del);
        if (!(await confirmDialog(t('tiered.confirmDeleteTpl', { number: x.number })))) return;
        try { await api('DELETE', `/tiered/templates/${encodeURIComponent(x.id)}`); toast(t('common.deleted')); load(); } catch (err) { toast(err.message, 'error'); }
      });
    } catch (err) { setHtml(wrap, html`<p class="error">${err.message}</p>`); }
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); list.offset = 0; load(); });
  await load();
}
function tieredTabs(active) {
  const tab = (key, label) => html`<a href="#/tiered/${key}" class="${active === key ? 'active' : ''}" data-testid="tab-${key}">${label}</a>`;
  return html`<nav class="tabs">${tab('templates', t('tiered.templates'))}
    ${tab('actions', t('tiered.actions'))}
    ${tab('incidents', t('tiered.incidents'))}
    ${tab('quiet-hours', t('tiered.quietHours'))}</nav>`;
}

// Incidents (triggered actions) and their timelines.

const INCIDENT_STATES = ['open', 'acknowledged', 'done'];
const TIMELINE_KINDS = ['triggered', 'repeated', 'fired', 'deferred', 'refused', 'fallback', 'skipped', 'acknowledged', 'stopped', 'done'];

/** id → action, for showing an incident's action by number and title (best effort). */
async function actionsById() {
  try {
    const as = items(await api('GET', '/tiered/actions' + qs({ limit: 200 })));
    return new Map(as.map((a) => [a.id, a]));
  } catch { return new Map(); }
}
const actionLabel = (byId, id) => {
  const a = byId.get(id);
  return a ? html`<a href="#/tiered/actions/${encodeURIComponent(a.id)}" data-testid="incident-action-link">${a.number} · ${a.title}</a>` : html`<span class="muted" title="${id}">${t('tiered.unknownAction')}</span>`;
};
const stateBadge = (s) => html`<span class="badge st-${s}" data-testid="incident-state">${t('istate.' + s, {}, s)}</span>`;

async function pageIncidents(root) {
  const f = JSON.parse(sessionStorage.getItem('herald.incidentFilter') || '{}');
  setHtml(root, html`<section data-testid="page-incidents"><h1>${t('menu.tiered')} · ${t('tiered.incidents')}</h1>
    ${tieredTabs('incidents')}
    <div class="panel"><div class="panel-head"><h2>${t('tiered.incidents')}</h2>
      <button type="button" data-testid="incident-refresh">${t('common.refresh')}</button></div>
    <form class="searchbar" data-testid="incident-filter">
      <select name="status" data-testid="incident-filter-status"><option value="">${t('common.allStatuses')}</option>
        ${INCIDENT_STATES.map((s) => html`<option value="${s}" ${raw(f.status === s ? 'selected' : '')}>${t('istate.' + s)}</option>`)}</select>
      <button type="submit" data-testid="incident-search">${t('common.search')}</button></form>
    <div data-testid="incident-wrap"></div></div></section>`);
  const form = $('[data-testid=incident-filter]', root);
  const wrap = $('[data-testid=incident-wrap]', root);
  const byAction = await actionsById();
  const list = pagedList('incident-table');
  const load = async () => {
    const status = form.elements.status.value;
    sessionStorage.setItem('herald.incidentFilter', JSON.stringify({ status }));
    try {
      const d = await api('GET', '/tiered/incidents' + qs({ status, ...list.params() }));
      const is = items(d);
      setHtml(wrap, html`<table data-testid="incident-table"><thead><tr><th data-sort="created_at">${t('tiered.triggeredAt')}</th><th data-sort="action">${t('tiered.action')}</th><th data-sort="level">${t('tiered.level')}</th><th data-sort="state">${t('common.status')}</th>
        <th class="num">${t('tiered.stepsFired')}</th><th class="num">${t('tiered.repeats')}</th><th>${t('tiered.ackedBy')}</th><th></th></tr></thead>
        <tbody>${is.length ? is.map((i) => html`<tr data-testid="incident-row" data-id="${i.id}" data-state="${i.state}" data-action="${i.action}" data-level="${i.level}">
          <td>${fmtTime(i.created_at)}</td><td>${actionLabel(byAction, i.action)}</td><td>${t('level.' + i.level, {}, i.level)}</td><td>${stateBadge(i.state)}</td>
          <td class="num">${(i.fired || []).length}${i.steps ? html`<span class="muted"> / ${i.steps.length}</span>` : ''}</td><td class="num">${i.repeats ?? 0}</td><td>${(i.acked || []).join(', ')}</td>
          <td class="rowbtns"><a class="button" href="#/tiered/incidents/${encodeURIComponent(i.id)}" data-testid="incident-view">${t('common.view')}</a></td></tr>`)
          : html`<tr><td colspan="8" class="muted" data-testid="incident-empty">${t('tiered.noIncidents')}</td></tr>`}</tbody></table>`);
      list.attach(wrap, d.total ?? is.length, load);
    } catch (err) { setHtml(wrap, html`<p class="error" data-testid="incident-error">${err.message}</p>`); }
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); list.offset = 0; load(); });
  form.elements.status.addEventListener('change', () => { list.offset = 0; load(); });
  $('[data-testid=incident-refresh]', root).onclick = load;
  await load();
}

async function pageIncident(root, id) {
  const byAction = await actionsById();
  setHtml(root, html`<section data-testid="page-incident"><h1>${t('tiered.incident')}</h1>
    ${tieredTabs('incidents')}
    <p><a href="#/tiered/incidents" data-testid="incident-back">${t('common.back')}</a>
      <button type="button" data-testid="incident-detail-refresh">${t('common.refresh')}</button></p>
    <div data-testid="incident-body"></div></section>`);
  const box = $('[data-testid=incident-body]', root);
  const load = async () => {
    const i = await api('GET', `/tiered/incidents/${encodeURIComponent(id)}`);
    const tl = [...(i.timeline || [])].sort((a, b) => (a.at || 0) - (b.at || 0));
    setHtml(box, html`<div class="panel"><dl class="facts" data-testid="incident-facts">
        <dt>${t('tiered.action')}</dt><dd>${actionLabel(byAction, i.action)}</dd>
        <dt>${t('tiered.level')}</dt><dd data-testid="incident-level">${t('level.' + i.level, {}, i.level)}</dd>
        <dt>${t('common.status')}</dt><dd>${stateBadge(i.state)}</dd>
        <dt>${t('tiered.triggeredAt')}</dt><dd>${fmtTime(i.created_at)}</dd>
        <dt>${t('tiered.ackScope')}</dt><dd>${t('ackScope.' + (i.ack_scope || 'incident'), {}, i.ack_scope)}</dd>
        <dt>${t('tiered.stepsFired')}</dt><dd>${(i.fired || []).length}${i.steps ? ` / ${i.steps.length}` : ''}</dd>
        <dt>${t('tiered.repeats')}</dt><dd>${i.repeats ?? 0}</dd>
        ${i.dedup_key ? html`<dt>${t('tiered.dedupKey')}</dt><dd><code>${i.dedup_key}</code></dd>` : ''}
        <dt>${t('tiered.ackedBy')}</dt><dd data-testid="incident-acked">${(i.acked || []).join(', ') || '—'}</dd>
        <dt>ID</dt><dd><code>${i.id}</code></dd></dl></div>
      <div class="panel"><h2>${t('tiered.timeline')}</h2>
        <table data-testid="timeline-table"><thead><tr><th>${t('tiered.at')}</th><th>${t('tiered.event')}</th><th class="num">${t('tiered.step')}</th><th>${t('push.channel')}</th>
          <th>${t('tiered.recipients')}</th><th>${t('push.messageId')}</th><th>${t('deliv.detail')}</th></tr></thead>
        <tbody>${tl.length ? tl.map((e) => html`<tr data-testid="timeline-row" data-kind="${e.kind}"><td>${fmtTime(e.at)}</td>
          <td><span class="badge ev-${TIMELINE_KINDS.includes(e.kind) ? e.kind : 'other'}">${t('ev.' + e.kind, {}, e.kind)}</span></td>
          <td class="num">${typeof e.step === 'number' ? e.step + 1 : ''}</td><td>${e.channel ? t('channel.' + e.channel, {}, e.channel) : ''}</td>
          <td>${(e.recipients || []).join(', ')}</td><td>${e.message_id ? html`<code>${e.message_id}</code>` : ''}</td><td>${e.detail || ''}</td></tr>`)
          : html`<tr><td colspan="7" class="muted">${t('common.empty')}</td></tr>`}</tbody></table></div>`);
  };
  $('[data-testid=incident-detail-refresh]', root).onclick = () => load().catch((err) => toast(err.message, 'error'));
  await load();
}

// Quiet hours: info/normal sends wait until the window ends (levels in levels_exempt go at once).

const COMMON_ZONES = ['Asia/Shanghai', 'Asia/Hong_Kong', 'Asia/Taipei', 'Asia/Singapore', 'Asia/Tokyo', 'Asia/Kolkata', 'Asia/Dubai',
  'Europe/London', 'Europe/Berlin', 'Europe/Paris', 'America/New_York', 'America/Chicago', 'America/Los_Angeles', 'Australia/Sydney', 'UTC'];

async function pageQuietHours(root) {
  const readonly = !can('tiered.edit');
  setHtml(root, html`<section data-testid="page-quiet-hours"><h1>${t('menu.tiered')} · ${t('tiered.quietHours')}</h1>
    ${tieredTabs('quiet-hours')}
    <form class="panel" data-testid="quiet-form" novalidate>
      <p class="muted" data-testid="quiet-state"></p>
      <p class="muted">${t('quiet.hint')}</p>
      <div class="grid2">
        <label>${t('quiet.start')} *<input name="start" placeholder="HH:MM" maxlength="5" inputmode="numeric" data-testid="quiet-start" required></label>
        <label>${t('quiet.end')} *<input name="end" placeholder="HH:MM" maxlength="5" inputmode="numeric" data-testid="quiet-end" required></label>
      </div>
      <label>${t('quiet.timeZone')} *<input name="time_zone" list="quiet-zones" data-testid="quiet-zone" required>
        <datalist id="quiet-zones">${COMMON_ZONES.map((z) => html`<option value="${z}"></option>`)}</datalist></label>
      <fieldset data-field="levels_exempt"><legend>${t('quiet.exempt')}</legend>
        ${LEVELS.map((l) => html`<label class="inline"><input type="checkbox" name="levels_exempt" value="${l}" data-testid="quiet-exempt-${l}"> ${t('level.' + l)}</label> `)}</fieldset>
      ${errorBox()}
      <div class="actions">${readonly ? '' : html`<button type="submit" class="primary" data-testid="quiet-save">${t('common.save')}</button>`}</div>
    </form></section>`);
  const form = $('[data-testid=quiet-form]', root);
  const fill = (q) => {
    const v = q || { start: '22:00', end: '08:00', time_zone: 'Asia/Shanghai', levels_exempt: ['urgent'] };
    form.elements.start.value = v.start || '';
    form.elements.end.value = v.end || '';
    form.elements.time_zone.value = v.time_zone || '';
    const ex = new Set((v.levels_exempt || []).map((l) => String(l).toLowerCase()));
    $$('input[name=levels_exempt]', form).forEach((i) => { i.checked = ex.has(i.value); });
    const st = $('[data-testid=quiet-state]', root);
    st.dataset.set = q ? 'true' : 'false';
    st.textContent = !q ? t('quiet.unset') : (q.start === q.end ? t('quiet.off') : t('quiet.active', { start: q.start, end: q.end, zone: q.time_zone }));
  };
  fill(await api('GET', '/tiered/quiet-hours'));
  if (readonly) $$('input', form).forEach((i) => { i.disabled = true; });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError(form);
    const el = form.elements;
    const body = { start: el.start.value.trim(), end: el.end.value.trim(), time_zone: el.time_zone.value.trim(),
      levels_exempt: $$('input[name=levels_exempt]:checked', form).map((i) => i.value) };
    try {
      const saved = await api('PUT', '/tiered/quiet-hours', body);
      fill(saved || body);
      toast(t('common.saved'));
    } catch (err) { showError(form, err); }
  });
}

async function pageTemplateEdit(root, id) {
  const isNew = id === 'new';
  const x = isNew ? { editor: 'text', title: '', subject: '', body: '', variables: [] } : await api('GET', `/tiered/templates/${encodeURIComponent(id)}`);
  const readonly = !can('tiered.edit');
  setHtml(root, html`<section data-testid="page-template-edit"><h1>${isNew ? t('tiered.addTemplate') : html`${t('tiered.template')} <span class="muted" data-testid="tpl-number">${x.number}</span>`}</h1>
    <form class="panel" data-testid="tpl-form" novalidate>
      <div class="grid2">
        <label>${t('tiered.editor')} *<select name="editor" data-testid="tpl-editor">${EDITORS.map((ed) => html`<option value="${ed}" ${raw(ed === x.editor ? 'selected' : '')}>${t('editor.' + ed)}</option>`)}</select></label>
        <label>${t('common.title')} *<input name="title" value="${x.title}" data-testid="tpl-title" required></label>
      </div>
      <p class="muted" data-testid="tpl-channel-hint"></p>
      <label data-testid="tpl-subject-wrap">${t('push.subject')} *<input name="subject" value="${x.subject || ''}" data-testid="tpl-subject"></label>
      <div class="lbl">${t('tiered.body')} *</div><div data-testid="tpl-body"></div>
      <label>${t('tiered.variables')}<input name="variables" value="${(x.variables || []).join(', ')}" data-testid="tpl-variables" placeholder="${t('tiered.variablesPh')}"></label>
      <div data-testid="tpl-providers"></div>
      ${errorBox()}
      <div class="actions">${readonly ? '' : html`<button type="submit" class="primary" data-testid="tpl-save">${t('common.save')}</button>`}
        <a class="button" href="#/tiered/templates" data-testid="tpl-back">${t('common.back')}</a></div>
    </form></section>`);
  const form = $('[data-testid=tpl-form]', root);
  let body = null;
  let current = x.body || '';
  const render = () => {
    const ed = form.elements.editor.value;
    $('[data-testid=tpl-subject-wrap]', root).hidden = ed !== 'rich_text';
    $('[data-testid=tpl-channel-hint]', root).textContent = t('tiered.channelRule.' + ed);
    const box = $('[data-testid=tpl-body]', root);
    if (ed === 'rich_text') {
      const r = richEditor(box, current, { readonly, name: 'body', testid: 'tpl-rich' });
      body = () => r.value();
    } else {
      setHtml(box, html`<textarea name="body" rows="6" data-testid="tpl-text">${current.replace(/<[^>]*>/g, '')}</textarea>`);
      body = () => form.elements.body.value;
    }
  };
  form.elements.editor.addEventListener('change', () => { current = body(); render(); });
  render();
  // One provider template per template-based channel installed (the action's rules pick the channel).
  const types = (await accountTypes().catch(() => [])).filter(templateBinding);
  const accs = types.length ? await loadAccounts().catch(() => []) : [];
  const providersBox = $('[data-testid=tpl-providers]', root);
  setHtml(providersBox, html`${types.map((tp) => html`<fieldset data-field="provider.${tp.channel}"><legend>${t('pt.titleFor', { channel: channelName(types, tp.channel) })}</legend><div data-channel="${tp.channel}"></div></fieldset>`)}`);
  const providers = types.map((tp) => [tp.channel, providerTemplateEditor($(`[data-channel="${tp.channel}"]`, providersBox),
    { type: tp, account: accs.find((a) => a.channel === tp.channel), initial: x.provider?.[tp.channel], readonly, testid: `tpl-pt-${tp.channel}` })]);
  if (readonly) $$('input,select,textarea', form).forEach((i) => { i.disabled = true; });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError(form);
    const el = form.elements;
    const data = { editor: el.editor.value, title: el.title.value.trim(), body: body(),
      variables: el.variables.value.split(/[,，\s]+/).map((s) => s.trim()).filter(Boolean) };
    if (data.editor === 'rich_text') data.subject = el.subject.value;
    data.provider = Object.fromEntries(providers.map(([ch, ed]) => [ch, ed.value()]).filter(([, v]) => v));
    try {
      const saved = isNew ? await api('POST', '/tiered/templates', data) : await api('PUT', `/tiered/templates/${encodeURIComponent(x.id)}`, data);
      toast(t('tiered.savedTpl', { number: saved?.number || x.number || '' }));
      go('#/tiered/templates');
    } catch (err) { showError(form, err); }
  });
}

async function pageActions(root) {
  const editp = can('tiered.edit');
  setHtml(root, html`<section data-testid="page-actions"><h1>${t('menu.tiered')} · ${t('tiered.actions')}</h1>
    ${tieredTabs('actions')}
    <div class="panel"><div class="panel-head"><h2>${t('tiered.actions')}</h2>
      ${editp ? html`<a class="button primary" href="#/tiered/actions/new" data-testid="action-add">${t('tiered.addAction')}</a>` : ''}</div>
    <form class="searchbar" data-testid="action-filter"><input name="number" placeholder="${t('common.number')}" data-testid="action-filter-number">
      <input name="title" placeholder="${t('common.title')}" data-testid="action-filter-title">
      <select name="status" data-testid="action-filter-status"><option value="">${t('common.allStatuses')}</option><option value="enabled">${t('common.enabled')}</option><option value="disabled">${t('common.disabled')}</option></select>
      <button type="submit" data-testid="action-search">${t('common.search')}</button></form>
    <div data-testid="action-wrap"></div></div></section>`);
  const form = $('[data-testid=action-filter]', root);
  const wrap = $('[data-testid=action-wrap]', root);
  const list = pagedList('action-table');
  const load = async () => {
    try {
      const el = form.elements;
      const d = await api('GET', '/tiered/actions' + qs({ number: el.number.value.trim(), title: el.title.value.trim(), status: el.status.value, ...list.params() }));
      const as = items(d);
      setHtml(wrap, html`<table data-testid="action-table"><thead><tr><th data-sort="number">${t('common.number')}</th><th data-sort="title">${t('common.title')}</th><th>${t('tiered.rules')}</th><th data-sort="status">${t('common.status')}</th><th data-sort="updated_at">${t('common.updatedAt')}</th><th></th></tr></thead>
        <tbody>${as.length ? as.map((a) => html`<tr data-testid="action-row" data-number="${a.number}" data-title="${a.title}" data-enabled="${a.enabled ? 'true' : 'false'}"><td>${a.number}</td>
        <td><a href="#/tiered/actions/${encodeURIComponent(a.id)}" data-testid="action-title-link">${a.title}</a></td><td>${(a.rules || []).length}</td>
        <td><span class="badge ${a.enabled ? 's-sent' : 's-disabled'}" data-testid="action-status">${a.enabled ? t('common.enabled') : t('common.disabled')}</span></td><td>${fmtTime(a.updated_at || a.created_at)}</td>
        <td class="rowbtns">${editp ? html`<button type="button" data-toggle="${a.id}" data-testid="action-toggle">${a.enabled ? t('common.disable') : t('common.enable')}</button>
          <button type="button" data-copy="${a.id}" data-testid="action-copy">${t('common.copy')}</button>
          <button type="button" class="danger" data-del="${a.id}" data-testid="action-delete" title="${t('push.deleteHint')}">${t('common.delete')}</button>` : ''}</td></tr>`) : html`<tr><td colspan="6" class="muted">${t('common.empty')}</td></tr>`}</tbody></table>`);
      list.attach(wrap, d.total ?? as.length, load);
      const byId = (id) => as.find((a) => a.id === id);
      on(wrap, '[data-toggle]', 'click', async (e) => {
        const a = byId(e.currentTarget.dataset.toggle);
        try { await api('POST', `/tiered/actions/${encodeURIComponent(a.id)}/${a.enabled ? 'disable' : 'enable'}`); toast(t('common.saved')); load(); } catch (err) { toast(err.message, 'error'); }
      });
      on(wrap, '[data-copy]', 'click', async (e) => {
        try { const c = await api('POST', `/tiered/actions/${encodeURIComponent(e.currentTarget.dataset.copy)}/copy`); toast(t('push.copied', { number: c?.number || '' })); load(); } catch (err) { toast(err.message, 'error'); }
      });
      on(wrap, '[data-del]', 'click', async (e) => {
        const a = byId(e.currentTarget.dataset.del);
        if (!(await confirmDialog(t('tiered.confirmDeleteAction', { number: a.number })))) return;
        try { await api('DELETE', `/tiered/actions/${encodeURIComponent(a.id)}`); toast(t('common.deleted')); load(); } catch (err) { toast(err.message, 'error'); }
      });
    } catch (err) { setHtml(wrap, html`<p class="error">${err.message}</p>`); }
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); list.offset = 0; load(); });
  await load();
}

/** Which template editor fits a channel's content formats (as the server decides). */
function editorFits(editor, formats) {
  const has = (f) => formats.includes(f);
  const rich = has('html');
  if (editor === 'rich_text') return rich;
  if (editor === 'voice') return has('voice');
  return has('voice') || (!rich && (has('text') || has('markdown')));
}

/** The template picker (manual: 选择模板): search by number and title, a preview of the
 * template under the pointer, checkboxes; done(picked templates, in the order chosen). */
function pickTemplates(current, done) {
  const picked = new Map(current.map((x) => [x.id, x]));
  const { el, form } = formDialog(t('tiered.pickerTitle'), html`<div class="searchbar">
      <input name="number" placeholder="${t('common.number')}" data-testid="tpl-picker-number">
      <input type="search" name="title" placeholder="${t('common.title')}" data-testid="tpl-picker-title">
      <button type="button" data-testid="tpl-picker-go">${t('common.search')}</button>
      <span class="muted" data-testid="tpl-picker-count"></span></div>
    <div class="tpl-picker"><div class="picker-list" data-testid="tpl-picker-list"></div>
      <div class="tpl-preview" data-testid="tpl-picker-preview"><p class="muted">${t('tiered.previewHint')}</p></div></div>`, async () => {
    done([...picked.values()]);
  }, 'tpl-picker');
  const list = $('[data-testid=tpl-picker-list]', el);
  const preview = $('[data-testid=tpl-picker-preview]', el);
  const count = () => { $('[data-testid=tpl-picker-count]', el).textContent = t('tiered.chosenCount', { n: picked.size }); };
  const show = (x) => {
    $$('label.pick', list).forEach((l) => l.classList.toggle('active', l.dataset.id === x.id));
    // Rich text is shown sanitized, the rest as plain text.
    const body = x.editor === 'rich_text' ? html`<div class="rich-view">${raw(cleanHtml(x.body || ''))}</div>` : html`<pre>${x.body || ''}</pre>`;
    setHtml(preview, html`<h3 data-testid="tpl-preview-title">${x.number} · ${x.title}</h3>
      <p class="muted">${t('tiered.editor')}: ${t('editor.' + x.editor, {}, x.editor)}${(x.variables || []).length ? html` · ${t('tiered.variables')}: ${x.variables.join(', ')}` : ''}</p>
      ${x.subject ? html`<p><b data-testid="tpl-preview-subject">${x.subject}</b></p>` : ''}<div data-testid="tpl-preview-body">${body}</div>`);
  };
  const load = async () => {
    try {
      const d = await api('GET', '/tiered/templates' + qs({ number: form.elements.number.value.trim(), title: form.elements.title.value.trim(), limit: 200 }));
      const ts = items(d);
      setHtml(list, ts.length ? html`${ts.map((x) => html`<label class="pick" data-id="${x.id}"><input type="checkbox" value="${x.id}" data-number="${x.number}" data-title="${x.title}" ${raw(picked.has(x.id) ? 'checked' : '')}>
        ${x.number} · ${x.title} <span class="muted">(${t('editor.' + x.editor, {}, x.editor)})</span></label>`)}` : html`<p class="muted">${t('common.empty')}</p>`);
      on(list, 'label.pick', 'mouseenter', (e) => show(ts.find((x) => x.id === e.currentTarget.dataset.id)));
      on(list, 'label.pick', 'focusin', (e) => show(ts.find((x) => x.id === e.currentTarget.dataset.id)));
      on(list, 'input[type=checkbox]', 'change', (e) => {
        const x = ts.find((y) => y.id === e.target.value);
        if (e.target.checked) picked.set(x.id, x); else picked.delete(x.id);
        show(x);
        count();
      });
    } catch (err) { showError(form, err); }
  };
  $('[data-testid=tpl-picker-go]', el).onclick = load;
  $$('input[name=number],input[name=title]', form).forEach((i) => i.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); load(); } }));
  count();
  load();
}

const LEVELS = ['urgent', 'normal', 'info'];
const CONDITIONS = ['not_acknowledged', 'not_delivered'];

async function pageActionEdit(root, id) {
  const isNew = id === 'new';
  const a = isNew ? { title: '', templates: [], rules: [], enabled: true } : await api('GET', `/tiered/actions/${encodeURIComponent(id)}`);
  const readonly = !can('tiered.edit');
  const [types, tpls, accounts, ctx] = await Promise.all([
    accountTypes().catch(() => []),
    api('GET', '/tiered/templates' + qs({ limit: 200 })).then(items),
    loadAccounts().catch(() => []),
    treeCtx(readonly),
  ]);
  // The chosen templates, in order; picked in the template picker dialog.
  const known = new Map(tpls.map((x) => [x.id, x]));
  let chosen = (a.templates || []).map((tid) => known.get(tid) || { id: tid, number: tid, title: '' });
  setHtml(root, html`<section data-testid="page-action-edit"><h1>${isNew ? t('tiered.addAction') : html`${t('tiered.action')} <span class="muted" data-testid="action-number">${a.number}</span>`}</h1>
    <form class="panel" data-testid="action-form" novalidate>
      <label>${t('common.title')} *<input name="title" value="${a.title}" data-testid="action-title" required></label>
      <fieldset data-field="templates"><legend>${t('tiered.pickTemplates')}</legend><div class="chips" data-testid="action-templates"></div>
        ${readonly ? '' : html`<button type="button" data-testid="action-pick-templates">${t('tiered.choose')}</button>`}</fieldset>
      <label>${t('tiered.ackScope')}<select name="ack_scope" data-testid="action-ack-scope">${['incident', 'recipient'].map((s) => html`<option value="${s}" ${raw(s === (a.ack_scope || 'incident') ? 'selected' : '')}>${t('ackScope.' + s)}</option>`)}</select></label>
      <fieldset data-field="rules"><legend>${t('tiered.rules')}</legend><div class="rule-cards" data-testid="rule-cards"></div>
        ${readonly ? '' : html`<button type="button" data-testid="rule-add">＋ ${t('tiered.addRule')}</button>`}</fieldset>
      ${errorBox()}
      <div class="actions">${readonly ? '' : html`<button type="submit" class="primary" data-testid="action-save">${t('common.save')}</button>`}
        <a class="button" href="#/tiered/actions" data-testid="action-back">${t('common.back')}</a></div>
    </form></section>`);
  const form = $('[data-testid=action-form]', root);
  const cardsEl = $('[data-testid=rule-cards]', root);
  const cards = []; // {el, value()}
  let seq = 0;
  const addCard = (rule) => {
    const r = rule || { level: 'normal', channels: [{ channel: '', account: '' }], recipients: { users: [], units: [], list: [] }, escalate: null, repeat: 0 };
    const n = seq++;
    const el = document.createElement('div');
    el.className = 'card rule-card';
    el.dataset.testid = 'rule-card';
    const esc0 = r.escalate;
    const minutes = esc0 && esc0.after_secs % 60 === 0 && esc0.after_secs >= 60;
    setHtml(el, html`<div class="panel-head"><h3>${t('tiered.rule')} <span data-testid="rule-index"></span></h3>
      ${readonly ? '' : html`<button type="button" class="danger" data-testid="rule-remove">${t('common.remove')}</button>`}</div>
      <label>${t('tiered.level')}<select name="level" data-testid="rule-level">${LEVELS.map((l) => html`<option value="${l}" ${raw(l === r.level ? 'selected' : '')}>${t('level.' + l)}</option>`)}</select></label>
      <div class="lbl">${t('tiered.channels')}</div><div class="rule-channels" data-testid="rule-channels"></div>
      ${readonly ? '' : html`<button type="button" data-testid="rule-channel-add">＋ ${t('tiered.addChannel')}</button>`}
      <div class="lbl">${t('tiered.recipients')}</div><div data-testid="rule-recipients"></div>
      <div class="escalate"><label class="inline"><input type="checkbox" name="esc" data-testid="rule-escalate" ${raw(esc0 ? 'checked' : '')}> ${t('tiered.escalate')}</label>
        <span class="esc-fields"><label class="inline">${t('tiered.after')} <input type="number" min="1" name="after" data-testid="rule-after" value="${esc0 ? (minutes ? esc0.after_secs / 60 : esc0.after_secs) : 5}" style="width:6em"></label>
        <select name="unit" data-testid="rule-after-unit"><option value="s" ${raw(!minutes ? 'selected' : '')}>${t('tiered.seconds')}</option><option value="m" ${raw(minutes ? 'selected' : '')}>${t('tiered.minutes')}</option></select>
        <select name="condition" data-testid="rule-condition">${CONDITIONS.map((c) => html`<option value="${c}" ${raw(esc0?.condition === c ? 'selected' : '')}>${t('cond.' + c)}</option>`)}</select></span></div>`);
    cardsEl.appendChild(el);
    const chBox = $('[data-testid=rule-channels]', el);
    const channelRow = (c) => {
      const row = document.createElement('div');
      row.className = 'channel-row';
      row.dataset.testid = 'rule-channel-row';
      const accOpts = (ch) => html`<option value="">${t('push.pickAccount')}</option>${accounts.filter((x) => x.channel === ch).map((x) => html`<option value="${x.name}" ${raw(x.name === c.account ? 'selected' : '')}>${x.name}</option>`)}`;
      setHtml(row, html`<select name="channel" data-testid="rule-channel"><option value="">${t('tiered.pickChannel')}</option>${types.map((tp) => html`<option value="${tp.channel}" ${raw(tp.channel === c.channel ? 'selected' : '')}>${channelName(types, tp.channel)}</option>`)}</select>
        <select name="account" data-testid="rule-account">${accOpts(c.channel)}</select>
        ${readonly ? '' : html`<button type="button" class="icon" data-testid="rule-channel-remove" aria-label="${t('common.remove')}">×</button>`}`);
      $('[name=channel]', row).addEventListener('change', (e) => { c.account = ''; setHtml($('[name=account]', row), accOpts(e.target.value)); const s = $('[name=account]', row); if (s.options.length === 2) s.selectedIndex = 1; });
      $('[data-testid=rule-channel-remove]', row)?.addEventListener('click', () => row.remove());
      chBox.appendChild(row);
      markChannels(row);
    };
    (r.channels?.length ? r.channels : [{ channel: '', account: '' }]).forEach((c) => channelRow({ ...c }));
    $('[data-testid=rule-channel-add]', el)?.addEventListener('click', () => channelRow({ channel: '', account: '' }));
    const recips = targetsEditor($('[data-testid=rule-recipients]', el), r.recipients, ctx, `rule${n}`);
    const syncEsc = () => { $('.esc-fields', el).hidden = !$('[name=esc]', el).checked; };
    $('[name=esc]', el).addEventListener('change', syncEsc);
    syncEsc();
    const card = {
      el,
      value: () => {
        const escOn = $('[name=esc]', el).checked;
        const after = Number($('[name=after]', el).value || 0) * ($('[name=unit]', el).value === 'm' ? 60 : 1);
        return {
          level: $('[name=level]', el).value,
          channels: $$('[data-testid=rule-channel-row]', el).map((row) => ({ channel: $('[name=channel]', row).value, account: $('[name=account]', row).value })).filter((c) => c.channel),
          recipients: recips.value(),
          escalate: escOn ? { after_secs: after, condition: $('[name=condition]', el).value } : null,
          repeat: r.repeat || 0,
        };
      },
    };
    $('[data-testid=rule-remove]', el)?.addEventListener('click', () => { el.remove(); cards.splice(cards.indexOf(card), 1); renumber(); });
    cards.push(card);
    renumber();
  };
  const renumber = () => cards.forEach((c, i) => { $('[data-testid=rule-index]', c.el).textContent = String(i + 1); });
  const chipsEl = $('[data-testid=action-templates]', root);
  const renderChosen = () => {
    setHtml(chipsEl, chosen.length ? html`${chosen.map((x) => html`<span class="chip" data-testid="action-template" data-id="${x.id}" data-number="${x.number}" data-title="${x.title}">${x.number}${x.title ? html` · ${x.title}` : ''}
      ${x.editor ? html`<span class="muted">(${t('editor.' + x.editor, {}, x.editor)})</span>` : ''}
      ${readonly ? '' : html`<button type="button" class="icon" data-remove="${x.id}" data-testid="action-template-remove" aria-label="${t('common.remove')}">×</button>`}</span>`)}`
      : html`<span class="muted" data-testid="action-templates-none">${tpls.length ? t('tiered.noneChosen') : t('tiered.noTemplates')}</span>`);
    on(chipsEl, '[data-remove]', 'click', (e) => { chosen = chosen.filter((x) => x.id !== e.currentTarget.dataset.remove); renderChosen(); });
    markChannels(cardsEl);
  };
  $('[data-testid=action-pick-templates]', root)?.addEventListener('click', () => pickTemplates(chosen, (picked) => { chosen = picked; renderChosen(); }));
  // Channels that none of the picked templates fits are greyed out (the server has the same rule).
  const markChannels = (scope) => {
    const editors = chosen.map((x) => x.editor).filter(Boolean);
    $$('select[name=channel] option[value]:not([value=""])', scope).forEach((o) => {
      const formats = types.find((x) => x.channel === o.value)?.formats || [];
      const ok = !editors.length || editors.some((ed) => editorFits(ed, formats));
      o.disabled = !ok && !o.selected;
      o.classList.toggle('unfit', !ok);
    });
  };
  (a.rules?.length ? a.rules : [null]).forEach(addCard);
  renderChosen();
  $('[data-testid=rule-add]', root)?.addEventListener('click', () => addCard(null));
  if (readonly) $$('input,select,textarea', form).forEach((i) => { i.disabled = true; });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError(form);
    const body = { title: form.elements.title.value.trim(), templates: chosen.map((x) => x.id), rules: cards.map((c) => c.value()), ack_scope: form.elements.ack_scope.value };
    try {
      const saved = isNew ? await api('POST', '/tiered/actions', body) : await api('PUT', `/tiered/actions/${encodeURIComponent(a.id)}`, body);
      toast(t('tiered.savedAction', { number: saved?.number || a.number || '' }));
      go('#/tiered/actions');
    } catch (err) { showError(form, err); }
  });
}

// --------------------------------------------------------------------- accounts

const TLS_MODES = [['none', 'none'], ['starttls', 'starttls'], ['implicit', 'tls']];

function getPath(obj, path) { return path.split('.').reduce((o, k) => (o && typeof o === 'object' ? o[k] : undefined), obj); }
function setPath(obj, path, v) {
  const ks = path.split('.');
  let o = obj;
  ks.slice(0, -1).forEach((k) => { if (typeof o[k] !== 'object' || o[k] === null) o[k] = {}; o = o[k]; });
  o[ks[ks.length - 1]] = v;
}
/** Was the secret at `path` stored? Accepts "<field>_set" next to it or at the top with the dotted name. */
function secretSet(config, path) {
  if (!config) return false;
  if (config[`${path}_set`]) return true;
  const ks = path.split('.');
  const parent = ks.length > 1 ? getPath(config, ks.slice(0, -1).join('.')) : config;
  return !!(parent && parent[`${ks[ks.length - 1]}_set`]);
}

/** A schema node's label and help in the console's language: `x-herald-zh` for Chinese
 * (sdk/README.md, "Account schema"), else the English title/description, else the raw key. */
function schemaText(p, key) {
  const zh = getLang() === 'zh' ? p['x-herald-zh'] || {} : {};
  return { title: zh.title || p.title || '', help: zh.description || p.description || '', key };
}
/** Render fields for a JSON Schema object (string/integer/number/boolean/enum, nested objects).
 * Properties marked `x-herald-advanced` go into a collapsed "Advanced settings" section. */
function schemaFields(schema, config, secrets, prefix = '') {
  const props = schema?.properties || {};
  const req = new Set(schema?.required || []);
  const field = ([key, p]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    const txt = schemaText(p, key);
    // The label: the localized title with the key small beside it; the bare key when there is no title.
    const name = txt.title ? html`${txt.title} <code class="fkey">${key}</code>` : html`<code>${key}</code>`;
    const label = html`<span class="flabel" data-testid="acc-label-${path}">${name}${req.has(key) ? ' *' : ''}</span>`;
    const hint = txt.help ? html`<small class="muted" data-testid="acc-help-${path}">${txt.help}</small>` : '';
    const val = getPath(config || {}, path);
    if (p.type === 'object' && p.properties) {
      return html`<fieldset class="nested"><legend>${txt.title || key}</legend>${hint}${schemaFields(p, config, secrets, path)}</fieldset>`;
    }
    const isSecret = secrets.has(path) || secrets.has(key) || p.writeOnly;
    if (p.type === 'object' || p.type === 'array') {
      // Free-form maps and lists: edited as JSON.
      return html`<label>${label}<textarea name="${path}" rows="3" data-kind="json" data-testid="acc-field-${path}" placeholder="${p.type === 'array' ? '[]' : '{}'}">${val !== undefined ? JSON.stringify(val, null, 1) : ''}</textarea>${hint}</label>`;
    }
    if (Array.isArray(p.enum)) {
      return html`<label>${label}<select name="${path}" data-testid="acc-field-${path}" data-kind="enum" data-required="${req.has(key) ? '1' : ''}">
        ${req.has(key) ? '' : html`<option value=""></option>`}${p.enum.map((o) => html`<option value="${o}" ${raw(String(o) === String(val ?? p.default ?? '') ? 'selected' : '')}>${o}</option>`)}</select>${hint}</label>`;
    }
    if (p.type === 'boolean') {
      return html`<label class="inline"><input type="checkbox" name="${path}" data-kind="boolean" data-testid="acc-field-${path}" ${raw((val ?? p.default) ? 'checked' : '')}> ${label}</label>${hint}`;
    }
    if (p.type === 'integer' || p.type === 'number') {
      return html`<label>${label}<input type="number" name="${path}" data-kind="${p.type}" data-required="${req.has(key) ? '1' : ''}" data-testid="acc-field-${path}" value="${val ?? ''}" placeholder="${p.default ?? ''}" ${raw(p.minimum !== undefined ? `min="${Number(p.minimum)}"` : '')} ${raw(p.maximum !== undefined ? `max="${Number(p.maximum)}"` : '')}>${hint}</label>`;
    }
    if (isSecret) {
      return html`<label>${label}<input type="password" name="${path}" data-kind="secret" data-required="${req.has(key) ? '1' : ''}" data-testid="acc-field-${path}" autocomplete="new-password" placeholder="${secretSet(config, path) ? t('acc.secretKeep') : ''}">${hint}</label>`;
    }
    return html`<label>${label}<input name="${path}" data-kind="string" data-required="${req.has(key) ? '1' : ''}" data-testid="acc-field-${path}" value="${typeof val === 'object' && val !== null ? JSON.stringify(val) : (val ?? '')}" placeholder="${p.default ?? ''}">${hint}</label>`;
  };
  // In the plugin's order: the API passes its schema through as written.
  const entries = Object.entries(props);
  const basic = entries.filter(([, p]) => !p['x-herald-advanced']);
  const advanced = entries.filter(([, p]) => p['x-herald-advanced']);
  // An advanced field that already has a value opens the section.
  const filled = advanced.some(([key]) => getPath(config || {}, prefix ? `${prefix}.${key}` : key) !== undefined);
  return html`${basic.map(field)}${advanced.length ? html`<details class="advanced" data-testid="acc-advanced${prefix ? `-${prefix}` : ''}" ${raw(filled ? 'open' : '')}>
    <summary data-testid="acc-advanced-toggle${prefix ? `-${prefix}` : ''}">${t('acc.advanced')}</summary>${advanced.map(field)}</details>` : ''}`;
}
function readSchemaFields(box) {
  const cfg = {};
  $$('[data-kind]', box).forEach((el) => {
    const k = el.dataset.kind;
    if (k === 'boolean') { setPath(cfg, el.name, el.checked); return; }
    const v = el.value;
    if (v === '') return; // omitted: optional, or a secret kept on edit
    if (k === 'json') {
      try { setPath(cfg, el.name, JSON.parse(v)); } catch { throw new ApiError(0, 'client', `${el.name}: ${t('acc.badJson')}`, el.name); }
    } else if (k === 'integer') setPath(cfg, el.name, parseInt(v, 10));
    else if (k === 'number') setPath(cfg, el.name, Number(v));
    else setPath(cfg, el.name, v);
  });
  return cfg;
}

async function pageAccounts(root) {
  const editp = can('accounts.edit');
  setHtml(root, html`<section data-testid="page-accounts"><h1>${t('menu.accounts')}</h1>
    <div class="panel"><div class="panel-head"><h2>${t('acc.list')}</h2>
      ${editp ? html`<button type="button" class="primary" data-testid="account-add">${t('acc.add')}</button>` : ''}</div>
    <form class="searchbar" data-testid="account-filter"><input type="search" name="q" placeholder="${t('acc.searchPh')}" data-testid="account-search">
      <button type="submit" data-testid="account-search-go">${t('common.search')}</button></form>
    <div data-testid="accounts-wrap"></div></div></section>`);
  const types = await accountTypes();
  const form = $('[data-testid=account-filter]', root);
  const wrap = $('[data-testid=accounts-wrap]', root);
  const sender = (a) => a.config?.from || a.config?.sender || a.config?.address || a.config?.sign_name || '';
  const list = pagedList('accounts-table');
  const load = async () => {
    try {
      const d = await api('GET', '/accounts' + qs({ q: form.elements.q.value.trim(), ...list.params() }));
      const as = items(d);
      setHtml(wrap, html`<table data-testid="accounts-table"><thead><tr><th data-sort="name">${t('common.name')}</th><th data-sort="channel">${t('acc.type')}</th><th>${t('acc.sender')}</th><th>${t('common.createdAt')}</th><th></th></tr></thead>
        <tbody>${as.length ? as.map((a) => html`<tr data-testid="account-row" data-name="${a.name}"><td>${a.name}</td><td>${channelName(types, a.channel)}</td><td>${sender(a)}</td><td>${fmtTime(a.created_at)}</td>
        <td class="rowbtns">${editp ? html`<button type="button" data-edit="${a.name}" data-testid="account-edit">${t('common.edit')}</button>
          <button type="button" class="danger" data-del="${a.name}" data-testid="account-delete">${t('common.delete')}</button>` : ''}</td></tr>`) : html`<tr><td colspan="5" class="muted" data-testid="accounts-empty">${t('common.empty')}</td></tr>`}</tbody></table>`);
      list.attach(wrap, d.total ?? as.length, load);
      on(wrap, '[data-edit]', 'click', (e) => accountDialog(as.find((a) => a.name === e.currentTarget.dataset.edit)));
      on(wrap, '[data-del]', 'click', async (e) => {
        const name = e.currentTarget.dataset.del;
        if (!(await confirmDialog(t('acc.confirmDelete', { name })))) return;
        try { await api('DELETE', `/accounts/${encodeURIComponent(name)}`); toast(t('common.deleted')); load(); } catch (err) { toast(err.message, 'error'); }
      });
    } catch (err) { setHtml(wrap, html`<p class="error">${err.message}</p>`); }
  };
  const accountDialog = (acc) => {
    const isNew = !acc;
    const a = acc || { name: '', channel: types.find((x) => x.channel === 'email') ? 'email' : types[0]?.channel, config: {} };
    const { el, form: f } = formDialog(isNew ? t('acc.add') : t('acc.edit'), html`<div class="grid2">
      <label>${t('common.name')} *<input name="name" value="${a.name}" data-testid="acc-name" ${raw(isNew ? '' : 'readonly')} required></label>
      <label>${t('acc.type')} *<select name="channel" data-testid="acc-type" ${raw(isNew ? '' : 'disabled')}>${types.map((tp) => html`<option value="${tp.channel}" ${raw(tp.channel === a.channel ? 'selected' : '')}>${channelName(types, tp.channel)}</option>`)}</select></label></div>
      <div data-testid="acc-config"></div>`, async (form) => {
      const channel = form.elements.channel.value;
      const config = readConfig();
      const body = { name: form.elements.name.value.trim(), channel, config };
      if (isNew) await api('POST', '/accounts', body);
      else await api('PUT', `/accounts/${encodeURIComponent(a.name)}`, body);
      toast(t('acc.saved'));
      load();
    }, 'account-dialog');
    let readConfig = () => ({});
    const renderConfig = () => {
      const ch = f.elements.channel.value;
      const box = $('[data-testid=acc-config]', el);
      const cfg = ch === a.channel ? a.config || {} : {};
      if (ch === 'email') {
        const smtp = cfg.smtp || {};
        // The advanced fields come from the plugin's schema (labels and help included).
        const sch = schemaOf(types, 'email');
        const pick = (obj, keys) => ({ properties: Object.fromEntries(keys.filter((k) => obj?.properties?.[k]).map((k) => [k, { ...obj.properties[k], 'x-herald-advanced': false }])) });
        setHtml(box, html`<div class="grid2">
          <label>${t('acc.address')} *<input name="from" type="email" data-testid="acc-from" value="${cfg.from || ''}"></label>
          <label>${t('acc.fromName')}<input name="from_name" data-testid="acc-from-name" value="${cfg.from_name || ''}"></label>
          <label>${t('acc.username')}<input name="smtp.username" data-testid="acc-username" value="${smtp.username || ''}" placeholder="${t('acc.usernamePh')}"></label>
          <label>${t('acc.password')}<input name="smtp.password" type="password" data-testid="acc-password" autocomplete="new-password" placeholder="${secretSet(cfg, 'smtp.password') ? t('acc.secretKeep') : ''}"></label>
          <label>${t('acc.host')} *<input name="smtp.host" data-testid="acc-host" value="${smtp.host || ''}"></label>
          <label>${t('acc.port')} *<input name="smtp.port" type="number" min="1" max="65535" data-testid="acc-port" value="${smtp.port ?? 465}"></label>
          <label>${t('acc.tls')} *<select name="smtp.tls" data-testid="acc-tls">${TLS_MODES.map(([v, l]) => html`<option value="${v}" ${raw(v === (smtp.tls || 'implicit') ? 'selected' : '')}>${t('tls.' + l)}</option>`)}</select></label>
          <label class="inline" data-testid="acc-plain-wrap"><input type="checkbox" name="smtp.allow_plaintext_auth" data-testid="acc-plaintext" ${raw(smtp.allow_plaintext_auth ? 'checked' : '')}> ${t('acc.allowPlain')}</label>
          </div>
          <details class="advanced" data-testid="acc-advanced" ${raw(cfg.reply_to || smtp.max_recipients_per_message || smtp.max_connections ? 'open' : '')}><summary data-testid="acc-advanced-toggle">${t('acc.advanced')}</summary>
            <div data-testid="acc-email-advanced">${schemaFields(pick(sch, ['reply_to']), cfg, new Set())}${schemaFields(pick(sch.properties?.smtp, ['max_recipients_per_message', 'max_connections']), cfg, new Set(), 'smtp')}</div></details>`);
        const syncTls = () => { $('[data-testid=acc-plain-wrap]', box).hidden = f.elements['smtp.tls'].value !== 'none'; };
        f.elements['smtp.tls'].addEventListener('change', syncTls);
        syncTls();
        readConfig = () => {
          const e = f.elements;
          const from = e.from.value.trim();
          const password = e['smtp.password'].value;
          const username = e['smtp.username'].value.trim() || (password || secretSet(cfg, 'smtp.password') ? from : '');
          const smtp2 = { host: e['smtp.host'].value.trim(), port: parseInt(e['smtp.port'].value, 10) || 0, tls: e['smtp.tls'].value };
          if (username) smtp2.username = username;
          if (password) smtp2.password = password;
          if (smtp2.tls === 'none' && e['smtp.allow_plaintext_auth'].checked) smtp2.allow_plaintext_auth = true;
          const adv = readSchemaFields($('[data-testid=acc-email-advanced]', box));
          const c = { from, smtp: { ...smtp2, ...(adv.smtp || {}) } };
          if (e.from_name.value.trim()) c.from_name = e.from_name.value.trim();
          if (adv.reply_to) c.reply_to = adv.reply_to;
          return c;
        };
      } else {
        const tp = types.find((x) => x.channel === ch);
        const schema = schemaOf(types, ch);
        const secrets = new Set(tp?.secret_fields || []);
        setHtml(box, html`${schemaFields(schema, cfg, secrets)}`);
        readConfig = () => readSchemaFields(box);
      }
    };
    f.elements.channel.addEventListener('change', renderConfig);
    renderConfig();
  };
  if (editp) $('[data-testid=account-add]', root).onclick = () => accountDialog(null);
  form.addEventListener('submit', (e) => { e.preventDefault(); list.offset = 0; load(); });
  await load();
}

// ------------------------------------------------------------------------- cost

const COL_ORDER = ['period', 'month', 'day', 'at', 'created_at', 'kind', 'channel', 'account', 'recipient', 'delivery_id', 'message_id', 'note',
  'debit_count', 'count', 'debit_units', 'units', 'unit_minor', 'debit_minor', 'credit_minor', 'top_up_minor', 'amount_minor', 'signed_minor', 'net_minor', 'balance_minor'];
/** A table for rows of unknown shape: columns from the keys, money and times formatted. */
function genericTable(rows, testid, rowTestid) {
  if (!rows.length) return html`<table data-testid="${testid}"><tbody><tr><td class="muted">${t('common.empty')}</td></tr></tbody></table>`;
  const cols = [];
  rows.forEach((r) => Object.keys(r).forEach((k) => { if (!cols.includes(k) && !['currency', 'id'].includes(k) && typeof r[k] !== 'object') cols.push(k); }));
  const rank = (k) => { const i = COL_ORDER.indexOf(k); return i < 0 ? COL_ORDER.length : i; };
  cols.sort((a, b) => rank(a) - rank(b));
  const cell = (r, k) => {
    const v = r[k];
    if (k.endsWith('_minor')) return fmtMoney(v, r.currency);
    if (k.endsWith('_at') || k === 'at' || k === 'time') return fmtTime(v);
    if (typeof v === 'boolean') return v ? '✓' : '';
    if (v === null || v === undefined || v === '') return '';
    if (k === 'kind' || k === 'channel') return t(`${k === 'kind' ? 'kind' : 'channel'}.${v}`, {}, v);
    return v ?? '';
  };
  return html`<table data-testid="${testid}"><thead><tr>${cols.map((k) => html`<th>${t('col.' + k, {}, k)}</th>`)}</tr></thead>
    <tbody>${rows.map((r) => html`<tr data-testid="${rowTestid}" data-channel="${r.channel ?? ''}" data-kind="${r.kind ?? ''}">${cols.map((k) => html`<td>${cell(r, k)}</td>`)}</tr>`)}</tbody></table>`;
}
const ym = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
/** Today in China Standard Time (the server's bill and report days), YYYY-MM-DD. */
const cstDay = (ms = Date.now()) => new Date(ms + 8 * 3600e3).toISOString().slice(0, 10);
const chn = (c) => (c ? t('channel.' + c, {}, c) : '—');

/** Debits, refunds and top-ups: time, kind, product, push or action, recipient (a top-up: its note), units, amount, [balance]. */
function ledgerTable(rows, testid, rowTestid, currency, withBalance) {
  const source = (r) => {
    if (r.source) {
      const href = r.source.kind === 'push' ? `#/pushes/${encodeURIComponent(r.source.id)}` : `#/tiered/actions/${encodeURIComponent(r.source.id)}`;
      return html`<a href="${href}" data-testid="ledger-source">${r.source.number}</a> ${r.source.title}`;
    }
    return r.kind === 'top_up' ? '' : html`<span class="muted">${t('cost.viaApi')}</span>`;
  };
  const who = (r) => (r.kind === 'top_up' ? r.account : r.recipient || '');
  const cols = withBalance ? 8 : 7;
  return html`<table data-testid="${testid}"><thead><tr><th data-sort="at">${t('col.at')}</th><th>${t('col.kind')}</th><th data-sort="channel">${t('cost.product')}</th><th>${t('cost.source')}</th>
    <th>${t('cost.recipientOrNote')}</th><th class="num" data-sort="units">${t('col.units')}</th><th class="num" data-sort="amount_minor">${t('col.amount_minor')}</th>${withBalance ? html`<th class="num">${t('col.balance_minor')}</th>` : ''}</tr></thead>
    <tbody>${rows.length ? rows.map((r) => html`<tr data-testid="${rowTestid}" data-channel="${r.channel ?? ''}" data-kind="${r.kind ?? ''}" data-number="${r.source?.number ?? ''}" data-recipient="${r.recipient ?? ''}">
      <td>${fmtTime(r.at)}</td><td>${t('kind.' + r.kind, {}, r.kind)}</td><td>${r.kind === 'top_up' ? '' : chn(r.channel)}</td><td>${source(r)}</td><td data-col="recipient">${who(r)}</td>
      <td class="num">${r.kind === 'debit' ? r.units : ''}</td><td class="num" data-col="amount">${fmtMoney(r.signed_minor, r.currency || currency)}</td>
      ${withBalance ? html`<td class="num" data-col="balance">${fmtMoney(r.balance_minor, r.currency || currency)}</td>` : ''}</tr>`) : html`<tr><td colspan="${cols}" class="muted">${t('common.empty')}</td></tr>`}</tbody></table>`;
}

/** A from–to filter of days (default: this month so far) with search and Excel export. */
function periodForm(prefix) {
  const today = cstDay();
  return html`<form class="searchbar" data-testid="${prefix}-filter"><label class="inline">${t('cost.from')} <input type="date" name="from" value="${today.slice(0, 8)}01" data-testid="${prefix}-from"></label>
    <label class="inline">${t('cost.to')} <input type="date" name="to" value="${today}" data-testid="${prefix}-to"></label><button type="submit">${t('common.search')}</button>
    <button type="button" data-testid="${prefix}-export">${t('common.exportExcel')}</button></form>`;
}

async function pageCost(root) {
  const manage = can('cost.manage');
  const now = new Date();
  const from = ym(new Date(now.getFullYear(), now.getMonth() - 5, 1));
  setHtml(root, html`<section data-testid="page-cost"><h1>${t('menu.cost')}</h1>
    <div class="cards">
      <article class="card"><h3>${t('cost.balance')}</h3><p class="big" data-testid="cost-balance"></p><p class="muted" data-testid="cost-alert-info"></p></article>
      <article class="card"><h3>${t('cost.alert')}</h3><form data-testid="cost-alert-form" novalidate>
        <label>${t('cost.lowBalance')}<input type="number" step="0.01" min="0" name="low_balance_minor" data-testid="cost-low"></label>
        <label>${t('cost.policy')}<select name="policy" data-testid="cost-policy"><option value="refuse">${t('policy.refuse')}</option><option value="fallback_free">${t('policy.fallback_free')}</option></select></label>
        <label class="inline"><input type="checkbox" name="prepaid" data-testid="cost-prepaid"> ${t('cost.prepaid')}</label>
        <p class="muted small">${t('cost.prepaidHint')}</p>
        ${errorBox()}${manage ? html`<button type="submit" class="primary" data-testid="cost-alert-save">${t('common.save')}</button>` : ''}</form></article>
    </div>
    <article class="card wide" data-testid="cost-sends"><h3>${t('cost.sendsOverTime')}</h3>${chartBox('chart-cost-sends')}</article>
    <nav class="tabs" data-testid="cost-tabs">
      <a href="#" data-tab="bills" class="active" data-testid="cost-tab-bills">${t('cost.bills')}</a>
      <a href="#" data-tab="details" data-testid="cost-tab-details">${t('cost.details')}</a>
      <a href="#" data-tab="transactions" data-testid="cost-tab-transactions">${t('cost.transactions')}</a>
      <a href="#" data-tab="recharge" data-testid="cost-tab-recharge">${t('recharge.title')}</a></nav>
    <div class="panel" data-testid="cost-tab-body"></div></section>`);
  const alertForm = $('[data-testid=cost-alert-form]', root);
  let currency = '';
  const loadBalance = async () => {
    const b = await api('GET', '/cost/balance');
    currency = b.currency;
    $('[data-testid=cost-balance]', root).textContent = fmtMoney(b.balance_minor, b.currency);
    $('[data-testid=cost-alert-info]', root).textContent = t('cost.alertInfo', { low: fmtMoney(b.low_balance_minor, b.currency), policy: t('policy.' + b.policy, {}, b.policy || '') })
      + ' · ' + (b.prepaid ? t('cost.prepaidOn') : t('cost.prepaidOff'));
    alertForm.elements.low_balance_minor.value = b.low_balance_minor != null ? (b.low_balance_minor / 100).toFixed(2) : '';
    if (b.policy) alertForm.elements.policy.value = b.policy;
    alertForm.elements.prepaid.checked = !!b.prepaid;
    if (!manage) $$('input,select', alertForm).forEach((i) => { i.disabled = true; });
  };
  // Overview: sends per channel per day, last 30 days (needs reports.view; hidden without it).
  const sendsCard = $('[data-testid=cost-sends]', root);
  if (can('reports.view')) {
    api('GET', '/reports/summary' + qs({ days: 30 }))
      .then((d) => drawChart(root, 'chart-cost-sends', { kind: 'line', ...daySeries(d?.by_day || [], lastDays(30), 'sent'), xName: t('reports.day'), yName: t('reports.sent') }))
      .catch(() => { sendsCard.hidden = true; });
  } else {
    sendsCard.hidden = true;
  }
  alertForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError(alertForm);
    try {
      const el = alertForm.elements;
      await api('PUT', '/cost/alert', { low_balance_minor: Math.round(Number(el.low_balance_minor.value || 0) * 100), policy: el.policy.value, prepaid: el.prepaid.checked });
      toast(t('common.saved'));
      loadBalance();
    } catch (err) { showError(alertForm, err); }
  });
  const body = $('[data-testid=cost-tab-body]', root);
  /** A ledger tab: the period form, its table (paged and sorted by the server, with the total) and its export. */
  const ledgerTab = async (prefix, path, withBalance, file) => {
    setHtml(body, html`${periodForm(prefix)}<div data-testid="${prefix}-wrap"></div>`);
    const f = $('form', body);
    const period = () => ({ from: f.elements.from.value, to: f.elements.to.value });
    const list = pagedList(`${prefix}-table`);
    const load = async () => {
      const d = await api('GET', path + qs({ ...period(), ...list.params() }));
      const wrap = $(`[data-testid=${prefix}-wrap]`, body);
      setHtml(wrap, ledgerTable(items(d), `${prefix}-table`, `${prefix === 'details' ? 'detail' : 'transaction'}-row`, currency, withBalance));
      list.attach(wrap, d?.total ?? 0, () => load().catch((err) => toast(err.message, 'error')));
    };
    f.addEventListener('submit', (e) => { e.preventDefault(); list.offset = 0; load().catch((err) => toast(err.message, 'error')); });
    $(`[data-testid=${prefix}-export]`, body).onclick = () => {
      const { sort, order } = list.params();
      download(`${path}/export` + qs({ ...period(), sort, order }), file).catch((err) => toast(err.message, 'error'));
    };
    await load();
  };
  const tabs = {
    bills: async () => {
      setHtml(body, html`<form class="searchbar" data-testid="bills-filter"><label class="inline">${t('cost.from')} <input type="month" name="from" value="${from}" data-testid="bills-from"></label>
        <label class="inline">${t('cost.to')} <input type="month" name="to" value="${ym(now)}" data-testid="bills-to"></label><button type="submit">${t('common.search')}</button>
        <button type="button" data-testid="bills-export">${t('common.exportExcel')}</button></form><div data-testid="bills-wrap"></div>`);
      const f = $('form', body);
      const period = () => ({ from: f.elements.from.value, to: f.elements.to.value });
      const load = async () => {
        const rows = items(await api('GET', '/cost/bills' + qs(period())));
        // Spend = debits − refunds; top-up lines carry neither.
        const spend = (r) => (r.debit_minor || 0) - (r.credit_minor || 0);
        const months = [...new Set(rows.map((r) => r.period))].sort();
        const chans = [...new Set(rows.filter((r) => r.channel).map((r) => r.channel))].sort();
        const products = chans.map((c) => {
          const of = rows.filter((r) => r.channel === c);
          const sum = (k) => of.reduce((n, r) => n + (r[k] || 0), 0);
          return { channel: c, debit_count: sum('debit_count'), debit_units: sum('debit_units'), debit_minor: sum('debit_minor'), credit_minor: sum('credit_minor') };
        });
        const current = rows.filter((r) => r.period === ym(now)).reduce((n, r) => n + spend(r), 0);
        setHtml($('[data-testid=bills-wrap]', body), html`<p>${t('cost.currentPeriod')}: <b data-testid="bills-current">${fmtMoney(current, currency)}</b></p>
          <div class="cards"><article class="card wide"><h3>${t('cost.trend')}</h3>${chartBox('chart-bills-trend')}</article>
          <article class="card wide"><h3>${t('cost.spendByChannel')}</h3>${chartBox('chart-bills-channel')}</article></div>
          <h3>${t('cost.perProduct', { from: f.elements.from.value, to: f.elements.to.value })}</h3>
          <table data-testid="bills-product-table"><thead><tr><th>${t('cost.product')}</th><th class="num">${t('col.debit_count')}</th><th class="num">${t('col.debit_units')}</th>
            <th class="num">${t('col.debit_minor')}</th><th class="num">${t('col.credit_minor')}</th><th class="num">${t('cost.spend')}</th></tr></thead>
          <tbody>${products.length ? products.map((p) => html`<tr data-testid="bills-product-row" data-channel="${p.channel}"><td>${chn(p.channel)}</td><td class="num">${p.debit_count}</td><td class="num">${p.debit_units}</td>
            <td class="num">${fmtMoney(p.debit_minor, currency)}</td><td class="num">${fmtMoney(p.credit_minor, currency)}</td><td class="num" data-col="spend">${fmtMoney(p.debit_minor - p.credit_minor, currency)}</td></tr>`)
            : html`<tr><td colspan="6" class="muted">${t('common.empty')}</td></tr>`}</tbody></table>
          ${genericTable(rows.map((r) => ({ currency, ...r })), 'bills-table', 'bill-row')}`);
        const wrap = $('[data-testid=bills-wrap]', body);
        drawChart(wrap, 'chart-bills-trend', { kind: 'bar', stack: true, categories: months, money: currency, xName: t('col.period'), yName: t('cost.spend'),
          series: chans.map((c) => ({ name: chn(c), data: months.map((m) => rows.filter((r) => r.period === m && r.channel === c).reduce((n, r) => n + spend(r), 0)) })) });
        drawChart(wrap, 'chart-bills-channel', { kind: 'bar', categories: products.map((p) => chn(p.channel)), money: currency, xName: t('cost.product'), yName: t('cost.spend'),
          series: [{ name: t('cost.spend'), data: products.map((p) => p.debit_minor - p.credit_minor) }] });
      };
      f.addEventListener('submit', (e) => { e.preventDefault(); load().catch((err) => toast(err.message, 'error')); });
      $('[data-testid=bills-export]', body).onclick = () => download('/cost/bills/export' + qs(period()), 'bills.xlsx').catch((err) => toast(err.message, 'error'));
      await load();
    },
    details: () => ledgerTab('details', '/cost/details', false, 'cost-details.xlsx'),
    transactions: () => ledgerTab('transactions', '/cost/transactions', true, 'transactions.xlsx'),
    recharge: async () => {
      setHtml(body, html`${manage ? html`<form class="searchbar" data-testid="recharge-form" novalidate>
        <label class="inline">${t('recharge.amount')} <input type="number" name="amount_minor" min="0.01" step="0.01" data-testid="recharge-amount"></label>
        <label class="inline">${t('recharge.note')} <input name="note" maxlength="500" size="40" placeholder="${t('recharge.notePh')}" data-testid="recharge-note"></label>
        <button type="submit" class="primary" data-testid="recharge-submit">${t('recharge.submit')}</button>${errorBox()}</form>` : ''}
        <p class="muted small">${t('recharge.hint')}</p><div data-testid="recharge-wrap"></div>`);
      const load = async () => {
        const rows = items(await api('GET', '/cost/recharge-requests'));
        setHtml($('[data-testid=recharge-wrap]', body), html`<table data-testid="recharge-table"><thead><tr><th>${t('common.number')}</th><th class="num">${t('recharge.amount')}</th><th>${t('recharge.note')}</th>
          <th>${t('common.status')}</th><th>${t('recharge.by')}</th><th>${t('recharge.at')}</th><th>${t('recharge.decidedAt')}</th><th>${t('recharge.reason')}</th></tr></thead>
          <tbody>${rows.length ? rows.map((r) => html`<tr data-testid="recharge-row" data-id="${r.id}" data-number="${r.number}" data-status="${r.status}"><td>${r.number}</td>
            <td class="num">${fmtMoney(r.amount_minor, r.currency)}</td><td>${r.note}</td><td><span class="badge r-${r.status}" data-testid="recharge-status">${t('rstatus.' + r.status, {}, r.status)}</span></td>
            <td>${r.requested_by_name}</td><td>${fmtTime(r.requested_at)}</td><td>${fmtTime(r.decided_at)}</td><td>${r.reason || ''}</td></tr>`)
            : html`<tr><td colspan="8" class="muted">${t('common.empty')}</td></tr>`}</tbody></table>`);
      };
      const form = $('[data-testid=recharge-form]', body);
      form?.addEventListener('submit', async (e) => {
        e.preventDefault();
        clearError(form);
        const btn = $('[data-testid=recharge-submit]', form);
        btn.disabled = true;
        try {
          const amount = Math.round(Number(form.elements.amount_minor.value || 0) * 100);
          const r = await api('POST', '/cost/recharge-requests', { amount_minor: amount, note: form.elements.note.value });
          toast(t('recharge.filed', { number: r.number }));
          form.reset();
          await load();
        } catch (err) { showError(form, err); } finally { btn.disabled = false; }
      });
      await load();
    },
  };
  const show = async (name) => {
    $$('[data-tab]', root).forEach((a) => a.classList.toggle('active', a.dataset.tab === name));
    try { await tabs[name](); } catch (err) { setHtml(body, html`<p class="error">${err.message}</p>`); }
  };
  on(root, '[data-tab]', 'click', (e) => { e.preventDefault(); show(e.currentTarget.dataset.tab); });
  await loadBalance();
  await show('bills');
}

// ------------------------------------------------------------ platform operator

/**
 * The platform operator's page (#/operator): every tenant's recharge requests,
 * approved or rejected with the operator token (`operator_token` of the admin),
 * not a tenant login. The token is kept for this browser tab only.
 */
async function pageOperator(root) {
  const KEY = 'herald.operator';
  const token = () => sessionStorage.getItem(KEY) || '';
  const call = (method, path, body) => api(method, path, body, { bearer: token(), no401: true });
  const enter = () => {
    setHtml(root, html`<section data-testid="page-operator"><h1>${t('op.title')}</h1>
      <form class="narrow" data-testid="op-login" novalidate>
        <label>${t('op.token')} <input type="password" name="token" autocomplete="off" required data-testid="op-token"></label>
        ${errorBox()}<div class="actions"><button type="submit" class="primary" data-testid="op-enter">${t('op.enter')}</button></div>
        <p class="muted small">${t('op.hint')}</p></form></section>`);
    const form = $('form', root);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearError(form);
      sessionStorage.setItem(KEY, form.elements.token.value.trim());
      try { await list(); } catch (err) { sessionStorage.removeItem(KEY); enter(); showError($('form', root), err); }
    });
  };
  const list = async (status = 'pending') => {
    const rows = items(await call('GET', '/operator/recharge-requests' + qs({ status })));
    setHtml(root, html`<section data-testid="page-operator"><h1>${t('op.title')}</h1>
      <div class="searchbar"><label class="inline">${t('common.status')} <select data-testid="op-status">
        ${['pending', 'approved', 'rejected', ''].map((s) => html`<option value="${s}" ${raw(s === status ? 'selected' : '')}>${s ? t('rstatus.' + s) : t('op.all')}</option>`)}</select></label>
        <button type="button" data-testid="op-leave">${t('op.leave')}</button></div>
      <table data-testid="op-table"><thead><tr><th>${t('common.number')}</th><th>${t('op.tenant')}</th><th class="num">${t('recharge.amount')}</th>
        <th>${t('recharge.note')}</th><th>${t('recharge.by')}</th><th>${t('recharge.at')}</th><th>${t('common.status')}</th><th>${t('recharge.reason')}</th><th></th></tr></thead>
      <tbody>${rows.length ? rows.map((r) => html`<tr data-testid="op-row" data-id="${r.id}" data-tenant="${r.tenant}" data-number="${r.number}" data-status="${r.status}">
        <td>${r.number}</td><td>${r.tenant}</td><td class="num">${fmtMoney(r.amount_minor, r.currency)}</td><td>${r.note}</td><td>${r.requested_by_name}</td>
        <td>${fmtTime(r.requested_at)}</td><td><span class="badge r-${r.status}">${t('rstatus.' + r.status, {}, r.status)}</span></td><td>${r.reason || ''}</td>
        <td class="actions">${r.status === 'pending' ? html`<button type="button" class="primary" data-act="approve" data-testid="op-approve">${t('op.approve')}</button>
          <button type="button" data-act="reject" data-testid="op-reject">${t('op.reject')}</button>` : ''}</td></tr>`)
        : html`<tr><td colspan="9" class="muted">${t('common.empty')}</td></tr>`}</tbody></table></section>`);
    $('[data-testid=op-status]', root).addEventListener('change', (e) => list(e.target.value).catch((err) => toast(err.message, 'error')));
    $('[data-testid=op-leave]', root).addEventListener('click', () => { sessionStorage.removeItem(KEY); enter(); });
    on(root, 'button[data-act]', 'click', async (e) => {
      const row = e.currentTarget.closest('tr');
      const { id, tenant, number } = row.dataset;
      const path = `/operator/tenants/${encodeURIComponent(tenant)}/recharge-requests/${encodeURIComponent(id)}/`;
      if (e.currentTarget.dataset.act === 'approve') {
        const amount = $('td.num', row).textContent;
        if (!(await confirmDialog(t('op.confirmApprove', { number, amount, tenant })))) return;
        try { await call('POST', path + 'approve'); toast(t('op.approved', { number })); } catch (err) { toast(err.message, 'error'); }
        await list(status);
      } else {
        formDialog(t('op.rejectTitle', { number }), html`<label>${t('recharge.reason')} <input name="reason" maxlength="500" data-testid="op-reason"></label>`, async (form) => {
          await call('POST', path + 'reject', { reason: form.elements.reason.value });
          toast(t('op.rejected', { number }));
          await list(status);
        }, 'op-reject-dialog');
      }
    });
  };
  if (!token()) { enter(); return; }
  try { await list(); } catch (err) { sessionStorage.removeItem(KEY); enter(); showError($('form', root), err); }
}

// ---------------------------------------------------------------------- charts

/** A chart's place; drawChart draws into it once it is in the page. */
function chartBox(testid) {
  return html`<div class="echart" data-testid="${testid}" role="img" aria-label="${testid}"></div>`;
}

/**
 * Draw a chart with Apache ECharts (vendored, /vendor/echarts.min.js) into the chartBox `testid` under `root`:
 * spec = { kind: 'bar' | 'line', categories: x labels, series: [{ name, data: numbers }], stack?, money?: currency (amounts in minor units), xName?, yName? }.
 * Both axes are named, the legend names the series; the box keeps what it shows in data-categories, data-series and data-points.
 */
function drawChart(root, testid, spec) {
  const el = $(`[data-testid=${testid}]`, root);
  if (!el) return null;
  const money = spec.money !== undefined;
  const names = spec.series.map((s) => s.name);
  el.dataset.categories = JSON.stringify(spec.categories);
  el.dataset.series = JSON.stringify(names);
  el.dataset.points = String(spec.series.reduce((n, s) => n + s.data.filter((v) => Number(v)).length, 0));
  el.setAttribute('aria-label', names.join(', ') || t('common.empty'));
  if (!window.echarts) { el.textContent = t('common.empty'); return null; }
  let chart = window.echarts.getInstanceByDom(el);
  if (!chart) {
    chart = window.echarts.init(el, null, { renderer: 'svg' });
    // Drawn while its page was still hidden, or the window changed: follow the box's size.
    new ResizeObserver(() => chart.resize()).observe(el);
  }
  const fmt = (v) => (money ? `${Number(v).toFixed(2)} ${spec.money || ''}`.trim() : String(v));
  chart.setOption({
    animation: false,
    color: ['#3b6fd8', '#d8843b', '#3ba55c', '#9b59b6', '#e74c3c', '#16a2b8', '#7f8c8d'],
    tooltip: { trigger: 'axis', valueFormatter: fmt },
    legend: { top: 0, type: 'scroll', data: names },
    grid: { left: 16, right: 24, top: 40, bottom: 36, containLabel: true },
    xAxis: { type: 'category', data: spec.categories, name: spec.xName, nameLocation: 'middle', nameGap: 28, axisLabel: { hideOverlap: true } },
    yAxis: { type: 'value', name: money ? `${spec.yName || ''}${spec.money ? ` (${spec.money})` : ''}` : spec.yName, minInterval: money ? 0 : 1 },
    graphic: spec.categories.length ? [] : [{ type: 'text', left: 'center', top: 'middle', style: { text: t('common.empty'), fill: '#888' } }],
    series: spec.series.map((s) => ({ name: s.name, type: spec.kind || 'bar', stack: spec.stack ? 'total' : undefined, data: s.data.map((v) => (money ? Number(v || 0) / 100 : Number(v || 0))) })),
  }, true);
  return chart;
}

/** The last `n` days, oldest first, YYYY-MM-DD in China Standard Time. */
function lastDays(n) {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => cstDay(now - (n - 1 - i) * 86400e3));
}

/** Rows [{day, channel, field}] as a time series by day: one series per channel (named as people call it), 0 on days without rows. */
function daySeries(rows, days, field) {
  const categories = [...new Set([...days, ...rows.map((r) => r.day)])].sort();
  const chans = [...new Set(rows.map((r) => r.channel))].sort();
  const sum = (d, c) => rows.filter((r) => r.day === d && r.channel === c).reduce((n, r) => n + Number(r[field] || 0), 0);
  return { categories, series: chans.map((c) => ({ name: chn(c), data: categories.map((d) => sum(d, c)) })) };
}

// ---------------------------------------------------------------------- reports

const COUNT_COLS = ['sent', 'delivered', 'failed', 'acknowledged', 'pending'];
/** Sum rows' counts by a key (rows may lack some counts: older servers). */
function sumBy(rows, key, fields) {
  const m = new Map();
  rows.forEach((r) => {
    const k = r[key];
    const c = m.get(k) || Object.fromEntries([[key, k], ...fields.map((f) => [f, 0])]);
    fields.forEach((f) => { c[f] += Number(r[f] || 0); });
    m.set(k, c);
  });
  return m;
}

async function pageReports(root) {
  setHtml(root, html`<section data-testid="page-reports"><h1>${t('menu.reports')}</h1>
    <form class="searchbar" data-testid="reports-filter"><label class="inline">${t('reports.days')}
      <select name="days" data-testid="reports-days">${[7, 30, 90].map((n) => html`<option value="${n}" ${raw(n === 30 ? 'selected' : '')}>${t('reports.lastDays', { n })}</option>`)}</select></label></form>
    <div data-testid="reports-body"></div></section>`);
  const form = $('[data-testid=reports-filter]', root);
  const body = $('[data-testid=reports-body]', root);
  const load = async () => {
    let currency = '';
    try { currency = (await api('GET', '/cost/balance')).currency; } catch { /* no cost.view */ }
    const d = await api('GET', '/reports/summary' + qs({ days: form.elements.days.value }));
    const byDayRows = d?.by_day || [];
    const fields = [...COUNT_COLS, 'cost_minor'];
    const chans = [...sumBy(d?.by_channel?.length ? d.by_channel : byDayRows, 'channel', fields).values()];
    // Spend comes from the ledger (every billed send, whatever its source); older servers lack it → the deliveries' cost.
    const spendRows = Array.isArray(d?.spend_by_day) ? d.spend_by_day : byDayRows;
    const spendChans = [...sumBy(spendRows, 'channel', ['cost_minor', 'units']).values()];
    const perPush = d?.per_push || [];
    const perAction = d?.per_action || [];
    const countTds = (c) => COUNT_COLS.map((k) => html`<td class="num" data-col="${k}">${c?.[k] ?? 0}</td>`);
    const countThs = COUNT_COLS.map((k) => html`<th class="num">${t('reports.' + k)}</th>`);
    setHtml(body, html`<div class="cards">
      <article class="card wide"><h3>${t('reports.sendsByChannel')}</h3>${chartBox('chart-sends-channel')}</article>
      <article class="card wide"><h3>${t('reports.spendByChannel')}</h3>${chartBox('chart-spend-channel')}</article>
      <article class="card wide"><h3>${t('reports.sendsByDay')}</h3>${chartBox('chart-sends-day')}</article>
      <article class="card wide"><h3>${t('reports.spendByDay')}</h3>${chartBox('chart-spend-day')}</article></div>
      <div class="panel"><h2>${t('reports.byChannel')}</h2><table data-testid="report-channel-table"><thead><tr><th>${t('push.channel')}</th>${countThs}<th class="num">${t('reports.cost')}</th></tr></thead>
        <tbody>${chans.length ? chans.map((c) => html`<tr data-testid="report-channel-row" data-channel="${c.channel}"><td>${chn(c.channel)}</td>${countTds(c)}<td class="num" data-col="cost">${fmtMoney(c.cost_minor, currency)}</td></tr>`) : html`<tr><td colspan="7" class="muted">${t('common.empty')}</td></tr>`}</tbody></table></div>
      <div class="panel"><h2>${t('reports.perPush')}</h2><table data-testid="report-push-table"><thead><tr><th>${t('common.number')}</th><th>${t('common.title')}</th><th>${t('push.channel')}</th>${countThs}<th class="num">${t('reports.cost')}</th></tr></thead>
        <tbody>${perPush.length ? perPush.map((p) => html`<tr class="clickable" data-testid="report-push-row" data-id="${p.id}" data-number="${p.number}" title="${t('push.view')}"><td>${p.number}</td>
          <td><a href="#/pushes/${encodeURIComponent(p.id)}" data-testid="report-push-link">${p.title}</a></td><td>${chn(p.channel)}</td>${countTds(p.counts)}<td class="num" data-col="cost">${fmtMoney(p.counts?.cost_minor, currency)}</td></tr>`) : html`<tr><td colspan="9" class="muted" data-testid="report-push-empty">${t('common.empty')}</td></tr>`}</tbody></table></div>
      <div class="panel"><h2>${t('reports.perAction')}</h2><table data-testid="report-action-table"><thead><tr><th>${t('common.number')}</th><th>${t('common.title')}</th><th class="num">${t('reports.incidents')}</th><th class="num">${t('reports.ackedIncidents')}</th>${countThs}<th class="num">${t('reports.cost')}</th></tr></thead>
        <tbody>${perAction.length ? perAction.map((a) => html`<tr data-testid="report-action-row" data-id="${a.id}" data-number="${a.number ?? ''}"><td>${a.number ?? ''}</td>
          <td>${a.number ? html`<a href="#/tiered/actions/${encodeURIComponent(a.id)}" data-testid="report-action-link">${a.title ?? ''}</a>` : html`<span class="muted">${t('reports.deletedAction')}</span>`}</td>
          <td class="num" data-col="incidents">${a.incidents ?? 0}</td><td class="num" data-col="acknowledged_incidents">${a.acknowledged_incidents ?? 0}</td>${countTds(a.counts)}<td class="num" data-col="cost">${fmtMoney(a.counts?.cost_minor, currency)}</td></tr>`) : html`<tr><td colspan="10" class="muted" data-testid="report-action-empty">${t('common.empty')}</td></tr>`}</tbody></table></div>
      <div class="panel"><h2>${t('reports.byDay')}</h2><table data-testid="report-day-table"><thead><tr><th>${t('reports.day')}</th><th>${t('push.channel')}</th>${countThs}<th class="num">${t('reports.cost')}</th></tr></thead>
        <tbody>${byDayRows.length ? byDayRows.map((r) => html`<tr data-testid="report-day-row" data-day="${r.day}" data-channel="${r.channel}"><td>${r.day}</td><td>${chn(r.channel)}</td>${countTds(r)}<td class="num" data-col="cost">${fmtMoney(r.cost_minor, currency)}</td></tr>`) : html`<tr><td colspan="8" class="muted">${t('common.empty')}</td></tr>`}</tbody></table></div>
      <div class="panel"><h2>${t('reports.spendTable')}</h2><p class="muted">${t('reports.spendHint')}</p><table data-testid="report-spend-table"><thead><tr><th>${t('reports.day')}</th><th>${t('push.channel')}</th><th class="num">${t('col.units')}</th><th class="num">${t('reports.spend')}</th></tr></thead>
        <tbody>${spendRows.length ? spendRows.map((r) => html`<tr data-testid="report-spend-row" data-day="${r.day}" data-channel="${r.channel}"><td>${r.day}</td><td>${chn(r.channel)}</td><td class="num">${r.units ?? ''}</td><td class="num">${fmtMoney(r.cost_minor, currency)}</td></tr>`) : html`<tr><td colspan="4" class="muted">${t('common.empty')}</td></tr>`}</tbody></table></div>`);
    const days = lastDays(Number(form.elements.days.value) || 30);
    drawChart(body, 'chart-sends-channel', { kind: 'bar', categories: chans.map((c) => chn(c.channel)), xName: t('push.channel'), yName: t('reports.sent'),
      series: [{ name: t('reports.sent'), data: chans.map((c) => c.sent) }, { name: t('reports.delivered'), data: chans.map((c) => c.delivered) }, { name: t('reports.failed'), data: chans.map((c) => c.failed) }] });
    drawChart(body, 'chart-spend-channel', { kind: 'bar', categories: spendChans.map((c) => chn(c.channel)), money: currency, xName: t('push.channel'), yName: t('reports.spend'),
      series: [{ name: t('reports.spend'), data: spendChans.map((c) => c.cost_minor) }] });
    drawChart(body, 'chart-sends-day', { kind: 'line', ...daySeries(byDayRows, days, 'sent'), xName: t('reports.day'), yName: t('reports.sent') });
    drawChart(body, 'chart-spend-day', { kind: 'line', ...daySeries(spendRows, days, 'cost_minor'), money: currency, xName: t('reports.day'), yName: t('reports.spend') });
    // A per-push row opens the push (the title is a link too, for keyboards).
    on(body, '[data-testid=report-push-row]', 'click', (e) => {
      if (e.target.closest('a')) return;
      go(`#/pushes/${encodeURIComponent(e.currentTarget.dataset.id)}`);
    });
  };
  form.elements.days.addEventListener('change', () => load().catch((err) => toast(err.message, 'error')));
  await load();
}

/** The enterprise's settings: the language Herald writes to it in. */
async function pageSettings(root) {
  const manage = can('roles.manage');
  setHtml(root, html`<section data-testid="page-settings"><h1>${t('menu.settings')}</h1>
    <article class="card"><form data-testid="settings-form" novalidate>
      <label>${t('settings.language')}<select name="language" data-testid="settings-language">
        <option value="zh-CN">中文</option><option value="en">English</option></select></label>
      <p class="muted small">${t('settings.languageHint')}</p>
      ${errorBox()}${manage ? html`<button type="submit" class="primary" data-testid="settings-save">${t('common.save')}</button>` : ''}</form></article></section>`);
  const form = $('[data-testid=settings-form]', root);
  const s = await api('GET', '/tenant/settings');
  form.elements.language.value = s.language;
  if (!manage) form.elements.language.disabled = true;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError(form);
    try {
      await api('PUT', '/tenant/settings', { language: form.elements.language.value });
      toast(t('common.saved'));
    } catch (err) { showError(form, err); }
  });
}

// ======================================================================= shell

const MENUS = [
  { key: 'directory', perm: 'directory.view', href: '#/directory' },
  { key: 'apps', perm: 'apps.view', href: '#/apps' },
  { key: 'roles', perm: 'roles.view', href: '#/roles' },
  { key: 'pushes', perm: 'push.view', href: '#/pushes' },
  { key: 'tiered', perm: 'tiered.view', href: '#/tiered/templates' },
  { key: 'accounts', perm: 'accounts.view', href: '#/accounts' },
  { key: 'cost', perm: 'cost.view', href: '#/cost' },
  { key: 'reports', perm: 'reports.view', href: '#/reports' },
  { key: 'settings', perm: 'roles.view', href: '#/settings' },
];

const ROUTES = [
  [/^#\/login$/, pageLogin, null, true],
  [/^#\/register$/, pageRegister, null, true],
  [/^#\/operator$/, pageOperator, null, true],
  [/^#\/directory$/, pageDirectory, 'directory.view'],
  [/^#\/apps$/, pageApps, 'apps.view'],
  [/^#\/roles$/, pageRoles, 'roles.view'],
  [/^#\/pushes$/, pagePushes, 'push.view'],
  [/^#\/pushes\/([^/]+)\/deliveries$/, pageDeliveries, 'push.view'],
  [/^#\/pushes\/([^/]+)$/, pagePushEdit, 'push.view'],
  [/^#\/tiered\/templates$/, pageTemplates, 'tiered.view'],
  [/^#\/tiered\/templates\/([^/]+)$/, pageTemplateEdit, 'tiered.view'],
  [/^#\/tiered\/actions$/, pageActions, 'tiered.view'],
  [/^#\/tiered\/actions\/([^/]+)$/, pageActionEdit, 'tiered.view'],
  [/^#\/tiered\/incidents$/, pageIncidents, 'tiered.view'],
  [/^#\/tiered\/incidents\/([^/]+)$/, pageIncident, 'tiered.view'],
  [/^#\/tiered\/quiet-hours$/, pageQuietHours, 'tiered.view'],
  [/^#\/accounts$/, pageAccounts, 'accounts.view'],
  [/^#\/cost$/, pageCost, 'cost.view'],
  [/^#\/reports$/, pageReports, 'reports.view'],
  [/^#\/settings$/, pageSettings, 'roles.view'],
];

function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}
function firstPage() {
  const m = MENUS.find((x) => can(x.perm));
  return m ? m.href : '#/home';
}
async function loadMe() {
  const me = await api('GET', '/me', undefined, { no401: true });
  state.me = me;
  state.perms = new Set(me.permissions || []);
  state.accountTypes = null;
  return me;
}

function renderShell() {
  const me = state.me;
  const path = location.hash;
  setHtml($('#header'), html`<div class="brand" data-testid="brand">Herald <span class="muted">${t('app.subtitle')}</span></div>
    <div class="hright">
      <a href="/api/v1/docs" target="_blank" rel="noopener" data-testid="api-docs" title="${t('app.apiDocs')}">API</a>
      <select data-testid="lang-switch" aria-label="${t('common.language')}">${LANGS.map(([code, label]) => html`<option value="${code}" ${raw(code === getLang() ? 'selected' : '')}>${label}</option>`)}</select>
      ${me ? html`<span class="who" data-testid="whoami">${me.user?.name || ''} · ${me.tenant?.name || ''}</span>
        <button type="button" data-testid="me-password">${t('me.changePassword')}</button>
        <button type="button" data-testid="logout">${t('login.logout')}</button>` : ''}
    </div>`);
  $('[data-testid=me-password]')?.addEventListener('click', changePasswordDialog);
  // After an administrator's reset: a reminder above every page until the user changes it.
  const banner = $('#must-change');
  if (banner) banner.remove();
  if (me?.user?.must_change_password) {
    const b = document.createElement('div');
    b.id = 'must-change';
    b.className = 'banner';
    b.dataset.testid = 'must-change-password';
    setHtml(b, html`<span>${t('me.mustChange')}</span><button type="button" class="primary" data-testid="must-change-go">${t('me.changePassword')}</button>`);
    $('#layout').before(b);
    $('button', b).addEventListener('click', changePasswordDialog);
  }
  $('[data-testid=lang-switch]').addEventListener('change', (e) => { setLang(e.target.value); document.documentElement.lang = getLang() === 'zh' ? 'zh-CN' : 'en'; route(); });
  $('[data-testid=logout]')?.addEventListener('click', async () => {
    try { await api('POST', '/logout', undefined, { no401: true }); } catch { /* already out */ }
    state.me = null;
    state.perms = new Set();
    go('#/login');
  });
  const nav = $('#nav');
  nav.hidden = !me;
  if (me) {
    setHtml(nav, html`<ul>${MENUS.filter((m) => can(m.perm)).map((m) => html`<li><a href="${m.href}" data-testid="nav-${m.key}" class="${path.startsWith(m.href.replace(/\/templates$/, '')) ? 'active' : ''}">${t('menu.' + m.key)}</a></li>`)}</ul>`);
  }
  document.title = `Herald · ${t('app.subtitle')}`;
}

let routing = 0;
async function route() {
  const my = ++routing;
  const hash = location.hash || '#/';
  $('#modal-root').replaceChildren(); // a dialog belongs to the page it was opened on
  const main = $('#page');
  let match = null;
  for (const [re, fn, perm, open] of ROUTES) {
    const m = hash.match(re);
    if (m) { match = { fn, perm, open, args: m.slice(1).map(decodeURIComponent) }; break; }
  }
  if (!match?.open && !state.me) {
    try { await loadMe(); } catch {
      if (my !== routing) return;
      state.me = null;
      renderShell();
      if (hash !== '#/login') { location.hash = '#/login'; return; }
    }
  }
  if (my !== routing) return;
  if (match?.open && state.me && hash === '#/login') { /* allow switching user: stay on login */ }
  renderShell();
  if (!match) {
    if (state.me) { const first = firstPage(); if (first !== hash && first !== '#/home') { location.hash = first; return; } }
    setHtml(main, html`<section data-testid="page-home"><h1>${t('home.title')}</h1><p>${state.me ? t('home.noMenus') : ''}</p></section>`);
    return;
  }
  if (match.perm && !can(match.perm)) {
    setHtml(main, html`<section data-testid="page-forbidden"><h1>${t('err.forbiddenTitle')}</h1><p>${t('err.forbidden')}</p></section>`);
    return;
  }
  setHtml(main, html`<p class="muted" data-testid="loading">${t('common.loading')}</p>`);
  const page = document.createElement('div');
  try {
    await match.fn(page, ...match.args);
    if (my !== routing) return;
    main.replaceChildren(page);
  } catch (err) {
    if (my !== routing) return;
    if (err instanceof ApiError && err.status === 401) return;
    setHtml(main, html`<section data-testid="page-error"><h1>${t('err.title')}</h1><p class="error" data-testid="page-error-message">${err.message}</p></section>`);
    if (!(err instanceof ApiError)) console.error(err);
  }
}

window.addEventListener('hashchange', route);
document.documentElement.lang = getLang() === 'zh' ? 'zh-CN' : 'en';
route();
