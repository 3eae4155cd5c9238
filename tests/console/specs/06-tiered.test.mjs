// Tiered push: text and rich-text templates; an action with two rule cards
// (channels + accounts, recipients, escalation, acknowledgement scope); delete
// refusals (template linked to an action; action enabled); copy, disable,
// delete. An incident triggered through the gateway API shows in the incidents
// list with its timeline and in the reports; quiet hours save, reload and
// show a bad time on its field.
import { test, before, after } from 'node:test';
import { ADMIN, GATEWAY, assert, launch, uniq, withPage, uiLogin, freshTenant, clickAndConfirm, errorToast, items, emailAccount, eventually, smtpMessages } from '../lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('templates and an action with two rule cards; refusals; copy, disable, delete', { timeout: 120_000 }, async (t) => {
  const tn = await freshTenant('tie');
  const account = await emailAccount(tn.api);
  const root = items(await tn.api.get('/units'))[0];
  const unit = await tn.api.post('/units', { name: '应急小组', parent: root.id });
  const boss = await tn.api.post('/users', { name: '值班经理', login: uniq('boss'), password: 'User-password-1', email: 'boss@example.test', unit: unit.id, roles: [] });
  const tText = uniq('磁盘告警');
  const tRich = uniq('故障通报');
  const aTitle = uniq('生产故障');

  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-tiered').click();
    await page.getByTestId('page-templates').waitFor();

    // A text template.
    await page.getByTestId('tpl-add').click();
    await page.getByTestId('tpl-editor').selectOption('text');
    assert.equal(await page.getByTestId('tpl-subject-wrap').isVisible(), false, 'no subject for text');
    await page.getByTestId('tpl-title').fill(tText);
    await page.getByTestId('tpl-text').fill('{{host}} 磁盘使用率 {{usage}}，请处理。');
    await page.getByTestId('tpl-variables').fill('host, usage');
    // Template-based SMS sends the provider's approved template: its code and parameters, per channel.
    await page.getByTestId('tpl-pt-aliyun-sms-code').fill('SMS_500');
    await page.getByTestId('tpl-pt-aliyun-sms-add').click();
    await page.getByTestId('tpl-pt-aliyun-sms-param-name').fill('host');
    await page.getByTestId('tpl-pt-aliyun-sms-param-value').fill('{{host}}');
    assert.equal(await page.getByTestId('tpl-pt-aliyun-sms-sent').textContent(), '实际发送：模板 SMS_500，参数 {"host":"{{host}}"}');
    await page.getByTestId('tpl-save').click();
    const rowText = page.locator(`[data-testid=tpl-row][data-title="${tText}"]`);
    await rowText.waitFor();
    const savedText = items(await tn.api.get('/tiered/templates')).find((x) => x.title === tText);
    assert.deepEqual(savedText.provider, { 'aliyun-sms': { code: 'SMS_500', params: [{ name: 'host', value: '{{host}}' }] } });
    assert.match(await rowText.getAttribute('data-number'), /^T\d{6}$/);

    // A rich-text template with a subject.
    await page.getByTestId('tpl-add').click();
    await page.getByTestId('tpl-editor').selectOption('rich_text');
    await page.getByTestId('tpl-subject').waitFor();
    await page.getByTestId('tpl-title').fill(tRich);
    await page.getByTestId('tpl-subject').fill('【故障】{{system}}');
    await page.getByTestId('tpl-rich-editor').click();
    await page.getByTestId('tpl-rich-bold').click();
    await page.keyboard.type('系统故障');
    await page.getByTestId('tpl-variables').fill('system');
    await page.getByTestId('tpl-save').click();
    const rowRich = page.locator(`[data-testid=tpl-row][data-title="${tRich}"]`);
    await rowRich.waitFor();

    // View/edit it again.
    await rowRich.getByTestId('tpl-title-link').click();
    await page.getByTestId('page-template-edit').waitFor();
    assert.equal(await page.getByTestId('tpl-editor').inputValue(), 'rich_text');
    assert.equal(await page.getByTestId('tpl-subject').inputValue(), '【故障】{{system}}');
    assert.match(await page.getByTestId('tpl-rich-editor').innerHTML(), /<(b|strong)>系统故障<\/(b|strong)>/);
    assert.equal(await page.getByTestId('tpl-variables').inputValue(), 'system');
    await page.getByTestId('tpl-back').click();

    // Search by title.
    await page.getByTestId('tpl-filter-title').fill(tText);
    await page.getByTestId('tpl-search').click();
    await rowRich.waitFor({ state: 'detached' });
    await rowText.waitFor();
    await page.getByTestId('tpl-filter-title').fill('');
    await page.getByTestId('tpl-search').click();
    await rowRich.waitFor();

    // The action: both templates, two rule cards.
    await page.getByTestId('tab-actions').click();
    await page.getByTestId('page-actions').waitFor();
    await page.getByTestId('action-add').click();
    await page.getByTestId('page-action-edit').waitFor();
    await page.getByTestId('action-title').fill(aTitle);
    const cards = page.getByTestId('rule-card');
    // Templates are chosen in the picker dialog: search by number or title, with a preview.
    const picker = page.getByTestId('tpl-picker');
    const pickerRow = (title) => picker.locator(`[data-testid=tpl-picker-list] input[data-title="${title}"]`);
    await page.getByTestId('action-pick-templates').click();
    await picker.waitFor();
    assert.match(await picker.locator('.modal-head').textContent(), /选择模板/);
    await pickerRow(tRich).waitFor();
    await page.getByTestId('tpl-picker-title').fill(tText);
    await page.getByTestId('tpl-picker-go').click();
    await pickerRow(tRich).waitFor({ state: 'detached' });
    await pickerRow(tText).check();
    const preview = page.getByTestId('tpl-picker-preview');
    await preview.filter({ hasText: '磁盘使用率' }).waitFor();
    assert.match(await preview.textContent(), /host, usage/, 'the preview lists the variables');
    assert.match(await page.getByTestId('tpl-picker-count').textContent(), /已选 1 个/);
    await page.getByTestId('dialog-submit').click();
    await picker.waitFor({ state: 'detached' });
    const chip = (title) => page.locator(`[data-testid=action-template][data-title="${title}"]`);
    await chip(tText).waitFor();
    // With only the text template, e-mail does not fit (text → SMS/IM/voice); with the rich one it does.
    const emailOpt = cards.nth(0).locator('[data-testid=rule-channel] option[value=email]');
    assert.equal(await emailOpt.isDisabled(), true, 'e-mail is greyed out for a text template');
    // Search by number this time; the rich template's preview shows its subject and sanitized body.
    await page.getByTestId('action-pick-templates').click();
    await picker.waitFor();
    assert.equal(await pickerRow(tText).isChecked(), true, 'the chosen one is ticked');
    const rNumber = await pickerRow(tRich).getAttribute('data-number');
    await page.getByTestId('tpl-picker-number').fill(rNumber);
    await page.getByTestId('tpl-picker-number').press('Enter');
    await pickerRow(tText).waitFor({ state: 'detached' });
    await pickerRow(tRich).hover();
    await page.getByTestId('tpl-preview-subject').filter({ hasText: '【故障】{{system}}' }).waitFor();
    assert.match(await page.getByTestId('tpl-preview-body').innerHTML(), /<(b|strong)>系统故障<\/(b|strong)>/);
    await pickerRow(tRich).check();
    await page.getByTestId('dialog-submit').click();
    await chip(tRich).waitFor();
    assert.equal(await chip(tText).count(), 1, 'both chosen');
    assert.equal(await emailOpt.isDisabled(), false, 'e-mail fits the rich-text template');
    assert.equal(await cards.count(), 1, 'one card to start with');
    const c1 = cards.nth(0);
    await c1.getByTestId('rule-level').selectOption('urgent');
    await c1.getByTestId('rule-channel').selectOption('email');
    await c1.getByTestId('rule-account').selectOption(account);
    await c1.getByTestId('rule0-pick-units').click();
    await page.locator(`[data-testid=units-picker] input[value="${unit.id}"]`).check();
    await page.getByTestId('dialog-submit').click();
    await c1.getByTestId('rule0-target-units').filter({ hasText: '应急小组' }).waitFor();
    await c1.getByTestId('rule-escalate').check();
    await c1.getByTestId('rule-after').fill('5');
    await c1.getByTestId('rule-after-unit').selectOption('m');
    await c1.getByTestId('rule-condition').selectOption('not_acknowledged');

    await page.getByTestId('rule-add').click();
    assert.equal(await cards.count(), 2);
    const c2 = cards.nth(1);
    await c2.getByTestId('rule-level').selectOption('info');
    await c2.getByTestId('rule-channel').selectOption('email');
    await c2.getByTestId('rule-account').selectOption(account);
    await c2.getByTestId('rule1-pick-users').click();
    await page.getByTestId('user-picker-search').fill('值班经理');
    await page.getByTestId('user-picker-go').click();
    await page.locator(`[data-testid=user-picker-list] input[value="${boss.id}"]`).check();
    await page.getByTestId('dialog-submit').click();
    await c2.getByTestId('rule1-target-users').filter({ hasText: '值班经理' }).waitFor();
    assert.equal(await page.getByTestId('action-ack-scope').inputValue(), 'incident', 'the whole incident by default');
    await page.getByTestId('action-ack-scope').selectOption('recipient');
    // A third card, removed again.
    await page.getByTestId('rule-add').click();
    assert.equal(await cards.count(), 3);
    await cards.nth(2).getByTestId('rule-remove').click();
    assert.equal(await cards.count(), 2);
    await page.getByTestId('action-save').click();
    await page.getByTestId('page-actions').waitFor();
    const aRow = page.locator(`[data-testid=action-row][data-title="${aTitle}"]`);
    await aRow.waitFor();
    const aNumber = await aRow.getAttribute('data-number');
    const byNumber = page.locator(`[data-testid=action-row][data-number="${aNumber}"]`);
    assert.match(aNumber, /^A\d{6}$/);
    assert.equal(await byNumber.getAttribute('data-enabled'), 'true', 'enabled on creation');

    const saved = items(await tn.api.get(`/tiered/actions?number=${aNumber}`))[0];
    assert.equal(saved.templates.length, 2);
    assert.equal(saved.rules.length, 2);
    assert.equal(saved.rules[0].level, 'urgent');
    assert.deepEqual(saved.rules[0].channels, [{ channel: 'email', account }]);
    assert.deepEqual(saved.rules[0].recipients.units, [unit.id]);
    assert.deepEqual(saved.rules[0].escalate, { after_secs: 300, condition: 'not_acknowledged' });
    assert.equal(saved.rules[1].level, 'info');
    assert.deepEqual(saved.rules[1].recipients.users, [boss.id]);
    assert.equal(saved.rules[1].escalate, null);
    assert.equal(saved.ack_scope, 'recipient');

    // View again: two cards, the escalation in minutes.
    await byNumber.getByTestId('action-title-link').click();
    await page.getByTestId('page-action-edit').waitFor();
    assert.equal(await cards.count(), 2);
    assert.equal(await cards.nth(0).getByTestId('rule-after').inputValue(), '5');
    assert.equal(await cards.nth(0).getByTestId('rule-after-unit').inputValue(), 'm');
    assert.equal(await cards.nth(0).getByTestId('rule-escalate').isChecked(), true);
    assert.equal(await cards.nth(1).getByTestId('rule-escalate').isChecked(), false);
    assert.equal(await page.getByTestId('action-ack-scope').inputValue(), 'recipient');
    // Back to the whole incident, saved.
    await page.getByTestId('action-ack-scope').selectOption('incident');
    await page.getByTestId('action-save').click();
    await page.getByTestId('page-actions').waitFor();
    await eventually(async () => items(await tn.api.get(`/tiered/actions?number=${aNumber}`))[0].ack_scope === 'incident', 5000, 'ack_scope saved');

    // Incidents: none yet; then one triggered through the gateway API (urgent → rule 1: e-mail to 应急小组).
    await page.getByTestId('tab-incidents').click();
    await page.getByTestId('page-incidents').waitFor();
    await page.getByTestId('incident-empty').waitFor();
    const key = (await tn.api.post('/api-keys')).api_key;
    assert.ok(key, 'the messaging app gives an API key');
    assert.ok(GATEWAY, 'run.sh gives the gateway URL');
    const trig = await fetch(`${GATEWAY}/v1/actions/${saved.id}/trigger`, {
      method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ level: 'urgent', variables: { system: '支付', host: 'db1', usage: '95%' }, recipients: {} }),
    });
    const trigBody = await trig.text();
    assert.ok(trig.status < 300, `trigger → ${trig.status} ${trigBody}`);
    await eventually(() => smtpMessages().some((m) => m.rcpt_tos.includes('boss@example.test') && /支付/.test(m.headers.Subject || '')), 30_000, 'the urgent e-mail to the manager');
    const incRow = page.locator(`[data-testid=incident-row][data-action="${saved.id}"]`);
    await eventually(async () => { await page.getByTestId('incident-refresh').click(); return (await incRow.count()) === 1; }, 15_000, 'the incident in the list');
    assert.equal(await incRow.getAttribute('data-state'), 'open');
    assert.equal(await incRow.getAttribute('data-level'), 'urgent');
    assert.match(await incRow.textContent(), new RegExp(aNumber));
    assert.match(await incRow.getByTestId('incident-state').textContent(), /处理中/);
    // The status filter.
    await page.getByTestId('incident-filter-status').selectOption('acknowledged');
    await incRow.waitFor({ state: 'detached' });
    await page.getByTestId('incident-filter-status').selectOption('open');
    await incRow.waitFor();
    // The incident view: its timeline (triggered, then the e-mail step fired).
    await incRow.getByTestId('incident-view').click();
    await page.getByTestId('page-incident').waitFor();
    await eventually(async () => {
      await page.getByTestId('incident-detail-refresh').click();
      return (await page.locator('[data-testid=timeline-row][data-kind=fired]').count()) >= 1;
    }, 15_000, 'the fired step in the timeline');
    await page.locator('[data-testid=timeline-row][data-kind=triggered]').waitFor();
    const fired = page.locator('[data-testid=timeline-row][data-kind=fired]').first();
    assert.match(await fired.textContent(), /boss@example\.test|邮件/);
    await page.getByTestId('incident-back').click();
    await page.getByTestId('page-incidents').waitFor();
    await page.getByTestId('incident-filter-status').selectOption('');

    // Reports: a per-action row with the incident.
    await page.getByTestId('nav-reports').click();
    const repRow = page.locator(`[data-testid=report-action-row][data-id="${saved.id}"]`);
    await repRow.waitFor();
    assert.equal(await repRow.getAttribute('data-number'), aNumber);
    assert.equal((await repRow.locator('[data-col=incidents]').textContent()).trim(), '1');

    // Quiet hours: unset; saved; reloaded; a bad time named on its field.
    await page.goto(`${ADMIN}/#/tiered/quiet-hours`);
    await page.getByTestId('page-quiet-hours').waitFor();
    assert.equal(await page.getByTestId('quiet-state').getAttribute('data-set'), 'false', 'no quiet hours yet');
    assert.equal(await tn.api.get('/tiered/quiet-hours'), null);
    await page.getByTestId('quiet-start').fill('23:00');
    await page.getByTestId('quiet-end').fill('07:30');
    await page.getByTestId('quiet-zone').fill('Asia/Shanghai');
    await page.getByTestId('quiet-exempt-urgent').check();
    await page.getByTestId('quiet-exempt-normal').check();
    await page.getByTestId('quiet-exempt-info').uncheck();
    await page.getByTestId('quiet-save').click();
    await page.locator('[data-testid=quiet-state][data-set=true]').waitFor();
    assert.deepEqual(await tn.api.get('/tiered/quiet-hours'), { start: '23:00', end: '07:30', time_zone: 'Asia/Shanghai', levels_exempt: ['urgent', 'normal'] });
    await page.reload();
    await page.locator('[data-testid=quiet-state][data-set=true]').waitFor();
    assert.equal(await page.getByTestId('quiet-start').inputValue(), '23:00');
    assert.equal(await page.getByTestId('quiet-end').inputValue(), '07:30');
    assert.equal(await page.getByTestId('quiet-zone').inputValue(), 'Asia/Shanghai');
    assert.equal(await page.getByTestId('quiet-exempt-urgent').isChecked(), true);
    assert.equal(await page.getByTestId('quiet-exempt-normal').isChecked(), true);
    assert.equal(await page.getByTestId('quiet-exempt-info').isChecked(), false);
    await page.getByTestId('quiet-start').fill('25:00');
    await page.getByTestId('quiet-save').click();
    const qErr = page.getByTestId('quiet-form').getByTestId('form-error');
    await qErr.waitFor({ state: 'visible' });
    assert.match(await qErr.textContent(), /start/);
    assert.equal(await page.getByTestId('quiet-start').evaluate((el) => el.classList.contains('invalid')), true, 'the start field is marked');
    assert.equal(await page.getByTestId('quiet-end').evaluate((el) => el.classList.contains('invalid')), false);
    assert.equal((await tn.api.get('/tiered/quiet-hours')).start, '23:00', 'nothing saved');
    // A bad zone, then fixed.
    await page.getByTestId('quiet-start').fill('22:15');
    await page.getByTestId('quiet-zone').fill('Mars/Olympus');
    await page.getByTestId('quiet-save').click();
    await qErr.filter({ hasText: 'time_zone' }).waitFor();
    assert.equal(await page.getByTestId('quiet-zone').evaluate((el) => el.classList.contains('invalid')), true, 'the zone field is marked');
    await page.getByTestId('quiet-zone').fill('Europe/Berlin');
    await page.getByTestId('quiet-save').click();
    await qErr.waitFor({ state: 'hidden' });
    await eventually(async () => (await tn.api.get('/tiered/quiet-hours'))?.time_zone === 'Europe/Berlin', 5000, 'the fixed quiet hours saved');
    assert.equal((await tn.api.get('/tiered/quiet-hours')).start, '22:15');

    await page.getByTestId('tab-actions').click();
    await page.getByTestId('page-actions').waitFor();

    // Search by number + title + status.
    await page.getByTestId('action-filter-number').fill(aNumber);
    await page.getByTestId('action-filter-title').fill(aTitle.slice(0, 4));
    await page.getByTestId('action-filter-status').selectOption('disabled');
    await page.getByTestId('action-search').click();
    await byNumber.waitFor({ state: 'detached' });
    await page.getByTestId('action-filter-status').selectOption('enabled');
    await page.getByTestId('action-search').click();
    await byNumber.waitFor();
    await page.getByTestId('action-filter-number').fill('');
    await page.getByTestId('action-filter-title').fill('');
    await page.getByTestId('action-filter-status').selectOption('');
    await page.getByTestId('action-search').click();

    // Refusals: an enabled action; a template linked to an action.
    await clickAndConfirm(page, byNumber.getByTestId('action-delete'));
    assert.ok((await errorToast(page)).length > 0, 'the refusal for an enabled action is shown');
    await byNumber.waitFor();
    await page.getByTestId('tab-templates').click();
    await clickAndConfirm(page, rowText.getByTestId('tpl-delete'));
    assert.ok((await errorToast(page)).length > 0, 'the refusal for a linked template is shown');
    await rowText.waitFor();

    // Copy, disable, delete.
    await page.getByTestId('tab-actions').click();
    await byNumber.getByTestId('action-copy').click();
    await page.getByTestId('action-row').filter({ hasText: aTitle }).nth(1).waitFor();
    await byNumber.getByTestId('action-toggle').click();
    await page.locator(`[data-testid=action-row][data-number="${aNumber}"][data-enabled=false]`).waitFor();
    await clickAndConfirm(page, page.locator(`[data-testid=action-row][data-number="${aNumber}"] [data-testid=action-delete]`));
    await page.locator(`[data-testid=action-row][data-number="${aNumber}"]`).waitFor({ state: 'detached' });
  });
});
