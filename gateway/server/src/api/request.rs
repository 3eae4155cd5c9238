//! What every handler shares (a leaf: it imports no handler): the error on
//! its way out, body parsing that names the field, authentication, and the
//! Idempotency-Key rules.

use std::future::Future;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::error::ErrorKind;
use herald_core::model::Tenant;
use herald_core::{ApiError, ErrorBody};
use serde_json::json;

use crate::state::App;

/// An `ApiError` on its way out.
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<herald_service::IntakeError> for Failure {
    fn from(e: herald_service::IntakeError) -> Self {
        Self(e.into())
    }
}

impl From<herald_service::IncidentError> for Failure {
    fn from(e: herald_service::IncidentError) -> Self {
        Self(e.into())
    }
}

impl From<herald_core::StoreError> for Failure {
    fn from(e: herald_core::StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = e.body();
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// The `Idempotency-Key` header, as the OpenAPI document shows it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKey {
    /// 1–255 visible ASCII characters naming this request among the tenant's (across
    /// `POST /v1/messages` and `POST /v1/actions/{id}/trigger`). A repeat gets the first
    /// answer with `Idempotent-Replayed: true`; the key with another request is `409`. Kept
    /// for `idempotency_ttl_hours`.
    #[param(rename = "Idempotency-Key", nullable = false, min_length = 1, max_length = 255, pattern = "^[!-~]+$", example = "order-A-1")]
    idempotency_key: Option<String>,
}

/// Missing or unknown API key (`unauthenticated`).
#[derive(utoipa::ToResponse)]
#[response(
    example = json!({"error": {"code": "unauthenticated", "message": "unknown API key"}}),
    headers(("WWW-Authenticate" = String, description = "`Bearer`"))
)]
pub struct Unauthenticated(#[allow(dead_code)] ErrorBody);

/// Missing or wrong operator token (`unauthenticated`).
#[derive(utoipa::ToResponse)]
#[response(
    example = json!({"error": {"code": "unauthenticated", "message": "operator token required"}}),
    headers(("WWW-Authenticate" = String, description = "`Bearer`"))
)]
pub struct OperatorUnauthenticated(#[allow(dead_code)] ErrorBody);

/// Not found (`not_found`); for the tenant's API, another tenant's is indistinguishable from a missing one.
#[derive(utoipa::ToResponse)]
#[response(example = json!({"error": {"code": "not_found", "message": "message not found", "field": "id"}}))]
pub struct NotFound(#[allow(dead_code)] ErrorBody);

/// Operator endpoints are off (no `admin_token` configured) (`not_found`).
#[derive(utoipa::ToResponse)]
#[response(example = json!({"error": {"code": "not_found", "message": "operator endpoints are off (set admin_token)"}}))]
pub struct OperatorOff(#[allow(dead_code)] ErrorBody);

/// A malformed or out-of-range query parameter (`invalid_field`; `field` names it).
#[derive(utoipa::ToResponse)]
#[response(example = json!({"error": {"code": "invalid_field", "message": "must be 1..1000", "field": "limit"}}))]
pub struct BadQuery(#[allow(dead_code)] ErrorBody);

/// The same `Idempotency-Key` with a different request (`idempotency_key_reused`).
#[derive(utoipa::ToResponse)]
#[response(
    example = json!({"error": {"code": "idempotency_key_reused", "message": "this Idempotency-Key was used with a different request", "field": "Idempotency-Key"}})
)]
pub struct KeyReused(#[allow(dead_code)] ErrorBody);

/// Storage unavailable; nothing was done (`unavailable`). Try again after `Retry-After`.
#[derive(utoipa::ToResponse)]
#[response(
    example = json!({"error": {"code": "unavailable", "message": "backend unavailable: database is locked"}}),
    headers(("Retry-After" = i64, description = "Seconds to wait before trying again."))
)]
pub struct Unavailable(#[allow(dead_code)] ErrorBody);

/// The request's `Idempotency-Key`, if it has one (checked: 1–255 visible ASCII).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    Ok(Some(herald_core::validate::idempotency_key(v.to_str().unwrap_or(""))?.to_string()))
}

/// A request with an `Idempotency-Key`, run at most once per (tenant, key)
/// while the key is remembered (`idempotency_ttl_hours`): a repeat of the same
/// request gets the first answer with `Idempotent-Replayed: true`; the key
/// with a different request (another body or endpoint) is a 409.
pub async fn once(
    app: &App,
    tenant: &str,
    key: String,
    request_hash: String,
    now: herald_core::Millis,
    run: impl Future<Output = Result<(StatusCode, serde_json::Value), Failure>>,
) -> Result<Response, Failure> {
    // One request per key at a time in this process; the store remembers answers.
    let _guard = app.idempotency_guard(tenant, &key).await;
    if let Some(rec) = app.deps.backends.store.idempotency(tenant, &key, now).await? {
        if rec.request_hash != request_hash {
            return Err(ApiError::new(ErrorKind::Conflict, "idempotency_key_reused", "this Idempotency-Key was used with a different request")
                .with_field("Idempotency-Key")
                .into());
        }
        let answer: serde_json::Value = serde_json::from_str(&rec.response).unwrap_or_else(|_| json!({"id": rec.message_id}));
        let answer = in_todays_form(answer);
        let mut resp = (StatusCode::ACCEPTED, axum::Json(answer)).into_response();
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(resp);
    }
    let (status, answer) = run.await?;
    let ttl = i64::from(app.cfg.idempotency_ttl_hours) * 3_600_000;
    app.deps
        .backends
        .store
        .put_idempotency(herald_core::model::IdempotencyRecord {
            tenant: tenant.into(),
            key,
            request_hash,
            message_id: answer["id"].as_str().unwrap_or_default().to_string(),
            response: answer.to_string(),
            expires_at: now + ttl,
        })
        .await?;
    Ok((status, axum::Json(answer)).into_response())
}

/// A stored answer as the API answers today: one stored before times were
/// Unix milliseconds has `send_at` as an RFC 3339 string.
fn in_todays_form(mut answer: serde_json::Value) -> serde_json::Value {
    let old = answer.get("send_at").and_then(|v| v.as_str()).and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    if let Some(at) = old {
        answer["send_at"] = json!(at.timestamp_millis());
    }
    answer
}

/// An Idempotency-Key in the TTL window it was used in: the seed of the id
/// of what the keyed request creates. The stored answer replays a request
/// while it is remembered; the seed makes a replay that got past that (two
/// processes at once, an answer not yet stored) create the same id, and a key
/// reused after the TTL a new one (its window always differs: the answer
/// lives `ttl` from its request, a window is `ttl` long).
pub fn key_generation(app: &App, key: &str, now: herald_core::Millis) -> String {
    let ttl = i64::from(app.cfg.idempotency_ttl_hours) * 3_600_000;
    format!("{key}@{}", now.div_euclid(ttl))
}

/// The tenant of a request, from `Authorization: Bearer <api key>`.
pub async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Tenant, Failure> {
    let unauth = |m: &str| Failure(ApiError::new(ErrorKind::Unauthenticated, "unauthenticated", m));
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| unauth("missing Authorization: Bearer <api key>"))?;
    let key = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| unauth("Authorization must be: Bearer <api key>"))?;
    app.tenant_for_key(key).await?.ok_or_else(|| unauth("unknown API key"))
}

