//! Tiered push over HTTP: trigger an action, read an incident's timeline,
//! acknowledge (API call or the signed link in a message).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use herald_core::error::ErrorKind;
use herald_core::tiered::TimelineEvent;
use herald_core::{ApiError, ErrorBody, Millis};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::request::{self, Failure, authenticate, operator, parse};
use crate::state::App;
use herald_service::{Trigger, TriggerLevel};

/// The answer to a trigger.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "0193a5d0-1b2c-7d3e-8f40-5a6b7c8d9e0f", "deduplicated": false}))]
pub struct TriggerAccepted {
    /// The incident: `GET /v1/incidents/{id}`.
    pub id: String,
    /// True when the trigger folded into an open incident with the same `dedup_key` (or
    /// repeated an `Idempotency-Key`'s trigger).
    pub deduplicated: bool,
}

/// An incident's state.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum IncidentState {
    /// Steps may still fire.
    Open,
    /// Acknowledged: no further steps (or, with a per-recipient scope, none for who acknowledged).
    Acknowledged,
    /// Every step has fired or was stopped.
    Done,
}

/// An incident and its timeline (`GET /v1/incidents/{id}`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IncidentView {
    pub id: String,
    /// The action that was triggered.
    pub action: String,
    #[schema(value_type = TriggerLevel)]
    pub level: String,
    #[schema(value_type = IncidentState)]
    pub state: String,
    /// The trigger's `dedup_key`, or null.
    #[schema(required = true)]
    pub dedup_key: Option<String>,
    /// How many later triggers folded into this incident.
    pub repeats: u32,
    /// Recipient keys (directory user id, or the address) who acknowledged.
    pub acknowledged_by: Vec<String>,
    /// How many steps the level's rules make.
    pub steps: usize,
    /// The steps that fired (indexes).
    pub fired: Vec<u32>,
    /// What happened, oldest first.
    pub timeline: Vec<TimelineEvent>,
    /// Unix milliseconds (UTC).
    #[schema(value_type = i64)]
    pub created_at: Millis,
}

/// The answer to an acknowledgement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "0193a5d0-1b2c-7d3e-8f40-5a6b7c8d9e0f", "state": "acknowledged", "acknowledged_by": ["u-ann"]}))]
pub struct AckResult {
    pub id: String,
    #[schema(value_type = IncidentState)]
    pub state: String,
    pub acknowledged_by: Vec<String>,
}

/// Trigger an action
///
/// Opens an incident of a tiered-push action (made in the console): the level's rules run
/// in order, each sending the action's template with a signed acknowledgement link, and
/// escalate after their waits while the incident is not acknowledged. A `dedup_key` folds
/// repeated triggers into the open incident.
#[utoipa::path(
    post,
    path = "/v1/actions/{id}/trigger",
    tag = "incidents",
    operation_id = "triggerAction",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The action's id."), request::IdempotencyKey),
    request_body(content = Trigger),
    responses(
        (status = 202, description = "The incident is open (or the trigger folded into one).", body = TriggerAccepted, headers(
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same `Idempotency-Key`."),
        )),
        (status = 400, description = "Malformed body, unknown level, a `dedup_key` over 200 bytes (`invalid_json`, `invalid_field`).", body = ErrorBody),
        (status = 401, response = request::Unauthenticated),
        (status = 402, description = "A prepaid balance too low for a paid step (`insufficient_balance`).", body = ErrorBody),
        (status = 403, description = "The tenant has disabled the tiered-push app in the console's app market (`app_disabled`).", body = ErrorBody),
        (status = 404, description = "No such action (`not_found`).", body = ErrorBody),
        (status = 409, description = "The action is disabled (`action_disabled`), or the `Idempotency-Key` was used with another request (`idempotency_key_reused`).", body = ErrorBody),
        (status = 413, description = "The body is larger than `limits.max_body_bytes` (`too_large`).", body = ErrorBody),
        (status = 422, description = "The action has no rules for this level (`no_rules`), or a step names something that does not exist.", body = ErrorBody),
        (status = 503, response = request::Unavailable),
    )
)]
pub async fn trigger(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    let key = request::idempotency_key(&headers)?;
    let t: Trigger = parse(&body)?;
    let now = app.deps.clock.now_ms();
    let seed = key.as_deref().map(|k| request::key_generation(&app, k, now));
    let run = async {
        let (incident, folded) = app.services.incidents.trigger(&tenant.id, &id, t, seed.as_deref()).await?;
        tracing::info!(tenant = %tenant.id, action = %id, %incident, folded, "action triggered");
        let answer = TriggerAccepted { id: incident, deduplicated: folded };
        Ok((StatusCode::ACCEPTED, serde_json::to_value(answer).expect("an answer serialises")))
    };
    match key.clone() {
        // The request is the action and the body: the same key on another action is another request.
        Some(k) => {
            let hash = hex::encode(Sha256::digest([b"trigger\n", id.as_bytes(), b"\n", &body[..]].concat()));
            request::once(&app, &tenant.id, k, hash, now, run).await
        }
        None => run.await.map(|(status, answer)| (status, axum::Json(answer)).into_response()),
    }
}

