// List tables sort by a click on a column header (▲/▼, aria-sort), and every
// page of the console, with data, in both languages at a desktop and a phone
// size: a full-page screenshot of each (kept in SHOT_DIR/layout, printed) and
// layout sanity — no sideways overflow of the document, no header cell or nav
// item whose text overflows its box, no overlapping buttons in a toolbar, no
// untranslated i18n key on screen.
import { test, before, after } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import { ADMIN, GATEWAY, Api, assert, launch, uniq, withPage, uiLogin, freshTenant, items, emailAccount, eventually, OPERATOR_TOKEN, SHOT_DIR } from '../lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** The texts of one column of a table's body rows. */
const column = (table, i) => table.locator('tbody tr').evaluateAll((rs, n) => rs.map((r) => r.cells[n]?.textContent.trim() ?? ''), i);
const header = (table, i) => table.locator('thead th').nth(i);

/** Wait until a column reads `want` (server-sorted lists reload after a click). */
/**
 * The server's text order (herald_core::collate): each Chinese character as its pinyin with the tone
 * number, ASCII letters case-folded, other characters as they are; equal keys by the case-folded text.
 * The pinyin of the characters these tests use.
 */
const PINYIN = { 王: 'wang2', 管: 'guan3', 理: 'li3', 员: 'yuan2', 张: 'zhang1', 三: 'san1', 李: 'li3', 四: 'si4', 阿: 'a1', 明: 'ming2' };
const fold = (x) => x.replace(/[A-Z]/g, (c) => c.toLowerCase());
const pinyinKey = (x) => [...fold(x)].map((c) => PINYIN[c] ?? c).join('');
const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const serverOrder = (a, b) => cmp(pinyinKey(a), pinyinKey(b)) || cmp(fold(a), fold(b));
const columnIs = (table, i, want, what) => eventually(async () => JSON.stringify(await column(table, i)) === JSON.stringify(want), 5000, what);

