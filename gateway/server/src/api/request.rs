//! What every handler shares (a leaf: it imports no handler): the error on
//! its way out, body parsing that names the field, authentication, and the
//! Idempotency-Key rules.

use std::future::Future;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::ApiError;
use herald_core::error::ErrorKind;
use herald_core::model::Tenant;
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
