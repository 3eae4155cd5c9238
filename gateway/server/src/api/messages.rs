//! `POST /v1/messages` and `GET /v1/messages/{id}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::ApiError;
use herald_core::error::ErrorKind;
use herald_core::model::{Content, Message, SendRequest, Tenant, Work};
use herald_core::render::Compiled;
use herald_core::seams::Enqueue;
use herald_core::validate::validate;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Failure, authenticate};
use crate::app::App;

/// Namespace for message ids derived from idempotency keys.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6865_7261_6c64_2d6d_7367_2d69_6473_0001);

pub(super) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            // Broken JSON has no field to name but the body itself.
            return ApiError::new(ErrorKind::Invalid, "invalid_json", format!("the body is not valid JSON: {inner}")).with_field("body");
        }
        let code = "invalid_field";
        let message = inner.to_string();
        // serde names a missing field only in its message: "missing field `recipients` at …".
        let missing = message.strip_prefix("missing field `").and_then(|m| m.split_once('`')).map(|(name, _)| name.to_string());
        let err = ApiError::new(ErrorKind::Invalid, code, message);
        let parent = (field != "." && !field.is_empty()).then_some(field);
        let named = match (parent, missing) {
            (Some(p), Some(m)) => Some(format!("{p}.{m}")),
            (p, m) => p.or(m),
        };
        err.with_field(named.unwrap_or_else(|| "body".to_string()))
    })?;
    // One JSON value and nothing after it (whitespace aside).
    de.end().map_err(|e| ApiError::new(ErrorKind::Invalid, "invalid_json", format!("data after the JSON body: {e}")).with_field("body"))?;
    Ok(value)
}

pub async fn create(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    let key = super::idempotency_key(&headers)?;
    let req: SendRequest = parse(&body)?;
    let now = herald_core::now_ms();
    validate(&req, &app.cfg.limits, now)?;

    let Some(key) = key else {
        let (status, answer) = accept(&app, &tenant, req, uuid::Uuid::now_v7().to_string(), now).await?;
        return Ok((status, axum::Json(answer)).into_response());
    };
    // Only keyed requests are compared with their first.
    let request_hash = hex::encode(Sha256::digest(&body));
    let seed = super::key_generation(&app, &key, now);
    let id = uuid::Uuid::new_v5(&ID_NAMESPACE, format!("{}\n{seed}", tenant.id).as_bytes()).to_string();
    super::once(&app, &tenant.id, key, request_hash, now, accept(&app, &tenant, req, id, now)).await
}

/// Resolve references, make the message durable, and answer.
async fn accept(app: &App, tenant: &Tenant, req: SendRequest, id: String, now: i64) -> Result<(StatusCode, serde_json::Value), Failure> {
    let Some(plugin) = app.plugins.get(&req.channel) else {
        return Err(ApiError::unknown("unknown_channel", "channel", format!("no plugin named {:?} is loaded", req.channel)).into());
    };
    let account = match &req.account {
        Some(name) => app
            .config
            .account(&tenant.id, name)
            .await?
            .ok_or_else(|| ApiError::unknown("unknown_account", "account", format!("no sender account named {name:?}")))?,
        None => {
            let mut fitting: Vec<_> = app.config.accounts(&tenant.id).await?.into_iter().filter(|a| a.plugin == req.channel).collect();
            match fitting.len() {
                1 => fitting.remove(0),
                0 => {
                    return Err(ApiError::unknown("unknown_account", "account", format!("no sender account for channel {:?}", req.channel)).into());
                }
                _ => {
                    return Err(ApiError::invalid("account", "several accounts serve this channel; name one").into());
                }
            }
        }
    };
    if account.plugin != plugin.info.name {
        return Err(ApiError::unknown(
            "account_channel_mismatch",
            "account",
            format!("account {:?} sends via {:?}, not {:?}", account.name, account.plugin, req.channel),
        )
        .into());
    }
    herald_core::validate::recipients(&req, &plugin.recipients)?;
    let content: Content = match (&req.template, req.content) {
        (Some(tid), _) => {
            app.config
                .template(&tenant.id, tid)
                .await?
                .ok_or_else(|| ApiError::unknown("unknown_template", "template", format!("no template named {tid:?}")))?
                .content
        }
        (None, Some(c)) => c,
        (None, None) => unreachable!("validated"),
    };
    if let Err(e) = Compiled::new(&content) {
        let field = if req.template.is_some() { "template".to_string() } else { format!("content.{}", e.part) };
        return Err(ApiError::new(ErrorKind::Invalid, "invalid_template", e.to_string()).with_field(field).into());
    }
    let send_at = req.send_at.map(|t| t.timestamp_millis()).filter(|t| *t > now);
    let message = Message {
        id,
        tenant: tenant.id.clone(),
        channel: req.channel,
        account: account.name,
        content,
        template: req.template,
        variables: req.variables,
        recipients: req.recipients,
        metadata: herald_telemetry::trace::with_traceparent(req.metadata), // the trace dispatch continues
        accepted_at: now,
        send_at,
    };
    crate::escalation::check_prepaid(app.config.as_ref(), app.store.as_ref(), &message).await?;
    let recipients = message.recipients.len();
    // Rows first (so a status query right after 202 finds them), then the log.
    app.store.record_message(&message).await?;
    let (tenant_id, channel) = (message.tenant.clone(), message.channel.clone());
    app.queue.publish(vec![Enqueue { key: tenant_id.clone(), not_before: send_at.unwrap_or(now), work: Work::Message(message.clone()) }]).await?;
    app.metrics.channel(&tenant_id, &channel, &tenant.currency).accepted.inc_by(recipients as u64);
    tracing::info!(tenant = %tenant_id, message_id = %message.id, channel = %channel, recipients, "accepted");
    let mut answer = json!({"id": message.id, "status": "accepted", "recipients": recipients});
    if let Some(at) = send_at {
        answer["send_at"] = json!(chrono::DateTime::from_timestamp_millis(at).map(|t| t.to_rfc3339()));
    }
    Ok((StatusCode::ACCEPTED, answer))
}

pub async fn get(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    // Another tenant's message is indistinguishable from a missing one.
    let view = app.store.message(&tenant.id, &id).await?.ok_or_else(|| ApiError::not_found("message", "id"))?;
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for d in &view.deliveries {
        *counts.entry(d.status.as_str()).or_default() += 1;
    }
    let mut body = serde_json::to_value(&view).map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))?;
    body["summary"] = json!(counts);
    body["cost_minor"] = json!(view.deliveries.iter().map(|d| d.cost_minor).sum::<i64>());
    Ok(axum::Json(body).into_response())
}
