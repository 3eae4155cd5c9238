//! `POST /v1/messages` and `GET /v1/messages/{id}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::ApiError;
use herald_core::error::ErrorKind;
use herald_core::model::{SendRequest, Tenant};
use herald_core::validate::validate;
use herald_service::{Accepted, Body, Gate, Submission};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::request::{self, Failure, authenticate, parse};
use crate::state::App;

/// Namespace for message ids derived from idempotency keys.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6865_7261_6c64_2d6d_7367_2d69_6473_0001);

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
        send_at: req.send_at.map(|t| t.timestamp_millis()).filter(|t| *t > now),
        gate: Gate::Prepaid,
    };
    let Accepted { message, send_at } = app.services.intake.submit(submission).await?;
    let recipients = message.recipients.len();
    app.metrics.channel(&message.tenant, &message.channel, &tenant.currency).accepted.inc_by(recipients as u64);
    let mut answer = json!({"id": message.id, "status": "accepted", "recipients": recipients});
    if let Some(at) = send_at {
        answer["send_at"] = json!(chrono::DateTime::from_timestamp_millis(at).map(|t| t.to_rfc3339()));
    }
    Ok((StatusCode::ACCEPTED, answer))
}

pub async fn get(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    // Another tenant's message is indistinguishable from a missing one.
    let view = app.deps.backends.store.message(&tenant.id, &id).await?.ok_or_else(|| ApiError::not_found("message", "id"))?;
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for d in &view.deliveries {
        *counts.entry(d.status.as_str()).or_default() += 1;
    }
    let mut body = serde_json::to_value(&view).map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))?;
    body["summary"] = json!(counts);
    body["cost_minor"] = json!(view.deliveries.iter().map(|d| d.cost_minor).sum::<i64>());
    Ok(axum::Json(body).into_response())
}
