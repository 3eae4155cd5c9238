//! The admin REST API (`/api/v1`), its OpenAPI document, and the console's
//! static files, assembled from the handler modules; what handlers share is in
//! `crate::web`.

pub mod accounts;
pub mod cost;
pub mod directory;
pub mod pushes;
pub mod rbac;
pub mod reports;
pub mod session;
pub mod tiered;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use herald_core::error::{ApiError, ErrorKind};

use crate::state::App;
use crate::web::{Failure, Routes, same_origin_writes};

pub fn router(app: Arc<App>) -> Router {
    let r = Routes::new();
    let r = session::routes(r);
    let r = directory::routes(r);
    let r = rbac::routes(r);
    let r = pushes::routes(r);
    let r = tiered::routes(r);
    let r = accounts::routes(r);
    let r = cost::routes(r);
    let r = reports::routes(r);
    let doc = r.openapi(crate::auth::COOKIE);
    let r = r.add("GET", "/openapi.json", "This document", move || {
        let doc = doc.clone();
        async move { axum::Json(doc) }
    });
    r.into_router()
        .route("/", axum::routing::get(|| static_file("text/html; charset=utf-8", include_str!("../../../console/index.html"))))
        .route("/app.js", axum::routing::get(|| static_file("text/javascript; charset=utf-8", include_str!("../../../console/app.js"))))
        .route("/i18n.js", axum::routing::get(|| static_file("text/javascript; charset=utf-8", include_str!("../../../console/i18n.js"))))
        .route("/style.css", axum::routing::get(|| static_file("text/css; charset=utf-8", include_str!("../../../console/style.css"))))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/metrics", axum::routing::get(crate::metrics::handler))
        .fallback(|| async { Failure(ApiError::new(ErrorKind::NotFound, "not_found", "no such route")) })
        .layer(axum::middleware::from_fn(same_origin_writes))
        .layer(axum::extract::DefaultBodyLimit::max(app.cfg.max_upload_bytes + 64 * 1024))
        .layer(crate::metrics::get().http.layer()) // X-Request-Id, request span, herald_admin_requests_total
        .with_state(app)
}

async fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"),
        ],
        body,
    )
        .into_response()
}
