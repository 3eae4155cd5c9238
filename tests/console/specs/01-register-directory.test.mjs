// Register an enterprise and log in through the console; build the org tree
// (child under the selected unit, rename, move, delete when empty, refusal when
// not); create and search users.
import { test, before, after } from 'node:test';
import { ADMIN, Api, assert, launch, uniq, withPage, uiLogin, freshTenant, clickAndConfirm, errorToast, items, uiLogout } from '../lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const node = (page, name) => page.getByTestId('unit-node').filter({ hasText: new RegExp(`^${name}$`) });
async function addChild(page, parent, name) {
  await node(page, parent).click();
  await page.getByTestId('unit-add').click();
  await page.getByTestId('unit-name').fill(name);
  await page.getByTestId('dialog-submit').click();
  await node(page, name).waitFor();
}

test('register an enterprise in the console, then log in', { timeout: 60_000 }, async (t) => {
  await withPage(t, browser, async (page) => {
    const login = uniq('reg');
    const enterprise = `测试企业 ${login}`;
    await page.goto(`${ADMIN}/`);
    await page.getByTestId('page-login').waitFor();
    await page.getByTestId('goto-register').click();
    await page.getByTestId('page-register').waitFor();
    await page.getByTestId('reg-enterprise').fill(enterprise);
    await page.getByTestId('reg-name').fill('王管理');
    await page.getByTestId('reg-login').fill(login);
    await page.getByTestId('reg-email').fill(`${login}@example.test`);
    // Too short a password: the API's message is shown and its field highlighted.
    await page.getByTestId('reg-password').fill('short');
    await page.getByTestId('reg-submit').click();
    const err = page.getByTestId('form-error');
    await err.waitFor({ state: 'visible' });
    assert.ok((await err.textContent()).trim().length > 0, 'an error message is shown');
    await page.locator('[data-testid=reg-password].invalid').waitFor();

    await page.getByTestId('reg-password').fill('Correct-horse-9');
    await page.getByTestId('reg-submit').click();
    await page.getByTestId('page-login').waitFor();
    assert.equal(await page.getByTestId('login-login').inputValue(), login, 'the login is filled in after registering');

    // Registering the same login again is refused (409 login_taken) with the API's message.
    await page.getByTestId('goto-register').click();
    await page.getByTestId('reg-enterprise').fill(enterprise + ' 2');
    await page.getByTestId('reg-name').fill('又一个');
    await page.getByTestId('reg-login').fill(login);
    await page.getByTestId('reg-password').fill('Correct-horse-9');
    await page.getByTestId('reg-submit').click();
    await page.getByTestId('form-error').waitFor({ state: 'visible' });
    await page.locator('[data-testid=reg-login].invalid').waitFor();
    await page.getByTestId('goto-login').click();

    // Wrong password: the error is shown, no navigation.
    await page.getByTestId('login-login').fill(login);
    await page.getByTestId('login-password').fill('Wrong-password-1');
    await page.getByTestId('login-submit').click();
    await page.getByTestId('form-error').waitFor({ state: 'visible' });
    assert.equal(await page.getByTestId('nav').isVisible(), false);

    await page.getByTestId('login-password').fill('Correct-horse-9');
    await page.getByTestId('login-submit').click();
    await page.getByTestId('nav').waitFor();
    assert.match(await page.getByTestId('whoami').textContent(), new RegExp(enterprise));
    // The administrator sees every menu.
    for (const m of ['directory', 'apps', 'roles', 'pushes', 'tiered', 'accounts', 'cost', 'reports']) {
      assert.ok(await page.getByTestId(`nav-${m}`).isVisible(), `menu ${m} visible`);
    }
    await uiLogout(page);
    await page.getByTestId('page-login').waitFor();
    // After logging out, the API refuses the session and the console shows the login page.
    await page.goto(`${ADMIN}/#/directory`);
    await page.getByTestId('page-login').waitFor();
  });
});

