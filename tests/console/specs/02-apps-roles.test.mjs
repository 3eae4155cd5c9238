// App market (an app not enabled hides its menus and refuses its API;
// messaging key shown once, API keys), roles as the manual has them (a
// description, function permissions as app → menu → button, a data scope per
// permission), and what a user with such a role sees and may call.
import { test, before, after } from 'node:test';
import { ADMIN, Api, assert, launch, uniq, withPage, uiLogin, freshTenant, clickAndConfirm, items, emailAccount, uiLogout } from '../lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('app market: a disabled app hides its menus and its API answers 403 app_disabled; enabling messaging shows the API key once; keys are listed, created and revoked', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('app');
  await withPage(t, browser, async (page, context) => {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ADMIN });
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-apps').click();
    await page.getByTestId('page-apps').waitFor();
    const card = page.locator('[data-testid=app-card][data-id=messaging]');
    await card.waitFor();
    // A new enterprise starts with every app enabled.
    for (const id of ['messaging', 'tiered-push', 'reports']) {
      await page.locator(`[data-testid=app-card][data-id="${id}"] [data-testid=app-enabled]`).waitFor();
    }
    const call = async (method, path, data) => {
      const r = await page.request.fetch(`${ADMIN}/api/v1${path}`, { method, data, failOnStatusCode: false });
      return [r.status(), r.status() >= 400 ? (await r.json()).error.code : ''];
    };
    // Disable 消息推送 and 报表: their menus go, their API refuses, other menus stay.
    for (const id of ['messaging', 'reports']) {
      await clickAndConfirm(page, page.getByTestId(`app-disable-${id}`));
      await page.locator(`[data-testid=app-card][data-id="${id}"] [data-testid=app-disabled]`).waitFor();
    }
    await page.getByTestId('nav-pushes').waitFor({ state: 'detached' });
    assert.equal(await page.getByTestId('nav-reports').count(), 0, '报表 menu hidden');
    assert.ok(await page.getByTestId('nav-tiered').isVisible(), '分级推送 stays');
    assert.deepEqual(await call('GET', '/pushes'), [403, 'app_disabled']);
    assert.deepEqual(await call('POST', '/pushes/audience', { channel: 'email', targets: { units: [] } }), [403, 'app_disabled']);
    assert.deepEqual(await call('GET', '/reports/summary'), [403, 'app_disabled']);
    assert.equal((await call('GET', '/tiered/templates'))[0], 200);
    await page.goto(`${ADMIN}/#/pushes`);
    await page.getByTestId('page-forbidden').waitFor();
    // The role editor marks the app as not enabled.
    await page.goto(`${ADMIN}/#/roles`);
    await page.getByTestId('role-add').click();
    await page.locator('[data-testid=perm-app][data-app=messaging] [data-testid=perm-app-off]').waitFor();
    await page.locator('[data-testid=role-dialog] [data-close]').first().click();
    await page.goto(`${ADMIN}/#/apps`);
    await page.locator('[data-testid=app-card][data-id=reports] [data-testid=app-enable-reports]').click();
    await page.getByTestId('nav-reports').waitFor();
    assert.equal((await call('GET', '/reports/summary'))[0], 200, 'enabled again, it answers');
    await page.getByTestId('app-enable-messaging').click();
    const key = (await page.getByTestId('api-key-value').textContent()).trim();
    assert.match(key, /^hk_\S{8,}$/, 'an hk_ key is shown');
    await page.getByTestId('api-key-copy').click();
    await page.getByTestId('api-key-copied').waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key, 'the key is on the clipboard');
    await page.getByTestId('api-key-done').click();
    await card.getByTestId('app-enabled').waitFor();
    assert.equal(await page.getByTestId('app-enable-messaging').count(), 0, 'no second enable button');
    await page.getByTestId('nav-pushes').waitFor();
    assert.equal((await call('GET', '/pushes'))[0], 200, 'messaging answers again');

    // The key is listed by its prefix only and never shown again.
    const rows = page.getByTestId('api-key-row');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 1);
    const prefix = (await rows.first().locator('code').textContent()).replace('…', '');
    assert.ok(key.startsWith(prefix), `the listed prefix ${prefix} starts the key`);
    await page.reload();
    await page.getByTestId('api-key-row').first().waitFor();
    assert.ok(!(await page.content()).includes(key), 'the full key is not on the page any more');

    // The gateway accepts the key.
    if (process.env.HERALD_GATEWAY_URL) {
      const ok = await fetch(`${process.env.HERALD_GATEWAY_URL}/v1/plugins`, { headers: { Authorization: `Bearer ${key}` } });
      assert.equal(ok.status, 200, 'the gateway accepts the issued key');
      const bad = await fetch(`${process.env.HERALD_GATEWAY_URL}/v1/plugins`, { headers: { Authorization: `Bearer ${key.slice(0, -2)}xx` } });
      assert.equal(bad.status, 401, 'and refuses a wrong one');
    }

    // Another key, then revoke it.
    await page.getByTestId('api-key-create').click();
    const key2 = (await page.getByTestId('api-key-value').textContent()).trim();
    assert.match(key2, /^hk_/);
    assert.notEqual(key2, key);
    await page.getByTestId('api-key-done').click();
    await page.getByTestId('api-key-row').nth(1).waitFor();
    const row2 = page.getByTestId('api-key-row').filter({ hasText: key2.slice(0, 8) }).first();
    await clickAndConfirm(page, row2.getByTestId('api-key-revoke'));
    await page.getByTestId('api-key-row').nth(1).waitFor({ state: 'detached' });
    assert.equal(items(await tn.api.get('/api-keys')).length, 1);
  });
});

