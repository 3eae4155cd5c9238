//! Message pushes (消息推送): the HTTP handlers. The model and publishing are
//! in `crate::pushes`.

use std::sync::Arc;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::response::{IntoResponse, Response};
use herald_core::directory::{Targets, UNIT, USER, Unit, User};
use herald_core::doc_query::DocFilter;
use herald_core::error::{ApiError, ErrorBody, ErrorKind};
use herald_core::model::{Content, DeliveryStatus};
use herald_core::provider_template::ProviderTemplate;
use herald_core::rbac::{Permission, Reach};
use herald_core::store_query::{DeliveryQuery, DeliverySort};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::pushes::{NEXT_RUNS, PUSH, Push, PushView, Schedule, audience, check_sendable, send_again, send_if_due};
use crate::state::App;
use crate::web::{
    Body, ListQuery, Page, Query, Result, Routes, Sortable, conflict, created, no_content, provider_refused, provider_template_fits, sanitize_html,
    text,
};
use herald_core::docs::new_id;

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.routes(routes!(list_pushes, create_push))
        .routes(routes!(upload_list))
        .routes(routes!(upload_template))
        .routes(routes!(push_audience))
        .routes(routes!(schedule_preview))
        .routes(routes!(get_push, update_push, delete_push))
        .routes(routes!(copy_push))
        .routes(routes!(send_push))
        .routes(routes!(enable_push))
        .routes(routes!(disable_push))
        .routes(routes!(push_deliveries))
        .routes(routes!(export_deliveries))
}

/// A push as written. E-mail needs `content.subject` and `content.html` or
/// `content.text` (HTML is sanitized); other channels `content.text`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Maintenance tonight", "channel": "sms", "account": "sms-main",
    "content": {"text": "Hello {{ name }}, maintenance starts at 22:00."},
    "targets": {"units": ["01J9Z8Q4K0"], "list": [{"to": "+8613800000000", "name": "Ann", "variables": {"site": "B2"}}]},
    "schedule": {"mode": "at", "at": 1830301200000u64}, "enabled": true}))]
struct PushBody {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    title: String,
    /// Channel (plugin name), e.g. `sms`, `email`.
    channel: String,
    /// Sender account name on that channel.
    account: String,
    #[serde(default)]
    content: Content,
    #[serde(default)]
    targets: Targets,
    /// Template-based channels (Aliyun, Tencent SMS and voice send only an
    /// approved template): the template code and its parameters. Refused on
    /// channels that send the text itself.
    #[serde(default)]
    provider_template: Option<ProviderTemplate>,
    /// Default `{"mode": "now"}`.
    schedule: Option<Schedule>,
    /// Default true (needs `push.send`).
    #[serde(default)]
    enabled: Option<bool>,
}

/// A push (or its preview) that names nobody: well-formed, but nothing to send.
fn no_targets() -> ApiError {
    ApiError::new(ErrorKind::Unprocessable, "no_targets", herald_core::msg!("push.no_targets")).with_field("targets")
}

/// Directory targets must be in the data scope of the operation: a unit or a
/// user outside it is unknown to the caller (422 naming the entry). `strict`
/// (targets being written) refuses ids that do not exist too; a stored push
/// keeps those of users or units deleted since (they reach nobody).
async fn targets_in_scope(app: &App, caller: &Caller, scope: &Reach, targets: &Targets, strict: bool) -> std::result::Result<(), ApiError> {
    let repo = caller.repo(app);
    if !targets.units.is_empty() {
        let units: Vec<Unit> = repo.list(UNIT).await?;
        for (i, u) in targets.units.iter().enumerate() {
            let exists = units.iter().any(|k| &k.id == u);
            if (exists || strict) && !(exists && scope.sees(u)) {
                return Err(ApiError::unknown("unknown_unit", &format!("targets.units[{i}]"), herald_core::msg!("rbac.unknown_unit", unit = u)));
            }
        }
    }
    if !targets.users.is_empty() {
        let users: Vec<User> = repo.list(USER).await?;
        for (i, id) in targets.users.iter().enumerate() {
            let found = users.iter().find(|u| &u.id == id);
            if (found.is_some() || strict) && !found.is_some_and(|u| scope.sees(&u.unit)) {
                return Err(ApiError::unknown("unknown_user", &format!("targets.users[{i}]"), herald_core::msg!("dir.unknown_user", user = id)));
            }
        }
    }
    Ok(())
}

