// Message push: an email push with rich text (scripts and event handlers typed
// into the HTML are gone when viewed again), targets = a unit + uploaded .xlsx
// and .xls lists, scheduled send, search by number + title, copy, disable, delete.
import { test, before, after } from 'node:test';
import path from 'node:path';
import { ADMIN, assert, launch, uniq, withPage, uiLogin, freshTenant, clickAndConfirm, errorToast, items, emailAccount, localDateTime, FIXTURES } from '../lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const EVIL = '<script>alert("xss-script")</script><img src="x" onerror="alert(\'xss-img\')"><a href="javascript:alert(3)">坏链接</a>';

test('email push: rich text sanitized, unit + xlsx + xls targets, schedule, search, copy, disable, delete', { timeout: 120_000 }, async (t) => {
  const tn = await freshTenant('psh');
  const account = await emailAccount(tn.api);
  const root = items(await tn.api.get('/units'))[0];
  const unit = await tn.api.post('/units', { name: '客服部', parent: root.id });
  await tn.api.post('/users', { name: '客服一', email: 'cs-one@example.test', unit: unit.id, roles: [] });
  const title = uniq('季度通知');

  await withPage(t, browser, async (page) => {
    const dialogs = [];
    page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-pushes').click();
    await page.getByTestId('page-pushes').waitFor();
    await page.getByTestId('push-add').click();
    await page.getByTestId('page-push-edit').waitFor();
    await page.getByTestId('push-title').fill(title);
    await page.getByTestId('push-channel').selectOption('email');
    await page.getByTestId('push-account').selectOption(account);
    await page.getByTestId('push-subject').fill('关于季度例会的通知');

    // Rich text with the toolbar…
    const ed = page.getByTestId('rich-editor');
    await ed.click();
    await page.keyboard.type('各位同事：');
    await page.getByTestId('rich-bold').click();
    await page.keyboard.type('请准时参加');
    await page.getByTestId('rich-bold').click();
    assert.match(await ed.innerHTML(), /<(b|strong)>请准时参加<\/(b|strong)>/);
    // …and hostile HTML typed into the source view.
    await page.getByTestId('rich-source').click();
    const src = page.getByTestId('rich-html');
    await src.waitFor({ state: 'visible' });
    await src.fill((await src.inputValue()) + EVIL);

    // Targets: a unit, an .xlsx list (one bad row) and an .xls list.
    await page.getByTestId('push-pick-units').click();
    await page.locator(`[data-testid=units-picker] input[value="${unit.id}"]`).check();
    await page.getByTestId('dialog-submit').click();
    await page.getByTestId('push-target-units').filter({ hasText: '客服部' }).waitFor();
    // The upload shows a progress bar with its percentage (values recorded as they change), then the summary
    // and the row errors as a table (row, column, message).
    await page.evaluate(() => {
      window.__pct = [];
      new MutationObserver(() => {
        const p = document.querySelector('[data-testid=push-upload-percent]');
        if (p && window.__pct[window.__pct.length - 1] !== p.textContent) window.__pct.push(p.textContent);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await page.getByTestId('push-upload').setInputFiles(path.join(FIXTURES, 'list.xlsx'));
    const summary = page.getByTestId('push-upload-summary');
    await summary.waitFor();
    assert.match(await summary.textContent(), /list\.xlsx.*2.*1/, 'two rows parsed, one with an error');
    assert.equal(await page.getByTestId('push-upload-progress').getAttribute('value'), '100');
    assert.equal((await page.getByTestId('push-upload-percent').textContent()).trim(), '100%');
    const seen = await page.evaluate(() => window.__pct);
    assert.ok(seen.length >= 2 && seen[0] === '0%' && seen[seen.length - 1] === '100%', `the percentage went from 0% to 100%: ${seen}`);
    const nums = seen.map((x) => parseInt(x, 10));
    assert.ok(nums.every((n, i) => i === 0 || n >= nums[i - 1]), `never backwards: ${seen}`);
    const errTable = page.getByTestId('push-upload-errors');
    assert.equal(await errTable.locator('tbody tr').count(), 1, 'the bad row is listed');
    const headers = (await errTable.locator('thead th').allTextContents()).map((s) => s.replace(/[▲▼]/g, '').trim());
    assert.deepEqual(headers, ['行', '列', '错误']);
    const errCells = (await errTable.locator('tbody tr td').allTextContents()).map((s) => s.trim());
    assert.match(errCells[0], /^[34]$/, `the bad row's number (3rd data row, 4th sheet row): ${errCells}`);
    assert.ok(errCells[1].length > 0, 'a column (or —)');
    assert.match(errCells[2], /[\u4e00-\u9fff]/, `the row's error in the console's language (Chinese): ${errCells}`);
    assert.match(await page.getByTestId('push-target-list-count').textContent(), /^2\b/);
    await page.getByTestId('push-upload').setInputFiles(path.join(FIXTURES, 'list.xls'));
    await page.getByTestId('push-upload-summary').filter({ hasText: 'list.xls' }).waitFor();
    assert.match(await page.getByTestId('push-upload-summary').textContent(), /list\.xls\b.*2.*0/);
    assert.match(await page.getByTestId('push-target-list-count').textContent(), /^4\b/);
    // The list template of the push's channel downloads.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('push-upload-template').click()]);
    assert.equal(download.suggestedFilename(), 'recipients-email.xlsx');
    // A file that is no spreadsheet: the upload's error in the console's language (Chinese); the list is kept.
    await page.getByTestId('push-upload').setInputFiles({ name: 'broken.xlsx', mimeType: 'application/octet-stream', buffer: Buffer.from('not a spreadsheet') });
    const upErr = page.getByTestId('push-upload-error');
    await upErr.waitFor();
    assert.match(await upErr.textContent(), /文件已损坏，无法作为 \.xlsx 读取/, 'the file-level error in Chinese');
    assert.match(await page.getByTestId('push-target-list-count').textContent(), /^4\b/);

    // Advanced: scheduled in two days.
    const at = localDateTime(2);
    await page.getByTestId('push-mode-at').check();
    await page.getByTestId('push-at').fill(at);
    await page.getByTestId('push-save').click();
    await page.getByTestId('page-pushes').waitFor();
    const row = page.getByTestId('push-row').filter({ hasText: title });
    await row.waitFor();
    const number = await row.getAttribute('data-number');
    const id = await row.getAttribute('data-id');
    assert.match(number, /^P\d{6}$/);

    // View again: the hostile parts are gone, the formatting stays.
    await row.getByTestId('push-title-link').click();
    await page.getByTestId('page-push-edit').waitFor();
    assert.equal((await page.getByTestId('push-number').textContent()).trim(), number);
    assert.equal(await page.getByTestId('push-subject').inputValue(), '关于季度例会的通知');
    const shown = await page.getByTestId('rich-editor').innerHTML();
    assert.match(shown, /请准时参加/);
    await page.getByTestId('rich-source').click();
    const again = await page.getByTestId('rich-html').inputValue();
    for (const bad of ['<script', 'onerror', 'javascript:', 'xss-script', 'xss-img']) {
      assert.ok(!again.toLowerCase().includes(bad), `"${bad}" is gone from the HTML shown: ${again}`);
    }
    const stored = await tn.api.get(`/pushes/${id}`);
    const html = stored.content.html.toLowerCase();
    for (const bad of ['<script', 'onerror', 'javascript:']) assert.ok(!html.includes(bad), `the server stored no "${bad}": ${html}`);
    assert.match(html, /<(b|strong)>请准时参加/);
    assert.equal(dialogs.length, 0, `no script ran: ${dialogs.join(', ')}`);
    // Targets and schedule round-trip.
    await page.getByTestId('push-target-units').filter({ hasText: '客服部' }).waitFor();
    assert.match(await page.getByTestId('push-target-list-count').textContent(), /^4\b/);
    assert.equal(await page.getByTestId('push-at').inputValue(), at);
    assert.equal(stored.schedule.mode, 'at');
    assert.equal(new Date(stored.schedule.at).getTime(), new Date(at).getTime(), 'RFC 3339 time of the local input');
    assert.deepEqual(stored.targets.units, [unit.id]);
    assert.equal(stored.targets.list.length, 4);
    await page.getByTestId('push-back').click();

    // A second push, for the search.
    const other = await tn.api.post('/pushes', { title: uniq('其他公告'), channel: 'email', account, content: { subject: 's', html: '<p>x</p>', text: 'x' },
      targets: { users: [], units: [unit.id], list: [] }, schedule: { mode: 'at', at: new Date(Date.now() + 3 * 86400_000).toISOString() }, enabled: false });
    const f = async (num, ttl, status = '') => {
      await page.getByTestId('push-filter-number').fill(num);
      await page.getByTestId('push-filter-title').fill(ttl);
      await page.getByTestId('push-filter-status').selectOption(status);
      await page.getByTestId('push-search').click();
      await page.getByTestId('pushes-table').waitFor();
    };
    await f(number, '季度通知');
    await page.locator(`[data-testid=push-row][data-number="${other.number}"]`).waitFor({ state: 'detached' });
    assert.equal(await page.getByTestId('push-row').count(), 1);
    await f(number, '其他公告');
    await page.getByTestId('pushes-empty').waitFor();
    await f(other.number, '其他公告');
    await page.locator(`[data-testid=push-row][data-number="${other.number}"]`).waitFor();
    assert.equal(await page.getByTestId('push-row').count(), 1);
    await f('', '', 'sent');
    await page.locator(`[data-testid=push-row][data-number="${number}"]`).waitFor({ state: 'detached' });
    await page.getByTestId('push-reset').click();
    await page.locator(`[data-testid=push-row][data-number="${number}"]`).waitFor();

    // Copy: a new draft with a new number.
    const mine = page.locator(`[data-testid=push-row][data-number="${number}"]`);
    await mine.getByTestId('push-copy').click();
    await page.getByTestId('push-row').filter({ hasText: title }).nth(1).waitFor();
    const numbers = await page.getByTestId('push-row').filter({ hasText: title }).evaluateAll((rs) => rs.map((r) => r.dataset.number));
    assert.equal(new Set(numbers).size, 2, 'the copy has its own number');

    // Delete while enabled → refused; disable, then delete.
    await clickAndConfirm(page, mine.getByTestId('push-delete'));
    assert.ok((await errorToast(page)).length > 0, 'the 409 message is shown');
    await mine.waitFor();
    await mine.getByTestId('push-toggle').click();
    await mine.getByTestId('push-disabled').or(mine.locator('[data-status=disabled]')).first().waitFor();
    assert.equal((await tn.api.get(`/pushes?number=${number}`)).items[0].enabled, false);
    await clickAndConfirm(page, mine.getByTestId('push-delete'));
    await mine.waitFor({ state: 'detached' });
    void ADMIN;
  });
});

test('push editor: SMS-like channels get a plain textarea; validation errors name their field', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('pse');
  const types = items(await tn.api.get('/account-types'));
  const plain = types.find((x) => x.channel !== 'email');
  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.goto(`${ADMIN}/#/pushes/new`);
    await page.getByTestId('page-push-edit').waitFor();
    await page.getByTestId('push-channel').selectOption(plain.channel);
    await page.getByTestId('push-text').waitFor();
    assert.equal(await page.getByTestId('rich-editor').count(), 0, 'no rich editor');
    await page.getByTestId('push-channel').selectOption('email');
    await page.getByTestId('rich-editor').waitFor();
    // Nothing filled in: the API refuses and the form shows why.
    await page.getByTestId('push-save').click();
    await page.getByTestId('form-error').waitFor({ state: 'visible' });
    assert.ok((await page.getByTestId('form-error').textContent()).trim().length > 0);
    await page.locator('[data-testid=push-title].invalid').waitFor();
    // With a title, the next complaint is about the account.
    await page.getByTestId('push-title').fill('没有账户');
    await page.getByTestId('push-save').click();
    await page.locator('[data-testid=push-account].invalid').waitFor();
    assert.equal(await page.locator('[data-testid=push-title].invalid').count(), 0, 'the old highlight is cleared');
  });
});

test('template-based SMS: the push picks the provider template, fills its parameters and shows what is sent', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('ppt');
  await tn.api.post('/accounts', { name: '阿里云短信', channel: 'aliyun-sms',
    config: { access_key_id: 'LTAI5tConsoleTest', access_key_secret: 'console-secret-1', sign_name: 'Herald', template_code: 'SMS_100', template_params: ['code'] } });
  // A stored push with its own template opens with it.
  const stored = await tn.api.post('/pushes', { title: uniq('验证码'), channel: 'aliyun-sms', account: '阿里云短信', enabled: false,
    content: { text: '您的验证码是 {{ code }}' }, provider_template: { code: 'SMS_300', params: [{ name: 'code', value: '{{ code }}' }] },
    targets: { list: [{ to: '13800138000', name: '张三' }] } });
  assert.equal(stored.provider_template.code, 'SMS_300');
  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.goto(`${ADMIN}/#/pushes/new`);
    await page.getByTestId('page-push-edit').waitFor();
    await page.getByTestId('push-channel').selectOption('email');
    assert.ok(await page.getByTestId('push-provider-wrap').isHidden(), 'e-mail sends its text: no provider template');
    await page.getByTestId('push-channel').selectOption('aliyun-sms');
    await page.getByTestId('push-account').selectOption('阿里云短信');
    await page.getByTestId('push-pt-note').waitFor();
    assert.match(await page.getByTestId('push-pt-note').textContent(), /不会发送/);
    assert.match(await page.getByTestId('push-pt-code').getAttribute('placeholder'), /SMS_100/);
    // The account's parameter names come filled from the recipient's variables.
    assert.equal(await page.getByTestId('push-pt-param-name').inputValue(), 'code');
    assert.equal(await page.getByTestId('push-pt-sent').textContent(), '实际发送：模板 SMS_100，参数 {"code":"{{ code }}"}');
    await page.getByTestId('push-pt-code').fill('SMS_200');
    await page.getByTestId('push-pt-param-name').fill('text');
    await page.getByTestId('push-pt-param-value').fill('{{ name }}您好，今晚维护');
    await page.getByTestId('push-pt-add').click();
    await page.getByTestId('push-pt-param-name').nth(1).fill('site');
    await page.getByTestId('push-pt-param-value').nth(1).fill('杭州');
    assert.equal(await page.getByTestId('push-pt-sent').textContent(), '实际发送：模板 SMS_200，参数 {"text":"{{ name }}您好，今晚维护","site":"杭州"}');
    await page.getByTestId('push-pt-param-remove').nth(1).click();
    // What the form sends is what it showed.
    await page.getByTestId('push-title').fill('维护通知');
    await page.getByTestId('push-text').fill('{{ name }}您好，今晚维护');
    const sent = page.waitForRequest((r) => r.url().endsWith('/api/v1/pushes') && r.method() === 'POST');
    await page.getByTestId('push-save').click();
    const body = JSON.parse((await sent).postData());
    assert.deepEqual(body.provider_template, { code: 'SMS_200', params: [{ name: 'text', value: '{{ name }}您好，今晚维护' }] });
    // A stored push shows its own template.
    await page.goto(`${ADMIN}/#/pushes/${stored.id}`);
    await page.getByTestId('push-pt-sent').waitFor();
    assert.equal(await page.getByTestId('push-pt-code').inputValue(), 'SMS_300');
    assert.equal(await page.getByTestId('push-pt-sent').textContent(), '实际发送：模板 SMS_300，参数 {"code":"{{ code }}"}');
  });
});

