//! Cost management (费用管理): balance, low-balance alert and policy, monthly
//! bills, ledger details, transactions; reports; the operator's top-ups.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use herald_core::billing::{BILLING, BILLING_SETTINGS, BillingSettings as Billing};
use herald_core::error::{ApiError, ErrorKind};
use herald_core::model::{LedgerEntry, LedgerKind};
use herald_core::rbac::Permission;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::state::App;
use crate::web::{BILL_OFFSET_MINUTES, Body, LEDGER_WINDOW, Range, Result, Routes, created, rfc3339};

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.add("GET", "/cost/balance", "Prepaid balance, alert threshold and policy", balance)
        .add("PUT", "/cost/alert", "Set the low-balance alert threshold and the policy for paid sends", set_alert)
        .add("GET", "/cost/bills", "Monthly bill lines per channel (from=YYYY-MM, to=YYYY-MM)", bills)
        .add("GET", "/cost/details", "Ledger entries, newest first", details)
        .add("GET", "/cost/transactions", "Top-ups and refunds", transactions)
        .add("POST", "/operator/tenants/{id}/top-ups", "Operator: add money to a tenant's prepaid balance", top_up)
}

async fn balance(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::CostView)?;
    let b: Billing = caller.repo(&app).get(BILLING, BILLING_SETTINGS).await?.unwrap_or_default();
    let tenant = app.deps.backends.config.tenant(&caller.tenant).await?;
    Ok(axum::Json(json!({
        "balance_minor": app.deps.backends.store.balance(&caller.tenant).await?,
        "currency": tenant.map(|t| t.currency).unwrap_or_else(herald_core::model::default_currency),
        "low_balance_minor": b.low_balance_minor, "policy": b.policy, "prepaid": b.prepaid,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertBody {
    low_balance_minor: Option<i64>,
    policy: Option<String>,
    prepaid: Option<bool>,
}

async fn set_alert(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<AlertBody>) -> Result<Response> {
    caller.require(Permission::CostManage)?;
    let repo = caller.repo(&app);
    let mut s: Billing = repo.get(BILLING, BILLING_SETTINGS).await?.unwrap_or_default();
    if let Some(v) = b.low_balance_minor {
        if v < 0 {
            return Err(ApiError::invalid("low_balance_minor", "must not be negative").into());
        }
        s.low_balance_minor = v;
    }
    if let Some(p) = b.policy {
        if !["refuse", "fallback_free"].contains(&p.as_str()) {
            return Err(ApiError::invalid("policy", "\"refuse\" or \"fallback_free\"").into());
        }
        s.policy = p;
    }
    if let Some(p) = b.prepaid {
        s.prepaid = p;
    }
    repo.put(BILLING, BILLING_SETTINGS, &s).await?;
    Ok(axum::Json(s).into_response())
}

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

fn entry_view(e: &LedgerEntry) -> serde_json::Value {
    json!({"id": e.id, "kind": e.kind, "channel": e.channel, "account": e.account, "delivery_id": e.delivery_id,
           "units": e.units, "amount_minor": e.amount_minor, "signed_minor": e.kind.signed(e.amount_minor),
           "currency": e.currency, "at": rfc3339(e.at)})
}

async fn details(State(app): State<Arc<App>>, caller: Caller, Query(r): Query<Range>) -> Result<Response> {
    caller.require(Permission::CostView)?;
    let entries = app.deps.backends.store.ledger(&caller.tenant, r.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(axum::Json(json!({"items": entries.iter().map(entry_view).collect::<Vec<_>>()})).into_response())
}

async fn transactions(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::CostView)?;
    let entries = app.deps.backends.store.ledger(&caller.tenant, LEDGER_WINDOW).await?;
    let items: Vec<_> = entries.iter().filter(|e| e.kind != LedgerKind::Debit).map(entry_view).collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopUp {
    amount_minor: i64,
    #[serde(default)]
    note: Option<String>,
}

async fn top_up(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>, Body(b): Body<TopUp>) -> Result<Response> {
    let Some(expected) = &app.cfg.operator_token else {
        return Err(ApiError::new(ErrorKind::NotFound, "not_found", "operator endpoints are off (set operator_token)").into());
    };
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    let same = herald_core::same_secret(given, expected);
    if !same {
        return Err(ApiError::new(ErrorKind::Unauthenticated, "unauthenticated", "operator token required").into());
    }
    if b.amount_minor <= 0 {
        return Err(ApiError::invalid("amount_minor", "a positive amount in minor units").into());
    }
    let tenant = app.deps.backends.config.tenant(&id).await?.ok_or_else(|| ApiError::not_found("tenant", "id"))?;
    let entry = LedgerEntry {
        id: format!("top_up:{}", herald_core::docs::new_id()),
        tenant: tenant.id.clone(),
        kind: LedgerKind::TopUp,
        channel: String::new(),
        account: b.note.unwrap_or_default().chars().take(100).collect(),
        delivery_id: None,
        units: 0,
        amount_minor: b.amount_minor,
        currency: tenant.currency.clone(),
        at: herald_core::now_ms(),
    };
    app.deps.backends.store.record(vec![], vec![entry.clone()]).await?;
    tracing::info!(tenant = %tenant.id, amount_minor = b.amount_minor, "top-up");
    Ok(created(json!({"entry": entry_view(&entry), "balance_minor": app.deps.backends.store.balance(&tenant.id).await?})))
}
