//! The domain model shared by the gateway, the admin service and every backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Millis;

/// Free-form template variables.
pub type Vars = Map<String, Value>;

/// The body of `POST /v1/messages`, as the client sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "channel": "email", "account": "notices", "template": "order-shipped",
    "variables": {"shop": "Acme"},
    "recipients": [{"to": "ann@example.com", "variables": {"name": "Ann"}}],
    "send_at": "2026-12-01T09:00:00Z", "metadata": {"order": "A-1"}
}))]
pub struct SendRequest {
    /// Channel (plugin name), e.g. "webhook", "email".
    #[schema(min_length = 1, pattern = r"\S")]
    pub channel: String,
    /// Sender account name; optional when the tenant has exactly one account on the channel.
    #[serde(default)]
    pub account: Option<String>,
    /// Id of a stored template; exclusive with `content`.
    #[serde(default)]
    #[schema(pattern = r"\S")]
    pub template: Option<String>,
    /// Inline content; exclusive with `template`.
    #[serde(default, deserialize_with = "crate::wire::option_object")]
    pub content: Option<Content>,
    /// Variables shared by all recipients.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Vars,
    /// Who gets it (at least one; at most `limits.max_recipients`).
    #[serde(deserialize_with = "crate::wire::vec_of_objects")]
    #[schema(min_items = 1)]
    pub recipients: Vec<RecipientSpec>,
    /// When to send (Unix milliseconds once parsed): an RFC 3339 time with an
    /// offset, or integer Unix milliseconds (UTC). Absent or past means now.
    #[serde(default, deserialize_with = "send_at")]
    #[schema(schema_with = send_at_schema)]
    pub send_at: Option<Millis>,
    /// String metadata passed through to the plugin and the delivery record.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// `send_at` as a client may give it: an RFC 3339 time with its offset, or
/// integer Unix milliseconds; the error says what is expected.
fn send_at<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
    struct At;
    impl<'de> serde::de::Visitor<'de> for At {
        type Value = Option<Millis>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an RFC 3339 time with an offset (\"2026-12-01T09:00:00Z\") or integer Unix milliseconds")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(At)
        }
        fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Self::Value, E> {
            Ok(Some(ms))
        }
        fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Self::Value, E> {
            Millis::try_from(ms).map(Some).map_err(|_| E::custom(format!("{ms} is too far ahead for Unix milliseconds")))
        }
        fn visit_f64<E: serde::de::Error>(self, ms: f64) -> Result<Self::Value, E> {
            // JSON has one number type: a whole float is an integer.
            match crate::wire::whole(ms) {
                Some(Ok(ms)) => self.visit_i64(ms),
                Some(Err(ms)) => self.visit_u64(ms),
                None => Err(E::invalid_type(serde::de::Unexpected::Float(ms), &self)),
            }
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            chrono::DateTime::parse_from_rfc3339(s).map(|t| Some(t.timestamp_millis())).map_err(|e| {
                E::custom(format!(
                    "{s:?} is not an RFC 3339 time with an offset, e.g. \"2026-12-01T09:00:00Z\" or \"2026-12-01T17:00:00+08:00\", \
                     nor integer Unix milliseconds ({e})"
                ))
            })
        }
    }
    d.deserialize_any(At)
}

/// The schema of `send_at` in a request: either form, or null.
fn send_at_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .description(Some("An RFC 3339 time with an offset (`Z` or `+08:00`)."))
                .examples(["2026-12-01T09:00:00Z"]),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .description(Some("Unix milliseconds (UTC)."))
                .examples([1_796_115_600_000_i64]),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "When to send: an RFC 3339 time with an offset, or integer Unix milliseconds (UTC). \
             Absent, null or past means now; at most `limits.max_schedule_days` ahead.",
        ))
        .build()
        .into()
}

/// Message content: templates in minijinja syntax, rendered per recipient.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
}