/// Read an incident
///
/// The incident's state and timeline: which step fired when, on which channel, to whom, and
/// who acknowledged.
#[utoipa::path(
    get,
    path = "/v1/incidents/{id}",
    tag = "incidents",
    operation_id = "getIncident",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The incident id from the trigger.")),
    responses(
        (status = 200, description = "The incident.", body = IncidentView, example = json!({
            "id": "0193a5d0-1b2c-7d3e-8f40-5a6b7c8d9e0f", "action": "0193a5cf-0000-7000-8000-000000000001", "level": "urgent",
            "state": "open", "dedup_key": "disk-full-db1", "repeats": 0, "acknowledged_by": [], "steps": 2, "fired": [0],
            "timeline": [
                {"at": 1796115600000_i64, "kind": "triggered"},
                {"at": 1796115600050_i64, "kind": "fired", "step": 0, "channel": "aliyun-sms", "recipients": ["+8613800000000"], "message_id": "0193a5d0-2222-7000-8000-000000000002"}
            ],
            "created_at": 1796115600000_i64
        })),
        (status = 401, response = request::Unauthenticated),
        (status = 404, response = request::NotFound),
        (status = 503, response = request::Unavailable),
    )
)]
pub async fn get(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    let inc = app.services.incidents.incident(&tenant.id, &id).await?.ok_or_else(|| ApiError::not_found("incident", "id"))?;
    Ok(axum::Json(IncidentView {
        id: inc.id,
        action: inc.action,
        level: inc.level,
        state: inc.state,
        dedup_key: inc.dedup_key,
        repeats: inc.repeats,
        acknowledged_by: inc.acked,
        steps: inc.steps.len(),
        fired: inc.fired,
        timeline: inc.timeline,
        created_at: inc.created_at,
    })
    .into_response())
}

/// The body of an acknowledgement (optional).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// A directory user id or an address the incident was sent to; absent or null = the whole incident.
    #[serde(default)]
    recipient: Option<String>,
}

/// Acknowledge an incident
///
/// Stops the incident's further steps (or, for an action with a per-recipient scope, the
/// steps for that recipient). Without a body (or without `recipient`) the whole incident is
/// acknowledged. Acknowledging again changes nothing.
#[utoipa::path(
    post,
    path = "/v1/incidents/{id}/ack",
    tag = "incidents",
    operation_id = "ackIncident",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The incident id.")),
    request_body(content = Option<AckBody>, description = "Optional: who acknowledges.", example = json!({"recipient": "u-ann"})),
    responses(
        (status = 200, description = "Acknowledged.", body = AckResult),
        (status = 400, description = "Malformed body (`invalid_json`, `invalid_field`).", body = ErrorBody),
        (status = 401, response = request::Unauthenticated),
        (status = 404, response = request::NotFound),
        (status = 413, description = "The body is larger than `limits.max_body_bytes` (`too_large`).", body = ErrorBody),
        (status = 422, description = "`recipient` is nobody the incident reached (`unknown_recipient`).", body = ErrorBody),
        (status = 503, response = request::Unavailable),
    )
)]
pub async fn ack(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    // No body, or `null`: the whole incident.
    let b: AckBody = if body.is_empty() { AckBody::default() } else { parse::<Option<AckBody>>(&body)?.unwrap_or_default() };
    let key = match &b.recipient {
        Some(named) => Some(app.services.incidents.recipient_key(&tenant.id, &id, named).await?),
        None => None,
    };
    let inc = app.services.incidents.ack(&tenant.id, &id, key.as_deref(), "API").await?;
    Ok(axum::Json(AckResult { id: inc.id, state: inc.state, acknowledged_by: inc.acked }).into_response())
}

