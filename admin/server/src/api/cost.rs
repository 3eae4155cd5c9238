//! Cost management (费用管理): balance, low-balance alert and policy, monthly
//! bills, ledger details, transactions; reports; the operator's top-ups.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use herald_core::billing::{BILLING, BILLING_SETTINGS, BillingSettings as Billing};
use herald_core::error::{ApiError, ErrorBody, ErrorKind};
use herald_core::model::{LedgerEntry, LedgerKind, MessageView};
use herald_core::rbac::Permission;
use herald_core::store_query::{LedgerQuery, LedgerSort};
use herald_core::tiered::{ACTION, Action, INCIDENT, Incident};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use crate::api::schema;
use crate::auth::Caller;
use crate::excel::Out;
use crate::pushes::{PUSH, Push};
use crate::state::App;
use crate::web::{BILL_OFFSET_MINUTES, Body, Items, ListQuery, Page, Query, Range, Result, Routes, Sortable, created};

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.routes(routes!(balance))
        .routes(routes!(set_alert))
        .routes(routes!(bills))
        .routes(routes!(export_bills))
        .routes(routes!(details))
        .routes(routes!(export_details))
        .routes(routes!(transactions))
        .routes(routes!(export_transactions))
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
    params(("from" = Option<String>, Query, pattern = r"^([0-9]{4}-(0[1-9]|1[0-2]))?$", description = "First month, YYYY-MM"),
           ("to" = Option<String>, Query, pattern = r"^([0-9]{4}-(0[1-9]|1[0-2]))?$", description = "Last month, YYYY-MM")),
    responses((status = 200, description = "Bill lines", body = Items<schema::BillLine>), (status = 400, description = "`invalid` (`from`, `to`)", body = ErrorBody)))]
async fn bills(State(app): State<Arc<App>>, caller: Caller, Query(r): Query<Range>) -> Result<Response> {
    Ok(axum::Json(json!({"items": bill_lines(&app, &caller, &r).await?})).into_response())
}

/// The bill lines of the months `from`..=`to` (either may be absent): the
/// period's entries read from the store page by page (all of them, no
/// window) and summed as they come.
async fn bill_lines(app: &App, caller: &Caller, r: &Range) -> Result<Vec<herald_core::bills::BillLine>> {
    caller.require(Permission::CostView)?;
    let from = month(r.from.as_deref(), "from")?;
    let to = month(r.to.as_deref(), "to")?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::invalid("to", herald_core::msg!("cost.months_reversed")).into());
    }
    let (start, end) = period(from, to)?;
    let mut bills = herald_core::bills::Bills::new(BILL_OFFSET_MINUTES);
    let query = LedgerQuery { start, end, top_ups: true, sort: LedgerSort::At, descending: true, offset: 0, limit: READ_PAGE };
    each_page(app, caller, query, u64::MAX, |page| {
        page.lines.iter().for_each(|l| bills.add(&l.entry));
    })
    .await?;
    Ok(bills.finish())
}

/// Entries read per store call when a whole period is read (bills, exports).
const READ_PAGE: u64 = 5_000;
/// Rows an export holds at most; past it the sheet's last row says how many there were.
const EXPORT_ROWS: u64 = 100_000;

/// Hand the pages of `query` (its offset and limit ignored: `READ_PAGE`
/// at a time from the start) to `each` until `max` entries or the end;
/// the total. Entries recorded meanwhile (later than the first read) are
/// left out, so the pages do not shift under the reader.
pub(crate) async fn each_page(
    app: &App,
    caller: &Caller,
    mut query: LedgerQuery,
    max: u64,
    mut each: impl FnMut(herald_core::store_query::LedgerPage),
) -> std::result::Result<u64, ApiError> {
    query.end = query.end.min(app.deps.clock.now_ms().saturating_add(1));
    query.offset = 0;
    query.limit = READ_PAGE.min(max);
    loop {
        let page = app.deps.backends.store.ledger_page(&caller.tenant, &query).await?;
        let (n, total) = (page.lines.len() as u64, page.total);
        each(page);
        query.offset += n;
        if n == 0 || query.offset >= total.min(max) {
            return Ok(total);
        }
        query.limit = READ_PAGE.min(max - query.offset);
    }
}