async fn checked(app: &App, caller: &Caller, scope: &Reach, b: PushBody, push: &mut Push) -> std::result::Result<(), ApiError> {
    push.title = text("title", &b.title, 200)?;
    let account = app.deps.backends.config.account(&caller.tenant, &b.account).await?.ok_or_else(|| {
        ApiError::unknown("unknown_account", "account", herald_core::msg!("push.unknown_account", account = format!("{:?}", b.account)))
    })?;
    if account.plugin != b.channel {
        return Err(ApiError::unknown(
            "account_channel",
            "account",
            herald_core::msg!("push.account_channel", account = format!("{:?}", b.account), plugin = account.plugin, channel = b.channel),
        ));
    }
    let mut content = b.content;
    content.html = content.html.as_deref().map(sanitize_html).filter(|h| !h.trim().is_empty());
    // What the content needs depends on the channel (the document cannot say
    // so per channel): a well-formed push that lacks it is 422, naming the field.
    let for_channel = |e: ApiError| ApiError { kind: ErrorKind::Unprocessable, code: "content_for_channel", ..e };
    if b.channel == "email" {
        text("content.subject", content.subject.as_deref().unwrap_or(""), 500).map_err(for_channel)?;
        if content.html.is_none() && content.text.as_deref().is_none_or(|t| t.trim().is_empty()) {
            return Err(for_channel(ApiError::invalid("content.html", herald_core::msg!("push.write_message"))));
        }
    } else {
        content.html = None;
        text("content.text", content.text.as_deref().unwrap_or(""), 20_000).map_err(for_channel)?;
    }
    herald_core::render::Compiled::new(&content).map_err(|e| ApiError::invalid("content", e.msg()))?;
    if let Some(t) = &b.provider_template {
        provider_template_fits(&app.deps.plugins, &b.channel, t).map_err(|(f, why)| provider_refused(format!("provider_template{f}"), why))?;
    }
    if b.targets.is_empty() {
        return Err(no_targets());
    }
    targets_in_scope(app, caller, scope, &b.targets, true).await?;
    // Raw addresses are checked as the gateway checks them at ingest.
    if let Some(plugin) = app.deps.plugins.get(&b.channel) {
        for (i, e) in b.targets.list.iter().enumerate() {
            let to = e.to.trim();
            if e.channel.as_deref().is_none_or(|c| c == b.channel) && !to.is_empty() {
                plugin.recipients.check_msg(to).map_err(|why| {
                    ApiError::invalid(format!("targets.list[{i}].to"), herald_core::msg!("address.bad", to = format!("{to:?}")).nested("why", why))
                })?;
            }
        }
    }
    let schedule = b.schedule.unwrap_or(Schedule::now());
    match (schedule.mode.as_str(), schedule.at) {
        ("now", _) => {}
        ("cron", _) => {
            schedule.recurrence()?;
        }
        ("at", Some(t)) if t > herald_core::now_ms() => {}
        ("at", _) => return Err(ApiError::invalid("schedule.at", herald_core::msg!("push.at_future"))),
        _ => return Err(ApiError::invalid("schedule.mode", herald_core::msg!("push.mode"))),
    }
    push.channel = b.channel;
    push.account = b.account;
    push.content = content;
    push.provider_template = b.provider_template;
    push.targets = b.targets;
    push.schedule = schedule;
    if let Some(e) = b.enabled {
        push.enabled = e;
    }
    push.updated_at = herald_core::now_ms();
    Ok(())
}
/// A push in the data scope of the operation, or 404.
async fn visible(app: &App, caller: &Caller, scope: &Reach, id: &str) -> std::result::Result<Push, ApiError> {
    let p: Option<Push> = caller.repo(app).get(PUSH, id).await?;
    p.filter(|p| scope.sees(&p.unit)).ok_or_else(|| ApiError::not_found("push", "id"))
}

/// `/pushes` sorts by these (`sort`); default by number, newest first.
const PUSH_SORTS: Sortable = &[
    ("number", "number"),
    ("title", "title"),
    ("channel", "channel"),
    ("schedule", "schedule.at"),
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
];

