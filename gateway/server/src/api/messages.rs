//! `POST /v1/messages` and `GET /v1/messages/{id}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::model::{DeliveryRecord, DeliveryStatus, SendRequest, Tenant};
use herald_core::validate::validate;
use herald_core::{ApiError, ErrorBody, Millis};
use herald_service::{Accepted, Body, Gate, Submission};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::request::{self, Failure, authenticate, parse};
use crate::state::App;

/// Namespace for message ids derived from idempotency keys.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6865_7261_6c64_2d6d_7367_2d69_6473_0001);

/// The answer to `POST /v1/messages`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "0193a5c2-7d1e-7c3a-9a1e-3f9b8c2d4e51", "status": "accepted", "recipients": 1, "send_at": 1796115600000_i64}))]
pub struct SendAccepted {
    /// The message id: `GET /v1/messages/{id}` shows its deliveries.
    pub id: String,
    pub status: AcceptedStatus,
    /// How many recipients (deliveries) the message has.
    pub recipients: usize,
    /// When it is held until, Unix milliseconds (UTC); absent when it is sent now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = i64)]
    pub send_at: Option<Millis>,
}

/// Always `accepted`: the message is durable.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AcceptedStatus {
    Accepted,
}

/// A message and its deliveries (`GET /v1/messages/{id}`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageStatus {
    pub id: String,
    pub tenant: String,
    pub channel: String,
    /// The sender account it went through.
    pub account: String,
    /// The stored template it used; absent for inline content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub template: Option<String>,
    /// Unix milliseconds (UTC).
    #[schema(value_type = i64)]
    pub accepted_at: Millis,
    /// When it was held until, Unix milliseconds (UTC); absent when it was sent at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = i64)]
    pub send_at: Option<Millis>,
    /// One per recipient, in request order.
    pub deliveries: Vec<DeliveryRecord>,
    /// How many deliveries are in each status (statuses with none are absent).
    #[schema(value_type = BTreeMap<DeliveryStatus, usize>)]
    pub summary: BTreeMap<String, usize>,
    /// Net cost of all deliveries, minor units of the tenant's currency.
    pub cost_minor: i64,
}

/// Send a message
///
/// Accepts a message for one or more recipients and answers once it is durable. Each
/// recipient becomes one delivery, rendered from the template (or inline content) with the
/// shared variables and its own. With an `Idempotency-Key` a repeated request gets the first
/// answer (with `Idempotent-Replayed: true`) and sends nothing twice.
#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "messages",
    operation_id = "sendMessage",
    security(("api_key" = [])),
    params(request::IdempotencyKey),
    request_body(content = SendRequest, examples(
        ("template" = (summary = "A stored template, two recipients", value = json!({
            "channel": "webhook", "template": "welcome",
            "recipients": [{"to": "ann", "variables": {"name": "Ann"}}, {"to": "bob", "variables": {"name": "Bob"}}]
        }))),
        ("scheduled" = (summary = "Inline content, sent later", value = json!({
            "channel": "email", "account": "notices",
            "content": {"subject": "Your order {{ order }}", "text": "Hello {{ name }}, it has shipped.", "html": "<p>Hello {{ name }}, it has shipped.</p>"},
            "variables": {"order": "A-1"},
            "recipients": [{"to": "ann@example.com", "variables": {"name": "Ann"}}],
            "send_at": "2026-12-01T09:00:00Z", "metadata": {"order": "A-1"}
        }))),
        ("millis" = (summary = "send_at in Unix milliseconds", value = json!({
            "channel": "webhook", "content": {"text": "later"}, "recipients": [{"to": "ann"}], "send_at": 1796115600000_i64
        }))),
    )),
    responses(
        (status = 202, description = "Accepted and durable.", body = SendAccepted, headers(
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        (status = 400, description = "Malformed body, wrong type, missing or unknown field, empty or too many recipients (`limits.max_recipients`), an address that is not one of the channel's, a template that does not parse (`invalid_json`, `invalid_field`, `limit_exceeded`, `invalid_template`); `field` names the place.", body = ErrorBody),
        (status = 401, response = request::Unauthenticated),
        (status = 402, description = "A prepaid balance too low for the send (`insufficient_balance`).", body = ErrorBody),
        (status = 409, response = request::KeyReused),
        (status = 413, description = "The body is larger than `limits.max_body_bytes`, or the message would render more than `limits.max_message_bytes` (`too_large`).", body = ErrorBody),
        (status = 422, description = "The request names something this tenant does not have (`unknown_channel`, `unknown_account`, `unknown_template`, `account_channel_mismatch`), or `send_at` is further ahead than `limits.max_schedule_days` (`invalid_field`).", body = ErrorBody),
        (status = 503, response = request::Unavailable),
    )
)]
pub async fn create(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    let key = request::idempotency_key(&headers)?;
    let req: SendRequest = parse(&body)?;
    let now = app.deps.clock.now_ms();
    validate(&req, &app.cfg.limits, now)?;

    let Some(key) = key else {
        let (status, answer) = accept(&app, &tenant, req, uuid::Uuid::now_v7().to_string(), now).await?;
        return Ok((status, axum::Json(answer)).into_response());
    };
    // Only keyed requests are compared with their first.
    let request_hash = hex::encode(Sha256::digest(&body));
    let seed = request::key_generation(&app, &key, now);
    let id = uuid::Uuid::new_v5(&ID_NAMESPACE, format!("{}\n{seed}", tenant.id).as_bytes()).to_string();
    request::once(&app, &tenant.id, key, request_hash, now, accept(&app, &tenant, req, id, now)).await
}

