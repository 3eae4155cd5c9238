//! `POST /v1/callbacks/{tenant}/{account}`: provider delivery reports and read
//! receipts. The account's plugin parses (and authenticates) the callback.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use herald_core::ApiError;
use herald_core::error::ErrorKind;
use herald_core::model::{DeliveryRecord, DeliveryStatus, DeliveryUpdate};
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
    // Both plugin calls before anything is recorded: a report whose usage does
    // not parse is rejected whole, and the provider sends it again.
    let (reply, usage) = crate::metrics::call_plugin(&app.metrics, &plugin, "parse_callback", move || {
        let reply = p.parse_callback(&ctx, &config, &request)?;
        Ok((reply, p.callback_usage(&ctx, &config, &request)?))
    })
    .await
    .map_err(|e| ApiError::new(ErrorKind::Invalid, "callback_rejected", e.to_string()))?;

    let now = herald_core::now_ms();
    let mut updates = Vec::new();
    let mut ledger = Vec::new();
    let mut failed = Vec::new();
    for r in &reply.receipts {
        let Some((message_id, delivery)) = find(&app, &tenant, r.delivery_id.as_deref(), r.provider_id.as_deref()).await? else {
            continue;
        };
        let status = match r.status {
            ReceiptStatus::Delivered => DeliveryStatus::Delivered,
            ReceiptStatus::Failed => DeliveryStatus::Failed,
            ReceiptStatus::Read => DeliveryStatus::Read,
        };
        // A send that finally failed is not billed by the provider: refund its debit once.
        if status == DeliveryStatus::Failed {
            failed.push(delivery.id.clone());
            if delivery.cost_minor > 0
                && let Some(m) = app.store.message(&tenant, &message_id).await?
            {
                let currency = app.config.tenant(&tenant).await?.map(|t| t.currency).unwrap_or_else(herald_core::model::default_currency);
                ledger.push(herald_core::ledger::refund(&delivery.id, &m.channel, &m.account, delivery.cost_minor, &currency, &tenant, now));
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
    // Usage reported after the send (a call's started minutes): bill what
    // exceeds the send's debit, once per delivery (`<id>:usage`).
    for u in &usage {
        let Some((message_id, delivery)) = find(&app, &tenant, u.delivery_id.as_deref(), u.provider_id.as_deref()).await? else {
            continue;
        };
        if failed.contains(&delivery.id) || matches!(delivery.status, DeliveryStatus::Failed | DeliveryStatus::Dead) {
            continue;
        }
        let Some(m) = app.store.message(&tenant, &message_id).await? else {
            continue;
        };
        let price = app.config.price(&tenant, &m.channel).await?;
        let billable = herald_core::ledger::Billable {
            tenant: &tenant,
            channel: &m.channel,
            account: &m.account,
            delivery_id: &delivery.id,
            units: u.units,
            at: now,
        };
        ledger.extend(herald_core::ledger::usage(price.as_ref(), &billable, delivery.cost_minor));
    }
    tracing::info!(tenant = %tenant, plugin = plugin.name(), receipts = reply.receipts.len(), matched = updates.len(), usage = usage.len(), "callback");
    app.store.record(updates, ledger).await?;
    let status = StatusCode::from_u16(reply.response.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, reply.response.body).into_response();
    for (k, v) in &reply.response.headers {
        if let (Ok(k), Ok(v)) = (k.parse::<axum::http::HeaderName>(), v.parse::<axum::http::HeaderValue>()) {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}

/// The message id and delivery a receipt or usage report names, by delivery
/// id or else by the provider's id.
async fn find(app: &App, tenant: &str, delivery_id: Option<&str>, provider_id: Option<&str>) -> Result<Option<(String, DeliveryRecord)>, Failure> {
    Ok(match (delivery_id, provider_id) {
        (Some(id), _) => {
            let message_id = id.rsplit_once('.').map(|(m, _)| m.to_string()).unwrap_or_default();
            app.store.message(tenant, &message_id).await?.and_then(|m| m.deliveries.into_iter().find(|d| d.id == id).map(|d| (m.id, d)))
        }
        (None, Some(pid)) => app.store.delivery_by_provider_id(tenant, pid).await?,
        (None, None) => None,
    })
}