test('sorting: a header click asks the server for ascending, again descending; kept when the list reloads', { timeout: 90_000 }, async (t) => {
  const tn = await freshTenant('srt');
  const root = items(await tn.api.get('/units'))[0];
  // Created in an order that is neither ascending nor descending.
  const names = ['Carol', '张三', 'alice', 'Eve', '李四', 'bob', '阿明', 'Dave'];
  for (const [i, n] of names.entries()) await tn.api.post('/users', { name: n, login: uniq(`s${i}`), password: 'User-password-1', email: `sorted-${i}@example.test`, unit: root.id, roles: [] });
  const account = await emailAccount(tn.api);
  const titles = ['乙 通知', '甲 通知', '丙 通知'];
  for (const title of titles) {
    await tn.api.post('/pushes', { title, channel: 'email', account, content: { subject: 's', html: '<p>x</p>', text: 'x' },
      targets: { users: [], units: [root.id], list: [] }, schedule: { mode: 'at', at: new Date(Date.now() + 3 * 86400_000).toISOString() }, enabled: false });
  }

  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.goto(`${ADMIN}/#/directory`);
    const table = page.getByTestId('users-table');
    await page.getByTestId('user-row').nth(8).waitFor(); // the admin + eight
    const nameTh = header(table, 0);
    assert.equal(await nameTh.getAttribute('aria-sort'), 'none');
    const all = await column(table, 0);
    const asc = [...all].sort(serverOrder);

    await nameTh.getByRole('button').click();
    // The list's default order is by name already: wait for the reloaded table's mark.
    await eventually(async () => (await nameTh.getAttribute('aria-sort')) === 'ascending', 5000, 'marked ascending');
    await columnIs(table, 0, asc, 'ascending, case-insensitive');
    // Chinese names in pinyin order (阿 a, 李 li, 张 zhang), not code point order (张 U+5F20 before 李 U+674E).
    const chinese = (await column(table, 0)).filter((n) => /^[阿李张]/.test(n));
    assert.deepEqual(chinese, ['阿明', '李四', '张三'], 'pinyin order');
    assert.match(await nameTh.textContent(), /▲/);
    const logins = await page.getByTestId('user-row').evaluateAll((rs) => rs.map((r) => r.dataset.login));
    assert.equal(logins.length, 9, 'rows keep their test ids and data');

    await nameTh.getByRole('button').click();
    await eventually(async () => (await nameTh.getAttribute('aria-sort')) === 'descending', 5000, 'marked descending');
    await columnIs(table, 0, [...asc].reverse(), 'descending');
    assert.match(await nameTh.textContent(), /▼/);
    // Only one column shows a direction.
    assert.equal(await header(table, 1).getAttribute('aria-sort'), 'none');
    assert.doesNotMatch(await header(table, 1).textContent(), /[▲▼]/);
    // The row buttons still work on a sorted table: edit the first row.
    await page.getByTestId('user-row').first().getByTestId('user-edit').click();
    assert.equal(await page.getByTestId('uf-name').inputValue(), asc[asc.length - 1]);
    await page.getByTestId('dialog-close').click();

    // The order survives the list being loaded again (search).
    await page.getByTestId('user-search-go').click();
    await eventually(async () => JSON.stringify(await column(table, 0)) === JSON.stringify([...asc].reverse()), 5000, 'descending after a reload');
    await eventually(async () => (await header(page.getByTestId('users-table'), 0).getAttribute('aria-sort')) === 'descending', 5000, 'still marked descending');

    // Pushes: by number and by title.
    await page.getByTestId('nav-pushes').click();
    const pt = page.getByTestId('pushes-table');
    await page.getByTestId('push-row').nth(2).waitFor();
    const numbers = await column(pt, 0);
    const marked = (i, want) => eventually(async () => (await header(pt, i).getAttribute('aria-sort')) === want, 5000, `column ${i} marked ${want}`);
    await header(pt, 0).getByRole('button').click();
    await marked(0, 'ascending');
    await columnIs(pt, 0, [...numbers].sort(), 'numbers ascending');
    await header(pt, 0).getByRole('button').click();
    await marked(0, 'descending');
    await columnIs(pt, 0, [...numbers].sort().reverse(), 'numbers descending');
    await header(pt, 1).getByRole('button').click();
    // Numbers descending already list the titles 丙 甲 乙, so wait for the reload's mark before reading the rows.
    await marked(1, 'ascending');
    // The server orders Chinese text by pinyin: 丙 bing, 甲 jia, 乙 yi (code points would give 丙 乙 甲).
    await columnIs(pt, 1, ['丙 通知', '甲 通知', '乙 通知'], 'titles in pinyin order');
    assert.equal(await header(pt, 0).getAttribute('aria-sort'), 'none');
    // The row-button column is not sortable, nor the computed status (not a stored field).
    assert.equal(await header(pt, 6).getByRole('button').count(), 0);
    assert.equal(await header(pt, 3).getByRole('button').count(), 0);

    // English headers sort the same way, with English labels on the button.
    await page.getByTestId('lang-switch').selectOption('en');
    await page.getByTestId('push-search').filter({ hasText: 'Search' }).waitFor();
    assert.match(await header(page.getByTestId('pushes-table'), 1).getByRole('button').getAttribute('title'), /^Sort by Title/);
  });
});

