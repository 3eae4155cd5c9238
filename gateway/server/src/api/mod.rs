//! The HTTP edge: routes, authentication, and the one place where errors
//! become status codes.

mod callbacks;
mod incidents;
mod messages;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use herald_core::ApiError;
use herald_core::error::ErrorKind;
use herald_core::model::Tenant;
use serde_json::json;

use crate::app::App;

pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.cfg.limits.max_body_bytes;
    let mut r = Router::new()
        .route("/v1/messages", post(messages::create))
        .route("/v1/messages/{id}", get(messages::get))
        .route("/v1/plugins", get(plugins))
        .route("/v1/ledger", get(ledger))
        .route("/v1/callbacks/{tenant}/{account}", post(callbacks::receive))
        .route("/admin/plugins/reload", post(reload_plugins))
        .route("/admin/dead-letters", get(dead_letters))
        .route("/admin/dead-letters/redrive", post(redrive))
        .route("/v1/actions/{id}/trigger", post(incidents::trigger))
        .route("/v1/incidents/{id}", get(incidents::get))
        .route("/v1/incidents/{id}/ack", post(incidents::ack))
        .route("/v1/ack/{token}", get(incidents::ack_link).post(incidents::ack_link))
        .route("/admin/clock", post(incidents::advance_clock))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics));
    if app.demo_inbox.is_some() {
        r = r.route("/demo/inbox", post(demo_receive).get(demo_list));
    }
    r.layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(json_rejections))
        .layer(middleware::from_fn_with_state(app.clone(), count_requests))
        .fallback(|| async { Failure(ApiError::new(ErrorKind::NotFound, "not_found", "no such route")) })
        .layer(app.metrics.http.layer()) // X-Request-Id, request span, duration by route (after the fallback: covers it too)
        .with_state(app)
}

/// An `ApiError` on its way out.
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self(e)
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
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    Ok(Some(herald_core::validate::idempotency_key(v.to_str().unwrap_or(""))?.to_string()))
}

