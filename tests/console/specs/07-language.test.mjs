// Chinese by default; English by the switch; the choice survives a reload and
// the login page; and back to Chinese.
import { test, before, after } from 'node:test';
import { ADMIN, assert, launch, withPage, uiLogin, freshTenant, items, clickAndConfirm, errorToast, uiLogout } from '../lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('language switch to English and back, persisted across reloads', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('lng');
  await withPage(t, browser, async (page) => {
    await page.goto(`${ADMIN}/`);
    await page.getByTestId('page-login').waitFor();
    assert.equal((await page.getByTestId('login-submit').textContent()).trim(), '登录', 'Chinese by default');
    await uiLogin(page, tn.login, tn.password);
    assert.equal((await page.getByTestId('nav-directory').textContent()).trim(), '通讯录');
    assert.equal((await page.getByTestId('nav-pushes').textContent()).trim(), '消息推送');

    await page.getByTestId('lang-switch').selectOption('en');
    await page.getByTestId('nav-directory').filter({ hasText: 'Directory' }).waitFor();
    assert.equal((await page.getByTestId('nav-pushes').textContent()).trim(), 'Message push');
    assert.equal((await page.getByTestId('nav-cost').textContent()).trim(), 'Cost management');
    assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
    // The page itself is re-rendered in English.
    await page.getByTestId('nav-pushes').click();
    await page.getByTestId('push-search').filter({ hasText: 'Search' }).waitFor();

    await page.reload();
    await page.getByTestId('nav-directory').filter({ hasText: 'Directory' }).waitFor();
    assert.equal(await page.getByTestId('lang-switch').inputValue(), 'en', 'persisted');
    await uiLogout(page);
    await page.getByTestId('login-submit').filter({ hasText: 'Log in' }).waitFor();

    await page.getByTestId('lang-switch').selectOption('zh');
    await page.getByTestId('login-submit').filter({ hasText: '登录' }).waitFor();
    await uiLogin(page, tn.login, tn.password);
    assert.equal((await page.getByTestId('nav-directory').textContent()).trim(), '通讯录');
    await page.reload();
    await page.getByTestId('nav-directory').filter({ hasText: '通讯录' }).waitFor();
  });
});

// The server's messages follow the console's language (Accept-Language on
// every call), whatever the browser's own language (zh-CN here).
test('server errors in Chinese, and in English after switching', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('lngerr');
  const root = items(await tn.api.get('/units')).find((u) => u.parent === null);
  const unit = await tn.api.post('/units', { name: '研发中心', parent: root.id });
  await tn.api.post('/users', { name: '占位用户', unit: unit.id, roles: [] });
  await withPage(t, browser, async (page) => {
    const wrongLogin = async () => {
      await page.goto(`${ADMIN}/#/login`);
      await page.getByTestId('login-login').fill(tn.login);
      await page.getByTestId('login-password').fill('not the password');
      await page.getByTestId('login-submit').click();
      const box = page.getByTestId('form-error');
      await box.waitFor({ state: 'visible' });
      return (await box.textContent()).trim();
    };
    // The refusal shows as an error toast with exactly this text (an earlier toast may still be up).
    const deleteUnit = async (expected) => {
      await page.getByTestId('nav-directory').click();
      await page.getByTestId('unit-node').filter({ hasText: /^研发中心$/ }).click();
      await clickAndConfirm(page, page.getByTestId('unit-delete'));
      await page.getByTestId('toast-error').filter({ hasText: expected }).waitFor();
      assert.equal((await errorToast(page)).trim(), expected);
    };

    await page.goto(`${ADMIN}/`);
    assert.equal(await wrongLogin(), '登录名或密码错误', 'a wrong password, in Chinese');
    await uiLogin(page, tn.login, tn.password);
    await deleteUnit('该部门下有 0 个下级部门和 1 个用户，请先移走或删除'); // a non-empty unit, in Chinese

    await page.getByTestId('lang-switch').selectOption('en');
    await page.getByTestId('nav-directory').filter({ hasText: 'Directory' }).waitFor();
    await deleteUnit('the unit has 0 subunits and 1 users; move or delete them first'); // in English after switching
    // The enterprise's language (registered through the API without Accept-Language: English) is set on its page.
    await page.getByTestId('nav-settings').click();
    const sel = page.getByTestId('settings-language');
    await page.waitForFunction(() => document.querySelector('[data-testid=settings-language]')?.value === 'en');
    await sel.selectOption('zh-CN');
    await page.getByTestId('settings-save').click();
    await page.getByTestId('toast').filter({ hasText: 'Saved' }).waitFor();
    assert.equal((await tn.api.get('/tenant/settings')).language, 'zh-CN');
    await uiLogout(page);
    assert.equal(await wrongLogin(), 'wrong login or password');
  });
});

// Every console text in both languages.
test('the console catalog has the same keys in Chinese and English', async () => {
  const { MESSAGES } = await import('../../../admin/console/i18n.js');
  const zh = Object.keys(MESSAGES.zh);
  const en = Object.keys(MESSAGES.en);
  assert.deepEqual(zh.filter((k) => !(k in MESSAGES.en)), [], 'keys only in zh');
  assert.deepEqual(en.filter((k) => !(k in MESSAGES.zh)), [], 'keys only in en');
  const vars = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort().join(',');
  for (const k of zh) assert.equal(vars(MESSAGES.en[k]), vars(MESSAGES.zh[k]), `the placeholders of ${k}`);
});