test('org tree: child under the selected unit, rename, move, delete empty, refuse non-empty', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('org');
  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-directory').click();
    await page.getByTestId('page-directory').waitFor();
    const root = tn.enterprise;
    await node(page, root).waitFor();

    await addChild(page, root, '研发部');
    await addChild(page, '研发部', '后端组');
    await addChild(page, root, '市场部');
    // 后端组 sits under 研发部 in the tree.
    const rd = page.locator('li', { has: node(page, '研发部') }).last();
    await rd.getByTestId('unit-node').filter({ hasText: '后端组' }).waitFor();

    // Rename.
    await node(page, '市场部').click();
    await page.getByTestId('unit-rename').click();
    await page.getByTestId('unit-name').fill('市场与销售部');
    await page.getByTestId('dialog-submit').click();
    await node(page, '市场与销售部').waitFor();
    assert.equal(await node(page, '市场部').count(), 0);

    // Move 后端组 under 市场与销售部.
    await node(page, '后端组').click();
    await page.getByTestId('unit-move').click();
    const parentSel = page.getByTestId('unit-parent');
    const opts = await parentSel.locator('option').allTextContents();
    assert.ok(!opts.some((o) => o.trim() === '后端组'), 'a unit cannot be moved under itself');
    const target = (await parentSel.locator('option').all());
    let value = null;
    for (const o of target) if ((await o.textContent()).trim() === '市场与销售部') value = await o.getAttribute('value');
    await parentSel.selectOption(value);
    await page.getByTestId('dialog-submit').click();
    const sales = page.locator('li', { has: node(page, '市场与销售部') }).last();
    await sales.getByTestId('unit-node').filter({ hasText: '后端组' }).waitFor();
    const units = items(await tn.api.get('/units'));
    const backend = units.find((u) => u.name === '后端组');
    assert.equal(backend.parent, units.find((u) => u.name === '市场与销售部').id, 'the API has the new parent');

    // Delete the empty unit.
    await node(page, '后端组').click();
    await clickAndConfirm(page, page.getByTestId('unit-delete'));
    await node(page, '后端组').waitFor({ state: 'detached' });

    // A unit with a user cannot be deleted: the 409 message is shown, the unit stays.
    const rdId = units.find((u) => u.name === '研发部').id;
    await tn.api.post('/users', { name: '占位用户', unit: rdId, roles: [] });
    await node(page, '研发部').click();
    await clickAndConfirm(page, page.getByTestId('unit-delete'));
    const msg = await errorToast(page);
    assert.ok(msg && msg.trim().length > 0, 'the refusal message is shown');
    assert.equal(await node(page, '研发部').count(), 1, 'the unit is still there');
    // A unit with child units cannot be deleted either.
    await addChild(page, '研发部', '测试组');
    const r = await tn.api.req('DELETE', `/units/${rdId}`);
    assert.equal(r.status, 409);

    // Names are text, never markup.
    const dialogs = [];
    page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
    const evil = '<img src=x onerror=alert("unit")><b>粗</b>';
    const root0 = items(await tn.api.get('/units')).find((u) => u.parent === null);
    await tn.api.post('/units', { name: evil, parent: root0.id });
    await tn.api.post('/users', { name: '<script>alert("user")</script>', unit: root0.id, roles: [] });
    await page.reload();
    await page.getByTestId('unit-node').filter({ hasText: evil }).waitFor();
    await node(page, root).click();
    await page.getByTestId('user-row').filter({ hasText: '<script>alert("user")</script>' }).waitFor();
    assert.equal(await page.locator('[data-testid=unit-tree] img, [data-testid=unit-tree] b, [data-testid=users-table] script').count(), 0, 'no markup from names');
    assert.deepEqual(dialogs, [], 'nothing ran');
  });
});

