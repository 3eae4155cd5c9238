// Shared helpers of the console browser tests. run.sh starts the real services
// and passes their addresses in the environment:
//   HERALD_ADMIN_URL   the herald-admin base URL (console at /, API at /api/v1)
//   HERALD_GATEWAY_URL the herald-gateway base URL (same data dir)
//   SMTP_PORT, SMTP_USER, SMTP_PASSWORD, SMTP_OUT   the SMTP sink (tests/fixtures/smtp_sink.py)
//   FIXTURES           a folder with list.xlsx and list.xls made at test time
//   SHOT_DIR           where screenshots of failures go
//   OPERATOR_TOKEN     the admin's operator token (top-ups)
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

export { assert };
export const ADMIN = need('HERALD_ADMIN_URL');
export const GATEWAY = (process.env.HERALD_GATEWAY_URL || '').replace(/\/$/, '');
export const SHOT_DIR = process.env.SHOT_DIR || fs.mkdtempSync('/tmp/herald-console-shots-');
export const TIMEOUT = 10_000;
export const SMTP = {
  port: Number(process.env.SMTP_PORT || 0),
  user: process.env.SMTP_USER || '',
  password: process.env.SMTP_PASSWORD || '',
  out: process.env.SMTP_OUT || '',
};
export const FIXTURES = process.env.FIXTURES || '';
export const OPERATOR_TOKEN = process.env.OPERATOR_TOKEN || '';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run tests/console/run.sh`);
  return v.replace(/\/$/, '');
}

/** Debian's Chromium, never a downloaded browser. chromium.launch() gives each launch a fresh temporary user-data dir. */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30_000,
  });
}

let seq = 0;
/** A unique suffix for names, logins and titles. */
export function uniq(prefix = 'x') {
  seq += 1;
  return `${prefix}${Date.now().toString(36)}${process.pid.toString(36)}${seq}`;
}

/** A small JSON client of the admin API (for setting up data and checking answers). */
export class Api {
  constructor(token) { this.token = token; }
  async req(method, p, body, extraHeaders = {}) {
    const headers = { Accept: 'application/json', ...extraHeaders };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let payload;
    if (body !== undefined) { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
    const res = await fetch(`${ADMIN}/api/v1${p}`, { method, headers, body: payload, signal: AbortSignal.timeout(TIMEOUT) });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = text; }
    return { status: res.status, body: json };
  }
  async ok(method, p, body) {
    const r = await this.req(method, p, body);
    if (r.status >= 300) throw new Error(`${method} ${p} → ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
  get(p) { return this.ok('GET', p); }
  post(p, b) { return this.ok('POST', p, b ?? {}); }
}
export const items = (d) => (Array.isArray(d) ? d : d?.items || []);

/** Register a tenant through the API and log in; returns {api, login, password, enterprise, me}. */
export async function freshTenant(prefix = 't') {
  const login = uniq(prefix);
  const password = 'Secret-pass-' + login;
  const enterprise = `${prefix.toUpperCase()} 企业 ${login}`;
  const anon = new Api();
  const r = await anon.req('POST', '/register', { enterprise_name: enterprise, admin_login: login, admin_password: password, admin_name: `管理员 ${login}`, admin_email: `${login}@example.test` });
  if (r.status !== 201 && r.status !== 200) throw new Error(`register → ${r.status} ${JSON.stringify(r.body)}`);
  const l = await anon.req('POST', '/login', { login, password });
  if (l.status !== 200) throw new Error(`login → ${l.status} ${JSON.stringify(l.body)}`);
  const api = new Api(l.body.token);
  const me = await api.get('/me');
  return { api, login, password, enterprise, me };
}

/** Log out with the header's button, and wait until the console is logged out
 * (its request ends before the page forgets the session: a login typed in
 * meanwhile would be forgotten with it). */
export async function uiLogout(page) {
  await page.getByTestId('logout').click();
  await page.getByTestId('nav').waitFor({ state: 'hidden' });
}

/** Log in through the console's login form. */
export async function uiLogin(page, login, password) {
  await page.goto(`${ADMIN}/#/login`);
  await page.getByTestId('login-login').fill(login);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('nav').waitFor({ state: 'visible' });
}

/**
 * Run one spec with its own browser context; on failure take a screenshot into
 * SHOT_DIR (path printed) and show the page's console errors.
 */
export async function withPage(t, browser, fn) {
  const context = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1400, height: 1000 }, acceptDownloads: false });
  context.setDefaultTimeout(TIMEOUT);
  context.setDefaultNavigationTimeout(TIMEOUT);
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') logs.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  try {
    await fn(page, context);
  } catch (err) {
    const file = path.join(SHOT_DIR, `${t.name.replace(/[^\w.-]+/g, '_').slice(0, 80)}.png`);
    try {
      await page.screenshot({ path: file, fullPage: true, timeout: 5000 });
      console.error(`screenshot of the failure: ${file}`);
    } catch (e) { console.error(`no screenshot: ${e.message}`); }
    if (logs.length) console.error(`browser console:\n  ${logs.join('\n  ')}`);
    console.error(`page url: ${page.url()}`);
    throw err;
  } finally {
    await context.close();
  }
}

/** Wait (up to `ms`) until `fn` returns a truthy value; returns it. */
export async function eventually(fn, ms = TIMEOUT, what = 'condition') {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

/** Messages accepted by the SMTP sink so far. */
export function smtpMessages() {
  if (!SMTP.out || !fs.existsSync(SMTP.out)) return [];
  return fs.readFileSync(SMTP.out, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** Click a row button; answers the confirmation dialog with OK. */
export async function clickAndConfirm(page, locator) {
  await locator.click();
  await page.getByTestId('confirm-ok').click();
}

/** The newest error toast's text. */
export async function errorToast(page) {
  const toast = page.getByTestId('toast-error').last();
  await toast.waitFor({ state: 'visible' });
  return toast.textContent();
}

/** An email sender account on the SMTP sink, created through the API. */
export async function emailAccount(api, name = uniq('mail')) {
  await api.post('/accounts', {
    name,
    channel: 'email',
    config: { from: SMTP.user, from_name: 'Herald 测试', smtp: { host: '127.0.0.1', port: SMTP.port, tls: 'none', username: SMTP.user, password: SMTP.password, allow_plaintext_auth: true } },
  });
  return name;
}

/** Pick the option whose text is `text` in a <select>. */
export async function selectByText(select, text) {
  const v = await select.locator('option').evaluateAll((os, tx) => os.find((o) => o.textContent.trim() === tx)?.value, text);
  if (v === undefined) throw new Error(`no option "${text}"`);
  await select.selectOption(v);
}

/** A datetime-local value `days` from now at 09:30 local time. */
export function localDateTime(days) {
  const d = new Date(Date.now() + days * 86400_000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T09:30`;
}