/// A month "YYYY-MM" (absent or empty: none); anything else is a 400 naming `field`.
fn month<'a>(v: Option<&'a str>, field: &str) -> std::result::Result<Option<&'a str>, ApiError> {
    match v.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(m) if m.len() == 7 && chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok() => Ok(Some(m)),
        Some(_) => Err(ApiError::invalid(field, herald_core::msg!("cost.month", field = field))),
    }
}

/// The start (inclusive) and end (exclusive), in Unix ms, of the period
/// `from`..=`to`, each a day (YYYY-MM-DD) or a month (YYYY-MM) in China
/// Standard Time; an absent bound is open.
fn period(from: Option<&str>, to: Option<&str>) -> std::result::Result<(i64, i64), ApiError> {
    let bound = |v: Option<&str>, field: &str, end: bool| match v.filter(|v| !v.is_empty()) {
        None => Ok(if end { i64::MAX } else { i64::MIN }),
        Some(v) => day_or_month(v, end).ok_or_else(|| ApiError::invalid(field, herald_core::msg!("cost.day_or_month", field = field))),
    };
    let (start, end) = (bound(from, "from", false)?, bound(to, "to", true)?);
    if start >= end {
        return Err(ApiError::invalid("to", herald_core::msg!("cost.period_reversed")));
    }
    Ok((start, end))
}

/// The first instant of the day or month `v` (`end`: of the one after), China Standard Time.
fn day_or_month(v: &str, end: bool) -> Option<i64> {
    use chrono::{Days, Months, NaiveDate};
    let (first, next) = match v.len() {
        10 => NaiveDate::parse_from_str(v, "%Y-%m-%d").ok().and_then(|d| Some((d, d.checked_add_days(Days::new(1))?)))?,
        7 => NaiveDate::parse_from_str(&format!("{v}-01"), "%Y-%m-%d").ok().and_then(|d| Some((d, d.checked_add_months(Months::new(1))?)))?,
        _ => return None,
    };
    let day = if end { next } else { first };
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis() - i64::from(BILL_OFFSET_MINUTES) * 60_000)
}

/// What a ledger entry was spent on: the push, or the tiered-push action
/// whose incident, sent it.
#[derive(Serialize, ToSchema, Clone)]
struct Source {
    /// "push" or "action".
    kind: String,
    id: String,
    /// The human number, e.g. P000001 or A000001.
    number: String,
    title: String,
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
    /// The push or action that sent it (null: a top-up, a send straight
    /// through the gateway API, or a push outside the caller's units).
    source: Option<Source>,
    /// Who the delivery went to.
    recipient: Option<String>,
    units: u32,
    /// Positive for every kind.
    amount_minor: i64,
    /// The effect on the balance (debits negative).
    signed_minor: i64,
    /// Transactions: the balance right after this entry.
    balance_minor: Option<i64>,
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
        source: None,
        recipient: None,
        units: e.units,
        amount_minor: e.amount_minor,
        signed_minor: e.kind.signed(e.amount_minor),
        balance_minor: None,
        currency: e.currency.clone(),
        at: e.at,
    }
}

/// Message id → the push (visible to the caller) or action that sent it.
async fn sources(app: &App, caller: &Caller) -> std::result::Result<HashMap<String, Source>, ApiError> {
    let repo = caller.repo(app);
    let mut out = HashMap::new();
    let pushes: Vec<Push> = repo.list(PUSH).await?;
    let (all_units, units) = caller.access.union();
    for p in pushes.iter().filter(|p| all_units || units.contains(&p.unit)) {
        let source = Source { kind: "push".into(), id: p.id.clone(), number: p.number.clone(), title: p.title.clone() };
        for m in p.sends.iter().flat_map(|s| s.message_ids.iter()).chain(&p.message_ids).chain(&p.message_id) {
            out.insert(m.clone(), source.clone());
        }
    }
    let actions: HashMap<String, Action> = repo.list::<Action>(ACTION).await?.into_iter().map(|a| (a.id.clone(), a)).collect();
    for inc in repo.list::<Incident>(INCIDENT).await? {
        let Some(a) = actions.get(&inc.action) else { continue };
        for (_, m) in &inc.messages {
            out.entry(m.clone()).or_insert_with(|| Source {
                kind: "action".into(),
                id: a.id.clone(),
                number: a.number.clone(),
                title: a.title.clone(),
            });
        }
    }
    Ok(out)
}