/// A push's status (`Push::status`) as store filters.
fn status_filters(status: &str) -> std::result::Result<Vec<DocFilter>, ApiError> {
    let unsent = DocFilter::Null { field: "message_id".into(), null: true };
    let enabled = |on: bool| DocFilter::In { field: "enabled".into(), values: vec![on.into()] };
    let mode = |m: &str| DocFilter::In { field: "schedule.mode".into(), values: vec![m.into()] };
    Ok(match status {
        "sent" => vec![DocFilter::Null { field: "message_id".into(), null: false }],
        "disabled" => vec![unsent, enabled(false)],
        "scheduled" => vec![unsent, enabled(true), mode("at")],
        "recurring" => vec![unsent, enabled(true), mode("cron")],
        "draft" => vec![unsent, enabled(true), mode("now")],
        _ => {
            let names = "draft, scheduled, recurring, sent, disabled";
            return Err(
                ApiError::new(ErrorKind::Unprocessable, "unknown_status", herald_core::msg!("list.status", names = names)).with_field("status")
            );
        }
    })
}

#[utoipa::path(get, path = "/pushes", tag = "pushes", summary = "Search pushes by number, title, status",
    description = "Needs `push.view`. Newest number first; `sort`: number, title, channel, schedule (the `at` time), created_at or updated_at. \
        Paged, filtered and sorted by the store.", params(ListQuery),
    responses((status = 200, description = "One page", body = Page<PushView>)))]
async fn list_pushes(State(app): State<Arc<App>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Response> {
    let scope = caller.require(Permission::PushView)?;
    let mut filters = vec![scope.filter("unit"), ListQuery::contains(&q.number, &["number"]), ListQuery::contains(&q.title, &["title"])];
    if let Some(s) = q.status.as_deref().filter(|s| !s.is_empty()) {
        filters.extend(status_filters(s)?.into_iter().map(Some));
    }
    let query = q.docs(PUSH_SORTS, ("number", true), filters)?;
    let page: Page<Push> = q.page_docs(&caller.repo(&app), PUSH, &query).await?;
    let now = app.deps.clock.now_ms();
    Ok(axum::Json(Page { items: page.items.iter().map(|p| p.view(now)).collect(), total: page.total }).into_response())
}

/// Needs `push.edit` (and `push.send` when enabled). Mode "now" sends at once
/// when enabled, "at" at that time, "cron" at each occurrence until disabled.
#[utoipa::path(post, path = "/pushes", tag = "pushes", summary = "Create a push (sends now, or at its scheduled time, when enabled)",
    request_body = PushBody, responses((status = 201, description = "Created (and sent when due)", body = PushView)))]
async fn create_push(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<PushBody>) -> Result<Response> {
    let scope = caller.require(Permission::PushEdit)?;
    let now = herald_core::now_ms();
    let mut push = Push::draft(new_id(), caller.user.unit.clone(), caller.user.name.clone(), now);
    checked(&app, &caller, scope, b, &mut push).await?;
    if push.enabled {
        caller.require(Permission::PushSend)?;
    }
    push.number = caller.repo(&app).next_number("P").await?;
    // Sending stores the push; a push that cannot be sent is not stored.
    if !send_if_due(&app, &caller.tenant, &mut push).await? {
        caller.repo(&app).put(PUSH, &push.id, &push).await?;
    }
    Ok(created(push.view(app.deps.clock.now_ms())))
}

#[utoipa::path(get, path = "/pushes/{id}", tag = "pushes", summary = "One push", description = "Needs `push.view`.",
    params(("id" = String, Path, description = "Push id")), responses((status = 200, description = "The push", body = PushView)))]
async fn get_push(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let scope = caller.require(Permission::PushView)?;
    Ok(axum::Json(visible(&app, &caller, scope, &id).await?.view(app.deps.clock.now_ms())).into_response())
}

#[utoipa::path(put, path = "/pushes/{id}", tag = "pushes", summary = "Edit a push",
    description = "Needs `push.edit` (and `push.send` when enabled). A push not sent yet is sent when the edit makes it due; a sent push keeps its sends and is sent again with `POST /pushes/{id}/send`.",
    params(("id" = String, Path, description = "Push id")),
    request_body = PushBody,
    responses((status = 200, description = "The push (sent when due)", body = PushView)))]
