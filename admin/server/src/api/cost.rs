//! Cost management (费用管理): balance, low-balance alert and policy, monthly
//! bills, ledger details, transactions; reports; the operator's top-ups.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use herald_core::billing::{BILLING, BILLING_SETTINGS, BillingSettings as Billing};
use herald_core::error::{ApiError, ErrorBody, ErrorKind};
use herald_core::model::{LedgerEntry, LedgerKind};
use herald_core::rbac::Permission;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::api::schema;
use crate::auth::Caller;
use crate::state::App;
use crate::web::{BILL_OFFSET_MINUTES, Body, Items, LEDGER_WINDOW, Query, Range, Result, Routes, created};

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.routes(routes!(balance))
        .routes(routes!(set_alert))
        .routes(routes!(bills))
        .routes(routes!(details))
        .routes(routes!(transactions))
        .routes(routes!(top_up))
}

#[derive(Serialize, ToSchema)]
struct Balance {
    balance_minor: i64,
    currency: String,
    /// Alert threshold (0 = off).
    low_balance_minor: i64,
    /// "refuse" or "fallback_free".
    policy: String,
    prepaid: bool,
}

#[utoipa::path(get, path = "/cost/balance", tag = "cost", summary = "Prepaid balance, alert threshold and policy", description = "Needs `cost.view`.",
    responses((status = 200, description = "The balance", body = Balance,
                example = json!({"balance_minor": 125000, "currency": "CNY", "low_balance_minor": 10000, "policy": "refuse", "prepaid": true}))))]
async fn balance(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::CostView)?;
    let b: Billing = caller.repo(&app).get(BILLING, BILLING_SETTINGS).await?.unwrap_or_default();
    let tenant = app.deps.backends.config.tenant(&caller.tenant).await?;
    Ok(axum::Json(Balance {
        balance_minor: app.deps.backends.store.balance(&caller.tenant).await?,
        currency: tenant.map(|t| t.currency).unwrap_or_else(herald_core::model::default_currency),
        low_balance_minor: b.low_balance_minor,
        policy: b.policy,
        prepaid: b.prepaid,
    })
    .into_response())
}

/// Any of the settings; absent ones are kept. Prepaid tenants are checked
/// before paid sends; below `low_balance_minor` the administrators (roles with
/// `cost.manage`) get one e-mail per crossing.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"low_balance_minor": 10000, "policy": "fallback_free", "prepaid": true}))]
struct AlertBody {
    #[schema(minimum = 0)]
    low_balance_minor: Option<i64>,
    /// "refuse" or "fallback_free" (tiered steps fall back to a free channel).
    #[schema(pattern = "^(refuse|fallback_free)$")]
    policy: Option<String>,
    prepaid: Option<bool>,
}

#[utoipa::path(put, path = "/cost/alert", tag = "cost", summary = "Set the low-balance alert threshold and the policy for paid sends",
    description = "Needs `cost.manage`.", request_body = AlertBody,
    responses((status = 200, description = "The settings", body = schema::BillingSettings)))]

async fn set_alert(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<AlertBody>) -> Result<Response> {
    caller.require(Permission::CostManage)?;
    let repo = caller.repo(&app);
    let mut s: Billing = repo.get(BILLING, BILLING_SETTINGS).await?.unwrap_or_default();
    if let Some(v) = b.low_balance_minor {
        if v < 0 {
            return Err(ApiError::invalid("low_balance_minor", herald_core::msg!("field.not_negative")).into());
        }
        s.low_balance_minor = v;
    }
    if let Some(p) = b.policy {
        if !["refuse", "fallback_free"].contains(&p.as_str()) {
            return Err(ApiError::invalid("policy", herald_core::msg!("cost.policy")).into());
        }
        s.policy = p;
    }
    if let Some(p) = b.prepaid {
        s.prepaid = p;
    }
    repo.put(BILLING, BILLING_SETTINGS, &s).await?;
    Ok(axum::Json(s).into_response())
}

#[utoipa::path(get, path = "/cost/bills", tag = "cost", summary = "Monthly bill lines per channel", description = "Needs `cost.view`.",
    params(("from" = Option<String>, Query, description = "First month, YYYY-MM"), ("to" = Option<String>, Query, description = "Last month, YYYY-MM")),
    responses((status = 200, description = "Bill lines", body = Items<schema::BillLine>)))]
