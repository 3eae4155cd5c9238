// Chinese by default; English by the switch; the choice survives a reload and
// the login page; and back to Chinese.
import { test, before, after } from 'node:test';
import { ADMIN, assert, launch, withPage, uiLogin, freshTenant } from '../lib.mjs';

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
    await page.getByTestId('logout').click();
    await page.getByTestId('login-submit').filter({ hasText: 'Log in' }).waitFor();

    await page.getByTestId('lang-switch').selectOption('zh');
    await page.getByTestId('login-submit').filter({ hasText: '登录' }).waitFor();
    await uiLogin(page, tn.login, tn.password);
    assert.equal((await page.getByTestId('nav-directory').textContent()).trim(), '通讯录');
    await page.reload();
    await page.getByTestId('nav-directory').filter({ hasText: '通讯录' }).waitFor();
  });
});
