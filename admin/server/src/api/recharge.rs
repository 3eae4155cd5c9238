//! Recharge requests (充值申请): a tenant's cost manager asks for money to be
//! added to the prepaid balance (amount, a note such as the bank transfer's
//! reference); the platform operator approves or rejects it. Approving
//! credits the balance through the operator's top-up path as ledger entry
//! `top_up:recharge:<request id>`, so the balance is credited once however
//! often an approval is retried, and a request decided once cannot be
//! decided again (the decision is a compare-and-set on the document).
//!
//! Approving is two steps: the decision (pending → approved), then the
//! credit, after which the request records its `ledger_id`. An approved
//! request without one was interrupted between the two (a crash, a store
//! failure): the next approve call (answering 409) and the admin's start and
//! periodic sweep credit it, once, since the ledger keeps one entry per id.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use herald_core::docs::{Repo, new_id};
use herald_core::error::{ApiError, ErrorBody};
use herald_core::rbac::Permission;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::api::cost::operator;
use crate::auth::Caller;
use crate::state::App;
use crate::web::{Body, Items, ListQuery, Query, Result, Routes, conflict, created};

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.routes(routes!(list, file)).routes(routes!(operator_list)).routes(routes!(approve)).routes(routes!(reject))
}

/// Documents of kind `recharge`, one per request, in the tenant's space.
pub const RECHARGE: &str = "recharge";
/// Largest amount one request may ask for (minor units: ¥10 000 000.00).
const MAX_AMOUNT_MINOR: i64 = 1_000_000_000;
const MAX_TEXT: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RechargeStatus {
    Pending,
    Approved,
    Rejected,
}

/// A recharge request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": "0193a5c0", "number": "R000001", "tenant": "acme", "amount_minor": 500000, "currency": "CNY",
    "note": "工行转账 流水号 2026120700123", "status": "pending", "requested_by": "01J9Z8", "requested_by_name": "张三",
    "requested_at": 1765094400000_i64, "decided_at": null, "reason": null, "ledger_id": null}))]
pub struct RechargeRequest {
    pub id: String,
    /// R000001, …
    pub number: String,
    pub tenant: String,
    /// Positive, in the tenant's currency's minor units.
    pub amount_minor: i64,
    pub currency: String,
    /// What the tenant wrote: the transfer's reference, an invoice number.
    pub note: String,
    pub status: RechargeStatus,
    /// The user who filed it, and their name then.
    pub requested_by: String,
    pub requested_by_name: String,
    pub requested_at: i64,
    /// When the operator approved or rejected it.
    pub decided_at: Option<i64>,
    /// The operator's reason (rejections) or note.
    pub reason: Option<String>,
    /// The top-up ledger entry of an approved request, once credited.
    pub ledger_id: Option<String>,
}

impl RechargeRequest {
    /// Approve or reject a pending request at `now`; a decided one is a 409.
    pub fn decide(&mut self, approve: bool, reason: Option<String>, now: i64) -> std::result::Result<(), ApiError> {
        if self.status != RechargeStatus::Pending {
            let key = if self.status == RechargeStatus::Approved { "recharge.already_approved" } else { "recharge.already_rejected" };
            return Err(conflict("already_decided", herald_core::i18n::Msg::new(key).arg("number", &self.number)));
        }
        self.status = if approve { RechargeStatus::Approved } else { RechargeStatus::Rejected };
        self.decided_at = Some(now);
        self.reason = reason;
        Ok(())
    }
}

/// The top-up entry of an approved request: one per request.
fn ledger_id(request: &str) -> String {
    format!("top_up:recharge:{request}")
}

fn text(field: &str, v: Option<String>) -> std::result::Result<Option<String>, ApiError> {
    let v = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if v.as_ref().is_some_and(|s| s.chars().count() > MAX_TEXT) {
        return Err(ApiError::invalid(field, herald_core::msg!("field.too_long", field = field, max = MAX_TEXT)));
    }
    Ok(v)
}

