//! Operator and infrastructure endpoints: readiness, metrics, plugin reload,
//! dead letters and their re-drive.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::error::ErrorKind;
use herald_core::{ApiError, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::request::{self, Failure, operator, parse};
use crate::redrive::{DeadLetterView, Redriven};
use crate::state::App;

/// Liveness
///
/// `ok` while the process serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    responses((status = 200, description = "Alive.", content_type = "text/plain", body = String, example = "ok"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness
///
/// Ready when storage (the queue) is reachable and at least one plugin is loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready.", content_type = "text/plain", body = String, example = "ready"),
        (status = 503, description = "Not ready: why.", content_type = "text/plain", body = String, example = "no plugins loaded"),
    )
)]
pub async fn ready(State(app): State<Arc<App>>) -> Response {
    match app.deps.backends.queue.depth().await {
        Ok(_) if !app.deps.plugins.names().is_empty() => (StatusCode::OK, "ready").into_response(),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "no plugins loaded").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("queue unavailable: {e}")).into_response(),
    }
}

/// Prometheus metrics
///
/// The gateway's metrics in the Prometheus text format (see `deploy/` for alert rules and a
/// Grafana dashboard).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.", content_type = "text/plain; version=0.0.4", body = String))
)]
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    // Dispatch nodes refresh the queue depth every second; an ingest-only
    // node measures it when scraped (on Kafka it is the group's lag either way).
    if !app.cfg.dispatch.enabled
        && let Ok(n) = app.deps.backends.queue.depth().await
    {
        app.metrics.queue_depth.set(n as i64);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

/// What a plugin reload did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReloadReport {
    /// Plugins loaded or replaced.
    pub loaded: Vec<LoadedPlugin>,
    /// Plugins whose file disappeared, unloaded.
    pub removed: Vec<String>,
    /// Files that did not change.
    pub unchanged: usize,
    /// Every file currently failing to load (the previous version, if any, keeps serving).
    pub errors: Vec<PluginFailure>,
    /// The names of the plugins loaded now.
    pub plugins: Vec<String>,
}

/// A plugin loaded by a reload.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoadedPlugin {
    pub name: String,
    pub version: String,
    /// SHA-256 of the component, hex.
    pub sha256: String,
}

/// A plugin file that failed to load.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PluginFailure {
    pub file: String,
    pub error: String,
}

/// Reload the plugins
///
/// Operator: reload the plugin directory now (it is also watched) and report what loaded,
/// what was removed and what fails.
#[utoipa::path(
    post,
    path = "/admin/plugins/reload",
    tag = "operator",
    operation_id = "reloadPlugins",
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "Every plugin file loads.", body = ReloadReport, example = json!({
            "loaded": [{"name": "webhook", "version": "1.2.0", "sha256": "9f2c…"}], "removed": [], "unchanged": 6, "errors": [],
            "plugins": ["email", "webhook"]
        })),
        (status = 401, response = request::OperatorUnauthenticated),
        (status = 404, response = request::OperatorOff),
        (status = 422, description = "Some plugin files fail to load (`errors`); the others were reloaded.", body = ReloadReport, example = json!({
            "loaded": [], "removed": [], "unchanged": 6, "errors": [{"file": "data/plugins/broken.wasm", "error": "not a component"}],
            "plugins": ["email", "webhook"]
        })),
    )
)]
pub async fn reload_plugins(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, Failure> {
    operator(&app, &headers)?;
    let (plugins, dir) = (app.deps.plugins.clone(), app.cfg.plugins_dir());
    let report = tokio::task::spawn_blocking(move || plugins.sync_dir(&dir))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))?;
    crate::plugins_watch::log_sync(&report);
    let errors: Vec<_> = report.failing.iter().map(|(p, e)| PluginFailure { file: p.display().to_string(), error: e.clone() }).collect();
    let loaded = report.loaded.into_iter().map(|(name, version, sha256)| LoadedPlugin { name, version, sha256 }).collect();
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let answer = ReloadReport { loaded, removed: report.removed, unchanged: report.unchanged, errors, plugins: app.deps.plugins.names() };
    Ok((status, axum::Json(answer)).into_response())
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// How many from the head of the list (1–10000, default 100).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

