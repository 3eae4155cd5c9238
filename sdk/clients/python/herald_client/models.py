# Generated from sdk/openapi/gateway.json by sdk/clients/generate.sh (datamodel-code-generator): do not edit.

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from typing_extensions import NotRequired, TypedDict

AcceptedStatus: TypeAlias = Literal["accepted"]
"""
Always `accepted`: the message is durable.
"""


class AckBody(TypedDict, closed=True):
    """
    The body of an acknowledgement (optional).
    """

    recipient: NotRequired[str | None]
    """
    A directory user id or an address the incident was sent to; absent or null = the whole incident.
    """


class Advance(TypedDict, closed=True):
    """
    The body of `POST /admin/clock`.
    """

    advance_ms: int
    """
    Milliseconds to move the gateway's clock forward (at most 366 days at a time).
    """


class AttemptRecord(TypedDict):
    """
    One finished attempt of a delivery.
    """

    attempt: int
    at: int
    """
    When it ended, Unix milliseconds (UTC).
    """
    outcome: str
    """
    `retry` or `throttled`.
    """
    detail: NotRequired[str]
    """
    What the provider or the host reported.
    """


class ClockState(TypedDict):
    """
    The gateway's clock after a move.
    """

    offset_ms: int
    """
    The total offset from the wall clock, milliseconds.
    """
    now_ms: int
    """
    The gateway's time now, Unix milliseconds (UTC).
    """


class Content(TypedDict, closed=True):
    """
    Message content: templates in minijinja syntax, rendered per recipient.
    """

    subject: NotRequired[str | None]
    text: NotRequired[str | None]
    html: NotRequired[str | None]


ContentFormat: TypeAlias = Literal["text", "html", "markdown", "voice"]
"""
A content format.
"""


class DeadLetterView(TypedDict):
    """
    A dead letter as the operator API lists it.
    """

    tenant: str
    message_id: str
    delivery_id: str
    recipient: str
    channel: str
    account: str
    attempts: int
    """
    The attempt that gave up.
    """
    reason: str
    """
    The last failure, as the provider or the host reported it.
    """
    dead_at: int
    """
    Unix milliseconds (UTC).
    """
    history: list[AttemptRecord]
    """
    The earlier attempts, oldest first.
    """


class DeadLetters(TypedDict):
    """
    The head of the dead-letter list.
    """

    dead_letters: list[DeadLetterView]


DeliveryStatus: TypeAlias = Literal[
    "queued", "retrying", "sent", "delivered", "read", "failed", "dead"
]
"""
Delivery status, as stored and shown.
"""


class ErrorDetail(TypedDict):
    """
    What went wrong.
    """

    code: str
    """
    A stable, machine-readable code, e.g. `invalid_field`, `unauthenticated`, `not_found`,
    `idempotency_key_reused`, `unknown_account`, `unavailable`.
    """
    message: str
    """
    A human-readable explanation (English); not stable.
    """
    field: NotRequired[str]
    """
    The request part at fault, when there is one: a body field path (`recipients[3].to`,
    `content.text`), `body`, a query parameter or a header (`Idempotency-Key`). Absent otherwise.
    """


IncidentState: TypeAlias = Literal["open", "acknowledged", "done"]
"""
An incident's state.
"""


LedgerKind: TypeAlias = Literal["debit", "credit", "top_up"]
"""
What a ledger entry does to the balance: `debit` subtracts, `credit` and `top_up` add.
"""


class ListEntry(TypedDict, closed=True):
    """
    A raw address, with an optional display name and its own variables.
    """

    to: str
    name: NotRequired[str | None]
    channel: NotRequired[str | None]
    """
    Only for this channel (a raw address in a multi-channel rule).
    """
    variables: NotRequired[dict[str, Any]]


class LoadedPlugin(TypedDict):
    """
    A plugin loaded by a reload.
    """

    name: str
    version: str
    sha256: str
    """
    SHA-256 of the component, hex.
    """


class PluginFailure(TypedDict):
    """
    A plugin file that failed to load.
    """

    file: str
    error: str


PluginWorld: TypeAlias = Literal[
    "channel-plugin", "channel-plugin-auth", "channel-plugin-metered"
]
"""
A world of the plugin contract.
"""


class RecipientSpec(TypedDict, closed=True):
    """
    One recipient and its own variables (override the shared ones).
    """

    to: str
    """
    The address on the channel: an e-mail address, a mobile number (E.164 or
    mainland format), or what the plugin's pattern accepts. No control characters, no
    leading or trailing white space (`AddressRule::check`), at most
    `limits.max_recipient_len` bytes.
    """
    variables: NotRequired[dict[str, Any]]
    """
    This recipient's variables; they override the shared ones.
    """


