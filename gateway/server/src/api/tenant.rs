//! A tenant's view of the gateway: the loaded plugins, its balance and ledger.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use herald_core::ApiError;
use serde_json::json;

use super::request::{Failure, authenticate};
use crate::state::App;

pub async fn plugins(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, Failure> {
    authenticate(&app, &headers).await?;
    let list: Vec<_> = app
        .deps
        .plugins
        .loaded()
        .into_iter()
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

#[derive(serde::Deserialize)]
pub struct LedgerQuery {
    limit: Option<usize>,
}

/// The tenant's balance and most recent ledger entries.
pub async fn ledger(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<LedgerQuery>,
) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid("limit", "must be 1..1000").into());
    }
    let balance = app.deps.backends.store.balance(&tenant.id).await?;
    let entries = app.deps.backends.store.ledger(&tenant.id, limit).await?;
    Ok(axum::Json(json!({"tenant": tenant.id, "currency": tenant.currency, "balance_minor": balance, "entries": entries})).into_response())
}