/// Lines of `entries` with what they were for and whom they reached.
async fn lines(app: &App, caller: &Caller, entries: &[&LedgerEntry]) -> std::result::Result<Vec<LedgerLine>, ApiError> {
    let sources = sources(app, caller).await?;
    let mut messages: HashMap<String, Option<MessageView>> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let mut line = entry_view(e);
        if let Some(delivery) = e.delivery_id.as_deref()
            && let Some((mid, _)) = delivery.rsplit_once('.')
        {
            line.source = sources.get(mid).cloned();
            if !messages.contains_key(mid) {
                messages.insert(mid.to_string(), app.deps.backends.store.message(&caller.tenant, mid).await?);
            }
            line.recipient =
                messages.get(mid).and_then(Option::as_ref).and_then(|v| v.deliveries.iter().find(|d| d.id == delivery)).map(|d| d.recipient.clone());
        }
        out.push(line);
    }
    Ok(out)
}

/// `?from=&to=&offset=&limit=&sort=&order=`: a period of days (YYYY-MM-DD)
/// or months (YYYY-MM), one page of it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query `Range` and `ListQuery` read
struct LedgerParams {
    /// First day (YYYY-MM-DD) or month (YYYY-MM), China Standard Time.
    #[param(pattern = r"^([0-9]{4}-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?$")]
    from: Option<String>,
    /// Last day or month (included).
    #[param(pattern = r"^([0-9]{4}-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?$")]
    to: Option<String>,
    /// `at` (default, newest first), `amount_minor`, `units` or `channel` (another is a 422 `unknown_sort` naming `sort`).
    sort: Option<String>,
    /// `asc` or `desc` (default `asc` with `sort`, else newest first).
    #[param(inline)]
    order: Option<crate::web::SortOrder>,
    /// Entries to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
    /// Page size, default 50, at most 200 (exports: ignored, the whole period).
    #[param(minimum = 0)]
    limit: Option<i64>,
}

/// Ledger lists sort by these (`sort`); default newest first.
const LEDGER_SORTS: Sortable = &[("at", "at"), ("amount_minor", "amount_minor"), ("units", "units"), ("channel", "channel")];

/// The store query of a ledger list: the period of `r`, the sort and page of `q`.
fn ledger_query(r: &Range, q: &ListQuery, top_ups: bool) -> std::result::Result<LedgerQuery, ApiError> {
    let (start, end) = period(r.from.as_deref(), r.to.as_deref())?;
    let page = q.docs(LEDGER_SORTS, ("at", true), vec![])?;
    let sort = match page.sort.as_deref() {
        Some("amount_minor") => LedgerSort::AmountMinor,
        Some("units") => LedgerSort::Units,
        Some("channel") => LedgerSort::Channel,
        _ => LedgerSort::At,
    };
    Ok(LedgerQuery { start, end, top_ups, sort, descending: page.descending, offset: page.offset, limit: page.limit })
}

/// The lines of one store page, each with the balance right after it.
async fn page_lines(app: &App, caller: &Caller, page: &herald_core::store_query::LedgerPage) -> std::result::Result<Vec<LedgerLine>, ApiError> {
    let entries: Vec<&LedgerEntry> = page.lines.iter().map(|l| &l.entry).collect();
    let mut out = lines(app, caller, &entries).await?;
    for (line, l) in out.iter_mut().zip(&page.lines) {
        line.balance_minor = Some(l.balance_minor);
    }
    Ok(out)
}

