//! The HTTP edge: routes, authentication, and the one place where errors
//! become status codes.

mod callbacks;
mod demo;
mod incidents;
mod messages;
pub mod openapi;
mod ops;
pub mod request;
mod tenant;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use herald_core::ApiError;
use herald_core::error::ErrorKind;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::App;

/// Every documented route: each handler's `#[utoipa::path]` gives both its
/// axum route and its part of the OpenAPI document, so the two cannot drift.
fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(messages::create))
        .routes(routes!(messages::get))
        .routes(routes!(incidents::trigger))
        .routes(routes!(incidents::get))
        .routes(routes!(incidents::ack))
        .routes(routes!(incidents::ack_link))
        .routes(routes!(incidents::ack_link_post))
        .routes(routes!(tenant::plugins))
        .routes(routes!(tenant::ledger))
        .routes(routes!(callbacks::receive))
        .routes(routes!(ops::reload_plugins))
        .routes(routes!(ops::dead_letters))
        .routes(routes!(ops::redrive))
        .routes(routes!(incidents::advance_clock))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(openapi::document))
        .routes(routes!(openapi::page))
}

pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.cfg.limits.max_body_bytes;
    // Undocumented: the page's script, and the demo inbox (`make run` only).
    let mut r = routes().split_for_parts().0.route("/v1/docs/redoc.standalone.js", get(openapi::redoc));
    if app.demo_inbox.is_some() {
        r = r.route("/demo/inbox", axum::routing::post(demo::receive).get(demo::list));
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
