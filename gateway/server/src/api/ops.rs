//! Operator and infrastructure endpoints: readiness, metrics, plugin reload,
//! dead letters and their re-drive.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::ApiError;
use herald_core::error::ErrorKind;
use serde_json::json;

use super::request::{Failure, operator};
use crate::state::App;

pub async fn ready(State(app): State<Arc<App>>) -> Response {
    match app.deps.backends.queue.depth().await {
        Ok(_) if !app.deps.plugins.names().is_empty() => (StatusCode::OK, "ready").into_response(),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "no plugins loaded").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("queue unavailable: {e}")).into_response(),
    }
}

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

/// Operator endpoint: reload the plugin directory now and report.
pub async fn reload_plugins(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, Failure> {
    operator(&app, &headers)?;
    let (plugins, dir) = (app.deps.plugins.clone(), app.cfg.plugins_dir());
    let report = tokio::task::spawn_blocking(move || plugins.sync_dir(&dir))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, "internal", e.to_string()))?;
    crate::plugins_watch::log_sync(&report);
    let errors: Vec<_> = report.failing.iter().map(|(p, e)| json!({"file": p.display().to_string(), "error": e})).collect();
    let loaded: Vec<_> = report.loaded.iter().map(|(n, v, sha)| json!({"name": n, "version": v, "sha256": sha})).collect();
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((
        status,
        axum::Json(
            json!({"loaded": loaded, "removed": report.removed, "unchanged": report.unchanged, "errors": errors, "plugins": app.deps.plugins.names()}),
        ),
    )
        .into_response())
}

#[derive(serde::Deserialize)]
pub struct DeadLetterQuery {
    limit: Option<usize>,
}

/// The dead-letter list's head (operator).
pub async fn dead_letters(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<DeadLetterQuery>,
) -> Result<Response, Failure> {
    operator(&app, &headers)?;
    let limit = dead_letter_limit(q.limit)?;
    let letters = app.deps.backends.queue.dead_letters(limit).await?;
    let items: Vec<_> = letters.iter().map(|(_, l)| crate::redrive::describe(l)).collect();
    Ok(axum::Json(json!({ "dead_letters": items })).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// Only this tenant's letters; the others stay on the list.
    tenant: Option<String>,
    limit: Option<usize>,
}

/// Re-drive dead letters from the head of the list (operator).
pub async fn redrive(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Result<Response, Failure> {
    operator(&app, &headers)?;
    let req: RedriveRequest = if body.is_empty() {
        RedriveRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::new(ErrorKind::Invalid, "invalid_json", e.to_string()))?
    };
    let limit = dead_letter_limit(req.limit)?;
    let report = crate::redrive::redrive(&app.deps.backends, app.deps.clock.now_ms(), req.tenant.as_deref(), limit).await?;
    tracing::info!(redriven = report.redriven.len(), skipped = report.skipped, kept = report.kept, tenant = ?req.tenant, "dead letters re-driven");
    Ok(axum::Json(report).into_response())
}

fn dead_letter_limit(limit: Option<usize>) -> Result<usize, Failure> {
    match limit.unwrap_or(100) {
        n @ 1..=10_000 => Ok(n),
        _ => Err(ApiError::invalid("limit", "must be 1..10000").into()),
    }
}
