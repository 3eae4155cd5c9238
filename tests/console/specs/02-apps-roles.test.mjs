// App market (messaging key shown once, API keys), roles with limited function
// and data permissions, and what a user with such a role sees and may call.
import { test, before, after } from 'node:test';
import { ADMIN, Api, assert, launch, uniq, withPage, uiLogin, freshTenant, clickAndConfirm, items } from '../lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('app market: enabling messaging shows the API key once; keys are listed, created and revoked', { timeout: 60_000 }, async (t) => {
  const tn = await freshTenant('app');
  await withPage(t, browser, async (page, context) => {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ADMIN });
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-apps').click();
    await page.getByTestId('page-apps').waitFor();
    const card = page.locator('[data-testid=app-card][data-id=messaging]');
    await card.waitFor();
    await page.getByTestId('app-enable-messaging').click();
    const key = (await page.getByTestId('api-key-value').textContent()).trim();
    assert.match(key, /^hk_\S{8,}$/, 'an hk_ key is shown');
    await page.getByTestId('api-key-copy').click();
    await page.getByTestId('api-key-copied').waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key, 'the key is on the clipboard');
    await page.getByTestId('api-key-done').click();
    await card.getByTestId('app-enabled').waitFor();
    assert.equal(await page.getByTestId('app-enable-messaging').count(), 0, 'no second enable button');

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

test('a role limited to directory.view + push.view on one unit: menus, buttons, users and API are restricted', { timeout: 90_000 }, async (t) => {
  const tn = await freshTenant('rol');
  const root = items(await tn.api.get('/units'))[0];
  const unitA = await tn.api.post('/units', { name: '华东区', parent: root.id });
  const unitA1 = await tn.api.post('/units', { name: '上海办', parent: unitA.id });
  const unitB = await tn.api.post('/units', { name: '华南区', parent: root.id });
  const inA = await tn.api.post('/users', { name: '东区同事', login: uniq('ea'), password: 'User-password-1', email: 'east@example.test', unit: unitA1.id, roles: [] });
  const inB = await tn.api.post('/users', { name: '南区同事', login: uniq('so'), password: 'User-password-1', email: 'south@example.test', unit: unitB.id, roles: [] });
  const limitedLogin = uniq('lim');
  const roleName = uniq('华东只读');

  await withPage(t, browser, async (page) => {
    await uiLogin(page, tn.login, tn.password);
    await page.getByTestId('nav-roles').click();
    await page.getByTestId('page-roles').waitFor();
    await page.getByTestId('role-add').click();
    await page.getByTestId('role-name').fill(roleName);
    // Permissions are grouped by menu.
    assert.ok(await page.getByTestId('perm-group').count() >= 5, 'permission groups shown');
    await page.getByTestId('perm-directory.view').check();
    await page.getByTestId('perm-push.view').check();
    await page.getByTestId('role-some-units').check();
    await page.locator(`[data-testid=role-units] input[value="${unitA.id}"]`).check();
    await page.getByTestId('dialog-submit').click();
    await page.locator(`[data-testid=role-row][data-name="${roleName}"]`).waitFor();
    const role = items(await tn.api.get('/roles')).find((r) => r.name === roleName);
    assert.deepEqual([...role.permissions].sort(), ['directory.view', 'push.view']);
    assert.equal(role.all_units, false);
    assert.deepEqual(role.units, [unitA.id]);

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
    await page.getByTestId('logout').click();
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

    await page.getByTestId('nav-pushes').click();
    await page.getByTestId('page-pushes').waitFor();
    assert.equal(await page.getByTestId('push-add').count(), 0, 'no new-push button');
    // A page outside their menus.
    await page.goto(`${ADMIN}/#/roles`);
    await page.getByTestId('page-forbidden').waitFor();

    // The API, with the same session cookie.
    const call = async (method, path, data) => (await page.request.fetch(`${ADMIN}/api/v1${path}`, { method, data, failOnStatusCode: false })).status();
    assert.equal(await call('GET', '/roles'), 403, 'roles.view missing');
    assert.equal(await call('POST', '/units', { name: 'x', parent: unitA.id }), 403, 'directory.edit missing');
    assert.equal(await call('POST', '/pushes', { title: 'x', channel: 'email', account: 'x' }), 403, 'push.edit missing');
    assert.equal(await call('GET', '/accounts'), 403, 'accounts.view missing');
    assert.equal(await call('GET', '/users/' + inA.id), 200, 'a user in their units');
    assert.ok([403, 404].includes(await call('GET', '/users/' + inB.id)), 'a user outside their units is not served');
    assert.ok([403, 404].includes(await call('GET', `/users?unit=${unitB.id}`)) ||
      items(await (await page.request.get(`${ADMIN}/api/v1/users?unit=${unitB.id}`)).json()).length === 0, 'no users of other units');
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