/// A request for the operator to add money to the balance.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount_minor": 500000, "note": "工行转账 流水号 2026120700123"}))]
struct NewRequest {
    /// Positive, in the tenant's currency's minor units (at most 1 000 000 000).
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    amount_minor: i64,
    /// The transfer's reference or another proof (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    note: Option<String>,
}

#[utoipa::path(post, path = "/cost/recharge-requests", tag = "cost", summary = "File a recharge request (充值申请)",
    description = "Needs `cost.manage`. The platform operator approves or rejects it; approving credits the balance once.",
    request_body = NewRequest,
    responses((status = 201, description = "Filed, pending", body = RechargeRequest), (status = 400, description = "`invalid_field` (`amount_minor`, `note`)", body = ErrorBody)))]
async fn file(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<NewRequest>) -> Result<Response> {
    caller.require(Permission::CostManage)?;
    if !(1..=MAX_AMOUNT_MINOR).contains(&b.amount_minor) {
        return Err(ApiError::invalid("amount_minor", herald_core::msg!("recharge.amount_range", max = MAX_AMOUNT_MINOR)).into());
    }
    let note = text("note", b.note)?.unwrap_or_default();
    let tenant = app.deps.backends.config.tenant(&caller.tenant).await?.ok_or_else(|| ApiError::not_found("tenant", "tenant"))?;
    let repo = caller.repo(&app);
    let request = RechargeRequest {
        id: new_id(),
        number: repo.next_number("R").await?,
        tenant: caller.tenant.clone(),
        amount_minor: b.amount_minor,
        currency: tenant.currency,
        note,
        status: RechargeStatus::Pending,
        requested_by: caller.user.id.clone(),
        requested_by_name: caller.user.name.clone(),
        requested_at: herald_core::now_ms(),
        decided_at: None,
        reason: None,
        ledger_id: None,
    };
    repo.put(RECHARGE, &request.id, &request).await?;
    tracing::info!(tenant = %caller.tenant, number = %request.number, amount_minor = request.amount_minor, "recharge request filed");
    Ok(created(request))
}

fn newest_first(mut v: Vec<RechargeRequest>) -> Vec<RechargeRequest> {
    v.sort_by(|a, b| b.requested_at.cmp(&a.requested_at).then_with(|| b.number.cmp(&a.number)));
    v
}

#[utoipa::path(get, path = "/cost/recharge-requests", tag = "cost", summary = "The tenant's recharge requests, newest first",
    description = "Needs `cost.view`.",
    responses((status = 200, description = "Requests", body = Items<RechargeRequest>)))]
async fn list(State(app): State<Arc<App>>, caller: Caller) -> Result<Response> {
    caller.require(Permission::CostView)?;
    let items = newest_first(caller.repo(&app).list(RECHARGE).await?);
    Ok(axum::Json(Items { items }).into_response())
}

fn status_filter(q: &ListQuery) -> std::result::Result<Option<RechargeStatus>, ApiError> {
    match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => serde_json::from_value(json!(s)).map(Some).map_err(|_| ApiError::invalid("status", herald_core::msg!("recharge.status_filter"))),
    }
}

/// For the platform operator (`Authorization: Bearer <operator_token>`).
#[utoipa::path(get, path = "/operator/recharge-requests", tag = "cost", summary = "Operator: every tenant's recharge requests, newest first",
    params(("status" = Option<RechargeStatus>, Query, description = "pending, approved or rejected")), security(("operator" = [])),
    responses((status = 200, description = "Requests", body = Items<RechargeRequest>), (status = 401, description = "`unauthenticated`", body = ErrorBody)))]
async fn operator_list(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Result<Response> {
    operator(&app, &headers)?;
    let status = status_filter(&q)?;
    let config = app.deps.backends.config.as_ref();
    let mut items = vec![];
    for t in config.tenants().await? {
        let requests: Vec<RechargeRequest> = Repo::new(config, &t.id).list(RECHARGE).await?;
        items.extend(requests.into_iter().filter(|r| status.is_none_or(|s| r.status == s)));
    }
    Ok(axum::Json(Items { items: newest_first(items) }).into_response())
}

/// The operator's decision.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "未收到转账"}))]
struct Decision {
    /// Why (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// The optional JSON body of a decision (empty or `null`: no reason).
fn decision(body: &[u8]) -> std::result::Result<Decision, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    serde_json::from_slice::<Option<Decision>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|e| ApiError::invalid("reason", herald_core::msg!("recharge.reason_body", error = e)))
}

