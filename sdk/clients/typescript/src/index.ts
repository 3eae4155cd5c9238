// A typed client for the Herald gateway's /v1 API: an ES module on global
// fetch (Node >= 20, browsers), no runtime dependencies. Requests and answers
// are typed by gateway.ts, which openapi-typescript generates from the
// gateway's OpenAPI document (sdk/openapi/gateway.json; sdk/clients/generate.sh).

import type { components, paths } from './gateway.js';

type JsonOf<R> = R extends { content: { 'application/json': infer T } } ? T : never;
/** The JSON answer of an operation's success status. */
type Answer<Op> = Op extends { responses: infer R } ? JsonOf<R[Extract<keyof R, 200 | 201 | 202>]> : never;
/** The JSON request body of an operation. */
type Body<Op> = Op extends { requestBody?: infer B } ? JsonOf<NonNullable<B>> : never;

/** The schemas of the gateway's OpenAPI document. */
export type Schemas = components['schemas'];
export type { components, paths };

export type SendMessageRequest = Body<paths['/v1/messages']['post']>;
export type SendMessageAnswer = Answer<paths['/v1/messages']['post']>;
export type MessageView = Answer<paths['/v1/messages/{id}']['get']>;
export type TriggerRequest = Body<paths['/v1/actions/{id}/trigger']['post']>;
export type TriggerAnswer = Answer<paths['/v1/actions/{id}/trigger']['post']>;
export type Incident = Answer<paths['/v1/incidents/{id}']['get']>;
export type AckRequest = Body<paths['/v1/incidents/{id}/ack']['post']>;
export type AckAnswer = Answer<paths['/v1/incidents/{id}/ack']['post']>;
export type Ledger = Answer<paths['/v1/ledger']['get']>;
export type PluginList = Answer<paths['/v1/plugins']['get']>;
/** Every error answer: `{"error": {"code", "message", "field"?}}`. */
export type ErrorBody = Schemas['ErrorBody'];

/** A recipient as the gateway takes it: `{to, variables?}`. */
export type Recipient = SendMessageRequest['recipients'][number];
export type Content = Schemas['Content'];
export type Targets = Schemas['Targets'];
export type Delivery = Schemas['DeliveryRecord'];
export type DeliveryStatus = Schemas['DeliveryStatus'];
export type TimelineEvent = Schemas['TimelineEvent'];
export type TriggerLevel = Schemas['TriggerLevel'];
export type IncidentState = Schemas['IncidentState'];

/** The arguments of `sendMessage`: the request body in camelCase, plus the idempotency key. */
export interface SendMessage {
  /** A loaded plugin's name, e.g. "email", "webhook". */
  channel: SendMessageRequest['channel'];
  /** Addresses, or {to, variables} objects (recipient variables override the shared ones). */
  recipients: Array<string | Recipient>;
  /** Sender account; optional if the tenant has one for the channel. */
  account?: SendMessageRequest['account'];
  /** A stored template, or inline `content` (not both). */
  template?: SendMessageRequest['template'];
  content?: SendMessageRequest['content'];
  variables?: SendMessageRequest['variables'];
  /** Held durably until then: a Date, Unix milliseconds, or an RFC 3339 string with an offset. */
  sendAt?: Date | NonNullable<SendMessageRequest['send_at']> | null;
  metadata?: SendMessageRequest['metadata'];
  /** 1-255 visible ASCII characters: a repeat returns the first answer and sends nothing twice. */
  idempotencyKey?: string | null;
}

/** The arguments of `triggerAction`. */
export interface TriggerAction {
  level: TriggerRequest['level'];
  /** Added to the action's own recipients. */
  recipients?: TriggerRequest['recipients'];
  variables?: TriggerRequest['variables'];
  /** Repeated triggers with this key fold into the open incident. */
  dedupKey?: TriggerRequest['dedup_key'];
  idempotencyKey?: string | null;
}

export interface HeraldOptions {
  /** e.g. "http://127.0.0.1:8080" (a path prefix is kept). */
  baseUrl: string;
  /** The tenant's API key; never shown in errors or when the client is inspected. */
  apiKey: string;
  /** Bound of each HTTP exchange; default 10000. */
  timeoutMs?: number;
  /** How often a 429/503 is retried (GETs, and POSTs with an idempotency key); default 0. */
  retries?: number;
}

/** A Retry-After longer than this (seconds) is not waited out: the error goes to the caller. */
export const MAX_RETRY_WAIT = 30;
/** The wait (seconds) before a retry when a 429/503 has no Retry-After (e.g. from a proxy). */
export const DEFAULT_RETRY_WAIT = 1;

// As the gateway checks it (README: 1-255 visible ASCII characters); checked
// here too because a header cannot carry anything else.
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const API_KEY = /^[\x21-\x7e]+$/;