/// One page of a ledger list (`top_ups`: transactions, else cost details).
async fn ledger_list(app: &App, caller: &Caller, r: &Range, q: &ListQuery, top_ups: bool) -> Result<Response> {
    caller.require(Permission::CostView)?;
    let query = ledger_query(r, q, top_ups)?;
    let page = app.deps.backends.store.ledger_page(&caller.tenant, &query).await?;
    let items = page_lines(app, caller, &page).await?;
    Ok(axum::Json(Page { items, total: usize::try_from(page.total).unwrap_or(usize::MAX) }).into_response())
}

/// The whole period of a ledger list in its order, at most `EXPORT_ROWS`,
/// and how many there are.
async fn export_lines(app: &App, caller: &Caller, r: &Range, q: &ListQuery, top_ups: bool) -> Result<(Vec<LedgerLine>, u64)> {
    caller.require(Permission::CostView)?;
    let query = ledger_query(r, q, top_ups)?;
    let mut pages = vec![];
    let total = each_page(app, caller, query, EXPORT_ROWS, |p| pages.push(p)).await?;
    let mut out = Vec::new();
    for p in &pages {
        out.extend(page_lines(app, caller, p).await?);
    }
    Ok((out, total))
}

#[utoipa::path(get, path = "/cost/details", tag = "cost", summary = "Cost details: debits and refunds, newest first",
    description = "Needs `cost.view`. Each names the push or action that sent it and the recipient. Paged by the store: `total` counts the period's entries.",
    params(LedgerParams),
    responses((status = 200, description = "One page of entries", body = Page<LedgerLine>),
              (status = 400, description = "`invalid` (`from`, `to`)", body = ErrorBody),
              (status = 422, description = "`unknown_sort` (`sort`)", body = ErrorBody)))]
async fn details(State(app): State<Arc<App>>, caller: Caller, Query(r): Query<Range>, Query(q): Query<ListQuery>) -> Result<Response> {
    ledger_list(&app, &caller, &r, &q, false).await
}

#[utoipa::path(get, path = "/cost/transactions", tag = "cost", summary = "Income and expenditure (收支明细): every debit, refund and top-up, newest first",
    description = "Needs `cost.view`. Each with the balance right after it. Paged by the store: `total` counts the period's entries.",
    params(LedgerParams),
    responses((status = 200, description = "One page of entries", body = Page<LedgerLine>),
              (status = 400, description = "`invalid` (`from`, `to`)", body = ErrorBody),
              (status = 422, description = "`unknown_sort` (`sort`)", body = ErrorBody)))]
async fn transactions(State(app): State<Arc<App>>, caller: Caller, Query(r): Query<Range>, Query(q): Query<ListQuery>) -> Result<Response> {
    ledger_list(&app, &caller, &r, &q, true).await
}

/// A channel as people call it (as the console names it).
fn channel_name(channel: &str, zh: bool) -> String {
    let name = match (channel, zh) {
        ("sms", true) => "短信",
        ("email", true) => "邮件",
        ("voice", true) => "语音",
        ("aliyun-sms", true) => "阿里云短信",
        ("aliyun-voice", true) => "阿里云语音",
        ("tencent-sms", true) => "腾讯云短信",
        ("twilio-sms", true) => "Twilio 短信",
        ("twilio-voice", true) => "Twilio 语音",
        ("dingtalk-robot", true) => "钉钉机器人",
        ("dingtalk-work", true) => "钉钉工作通知",
        ("wecom-robot", true) => "企业微信机器人",
        ("wecom-app", true) => "企业微信应用",
        ("feishu", true) => "飞书",
        ("sms", false) => "SMS",
        ("email", false) => "Email",
        ("voice", false) => "Voice",
        _ => channel,
    };
    name.to_string()
}

fn kind_name(kind: LedgerKind, zh: bool) -> &'static str {
    match (kind, zh) {
        (LedgerKind::Debit, true) => "扣费",
        (LedgerKind::Credit, true) => "退款",
        (LedgerKind::TopUp, true) => "充值",
        (LedgerKind::Debit, false) => "debit",
        (LedgerKind::Credit, false) => "refund",
        (LedgerKind::TopUp, false) => "top-up",
    }
}

