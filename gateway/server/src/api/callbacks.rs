//! `POST /v1/callbacks/{tenant}/{account}`: provider delivery reports and read
//! receipts. The account's plugin parses (and authenticates) the callback.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use herald_core::ApiError;
use herald_core::error::ErrorKind;
use herald_core::model::{DeliveryStatus, DeliveryUpdate};
use herald_plugin_host::types::{CallContext, HttpRequest, ReceiptStatus};

use super::Failure;
use crate::app::App;

pub async fn receive(
    State(app): State<Arc<App>>,
    Path((tenant, account)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let not_found = || Failure(ApiError::not_found("callback endpoint", "account"));
    let account = app.config.account(&tenant, &account).await?.ok_or_else(not_found)?;
    let account = app.sealer.open(&account).map_err(|e| {
        tracing::error!(%tenant, account = %account.name, error = %e, "account secrets do not open");
        not_found()
    })?;
    let plugin = app.plugins.get(&account.plugin).ok_or_else(not_found)?;
    let request = HttpRequest {
        method: method.to_string(),
        url: uri.to_string(),
        headers: headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.to_string(), v.to_string()))).collect(),
        body: body.to_vec(),
    };
    let ctx = CallContext { now_ms: herald_core::now_ms().max(0) as u64, tenant: tenant.clone(), attempt: 1 };
    let config = account.config.to_string();
    let p = plugin.clone();
    let reply = crate::metrics::call_plugin(&app.metrics, &plugin, "parse_callback", move || p.parse_callback(&ctx, &config, &request))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Invalid, "callback_rejected", e.to_string()))?;

    let now = herald_core::now_ms();
    let mut updates = Vec::new();
    let mut refunds = Vec::new();
    for r in &reply.receipts {
        let found = match (&r.delivery_id, &r.provider_id) {
            (Some(id), _) => {
                let message_id = id.rsplit_once('.').map(|(m, _)| m.to_string()).unwrap_or_default();
                app.store.message(&tenant, &message_id).await?.and_then(|m| m.deliveries.into_iter().find(|d| &d.id == id).map(|d| (m.id, d)))
            }
            (None, Some(pid)) => app.store.delivery_by_provider_id(&tenant, pid).await?,
            (None, None) => None,
        };
        let Some((message_id, delivery)) = found else { continue };
        let status = match r.status {
            ReceiptStatus::Delivered => DeliveryStatus::Delivered,
            ReceiptStatus::Failed => DeliveryStatus::Failed,
            ReceiptStatus::Read => DeliveryStatus::Read,
        };
        // A send that finally failed is not billed by the provider: refund its debit once.
        if status == DeliveryStatus::Failed && delivery.cost_minor > 0 {
            if let Some(m) = app.store.message(&tenant, &message_id).await? {
                let currency = app.config.tenant(&tenant).await?.map(|t| t.currency).unwrap_or_else(herald_core::model::default_currency);
                refunds.push(herald_core::ledger::refund(&delivery.id, &m.channel, &m.account, delivery.cost_minor, &currency, &tenant, now));
            }
        }
        if status == DeliveryStatus::Read {
            // A read receipt acknowledges a tiered-push incident.
            if let Err(e) = app.engine.read_receipt(&tenant, &message_id, &delivery.recipient).await {
                tracing::warn!(%tenant, error = %e.message, "read receipt not applied to its incident");
            }
        }
        updates.push(DeliveryUpdate {
            delivery_id: delivery.id,
            message_id,
            tenant: tenant.clone(),
            status,
            attempts: delivery.attempts,
            detail: r.detail.clone(),
            provider_id: None,
            at: now,
        });
    }
    tracing::info!(tenant = %tenant, plugin = plugin.name(), receipts = reply.receipts.len(), matched = updates.len(), "callback");
    app.store.record(updates, refunds).await?;
    let status = StatusCode::from_u16(reply.response.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, reply.response.body).into_response();
    for (k, v) in &reply.response.headers {
        if let (Ok(k), Ok(v)) = (k.parse::<axum::http::HeaderName>(), v.parse::<axum::http::HeaderValue>()) {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}
