// A push sent now travels admin → queue → gateway → SMTP sink; the console's
// delivery view shows it sent; the cost page shows the balance and a ledger
// entry, and the alert settings (threshold, policy, prepaid) round-trip; the
// reports page draws its charts and shows the push with its counts.
import { test, before, after } from 'node:test';
import { execFileSync } from 'node:child_process';
import { ADMIN, Api, assert, launch, uniq, withPage, uiLogin, freshTenant, items, emailAccount, eventually, smtpMessages, OPERATOR_TOKEN } from '../lib.mjs';

/** GET an export with `token` (Accept-Language `lang`): status, headers and the text of its sheet (shared strings and cells). */
async function xlsx(token, p, lang = 'zh-CN') {
  const res = await fetch(`${ADMIN}/api/v1${p}`, { headers: { Authorization: `Bearer ${token}`, 'Accept-Language': lang } });
  const bytes = Buffer.from(await res.arrayBuffer());
  let text = '';
  if (res.ok) {
    assert.equal(bytes.subarray(0, 2).toString(), 'PK', 'an .xlsx is a zip');
    // Read it back as a workbook: the shared strings and the first sheet.
    text = execFileSync('python3', ['-c', `import sys, zipfile, io
z = zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))
names = z.namelist()
assert 'xl/workbook.xml' in names and 'xl/worksheets/sheet1.xml' in names, names
print(z.read('xl/sharedStrings.xml').decode() if 'xl/sharedStrings.xml' in names else '')
print(z.read('xl/worksheets/sheet1.xml').decode())`], { input: bytes }).toString();
  }
  return { status: res.status, type: res.headers.get('content-type'), disposition: res.headers.get('content-disposition'), text };
}