fn sheet(name: &str, head: &[&str], rows: &[Vec<Out>], file: &str) -> Result<Response> {
    let bytes =
        crate::excel::export(name, head, rows).map_err(|e| ApiError::new(ErrorKind::Internal, "internal", format!("writing the sheet: {e}")))?;
    Ok(crate::web::xlsx_attachment(file, bytes))
}

#[utoipa::path(get, path = "/cost/bills/export", tag = "cost", summary = "Download the monthly bills (.xlsx)",
    description = "Needs `cost.view`. Headers in Chinese unless `Accept-Language` prefers another language.",
    params(("from" = Option<String>, Query, pattern = r"^([0-9]{4}-(0[1-9]|1[0-2]))?$", description = "First month, YYYY-MM"),
           ("to" = Option<String>, Query, pattern = r"^([0-9]{4}-(0[1-9]|1[0-2]))?$", description = "Last month, YYYY-MM")),
    responses((status = 200, description = "The bills", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = schema::Xlsx),
              (status = 400, description = "`invalid` (`from`, `to`)", body = ErrorBody)))]
async fn export_bills(State(app): State<Arc<App>>, caller: Caller, headers: HeaderMap, Query(r): Query<Range>) -> Result<Response> {
    let zh = crate::web::prefers_chinese(&headers);
    let rows: Vec<Vec<Out>> = bill_lines(&app, &caller, &r)
        .await?
        .into_iter()
        .map(|l| {
            let count = |n: u64| Out::Int(i64::try_from(n).unwrap_or(i64::MAX));
            let channel = if l.channel.is_empty() { String::new() } else { channel_name(&l.channel, zh) };
            vec![
                Out::Text(l.period),
                Out::Text(channel),
                Out::Text(l.currency),
                count(l.debit_count),
                count(l.debit_units),
                Out::Money(l.debit_minor),
                Out::Money(l.credit_minor),
                Out::Money(l.top_up_minor),
                Out::Money(l.net_minor),
            ]
        })
        .collect();
    let head: &[&str] = if zh {
        &["月份", "产品", "币种", "计费条数", "计费单位", "扣费", "退款", "充值", "净额"]
    } else {
        &["Month", "Product", "Currency", "Billed sends", "Billed units", "Debits", "Refunds", "Top-ups", "Net"]
    };
    sheet(if zh { "账单" } else { "Bills" }, head, &rows, "bills.xlsx")
}

/// The rows of an exported ledger: time, kind, product, push/action,
/// recipient, units, amount, balance; when the period holds more than
/// `EXPORT_ROWS` (`total`), a last row says so.
fn ledger_sheet((lines, total): (Vec<LedgerLine>, u64), zh: bool, name: (&str, &str), file: &str) -> Result<Response> {
    let shown = lines.len() as u64;
    let mut rows: Vec<Vec<Out>> = lines
        .into_iter()
        .map(|l| {
            let source = l.source.map(|s| format!("{} {}", s.number, s.title)).unwrap_or_default();
            vec![
                Out::Time(l.at),
                Out::from(kind_name(l.kind, zh)),
                Out::Text(if l.channel.is_empty() { String::new() } else { channel_name(&l.channel, zh) }),
                Out::Text(source),
                Out::Text(l.recipient.unwrap_or_default()),
                Out::Text(l.account),
                Out::Int(i64::from(l.units)),
                Out::Money(l.signed_minor),
                l.balance_minor.map_or(Out::Text(String::new()), Out::Money),
                Out::Text(l.currency),
            ]
        })
        .collect();
    if total > shown {
        rows.push(vec![Out::Text(if zh {
            format!("仅导出前 {shown} 条，共 {total} 条：请缩小时间范围分次导出")
        } else {
            format!("Only the first {shown} of {total} entries: export a shorter period at a time")
        })]);
    }
    let head: &[&str] = if zh {
        &["时间", "类型", "产品", "推送/动作", "接收人", "账户/备注", "计费单位", "金额", "余额", "币种"]
    } else {
        &["Time", "Kind", "Product", "Push/action", "Recipient", "Account/note", "Units", "Amount", "Balance", "Currency"]
    };
    sheet(if zh { name.0 } else { name.1 }, head, &rows, file)
}