class RedriveRequest(TypedDict, closed=True):
    """
    The body of a re-drive (optional).
    """

    tenant: NotRequired[str | None]
    """
    Only this tenant's letters; the others stay on the list.
    """
    limit: NotRequired[int | None]
    """
    How many from the head of the list (1–10000, default 100).
    """


class Redriven(TypedDict):
    """
    What one re-drive did.
    """

    redriven: list[str]
    """
    Deliveries queued for another attempt.
    """
    skipped: int
    """
    Letters whose delivery is no longer dead (re-driven before, or a duplicate).
    """
    kept: int
    """
    Letters of other tenants, moved to the end of the list.
    """


class ReloadReport(TypedDict):
    """
    What a plugin reload did.
    """

    loaded: list[LoadedPlugin]
    """
    Plugins loaded or replaced.
    """
    removed: list[str]
    """
    Plugins whose file disappeared, unloaded.
    """
    unchanged: int
    """
    Files that did not change.
    """
    errors: list[PluginFailure]
    """
    Every file currently failing to load (the previous version, if any, keeps serving).
    """
    plugins: list[str]
    """
    The names of the plugins loaded now.
    """


class SendAccepted(TypedDict):
    """
    The answer to `POST /v1/messages`.
    """

    id: str
    """
    The message id: `GET /v1/messages/{id}` shows its deliveries.
    """
    status: AcceptedStatus
    recipients: int
    """
    How many recipients (deliveries) the message has.
    """
    send_at: NotRequired[int]
    """
    When it is held until, Unix milliseconds (UTC); absent when it is sent now.
    """


class SendRequest(TypedDict, closed=True):
    """
    The body of `POST /v1/messages`, as the client sends it.

    Exactly one of `template` and `content` (with `text` or `html`).
    """

    channel: str
    """
    Channel (plugin name), e.g. "webhook", "email".
    """
    account: NotRequired[str | None]
    """
    Sender account name; optional when the tenant has exactly one account on the channel.
    """
    template: NotRequired[str | None]
    """
    Id of a stored template; exclusive with `content`.
    """
    content: NotRequired[Content | None]
    variables: NotRequired[dict[str, Any]]
    """
    Variables shared by all recipients.
    """
    recipients: list[RecipientSpec]
    """
    Who gets it (at least one; at most `limits.max_recipients`).
    """
    send_at: NotRequired[str | int | None]
    """
    When to send: an RFC 3339 time with an offset, or integer Unix milliseconds (UTC). Absent, null or past means now; at most `limits.max_schedule_days` ahead.
    """
    metadata: NotRequired[dict[str, str]]
    """
    String metadata passed through to the plugin and the delivery record.
    """


class Targets(TypedDict, closed=True):
    """
    Whom a push or a rule goes to.
    """

    users: NotRequired[list[str]]
    """
    Directory user ids.
    """
    units: NotRequired[list[str]]
    """
    Org units: every user in the unit's subtree.
    """
    list: NotRequired[list[ListEntry]]
    """
    Raw addresses (typed, or uploaded as a spreadsheet).
    """


class TimelineEvent(TypedDict):
    """
    One event of an incident's timeline.
    """

    at: int
    """
    Unix milliseconds (UTC).
    """
    kind: str
    """
    triggered | repeated | fired | deferred | refused | fallback | skipped | acknowledged | stopped | done
    """
    step: NotRequired[int]
    """
    The step (index into the incident's steps) the event is about.
    """
    channel: NotRequired[str]
    recipients: NotRequired[list[str]]
    message_id: NotRequired[str]
    detail: NotRequired[str]


class TriggerAccepted(TypedDict):
    """
    The answer to a trigger.
    """

    id: str
    """
    The incident: `GET /v1/incidents/{id}`.
    """
    deduplicated: bool
    """
    True when the trigger folded into an open incident with the same `dedup_key` (or
    repeated an `Idempotency-Key`'s trigger).
    """


TriggerLevel: TypeAlias = Literal["urgent", "normal", "info"]
"""
A trigger's level (the document's name for `Trigger::level`).
"""


class AckResult(TypedDict):
    """
    The answer to an acknowledgement.
    """

    id: str
    state: IncidentState
    acknowledged_by: list[str]


class DeliveryRecord(TypedDict):
    """
    A delivery as stored and shown to clients.
    """

    id: str
    """
    `<message id>.<recipient index>`.
    """
    recipient: str
    status: DeliveryStatus
    attempts: int
    """
    Attempts made so far.
    """
    detail: NotRequired[str]
    """
    Why it failed or was retried.
    """
    provider_id: NotRequired[str]
    """
    The provider's id of the send.
    """
    cost_minor: int
    """
    Net cost in minor units (debits minus credits).
    """
    updated_at: int
    """
    Unix milliseconds (UTC).
    """