/// One recipient and its own variables (override the shared ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientSpec {
    /// The address on the channel: an e-mail address, a mobile number (E.164 or
    /// mainland format), or what the plugin's pattern accepts. No control characters, no
    /// leading or trailing white space (`AddressRule::check`), at most
    /// `limits.max_recipient_len` bytes.
    #[schema(
        pattern = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub to: String,
    /// This recipient's variables; they override the shared ones.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Vars,
}

/// An accepted message: what ingest makes durable and dispatch consumes.
/// Also the documented payload of the ingest log (see `Work`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub tenant: String,
    pub channel: String,
    pub account: String,
    /// Content to render: inline, or copied from the template at accept time so
    /// that a later template edit does not change an accepted message.
    pub content: Content,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default)]
    pub variables: Vars,
    pub recipients: Vec<RecipientSpec>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub accepted_at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_at: Option<Millis>,
}

impl Message {
    /// Deterministic delivery id of the recipient at `index`.
    pub fn delivery_id(&self, index: usize) -> String {
        delivery_id(&self.id, index)
    }
}

/// Deterministic delivery id: the same message and recipient always map to the
/// same id, which is what makes redelivery after a crash detectable.
pub fn delivery_id(message_id: &str, index: usize) -> String {
    DeliveryId::new(message_id, index).to_string()
}

/// A delivery's id, `<message id>.<recipient index>`: made and taken apart
/// only here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryId {
    message_id: String,
    index: usize,
}

impl DeliveryId {
    pub fn new(message_id: impl Into<String>, index: usize) -> DeliveryId {
        DeliveryId { message_id: message_id.into(), index }
    }

    /// The id in a delivery report or a stored row; `None` when it is not one.
    pub fn parse(id: &str) -> Option<DeliveryId> {
        let (m, i) = id.rsplit_once('.')?;
        let index = i.parse::<usize>().ok()?;
        (!m.is_empty()).then(|| DeliveryId::new(m, index))
    }

    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    pub fn index(&self) -> usize {
        self.index
    }
}

impl std::fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.message_id, self.index)
    }
}

/// A rendered notification for one recipient (what a plugin receives).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    pub delivery_id: String,
    pub recipient: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A retry of one delivery, due at the queue item's `not_before`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryJob {
    pub message_id: String,
    pub tenant: String,
    pub channel: String,
    pub account: String,
    pub delivery: Rendered,
    /// The attempt this job performs (2 = first retry).
    pub attempt: u32,
    /// When the notification first became due (accepted, or its `send_at`);
    /// end-to-end latency is measured from here.
    pub due_at: Millis,
    /// What the earlier attempts ended with, oldest first (a dead letter
    /// keeps the whole story).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AttemptRecord>,
}

/// One finished attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    pub attempt: u32,
    /// When it ended, Unix milliseconds (UTC).
    #[schema(value_type = i64)]
    pub at: Millis,
    /// `retry` or `throttled`.
    pub outcome: String,
    /// What the provider or the host reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

/// A unit of work on the ingest log. `v` is the schema version producers set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Work {
    Message(Message),
    Retry(RetryJob),
    /// The next step of a tiered-push incident, due at the item's `not_before`
    /// (an escalation wait). Fires at most once: the incident records it.
    Step(StepJob),
}

/// A delivery whose retries ran out, parked on the dead-letter list (the
/// embedded queue's `dead_letters` table, or Kafka's dead-letter topic) until
/// an operator re-drives it. `job` is the attempt that gave up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub job: RetryJob,
    /// The last failure, as the provider or host reported it.
    pub reason: String,
    pub dead_at: Millis,
}

/// A durable escalation timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepJob {
    pub tenant: String,
    pub incident: String,
    /// Index into the incident's steps.
    pub step: u32,
}

impl Work {
    pub fn tenant(&self) -> &str {
        match self {
            Work::Message(m) => &m.tenant,
            Work::Retry(r) => &r.tenant,
            Work::Step(s) => &s.tenant,
        }
    }

