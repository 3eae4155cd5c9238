//! Message pushes (消息推送): the HTTP handlers. The model and publishing are
//! in `crate::pushes`.

use std::sync::Arc;

use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Response};
use herald_core::directory::Targets;
use herald_core::error::{ApiError, ErrorKind};
use herald_core::model::Content;
use herald_core::rbac::Permission;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::pushes::{PUSH, Push, Schedule, check_sendable, send_if_due};
use crate::state::App;
use crate::web::{Body, ListQuery, Result, Routes, conflict, created, no_content, rfc3339, sanitize_html, text};
use herald_core::docs::new_id;

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.add("GET", "/pushes", "Search pushes by number, title, status", list)
        .add("POST", "/pushes", "Create a push (sends now, or at its scheduled time, when enabled)", create)
        .add("POST", "/pushes/upload", "Parse a recipient list (.xls/.xlsx)", upload)
        .add("GET", "/pushes/{id}", "One push", get)
        .add("PUT", "/pushes/{id}", "Edit a push that has not been sent", update)
        .add("DELETE", "/pushes/{id}", "Delete a disabled push", delete)
        .add("POST", "/pushes/{id}/copy", "Copy a push (the copy starts disabled)", copy)
        .add("POST", "/pushes/{id}/enable", "Enable (a due push is sent)", enable)
        .add("POST", "/pushes/{id}/disable", "Disable (nothing more is sent)", disable)
        .add("GET", "/pushes/{id}/deliveries", "Per-recipient delivery status", deliveries)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushBody {
    title: String,
    channel: String,
    account: String,
    #[serde(default)]
    content: Content,
    #[serde(default)]
    targets: Targets,
    schedule: Option<Schedule>,
    #[serde(default)]
    enabled: Option<bool>,
}

async fn checked(app: &App, caller: &Caller, b: PushBody, push: &mut Push) -> std::result::Result<(), ApiError> {
    push.title = text("title", &b.title, 200)?;
    let account = app
        .deps
        .backends
        .config
        .account(&caller.tenant, &b.account)
        .await?
        .ok_or_else(|| ApiError::unknown("unknown_account", "account", format!("no sender account {:?}", b.account)))?;
    if account.plugin != b.channel {
        return Err(ApiError::unknown(
            "account_channel",
            "account",
            format!("account {:?} sends on {}, not {}", b.account, account.plugin, b.channel),
        ));
    }
    let mut content = b.content;
    content.html = content.html.as_deref().map(sanitize_html).filter(|h| !h.trim().is_empty());
    if b.channel == "email" {
        text("content.subject", content.subject.as_deref().unwrap_or(""), 500)?;
        if content.html.is_none() && content.text.as_deref().is_none_or(|t| t.trim().is_empty()) {
            return Err(ApiError::invalid("content.html", "write the message"));
        }
    } else {
        content.html = None;
        text("content.text", content.text.as_deref().unwrap_or(""), 20_000)?;
    }
    herald_core::render::Compiled::new(&content).map_err(|e| ApiError::invalid("content", e.to_string()))?;
    if b.targets.is_empty() {
        return Err(ApiError::invalid("targets", "pick users, org units or upload a list"));
    }
    // Raw addresses are checked as the gateway checks them at ingest.
    if let Some(plugin) = app.deps.plugins.get(&b.channel) {
        for (i, e) in b.targets.list.iter().enumerate() {
            let to = e.to.trim();
            if e.channel.as_deref().is_none_or(|c| c == b.channel) && !to.is_empty() {
                plugin.recipients.check(to).map_err(|why| ApiError::invalid(format!("targets.list[{i}].to"), format!("{why}: {to:?}")))?;
            }
        }
    }
    let schedule = b.schedule.unwrap_or(Schedule::now());
    match (schedule.mode.as_str(), schedule.at) {
        ("now", _) => {}
        ("cron", _) => {
            schedule.recurrence()?;
        }
        ("at", Some(t)) if t.timestamp_millis() > herald_core::now_ms() => {}
        ("at", _) => return Err(ApiError::invalid("schedule.at", "pick a time in the future")),
        _ => return Err(ApiError::invalid("schedule.mode", "\"now\", \"at\" or \"cron\"")),
    }
    push.channel = b.channel;
    push.account = b.account;
    push.content = content;
    push.targets = b.targets;
    push.schedule = schedule;
    if let Some(e) = b.enabled {
        push.enabled = e;
    }
    push.updated_at = herald_core::now_ms();
    Ok(())
}
async fn visible(app: &App, caller: &Caller, id: &str) -> std::result::Result<Push, ApiError> {
    let p: Option<Push> = caller.repo(app).get(PUSH, id).await?;
    p.filter(|p| caller.sees_unit(&p.unit)).ok_or_else(|| ApiError::not_found("push", "id"))
}

async fn list(State(app): State<Arc<App>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Response> {
    caller.require(Permission::PushView)?;
    let mut pushes: Vec<Push> = caller.repo(&app).list(PUSH).await?;
    pushes.retain(|p| {
        caller.sees_unit(&p.unit)
            && ListQuery::matches(&q.number, &p.number)
            && ListQuery::matches(&q.title, &p.title)
            && q.status.as_deref().filter(|s| !s.is_empty()).is_none_or(|s| s == p.status())
    });
    pushes.sort_by(|a, b| b.number.cmp(&a.number));
    Ok(axum::Json(q.page(pushes.iter().map(Push::view).collect())).into_response())
}

async fn create(State(app): State<Arc<App>>, caller: Caller, Body(b): Body<PushBody>) -> Result<Response> {
    caller.require(Permission::PushEdit)?;
    let now = herald_core::now_ms();
    let mut push = Push::draft(new_id(), caller.user.unit.clone(), caller.user.name.clone(), now);
    checked(&app, &caller, b, &mut push).await?;
    if push.enabled {
        caller.require(Permission::PushSend)?;
    }
    push.number = caller.repo(&app).next_number("P").await?;
    // Sending stores the push; a push that cannot be sent is not stored.
    if !send_if_due(&app, &caller.tenant, &mut push).await? {
        caller.repo(&app).put(PUSH, &push.id, &push).await?;
    }
    Ok(created(push.view()))
}

async fn get(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::PushView)?;
    Ok(axum::Json(visible(&app, &caller, &id).await?.view()).into_response())
}