/// Acknowledge by link
///
/// The signed, expiring link in a tiered-push message (`{{ ack_url }}`): no API key, the
/// signature is the credential. Answers a small HTML page (Chinese and English).
#[utoipa::path(
    get,
    path = "/v1/ack/{token}",
    tag = "incidents",
    operation_id = "ackByLink",
    params(("token" = String, Path, description = "The signed token from the link: the payload (base64url) and its HMAC-SHA256 (hex).", pattern = r"^[A-Za-z0-9_-]+\.[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "Acknowledged.", content_type = "text/html", body = String,
            example = "<!doctype html><meta charset=utf-8><title>Herald</title><p>Acknowledged. 已确认。</p>"),
        (status = 404, description = "The link is not valid (`invalid_link`), has expired (`expired_link`), or its incident is gone.", content_type = "text/html", body = String),
        (status = 503, description = "Storage unavailable; try again.", content_type = "text/html", body = String),
    )
)]
pub async fn ack_link(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    ack_by_link(&app, &token).await
}

/// Acknowledge by link (POST)
///
/// The same as `GET /v1/ack/{token}`, for a form or a client that must not use GET.
#[utoipa::path(
    post,
    path = "/v1/ack/{token}",
    tag = "incidents",
    operation_id = "ackByLinkPost",
    params(("token" = String, Path, description = "The signed token from the link: the payload (base64url) and its HMAC-SHA256 (hex).", pattern = r"^[A-Za-z0-9_-]+\.[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "Acknowledged.", content_type = "text/html", body = String,
            example = "<!doctype html><meta charset=utf-8><title>Herald</title><p>Acknowledged. 已确认。</p>"),
        (status = 404, description = "The link is not valid (`invalid_link`), has expired (`expired_link`), or its incident is gone.", content_type = "text/html", body = String),
        (status = 503, description = "Storage unavailable; try again.", content_type = "text/html", body = String),
    )
)]
pub async fn ack_link_post(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    ack_by_link(&app, &token).await
}

async fn ack_by_link(app: &App, token: &str) -> Response {
    let result = async {
        let (tenant, incident, key) = app.services.incidents.open_ack_token(token)?;
        app.services.incidents.ack(&tenant, &incident, Some(&key), "link").await
    }
    .await;
    match result {
        Ok(_) => Html("<!doctype html><meta charset=utf-8><title>Herald</title><p>Acknowledged. 已确认。</p>").into_response(),
        Err(e) => {
            let e = ApiError::from(e);
            let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
            // The client's message (an internal error's details stay in the log), as text.
            let message = e.error_body().error.message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            (status, Html(format!("<!doctype html><meta charset=utf-8><title>Herald</title><p>{message}</p>"))).into_response()
        }
    }
}

/// The most one `POST /admin/clock` moves the clock: 366 days.
const MAX_ADVANCE_MS: i64 = 366 * 86_400_000;

/// The body of `POST /admin/clock`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Advance {
    /// Milliseconds to move the gateway's clock forward (at most 366 days at a time).
    #[serde(deserialize_with = "herald_core::wire::integer")]
    #[schema(minimum = 0, maximum = 31_622_400_000_i64)]
    advance_ms: i64,
}

/// The gateway's clock after a move.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClockState {
    /// The total offset from the wall clock, milliseconds.
    pub offset_ms: i64,
    /// The gateway's time now, Unix milliseconds (UTC).
    pub now_ms: i64,
}

/// Move the clock (tests only)
///
/// Only with `testing_clock = true` in the configuration (otherwise `404`), and the operator
/// token: moves the gateway's clock forward, so that escalation waits and scheduled sends
/// come due in a test.
#[utoipa::path(
    post,
    path = "/admin/clock",
    tag = "operator",
    operation_id = "advanceClock",
    security(("operator_token" = [])),
    request_body(content = Advance, example = json!({"advance_ms": 600000})),
    responses(
        (status = 200, description = "The clock moved.", body = ClockState, example = json!({"offset_ms": 600000, "now_ms": 1796116200000_i64})),
        (status = 400, description = "Malformed body (`invalid_json`, `invalid_field`).", body = ErrorBody),
        (status = 401, response = request::OperatorUnauthenticated),
        (status = 404, description = "No testing clock (`not_found`), or operator endpoints are off.", body = ErrorBody),
    )
)]
pub async fn advance_clock(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Result<Response, Failure> {
    if !app.cfg.testing_clock {
        return Err(ApiError::new(ErrorKind::NotFound, "not_found", "no such route").into());
    }
    operator(&app, &headers)?;
    let a: Advance = parse(&body)?;
    if !(0..=MAX_ADVANCE_MS).contains(&a.advance_ms) {
        return Err(ApiError::invalid("advance_ms", format!("must be 0..={MAX_ADVANCE_MS} (366 days)")).into());
    }
    let offset = app.deps.clock.advance(a.advance_ms).ok_or_else(|| ApiError::new(ErrorKind::NotFound, "not_found", "no such route"))?;
    Ok(axum::Json(ClockState { offset_ms: offset, now_ms: app.deps.clock.now_ms() }).into_response())
}