test('分页：250 个通讯录用户（连同管理员共 251 条）；第 2 页与最后一页；按列排序由服务器完成且跨页正确；筛选缩小总数', { timeout: 180_000 }, async (t) => {
  const tn = await freshTenant('pg');
  const root = items(await tn.api.get('/units'))[0];
  // 250 users (no password: quick), named out of order; every 10th is a 王.
  const names = Array.from({ length: 250 }, (_, i) => `${i % 10 === 0 ? '王' : 'user'} ${String((i * 37) % 250).padStart(3, '0')}`);
  for (let i = 0; i < names.length; i += 25) {
    await Promise.all(names.slice(i, i + 25).map((name, j) => tn.api.post('/users', { name, email: `p${i + j}@example.test`, unit: root.id, roles: [] })));
  }
  // The API: past 200, sorted by the server, the total; a sort column the list lacks is a 422 naming `sort` (a malformed order a 400).
  const p5 = await tn.api.get('/users?sort=name&order=asc&offset=200&limit=50');
  assert.equal(p5.total, 251, 'the admin and 250');
  assert.equal(p5.items.length, 50);
  const bad = await tn.api.req('GET', '/users?sort=password_hash');
  assert.equal(bad.status, 422);
  assert.equal(bad.body.error?.field ?? bad.body.field, 'sort');
  const badOrder = await tn.api.req('GET', '/users?sort=name&order=up');
  assert.equal(badOrder.status, 400);

  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.goto(`${ADMIN}/#/directory`);
    const table = page.getByTestId('users-table');
    const info = page.getByTestId('pager-info');
    await eventually(async () => /共 251 条/.test(await info.textContent()), 10_000, 'total 251');
    assert.equal(await page.getByTestId('user-row').count(), 50);
    assert.match(await page.getByTestId('pager-page').textContent(), /第 1 \/ 6 页/);

    // Sort by name: the server orders all 251, so page 1 holds the 50 first of them.
    const all = [...names, `管理员 ${tn.login}`].sort(serverOrder);
    await header(table, 0).getByRole('button').click();
    await columnIs(table, 0, all.slice(0, 50), 'page 1 of the names, ascending');
    // Page 2.
    await page.getByTestId('pager-next').click();
    await columnIs(table, 0, all.slice(50, 100), 'page 2, ascending across pages');
    assert.match(await info.textContent(), /第 51–100 条，共 251 条/);
    assert.match(await page.getByTestId('pager-page').textContent(), /第 2 \/ 6 页/);
    // The last page.
    await page.getByTestId('pager-last').click();
    await columnIs(table, 0, all.slice(250), 'the last page');
    assert.match(await info.textContent(), /第 251–251 条，共 251 条/);
    assert.ok(await page.getByTestId('pager-next').isDisabled());
    // Descending: the server restarts at page 1 with the last names first.
    await header(table, 0).getByRole('button').click();
    await columnIs(table, 0, [...all].reverse().slice(0, 50), 'page 1, descending');
    assert.equal(await header(table, 0).getAttribute('aria-sort'), 'descending');
    // Page size: 200 a page, then the second page holds the rest.
    await page.getByTestId('pager-size').selectOption('200');
    await eventually(async () => (await page.getByTestId('user-row').count()) === 200, 10_000, '200 rows');
    await page.getByTestId('pager-next').click();
    await columnIs(table, 0, [...all].reverse().slice(200), 'page 2 of 200 a page');
    // A filter narrows the total: the 25 王.
    await page.getByTestId('user-search').fill('王');
    await page.getByTestId('user-search-go').click();
    await eventually(async () => /共 25 条/.test(await info.textContent()), 10_000, 'the filtered total');
    assert.equal(await page.getByTestId('user-row').count(), 25);
    await columnIs(table, 0, all.filter((n) => n.startsWith('王')).reverse(), 'the filtered rows, still descending');
    await page.getByTestId('pager-size').selectOption('50');
  });
});

// ---------------------------------------------------------------- layout

const VIEWPORTS = [{ name: 'desktop', width: 1280, height: 800 }, { name: 'phone', width: 390, height: 844 }];
const LANGS = ['zh', 'en'];