    /// What the work belongs to: its message (a send or a retry of one of its
    /// deliveries) or its incident (an escalation step).
    pub fn owner_id(&self) -> &str {
        match self {
            Work::Message(m) => &m.id,
            Work::Retry(r) => &r.message_id,
            Work::Step(s) => &s.incident,
        }
    }
}

/// Delivery status, as stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Accepted, not yet attempted (or scheduled for later).
    Queued,
    /// An attempt failed transiently; a retry is scheduled.
    Retrying,
    /// The provider accepted it.
    Sent,
    /// The provider reported delivery.
    Delivered,
    /// The recipient read or acknowledged it.
    Read,
    /// Permanently failed (provider said no, or content could not be rendered).
    Failed,
    /// Retries exhausted; in the dead-letter list, re-drivable.
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Retrying => "retrying",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "retrying" => Self::Retrying,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "failed" => Self::Failed,
            "dead" => Self::Dead,
            _ => return None,
        })
    }
}

/// What dispatch learned about one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Sent,
    Retry,
    Throttled,
    Failed,
}

/// The per-delivery result of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub delivery_id: String,
    pub kind: OutcomeKind,
    pub retry_after_ms: Option<u64>,
    pub provider_id: Option<String>,
    /// Billable units (>= 1 when sent).
    pub units: u32,
    pub detail: Option<String>,
}

impl Outcome {
    pub fn new(delivery_id: impl Into<String>, kind: OutcomeKind, detail: Option<String>) -> Self {
        Self { delivery_id: delivery_id.into(), kind, retry_after_ms: None, provider_id: None, units: 1, detail }
    }
}

/// A change to one delivery row, written by the recorder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryUpdate {
    pub delivery_id: String,
    pub message_id: String,
    pub tenant: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub detail: Option<String>,
    pub provider_id: Option<String>,
    pub at: Millis,
}

/// One append-only ledger line. Amounts are integer minor units (fen, cents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    /// Deterministic: `<delivery id>:<kind>`, so a replayed write is a no-op.
    pub id: String,
    pub tenant: String,
    pub kind: LedgerKind,
    /// The channel (plugin) of a send; empty for a top-up.
    pub channel: String,
    /// The sender account of a send; a top-up's note.
    pub account: String,
    /// The delivery a debit or credit is for; null for a top-up.
    #[schema(required = true)]
    pub delivery_id: Option<String>,
    /// Billable units (e.g. SMS segments).
    pub units: u32,
    /// Positive for debits and credits alike; `kind` gives the sign.
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// Unix milliseconds (UTC).
    #[schema(value_type = i64)]
    pub at: Millis,
}

/// What a ledger entry does to the balance: `debit` subtracts, `credit` and `top_up` add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// A billable send.
    Debit,
    /// A refund (e.g. a send the provider did not bill).
    Credit,
    /// Money added to a prepaid balance.
    TopUp,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debit => "debit",
            Self::Credit => "credit",
            Self::TopUp => "top_up",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "debit" => Self::Debit,
            "credit" => Self::Credit,
            "top_up" => Self::TopUp,
            _ => return None,
        })
    }
    /// Effect on the tenant's balance: debits subtract.
    pub fn signed(self, amount: i64) -> i64 {
        match self {
            Self::Debit => -amount,
            Self::Credit | Self::TopUp => amount,
        }
    }
}

/// A delivery as stored and shown to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryRecord {
    /// `<message id>.<recipient index>`.
    pub id: String,
    pub recipient: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// Why it failed or was retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
    /// The provider's id of the send.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub provider_id: Option<String>,
    /// Net cost in minor units (debits minus credits).
    pub cost_minor: i64,
    /// Unix milliseconds (UTC).
    #[schema(value_type = i64)]
    pub updated_at: Millis,
}

/// A message with its deliveries, as `GET /v1/messages/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: String,
    pub tenant: String,
    pub channel: String,
    pub account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    pub accepted_at: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_at: Option<Millis>,
    pub deliveries: Vec<DeliveryRecord>,
}