/// Submit through intake and answer.
async fn accept(app: &App, tenant: &Tenant, req: SendRequest, id: String, now: i64) -> Result<(StatusCode, serde_json::Value), Failure> {
    let submission = Submission {
        id,
        tenant: tenant.id.clone(),
        channel: req.channel,
        account: req.account,
        body: match (req.template, req.content) {
            (Some(t), _) => Body::Template(t),
            (None, Some(c)) => Body::Content(c),
            (None, None) => unreachable!("validated"),
        },
        variables: req.variables,
        recipients: req.recipients,
        metadata: herald_telemetry::trace::with_traceparent(req.metadata), // the trace dispatch continues
        send_at: req.send_at.filter(|t| *t > now),
        gate: Gate::Prepaid,
    };
    let Accepted { message, send_at } = app.services.intake.submit(submission).await?;
    let recipients = message.recipients.len();
    app.metrics.channel(&message.tenant, &message.channel, &tenant.currency).accepted.inc_by(recipients as u64);
    let answer = SendAccepted { id: message.id, status: AcceptedStatus::Accepted, recipients, send_at };
    Ok((StatusCode::ACCEPTED, serde_json::to_value(answer).expect("an answer serialises")))
}

/// Read a message
///
/// The message with each delivery's status (`queued`, `retrying`, `sent`, `delivered`,
/// `read`, `failed`, `dead`), attempts, provider id, why it failed or was retried, and cost;
/// a summary by status. Another tenant's message is `404` like a missing one.
#[utoipa::path(
    get,
    path = "/v1/messages/{id}",
    tag = "messages",
    operation_id = "getMessage",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The message id from `POST /v1/messages`.")),
    responses(
        (status = 200, description = "The message and its deliveries.", body = MessageStatus, example = json!({
            "id": "0193a5c2-7d1e-7c3a-9a1e-3f9b8c2d4e51", "tenant": "demo", "channel": "webhook", "account": "demo-hook",
            "template": "welcome", "accepted_at": 1796115600000_i64,
            "deliveries": [
                {"id": "0193a5c2-7d1e-7c3a-9a1e-3f9b8c2d4e51.0", "recipient": "ann", "status": "sent", "attempts": 1, "provider_id": "in-17", "cost_minor": 0, "updated_at": 1796115600120_i64},
                {"id": "0193a5c2-7d1e-7c3a-9a1e-3f9b8c2d4e51.1", "recipient": "bob", "status": "retrying", "attempts": 1, "detail": "HTTP 503", "cost_minor": 0, "updated_at": 1796115600130_i64}
            ],
            "summary": {"retrying": 1, "sent": 1}, "cost_minor": 0
        })),
        (status = 401, response = request::Unauthenticated),
        (status = 404, response = request::NotFound),
        (status = 503, response = request::Unavailable),
    )
)]
pub async fn get(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    // Another tenant's message is indistinguishable from a missing one.
    let view = app.deps.backends.store.message(&tenant.id, &id).await?.ok_or_else(|| ApiError::not_found("message", "id"))?;
    let mut summary = BTreeMap::<String, usize>::new();
    for d in &view.deliveries {
        *summary.entry(d.status.as_str().to_string()).or_default() += 1;
    }
    let cost_minor = view.deliveries.iter().map(|d| d.cost_minor).sum::<i64>();
    Ok(axum::Json(MessageStatus {
        id: view.id,
        tenant: view.tenant,
        channel: view.channel,
        account: view.account,
        template: view.template,
        accepted_at: view.accepted_at,
        send_at: view.send_at,
        deliveries: view.deliveries,
        summary,
        cost_minor,
    })
    .into_response())
}