/** All layout problems on the page now (strings; empty when fine). Runs in the page. */
function layoutProblems() {
  const out = [];
  const de = document.documentElement;
  const W = window.innerWidth;
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) return false;
    const cs = getComputedStyle(el);
    return cs.visibility !== 'hidden' && cs.display !== 'none' && !el.closest('[hidden]');
  };
  const name = (el) => {
    const tid = el.closest('[data-testid]')?.dataset.testid;
    const txt = (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 40);
    return `<${el.tagName.toLowerCase()}${el.className && typeof el.className === 'string' ? '.' + el.className.trim().replace(/\s+/g, '.') : ''}> in [${tid || '-'}] "${txt}"`;
  };
  if (de.scrollWidth > W + 1) {
    // Name the culprits: visible elements reaching past the window, not inside something that scrolls.
    const culprits = [];
    for (const el of document.body.querySelectorAll('*')) {
      if (!visible(el)) continue;
      const r = el.getBoundingClientRect();
      if (r.right <= W + 1) continue;
      let p = el.parentElement;
      let scrolled = false;
      while (p && p !== document.body) {
        const ox = getComputedStyle(p).overflowX;
        if (ox === 'auto' || ox === 'scroll' || ox === 'hidden') { scrolled = true; break; }
        p = p.parentElement;
      }
      if (!scrolled) culprits.push(`${name(el)} right=${Math.round(r.right)}`);
    }
    out.push(`document is ${de.scrollWidth}px wide in a ${W}px window; past the edge: ${culprits.slice(-4).join('; ')}`);
  }
  const clipsWithEllipsis = (el) => {
    const cs = getComputedStyle(el);
    return cs.textOverflow === 'ellipsis' && cs.overflowX !== 'visible';
  };
  for (const el of document.querySelectorAll('th, th .th-sort, #nav a')) {
    if (!visible(el) || clipsWithEllipsis(el)) continue;
    if (el.scrollWidth > el.clientWidth + 1) out.push(`text overflows its box (${el.scrollWidth} > ${el.clientWidth}): ${name(el)}`);
  }
  const TOOLBARS = '.btnrow, .actions, .searchbar, .panel-head, .hright, .rowbtns, [role=toolbar], .toolbar, .pager, .keybox, .target-row, .tabs, #nav ul, .escalate, .channel-row, .upload-progress, .cards';
  const BUTTONS = 'button, .button, .filebtn, [role=button], select';
  for (const bar of document.querySelectorAll(TOOLBARS)) {
    if (!visible(bar)) continue;
    const bs = [...bar.querySelectorAll(BUTTONS)].filter((b) => b.closest(TOOLBARS) === bar && visible(b) && !b.closest('th'));
    for (let i = 0; i < bs.length; i++) {
      for (let j = i + 1; j < bs.length; j++) {
        if (bs[i].contains(bs[j]) || bs[j].contains(bs[i])) continue;
        const a = bs[i].getBoundingClientRect();
        const b = bs[j].getBoundingClientRect();
        const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (w > 1 && h > 1) out.push(`buttons overlap (${Math.round(w)}×${Math.round(h)}): ${name(bs[i])} / ${name(bs[j])}`);
      }
    }
  }
  const KEY = /^[a-z]+\.[a-zA-Z.]+$/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const s = n.nodeValue.trim();
    if (!s || !KEY.test(s)) continue;
    const el = n.parentElement;
    if (el.closest('script,style') || (!visible(el) && el.tagName !== 'OPTION')) continue;
    out.push(`untranslated key "${s}": ${name(el)}`);
  }
  for (const el of document.querySelectorAll('[placeholder], [title], [aria-label]')) {
    for (const a of ['placeholder', 'title', 'aria-label']) {
      const v = (el.getAttribute(a) || '').trim();
      if (KEY.test(v) && visible(el)) out.push(`untranslated key "${v}" in ${a}: ${name(el)}`);
    }
  }
  return out;
}