/// What an approval answers.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the answer of `approve`
struct Approved {
    request: RechargeRequest,
    /// The tenant's balance after the credit.
    balance_minor: i64,
}

/// Decide the tenant's request `id`: 404 when the tenant has no such request.
/// The operator's decision on a tenant's request: checked token, the
/// optional reason, the tenant, and the request as decided.
async fn decide(
    app: &App,
    headers: &HeaderMap,
    tenant: &str,
    id: &str,
    body: &[u8],
    approve: bool,
) -> std::result::Result<(herald_core::model::Tenant, RechargeRequest), ApiError> {
    operator(app, headers)?;
    let reason = text("reason", decision(body)?.reason)?;
    let t = app.deps.backends.config.tenant(tenant).await?.ok_or_else(|| ApiError::not_found("tenant", "tenant"))?;
    let repo = Repo::new(app.deps.backends.config.as_ref(), &t.id);
    let now = herald_core::now_ms();
    let request = repo
        .update(RECHARGE, id, |r: &mut RechargeRequest| r.decide(approve, reason.clone(), now))
        .await?
        .ok_or_else(|| ApiError::not_found("recharge request", "id"))?;
    Ok((t, request))
}

/// For the platform operator. Credits the balance through the top-up path
/// (ledger entry `top_up:recharge:<id>`); a request already decided is a 409.
#[utoipa::path(post, path = "/operator/tenants/{tenant}/recharge-requests/{id}/approve", tag = "cost",
    summary = "Operator: approve a recharge request and credit the balance",
    params(("tenant" = String, Path, description = "Tenant id"), ("id" = String, Path, description = "Request id")),
    request_body(content = Option<Decision>, description = "An optional note"), security(("operator" = [])),
    responses((status = 200, description = "Approved and credited", body = Approved), (status = 401, description = "`unauthenticated`", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody), (status = 409, description = "`already_decided`", body = ErrorBody)))]
