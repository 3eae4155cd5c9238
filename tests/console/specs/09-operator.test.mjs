// The platform operator's page (#/operator), in Chinese: entered with the
// operator token (a wrong one is refused and the page says so), it lists every
// tenant's pending recharge requests; approving one credits that tenant once,
// rejecting one keeps the balance and shows the reason to the tenant.
import { test, before, after } from 'node:test';
import { ADMIN, assert, launch, uniq, withPage, freshTenant, items, OPERATOR_TOKEN } from '../lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('运营审核：运营令牌进入，跨企业待审核列表，通过只入账一次，驳回附理由', { timeout: 90_000 }, async (t) => {
  assert.ok(OPERATOR_TOKEN, 'run.sh gives the admin an operator token');
  const a = await freshTenant('opa');
  const b = await freshTenant('opb');
  const before = { a: (await a.api.get('/cost/balance')).balance_minor, b: (await b.api.get('/cost/balance')).balance_minor };
  const ra = await a.api.post('/cost/recharge-requests', { amount_minor: 12345, note: uniq('工行流水') });
  const rb = await b.api.post('/cost/recharge-requests', { amount_minor: 500, note: uniq('未到账') });

  await withPage(t, browser, async (page) => {
    await page.goto(`${ADMIN}/#/login`);
    await page.getByTestId('goto-operator').click();
    await page.getByTestId('op-login').waitFor();
    // A wrong token: refused, said in Chinese, nothing listed.
    await page.getByTestId('op-token').fill('not-the-token');
    await page.getByTestId('op-enter').click();
    const err = page.getByTestId('op-login').getByTestId('form-error');
    await err.waitFor();
    assert.match(await err.textContent(), /运营令牌/);
    assert.equal(await page.getByTestId('op-table').count(), 0);

    await page.getByTestId('op-token').fill(OPERATOR_TOKEN);
    await page.getByTestId('op-enter').click();
    const rowA = page.locator(`[data-testid=op-row][data-id="${ra.id}"]`);
    const rowB = page.locator(`[data-testid=op-row][data-id="${rb.id}"]`);
    await rowA.waitFor();
    await rowB.waitFor();
    assert.equal(await rowA.getAttribute('data-tenant'), a.me.tenant.id, 'every tenant is listed, each under its own id');
    assert.match(await rowA.textContent(), /123\.45.*待审核/s);

    // Approve A's (after confirming, the dialog names the amount); reject B's with a reason.
    await rowA.getByTestId('op-approve').click();
    assert.match(await page.getByTestId('confirm-dialog').textContent(), /123\.45/);
    await page.getByTestId('confirm-ok').click();
    await rowA.waitFor({ state: 'detached' });
    await rowB.getByTestId('op-reject').click();
    await page.getByTestId('op-reason').fill('未收到转账');
    await page.getByTestId('dialog-submit').click();
    await rowB.waitFor({ state: 'detached' });

    // The decided ones under their status; a reload keeps the operator in (this tab only).
    await page.reload();
    await page.getByTestId('op-status').selectOption('approved');
    await page.locator(`[data-testid=op-row][data-id="${ra.id}"][data-status=approved]`).waitFor();
    await page.getByTestId('op-status').selectOption('rejected');
    const rejected = page.locator(`[data-testid=op-row][data-id="${rb.id}"][data-status=rejected]`);
    await rejected.waitFor();
    assert.match(await rejected.textContent(), /已驳回.*未收到转账/s);
    assert.equal(await rejected.getByTestId('op-approve').count(), 0, 'a decided request has no buttons');
    await page.getByTestId('op-leave').click();
    await page.getByTestId('op-login').waitFor();
  });

  assert.equal((await a.api.get('/cost/balance')).balance_minor, before.a + 12345, 'credited once');
  assert.equal(items(await a.api.get('/cost/transactions')).filter((e) => e.kind === 'top_up').length, 1);
  assert.equal((await b.api.get('/cost/balance')).balance_minor, before.b, 'a rejection credits nothing');
  const mine = items(await b.api.get('/cost/recharge-requests')).find((r) => r.id === rb.id);
  assert.equal(mine.status, 'rejected');
  assert.equal(mine.reason, '未收到转账');
});