/** A tenant with something on every page: users, an account, a sent and a scheduled push, a template, an action and its incident, money. */
async function tenantWithData() {
  const tn = await freshTenant('lay');
  const key = (await tn.api.post('/api-keys')).api_key;
  const top = await new Api(OPERATOR_TOKEN).req('POST', `/operator/tenants/${tn.me.tenant.id}/top-ups`, { amount_minor: 50_000, note: 'layout test top-up' });
  assert.ok(top.status < 300, `top-up → ${top.status} ${JSON.stringify(top.body)}`);
  const account = await emailAccount(tn.api);
  const root = items(await tn.api.get('/units'))[0];
  const unit = await tn.api.post('/units', { name: '运维值班组（华东区域）', parent: root.id });
  await tn.api.post('/units', { name: '客服部', parent: unit.id });
  const tag = uniq('l');
  for (let i = 0; i < 3; i++) {
    await tn.api.post('/users', { name: `值班员${i + 1}`, login: uniq(`u${i}`), password: 'User-password-1', email: `duty-${i}-${tag}@example.test`, mobile: `1380000000${i}`, unit: unit.id, roles: [] });
  }
  await tn.api.post('/roles', { name: '只读观察员', permissions: ['directory.view', 'push.view'], all_units: true, units: [] });
  const sent = await tn.api.post('/pushes', { title: `布局检查 ${tag}`, channel: 'email', account, content: { subject: `布局 ${tag}`, html: '<p>你好</p>', text: '你好' },
    targets: { users: [], units: [unit.id], list: [{ to: `list-${tag}@example.test`, name: '名单一', variables: { dept: '研发' } }] }, schedule: { mode: 'now' }, enabled: true });
  await tn.api.post('/pushes', { title: `定时通知 ${tag}`, channel: 'email', account, content: { subject: 's', html: '<p>x</p>', text: 'x' },
    targets: { users: [], units: [unit.id], list: [] }, schedule: { mode: 'at', at: new Date(Date.now() + 2 * 86400_000).toISOString() }, enabled: true });
  const tpl = await tn.api.post('/tiered/templates', { editor: 'rich_text', title: '数据库告警', subject: '数据库告警', body: '<p>数据库使用率过高</p>', variables: [] });
  const action = await tn.api.post('/tiered/actions', { title: '数据库告警升级', templates: [tpl.id], ack_scope: 'incident', rules: [
    { level: 'urgent', channels: [{ channel: 'email', account }], recipients: { users: [], units: [unit.id], list: [] }, escalate: { after_secs: 600, condition: 'not_acknowledged' }, repeat: 0 },
    { level: 'info', channels: [{ channel: 'email', account }], recipients: { users: [], units: [unit.id], list: [] }, escalate: null, repeat: 0 }] });
  await tn.api.ok('PUT', '/tiered/quiet-hours', { start: '22:00', end: '08:00', time_zone: 'Asia/Shanghai', levels_exempt: ['urgent'] });
  const trig = await fetch(`${GATEWAY}/v1/actions/${action.id}/trigger`, {
    method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ level: 'urgent', variables: {}, recipients: {} }),
  });
  assert.ok(trig.status < 300, `trigger → ${trig.status} ${await trig.text()}`);
  const incident = await eventually(async () => items(await tn.api.get('/tiered/incidents'))[0], 20_000, 'the incident');
  await eventually(async () => {
    const d = await tn.api.get(`/pushes/${sent.id}/deliveries`);
    return (d?.deliveries || []).length >= 4 && d.deliveries.every((x) => ['sent', 'delivered'].includes(x.status));
  }, 45_000, 'the push sent');
  await eventually(async () => items(await tn.api.get('/cost/details?limit=5')).length > 0, 20_000, 'ledger lines');
  return { tn, ids: { push: sent.id, tpl: tpl.id, action: action.id, incident: incident.id } };
}

/** [name, hash, a test id that shows the page is loaded, optional step after loading] */
function pages(ids) {
  const enc = encodeURIComponent;
  return [
    ['directory', '#/directory', 'user-row'],
    ['apps', '#/apps', 'api-key-row'],
    ['roles', '#/roles', 'role-row'],
    ['pushes', '#/pushes', 'push-row'],
    ['push-new', '#/pushes/new', 'push-save'],
    ['push-view', `#/pushes/${enc(ids.push)}`, 'push-number'],
    ['deliveries', `#/pushes/${enc(ids.push)}/deliveries`, 'delivery-row'],
    ['templates', '#/tiered/templates', 'tpl-row'],
    ['template-edit', `#/tiered/templates/${enc(ids.tpl)}`, 'tpl-save'],
    ['actions', '#/tiered/actions', 'action-row'],
    ['action-edit', `#/tiered/actions/${enc(ids.action)}`, 'rule-card'],
    ['incidents', '#/tiered/incidents', 'incident-row'],
    ['incident', `#/tiered/incidents/${enc(ids.incident)}`, 'timeline-row'],
    ['quiet-hours', '#/tiered/quiet-hours', 'quiet-save'],
    ['accounts', '#/accounts', 'account-row'],
    ['cost-bills', '#/cost', 'bills-table'],
    ['cost-details', '#/cost', 'bills-table', async (page) => { await page.getByTestId('cost-tab-details').click(); await page.getByTestId('detail-row').first().waitFor(); }],
    ['cost-transactions', '#/cost', 'bills-table', async (page) => { await page.getByTestId('cost-tab-transactions').click(); await page.getByTestId('transactions-table').waitFor(); }],
    ['reports', '#/reports', 'report-push-row'],
  ];
}