/// The head of the dead-letter list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetters {
    pub dead_letters: Vec<DeadLetterView>,
}

/// List dead letters
///
/// Operator: the head of the dead-letter list, deliveries whose retries ran out, each with
/// the `history` of its attempts.
#[utoipa::path(
    get,
    path = "/admin/dead-letters",
    tag = "operator",
    operation_id = "listDeadLetters",
    security(("operator_token" = [])),
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "The head of the list.", body = DeadLetters, example = json!({"dead_letters": [{
            "tenant": "acme", "message_id": "0193a5c2-7d1e-7c3a-9a1e-3f9b8c2d4e51", "delivery_id": "0193a5c2-7d1e-7c3a-9a1e-3f9b8c2d4e51.0",
            "recipient": "ann@example.com", "channel": "email", "account": "notices", "attempts": 8, "reason": "SMTP 451 try later",
            "dead_at": 1796119200000_i64,
            "history": [{"attempt": 1, "at": 1796115600100_i64, "outcome": "retry", "detail": "SMTP 451 try later"}]
        }]})),
        (status = 400, response = request::BadQuery),
        (status = 401, response = request::OperatorUnauthenticated),
        (status = 404, response = request::OperatorOff),
        (status = 503, response = request::Unavailable),
    )
)]
pub async fn dead_letters(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    request::Query(q): request::Query<DeadLetterQuery>,
) -> Result<Response, Failure> {
    operator(&app, &headers)?;
    let limit = dead_letter_limit(q.limit)?;
    let letters = app.deps.backends.queue.dead_letters(limit).await?;
    let dead_letters = letters.iter().map(|(_, l)| crate::redrive::describe(l)).collect();
    Ok(axum::Json(DeadLetters { dead_letters }).into_response())
}

/// The body of a re-drive (optional).
#[derive(serde::Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// Only this tenant's letters; the others stay on the list.
    #[serde(default)]
    tenant: Option<String>,
    /// How many from the head of the list (1–10000, default 100).
    #[serde(default, deserialize_with = "herald_core::wire::option_integer")]
    #[schema(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

/// Re-drive dead letters
///
/// Operator: each listed delivery (from the head of the list) that is still `dead` gets one
/// more attempt now; if it fails again it is dead-lettered again. With `tenant`, the other
/// tenants' letters stay on the list (`kept`).
#[utoipa::path(
    post,
    path = "/admin/dead-letters/redrive",
    tag = "operator",
    operation_id = "redriveDeadLetters",
    security(("operator_token" = [])),
    request_body(content = Option<RedriveRequest>, description = "Optional: which letters.", example = json!({"tenant": "acme", "limit": 100})),
    responses(
        (status = 200, description = "What was re-driven.", body = Redriven),
        (status = 400, description = "Malformed body or `limit` out of range (`invalid_json`, `invalid_field`).", body = ErrorBody),
        (status = 401, response = request::OperatorUnauthenticated),
        (status = 404, response = request::OperatorOff),
        (status = 413, description = "The body is larger than `limits.max_body_bytes` (`too_large`).", body = ErrorBody),
        (status = 503, response = request::Unavailable),
    )
)]
pub async fn redrive(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Result<Response, Failure> {
    operator(&app, &headers)?;
    // No body, or `null`: the defaults.
    let req: RedriveRequest = if body.is_empty() { RedriveRequest::default() } else { parse::<Option<RedriveRequest>>(&body)?.unwrap_or_default() };
    let limit = dead_letter_limit(req.limit)?;
    let report = crate::redrive::redrive(&app.deps.backends, app.deps.clock.now_ms(), req.tenant.as_deref(), limit).await?;
    tracing::info!(redriven = report.redriven.len(), skipped = report.skipped, kept = report.kept, tenant = ?req.tenant, "dead letters re-driven");
    Ok(axum::Json::<Redriven>(report).into_response())
}

fn dead_letter_limit(limit: Option<usize>) -> Result<usize, Failure> {
    match limit.unwrap_or(100) {
        n @ 1..=10_000 => Ok(n),
        _ => Err(ApiError::invalid("limit", "must be 1..10000").into()),
    }
}
