// A small client for the Herald gateway's /v1 API: plain ES module, global
// fetch (Node >= 18, browsers), no dependencies. Types: index.d.ts.

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
  constructor({ status, code = null, message, field = null, retryAfter = null }) {
    super(message);
    this.name = 'HeraldError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }

  toString() {
    return `HeraldError: HTTP ${this.status} ${this.code ?? 'error'}: ${this.message}${this.field ? ` (field ${this.field})` : ''}`;
  }
}

/** The gateway could not be reached or did not answer in time; whether a POST took effect is unknown. */
export class HeraldNetworkError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'HeraldNetworkError';
  }
}

export class Herald {
  #apiKey;

  constructor({ baseUrl, apiKey, timeoutMs = 10_000, retries = 0 } = {}) {
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
  async sendMessage({ channel, recipients, account, template, content, variables, sendAt, metadata, idempotencyKey } = {}) {
    if (!Array.isArray(recipients)) {
      throw new TypeError("recipients must be an array of addresses or {to, variables} objects");
    }
    const body = compact({
      channel,
      recipients: recipients.map(recipient),
      account,
      template,
      content,
      variables,
      send_at: sendAt == null ? undefined : timestamp(sendAt),
      metadata,
    });
    return this.#call('POST', '/v1/messages', { body, idempotencyKey });
  }

  /** GET /v1/messages/{id}: the message, each delivery's status, a summary by status, the cost. */
  async getMessage(messageId) {
    return this.#call('GET', `/v1/messages/${segment(messageId, 'messageId')}`);
  }

  /** POST /v1/actions/{id}/trigger → {id: <incident>, deduplicated} */
  async triggerAction(actionId, { level, recipients, variables, dedupKey, idempotencyKey } = {}) {
    const body = compact({ level, recipients, variables, dedup_key: dedupKey });
    return this.#call('POST', `/v1/actions/${segment(actionId, 'actionId')}/trigger`, { body, idempotencyKey });
  }

  /** GET /v1/incidents/{id}: state, acknowledgements, fired steps, timeline. */
  async getIncident(incidentId) {
    return this.#call('GET', `/v1/incidents/${segment(incidentId, 'incidentId')}`);
  }

  /** POST /v1/incidents/{id}/ack → {id, state, acknowledged_by}; the whole incident, or one recipient. */
  async ackIncident(incidentId, { recipient } = {}) {
    const body = recipient == null ? undefined : { recipient };
    return this.#call('POST', `/v1/incidents/${segment(incidentId, 'incidentId')}/ack`, { body });
  }

  /** GET /v1/ledger: balance and latest entries (integer minor units). */
  async getLedger({ limit } = {}) {
    return this.#call('GET', limit == null ? '/v1/ledger' : `/v1/ledger?limit=${encodeURIComponent(limit)}`);
  }

  /** GET /v1/plugins → {plugins: [...]}: the loaded channel plugins. */
  async listPlugins() {
    return this.#call('GET', '/v1/plugins');
  }

  async #call(method, path, { body, idempotencyKey } = {}) {
    const headers = { Authorization: `Bearer ${this.#apiKey}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (idempotencyKey != null) {
      if (typeof idempotencyKey !== 'string' || !IDEMPOTENCY_KEY.test(idempotencyKey)) {
        throw new TypeError('idempotencyKey must be 1-255 visible ASCII characters (no spaces)');
      }
      headers['Idempotency-Key'] = idempotencyKey;
    }
    const request = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
    const mayRepeat = method === 'GET' || idempotencyKey != null;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once(path, request);
      } catch (e) {
        const wait = e instanceof HeraldError ? retryWait(e) : null;
        if (!mayRepeat || attempt >= this.retries || wait === null) throw e;
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      }
    }
  }

  async #once(path, request) {
    let response, text;
    try {
      // A redirect is answered as an error (status 3xx; 0 in browsers): following it would carry the API key along.
      response = await fetch(this.baseUrl + path, { ...request, redirect: 'manual', signal: AbortSignal.timeout(this.timeoutMs) });
      text = await response.text();
    } catch (e) {
      const reason = e?.name === 'TimeoutError' ? `timed out after ${this.timeoutMs} ms` : e?.cause?.code ?? e?.cause?.message ?? e?.message;
      throw new HeraldNetworkError(`${request.method} ${path}: no answer from ${this.baseUrl}: ${reason}`, { cause: e });
    }
    if (!response.ok) throw this.#error(response, text);
    if (text === '') return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new HeraldError({ status: response.status, message: "the gateway's answer is not JSON" });
    }
  }

  #error(response, text) {
    let error = null;
    try {
      error = JSON.parse(text).error;
    } catch {
      // not the gateway's error body: keep the text
    }
    const fromBody = error !== null && typeof error === 'object';
    const message = (fromBody ? String(error.message ?? '') : text.trim().slice(0, 500)) || response.statusText || 'error';
    return new HeraldError({
      status: response.status,
      code: fromBody ? error.code ?? null : null,
      message: message.replaceAll(this.#apiKey, '[api key]'),
      field: fromBody ? error.field ?? null : null,
      retryAfter: retryAfter(response.headers.get('Retry-After')),
    });
  }
}

function compact(object) {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined && v !== null));
}

function recipient(r) {
  if (typeof r === 'string') return { to: r };
  if (r !== null && typeof r === 'object' && !Array.isArray(r)) return r;
  throw new TypeError(`a recipient must be an address or a {to} object, not ${r === null ? 'null' : typeof r}`);
}

function timestamp(t) {
  if (typeof t === 'string') return t;
  if (t instanceof Date) {
    if (Number.isNaN(t.getTime())) throw new RangeError('sendAt is an invalid Date');
    return t.toISOString();
  }
  throw new TypeError('sendAt must be a Date or an RFC 3339 string');
}

function segment(value, name) {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${name} must be a non-empty string`);
  return encodeURIComponent(value);
}

/** Retry-After in seconds; null when absent or not a number of seconds. */
function retryAfter(value) {
  const v = (value ?? '').trim();
  return /^\d+$/.test(v) ? Number(v) : null;
}

/** Seconds to wait before repeating after `e`; null: do not repeat. */
function retryWait(e) {
  if (e.status !== 429 && e.status !== 503) return null;
  const wait = e.retryAfter ?? DEFAULT_RETRY_WAIT;
  return wait <= MAX_RETRY_WAIT ? wait : null;
}