/** What an ECharts box shows: its series (legend) names, categories, non-zero points, and that it drew axes. */
async function chartOf(page, testid) {
  const box = page.getByTestId(testid);
  await page.waitForFunction((id) => [...document.querySelectorAll(`[data-testid="${id}"] svg`)].some((x) => x.getBoundingClientRect().width > 0), testid);
  return box.evaluate((el) => ({ series: JSON.parse(el.dataset.series || '[]'), categories: JSON.parse(el.dataset.categories || '[]'), points: Number(el.dataset.points || 0),
    text: el.textContent, instance: !!window.echarts?.getInstanceByDom(el) }));
}

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('send now: arrives at the SMTP sink through the gateway, shown as sent; cost and reports follow', { timeout: 120_000 }, async (t) => {
  const tn = await freshTenant('dlv');
  // The messaging app (the gateway's tenant and key) and a top-up by the platform operator.
  await tn.api.post('/api-keys'); // messaging is enabled from registration
  assert.ok(OPERATOR_TOKEN, 'run.sh gives the admin an operator token');
  {
    const r = await new Api(OPERATOR_TOKEN).req('POST', `/operator/tenants/${tn.me.tenant.id}/top-ups`, { amount_minor: 10_000, note: 'console test top-up' });
    assert.ok(r.status < 300, `top-up → ${r.status} ${JSON.stringify(r.body)}`);
  }
  const account = await emailAccount(tn.api);
  const root = items(await tn.api.get('/units'))[0];
  const unit = await tn.api.post('/units', { name: '值班组', parent: root.id });
  const tag = uniq('d');
  const rcpts = [`duty-a-${tag}@example.test`, `duty-b-${tag}@example.test`];
  for (const [i, email] of rcpts.entries()) await tn.api.post('/users', { name: `值班${i + 1}`, email, unit: unit.id, roles: [] });
  const subject = `送达测试 ${tag}`;

  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.goto(`${ADMIN}/#/pushes/new`);
    await page.getByTestId('page-push-edit').waitFor();
    await page.getByTestId('push-title').fill(`送达 ${tag}`);
    await page.getByTestId('push-channel').selectOption('email');
    await page.getByTestId('push-account').selectOption(account);
    await page.getByTestId('push-subject').fill(subject);
    await page.getByTestId('rich-editor').click();
    await page.keyboard.type('今晚值班请注意。');
    await page.getByTestId('push-pick-units').click();
    await page.locator(`[data-testid=units-picker] input[value="${unit.id}"]`).check();
    await page.getByTestId('dialog-submit').click();
    await page.getByTestId('push-mode-now').check();
    assert.ok(await page.getByTestId('push-enabled').isChecked());
    await page.getByTestId('push-save').click();
    // An immediate send asks first, naming how many it reaches.
    const confirm = page.getByTestId('confirm-dialog');
    await confirm.waitFor();
    assert.match(await confirm.textContent(), /2 位收件人/);
    await page.getByTestId('confirm-ok').click();
    const row = page.getByTestId('push-row').filter({ hasText: `送达 ${tag}` });
    await row.waitFor();
    const pushId = await row.getAttribute('data-id');
    const pushNumber = await row.getAttribute('data-number');

    // The SMTP sink receives every recipient (identical content goes as one
    // transaction with several RCPT TO, no recipient named in the headers).
    const got = await eventually(() => {
      const ms = smtpMessages().filter((m) => m.headers.Subject === subject);
      return ms.flatMap((m) => m.rcpt_tos).length >= 2 ? ms : null;
    }, 45_000, 'the messages at the SMTP sink');
    for (const m of got) for (const r of rcpts) assert.ok(!JSON.stringify(m.headers).includes(r), `no recipient in the headers: ${JSON.stringify(m.headers)}`);
    assert.deepEqual(got.flatMap((m) => m.rcpt_tos).sort(), [...rcpts].sort());
    assert.match(got[0].html || '', /今晚值班请注意/);

    // The console shows them sent.
    await row.getByTestId('push-deliveries').click();
    await page.getByTestId('page-deliveries').waitFor();
    await eventually(async () => {
      await page.getByTestId('deliveries-refresh').click();
      await page.getByTestId('deliveries-table').waitFor();
      const statuses = await page.getByTestId('delivery-row').evaluateAll((rs) => rs.map((r) => r.dataset.status));
      return statuses.length === 2 && statuses.every((s) => s === 'sent' || s === 'delivered');
    }, 30_000, 'both deliveries sent in the console');
    const shown = await page.getByTestId('delivery-status').allTextContents();
    assert.ok(shown.every((s) => /已发送|已送达/.test(s)), `status text: ${shown}`);
    const recips = await page.getByTestId('delivery-row').evaluateAll((rs) => rs.map((r) => r.dataset.recipient));
    assert.deepEqual(recips.sort(), [...rcpts].sort());
    // The delivery list exports to Excel.
    {
      const [dl] = await Promise.all([page.waitForEvent('download'), page.getByTestId('deliveries-export').click()]);
      assert.equal(dl.suggestedFilename(), `deliveries-${pushNumber}.xlsx`);
      const x = await xlsx(tn.api.token, `/pushes/${pushId}/deliveries/export`);
      for (const s of ['接收人', '状态', pushNumber, rcpts[0], rcpts[1]]) assert.ok(x.text.includes(s), `the deliveries sheet has ${s}`);
      assert.ok(/已发送|已送达/.test(x.text), 'statuses in Chinese');
      const other = await freshTenant('dlx');
      assert.equal((await xlsx(other.api.token, `/pushes/${pushId}/deliveries/export`)).status, 404, 'another tenant cannot export it');
    }
    await page.goto(`${ADMIN}/#/pushes`);
    await page.getByTestId('push-row').filter({ hasText: `送达 ${tag}` }).locator('[data-testid=push-status]').filter({ hasText: '已发送' }).waitFor();

    // Cost: balance with its currency; the ledger has the deliveries; the top-up is a transaction.
    await page.getByTestId('nav-cost').click();
    await page.getByTestId('page-cost').waitFor();
    await page.getByTestId('cost-tab-details').click();
    await page.getByTestId('details-table').waitFor();
    await eventually(async () => {
      await page.getByTestId('cost-tab-details').click();
      await page.getByTestId('details-table').waitFor();
      return (await page.locator('[data-testid=detail-row][data-channel=email][data-kind=debit]').count()) >= 2;
    }, 15_000, 'the ledger entries of the two e-mails');
    // Cost details name the push (its number) and the recipient, not internal delivery ids.
    const detailRows = page.locator('[data-testid=detail-row][data-kind=debit]');
    assert.deepEqual((await detailRows.evaluateAll((rs) => rs.map((r) => r.dataset.number))).filter(Boolean).slice(0, 2), [pushNumber, pushNumber]);
    assert.deepEqual((await detailRows.evaluateAll((rs) => rs.map((r) => r.dataset.recipient))).slice(0, 2).sort(), [...rcpts].sort());
    const detailsText = await page.getByTestId('details-table').textContent();
    assert.ok(detailsText.includes(pushNumber) && detailsText.includes(`送达 ${tag}`) && detailsText.includes(rcpts[0]), detailsText);
    for (const l of items(await tn.api.get('/cost/details'))) assert.ok(!detailsText.includes(l.delivery_id), `no internal id ${l.delivery_id} shown`);
    assert.match(await page.getByTestId('details-table').locator('th').allTextContents().then((h) => h.join('|')), /时间\|类型\|产品\|推送\/动作\|接收人/);
    // Paged by the server: the pager shows the period's total (the API's), the page size is the list's.
    const period = await tn.api.get(`/cost/details?from=${await page.getByTestId('details-from').inputValue()}&to=${await page.getByTestId('details-to').inputValue()}&limit=1`);
    assert.ok(period.total >= 2 && period.items.length === 1, JSON.stringify(period));
    const detailsPager = page.getByTestId('details-wrap').getByTestId('pager-info');
    await eventually(async () => (await detailsPager.textContent()).includes(`共 ${period.total} 条`), 5000, 'the details pager shows the total');
    assert.match(await page.getByTestId('details-wrap').getByTestId('pager-page').textContent(), /第 1 \/ 1 页/);
    // A sortable column asks the server: by amount, then back to time.
    await page.getByTestId('details-table').locator('th[data-sort=amount_minor] button').click();
    await eventually(async () => (await page.getByTestId('details-table').locator('th[data-sort=amount_minor]').getAttribute('aria-sort')) === 'ascending', 5000, 'sorted by amount');
    await page.getByTestId('details-table').locator('th[data-sort=at] button').click();
    await eventually(async () => (await page.getByTestId('details-table').locator('th[data-sort=at]').getAttribute('aria-sort')) === 'ascending', 5000, 'oldest first');
    await page.getByTestId('details-table').locator('th[data-sort=at] button').click();
    await eventually(async () => (await page.getByTestId('details-table').locator('th[data-sort=at]').getAttribute('aria-sort')) === 'descending', 5000, 'newest first again');
    assert.match(await page.getByTestId('details-table').textContent(), /邮件/);
    // The period filter: from tomorrow → nothing; back to this month → the rows again.
    const tomorrow = new Date(Date.now() + 8 * 3600e3 + 86400e3).toISOString().slice(0, 10);
    await page.getByTestId('details-from').fill(tomorrow);
    await page.getByTestId('details-to').fill(tomorrow);
    await page.getByTestId('details-filter').locator('button[type=submit]').click();
    await eventually(async () => (await page.getByTestId('detail-row').count()) === 0, 5000, 'no details tomorrow');
    await page.getByTestId('cost-tab-details').click();
    await detailRows.first().waitFor();
    // Excel export of the details: a download named as it is; the sheet names the push and the recipients, headers in Chinese.
    {
      const [dl] = await Promise.all([page.waitForEvent('download'), page.getByTestId('details-export').click()]);
      assert.equal(dl.suggestedFilename(), 'cost-details.xlsx');
      const x = await xlsx(tn.api.token, '/cost/details/export');
      assert.equal(x.status, 200);
      assert.equal(x.type, 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet');
      assert.match(x.disposition, /attachment; filename="cost-details\.xlsx"/);
      for (const s of ['时间', '推送/动作', '接收人', '扣费', '邮件', pushNumber, rcpts[0], rcpts[1]]) assert.ok(x.text.includes(s), `the details sheet has ${s}`);
      const en = await xlsx(tn.api.token, '/cost/details/export', 'en');
      assert.ok(en.text.includes('Recipient') && en.text.includes('Email') && !en.text.includes('接收人'), 'English headers by Accept-Language');
      const none = await xlsx(tn.api.token, `/cost/details/export?from=${tomorrow}&to=${tomorrow}`);
      assert.ok(!none.text.includes(rcpts[0]), 'the export keeps to the period');
      assert.equal((await xlsx(tn.api.token, '/cost/details/export?from=2026-13-01')).status, 400);
    }
    // Reload: the balance after the debits, as the API has it.
    await page.reload();
    await page.getByTestId('cost-balance').filter({ hasText: /\d/ }).waitFor();
    const bal = await tn.api.get('/cost/balance');
    const balText = await page.getByTestId('cost-balance').textContent();
    assert.ok(balText.includes(bal.currency), `balance shows the currency: ${balText}`);
    assert.ok(balText.includes((bal.balance_minor / 100).toFixed(2)), `balance shows ${bal.balance_minor}: ${balText}`);
    assert.ok(bal.balance_minor < 10_000, `the sends were debited: ${bal.balance_minor}`);
    // 收支明细: every debit, refund and top-up, with the balance after each (the newest is the balance now).
    await page.getByTestId('cost-tab-transactions').click();
    await page.locator('[data-testid=transaction-row][data-kind=top_up]').first().waitFor();
    assert.match(await page.getByTestId('transactions-table').textContent(), /100\.00/);
    assert.ok(await page.locator('[data-testid=transaction-row][data-kind=debit]').count() >= 2, 'the debits are in 收支明细 too');
    assert.equal((await page.getByTestId('transaction-row').first().locator('[data-col=balance]').textContent()).trim(), `${(bal.balance_minor / 100).toFixed(2)} ${bal.currency}`);
    assert.match(await page.getByTestId('transactions-table').textContent(), /充值.*console test top-up/s);
    {
      const [dl] = await Promise.all([page.waitForEvent('download'), page.getByTestId('transactions-export').click()]);
      assert.equal(dl.suggestedFilename(), 'transactions.xlsx');
    }
    await page.getByTestId('cost-tab-bills').click();
    await page.locator('[data-testid=bill-row][data-channel=email]').first().waitFor();
    // Overview and bills: current-period spend equals the month's debits minus refunds; trend and per-channel charts; sends over time.
    const month = new Date().toISOString().slice(0, 7);
    const lines = (await tn.api.get('/cost/bills')).items.filter((l) => l.period === month);
    const spent = lines.reduce((s, l) => s + (l.debit_minor || 0) - (l.credit_minor || 0), 0);
    assert.ok(spent > 0, `the month has spend: ${JSON.stringify(lines)}`);
    assert.ok((await page.getByTestId('bills-current').textContent()).includes((spent / 100).toFixed(2)), 'current period spend shown');
    // Charts by ECharts (vendored, no CDN): axes, a legend naming the channels as people call them, a time series by day.
    const trend = await chartOf(page, 'chart-bills-trend');
    assert.ok(trend.instance && trend.points >= 1 && trend.categories.includes(month), `spend trend chart: ${JSON.stringify(trend)}`);
    assert.deepEqual(trend.series, ['邮件'], 'the legend names the channel');
    const byChannel = await chartOf(page, 'chart-bills-channel');
    assert.deepEqual(byChannel.categories, ['邮件']);
    assert.ok(byChannel.points >= 1 && byChannel.text.includes('邮件'), 'spend by channel chart with its axis labels');
    const sends = await chartOf(page, 'chart-cost-sends');
    assert.equal(sends.categories.length >= 30, true, 'thirty days');
    assert.ok(sends.categories.every((d, i, a) => i === 0 || a[i - 1] < d), 'days in order');
    assert.deepEqual(sends.series, ['邮件']);
    assert.ok(sends.points >= 1, 'the sends of today');
    assert.equal(await page.evaluate(() => [...document.scripts].map((x) => x.src).filter((u) => u && !u.startsWith(location.origin)).length), 0, 'no script from another origin');
    // Per product, for the period chosen.
    assert.match(await page.locator('[data-testid=bills-product-row][data-channel=email] [data-col=spend]').textContent(), new RegExp((spent / 100).toFixed(2).replace('.', '\\.')));
    {
      const [dl] = await Promise.all([page.waitForEvent('download'), page.getByTestId('bills-export').click()]);
      assert.equal(dl.suggestedFilename(), 'bills.xlsx');
      const x = await xlsx(tn.api.token, `/cost/bills/export?from=${month}&to=${month}`);
      for (const s of ['月份', '产品', '扣费', '退款', '充值', '净额', month, '邮件']) assert.ok(x.text.includes(s), `the bills sheet has ${s}`);
      assert.equal((await xlsx(tn.api.token, '/cost/bills/export?from=2026-1')).status, 400, 'a month is YYYY-MM');
    }
    // Last month alone: no spend this month in the table.
    const last = ym0(-1);
    await page.getByTestId('bills-from').fill(last);
    await page.getByTestId('bills-to').fill(last);
    await page.getByTestId('bills-filter').locator('button[type=submit]').click();
    await eventually(async () => (await page.getByTestId('bills-product-row').count()) === 0, 5000, 'no products last month');
    // Alert setting round-trip.
    await page.getByTestId('cost-low').fill('12.5');
    await page.getByTestId('cost-policy').selectOption('fallback_free');
    await page.getByTestId('cost-alert-save').click();
    await eventually(async () => (await tn.api.get('/cost/balance')).low_balance_minor === 1250, 5000, 'the alert setting saved');
    assert.equal((await tn.api.get('/cost/balance')).policy, 'fallback_free');
    // Prepaid round-trip: ticked, saved, shown ticked after a reload; then back to postpaid.
    assert.equal(await page.getByTestId('cost-prepaid').isChecked(), false, 'postpaid by default');
    await page.getByTestId('cost-prepaid').check();
    await page.getByTestId('cost-alert-save').click();
    await eventually(async () => (await tn.api.get('/cost/balance')).prepaid === true, 5000, 'prepaid saved');
    assert.equal((await tn.api.get('/cost/balance')).low_balance_minor, 1250, 'the threshold kept');
    await page.reload();
    await page.getByTestId('cost-alert-info').filter({ hasText: '预付费' }).waitFor();
    assert.equal(await page.getByTestId('cost-prepaid').isChecked(), true, 'prepaid shown after a reload');
    assert.equal(await page.getByTestId('cost-policy').inputValue(), 'fallback_free');
    await page.getByTestId('cost-prepaid').uncheck();
    await page.getByTestId('cost-alert-save').click();
    await eventually(async () => (await tn.api.get('/cost/balance')).prepaid === false, 5000, 'postpaid saved');
    await page.reload();
    await page.getByTestId('cost-alert-info').filter({ hasText: '后付费' }).waitFor();
    assert.equal(await page.getByTestId('cost-prepaid').isChecked(), false, 'postpaid shown after a reload');

    // Reports: the charts and the per-channel table.
    await page.getByTestId('nav-reports').click();
    await page.getByTestId('page-reports').waitFor();
    for (const c of ['chart-sends-channel', 'chart-spend-channel', 'chart-sends-day', 'chart-spend-day']) await page.getByTestId(c).waitFor();
    await eventually(async () => {
      await page.reload();
      await page.getByTestId('report-channel-table').waitFor();
      const r = page.locator('[data-testid=report-channel-row][data-channel=email]');
      if (!(await r.count())) return false;
      const cells = await r.locator('td').allTextContents();
      return Number(cells[1]) >= 2;
    }, 15_000, 'the email sends in the report');
    const sc = await chartOf(page, 'chart-sends-channel');
    assert.deepEqual(sc.categories, ['邮件'], 'the channel axis names the channel');
    assert.deepEqual(sc.series, ['已发送', '已送达', '失败'], 'the legend');
    const sd = await chartOf(page, 'chart-spend-day');
    assert.deepEqual(sd.series, ['邮件']);
    assert.ok(sd.points >= 1 && sd.categories.length >= 30, 'spend by day from the ledger, a time series');
    assert.deepEqual((await chartOf(page, 'chart-spend-channel')).categories, ['邮件']);
    assert.ok((await chartOf(page, 'chart-sends-day')).categories.length >= 30);
    assert.ok(await page.locator('[data-testid=report-spend-row][data-channel=email]').count() >= 1, 'a ledger spend row for e-mail');
    for (const col of ['delivered', 'failed', 'acknowledged']) {
      assert.match(await page.locator(`[data-testid=report-channel-row][data-channel=email] [data-col=${col}]`).textContent(), /^\d+$/, `channel ${col} column`);
    }

    // Per push: the push sent above, with its delivered / failed counts as its deliveries have them.
    const ds = (await tn.api.get(`/pushes/${pushId}/deliveries`)).deliveries;
    const delivered = ds.filter((x) => x.status === 'delivered' || x.status === 'read').length;
    const pushRow = page.locator(`[data-testid=report-push-row][data-id="${pushId}"]`);
    await pushRow.waitFor();
    assert.equal(await pushRow.getAttribute('data-number'), pushNumber);
    assert.match(await pushRow.textContent(), new RegExp(`送达 ${tag}`));
    const cell = async (col) => (await pushRow.locator(`[data-col=${col}]`).textContent()).trim();
    assert.equal(await cell('sent'), '2', 'two sent');
    assert.equal(await cell('delivered'), String(delivered), 'delivered as the deliveries say');
    assert.equal(await cell('failed'), '0', 'none failed');
    const cost = ds.reduce((n, x) => n + (x.cost_minor || 0), 0);
    assert.equal(await cell('cost'), `${(cost / 100).toFixed(2)} ${bal.currency}`, 'the deliveries\' cost');
    // The per-action table is there (this tenant has no actions).
    await page.getByTestId('report-action-table').waitFor();
    // English headers.
    await page.getByTestId('lang-switch').selectOption('en');
    await page.getByTestId('report-push-table').locator('th').filter({ hasText: 'Delivered' }).waitFor();
    await page.getByTestId('lang-switch').selectOption('zh');
    await page.getByTestId('report-push-table').locator('th').filter({ hasText: '已送达' }).waitFor();
    // A click on the row opens the push.
    await page.locator(`[data-testid=report-push-row][data-id="${pushId}"] td`).first().click();
    await page.getByTestId('page-push-edit').waitFor();
    assert.ok(page.url().endsWith(`#/pushes/${pushId}`), page.url());
  });
});