/** The gateway answered with an error status. */
export class HeraldError extends Error {
  override readonly name = 'HeraldError';
  /** HTTP status. */
  readonly status: number;
  /** From the error body; null when the answer had none (e.g. a proxy's error page). */
  readonly code: string | null;
  /** The request part at fault (`recipients[3].to`, `Idempotency-Key`), when the body names one. */
  readonly field: string | null;
  /** Retry-After in seconds, when the answer had one (503, 429). */
  readonly retryAfter: number | null;

  constructor(init: { status: number; code?: string | null; message: string; field?: string | null; retryAfter?: number | null }) {
    super(init.message);
    this.status = init.status;
    this.code = init.code ?? null;
    this.field = init.field ?? null;
    this.retryAfter = init.retryAfter ?? null;
  }

  override toString(): string {
    return `HeraldError: HTTP ${this.status} ${this.code ?? 'error'}: ${this.message}${this.field ? ` (field ${this.field})` : ''}`;
  }
}

/** The gateway could not be reached or did not answer in time; whether a POST took effect is unknown. */
export class HeraldNetworkError extends Error {
  override readonly name = 'HeraldNetworkError';
}

interface Call {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  idempotencyKey?: string | null | undefined;
}

export class Herald {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly #apiKey: string;

  constructor({ baseUrl, apiKey, timeoutMs = 10_000, retries = 0 }: HeraldOptions) {
    if (typeof baseUrl !== 'string' || !/^https?:\/\/[^/]/.test(baseUrl)) {
      throw new TypeError('baseUrl must be an http:// or https:// URL, e.g. http://127.0.0.1:8080');
    }
    if (typeof apiKey !== 'string' || !API_KEY.test(apiKey)) {
      // Never echo the key, not even a bad one.
      throw new TypeError('apiKey must be a non-empty string of visible ASCII characters');
    }
    if (!Number.isInteger(retries) || retries < 0) throw new RangeError('retries must be an integer >= 0');
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.timeoutMs = timeoutMs;
    this.retries = retries;
    this.#apiKey = apiKey;
  }

  /** POST /v1/messages → {id, status: "accepted", recipients, send_at?} */
  async sendMessage(request: SendMessage): Promise<SendMessageAnswer> {
    const { channel, recipients, account, template, content, variables, sendAt, metadata, idempotencyKey } = request;
    if (!Array.isArray(recipients)) {
      throw new TypeError('recipients must be an array of addresses or {to, variables} objects');
    }
    const body: SendMessageRequest = { channel, recipients: recipients.map(recipient) };
    if (account != null) body.account = account;
    if (template != null) body.template = template;
    if (content != null) body.content = content;
    if (variables != null) body.variables = variables;
    if (sendAt != null) body.send_at = timestamp(sendAt);
    if (metadata != null) body.metadata = metadata;
    return (await this.#call({ method: 'POST', path: '/v1/messages', body, idempotencyKey })) as SendMessageAnswer;
  }

  /** GET /v1/messages/{id}: the message, each delivery's status, a summary by status, the cost. */
  async getMessage(messageId: string): Promise<MessageView> {
    return (await this.#call({ method: 'GET', path: `/v1/messages/${segment(messageId, 'messageId')}` })) as MessageView;
  }

  /** POST /v1/actions/{id}/trigger → {id: <incident>, deduplicated} */
  async triggerAction(actionId: string, request: TriggerAction): Promise<TriggerAnswer> {
    const { level, recipients, variables, dedupKey, idempotencyKey } = request;
    const body: TriggerRequest = { level };
    if (recipients != null) body.recipients = recipients;
    if (variables != null) body.variables = variables;
    if (dedupKey != null) body.dedup_key = dedupKey;
    const path = `/v1/actions/${segment(actionId, 'actionId')}/trigger`;
    return (await this.#call({ method: 'POST', path, body, idempotencyKey })) as TriggerAnswer;
  }

  /** GET /v1/incidents/{id}: state, acknowledgements, fired steps, timeline. */
  async getIncident(incidentId: string): Promise<Incident> {
    return (await this.#call({ method: 'GET', path: `/v1/incidents/${segment(incidentId, 'incidentId')}` })) as Incident;
  }

  /** POST /v1/incidents/{id}/ack → {id, state, acknowledged_by}; the whole incident, or one recipient. */
  async ackIncident(incidentId: string, options: { recipient?: string | null } = {}): Promise<AckAnswer> {
    const body: AckRequest | undefined = options.recipient == null ? undefined : { recipient: options.recipient };
    return (await this.#call({ method: 'POST', path: `/v1/incidents/${segment(incidentId, 'incidentId')}/ack`, body })) as AckAnswer;
  }

  /** GET /v1/ledger: balance and latest entries (integer minor units). */
  async getLedger(options: { limit?: number | null } = {}): Promise<Ledger> {
    const path = options.limit == null ? '/v1/ledger' : `/v1/ledger?limit=${encodeURIComponent(options.limit)}`;
    return (await this.#call({ method: 'GET', path })) as Ledger;
  }

  /** GET /v1/plugins → {plugins: [...]}: the loaded channel plugins. */
  async listPlugins(): Promise<PluginList> {
    return (await this.#call({ method: 'GET', path: '/v1/plugins' })) as PluginList;
  }

  async #call({ method, path, body, idempotencyKey }: Call): Promise<unknown> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.#apiKey}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (idempotencyKey != null) {
      if (typeof idempotencyKey !== 'string' || !IDEMPOTENCY_KEY.test(idempotencyKey)) {
        throw new TypeError('idempotencyKey must be 1-255 visible ASCII characters (no spaces)');
      }
      headers['Idempotency-Key'] = idempotencyKey;
    }
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = JSON.stringify(body);
    // Repeating these does nothing twice.
    const mayRepeat = method === 'GET' || idempotencyKey != null;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once(path, init);
      } catch (e) {
        const wait = e instanceof HeraldError ? retryWait(e) : null;
        if (!mayRepeat || attempt >= this.retries || wait === null) throw e;
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      }
    }
  }

  async #once(path: string, init: RequestInit): Promise<unknown> {
    let response: Response;
    let text: string;
    try {
      // A redirect is answered as an error (status 3xx; 0 in browsers): following it would carry the API key along.
      response = await fetch(this.baseUrl + path, { ...init, redirect: 'manual', signal: AbortSignal.timeout(this.timeoutMs) });
      text = await response.text();
    } catch (e) {
      throw new HeraldNetworkError(`${init.method} ${path}: no answer from ${this.baseUrl}: ${this.#reason(e)}`, { cause: e });
    }
    if (!response.ok) throw this.#error(response, text);
    if (text === '') return null;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new HeraldError({ status: response.status, message: "the gateway's answer is not JSON" });
    }
  }

  #reason(e: unknown): string {
    if (!(e instanceof Error)) return String(e);
    if (e.name === 'TimeoutError') return `timed out after ${this.timeoutMs} ms`;
    const cause = e.cause as { code?: unknown; message?: unknown } | undefined;
    return String(cause?.code ?? cause?.message ?? e.message);
  }