test('users: create in a unit, edit, search by name and email, delete', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('usr');
  const root = items(await tn.api.get('/units'))[0];
  const ops = await tn.api.post('/units', { name: '运维部', parent: root.id });
  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-directory').click();
    await node(page, '运维部').click();
    const mk = async (name, login, email, mobile) => {
      await page.getByTestId('user-add').click();
      await page.getByTestId('uf-name').fill(name);
      await page.getByTestId('uf-login').fill(login);
      await page.getByTestId('uf-password').fill('User-password-1');
      await page.getByTestId('uf-email').fill(email);
      await page.getByTestId('uf-mobile').fill(mobile);
      await page.getByTestId('uf-wecom').fill(`wx-${login}`);
      await page.getByTestId('uf-dingtalk').fill(`dd-${login}`);
      await page.getByTestId('uf-welink').fill(`wl-${login}`);
      assert.equal(await page.getByTestId('uf-unit').inputValue(), ops.id, 'the selected unit is the default');
      await page.locator('[data-testid=user-dialog] input[name=roles]').first().check();
      await page.getByTestId('dialog-submit').click();
      await page.getByTestId('user-dialog').waitFor({ state: 'detached' });
      await page.locator(`[data-testid=user-row][data-login="${login}"]`).waitFor();
    };
    const l1 = uniq('zhang');
    const l2 = uniq('li');
    await mk('张伟', l1, `${l1}@corp.example`, '13800000001');
    await mk('李娜', l2, `${l2}@corp.example`, '13800000002');
    assert.equal(await page.getByTestId('user-row').count(), 2);

    // Search by name.
    await page.getByTestId('user-search').fill('张伟');
    await page.getByTestId('user-search-go').click();
    await page.locator(`[data-testid=user-row][data-login="${l2}"]`).waitFor({ state: 'detached' });
    assert.equal(await page.getByTestId('user-row').count(), 1);
    // Search by email.
    await page.getByTestId('user-search').fill(`${l2}@corp`);
    await page.getByTestId('user-search-go').click();
    await page.locator(`[data-testid=user-row][data-login="${l1}"]`).waitFor({ state: 'detached' });
    await page.locator(`[data-testid=user-row][data-login="${l2}"]`).waitFor();
    // No match.
    await page.getByTestId('user-search').fill('nobody-like-this');
    await page.getByTestId('user-search-go').click();
    await page.getByTestId('users-empty').waitFor();

    // Edit (the password is never shown; empty keeps it).
    await page.getByTestId('user-search').fill('');
    await page.getByTestId('user-search-go').click();
    await page.locator(`[data-testid=user-row][data-login="${l1}"] [data-testid=user-edit]`).click();
    assert.equal(await page.getByTestId('uf-password').inputValue(), '');
    assert.equal(await page.getByTestId('uf-wecom').inputValue(), `wx-${l1}`);
    await page.getByTestId('uf-name').fill('张伟伟');
    await page.getByTestId('dialog-submit').click();
    await page.locator(`[data-testid=user-row][data-login="${l1}"]`).filter({ hasText: '张伟伟' }).waitFor();
    const users = items(await tn.api.get(`/users?q=${l1}`));
    assert.equal(users[0].name, '张伟伟');
    assert.equal(users[0].password, undefined, 'the API never returns a password');
    // The edited user still logs in with the old password.
    const lr = await new Api().req('POST', '/login', { login: l1, password: 'User-password-1' });
    assert.equal(lr.status, 200);

    // An API error names its field: a duplicate login.
    await page.getByTestId('user-add').click();
    await page.getByTestId('uf-name').fill('重复');
    await page.getByTestId('uf-login').fill(l2);
    await page.getByTestId('uf-password').fill('User-password-1');
    await page.getByTestId('dialog-submit').click();
    await page.locator('[data-testid=user-dialog] [data-testid=form-error]').waitFor({ state: 'visible' });
    await page.locator('[data-testid=uf-login].invalid').waitFor();
    await page.getByTestId('dialog-close').click();

    // Delete.
    await clickAndConfirm(page, page.locator(`[data-testid=user-row][data-login="${l2}"] [data-testid=user-delete]`));
    await page.locator(`[data-testid=user-row][data-login="${l2}"]`).waitFor({ state: 'detached' });
  });
});

test('org tree context menu: right-click or ⋯ offers 新建下级部门 / 重命名 / 删除 / 新建用户', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('ctx');
  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-directory').click();
    await page.getByTestId('page-directory').waitFor();
    const root = tn.enterprise;
    await node(page, root).waitFor();
    const menu = page.getByTestId('unit-menu');

    // Right-click: the menu in Chinese, at the unit.
    await node(page, root).click({ button: 'right' });
    await menu.waitFor();
    assert.deepEqual((await menu.locator('button').allTextContents()).map((s) => s.trim()), ['新建下级部门', '重命名', '移动', '删除', '新建用户']);
    await page.getByTestId('unit-menu-add').click();
    await menu.waitFor({ state: 'detached' });
    await page.getByTestId('unit-name').fill('财务部');
    await page.getByTestId('dialog-submit').click();
    await node(page, '财务部').waitFor();
    const fin = items(await tn.api.get('/units')).find((u) => u.name === '财务部');
    assert.equal(fin.parent, items(await tn.api.get('/units')).find((u) => u.name === root).id, 'created under the right-clicked unit');

    // Rename through the menu.
    await node(page, '财务部').click({ button: 'right' });
    await page.getByTestId('unit-menu-rename').click();
    await page.getByTestId('unit-name').fill('财务中心');
    await page.getByTestId('dialog-submit').click();
    await node(page, '财务中心').waitFor();

    // 新建用户 here: the user dialog starts in that unit.
    await node(page, root).click();
    await node(page, '财务中心').click({ button: 'right' });
    await page.getByTestId('unit-menu-user').click();
    assert.equal(await page.getByTestId('uf-unit').inputValue(), fin.id, 'the new user goes into the unit of the menu');
    await page.getByTestId('uf-name').fill('出纳');
    await page.getByTestId('dialog-submit').click();
    await page.getByTestId('user-dialog').waitFor({ state: 'detached' });
    assert.equal(items(await tn.api.get('/users')).find((u) => u.name === '出纳').unit, fin.id);
    await tn.api.ok('DELETE', `/users/${items(await tn.api.get('/users')).find((u) => u.name === '出纳').id}`);

    // Keyboard: the ⋯ button opens the menu with focus on its first item; Escape closes it.
    const more = page.locator('li', { has: node(page, '财务中心') }).last().getByTestId('unit-more');
    await more.focus();
    await page.keyboard.press('Enter');
    await menu.waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'unit-menu-add');
    await page.keyboard.press('ArrowDown');
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'unit-menu-rename');
    await page.keyboard.press('Escape');
    await menu.waitFor({ state: 'detached' });
    // A click elsewhere closes it too.
    await more.click();
    await menu.waitFor();
    await page.getByTestId('users-title').click();
    await menu.waitFor({ state: 'detached' });

    // Delete through the menu (with the confirmation).
    await node(page, '财务中心').click({ button: 'right' });
    await clickAndConfirm(page, page.getByTestId('unit-menu-delete'));
    await node(page, '财务中心').waitFor({ state: 'detached' });
  });
});

