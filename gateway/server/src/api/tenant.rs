//! A tenant's view of the gateway: the loaded plugins, its balance and ledger.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use herald_core::ApiError;
use herald_core::model::LedgerEntry;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::request::{self, Failure, authenticate};
use crate::state::App;

/// The loaded plugins (`GET /v1/plugins`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginView>,
}

/// A loaded channel plugin.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PluginView {
    /// The plugin's name: what `channel` names in `POST /v1/messages`.
    pub name: String,
    pub version: String,
    /// The kind of channel: `webhook`, `email`, `sms`, `voice`, `im`.
    pub channel: String,
    /// Content formats it accepts, most preferred first.
    #[schema(value_type = Vec<ContentFormat>)]
    pub formats: Vec<String>,
    /// Most deliveries in one provider request.
    pub max_batch: u32,
    /// Hosts it may reach (`*` = what the account names, within the operator's allowlist).
    pub hosts: Vec<String>,
    /// What one billable unit is: `message`, `segment`, `minute`, `request`.
    pub billing_unit: String,
    /// JSON Schema (draft 2020-12) of an account's configuration; null if the plugin's does not parse.
    #[schema(required = true)]
    pub account_schema: serde_json::Value,
    /// Account fields that hold secrets (never returned).
    pub secret_fields: Vec<String>,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// The plugin contract's worlds it implements.
    #[schema(value_type = Vec<PluginWorld>)]
    pub worlds: Vec<String>,
}

/// A content format.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ContentFormat {
    Text,
    Html,
    Markdown,
    Voice,
}

/// A world of the plugin contract.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code, clippy::enum_variant_names)] // the contract's own names
pub enum PluginWorld {
    ChannelPlugin,
    ChannelPluginAuth,
    ChannelPluginMetered,
}

/// List the loaded plugins
///
/// The channel plugins this gateway has loaded: what `channel` may name, the formats, batch
/// size and hosts of each, and the JSON Schema of its accounts.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "tenant",
    operation_id = "listPlugins",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The loaded plugins.", body = PluginList, example = json!({"plugins": [{
            "name": "webhook", "version": "1.2.0", "channel": "webhook", "formats": ["text", "html", "markdown"],
            "max_batch": 1, "hosts": ["*"], "billing_unit": "request",
            "account_schema": {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}, "secret": {"type": "string"}}},
            "secret_fields": ["secret"], "sha256": "9f2c…", "worlds": ["channel-plugin", "channel-plugin-metered"]
        }]})),
        (status = 401, response = request::Unauthenticated),
        (status = 503, response = request::Unavailable),
    )
)]
pub async fn plugins(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, Failure> {
    authenticate(&app, &headers).await?;
    let plugins = app
        .deps
        .plugins
        .loaded()
        .into_iter()
        .map(|p| {
            let i = &p.info;
            PluginView {
                name: i.name.clone(),
                version: i.version.clone(),
                channel: i.channel.clone(),
                formats: p.format_names(),
                max_batch: i.max_batch,
                hosts: i.hosts.clone(),
                billing_unit: i.billing_unit.clone(),
                account_schema: serde_json::from_str(&i.account_schema).unwrap_or(serde_json::Value::Null),
                secret_fields: i.secret_fields.clone(),
                sha256: p.digest.clone(),
                worlds: p.worlds().into_iter().map(String::from).collect(),
            }
        })
        .collect();
    Ok(axum::Json(PluginList { plugins }).into_response())
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    /// How many of the latest entries (1–1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// A tenant's balance and latest ledger entries (`GET /v1/ledger`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Ledger {
    pub tenant: String,
    /// ISO 4217.
    pub currency: String,
    /// Top-ups and credits minus debits, minor units (fen, cents); negative when spent beyond.
    pub balance_minor: i64,
    /// Newest first.
    pub entries: Vec<LedgerEntry>,
}

/// Read the balance and ledger
///
/// The tenant's balance and its latest ledger entries, in integer minor units.
#[utoipa::path(
    get,
    path = "/v1/ledger",
    tag = "tenant",
    operation_id = "getLedger",
    security(("api_key" = [])),
    params(LedgerQuery),
    responses(
        (status = 200, description = "The balance and the latest entries.", body = Ledger, example = json!({
            "tenant": "acme", "currency": "CNY", "balance_minor": 9990,
            "entries": [
                {"id": "0193a5c2-7d1e-7c3a-9a1e-3f9b8c2d4e51.0:debit", "tenant": "acme", "kind": "debit", "channel": "aliyun-sms",
                 "account": "alerts", "delivery_id": "0193a5c2-7d1e-7c3a-9a1e-3f9b8c2d4e51.0", "units": 1, "amount_minor": 10,
                 "currency": "CNY", "at": 1796115600120_i64},
                {"id": "top_up:0193a5c0", "tenant": "acme", "kind": "top_up", "channel": "", "account": "invoice 7", "delivery_id": null,
                 "units": 0, "amount_minor": 10000, "currency": "CNY", "at": 1796115000000_i64}
            ]
        })),
        (status = 400, response = request::BadQuery),
        (status = 401, response = request::Unauthenticated),
        (status = 503, response = request::Unavailable),
    )
)]
pub async fn ledger(State(app): State<Arc<App>>, headers: HeaderMap, request::Query(q): request::Query<LedgerQuery>) -> Result<Response, Failure> {
    let tenant = authenticate(&app, &headers).await?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid("limit", "must be 1..1000").into());
    }
    let balance_minor = app.deps.backends.store.balance(&tenant.id).await?;
    let entries = app.deps.backends.store.ledger(&tenant.id, limit).await?;
    Ok(axum::Json(Ledger { tenant: tenant.id, currency: tenant.currency, balance_minor, entries }).into_response())
}