test('recurring push with the cron builder (Unix weekdays, next runs shown); an immediate send asks first and can be cancelled', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('pcr');
  const account = await emailAccount(tn.api);
  const root = items(await tn.api.get('/units'))[0];
  const unit = await tn.api.post('/units', { name: '值班组', parent: root.id });
  for (const n of [1, 2, 3]) await tn.api.post('/users', { name: `值班${n}`, email: `duty-${n}@example.test`, unit: unit.id, roles: [] });
  await tn.api.post('/users', { name: '无邮箱', mobile: '13800138000', unit: unit.id, roles: [] });
  const title = uniq('工作日提醒');
  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.goto(`${ADMIN}/#/pushes/new`);
    await page.getByTestId('page-push-edit').waitFor();
    await page.getByTestId('push-title').fill(title);
    await page.getByTestId('push-channel').selectOption('email');
    await page.getByTestId('push-account').selectOption(account);
    await page.getByTestId('push-subject').fill('站会提醒');
    await page.getByTestId('rich-editor').click();
    await page.keyboard.type('九点站会。');
    await page.getByTestId('push-pick-units').click();
    await page.locator(`[data-testid=units-picker] input[value="${unit.id}"]`).check();
    await page.getByTestId('dialog-submit').click();

    // Send now: the confirmation names the recipients (and the user without an address); cancel keeps the form.
    await page.getByTestId('push-mode-now').check();
    await page.getByTestId('push-save').click();
    const confirm = page.getByTestId('confirm-dialog');
    await confirm.waitFor();
    const text = await confirm.textContent();
    assert.match(text, /3 位收件人/, text);
    assert.match(text, /1 位用户/, text);
    await page.getByTestId('confirm-cancel').click();
    await confirm.waitFor({ state: 'detached' });
    await page.getByTestId('page-push-edit').waitFor();
    assert.equal(items(await tn.api.get('/pushes')).filter((p) => p.title === title).length, 0, 'nothing was sent');

    // Recurring: the weekday preset; the next five runs are Monday to Friday at 09:00 in Shanghai.
    await page.getByTestId('push-mode-cron').check();
    await page.getByTestId('push-cron-preset').selectOption('0 9 * * 1-5');
    await page.getByTestId('push-next-run').nth(4).waitFor();
    const runs = (await page.getByTestId('push-next-run').evaluateAll((els) => els.map((e) => Number(e.dataset.ms))));
    assert.equal(runs.length, 5);
    for (const ms of runs) {
      const shanghai = new Date(ms + 8 * 3600_000);
      assert.ok(shanghai.getUTCDay() >= 1 && shanghai.getUTCDay() <= 5, `a weekday: ${shanghai.toISOString()}`);
      assert.equal(shanghai.getUTCHours(), 9);
    }
    // A broken expression says why.
    await page.getByTestId('push-cron').fill('0 9 * *');
    await page.getByTestId('push-cron-error').filter({ hasText: /5/ }).waitFor();
    assert.equal(await page.getByTestId('push-next-run').count(), 0);
    await page.getByTestId('push-cron-preset').selectOption('0 9 * * 1-5');
    await page.getByTestId('push-save').click();
    await page.getByTestId('page-pushes').waitFor();
    const saved = items(await tn.api.get('/pushes')).find((p) => p.title === title);
    assert.equal(saved.status, 'recurring');
    assert.deepEqual(saved.schedule, { mode: 'cron', at: null, cron: '0 9 * * 1-5', time_zone: 'Asia/Shanghai' });
    assert.equal(saved.next_runs.length, 5);
  });
});