/// A tenant (an enterprise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// Currency of the tenant's ledger (ISO 4217).
    #[serde(default = "default_currency")]
    pub currency: String,
}

pub fn default_currency() -> String {
    "CNY".into()
}

/// A sender account: which plugin, with what configuration (secrets inside).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub tenant: String,
    pub name: String,
    pub plugin: String,
    /// Plugin-specific JSON object, validated by the plugin's `validate-account`.
    pub config: Value,
    /// Provider rate limit for this account, sends per second (None = unlimited).
    #[serde(default)]
    pub rate_per_sec: Option<u32>,
}

impl std::fmt::Debug for Account {
    // Never print the config: it holds secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("plugin", &self.plugin)
            .field("rate_per_sec", &self.rate_per_sec)
            .finish_non_exhaustive()
    }
}

/// A stored template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub tenant: String,
    pub id: String,
    #[serde(flatten)]
    pub content: Content,
}

/// A document owned by the admin service (org units, users, roles, pushes,
/// tiered templates, actions, …): a JSON body keyed by (tenant, kind, id).
/// Tenant `"*"` holds platform-wide documents (logins, sessions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    pub tenant: String,
    pub kind: String,
    pub id: String,
    pub body: Value,
    pub updated_at: Millis,
}

/// The price of one billable unit on a channel, in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub channel: String,
    pub unit_minor: i64,
    pub currency: String,
}

/// An idempotency record: the answer given to the first request with a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub tenant: String,
    pub key: String,
    /// SHA-256 of the request body, to detect a key reused with another body.
    pub request_hash: String,
    pub message_id: String,
    pub response: String,
    pub expires_at: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_at(v: Value) -> Result<Option<Millis>, String> {
        let body = serde_json::json!({"channel": "webhook", "recipients": [{"to": "a"}], "send_at": v});
        serde_json::from_value::<SendRequest>(body).map(|r| r.send_at).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_pattern_of_an_address_is_what_every_channel_checks() {
        let schema = serde_json::to_value(<RecipientSpec as utoipa::PartialSchema>::schema()).unwrap();
        let pattern = regex::Regex::new(schema["properties"]["to"]["pattern"].as_str().unwrap()).unwrap();
        let samples = [
            "a",
            "ann@example.com",
            "a b",
            "+8613800000000",
            "",
            " ",
            " a",
            "a ",
            "\u{a0}a",
            "a\u{3000}",
            "a\u{2009}",
            "\u{feff}a",
            "a\u{85}b",
            "a\tb",
            "a\nb",
            "\u{7f}",
            "中文",
            "😍",
            "a\u{200b}",
        ];
        for to in samples {
            let checked = crate::address::AddressRule::Any.check(to).is_ok() && !to.trim().is_empty();
            assert_eq!(pattern.is_match(to), checked, "{to:?}");
        }
    }

    #[test]
    fn send_at_is_an_rfc_3339_time_or_unix_milliseconds() {
        assert_eq!(send_at(serde_json::json!("2026-12-01T09:00:00Z")), Ok(Some(1_796_115_600_000)));
        assert_eq!(send_at(serde_json::json!("2026-12-01T17:00:00+08:00")), Ok(Some(1_796_115_600_000)));
        assert_eq!(send_at(serde_json::json!(1_796_115_600_000_i64)), Ok(Some(1_796_115_600_000)));
        assert_eq!(send_at(Value::Null), Ok(None));
        let absent: SendRequest = serde_json::from_value(serde_json::json!({"channel": "w", "recipients": []})).unwrap();
        assert_eq!(absent.send_at, None);
        for bad in [serde_json::json!("2026-12-01T09:00:00"), serde_json::json!(1.5), serde_json::json!(u64::MAX), serde_json::json!(true)] {
            assert!(send_at(bad.clone()).is_err(), "{bad} accepted");
        }
        assert!(send_at(serde_json::json!("9 am")).unwrap_err().contains("RFC 3339"));
    }
}