/// A request with an `Idempotency-Key`, run at most once per (tenant, key)
/// while the key is remembered (`idempotency_ttl_hours`): a repeat of the same
/// request gets the first answer with `Idempotent-Replayed: true`; the key
/// with a different request (another body or endpoint) is a 409.
async fn once(
    app: &App,
    tenant: &str,
    key: String,
    request_hash: String,
    now: herald_core::Millis,
    run: impl Future<Output = Result<(StatusCode, serde_json::Value), Failure>>,
) -> Result<Response, Failure> {
    // One request per key at a time in this process; the store remembers answers.
    let _guard = app.idempotency_guard(tenant, &key).await;
    if let Some(rec) = app.store.idempotency(tenant, &key, now).await? {
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
    app.store
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
fn key_generation(app: &App, key: &str, now: herald_core::Millis) -> String {
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

async fn count_requests(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    app.metrics.http_requests.with_label_values(&[&route, resp.status().as_str()]).inc();
    resp
}

/// Axum answers some bad requests itself in plain text (a body over the
/// limit, a malformed query string, a wrong method or content type); API
/// callers get those in the one JSON error shape, with the same status.
async fn json_rejections(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/v1/") || path.starts_with("/admin/");
    let resp = next.run(req).await;
    // Plain text, or no body at all (a 405).
    let plain = resp.headers().get(header::CONTENT_TYPE).is_none_or(|v| v.to_str().is_ok_and(|v| v.starts_with("text/plain")));
    if !api || !plain || !resp.status().is_client_error() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
    let (kind, code) = match parts.status {
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorKind::TooLarge, "too_large"),
        StatusCode::METHOD_NOT_ALLOWED => (ErrorKind::Invalid, "method_not_allowed"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (ErrorKind::Invalid, "unsupported_media_type"),
        _ => (ErrorKind::Invalid, "invalid_request"),
    };
    let message = if text.is_empty() { parts.status.canonical_reason().unwrap_or("bad request").to_string() } else { text };
    let body = ApiError::new(kind, code, message).body().to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, axum::body::Body::from(body))
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    match app.queue.depth().await {
        Ok(_) if !app.plugins.names().is_empty() => (StatusCode::OK, "ready").into_response(),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "no plugins loaded").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("queue unavailable: {e}")).into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    // Dispatch nodes refresh the queue depth every second; an ingest-only
    // node measures it when scraped (on Kafka it is the group's lag either way).
    if !app.cfg.dispatch.enabled
        && let Ok(n) = app.queue.depth().await
    {
        app.metrics.queue_depth.set(n as i64);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

async fn plugins(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, Failure> {
    authenticate(&app, &headers).await?;
    let list: Vec<_> = app
        .plugins
        .names()
        .into_iter()
        .filter_map(|n| app.plugins.get(&n))
        .map(|p| {
            let i = &p.info;
            json!({
                "name": i.name, "version": i.version, "channel": i.channel,
                "formats": p.format_names(),
                "max_batch": i.max_batch, "hosts": i.hosts, "billing_unit": i.billing_unit,
                "account_schema": serde_json::from_str::<serde_json::Value>(&i.account_schema).unwrap_or(serde_json::Value::Null),
                "secret_fields": i.secret_fields, "sha256": p.digest, "worlds": p.worlds(),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "plugins": list })).into_response())
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

/// Operator endpoint: reload the plugin directory now and report.
async fn reload_plugins(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, Failure> {
    operator(&app, &headers)?;
    let (plugins, dir) = (app.plugins.clone(), app.cfg.plugins_dir());
    let report = tokio::task::spawn_blocking(move || plugins.sync_dir(&dir))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))?;
    crate::app::log_sync(&report);
    let errors: Vec<_> = report.failing.iter().map(|(p, e)| json!({"file": p.display().to_string(), "error": e})).collect();
    let loaded: Vec<_> = report.loaded.iter().map(|(n, v, sha)| json!({"name": n, "version": v, "sha256": sha})).collect();
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((
        status,
        axum::Json(
            json!({"loaded": loaded, "removed": report.removed, "unchanged": report.unchanged, "errors": errors, "plugins": app.plugins.names()}),
        ),
    )
        .into_response())
}

#[derive(serde::Deserialize)]
struct DeadLetterQuery {
    limit: Option<usize>,
}

/// The dead-letter list's head (operator).
async fn dead_letters(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<DeadLetterQuery>,
) -> Result<Response, Failure> {
    operator(&app, &headers)?;
    let limit = dead_letter_limit(q.limit)?;
    let letters = app.queue.dead_letters(limit).await?;
    let items: Vec<_> = letters.iter().map(|(_, l)| crate::redrive::describe(l)).collect();
    Ok(axum::Json(json!({ "dead_letters": items })).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RedriveRequest {
    /// Only this tenant's letters; the others stay on the list.
    tenant: Option<String>,
    limit: Option<usize>,
}

/// Re-drive dead letters from the head of the list (operator).
async fn redrive(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Result<Response, Failure> {
    operator(&app, &headers)?;
    let req: RedriveRequest = if body.is_empty() {
        RedriveRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::new(ErrorKind::Invalid, "invalid_json", e.to_string()))?
    };
    let limit = dead_letter_limit(req.limit)?;
    let report = crate::redrive::redrive(app.store.as_ref(), app.queue.as_ref(), req.tenant.as_deref(), limit).await?;
    tracing::info!(redriven = report.redriven.len(), skipped = report.skipped, kept = report.kept, tenant = ?req.tenant, "dead letters re-driven");
    Ok(axum::Json(report).into_response())
}

fn dead_letter_limit(limit: Option<usize>) -> Result<usize, Failure> {
    match limit.unwrap_or(100) {
        n @ 1..=10_000 => Ok(n),
        _ => Err(ApiError::invalid("limit", "must be 1..10000").into()),
    }
}

#[derive(serde::Deserialize)]
struct LedgerQuery {
    limit: Option<usize>,
}

/// The tenant's balance and most recent ledger entries.
async fn ledger(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<LedgerQuery>,
) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid("limit", "must be 1..1000").into());
    }
    let balance = app.store.balance(&tenant.id).await?;
    let entries = app.store.ledger(&tenant.id, limit).await?;
    Ok(axum::Json(json!({"tenant": tenant.id, "currency": tenant.currency, "balance_minor": balance, "entries": entries})).into_response())
}

/// The demo tenant's webhook account posts here, so a newcomer sees
/// deliveries arrive without running anything else.
async fn demo_receive(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(inbox) = &app.demo_inbox else {
        return StatusCode::NOT_FOUND;
    };
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
    let signed = headers.get("x-herald-signature").is_some();
    tracing::info!(delivery = ?headers.get("x-herald-delivery"), "demo inbox received a notification");
    let mut inbox = inbox.lock().expect("demo inbox");
    if inbox.len() >= 100 {
        inbox.pop_front();
    }
    inbox.push_back(json!({"received_at": herald_core::now_ms(), "signed": signed, "body": parsed}));
    StatusCode::NO_CONTENT
}

async fn demo_list(State(app): State<Arc<App>>) -> Response {
    let items: Vec<_> = app.demo_inbox.as_ref().map(|i| i.lock().expect("demo inbox").iter().cloned().collect()).unwrap_or_default();
    axum::Json(json!({ "received": items })).into_response()
}