test('passwords: 重置密码 by an administrator ends the sessions and asks the user to change it; 修改密码', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('pwd');
  const root = items(await tn.api.get('/units'))[0];
  const login = uniq('staff');
  const user = await tn.api.post('/users', { name: '小王', login, password: 'First-password-1', unit: root.id, roles: [] });
  const before = await new Api().req('POST', '/login', { login, password: 'First-password-1' });
  assert.equal(before.status, 200);
  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-directory').click();
    const row = page.locator(`[data-testid=user-row][data-login="${login}"]`);
    await row.waitFor();
    // Not offered for oneself.
    assert.equal(await page.locator(`[data-testid=user-row][data-login="${tn.login}"] [data-testid=user-reset-password]`).count(), 0);
    await row.getByTestId('user-reset-password').click();
    const dlg = page.getByTestId('reset-password');
    await dlg.waitFor();
    assert.match(await dlg.textContent(), /重置“小王”的密码/);
    // Mismatch and a weak password: the errors are shown in the dialog.
    await page.getByTestId('reset-password-new').fill('Handed-over-pass-7');
    await page.getByTestId('reset-password-confirm').fill('something else');
    await page.getByTestId('dialog-submit').click();
    await dlg.getByTestId('form-error').filter({ hasText: '两次输入的密码不一致' }).waitFor();
    await page.getByTestId('reset-password-new').fill('aaaaaaaaaa');
    await page.getByTestId('reset-password-confirm').fill('aaaaaaaaaa');
    await page.getByTestId('dialog-submit').click();
    await page.locator('[data-testid=reset-password-new].invalid').waitFor();
    await page.getByTestId('reset-password-new').fill('Handed-over-pass-7');
    await page.getByTestId('reset-password-confirm').fill('Handed-over-pass-7');
    await page.getByTestId('dialog-submit').click();
    await dlg.waitFor({ state: 'detached' });
    assert.equal((await new Api(before.body.token).req('GET', '/me')).status, 401, "the user's session ended");
    assert.equal((await new Api().req('POST', '/login', { login, password: 'First-password-1' })).status, 401);

    // The user logs in with the handed-over password and is asked to change it.
    await uiLogout(page);
    await uiLogin(page, login, 'Handed-over-pass-7');
    const banner = page.getByTestId('must-change-password');
    await banner.waitFor();
    assert.match(await banner.textContent(), /管理员已重置您的密码/);
    await page.getByTestId('must-change-go').click();
    await page.getByTestId('change-password').waitFor();
    await page.getByTestId('change-password-current').fill('wrong password here');
    await page.getByTestId('change-password-new').fill('Only-i-know-this-3');
    await page.getByTestId('change-password-confirm').fill('Only-i-know-this-3');
    await page.getByTestId('dialog-submit').click();
    await page.locator('[data-testid=change-password-current].invalid').waitFor();
    await page.getByTestId('change-password-current').fill('Handed-over-pass-7');
    await page.getByTestId('dialog-submit').click();
    await page.getByTestId('change-password').waitFor({ state: 'detached' });
    await banner.waitFor({ state: 'detached' });
    assert.equal((await new Api().req('POST', '/login', { login, password: 'Only-i-know-this-3' })).status, 200);
    const again = (await new Api().req('POST', '/login', { login, password: 'Only-i-know-this-3' })).body;
    assert.equal(again.user.must_change_password, undefined, 'no longer asked');
    assert.equal(again.user.id, user.id);

    // The header's 修改密码 opens the same dialog.
    await page.getByTestId('me-password').click();
    await page.getByTestId('change-password').waitFor();
    await page.getByTestId('dialog-close').click();
  });
});