test('layout: every page, zh + en, desktop + phone: screenshots; no overflow, no overlapping buttons, no raw i18n keys', { timeout: 400_000 }, async (t) => {
  const { tn, ids } = await tenantWithData();
  const dir = path.join(SHOT_DIR, 'layout');
  fs.mkdirSync(dir, { recursive: true });
  const problems = [];
  let shots = 0;
  const check = async (page, label) => {
    await page.evaluate(() => document.fonts.ready);
    await page.mouse.move(0, 0); // no hover state from the last click in the picture
    const file = path.join(dir, `${label}.png`);
    await page.screenshot({ path: file, fullPage: true });
    shots += 1;
    for (const p of await page.evaluate(layoutProblems)) problems.push(`${label}: ${p}`);
  };
  for (const vp of VIEWPORTS) {
    await withPage(t, browser, async (page) => {
      await page.setViewportSize({ width: vp.width, height: vp.height });
      for (const lang of LANGS) {
        await page.goto(`${ADMIN}/#/login`);
        await page.getByTestId('lang-switch').selectOption(lang);
        await page.getByTestId('login-submit').filter({ hasText: lang === 'zh' ? '登录' : 'Log in' }).waitFor();
        await check(page, `${lang}-${vp.name}-login`);
        await page.getByTestId('goto-register').click();
        await page.getByTestId('page-register').waitFor();
        await check(page, `${lang}-${vp.name}-register`);
        await uiLogin(page, tn.login, tn.password);
        for (const [name, hash, ready, step] of pages(ids)) {
          if (page.url() === `${ADMIN}/${hash}`) await page.reload(); // the same hash again: no hashchange
          else await page.goto(`${ADMIN}/${hash}`);
          await page.getByTestId(ready).first().waitFor();
          if (step) await step(page);
          await page.getByTestId('loading').waitFor({ state: 'detached' });
          await check(page, `${lang}-${vp.name}-${name}`);
        }
      }
      // The checks do find what they look for (on a page spoiled on purpose).
      await page.evaluate(() => {
        const box = document.createElement('div');
        box.innerHTML = '<div style="width:3000px">wide</div>'
          + '<table style="width:60px;table-layout:fixed"><thead><tr><th style="width:60px">一个很长很长的表头不会换行的</th></tr></thead></table>'
          + '<div class="btnrow"><button style="position:relative">甲</button><button style="position:relative;left:-30px">乙</button></div>'
          + '<p>push.notTranslated</p>';
        box.querySelector('th').style.whiteSpace = 'nowrap';
        document.getElementById('page').appendChild(box);
      });
      const found = (await page.evaluate(layoutProblems)).join('\n');
      for (const kind of [/document is \d+px wide/, /text overflows its box/, /buttons overlap/, /untranslated key "push\.notTranslated"/]) {
        assert.match(found, kind, `the spoiled page is caught: ${found}`);
      }
    });
  }
  console.log(`layout screenshots (${shots}): ${dir}`);
  assert.equal(shots, VIEWPORTS.length * LANGS.length * (pages(ids).length + 2));
  assert.deepEqual(problems, [], `layout problems:\n  ${problems.join('\n  ')}`);
});
