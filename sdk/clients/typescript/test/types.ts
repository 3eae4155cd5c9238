// Compile-time tests of the client's types (tsc --noEmit, never run): what
// they must accept, and with @ts-expect-error what they must refuse. A change
// of the gateway's OpenAPI document that breaks a call fails here.

import { Herald, HeraldError, HeraldNetworkError, type IncidentState, type Schemas, type TriggerLevel } from '../src/index.js';

declare const herald: Herald;

/** Compiles only when A and B are the same type. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function same<_ extends true>(): void {}

export async function messages(): Promise<void> {
  const answer = await herald.sendMessage({
    channel: 'webhook',
    recipients: ['ann', { to: 'bob', variables: { name: 'Bob', vip: true } }],
    template: 'welcome',
    metadata: { order: 'A-1' },
    sendAt: new Date(),
    idempotencyKey: 'order-42',
  });
  same<Equal<typeof answer.id, string>>();
  same<Equal<typeof answer.recipients, number>>();
  // Unix milliseconds, when held until later.
  same<Equal<typeof answer.send_at, number | undefined>>();
  await herald.sendMessage({ channel: 'webhook', recipients: ['carl'], content: { text: 'Hi {{ recipient }}' }, sendAt: 1_796_115_600_000 });
  await herald.sendMessage({ channel: 'webhook', recipients: ['dora'], template: 'welcome', sendAt: '2026-12-01T09:00:00Z' });

  // @ts-expect-error channel is required
  await herald.sendMessage({ recipients: ['ann'] });
  // @ts-expect-error an argument the API does not have
  await herald.sendMessage({ channel: 'webhook', recipients: ['ann'], sendAfter: 1 });
  // @ts-expect-error metadata values are strings
  await herald.sendMessage({ channel: 'webhook', recipients: ['ann'], metadata: { n: 1 } });
  // @ts-expect-error a recipient object needs `to`
  await herald.sendMessage({ channel: 'webhook', recipients: [{ variables: {} }] });

  const view = await herald.getMessage(answer.id);
  const delivery = view.deliveries[0];
  if (delivery !== undefined) {
    same<Equal<typeof delivery.status, Schemas['DeliveryStatus']>>();
    same<Equal<typeof delivery.attempts, number>>();
    // @ts-expect-error not a delivery status
    delivery.status === 'lost';
  }
  same<Equal<typeof view.accepted_at, number>>();
}

export async function tiered(): Promise<void> {
  const trigger = await herald.triggerAction('disk-full', {
    level: 'urgent',
    variables: { host: 'db1' },
    recipients: { list: [{ to: 'oncall' }] },
    dedupKey: 'disk-db1',
    idempotencyKey: 'alert-1',
  });
  same<Equal<typeof trigger.deduplicated, boolean>>();
  // @ts-expect-error not a level
  await herald.triggerAction('disk-full', { level: 'critical' });

  const incident = await herald.getIncident(trigger.id);
  same<Equal<typeof incident.acknowledged_by, string[]>>();
  same<Equal<typeof incident.created_at, number>>();
  same<Equal<typeof incident.level, TriggerLevel>>();
  same<Equal<typeof incident.state, IncidentState>>();
  const acked = await herald.ackIncident(incident.id, { recipient: 'oncall' });
  same<Equal<typeof acked.acknowledged_by, string[]>>();
  await herald.ackIncident(incident.id);
}

export function errors(e: unknown): string {
  if (e instanceof HeraldError) {
    same<Equal<typeof e.status, number>>();
    same<Equal<typeof e.code, string | null>>();
    same<Equal<typeof e.field, string | null>>();
    same<Equal<typeof e.retryAfter, number | null>>();
    return `${e.status} ${e.code ?? ''} ${e.field ?? ''} ${e.message}`;
  }
  return e instanceof HeraldNetworkError ? e.message : String(e);
}

// @ts-expect-error the API key is required
new Herald({ baseUrl: 'http://127.0.0.1:8080' });
