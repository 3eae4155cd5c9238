// The client (as built: dist/) against the real herald-gateway, started by
// the shared test bed (../../testbed.py, Python standard library only).
// From sdk/clients/typescript: npm test (tsc check, build, node --test).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { inspect } from 'node:util';

import * as client from '../dist/index.js';
import { Herald, HeraldError, HeraldNetworkError } from '../dist/index.js';

const testbed = new URL('../../testbed.py', import.meta.url).pathname;
let bed;

before(async () => {
  const child = spawn('python3', [testbed], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the test bed exited (${code}) before it was ready`)));
  });
  bed = { ...JSON.parse(line), child };
});

after(async () => {
  if (!bed || bed.child.exitCode !== null) return;
  const exited = new Promise((resolve) => bed.child.once('exit', resolve));
  bed.child.stdin.end(); // the test bed stops everything when its stdin closes
  await exited;
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function waitSent(herald, messageId) {
  return waitFor(`message ${messageId} to be sent`, async () => {
    const view = await herald.getMessage(messageId);
    const statuses = view.deliveries.map((d) => d.status);
    assert.ok(!statuses.some((s) => s === 'failed' || s === 'dead'), `a delivery failed: ${JSON.stringify(view)}`);
    return statuses.every((s) => ['sent', 'delivered', 'read'].includes(s)) ? view : null;
  });
}

/** The webhook bodies the demo inbox received, oldest first. */
async function inbox() {
  const response = await fetch(`${bed.url}/demo/inbox`);
  return (await response.json()).received.map((item) => item.body);
}

const inboxOf = async (messageId) => (await inbox()).filter((b) => b.id.startsWith(`${messageId}.`));

/** The error `promise` rejects with. */
async function failure(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected an error');
}

describe('messages', () => {
  const herald = () => new Herald({ baseUrl: bed.url, apiKey: bed.key });

  test('a template is rendered per recipient and sent', async () => {
    const answer = await herald().sendMessage({
      channel: 'webhook',
      template: 'welcome',
      recipients: [{ to: 'ann', variables: { name: 'Ann' } }, { to: 'bob', variables: { name: 'Bob' } }],
      metadata: { order: 'A-1' },
    });
    assert.equal(answer.status, 'accepted');
    assert.equal(answer.recipients, 2);
    const view = await waitSent(herald(), answer.id);
    assert.deepEqual([view.id, view.template, view.summary], [answer.id, 'welcome', { sent: 2 }]);
    const bodies = Object.fromEntries((await inboxOf(answer.id)).map((b) => [b.recipient, b]));
    assert.deepEqual(Object.keys(bodies).sort(), ['ann', 'bob']);
    assert.equal(bodies.ann.text, 'Hello Ann, welcome to Herald.');
    assert.equal(bodies.bob.text, 'Hello Bob, welcome to Herald.');
    assert.equal(bodies.bob.subject, 'Welcome, Bob');
    assert.equal(bodies.ann.metadata.order, 'A-1');
  });

  test('inline content with shared variables and plain addresses', async () => {
    const answer = await herald().sendMessage({
      channel: 'webhook',
      account: 'demo-webhook',
      recipients: ['carl'],
      content: { text: '{{ greeting }}, {{ recipient }}' },
      variables: { greeting: 'Hi' },
    });
    await waitSent(herald(), answer.id);
    assert.deepEqual((await inboxOf(answer.id)).map((b) => b.text), ['Hi, carl']);
  });

  test('sendAt is a Date, Unix milliseconds or a string', async () => {
    const at = new Date(Date.now() + 2000);
    const answer = await herald().sendMessage({ channel: 'webhook', template: 'welcome', recipients: ['dora'], sendAt: at });
    assert.equal(answer.send_at, at.getTime(), 'held until later; Unix milliseconds');
    const view = await herald().getMessage(answer.id);
    assert.equal(view.send_at, at.getTime());
    assert.equal(view.deliveries[0].status, 'queued', 'held until send_at');
    await waitSent(herald(), answer.id);

    const inAMinute = Date.now() + 60_000;
    assert.equal((await herald().sendMessage({ channel: 'webhook', template: 'welcome', recipients: ['dora'], sendAt: inAMinute })).send_at, inAMinute);

    const past = await herald().sendMessage({ channel: 'webhook', template: 'welcome', recipients: ['emil'], sendAt: '2000-01-01T00:00:00Z' });
    assert.equal(past.send_at, undefined, 'a past send_at means now');
    await waitSent(herald(), past.id);

    const offline = new Herald({ baseUrl: bed.closed_url, apiKey: bed.key }); // checked before anything is sent
    const e = await failure(offline.sendMessage({ channel: 'webhook', template: 'welcome', recipients: ['x'], sendAt: new Date('nonsense') }));
    assert.ok(e instanceof RangeError, String(e));
  });

  test('an idempotency key returns the first answer and sends once', async () => {
    const send = (extra) =>
      herald().sendMessage({ channel: 'webhook', template: 'welcome', recipients: [{ to: 'fay', variables: { name: 'Fay' } }], ...extra });
    const first = await send({ idempotencyKey: 'order-42' });
    assert.deepEqual(await send({ idempotencyKey: 'order-42' }), first);
    const view = await waitSent(herald(), first.id);
    assert.deepEqual(view.deliveries.map((d) => d.attempts), [1]);
    await sleep(500);
    assert.equal((await inboxOf(first.id)).length, 1, 'sent once');

    const reused = await failure(send({ idempotencyKey: 'order-42', metadata: { changed: 'yes' } }));
    assert.ok(reused instanceof HeraldError);
    assert.deepEqual([reused.status, reused.code, reused.field], [409, 'idempotency_key_reused', 'Idempotency-Key']);
    const bad = await failure(send({ idempotencyKey: 'has a space' }));
    assert.ok(bad instanceof TypeError && /idempotencyKey/.test(bad.message), String(bad));
  });

  test("bad requests carry the server's code and field", async () => {
    const cases = [
      [{ channel: 'carrier-pigeon', recipients: ['ann'], template: 'welcome' }, 422, 'unknown_channel', 'channel'],
      [{ channel: 'webhook', recipients: [], template: 'welcome' }, 400, 'invalid_field', 'recipients'],
      [{ channel: 'webhook', recipients: ['x'.repeat(513)], template: 'welcome' }, 400, 'limit_exceeded', 'recipients[0].to'],
      [{ channel: 'webhook', recipients: ['ann'], template: 'welcome', content: { text: 'hi' } }, 400, 'invalid_field', 'content'],
      [{ channel: 'webhook', recipients: ['ann'], template: 'nope' }, 422, 'unknown_template', 'template'],
      [{ channel: 'webhook', recipients: ['ann'], content: { text: '{{ oops' } }, 400, 'invalid_template', 'content.text'],
      [{ channel: 'webhook', recipients: ['ann'], account: 'nope', template: 'welcome' }, 422, 'unknown_account', 'account'],
    ];
    for (const [request, status, code, field] of cases) {
      const e = await failure(herald().sendMessage(request));
      assert.ok(e instanceof HeraldError, String(e));
      assert.deepEqual([e.status, e.code, e.field], [status, code, field], String(e));
      assert.ok(e.message);
      assert.match(String(e), new RegExp(code));
    }

    const missing = await failure(herald().getMessage('a/b')); // one path segment: the message is missing, not the route
    assert.deepEqual([missing.status, missing.code, missing.field], [404, 'not_found', 'id']);

    const tooLarge = await failure(herald().sendMessage({ channel: 'webhook', recipients: ['ann'], content: { text: 'x'.repeat(70_000) } }));
    assert.deepEqual([tooLarge.status, tooLarge.code, tooLarge.field], [413, 'too_large', null]);
    assert.match(tooLarge.message, /limit/);

    const notAList = await failure(herald().sendMessage({ channel: 'webhook', recipients: 'ann', template: 'welcome' }));
    assert.ok(notAList instanceof TypeError && /array of addresses/.test(notAList.message));
  });
});

describe('tiered push', () => {
  const herald = () => new Herald({ baseUrl: bed.url, apiKey: bed.tiered_key });

  test('trigger, read the incident, acknowledge', async () => {
    const trigger = () =>
      herald().triggerAction(bed.action, { level: 'urgent', variables: { host: 'db1' }, dedupKey: 'disk-db1', idempotencyKey: 'alert-1' });
    const first = await trigger();
    assert.equal(first.deduplicated, false);
    assert.equal((await trigger()).id, first.id);

    const incident = await waitFor('the first step', async () => {
      const i = await herald().getIncident(first.id);
      return i.timeline.some((e) => e.kind === 'fired') ? i : null;
    });
    assert.deepEqual([incident.action, incident.level, incident.state], [bed.action, 'urgent', 'open']);
    // An empty list is truthy: wait until the incident's delivery is in the inbox.
    const texts = await waitFor('the webhook', async () => {
      const t = (await inbox()).filter((b) => b.metadata.incident === first.id).map((b) => b.text);
      return t.length ? t : null;
    });
    assert.equal(texts.length, 1);
    assert.ok(texts[0].startsWith('Disk db1 is full\nAck: ') && texts[0].includes('/v1/ack/'), texts[0]);

    assert.deepEqual((await herald().ackIncident(first.id, { recipient: 'oncall' })).acknowledged_by, ['oncall']);
    const acked = await herald().ackIncident(first.id);
    assert.deepEqual([acked.id, acked.state], [first.id, 'acknowledged']);
    assert.equal((await herald().getIncident(first.id)).state, 'acknowledged');

    const otherTenant = new Herald({ baseUrl: bed.url, apiKey: bed.key });
    assert.equal((await failure(otherTenant.getIncident(first.id))).status, 404);
  });

  test('errors', async () => {
    const cases = [
      [() => herald().triggerAction('no-such-action', { level: 'urgent' }), 404, 'not_found', 'id'],
      [() => herald().triggerAction(bed.action, { level: 'critical' }), 400, 'invalid_field', 'level'],
      [() => herald().getIncident('no-such-incident'), 404, 'not_found', 'id'],
      [() => herald().ackIncident('no-such-incident'), 404, 'not_found', 'id'],
    ];
    for (const [call, status, code, field] of cases) {
      const e = await failure(call());
      assert.ok(e instanceof HeraldError, String(e));
      assert.deepEqual([e.status, e.code, e.field], [status, code, field]);
    }
  });
});

test('ledger and plugins', async () => {
  const herald = new Herald({ baseUrl: bed.url, apiKey: bed.key });
  const ledger = await herald.getLedger({ limit: 5 });
  assert.deepEqual([ledger.tenant, ledger.currency], ['demo', 'CNY']);
  assert.ok(Number.isInteger(ledger.balance_minor));
  assert.ok(Array.isArray(ledger.entries));
  const e = await failure(herald.getLedger({ limit: 0 }));
  assert.deepEqual([e.status, e.field], [400, 'limit']);
  assert.deepEqual((await herald.listPlugins()).plugins.map((p) => p.name), ['webhook']);
});

describe('keys and the network', () => {
  const SECRET = 'hk_wrong_s3cr3t_s3cr3t_s3cr3t';
  const assertNoSecret = (...texts) => texts.forEach((t) => assert.ok(!String(t).includes(SECRET), `the key shows in: ${t}`));

  test('a wrong key is a 401 that does not show the key', async () => {
    const herald = new Herald({ baseUrl: bed.url, apiKey: SECRET });
    for (const call of [() => herald.getMessage('x'), () => herald.sendMessage({ channel: 'webhook', recipients: ['ann'], template: 'welcome' })]) {
      const e = await failure(call());
      assert.ok(e instanceof HeraldError, String(e));
      assert.deepEqual([e.status, e.code], [401, 'unauthenticated']);
      assertNoSecret(String(e), e.message, e.stack, inspect(e), JSON.stringify(e), inspect(herald, { showHidden: true }), JSON.stringify(herald));
    }
  });

  test('an error page quoting the key is redacted', async () => {
    const e = await failure(new Herald({ baseUrl: `${bed.stub_url}/echo-auth`, apiKey: SECRET }).getMessage('x'));
    assert.deepEqual([e.status, e.code, e.field], [502, null, null]);
    assert.match(e.message, /Authorization: Bearer \[api key\]/);
    assertNoSecret(String(e), e.message, e.stack, inspect(e));
  });

  test('redirects are not followed', async () => {
    const e = await failure(new Herald({ baseUrl: `${bed.stub_url}/redirect`, apiKey: bed.key }).getMessage('x'));
    assert.deepEqual([e.status, e.code], [302, null]);
  });

  test('a malformed key is refused without showing it', () => {
    assert.throws(() => new Herald({ baseUrl: bed.url, apiKey: `${SECRET}\n` }), (e) => {
      assertNoSecret(e.message);
      return e instanceof TypeError;
    });
    assert.throws(() => new Herald({ baseUrl: '127.0.0.1:8080', apiKey: bed.key }), /baseUrl/);
  });

  test('a gateway that is not listening is a network error', async () => {
    const e = await failure(new Herald({ baseUrl: bed.closed_url, apiKey: SECRET, retries: 3 }).getMessage('x'));
    assert.ok(e instanceof HeraldNetworkError && !(e instanceof HeraldError), String(e));
    assert.match(e.message, /ECONNREFUSED/);
    assertNoSecret(e.message, inspect(e));
  });

  test('no answer in time is a network error', async () => {
    const started = Date.now();
    const herald = new Herald({ baseUrl: bed.silent_url, apiKey: bed.key, timeoutMs: 500 });
    const e = await failure(herald.sendMessage({ channel: 'webhook', recipients: ['ann'], template: 'welcome' }));
    assert.ok(e instanceof HeraldNetworkError, String(e));
    assert.match(e.message, /timed out/);
    assert.ok(Date.now() - started < 5000);
  });
});

describe('retries (against the test bed stub: the first n answers of a scenario are errors)', () => {
  const herald = (scenario, options = {}) => new Herald({ baseUrl: `${bed.stub_url}/${scenario}`, apiKey: bed.key, ...options });
  const send = { channel: 'webhook', recipients: ['ann'], template: 'welcome' };

  test('an idempotent POST is retried with the same key', async () => {
    assert.deepEqual(await herald('503x2r0-send', { retries: 2 }).sendMessage({ ...send, idempotencyKey: 'k-1' }), {
      attempts: 3,
      idempotency_key: 'k-1',
    });
    const answer = await herald('429x1r0-trigger', { retries: 1 }).triggerAction('a', { level: 'urgent', idempotencyKey: 'k-2' });
    assert.equal(answer.attempts, 2);
  });

  test('POSTs without a key and acks are not retried', async () => {
    const e = await failure(herald('503x1r0-nokey', { retries: 3 }).sendMessage(send));
    assert.deepEqual([e.status, e.code, e.message, e.retryAfter], [503, 'stub', 'attempt 1', 0]);
    assert.equal((await failure(herald('503x1r0-ack', { retries: 3 }).ackIncident('i'))).message, 'attempt 1');
  });

  test('retries are off by default and bounded', async () => {
    assert.equal((await failure(herald('503x1r0-default').getMessage('m'))).message, 'attempt 1');
    const e = await failure(herald('429x9r0-bounded', { retries: 2 }).getMessage('m'));
    assert.deepEqual([e.status, e.message], [429, 'attempt 3']);
    assert.equal((await failure(herald('500x1r0-other', { retries: 2 }).getMessage('m'))).message, 'attempt 1');
  });

  test('a long Retry-After goes to the caller', async () => {
    const started = Date.now();
    const e = await failure(herald('503x1r120-long', { retries: 3 }).getMessage('m'));
    assert.deepEqual([e.message, e.retryAfter], ['attempt 1', 120]);
    assert.ok(Date.now() - started < 5000);
  });

  test('without Retry-After the wait is one second', async () => {
    const started = Date.now();
    assert.equal((await herald('503x1-plain', { retries: 1 }).getMessage('m')).attempts, 2);
    assert.ok(Date.now() - started >= 1000);
  });
});

test('the declarations name what the module exports', () => {
  const declared = [...readFileSync(new URL('../dist/index.d.ts', import.meta.url), 'utf8').matchAll(/^export declare (?:class|const|function) (\w+)/gm)];
  assert.deepEqual(declared.map((m) => m[1]).sort(), Object.keys(client).sort());
});