async fn update_push(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Body(b): Body<PushBody>) -> Result<Response> {
    let scope = caller.require(Permission::PushEdit)?;
    let mut push = visible(&app, &caller, scope, &id).await?;
    checked(&app, &caller, scope, b, &mut push).await?;
    if push.enabled {
        caller.require(Permission::PushSend)?;
    }
    check_sendable(&app, &caller.tenant, &push).await?;
    // Written over the push as stored now: a send recorded meanwhile is kept.
    let repo = caller.repo(&app);
    let saved = repo.update::<Push>(PUSH, &id, |p| {
        *p = push.edited_over(p);
        Ok(())
    });
    let mut push = saved.await?.ok_or_else(|| ApiError::not_found("push", "id"))?;
    send_if_due(&app, &caller.tenant, &mut push).await?;
    Ok(axum::Json(push.view(app.deps.clock.now_ms())).into_response())
}

#[utoipa::path(delete, path = "/pushes/{id}", tag = "pushes", summary = "Delete a disabled push", description = "Needs `push.edit`.",
    params(("id" = String, Path, description = "Push id")),
    responses((status = 204, description = "Deleted"), (status = 409, description = "`enabled`", body = ErrorBody)))]
async fn delete_push(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let scope = caller.require(Permission::PushEdit)?;
    let push = visible(&app, &caller, scope, &id).await?;
    if push.enabled {
        return Err(conflict("enabled", herald_core::msg!("push.delete_enabled")).into());
    }
    caller.repo(&app).delete(PUSH, &id).await?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/pushes/{id}/copy", tag = "pushes", summary = "Copy a push (the copy starts disabled)",
    description = "Needs `push.edit`. A time already past becomes \"now\".", params(("id" = String, Path, description = "Push id")),
    responses((status = 201, description = "The copy, a disabled draft with a new number", body = PushView)))]
async fn copy_push(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let scope = caller.require(Permission::PushEdit)?;
    let orig = visible(&app, &caller, scope, &id).await?;
    // The copy is the caller's own push: its targets must be theirs to target.
    targets_in_scope(&app, &caller, scope, &orig.targets, false).await?;
    let now = herald_core::now_ms();
    // What it sends, starting disabled; a time already past becomes "now".
    let past = orig.schedule.mode == "at" && orig.schedule.at.is_some_and(|t| t <= now);
    let push = Push {
        number: caller.repo(&app).next_number("P").await?,
        title: herald_core::msg!("default.copy", name = orig.title)
            .render(crate::api::tenant::language(&app, &caller.tenant).await?)
            .chars()
            .take(200)
            .collect(),
        channel: orig.channel,
        account: orig.account,
        content: orig.content,
        provider_template: orig.provider_template,
        targets: orig.targets,
        schedule: if past { Schedule::now() } else { orig.schedule },
        enabled: false,
        ..Push::draft(new_id(), caller.user.unit.clone(), caller.user.name.clone(), now)
    };
    caller.repo(&app).put(PUSH, &push.id, &push).await?;
    Ok(created(push.view(app.deps.clock.now_ms())))
}

async fn set_enabled(app: &App, caller: &Caller, id: &str, enabled: bool) -> Result<Response> {
    let scope = caller.require(Permission::PushSend)?;
    let mut preview = visible(app, caller, scope, id).await?;
    if enabled {
        targets_in_scope(app, caller, scope, &preview.targets, false).await?;
    }
    preview.enabled = enabled;
    check_sendable(app, &caller.tenant, &preview).await?;
    let now = herald_core::now_ms();
    // A sent push may be disabled too (before it is deleted).
    let repo = caller.repo(app);
    let saved = repo.update::<Push>(PUSH, id, |p| {
        p.enabled = enabled;
        p.updated_at = now;
        Ok(())
    });
    let mut push = saved.await?.ok_or_else(|| ApiError::not_found("push", "id"))?;
    send_if_due(app, &caller.tenant, &mut push).await?;
    Ok(axum::Json(push.view(app.deps.clock.now_ms())).into_response())
}

#[utoipa::path(post, path = "/pushes/{id}/send", tag = "pushes", summary = "Send the push now (again)",
    description = "Needs `push.send`. A send of its own: its own messages, so its own deliveries (`GET /pushes/{id}/deliveries?send=i`); the push keeps every send in `sends`.",
    params(("id" = String, Path, description = "Push id")),
    responses((status = 200, description = "The push with the new send", body = PushView),
              (status = 409, description = "`disabled`", body = ErrorBody),
              (status = 422, description = "`no_recipients`; `unknown_unit`/`unknown_user`: a target outside the caller's scope for `push.send`", body = ErrorBody)))]