  #error(response: Response, text: string): HeraldError {
    let error: Partial<ErrorBody['error']> | null = null;
    try {
      const parsed = JSON.parse(text) as { error?: unknown } | null;
      if (parsed !== null && typeof parsed.error === 'object' && parsed.error !== null) error = parsed.error;
    } catch {
      // not the gateway's error body: keep the text
    }
    const message = (error !== null ? String(error.message ?? '') : text.trim().slice(0, 500)) || response.statusText || 'error';
    return new HeraldError({
      status: response.status,
      code: typeof error?.code === 'string' ? error.code : null,
      message: message.replaceAll(this.#apiKey, '[api key]'),
      field: typeof error?.field === 'string' ? error.field : null,
      retryAfter: retryAfter(response.headers.get('Retry-After')),
    });
  }
}

function recipient(r: string | Recipient): Recipient {
  if (typeof r === 'string') return { to: r };
  if (r !== null && typeof r === 'object' && !Array.isArray(r)) return r;
  throw new TypeError(`a recipient must be an address or a {to} object, not ${r === null ? 'null' : typeof r}`);
}

function timestamp(t: Date | number | string): number | string {
  if (t instanceof Date) {
    if (Number.isNaN(t.getTime())) throw new RangeError('sendAt is an invalid Date');
    return t.getTime();
  }
  if (typeof t === 'string') return t;
  if (Number.isSafeInteger(t)) return t;
  throw new TypeError('sendAt must be a Date, integer Unix milliseconds or an RFC 3339 string');
}

function segment(value: string, name: string): string {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${name} must be a non-empty string`);
  return encodeURIComponent(value);
}

/** Retry-After in seconds; null when absent or not a number of seconds. */
function retryAfter(value: string | null): number | null {
  const v = (value ?? '').trim();
  return /^\d+$/.test(v) ? Number(v) : null;
}

/** Seconds to wait before repeating after `e`; null: do not repeat. */
function retryWait(e: HeraldError): number | null {
  if (e.status !== 429 && e.status !== 503) return null;
  const wait = e.retryAfter ?? DEFAULT_RETRY_WAIT;
  return wait <= MAX_RETRY_WAIT ? wait : null;
}