async fn update(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Body(b): Body<PushBody>) -> Result<Response> {
    caller.require(Permission::PushEdit)?;
    let mut push = visible(&app, &caller, &id).await?;
    if push.message_id.is_some() {
        return Err(conflict("sent", "this push was sent; copy it to send again").into());
    }
    checked(&app, &caller, b, &mut push).await?;
    if push.enabled {
        caller.require(Permission::PushSend)?;
    }
    check_sendable(&app, &caller.tenant, &push).await?;
    // Written over the push as stored now: refused if it was sent since it
    // was read; a run of a recurring push recorded meanwhile is kept.
    let repo = caller.repo(&app);
    let saved = repo.update::<Push>(PUSH, &id, |p| {
        if p.message_id.is_some() {
            return Err(conflict("sent", "this push was sent; copy it to send again"));
        }
        *p = push.edited_over(p);
        Ok(())
    });
    let mut push = saved.await?.ok_or_else(|| ApiError::not_found("push", "id"))?;
    send_if_due(&app, &caller.tenant, &mut push).await?;
    Ok(axum::Json(push.view()).into_response())
}

async fn delete(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::PushEdit)?;
    let push = visible(&app, &caller, &id).await?;
    if push.enabled {
        return Err(conflict("enabled", "disable the push before deleting it").into());
    }
    caller.repo(&app).delete(PUSH, &id).await?;
    Ok(no_content())
}

async fn copy(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require(Permission::PushEdit)?;
    let orig = visible(&app, &caller, &id).await?;
    let now = herald_core::now_ms();
    // What it sends, starting disabled; a time already past becomes "now".
    let past = orig.schedule.mode == "at" && orig.schedule.at.is_some_and(|t| t.timestamp_millis() <= now);
    let push = Push {
        number: caller.repo(&app).next_number("P").await?,
        title: format!("{} (copy)", orig.title).chars().take(200).collect(),
        channel: orig.channel,
        account: orig.account,
        content: orig.content,
        targets: orig.targets,
        schedule: if past { Schedule::now() } else { orig.schedule },
        enabled: false,
        ..Push::draft(new_id(), caller.user.unit.clone(), caller.user.name.clone(), now)
    };
    caller.repo(&app).put(PUSH, &push.id, &push).await?;
    Ok(created(push.view()))
}

async fn set_enabled(app: &App, caller: &Caller, id: &str, enabled: bool) -> Result<Response> {
    caller.require(Permission::PushSend)?;
    let mut preview = visible(app, caller, id).await?;
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
    Ok(axum::Json(push.view()).into_response())
}

async fn enable(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    set_enabled(&app, &caller, &id, true).await
}

async fn disable(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    set_enabled(&app, &caller, &id, false).await
}

async fn deliveries(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Query(q): Query<ListQuery>) -> Result<Response> {
    caller.require(Permission::PushView)?;
    let push = visible(&app, &caller, &id).await?;
    let mut items = vec![];
    for mid in push.messages() {
        if let Some(view) = app.deps.backends.store.message(&caller.tenant, &mid).await? {
            items.extend(view.deliveries.iter().map(|d| {
                json!({"recipient": d.recipient, "status": d.status, "attempts": d.attempts, "detail": d.detail,
                       "cost_minor": d.cost_minor, "updated_at": rfc3339(d.updated_at)})
            }));
        }
    }
    let total = items.len();
    let items: Vec<_> = items.into_iter().skip(q.offset.unwrap_or(0)).take(q.limit.unwrap_or(500).clamp(1, 5000)).collect();
    Ok(axum::Json(json!({"message_id": push.message_id, "message_ids": push.messages(), "deliveries": items, "total": total})).into_response())
}

async fn upload(State(app): State<Arc<App>>, caller: Caller, mut form: Multipart) -> Result<Response> {
    caller.require(Permission::PushEdit)?;
    let bad = |m: String| ApiError::invalid("file", m);
    let limit = app.cfg.max_upload_bytes;
    let too_large = || ApiError::new(ErrorKind::TooLarge, "too_large", format!("at most {limit} bytes")).with_field("file");
    // A body past the service's limit fails while it is read: that is a 413 too.
    let read_err = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE { too_large() } else { bad(e.body_text()) }
    };
    while let Some(mut field) = form.next_field().await.map_err(read_err)? {
        if field.name() != Some("file") {
            continue;
        }
        let kind = crate::excel::kind(field.file_name().unwrap_or("")).map_err(bad)?;
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
            Ok(json) => Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], json).into_response()),
            Err(crate::upload_worker::Failure::Refused(m)) => Err(bad(m).into()),
            Err(crate::upload_worker::Failure::Died(m)) => Err(ApiError::unknown("unreadable_file", "file", m).into()),
            Err(crate::upload_worker::Failure::Busy) => Err(ApiError::unavailable("every spreadsheet parser is busy: try again shortly").into()),
        };
    }
    Err(bad("send the spreadsheet in the form field `file`".into()).into())
}