async fn send_push(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    let scope = caller.require(Permission::PushSend)?;
    let mut push = visible(&app, &caller, scope, &id).await?;
    targets_in_scope(&app, &caller, scope, &push.targets, false).await?;
    if !push.enabled {
        return Err(conflict("disabled", herald_core::msg!("push.send_disabled")).into());
    }
    send_again(&app, &caller.tenant, &mut push).await?;
    Ok(axum::Json(push.view(app.deps.clock.now_ms())).into_response())
}

#[utoipa::path(post, path = "/pushes/{id}/enable", tag = "pushes", summary = "Enable (a due push is sent)", description = "Needs `push.send`.",
    params(("id" = String, Path, description = "Push id")), responses((status = 200, description = "The push", body = PushView)))]
async fn enable_push(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    set_enabled(&app, &caller, &id, true).await
}

#[utoipa::path(post, path = "/pushes/{id}/disable", tag = "pushes", summary = "Disable (nothing more is sent)", description = "Needs `push.send`.",
    params(("id" = String, Path, description = "Push id")), responses((status = 200, description = "The push", body = PushView)))]
async fn disable_push(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    set_enabled(&app, &caller, &id, false).await
}

/// One recipient's delivery.
#[derive(Serialize, ToSchema)]
struct DeliveryView {
    recipient: String,
    status: DeliveryStatus,
    attempts: u32,
    /// The provider's answer, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    detail: Option<String>,
    cost_minor: i64,
    updated_at: i64,
}

#[derive(Serialize, ToSchema)]
struct Deliveries {
    /// The push's first message (null for a recurring push or before it is sent).
    message_id: Option<String>,
    /// The messages of the send shown (`send`, default the latest).
    message_ids: Vec<String>,
    deliveries: Vec<DeliveryView>,
    /// Deliveries in all pages.
    total: usize,
}

/// A push's deliveries sort by these (`sort`); default in sending order.
const DELIVERY_SORTS: Sortable =
    &[("recipient", "recipient"), ("status", "status"), ("attempts", "attempts"), ("cost_minor", "cost_minor"), ("updated_at", "updated_at")];

#[utoipa::path(get, path = "/pushes/{id}/deliveries", tag = "pushes", summary = "Per-recipient delivery status",
    description = "Needs `push.view`. `offset`/`limit` page the deliveries in the store (default 500, at most 5000; `total` counts them all), in sending order or by `sort`: \
        recipient (Chinese names in pinyin order), status, attempts, cost_minor or updated_at.",
    params(("id" = String, Path, description = "Push id"), ListQuery),
    responses((status = 200, description = "The deliveries", body = Deliveries)))]
async fn push_deliveries(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Query(q): Query<ListQuery>) -> Result<Response> {
    let (push, messages) = send_messages(&app, &caller, &id, q.send).await?;
    let mut query = delivery_query(&q)?;
    query.limit = q.take(500, 5000) as u64;
    let page = app.deps.backends.store.deliveries_page(&caller.tenant, &messages, &query).await?;
    let deliveries = page.deliveries.into_iter().map(|(_, d)| delivery_view(d)).collect();
    let total = usize::try_from(page.total).unwrap_or(usize::MAX);
    Ok(axum::Json(Deliveries { message_id: push.message_id.clone(), message_ids: messages, deliveries, total }).into_response())
}

/// The store's delivery query of `q`: its sort (one of `DELIVERY_SORTS`, else 422 naming `sort`), order and offset.
fn delivery_query(q: &ListQuery) -> std::result::Result<DeliveryQuery, ApiError> {
    let page = q.docs(DELIVERY_SORTS, ("", false), vec![])?;
    Ok(DeliveryQuery {
        sort: page.sort.as_deref().and_then(DeliverySort::parse),
        descending: page.descending,
        offset: page.offset,
        limit: page.limit,
    })
}

fn delivery_view(d: herald_core::model::DeliveryRecord) -> DeliveryView {
    DeliveryView {
        recipient: d.recipient,
        status: d.status,
        attempts: d.attempts,
        detail: d.detail,
        cost_minor: d.cost_minor,
        updated_at: d.updated_at,
    }
}

