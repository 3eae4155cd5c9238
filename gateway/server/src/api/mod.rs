//! The HTTP edge: routes, authentication, and the one place where errors
//! become status codes.

mod callbacks;
mod demo;
mod incidents;
mod messages;
mod ops;
pub mod request;
mod tenant;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use herald_core::ApiError;
use herald_core::error::ErrorKind;

use crate::state::App;

pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.cfg.limits.max_body_bytes;
    let mut r = Router::new()
        .route("/v1/messages", post(messages::create))
        .route("/v1/messages/{id}", get(messages::get))
        .route("/v1/plugins", get(tenant::plugins))
        .route("/v1/ledger", get(tenant::ledger))
        .route("/v1/callbacks/{tenant}/{account}", post(callbacks::receive))
        .route("/admin/plugins/reload", post(ops::reload_plugins))
        .route("/admin/dead-letters", get(ops::dead_letters))
        .route("/admin/dead-letters/redrive", post(ops::redrive))
        .route("/v1/actions/{id}/trigger", post(incidents::trigger))
        .route("/v1/incidents/{id}", get(incidents::get))
        .route("/v1/incidents/{id}/ack", post(incidents::ack))
        .route("/v1/ack/{token}", get(incidents::ack_link).post(incidents::ack_link))
        .route("/admin/clock", post(incidents::advance_clock))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ops::ready))
        .route("/metrics", get(ops::metrics));
    if app.demo_inbox.is_some() {
        r = r.route("/demo/inbox", post(demo::receive).get(demo::list));
    }
    r.layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(json_rejections))
        .layer(middleware::from_fn_with_state(app.clone(), count_requests))
        .fallback(|| async { request::Failure(ApiError::new(ErrorKind::NotFound, "not_found", "no such route")) })
        .layer(app.metrics.http.layer()) // X-Request-Id, request span, duration by route (after the fallback: covers it too)
        .with_state(app)
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

async fn count_requests(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    app.metrics.http_requests.with_label_values(&[&route, resp.status().as_str()]).inc();
    resp
}