class ErrorBody(TypedDict):
    """
    Every error answer of the HTTP APIs: `{"error": {"code", "message", "field"?}}`.
    """

    error: ErrorDetail


class IncidentView(TypedDict):
    """
    An incident and its timeline (`GET /v1/incidents/{id}`).
    """

    id: str
    action: str
    """
    The action that was triggered.
    """
    level: TriggerLevel
    state: IncidentState
    dedup_key: str | None
    """
    The trigger's `dedup_key`, or null.
    """
    repeats: int
    """
    How many later triggers folded into this incident.
    """
    acknowledged_by: list[str]
    """
    Recipient keys (directory user id, or the address) who acknowledged.
    """
    steps: int
    """
    How many steps the level's rules make.
    """
    fired: list[int]
    """
    The steps that fired (indexes).
    """
    timeline: list[TimelineEvent]
    """
    What happened, oldest first.
    """
    created_at: int
    """
    Unix milliseconds (UTC).
    """


class LedgerEntry(TypedDict):
    """
    One append-only ledger line. Amounts are integer minor units (fen, cents).
    """

    id: str
    """
    Deterministic: `<delivery id>:<kind>`, so a replayed write is a no-op.
    """
    tenant: str
    kind: LedgerKind
    channel: str
    """
    The channel (plugin) of a send; empty for a top-up.
    """
    account: str
    """
    The sender account of a send; a top-up's note.
    """
    delivery_id: str | None
    """
    The delivery a debit or credit is for; null for a top-up.
    """
    units: int
    """
    Billable units (e.g. SMS segments).
    """
    amount_minor: int
    """
    Positive for debits and credits alike; `kind` gives the sign.
    """
    currency: str
    """
    ISO 4217.
    """
    at: int
    """
    Unix milliseconds (UTC).
    """


class MessageStatus(TypedDict):
    """
    A message and its deliveries (`GET /v1/messages/{id}`).
    """

    id: str
    tenant: str
    channel: str
    account: str
    """
    The sender account it went through.
    """
    template: NotRequired[str]
    """
    The stored template it used; absent for inline content.
    """
    accepted_at: int
    """
    Unix milliseconds (UTC).
    """
    send_at: NotRequired[int]
    """
    When it was held until, Unix milliseconds (UTC); absent when it was sent at once.
    """
    deliveries: list[DeliveryRecord]
    """
    One per recipient, in request order.
    """
    summary: dict[
        Literal["queued", "retrying", "sent", "delivered", "read", "failed", "dead"],
        int,
    ]
    """
    How many deliveries are in each status (statuses with none are absent).
    """
    cost_minor: int
    """
    Net cost of all deliveries, minor units of the tenant's currency.
    """


class PluginView(TypedDict):
    """
    A loaded channel plugin.
    """

    name: str
    """
    The plugin's name: what `channel` names in `POST /v1/messages`.
    """
    version: str
    channel: str
    """
    The kind of channel: `webhook`, `email`, `sms`, `voice`, `im`.
    """
    formats: list[ContentFormat]
    """
    Content formats it accepts, most preferred first.
    """
    max_batch: int
    """
    Most deliveries in one provider request.
    """
    hosts: list[str]
    """
    Hosts it may reach (`*` = what the account names, within the operator's allowlist).
    """
    billing_unit: str
    """
    What one billable unit is: `message`, `segment`, `minute`, `request`.
    """
    account_schema: Any
    """
    JSON Schema (draft 2020-12) of an account's configuration; null if the plugin's does not parse.
    """
    secret_fields: list[str]
    """
    Account fields that hold secrets (never returned).
    """
    sha256: str
    """
    SHA-256 of the component, hex.
    """
    worlds: list[PluginWorld]
    """
    The plugin contract's worlds it implements.
    """


class Trigger(TypedDict, closed=True):
    """
    The body of `POST /v1/actions/{id}/trigger`.
    """

    level: TriggerLevel
    """
    Which of the action's rule sets runs.
    """
    recipients: NotRequired[Targets]
    """
    Added to every rule's recipients.
    """
    variables: NotRequired[dict[str, Any]]
    """
    Variables for the action's templates.
    """
    dedup_key: NotRequired[str | None]
    """
    Repeated triggers with this key fold into the open incident (blank = none).
    """


class Ledger(TypedDict):
    """
    A tenant's balance and latest ledger entries (`GET /v1/ledger`).
    """

    tenant: str
    currency: str
    """
    ISO 4217.
    """
    balance_minor: int
    """
    Top-ups and credits minus debits, minor units (fen, cents); negative when spent beyond.
    """
    entries: list[LedgerEntry]
    """
    Newest first.
    """


class PluginList(TypedDict):
    """
    The loaded plugins (`GET /v1/plugins`).
    """

    plugins: list[PluginView]