/// A visible push (needs `push.view`) and the messages of its send `send`
/// (default the latest).
async fn send_messages(app: &App, caller: &Caller, id: &str, send: Option<u64>) -> Result<(Push, Vec<String>)> {
    let scope = caller.require(Permission::PushView)?;
    let push = visible(app, caller, scope, id).await?;
    let send = send.map(|i| usize::try_from(i).unwrap_or(usize::MAX));
    let messages = push.messages(send).ok_or_else(|| ApiError::not_found("send", "send"))?;
    Ok((push, messages))
}

/// A delivery status as a person reads it.
fn status_text(s: DeliveryStatus, chinese: bool) -> &'static str {
    use DeliveryStatus::*;
    match (s, chinese) {
        (Queued, true) => "排队中",
        (Retrying, true) => "重试中",
        (Sent, true) => "已发送",
        (Delivered, true) => "已送达",
        (Read, true) => "已读",
        (Failed, true) => "失败",
        (Dead, true) => "失败（重试已用尽）",
        (Queued, false) => "queued",
        (Retrying, false) => "retrying",
        (Sent, false) => "sent",
        (Delivered, false) => "delivered",
        (Read, false) => "read",
        (Failed, false) => "failed",
        (Dead, false) => "dead",
    }
}

/// Every delivery of the send (not paged): recipient, status, attempts, the
/// provider's answer, cost and time (China Standard Time). Headers in Chinese
/// unless `Accept-Language` prefers another language.
#[utoipa::path(get, path = "/pushes/{id}/deliveries/export", tag = "pushes", summary = "Download a push's deliveries (.xlsx)",
    description = "Needs `push.view`.",
    params(("id" = String, Path, description = "Push id"), ("send" = Option<u64>, Query, description = "Which send (0 = the first; default the latest)")),
    responses((status = 200, description = "The deliveries", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = crate::api::schema::Xlsx),
              (status = 404, description = "`not_found`", body = ErrorBody)))]
async fn export_deliveries(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    use crate::excel::Out;
    let (push, messages) = send_messages(&app, &caller, &id, q.send).await?;
    // Every delivery of the send, read from the store a page at a time.
    let mut query = delivery_query(&q)?;
    query.offset = 0;
    query.limit = 5_000;
    let mut items = vec![];
    loop {
        let page = app.deps.backends.store.deliveries_page(&caller.tenant, &messages, &query).await?;
        let n = page.deliveries.len() as u64;
        items.extend(page.deliveries.into_iter().map(|(_, d)| delivery_view(d)));
        query.offset += n;
        if n == 0 || query.offset >= page.total {
            break;
        }
    }
    let zh = crate::web::prefers_chinese(&headers);
    let head: &[&str] = if zh {
        &["推送编号", "接收人", "状态", "尝试次数", "详情", "费用", "更新时间"]
    } else {
        &["Push", "Recipient", "Status", "Attempts", "Detail", "Cost", "Updated"]
    };
    let rows: Vec<Vec<Out>> = items
        .into_iter()
        .map(|d| {
            vec![
                Out::from(push.number.as_str()),
                Out::Text(d.recipient),
                Out::from(status_text(d.status, zh)),
                Out::Int(i64::from(d.attempts)),
                Out::Text(d.detail.unwrap_or_default()),
                Out::Money(d.cost_minor),
                Out::Time(d.updated_at),
            ]
        })
        .collect();
    let bytes = crate::excel::export(if zh { "送达明细" } else { "Deliveries" }, head, &rows)
        .map_err(|e| ApiError::new(ErrorKind::Internal, "internal", format!("writing the sheet: {e}")))?;
    Ok(crate::web::xlsx_attachment(&format!("deliveries-{}.xlsx", push.number), bytes))
}

/// The upload form: one spreadsheet.
#[derive(ToSchema)]
#[allow(dead_code)] // read by the schema derive only
struct UploadForm {
    /// `.xls` or `.xlsx`, at most the admin's `max_upload_bytes` (5 MiB by default).
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
}

/// The channel a recipient list is for.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListChannel {
    /// Channel (plugin name), e.g. `sms`: recipients are checked as that channel's addresses.
    channel: Option<String>,
}