/// Operator endpoints need `Authorization: Bearer <admin_token>`; without an admin_token they are off.
pub fn operator(app: &App, headers: &HeaderMap) -> Result<(), Failure> {
    let Some(expected) = &app.cfg.admin_token else {
        return Err(ApiError::new(ErrorKind::NotFound, "not_found", "operator endpoints are off (set admin_token)").into());
    };
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let ok = given.is_some_and(|g| herald_core::same_secret(g, expected));
    if !ok {
        return Err(ApiError::new(ErrorKind::Unauthenticated, "unauthenticated", "operator token required").into());
    }
    Ok(())
}

pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Every body is an object (serde's derives would take an array of the fields, too).
    if body.trim_ascii_start().starts_with(b"[") {
        return Err(ApiError::new(ErrorKind::Invalid, "invalid_field", "the body must be a JSON object").with_field("body"));
    }
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

/// Query parameters; a malformed one is a 400 naming it (axum's own `Query`
/// answers without the field).
pub struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            // serde names a duplicate or unknown parameter only in its message: "duplicate field `limit`".
            let named = message.split('`').nth(1).map(str::to_string);
            let field = if path != "." && !path.is_empty() { path } else { named.unwrap_or_else(|| "query".into()) };
            Failure(ApiError::new(ErrorKind::Invalid, "invalid_field", format!("query parameter {field}: {message}")).with_field(field))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_answer_with_an_rfc_3339_send_at_replays_in_milliseconds() {
        let old = json!({"id": "m", "status": "accepted", "recipients": 1, "send_at": "2026-12-01T17:00:00+08:00"});
        assert_eq!(in_todays_form(old)["send_at"], json!(1_796_115_600_000_i64));
        let new = json!({"id": "m", "status": "accepted", "recipients": 1, "send_at": 1_796_115_600_000_i64});
        assert_eq!(in_todays_form(new.clone()), new);
        let trigger = json!({"id": "i", "deduplicated": false});
        assert_eq!(in_todays_form(trigger.clone()), trigger);
    }
}