async fn bills(State(app): State<Arc<App>>, caller: Caller, Query(r): Query<Range>) -> Result<Response> {
    caller.require(Permission::CostView)?;
    let entries = app.deps.backends.store.ledger(&caller.tenant, LEDGER_WINDOW).await?;
    let lines: Vec<_> = herald_core::bills::monthly_bills(&entries, BILL_OFFSET_MINUTES)
        .into_iter()
        .filter(|l| r.from.as_deref().filter(|f| !f.is_empty()).is_none_or(|f| l.period.as_str() >= f))
        .filter(|l| r.to.as_deref().filter(|t| !t.is_empty()).is_none_or(|t| l.period.as_str() <= t))
        .collect();
    Ok(axum::Json(json!({"items": lines})).into_response())
}

/// A ledger entry as the API shows it.
#[derive(Serialize, ToSchema)]
struct LedgerLine {
    id: String,
    kind: LedgerKind,
    channel: String,
    /// The sender account (a top-up's note).
    account: String,
    delivery_id: Option<String>,
    units: u32,
    /// Positive for every kind.
    amount_minor: i64,
    /// The effect on the balance (debits negative).
    signed_minor: i64,
    currency: String,
    at: i64,
}

fn entry_view(e: &LedgerEntry) -> LedgerLine {
    LedgerLine {
        id: e.id.clone(),
        kind: e.kind,
        channel: e.channel.clone(),
        account: e.account.clone(),
        delivery_id: e.delivery_id.clone(),
        units: e.units,
        amount_minor: e.amount_minor,
        signed_minor: e.kind.signed(e.amount_minor),
        currency: e.currency.clone(),
        at: e.at,
    }
}

#[utoipa::path(get, path = "/cost/details", tag = "cost", summary = "Ledger entries, newest first", description = "Needs `cost.view`.",
    params(("limit" = Option<i64>, Query, minimum = 0, description = "How many, default 100, at most 1000")),
    responses((status = 200, description = "Entries", body = Items<LedgerLine>)))]
async fn details(State(app): State<Arc<App>>, caller: Caller, Query(r): Query<Range>) -> Result<Response> {
    caller.require(Permission::CostView)?;
    let entries = app.deps.backends.store.ledger(&caller.tenant, r.limit.unwrap_or(100).clamp(1, 1000) as usize).await?;
    Ok(axum::Json(Items { items: entries.iter().map(entry_view).collect() }).into_response())
}

#[utoipa::path(get, path = "/cost/transactions", tag = "cost", summary = "Top-ups and refunds", description = "Needs `cost.view`.",
    responses((status = 200, description = "Entries, newest first", body = Items<LedgerLine>)))]
async fn transactions(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::CostView)?;
    let entries = app.deps.backends.store.ledger(&caller.tenant, LEDGER_WINDOW).await?;
    let items: Vec<_> = entries.iter().filter(|e| e.kind != LedgerKind::Debit).map(entry_view).collect();
    Ok(axum::Json(Items { items }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount_minor": 100000, "note": "invoice 2026-114"}))]
struct TopUp {
    /// Positive, in the tenant's currency's minor units.
    #[schema(minimum = 1)]
    amount_minor: i64,
    /// Kept (100 characters) as the entry's `account`.
    #[serde(default)]
    note: Option<String>,
}

/// What a top-up answers.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the answer of `top_up`
struct ToppedUp {
    entry: LedgerLine,
    /// The balance after it.
    balance_minor: i64,
}

/// For the platform operator (`Authorization: Bearer <operator_token>`);
/// 404 when the admin has no `operator_token`.
#[utoipa::path(post, path = "/operator/tenants/{id}/top-ups", tag = "cost", summary = "Operator: add money to a tenant's prepaid balance",
    params(("id" = String, Path, description = "Tenant id")), request_body = TopUp, security(("operator" = [])),
    responses((status = 201, description = "Recorded", body = ToppedUp), (status = 401, description = "`unauthenticated`", body = ErrorBody)))]

async fn top_up(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>, Body(b): Body<TopUp>) -> Result<Response> {
    let Some(expected) = &app.cfg.operator_token else {
        return Err(ApiError::new(ErrorKind::NotFound, "not_found", "operator endpoints are off (set operator_token)").into());
    };
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    let same = herald_core::same_secret(given, expected);
    if !same {
        return Err(ApiError::new(ErrorKind::Unauthenticated, "unauthenticated", "operator token required").into());
    }
    let tenant = app.deps.backends.config.tenant(&id).await?.ok_or_else(|| ApiError::not_found("tenant", "id"))?;
    let (entry, balance) =
        app.services.billing.top_up(&tenant, b.amount_minor, b.note.as_deref().unwrap_or_default()).await.map_err(ApiError::from)?;
    tracing::info!(tenant = %tenant.id, amount_minor = b.amount_minor, "top-up");
    Ok(created(json!({"entry": entry_view(&entry), "balance_minor": balance})))
}