/// The address rule of a named channel; 422 naming `channel` for one not loaded.
fn channel_rule(app: &App, channel: &str) -> std::result::Result<herald_core::address::AddressRule, ApiError> {
    app.deps
        .plugins
        .get(channel)
        .map(|p| p.recipients.clone())
        .ok_or_else(|| ApiError::unknown("unknown_channel", "channel", herald_core::msg!("push.unknown_channel", channel = format!("{channel:?}"))))
}

/// Needs `push.edit`. A header row names the `to` column (or 收件人/手机/邮箱)
/// and optionally `name`; other columns become variables. With `channel`,
/// each recipient is checked as that channel's address (a mobile number in
/// E.164 or mainland form, an e-mail address, the IM id the plugin declares):
/// invalid rows are listed with row, column and reason. A recipient already
/// listed (in any spelling) is left out and reported in `duplicates`. At most
/// 100 000 rows; zip bombs and forged sheets are refused.
#[utoipa::path(post, path = "/pushes/upload", tag = "pushes", summary = "Parse and check a recipient list (.xls/.xlsx)",
    params(ListChannel),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The rows, the rows' errors and the duplicates left out", body = crate::excel::Parsed),
              (status = 413, description = "`too_large`", body = ErrorBody),
              (status = 422, description = "`unknown_channel`", body = ErrorBody),
              (status = 503, description = "Every parser is busy", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds")))))]
async fn upload_list(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<ListChannel>,
    form: std::result::Result<Multipart, MultipartRejection>,
) -> Result<Response> {
    caller.require(Permission::PushEdit)?;
    let rule = q.channel.as_deref().map(|c| channel_rule(&app, c)).transpose()?;
    let bad = |m: herald_core::i18n::Msg| ApiError::invalid("file", m);
    let mut form = form.map_err(|e| bad(herald_core::msg!("upload.form", detail = e.body_text())))?;
    let limit = app.cfg.max_upload_bytes;
    let too_large = || ApiError::new(ErrorKind::TooLarge, "too_large", herald_core::msg!("upload.too_large", limit = limit)).with_field("file");
    // A body past the service's limit fails while it is read: that is a 413 too.
    let read_err = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            bad(herald_core::msg!("upload.form", detail = e.body_text()))
        }
    };
    while let Some(mut field) = form.next_field().await.map_err(read_err)? {
        if field.name() != Some("file") {
            continue;
        }
        let kind = crate::excel::kind(field.file_name().unwrap_or("")).map_err(|e| bad(e.msg()))?;
        // Counted as it arrives: never more than the limit in memory.
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(read_err)? {
            if bytes.len() + chunk.len() > limit {
                return Err(too_large().into());
            }
            bytes.extend_from_slice(&chunk);
        }
        let max = app.cfg.max_upload_rows;
        return match crate::metrics::get().uploaded(crate::upload_worker::parse(kind, bytes, max).await) {
            Ok(json) => {
                let mut parsed: crate::excel::Parsed = serde_json::from_slice(&json)
                    .map_err(|e| ApiError::unknown("unreadable_file", "file", herald_core::msg!("upload.parser_answer", error = e)))?;
                parsed.vet(rule.as_ref());
                parsed.localize(crate::i18n::lang());
                Ok(axum::Json(parsed).into_response())
            }
            Err(crate::upload_worker::Failure::Refused(m)) => Err(bad(m).into()),
            Err(crate::upload_worker::Failure::Died(m)) => Err(ApiError::unknown("unreadable_file", "file", m).into()),
            Err(crate::upload_worker::Failure::Busy) => Err(ApiError::unavailable(herald_core::msg!("upload.busy")).into()),
        };
    }
    Err(bad(herald_core::msg!("upload.no_file")).into())
}

/// The list template: the header row the upload reads and one example
/// recipient of the channel's kind. Headers in Chinese (收件人, 姓名) unless
/// `Accept-Language` prefers another language (then `to`, `name`); both upload.
#[utoipa::path(get, path = "/pushes/upload-template", tag = "pushes", summary = "Download the recipient-list template (.xlsx) for a channel",
    params(("channel" = String, Query, description = "Channel (plugin name), e.g. `sms`")),
    responses((status = 200, description = "The template", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = crate::api::schema::Xlsx),
              (status = 422, description = "`unknown_channel`", body = ErrorBody)))]