test('a role with a description, permissions picked as app → menu → button and a data scope per permission: menus, buttons, lists and API are restricted', { timeout: 120_000 }, async (t) => {
  const tn = await freshTenant('rol');
  const root = items(await tn.api.get('/units'))[0];
  const unitA = await tn.api.post('/units', { name: '华东区', parent: root.id });
  const unitA1 = await tn.api.post('/units', { name: '上海办', parent: unitA.id });
  const unitA2 = await tn.api.post('/units', { name: '杭州办', parent: unitA.id });
  const unitB = await tn.api.post('/units', { name: '华南区', parent: root.id });
  const inA = await tn.api.post('/users', { name: '东区同事', login: uniq('ea'), password: 'User-password-1', email: 'east@example.test', unit: unitA1.id, roles: [] });
  const inA2 = await tn.api.post('/users', { name: '杭州同事', email: 'hz@example.test', unit: unitA2.id, roles: [] });
  const inB = await tn.api.post('/users', { name: '南区同事', login: uniq('so'), password: 'User-password-1', email: 'south@example.test', unit: unitB.id, roles: [] });
  const account = await emailAccount(tn.api);
  // A push of the administrator (root unit): outside the limited user's push.view scope.
  const adminPush = await tn.api.post('/pushes', { title: '总部通知', channel: 'email', account, content: { subject: '总部', text: '你好' }, targets: { users: [inB.id] }, enabled: false });
  const limitedLogin = uniq('lim');
  const roleName = uniq('华东推送员');
  const description = '华东区推送员：看华东区通讯录与推送，只给上海办编辑推送';

  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-roles').click();
    await page.getByTestId('page-roles').waitFor();
    await page.getByTestId('role-add').click();
    await page.getByTestId('role-name').fill(roleName);
    await page.getByTestId('role-description-input').fill(description);
    // The tree: app → menu → button.
    const tree = page.getByTestId('perm-tree');
    assert.deepEqual(await tree.getByTestId('perm-app').evaluateAll((els) => els.map((e) => e.dataset.app)), ['base', 'messaging', 'tiered-push', 'reports']);
    const pushMenu = tree.locator('[data-testid=perm-app][data-app=messaging] [data-testid=perm-group][data-menu=push]');
    assert.equal(await pushMenu.locator('h4').textContent(), '消息推送');
    assert.deepEqual(await pushMenu.locator('.permbuttons [data-testid=perm-row]').evaluateAll((els) => els.map((e) => e.dataset.id)), ['push.edit', 'push.send']);
    assert.equal(await tree.locator('[data-testid=perm-app][data-app=base] [data-testid=perm-group][data-menu=directory]').count(), 1);
    // 通讯录 menu on 华东区.
    await page.getByTestId('perm-directory.view').check();
    await page.getByTestId('scope-directory.view').selectOption('some');
    await page.locator(`[data-testid="scope-units-directory.view"] input[value="${unitA.id}"]`).check();
    // A button checks its menu: 编辑推送 on 上海办 only, 查看推送 on 华东区.
    await page.getByTestId('perm-push.edit').check();
    assert.ok(await page.getByTestId('perm-push.view').isChecked(), 'the menu of a checked button is checked');
    await page.getByTestId('scope-push.view').selectOption('some');
    await page.locator(`[data-testid="scope-units-push.view"] input[value="${unitA.id}"]`).check();
    await page.getByTestId('scope-push.edit').selectOption('some');
    await page.locator(`[data-testid="scope-units-push.edit"] input[value="${unitA1.id}"]`).check();
    // A unit list shows only for a scope of some units.
    assert.ok(await page.getByTestId('scope-units-push.view').isVisible());
    assert.equal(await page.getByTestId('scope-units-push.send').isVisible(), false, 'no unit list for an unchecked permission');
    await page.getByTestId('dialog-submit').click();
    const row = page.locator(`[data-testid=role-row][data-name="${roleName}"]`);
    await row.waitFor();
    assert.equal(await row.getByTestId('role-description').textContent(), description);
    const role = items(await tn.api.get('/roles')).find((r) => r.name === roleName);
    assert.equal(role.description, description);
    const byId = Object.fromEntries(role.permissions.map((g) => [g.id, g]));
    assert.deepEqual(Object.keys(byId).sort(), ['directory.view', 'push.edit', 'push.view']);
    assert.deepEqual([byId['directory.view'].all_units, byId['directory.view'].units], [false, [unitA.id]]);
    assert.deepEqual([byId['push.view'].all_units, byId['push.view'].units], [false, [unitA.id]]);
    assert.deepEqual([byId['push.edit'].all_units, byId['push.edit'].units], [false, [unitA1.id]]);
    // Edited again, the dialog shows each permission's scope.
    await row.getByTestId('role-edit').click();
    assert.equal(await page.getByTestId('scope-push.edit').inputValue(), 'some');
    assert.ok(await page.locator(`[data-testid="scope-units-push.edit"] input[value="${unitA1.id}"]`).isChecked());
    assert.equal(await page.locator(`[data-testid="scope-units-push.edit"] input[value="${unitA.id}"]`).isChecked(), false);
    await page.locator('[data-testid=role-dialog] [data-close]').first().click();

    // A user with that role, created in the console.
    await page.getByTestId('nav-directory').click();
    await page.getByTestId('unit-node').filter({ hasText: /^上海办$/ }).click();
    await page.getByTestId('user-add').click();
    await page.getByTestId('uf-name').fill('受限用户');
    await page.getByTestId('uf-login').fill(limitedLogin);
    await page.getByTestId('uf-password').fill('Limited-pass-1');
    await page.locator(`[data-testid=user-dialog] input[name=roles][data-name="${roleName}"]`).check();
    await page.getByTestId('dialog-submit').click();
    await page.locator(`[data-testid=user-row][data-login="${limitedLogin}"]`).waitFor();

    // A role in use cannot be deleted (409 in_use).
    await page.getByTestId('nav-roles').click();
    await clickAndConfirm(page, page.locator(`[data-testid=role-row][data-name="${roleName}"] [data-testid=role-delete]`));
    await page.getByTestId('toast-error').waitFor();
    await page.locator(`[data-testid=role-row][data-name="${roleName}"]`).waitFor();

    // Log in as the limited user.
    await uiLogout(page);
    await uiLogin(page, limitedLogin, 'Limited-pass-1');
    const nav = page.getByTestId('nav');
    assert.ok(await nav.getByTestId('nav-directory').isVisible());
    assert.ok(await nav.getByTestId('nav-pushes').isVisible());
    for (const m of ['apps', 'roles', 'tiered', 'accounts', 'cost', 'reports']) {
      assert.equal(await nav.getByTestId(`nav-${m}`).count(), 0, `menu ${m} hidden`);
    }
    await page.getByTestId('nav-directory').click();
    await page.getByTestId('page-directory').waitFor();
    // Only their units are in the tree, without edit buttons.
    await page.getByTestId('unit-node').filter({ hasText: /^华东区$/ }).waitFor();
    assert.equal(await page.getByTestId('unit-node').filter({ hasText: /^华南区$/ }).count(), 0, 'other units hidden');
    assert.equal(await page.getByTestId('unit-node').filter({ hasText: new RegExp(`^${tn.enterprise}$`) }).count(), 0, 'the root is hidden');
    for (const b of ['unit-add', 'unit-rename', 'unit-move', 'unit-delete', 'user-add']) {
      assert.equal(await page.getByTestId(b).count(), 0, `button ${b} hidden`);
    }
    await page.locator(`[data-testid=user-row][data-id="${inA.id}"]`).waitFor();
    assert.equal(await page.locator(`[data-testid=user-row][data-id="${inB.id}"]`).count(), 0, 'users outside their units hidden');
    assert.equal(await page.getByTestId('user-edit').count(), 0, 'no edit buttons');
    // A search does not reach outside either.
    await page.getByTestId('user-search').fill('南区');
    await page.getByTestId('user-search-go').click();
    await page.getByTestId('users-empty').waitFor();

    // The API, with the same session cookie.
    const req = async (method, path, data) => {
      const r = await page.request.fetch(`${ADMIN}/api/v1${path}`, { method, data, failOnStatusCode: false });
      const body = r.status() === 204 ? null : await r.json();
      return { status: r.status(), body, code: body?.error?.code, field: body?.error?.field };
    };
    // Push targets: push.edit reaches 上海办 only (not the rest of 华东区, not 华南区).
    const aud = (targets) => req('POST', '/pushes/audience', { channel: 'email', targets });
    assert.equal((await aud({ users: [inA.id] })).status, 200, 'a user in 上海办');
    assert.equal((await aud({ units: [unitA1.id] })).status, 200);
    for (const [targets, code, field] of [
      [{ users: [inB.id] }, 'unknown_user', 'targets.users[0]'],
      [{ users: [inA.id, inA2.id] }, 'unknown_user', 'targets.users[1]'],
      [{ units: [unitA.id] }, 'unknown_unit', 'targets.units[0]'],
      [{ units: [unitB.id] }, 'unknown_unit', 'targets.units[0]'],
    ]) {
      const r = await aud(targets);
      assert.deepEqual([r.status, r.code, r.field], [422, code, field], JSON.stringify(targets));
    }
    // A push of their own (push.edit), to 上海办; one to 华南区 is refused.
    const pushBody = (targets) => ({ title: '上海办通知', channel: 'email', account, content: { subject: '通知', text: '你好 {{ name }}' }, targets, enabled: false });
    const own = await req('POST', '/pushes', pushBody({ users: [inA.id] }));
    assert.equal(own.status, 201, JSON.stringify(own.body));
    const out = await req('POST', '/pushes', pushBody({ users: [inB.id] }));
    assert.deepEqual([out.status, out.code], [422, 'unknown_user']);
    // Buttons not granted: 403.
    assert.deepEqual([(await req('POST', `/pushes/${own.body.id}/enable`)).status, (await req('POST', `/pushes/${own.body.id}/enable`)).code], [403, 'forbidden']);
    assert.equal((await req('POST', `/pushes/${own.body.id}/send`)).status, 403, 'push.send not granted');
    assert.equal((await req('GET', '/roles')).status, 403, 'roles.view missing');
    assert.equal((await req('POST', '/units', { name: 'x', parent: unitA.id })).status, 403, 'directory.edit missing');
    assert.equal((await req('GET', '/accounts')).status, 403, 'accounts.view missing');
    assert.equal((await req('GET', '/reports/summary')).status, 403, 'reports.view missing');
    // Lists and items within each permission's scope.
    assert.equal((await req('GET', '/users/' + inA.id)).status, 200, 'a user in their units');
    assert.equal((await req('GET', '/users/' + inB.id)).status, 404, 'a user outside their units is not served');
    assert.equal(items((await req('GET', `/users?unit=${unitB.id}`)).body).length, 0, 'no users of other units');
    assert.deepEqual(items((await req('GET', '/units')).body).map((u) => u.id).sort(), [unitA.id, unitA1.id, unitA2.id].sort());
    const pushes = items((await req('GET', '/pushes')).body).map((p) => p.id);
    assert.deepEqual(pushes, [own.body.id], 'only the pushes of their scope');
    assert.equal((await req('GET', `/pushes/${adminPush.id}`)).status, 404);
    assert.equal((await req('GET', `/pushes/${adminPush.id}/deliveries`)).status, 404);
    // Nor grant themselves anything (no roles.manage).
    assert.equal((await req('PATCH', `/roles/${role.id}`, { permissions: [{ id: 'push.send', all_units: true }] })).status, 403);

    // In the console: their push only, a new-push button (push.edit), no enable/disable (push.send).
    await page.getByTestId('nav-pushes').click();
    await page.getByTestId('page-pushes').waitFor();
    await page.locator(`[data-testid=push-row][data-id="${own.body.id}"]`).waitFor();
    assert.equal(await page.locator(`[data-testid=push-row][data-id="${adminPush.id}"]`).count(), 0, 'the administrator\u2019s push is outside their scope');
    assert.ok(await page.getByTestId('push-add').isVisible(), 'push.edit: new push');
    assert.equal(await page.getByTestId('push-toggle').count(), 0, 'push.send not granted: no enable/disable');
    // A page outside their menus.
    await page.goto(`${ADMIN}/#/roles`);
    await page.getByTestId('page-forbidden').waitFor();
  });
});

test('another tenant\u2019s ids answer 404', { timeout: 30_000 }, async () => {
  const a = await freshTenant('ta');
  const b = await freshTenant('tb');
  const unitOfA = items(await a.api.get('/units'))[0];
  const r = await b.api.req('GET', `/users?unit=${unitOfA.id}`);
  assert.ok(r.status === 404 || items(r.body).length === 0);
  const p = await b.api.req('PATCH', `/units/${unitOfA.id}`, { name: 'stolen' });
  assert.equal(p.status, 404);
  void Api;
});
