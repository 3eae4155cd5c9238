// Sender accounts: an email account verified against the real SMTP sink (wrong
// password refused with the server's reply), a plugin account from its JSON
// Schema with a secret field, search by sender address, delete and in_use.
import { test, before, after } from 'node:test';
import { assert, launch, uniq, withPage, uiLogin, freshTenant, clickAndConfirm, errorToast, items, SMTP } from '../lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function fillEmail(page, { name, password }) {
  await page.getByTestId('account-add').click();
  await page.getByTestId('acc-name').fill(name);
  await page.getByTestId('acc-type').selectOption('email');
  await page.getByTestId('acc-from').fill(SMTP.user);
  await page.getByTestId('acc-from-name').fill('通知中心');
  await page.getByTestId('acc-host').fill('127.0.0.1');
  await page.getByTestId('acc-port').fill(String(SMTP.port));
  await page.getByTestId('acc-tls').selectOption('none');
  await page.getByTestId('acc-plaintext').check();
  await page.getByTestId('acc-password').fill(password);
}

test('email account: wrong SMTP password refused with the reply, right one verified; search; delete', { timeout: 60_000 }, async (t) => {
  assert.ok(SMTP.port, 'the SMTP sink runs');
  const tn = await freshTenant('acc');
  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-accounts').click();
    await page.getByTestId('page-accounts').waitFor();
    const name = uniq('mail');
    await fillEmail(page, { name, password: 'definitely-wrong' });
    await page.getByTestId('dialog-submit').click();
    const err = page.locator('[data-testid=account-dialog] [data-testid=form-error]');
    await err.waitFor({ state: 'visible' });
    const text = await err.textContent();
    assert.match(text, /535|auth|认证|credential/i, `the SMTP reply is shown: ${text}`);
    assert.equal(items(await tn.api.get('/accounts')).length, 0, 'nothing saved');

    await page.getByTestId('acc-password').fill(SMTP.password);
    await page.getByTestId('dialog-submit').click();
    await page.getByTestId('account-dialog').waitFor({ state: 'detached' });
    const row = page.locator(`[data-testid=account-row][data-name="${name}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), new RegExp(SMTP.user.replace('.', '\\.')));
    const saved = items(await tn.api.get('/accounts')).find((a) => a.name === name);
    assert.equal(saved.channel, 'email');
    assert.ok(!JSON.stringify(saved).includes(SMTP.password), 'the password is never returned');

    // Edit without a password keeps the stored one (verification passes again).
    await row.getByTestId('account-edit').click();
    assert.equal(await page.getByTestId('acc-password').inputValue(), '');
    assert.ok((await page.getByTestId('acc-password').getAttribute('placeholder')).length > 0, 'says a password is set');
    await page.getByTestId('acc-from-name').fill('通知中心二');
    await page.getByTestId('dialog-submit').click();
    await page.getByTestId('account-dialog').waitFor({ state: 'detached' });

    // Search by sender address.
    await page.getByTestId('account-search').fill(SMTP.user.split('@')[0]);
    await page.getByTestId('account-search-go').click();
    await row.waitFor();
    await page.getByTestId('account-search').fill('no-such-sender@nowhere.test');
    await page.getByTestId('account-search-go').click();
    await page.getByTestId('accounts-empty').waitFor();
    await page.getByTestId('account-search').fill('');
    await page.getByTestId('account-search-go').click();

    // In use by a push → 409 shown; the account stays.
    const root = items(await tn.api.get('/units'))[0];
    const push = await tn.api.post('/pushes', { title: 'uses the account', channel: 'email', account: name, content: { subject: 's', text: 't', html: '<p>t</p>' },
      targets: { users: [], units: [root.id], list: [] }, schedule: { mode: 'at', at: new Date(Date.now() + 86400_000).toISOString() }, enabled: false });
    await clickAndConfirm(page, row.getByTestId('account-delete'));
    assert.ok((await errorToast(page)).length > 0);
    await row.waitFor();
    await tn.api.ok('DELETE', `/pushes/${push.id}`);
    await clickAndConfirm(page, row.getByTestId('account-delete'));
    await row.waitFor({ state: 'detached' });
  });
});

test('plugin account form rendered from account_schema, secret fields as password inputs', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('sch');
  const types = items(await tn.api.get('/account-types'));
  const webhook = types.find((x) => x.channel === 'webhook');
  assert.ok(webhook, 'the webhook plugin is installed');
  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-accounts').click();
    await page.getByTestId('account-add').click();
    // Every plugin is offered.
    const offered = await page.getByTestId('acc-type').locator('option').evaluateAll((os) => os.map((o) => o.value));
    assert.deepEqual([...offered].sort(), types.map((x) => x.channel).sort());
    await page.getByTestId('acc-type').selectOption('webhook');
    const url = page.getByTestId('acc-field-url');
    await url.waitFor();
    // The fields in the plugin's order (the API passes its schema through unsorted).
    const props = webhook.account_schema.properties;
    assert.deepEqual(Object.keys(props).slice(0, 3), ['url', 'secret', 'batch'], 'the API keeps the plugin\'s order');
    const shown = await page.locator('[data-testid=acc-config] [data-kind]').evaluateAll((els) => els.map((e) => e.name.split('.')[0]));
    const basic = Object.keys(props).filter((k) => !props[k]['x-herald-advanced']);
    assert.deepEqual([...new Set(shown)].filter((k) => basic.includes(k)), basic, `the form follows the schema's order: ${shown}`);
    assert.equal(await page.getByTestId('acc-field-secret').getAttribute('type'), 'password', 'the secret is a password input');
    assert.equal(await page.getByTestId('acc-field-batch').getAttribute('type'), 'checkbox', 'booleans are checkboxes');
    // Schema validation by the plugin: a bad URL is refused with its field.
    const name = uniq('hook');
    await page.getByTestId('acc-name').fill(name);
    await url.fill('ftp://nope');
    await page.getByTestId('acc-field-secret').fill('hook-secret-1');
    await page.getByTestId('dialog-submit').click();
    await page.locator('[data-testid=account-dialog] [data-testid=form-error]').waitFor({ state: 'visible' });
    await url.fill('http://127.0.0.1:9/hook');
    await page.getByTestId('dialog-submit').click();
    await page.getByTestId('account-dialog').waitFor({ state: 'detached' });
    await page.locator(`[data-testid=account-row][data-name="${name}"]`).waitFor();
    const acc = items(await tn.api.get('/accounts')).find((a) => a.name === name);
    assert.equal(acc.config.url, 'http://127.0.0.1:9/hook');
    assert.equal(acc.config.secret, undefined, 'the secret is not returned');

    // Other types render too, e.g. an SMS plugin with enum/required fields.
    await page.getByTestId('account-add').click();
    for (const tp of types.filter((x) => x.channel !== 'email')) {
      await page.getByTestId('acc-type').selectOption(tp.channel);
      const n = await page.locator('[data-testid=acc-config] [data-kind]').count();
      assert.ok(n > 0, `${tp.channel}: fields rendered from the schema`);
      for (const s of tp.secret_fields || []) {
        // `headers.*`: every value of a map is secret; the map is one JSON field
        // whose stored values come back as null (kept unless replaced).
        const nested = s.endsWith('.*');
        const f = page.getByTestId(`acc-field-${nested ? s.slice(0, -2) : s}`);
        assert.equal(await f.count(), 1, `${tp.channel}: secret field ${s} rendered`);
        if (!nested) assert.equal(await f.getAttribute('type'), 'password', `${tp.channel}.${s} is a password input`);
      }
    }
  });
});