async fn upload_template(
    State(app): State<Arc<App>>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    Query(q): Query<ListChannel>,
) -> Result<Response> {
    caller.require(Permission::PushEdit)?;
    let channel = q.channel.ok_or_else(|| ApiError::invalid("channel", herald_core::msg!("upload.name_channel")))?;
    let rule = channel_rule(&app, &channel)?;
    let bytes = crate::excel::template(&rule, crate::web::prefers_chinese(&headers))
        .map_err(|e| ApiError::new(ErrorKind::Internal, "internal", format!("writing the template: {e}")))?;
    Ok(crate::web::xlsx_attachment(&format!("recipients-{channel}.xlsx"), bytes))
}

/// Who a push would reach.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channel": "sms", "targets": {"units": ["01J9Z8Q4K0"], "list": [{"to": "13800138000"}]}}))]
struct AudienceBody {
    /// Channel (plugin name), e.g. `sms`.
    channel: String,
    #[serde(default)]
    targets: Targets,
}

/// How many recipients a push would be sent to now.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"recipients": 118, "skipped": 2, "duplicates": 1}))]
struct Audience {
    /// Deliveries it would make (each address once).
    recipients: usize,
    /// Directory users left out: no address on the channel, or one that is not the channel's.
    skipped: usize,
    /// Addresses left out as repeats of an earlier recipient, in any spelling
    /// the channel takes as the same (`+8613800138000` and `13800138000`).
    duplicates: usize,
}

/// Needs `push.edit`. The console asks before an immediate send, to name the
/// number of recipients in its confirmation. Org units and users must be in
/// the caller's data scope for `push.edit` (422 `unknown_unit`/`unknown_user` otherwise).
#[utoipa::path(post, path = "/pushes/audience", tag = "pushes", summary = "Count the recipients a push would reach now",
    request_body = AudienceBody,
    responses((status = 200, description = "The count", body = Audience),
              (status = 422, description = "`unknown_channel`, `no_targets`, `no_recipients`, `unknown_unit`, `unknown_user`", body = ErrorBody)))]
async fn push_audience(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<AudienceBody>) -> Result<Response> {
    let scope = caller.require(Permission::PushEdit)?;
    channel_rule(&app, &b.channel)?;
    if b.targets.is_empty() {
        return Err(no_targets().into());
    }
    targets_in_scope(&app, &caller, scope, &b.targets, true).await?;
    let expanded = audience(&app, &caller.tenant, &b.channel, &b.targets).await?;
    Ok(axum::Json(Audience { recipients: expanded.recipients.len(), skipped: expanded.skipped.len(), duplicates: expanded.duplicates.len() })
        .into_response())
}

/// A cron expression to preview.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CronQuery {
    /// Unix cron: "min hour day month weekday" (or with leading seconds), e.g. `0 9 * * 1-5`.
    #[param(pattern = r"^\s*\S+(\s+\S+){4,5}\s*$", max_length = 200)]
    cron: String,
    /// IANA zone; default Asia/Shanghai.
    time_zone: Option<String>,
}

/// The next occurrences of a recurring schedule.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"next_runs": [1796605200000_i64, 1796691600000_i64, 1796778000000_i64, 1796864400000_i64, 1796950800000_i64]}))]
struct NextRuns {
    /// Unix milliseconds (UTC), the next five.
    next_runs: Vec<i64>,
}

/// Needs `push.edit`. What the console's cron builder shows while an expression is typed.
#[utoipa::path(get, path = "/pushes/schedule-preview", tag = "pushes", summary = "The next five runs of a cron expression",
    params(CronQuery),
    responses((status = 200, description = "The next runs", body = NextRuns),
              (status = 400, description = "`cron` or `time_zone` is not valid", body = ErrorBody)))]
async fn schedule_preview(State(app): State<Arc<App>>, caller: Caller, Query(q): Query<CronQuery>) -> Result<Response> {
    caller.require(Permission::PushEdit)?;
    let schedule = Schedule { mode: "cron".into(), at: None, cron: Some(q.cron), time_zone: q.time_zone };
    // The same checks as a saved push; the fields named as this query names them.
    schedule.recurrence().map_err(|e| {
        let field = e.field.as_deref().map(|f| f.trim_start_matches("schedule.").to_string());
        ApiError { field, ..e }
    })?;
    Ok(axum::Json(NextRuns { next_runs: schedule.next_runs(app.deps.clock.now_ms(), NEXT_RUNS) }).into_response())
}