async fn approve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((tenant, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let (t, request) = match decide(&app, &headers, &tenant, &id, &body, true).await {
        Ok(decided) => decided,
        Err(e) if e.code == "already_decided" => {
            // Approved before, its credit perhaps interrupted: credited now (once).
            let t = app.deps.backends.config.tenant(&tenant).await?.ok_or_else(|| ApiError::not_found("tenant", "tenant"))?;
            let request: Option<RechargeRequest> = Repo::new(app.deps.backends.config.as_ref(), &t.id).get(RECHARGE, &id).await?;
            if let Some(r) = request.filter(uncredited) {
                credit(&app, &t, &r).await?;
            }
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let (request, balance) = credit(&app, &t, &request).await?;
    tracing::info!(tenant = %t.id, number = %request.number, amount_minor = request.amount_minor, "recharge request approved");
    Ok(axum::Json(json!({"request": request, "balance_minor": balance})).into_response())
}

/// Approved, not yet credited.
fn uncredited(r: &RechargeRequest) -> bool {
    r.status == RechargeStatus::Approved && r.ledger_id.is_none()
}

/// Credit an approved request through the top-up path as its own ledger
/// entry (kept once by the store, however often this runs), then record the
/// entry on the request: the request as credited and the balance after it.
async fn credit(app: &App, t: &herald_core::model::Tenant, request: &RechargeRequest) -> std::result::Result<(RechargeRequest, i64), ApiError> {
    let entry = ledger_id(&request.id);
    let note = format!("充值申请 {}", request.number);
    let (_, balance) = app.services.billing.top_up_once(t, &entry, request.amount_minor, &note).await?;
    let repo = Repo::new(app.deps.backends.config.as_ref(), &t.id);
    let credited = repo
        .update(RECHARGE, &request.id, |r: &mut RechargeRequest| {
            r.ledger_id = Some(entry.clone());
            Ok(())
        })
        .await?
        .unwrap_or_else(|| RechargeRequest { ledger_id: Some(entry.clone()), ..request.clone() });
    Ok((credited, balance))
}

/// Credit every approved request whose credit was interrupted (run at the
/// admin's start and periodically): how many were credited.
pub async fn complete_credits(app: &App) -> std::result::Result<usize, ApiError> {
    let config = app.deps.backends.config.as_ref();
    let mut done = 0;
    for t in config.tenants().await? {
        let requests: Vec<RechargeRequest> = Repo::new(config, &t.id).list(RECHARGE).await?;
        for r in requests.iter().filter(|r| uncredited(r)) {
            credit(app, &t, r).await?;
            tracing::warn!(tenant = %t.id, number = %r.number, "an approved recharge request's interrupted credit was completed");
            done += 1;
        }
    }
    Ok(done)
}

/// For the platform operator. A request already decided is a 409.
#[utoipa::path(post, path = "/operator/tenants/{tenant}/recharge-requests/{id}/reject", tag = "cost",
    summary = "Operator: reject a recharge request",
    params(("tenant" = String, Path, description = "Tenant id"), ("id" = String, Path, description = "Request id")),
    request_body(content = Option<Decision>, description = "The reason"), security(("operator" = [])),
    responses((status = 200, description = "Rejected", body = RechargeRequest), (status = 401, description = "`unauthenticated`", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody), (status = 409, description = "`already_decided`", body = ErrorBody)))]
async fn reject(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((tenant, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response> {
    let (t, request) = decide(&app, &headers, &tenant, &id, &body, false).await?;
    tracing::info!(tenant = %t.id, number = %request.number, "recharge request rejected");
    Ok(axum::Json(request).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::error::ErrorKind;

    fn pending() -> RechargeRequest {
        RechargeRequest {
            id: "r1".into(),
            number: "R000001".into(),
            tenant: "t".into(),
            amount_minor: 500,
            currency: "CNY".into(),
            note: String::new(),
            status: RechargeStatus::Pending,
            requested_by: "u".into(),
            requested_by_name: "张三".into(),
            requested_at: 1,
            decided_at: None,
            reason: None,
            ledger_id: None,
        }
    }

    #[test]
    fn a_request_is_decided_once() {
        let mut r = pending();
        r.decide(true, None, 7).unwrap();
        assert_eq!((r.status, r.decided_at, r.ledger_id.as_deref()), (RechargeStatus::Approved, Some(7), None), "credited later");
        let again = r.decide(true, None, 8).unwrap_err();
        assert_eq!((again.kind, again.code), (ErrorKind::Conflict, "already_decided"));
        assert!(r.decide(false, None, 8).is_err(), "an approved request cannot be rejected");
        assert_eq!(r.decided_at, Some(7));
        let mut r = pending();
        r.decide(false, Some("未到账".into()), 9).unwrap();
        assert_eq!((r.status, r.ledger_id.as_deref(), r.reason.as_deref()), (RechargeStatus::Rejected, None, Some("未到账")));
        assert!(r.decide(true, None, 10).is_err(), "a rejected request cannot be approved");
    }

    /// The operator approves `id`; the answer's status and error code.
    async fn approve_again(app: &Arc<App>, id: &str) -> (u16, Option<String>) {
        match approve(State(app.clone()), approve_headers(), Path(("t".into(), id.into())), Default::default()).await {
            Ok(r) => (r.status().as_u16(), None),
            Err(e) => (e.0.kind.status(), Some(e.0.code.to_string())),
        }
    }

    /// The tenant's balance and its ledger entries of request `id`.
    async fn credited(app: &App, id: &str) -> (i64, usize) {
        let store = &app.deps.backends.store;
        let entries = store.ledger("t", 1000).await.unwrap();
        (store.balance("t").await.unwrap(), entries.iter().filter(|e| e.id == ledger_id(id)).count())
    }

    /// A crash between an approval's decision and its credit (or between the
    /// credit and its record on the request) neither loses nor doubles the
    /// credit: after a restart the request is approved and credited once, and
    /// approving it again (409) credits nothing more.
    #[tokio::test]
    async fn a_crash_between_approval_and_credit_neither_loses_nor_doubles_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = || crate::config::Config { data_dir: dir.path().to_path_buf(), operator_token: Some("op".into()), ..Default::default() };
        let app = crate::state::test_app(cfg()).await;
        let t = herald_core::model::Tenant { id: "t".into(), name: "T".into(), currency: "CNY".into() };
        app.deps.backends.config.upsert_tenant(&t).await.unwrap();
        let repo = || Repo::new(app.deps.backends.config.as_ref(), "t");
        for id in ["r1", "r2", "r3"] {
            repo().create(RECHARGE, id, &RechargeRequest { id: id.into(), ..pending() }).await.unwrap();
        }
        // r1: decided, the process dies before the credit.
        decide(&app, &approve_headers(), "t", "r1", b"", true).await.unwrap();
        // r2: decided and credited, the process dies before the request records it.
        let (_, r2) = decide(&app, &approve_headers(), "t", "r2", b"", true).await.unwrap();
        app.services.billing.top_up_once(&t, &ledger_id("r2"), r2.amount_minor, "x").await.unwrap();
        assert_eq!(credited(&app, "r1").await, (500, 0), "r1 not credited yet");
        drop(app);

        let app = crate::state::test_app(cfg()).await;
        assert_eq!(complete_credits(&app).await.unwrap(), 2, "both completed at the start");
        assert_eq!(credited(&app, "r1").await, (1000, 1));
        assert_eq!(credited(&app, "r2").await, (1000, 1), "r2 not credited twice");
        let get = |id: &'static str| {
            let app = app.clone();
            async move { Repo::new(app.deps.backends.config.as_ref(), "t").get::<RechargeRequest>(RECHARGE, id).await.unwrap().unwrap() }
        };
        for id in ["r1", "r2"] {
            let r = get(id).await;
            assert_eq!((r.status, r.ledger_id), (RechargeStatus::Approved, Some(ledger_id(id))));
            assert_eq!(approve_again(&app, id).await, (409, Some("already_decided".into())));
        }
        assert_eq!(credited(&app, "r1").await, (1000, 1), "approving again credits nothing");
        assert_eq!(complete_credits(&app).await.unwrap(), 0, "nothing left to complete");

        // r3: decided, not credited (no restart): approving again credits it, once.
        decide(&app, &approve_headers(), "t", "r3", b"", true).await.unwrap();
        assert_eq!(approve_again(&app, "r3").await, (409, Some("already_decided".into())));
        assert_eq!(approve_again(&app, "r3").await, (409, Some("already_decided".into())));
        assert_eq!(credited(&app, "r3").await, (1500, 1));
        assert_eq!(get("r3").await.ledger_id, Some(ledger_id("r3")));
    }

    fn approve_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer op".parse().unwrap());
        headers
    }

    #[test]
    fn a_decision_body_is_optional() {
        for empty in [&b""[..], b"  ", b"null", b"{}"] {
            assert_eq!(decision(empty).unwrap().reason, None);
        }
        assert_eq!(decision(br#"{"reason": "ok"}"#).unwrap().reason.as_deref(), Some("ok"));
        assert_eq!(decision(br#"{"why": 1}"#).unwrap_err().field.as_deref(), Some("reason"));
    }

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(text("note", Some("  转账 123 ".into())).unwrap().as_deref(), Some("转账 123"));
        assert_eq!(text("note", Some("   ".into())).unwrap(), None);
        assert_eq!(text("note", Some("字".repeat(501))).unwrap_err().field.as_deref(), Some("note"));
        assert!(text("note", Some("字".repeat(500))).is_ok());
    }
}