#[utoipa::path(get, path = "/cost/details/export", tag = "cost", summary = "Download the cost details (.xlsx)",
    description = "Needs `cost.view`. The period's debits and refunds in the list's order (`sort`, `order`; newest first), read from the store page by page: \
        at most 100 000 rows, and when the period holds more the sheet's last row says how many there are.",
    params(LedgerParams),
    responses((status = 200, description = "The details", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = schema::Xlsx),
              (status = 400, description = "`invalid` (`from`, `to`)", body = ErrorBody),
              (status = 422, description = "`unknown_sort` (`sort`)", body = ErrorBody)))]
async fn export_details(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: HeaderMap,
    Query(r): Query<Range>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let lines = export_lines(&app, &caller, &r, &q, false).await?;
    ledger_sheet(lines, crate::web::prefers_chinese(&headers), ("费用明细", "Cost details"), "cost-details.xlsx")
}

#[utoipa::path(get, path = "/cost/transactions/export", tag = "cost", summary = "Download the income and expenditure (.xlsx)",
    description = "Needs `cost.view`. The period's debits, refunds and top-ups in the list's order (newest first), read from the store page by page: \
        at most 100 000 rows, and when the period holds more the sheet's last row says how many there are.",
    params(LedgerParams),
    responses((status = 200, description = "The transactions", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = schema::Xlsx),
              (status = 400, description = "`invalid` (`from`, `to`)", body = ErrorBody),
              (status = 422, description = "`unknown_sort` (`sort`)", body = ErrorBody)))]
async fn export_transactions(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: HeaderMap,
    Query(r): Query<Range>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let lines = export_lines(&app, &caller, &r, &q, true).await?;
    ledger_sheet(lines, crate::web::prefers_chinese(&headers), ("收支明细", "Transactions"), "transactions.xlsx")
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
    operator(&app, &headers)?;
    let tenant = app.deps.backends.config.tenant(&id).await?.ok_or_else(|| ApiError::not_found("tenant", "id"))?;
    let (entry, balance) =
        app.services.billing.top_up(&tenant, b.amount_minor, b.note.as_deref().unwrap_or_default()).await.map_err(ApiError::from)?;
    tracing::info!(tenant = %tenant.id, amount_minor = b.amount_minor, "top-up");
    Ok(created(json!({"entry": entry_view(&entry), "balance_minor": balance})))
}

/// The platform operator's bearer token (`operator_token`), or 401; 404
/// when the admin has none.
pub(crate) fn operator(app: &App, headers: &HeaderMap) -> std::result::Result<(), ApiError> {
    let Some(expected) = &app.cfg.operator_token else {
        return Err(ApiError::new(ErrorKind::NotFound, "not_found", herald_core::msg!("operator.off")));
    };
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    if !herald_core::same_secret(given, expected) {
        return Err(ApiError::new(ErrorKind::Unauthenticated, "unauthenticated", herald_core::msg!("operator.token_required")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_days_or_months_in_china_standard_time() {
        let ms = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
        assert_eq!(period(Some("2026-12-07"), Some("2026-12-07")).unwrap(), (ms("2026-12-06T16:00:00Z"), ms("2026-12-07T16:00:00Z")));
        assert_eq!(period(Some("2026-12"), Some("2026-12")).unwrap(), (ms("2026-11-30T16:00:00Z"), ms("2026-12-31T16:00:00Z")));
        assert_eq!(period(None, Some("")).unwrap(), (i64::MIN, i64::MAX));
        for (from, to, field) in [("2026-13", "", "from"), ("yesterday", "", "from"), ("", "2026-12-32", "to"), ("2026-12-08", "2026-12-07", "to")] {
            assert_eq!(period(Some(from), Some(to)).unwrap_err().field.as_deref(), Some(field), "{from}..{to}");
        }
        assert_eq!(month(Some("2026-1"), "from").unwrap_err().field.as_deref(), Some("from"));
        assert_eq!(month(Some("2026-01"), "from").unwrap(), Some("2026-01"));
    }
}
