// Types of @herald/client (index.js). Every method resolves to the gateway's
// JSON answer as it is; the answer types below name the documented fields.

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type Variables = { [name: string]: JsonValue };

export interface Recipient {
  to: string;
  variables?: Variables;
}

export interface Content {
  subject?: string;
  text?: string;
  html?: string;
}

export interface SendMessageRequest {
  /** A loaded plugin's name, e.g. "email", "webhook". */
  channel: string;
  /** Addresses, or {to, variables} objects (recipient variables override the shared ones). */
  recipients: Array<string | Recipient>;
  /** Sender account; optional if the tenant has one for the channel. */
  account?: string;
  /** A stored template, or inline `content` (not both). */
  template?: string;
  content?: Content;
  variables?: Variables;
  /** Held durably until then; a Date or an RFC 3339 string (with offset). */
  sendAt?: Date | string;
  metadata?: { [key: string]: string };
  /** 1-255 visible ASCII characters: a repeat returns the first answer and sends nothing twice. */
  idempotencyKey?: string;
}

export interface SendMessageAnswer {
  id: string;
  status: 'accepted';
  recipients: number;
  /** RFC 3339, when the message is held until later. */
  send_at?: string;
}

export type DeliveryStatus = 'queued' | 'retrying' | 'sent' | 'delivered' | 'read' | 'failed' | 'dead';

export interface Delivery {
  id: string;
  recipient: string;
  status: DeliveryStatus;
  attempts: number;
  detail?: string;
  provider_id?: string;
  cost_minor: number;
  /** Unix milliseconds. */
  updated_at: number;
}

export interface MessageView {
  id: string;
  tenant: string;
  channel: string;
  account: string;
  template?: string;
  /** Unix milliseconds. */
  accepted_at: number;
  /** Unix milliseconds. */
  send_at?: number;
  deliveries: Delivery[];
  summary: { [status: string]: number };
  cost_minor: number;
}

export interface Targets {
  /** Directory user ids. */
  users?: string[];
  /** Org unit ids (every user in the unit's subtree). */
  units?: string[];
  list?: Array<{ to: string; name?: string; channel?: string; variables?: Variables }>;
}

export interface TriggerRequest {
  level: 'urgent' | 'normal' | 'info';
  recipients?: Targets;
  variables?: Variables;
  /** Repeated triggers with this key fold into the open incident. */
  dedupKey?: string;
  idempotencyKey?: string;
}

export interface TriggerAnswer {
  /** The incident. */
  id: string;
  deduplicated: boolean;
}

export interface TimelineEvent {
  at: number;
  kind: string;
  step?: number;
  channel?: string;
  recipients?: string[];
  message_id?: string;
  detail?: string;
}

export interface Incident {
  id: string;
  action: string;
  level: string;
  /** "open", "acknowledged" or "done". */
  state: string;
  dedup_key: string | null;
  repeats: number;
  acknowledged_by: string[];
  steps: number;
  fired: number[];
  timeline: TimelineEvent[];
  created_at: number;
}

export interface AckAnswer {
  id: string;
  state: string;
  acknowledged_by: string[];
}

export interface Ledger {
  tenant: string;
  currency: string;
  balance_minor: number;
  entries: Array<{ [key: string]: JsonValue }>;
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
export const MAX_RETRY_WAIT: number;
/** The wait (seconds) before a retry when a 429/503 has no Retry-After. */
export const DEFAULT_RETRY_WAIT: number;

export class Herald {
  constructor(options: HeraldOptions);
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly retries: number;
  sendMessage(request: SendMessageRequest): Promise<SendMessageAnswer>;
  getMessage(messageId: string): Promise<MessageView>;
  triggerAction(actionId: string, request: TriggerRequest): Promise<TriggerAnswer>;
  getIncident(incidentId: string): Promise<Incident>;
  /** Without `recipient`, the whole incident. */
  ackIncident(incidentId: string, options?: { recipient?: string }): Promise<AckAnswer>;
  getLedger(options?: { limit?: number }): Promise<Ledger>;
  listPlugins(): Promise<{ plugins: Array<{ [key: string]: JsonValue }> }>;
}

/** The gateway answered with an error status. */
export class HeraldError extends Error {
  constructor(init: { status: number; code?: string | null; message: string; field?: string | null; retryAfter?: number | null });
  readonly name: 'HeraldError';
  /** HTTP status. */
  readonly status: number;
  /** From the error body; null when the answer had none (e.g. a proxy's error page). */
  readonly code: string | null;
  readonly field: string | null;
  /** Retry-After in seconds, when the answer had one (503, 429). */
  readonly retryAfter: number | null;
}

/** The gateway could not be reached or did not answer in time. */
export class HeraldNetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown });
  readonly name: 'HeraldNetworkError';
}