const ym0 = (delta) => { const d = new Date(Date.now() + 8 * 3600e3); d.setUTCDate(1); d.setUTCMonth(d.getUTCMonth() + delta); return d.toISOString().slice(0, 7); };

test('充值申请: a tenant files it, only the platform operator approves, the balance is credited once', { timeout: 90_000 }, async (t) => {
  assert.ok(OPERATOR_TOKEN, 'run.sh gives the admin an operator token');
  const op = new Api(OPERATOR_TOKEN);
  const tn = await freshTenant('rch');
  const other = await freshTenant('rcx');
  const tenant = tn.me.tenant.id;
  const before = (await tn.api.get('/cost/balance')).balance_minor;
  // A user without cost.manage may not file one; a role with only cost.view sees them.
  const viewer = await tn.api.post('/roles', { name: uniq('费用查看'), permissions: ['cost.view'] });
  const root = items(await tn.api.get('/units'))[0];
  const login = uniq('rv');
  await tn.api.post('/users', { name: '财务查看', login, password: 'User-password-1', unit: root.id, roles: [viewer.id] });
  const low = new Api((await new Api().req('POST', '/login', { login, password: 'User-password-1' })).body.token);
  let noteNo;

  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-cost').click();
    await page.getByTestId('page-cost').waitFor();
    await page.getByTestId('cost-tab-recharge').click();
    // Bad input: the amount is named.
    await page.getByTestId('recharge-amount').fill('0');
    await page.getByTestId('recharge-submit').click();
    await page.getByTestId('recharge-form').getByTestId('form-error').waitFor();
    assert.ok(await page.getByTestId('recharge-amount').evaluate((el) => el.classList.contains('invalid')), 'the amount is marked');
    noteNo = `工行转账 流水号 ${uniq('n')}`;
    await page.getByTestId('recharge-amount').fill('50');
    await page.getByTestId('recharge-note').fill(noteNo);
    await page.getByTestId('recharge-submit').click();
    const row = page.getByTestId('recharge-row').filter({ hasText: noteNo });
    await row.waitFor();
    assert.equal(await row.getAttribute('data-status'), 'pending');
    assert.match(await row.getByTestId('recharge-status').textContent(), /待审核/);
    assert.match(await row.textContent(), /50\.00/);
    const id = await row.getAttribute('data-id');
    const number = await row.getAttribute('data-number');
    assert.match(number, /^R\d{6}$/);

    // Nobody but the operator decides: not the tenant's administrator, not a low-privilege user, not another tenant.
    for (const who of [tn.api, low, other.api]) {
      const r = await who.req('POST', `/operator/tenants/${tenant}/recharge-requests/${id}/approve`);
      assert.equal(r.status, 401, `a tenant's session is no operator token: ${JSON.stringify(r.body)}`);
    }
    assert.equal((await low.req('POST', '/cost/recharge-requests', { amount_minor: 100 })).status, 403, 'filing needs cost.manage');
    assert.ok(items(await low.get('/cost/recharge-requests')).some((r) => r.id === id), 'cost.view sees them');
    assert.ok(!items(await other.api.get('/cost/recharge-requests')).some((r) => r.id === id), 'another tenant does not see it');
    assert.equal((await op.req('POST', `/operator/tenants/${other.me.tenant.id}/recharge-requests/${id}/approve`)).status, 404, 'not under another tenant');
    assert.equal((await tn.api.get('/cost/balance')).balance_minor, before, 'nothing credited while pending');
    // The operator sees it pending, approves it: credited once.
    assert.ok(items(await op.get('/operator/recharge-requests?status=pending')).some((r) => r.id === id && r.tenant === tenant));
    assert.equal((await op.req('GET', '/operator/recharge-requests?status=maybe')).status, 400);
    const ok = await op.req('POST', `/operator/tenants/${tenant}/recharge-requests/${id}/approve`, { reason: '已到账' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.balance_minor, before + 5000);
    const again = await op.req('POST', `/operator/tenants/${tenant}/recharge-requests/${id}/approve`);
    assert.equal(again.status, 409, 'a second approval is refused');
    assert.equal(again.body.error.code, 'already_decided');
    assert.equal((await op.req('POST', `/operator/tenants/${tenant}/recharge-requests/${id}/reject`)).status, 409, 'and it cannot be rejected now');
    assert.equal((await tn.api.get('/cost/balance')).balance_minor, before + 5000, 'credited once');
    const tx = items(await tn.api.get('/cost/transactions')).filter((e) => e.kind === 'top_up');
    assert.equal(tx.length, 1);
    assert.equal(tx[0].id, `top_up:recharge:${id}`);

    // The tenant sees it approved, the balance and the top-up in 收支明细.
    await page.reload();
    await page.getByTestId('cost-tab-recharge').click();
    await page.locator(`[data-testid=recharge-row][data-id="${id}"][data-status=approved]`).waitFor();
    assert.match(await page.locator(`[data-testid=recharge-row][data-id="${id}"]`).textContent(), /已通过.*已到账/s);
    assert.ok((await page.getByTestId('cost-balance').textContent()).includes(((before + 5000) / 100).toFixed(2)));
    await page.getByTestId('cost-tab-transactions').click();
    await page.locator('[data-testid=transaction-row][data-kind=top_up]').filter({ hasText: number }).waitFor();

    // A second request, rejected with a reason: nothing credited.
    const second = await tn.api.post('/cost/recharge-requests', { amount_minor: 700, note: '第二笔' });
    const no = await op.req('POST', `/operator/tenants/${tenant}/recharge-requests/${second.id}/reject`, { reason: '未收到转账' });
    assert.equal(no.status, 200);
    assert.equal((await op.req('POST', `/operator/tenants/${tenant}/recharge-requests/${second.id}/approve`)).status, 409);
    assert.equal((await tn.api.get('/cost/balance')).balance_minor, before + 5000);
    await page.getByTestId('cost-tab-recharge').click();
    await page.locator(`[data-testid=recharge-row][data-id="${second.id}"][data-status=rejected]`).filter({ hasText: '未收到转账' }).waitFor();
    assert.match(await page.locator(`[data-testid=recharge-row][data-id="${second.id}"]`).textContent(), /已驳回/);
    // The cost-view user sees the list but has no form.
    assert.equal((await tn.api.req('POST', '/cost/recharge-requests', { amount_minor: 100, note: 'x'.repeat(501) })).status, 400);
    assert.equal((await tn.api.req('POST', '/cost/recharge-requests', { amount_minor: -5 })).body.error.field, 'amount_minor');
  });
});