test('plugin forms in Chinese: provider terms from the schema, help, raw key small, advanced settings folded', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('i18n');
  const types = items(await tn.api.get('/account-types'));
  for (const ch of ['wecom-app', 'aliyun-sms']) assert.ok(types.find((x) => x.channel === ch), `${ch} is installed`);
  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-accounts').click();
    await page.getByTestId('account-add').click();
    await page.getByTestId('acc-type').selectOption('wecom-app');
    const label = (k) => page.getByTestId(`acc-label-${k}`);
    await label('corp_secret').waitFor();
    assert.match(await label('corp_id').textContent(), /企业ID/);
    assert.match(await label('corp_secret').textContent(), /应用Secret/);
    assert.match(await label('agent_id').textContent(), /AgentId/);
    // The raw key is still there, small, for people who read the provider's docs.
    assert.equal(await label('corp_secret').locator('code.fkey').textContent(), 'corp_secret');
    assert.match(await page.getByTestId('acc-help-corp_id').textContent(), /企业/);
    assert.doesNotMatch(await page.getByTestId('acc-config').textContent(), /The organization's CorpID/, 'no English help in Chinese');
    // Rarely needed fields are folded under 高级设置.
    const adv = page.getByTestId('acc-advanced');
    assert.equal(await adv.locator('summary').textContent(), '高级设置');
    assert.equal(await adv.getAttribute('open'), null, 'closed by default');
    assert.equal(await page.getByTestId('acc-field-safe').isVisible(), false);
    assert.equal(await page.getByTestId('acc-field-corp_id').isVisible(), true);

    await page.getByTestId('acc-type').selectOption('aliyun-sms');
    await label('access_key_id').waitFor();
    assert.match(await label('sign_name').textContent(), /短信签名/);
    assert.match(await label('template_code').textContent(), /模板CODE/);
    assert.match(await label('access_key_secret').textContent(), /AccessKey Secret/);
    assert.equal(await page.getByTestId('acc-field-region_id').isVisible(), false, 'region is advanced');
    assert.equal(await page.getByTestId('acc-field-callback_token').isVisible(), false, 'callback token is advanced');
    await page.getByTestId('acc-advanced-toggle').click();
    await page.getByTestId('acc-field-region_id').waitFor({ state: 'visible' });
    assert.match(await label('region_id').textContent(), /地域/);

    // Every first-party plugin: every field has a Chinese label (no bare keys; the
    // test-only plugin "hostile" has none, and shows its raw keys).
    for (const tp of types.filter((x) => !['email', 'hostile'].includes(x.channel))) {
      await page.getByTestId('acc-type').selectOption(tp.channel);
      const bare = await page.locator('[data-testid=acc-config] .flabel').evaluateAll((ls) => ls.filter((l) => !l.querySelector('code.fkey')).map((l) => l.textContent));
      assert.deepEqual(bare, [], `${tp.channel}: every field is labelled`);
    }

    // E-mail: the relay limits and Reply-To are advanced settings too, and are saved.
    await page.getByTestId('acc-type').selectOption('email');
    assert.equal(await page.getByTestId('acc-field-smtp.max_connections').isVisible(), false);
    await page.getByTestId('acc-advanced-toggle').click();
    assert.match(await label('smtp.max_connections').textContent(), /连接数上限/);

    // In English, the English titles.
    await page.getByTestId('dialog-close').click();
    await page.getByTestId('lang-switch').selectOption('en');
    await page.getByTestId('account-add').click();
    await page.getByTestId('acc-type').selectOption('wecom-app');
    await label('corp_id').waitFor();
    assert.match(await label('corp_id').textContent(), /Corp ID/);
    assert.equal(await page.getByTestId('acc-advanced').locator('summary').textContent(), 'Advanced settings');
    await page.getByTestId('dialog-close').click();
    await page.getByTestId('lang-switch').selectOption('zh');
  });
});
