// A push sent now travels admin → queue → gateway → SMTP sink; the console's
// delivery view shows it sent; the cost page shows the balance and a ledger
// entry, and the alert settings (threshold, policy, prepaid) round-trip; the
// reports page draws its charts and shows the push with its counts.
import { test, before, after } from 'node:test';
import { ADMIN, Api, assert, launch, uniq, withPage, uiLogin, freshTenant, items, emailAccount, eventually, smtpMessages, OPERATOR_TOKEN } from '../lib.mjs';

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
    // Reload: the balance after the debits, as the API has it.
    await page.reload();
    await page.getByTestId('cost-balance').filter({ hasText: /\d/ }).waitFor();
    const bal = await tn.api.get('/cost/balance');
    const balText = await page.getByTestId('cost-balance').textContent();
    assert.ok(balText.includes(bal.currency), `balance shows the currency: ${balText}`);
    assert.ok(balText.includes((bal.balance_minor / 100).toFixed(2)), `balance shows ${bal.balance_minor}: ${balText}`);
    assert.ok(bal.balance_minor < 10_000, `the sends were debited: ${bal.balance_minor}`);
    await page.getByTestId('cost-tab-transactions').click();
    await page.locator('[data-testid=transaction-row][data-kind=top_up]').first().waitFor();
    assert.match(await page.getByTestId('transactions-table').textContent(), /100\.00/);
    await page.getByTestId('cost-tab-bills').click();
    await page.locator('[data-testid=bill-row][data-channel=email]').first().waitFor();
    // Overview and bills: current-period spend equals the month's debits minus refunds; trend and per-channel charts; sends over time.
    const month = new Date().toISOString().slice(0, 7);
    const lines = (await tn.api.get('/cost/bills')).items.filter((l) => l.period === month);
    const spent = lines.reduce((s, l) => s + (l.debit_minor || 0) - (l.credit_minor || 0), 0);
    assert.ok(spent > 0, `the month has spend: ${JSON.stringify(lines)}`);
    assert.ok((await page.getByTestId('bills-current').textContent()).includes((spent / 100).toFixed(2)), 'current period spend shown');
    assert.ok(await page.locator('[data-testid=chart-bills-trend] [data-testid=bar]').count() >= 1, 'spend trend chart');
    assert.ok(await page.locator('[data-testid=chart-bills-channel] [data-testid=bar]').count() >= 1, 'spend by channel chart');
    await page.locator('[data-testid=chart-cost-sends] [data-testid=bar]').first().waitFor();
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
    assert.ok(await page.getByTestId('chart-sends-channel').locator('[data-testid=bar]').count() >= 1, 'a bar per channel');
    assert.ok(await page.getByTestId('chart-spend-day').locator('[data-testid=bar]').count() >= 1, 'spend by day from the ledger');
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
