//! Tiered push over HTTP: trigger an action, read an incident's timeline,
//! acknowledge (API call or the signed link in a message).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use herald_core::ApiError;
use herald_core::error::ErrorKind;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::request::{self, Failure, authenticate, operator, parse};
use crate::state::App;
use herald_service::Trigger;

pub async fn trigger(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    let key = request::idempotency_key(&headers)?;
    let t: Trigger = parse(&body)?;
    let now = app.deps.clock.now_ms();
    let seed = key.as_deref().map(|k| request::key_generation(&app, k, now));
    let run = async {
        let (incident, folded) = app.services.incidents.trigger(&tenant.id, &id, t, seed.as_deref()).await?;
        tracing::info!(tenant = %tenant.id, action = %id, %incident, folded, "action triggered");
        Ok((StatusCode::ACCEPTED, json!({"id": incident, "deduplicated": folded})))
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

pub async fn get(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    let inc = app.services.incidents.incident(&tenant.id, &id).await?.ok_or_else(|| ApiError::not_found("incident", "id"))?;
    Ok(axum::Json(json!({
        "id": inc.id, "action": inc.action, "level": inc.level, "state": inc.state, "dedup_key": inc.dedup_key,
        "repeats": inc.repeats, "acknowledged_by": inc.acked, "steps": inc.steps.len(), "fired": inc.fired,
        "timeline": inc.timeline, "created_at": inc.created_at,
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckBody {
    /// A directory user id or raw address; absent = the whole incident.
    #[serde(default)]
    recipient: Option<String>,
}

pub async fn ack(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>, body: Bytes) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    let b: AckBody = if body.is_empty() { AckBody::default() } else { parse(&body)? };
    let key = match &b.recipient {
        Some(named) => Some(app.services.incidents.recipient_key(&tenant.id, &id, named).await?),
        None => None,
    };
    let inc = app.services.incidents.ack(&tenant.id, &id, key.as_deref(), "API").await?;
    Ok(axum::Json(json!({"id": inc.id, "state": inc.state, "acknowledged_by": inc.acked})).into_response())
}

/// The link in a message: no API key, the signature is the credential.
pub async fn ack_link(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let result = async {
        let (tenant, incident, key) = app.services.incidents.open_ack_token(&token)?;
        app.services.incidents.ack(&tenant, &incident, Some(&key), "link").await
    }
    .await;
    match result {
        Ok(_) => Html("<!doctype html><meta charset=utf-8><title>Herald</title><p>Acknowledged. 已确认。</p>").into_response(),
        Err(e) => {
            let e = ApiError::from(e);
            let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
            (status, Html(format!("<!doctype html><meta charset=utf-8><title>Herald</title><p>{}</p>", e.message))).into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    advance_ms: i64,
}

/// Tests only (`testing_clock = true` and the operator token): move the clock forward.
pub async fn advance_clock(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Result<Response, Failure> {
    if !app.cfg.testing_clock {
        return Err(ApiError::new(ErrorKind::NotFound, "not_found", "no such route").into());
    }
    operator(&app, &headers)?;
    let a: Advance = parse(&body)?;
    let offset = app.deps.clock.advance(a.advance_ms).ok_or_else(|| ApiError::new(ErrorKind::NotFound, "not_found", "no such route"))?;
    Ok(axum::Json(json!({"offset_ms": offset, "now_ms": app.deps.clock.now_ms()})).into_response())
}