test('a sent push is edited and sent again; each send keeps its own deliveries', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('pra');
  const account = await emailAccount(tn.api);
  const title = uniq('再次发送');
  const sent = await tn.api.post('/pushes', { title, channel: 'email', account, content: { subject: '通知', html: '<p>第一次</p>', text: '第一次' },
    targets: { list: [{ to: 'again@example.test' }] } });
  assert.equal(sent.status, 'sent');
  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.goto(`${ADMIN}/#/pushes/${encodeURIComponent(sent.id)}`);
    await page.getByTestId('push-sent-note').waitFor();
    // Editable: saving a sent push sends nothing and asks nothing.
    await page.getByTestId('push-title').fill(`${title} v2`);
    await page.getByTestId('push-save').click();
    await page.getByTestId('page-pushes').waitFor();
    assert.equal(await page.getByTestId('confirm-dialog').count(), 0);
    assert.equal((await tn.api.get(`/pushes/${sent.id}`)).sends.length, 1);
    // Send again: confirmed with the count, then its deliveries with a picker of the sends.
    await page.goto(`${ADMIN}/#/pushes/${encodeURIComponent(sent.id)}`);
    await page.getByTestId('push-send-again').click();
    const confirm = page.getByTestId('confirm-dialog');
    await confirm.waitFor();
    assert.match(await confirm.textContent(), /1 位收件人/);
    await page.getByTestId('confirm-ok').click();
    await page.getByTestId('page-deliveries').waitFor();
    const picker = page.getByTestId('deliveries-send');
    await picker.waitFor();
    assert.equal(await picker.locator('option').count(), 2);
    const after = await tn.api.get(`/pushes/${sent.id}`);
    assert.equal(after.sends.length, 2);
    assert.equal(after.title, `${title} v2`);
  });
});
