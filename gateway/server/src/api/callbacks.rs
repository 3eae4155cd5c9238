//! `POST /v1/callbacks/{tenant}/{account}`: provider delivery reports and read
//! receipts. The account's plugin parses (and authenticates) the callback.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use herald_core::error::ErrorKind;
use herald_core::{ApiError, ErrorBody};
use herald_plugin_host::types::{CallContext, HttpRequest};

use super::request::Failure;
use crate::state::App;

/// Receive a provider callback
///
/// Delivery reports and read receipts from a provider, for one sender account. The account's
/// plugin authenticates and parses the request (any method body and content type the provider
/// sends) and chooses the answer (status, headers and body) the provider expects. No API key:
/// give this URL to the provider.
#[utoipa::path(
    post,
    path = "/v1/callbacks/{tenant}/{account}",
    tag = "callbacks",
    operation_id = "receiveCallback",
    params(
        ("tenant" = String, Path, description = "The tenant id."),
        ("account" = String, Path, description = "The sender account's name."),
    ),
    request_body(description = "What the provider sends, as its plugin reads it.", content(
        (Option<Object> = "application/json"),
        (Option<Object> = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Accepted. The body and headers are what the plugin answers the provider (often empty, or its expected acknowledgement)."),
        (status = 204, description = "Accepted; the plugin answers the provider without a body."),
        (status = 400, description = "The plugin rejected the request (`callback_rejected`): a bad signature or a report it cannot read.", body = ErrorBody),
        (status = 404, description = "No such tenant or account, or its plugin is not loaded (`not_found`).", body = ErrorBody),
        (status = 413, description = "The body is larger than `limits.max_body_bytes` (`too_large`).", body = ErrorBody),
        (status = 503, response = super::request::Unavailable),
    )
)]
pub async fn receive(
    State(app): State<Arc<App>>,
    Path((tenant, account)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Failure> {
    let not_found = || Failure(ApiError::not_found("callback endpoint", "account"));
    let account = app.deps.backends.config.account(&tenant, &account).await?.ok_or_else(not_found)?;
    let account = app.deps.sealer.open(&account).map_err(|e| {
        tracing::error!(%tenant, account = %account.name, error = %e, "account secrets do not open");
        not_found()
    })?;
    let plugin = app.deps.plugins.get(&account.plugin).ok_or_else(not_found)?;
    let request = HttpRequest {
        method: method.to_string(),
        url: uri.to_string(),
        headers: headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.to_string(), v.to_string()))).collect(),
        body: body.to_vec(),
    };
    let ctx = CallContext { now_ms: app.deps.clock.now_ms().max(0) as u64, tenant: tenant.clone(), attempt: 1 };
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

    let applied = app.services.apply_receipts(&tenant, &reply.receipts, &usage).await?;
    tracing::info!(tenant = %tenant, plugin = plugin.name(), receipts = reply.receipts.len(), matched = applied.matched, usage = usage.len(), "callback");
    let status = StatusCode::from_u16(reply.response.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, reply.response.body).into_response();
    for (k, v) in &reply.response.headers {
        if let (Ok(k), Ok(v)) = (k.parse::<axum::http::HeaderName>(), v.parse::<axum::http::HeaderValue>()) {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}
