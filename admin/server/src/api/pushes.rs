//! Message pushes (消息推送): created in the console, published to the queue
//! like any API request (the admin never sends), on their own scheduler.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Multipart, Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use herald_core::directory::{self, Targets, UNIT, USER, Unit, User};
use herald_core::error::{ApiError, ErrorKind};
use herald_core::model::{Content, Message, Work};
use herald_core::seams::Enqueue;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Body, ListQuery, Result, Routes, conflict, created, no_content, text};
use crate::app::App;
use crate::auth::Caller;
use herald_core::docs::{Repo, new_id};

pub const PUSH: &str = "push";
/// Most recipients one push may have.
const MAX_PUSH_RECIPIENTS: usize = 100_000;

pub fn routes(r: Routes) -> Routes {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// "now", "at" (once, at `at`) or "cron" (recurring, by `cron` in `time_zone`).
    pub mode: String,
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// Cron expression: "min hour day month weekday" (or with leading seconds), e.g. "0 9 * * Mon-Fri".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA zone of the cron expression; default Asia/Shanghai.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl Schedule {
    fn now() -> Schedule {
        Schedule { mode: "now".into(), at: None, cron: None, time_zone: None }
    }

    /// The parsed recurrence of a "cron" schedule; the error names the field.
    fn recurrence(&self) -> std::result::Result<(cron::Schedule, chrono_tz::Tz), ApiError> {
        let expr = self.cron.as_deref().map(str::trim).unwrap_or("");
        let full = if expr.split_whitespace().count() == 5 { format!("0 {expr}") } else { expr.to_string() };
        let schedule = full.parse::<cron::Schedule>().map_err(|e| ApiError::invalid("schedule.cron", format!("not a cron expression: {e}")))?;
        let tz = self.time_zone.as_deref().unwrap_or("Asia/Shanghai");
        let tz = tz.parse::<chrono_tz::Tz>().map_err(|_| ApiError::invalid("schedule.time_zone", format!("unknown time zone {tz:?}")))?;
        Ok((schedule, tz))
    }

    /// The latest occurrence after `after` and at or before `now` (missed ones collapse into it).
    fn occurrence(&self, after: i64, now: i64) -> Option<i64> {
        let (schedule, tz) = self.recurrence().ok()?;
        let start = DateTime::from_timestamp_millis(after)?.with_timezone(&tz);
        schedule.after(&start).map(|t| t.timestamp_millis()).take_while(|t| *t <= now).last()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Push {
    pub id: String,
    pub number: String,
    pub title: String,
    pub channel: String,
    pub account: String,
    pub content: Content,
    pub targets: Targets,
    pub schedule: Schedule,
    pub enabled: bool,
    /// The first (or only) message the push was published as…
    #[serde(default)]
    pub message_id: Option<String>,
    /// …and all of them (a list larger than the gateway's per-message limit is split).
    #[serde(default)]
    pub message_ids: Vec<String>,
    #[serde(default)]
    pub sent_at: Option<i64>,
    /// Recurring pushes: the occurrence last sent, and how many were.
    #[serde(default)]
    pub last_run: Option<i64>,
    #[serde(default)]
    pub runs: u32,
    #[serde(default)]
    pub recipients: usize,
    /// Directory users without an address on the channel when it was sent.
    #[serde(default)]
    pub skipped: Vec<String>,
    /// The creator's org unit (data permission).
    pub unit: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What publishing a push produced.
struct Sent {
    recurring: bool,
    occurrence: i64,
    message_ids: Vec<String>,
    at: i64,
    recipients: usize,
    skipped: Vec<String>,
}

impl Push {
    /// A new, empty push ("now", enabled) for `checked` to fill in.
    fn draft(id: String, unit: String, created_by: String, now: i64) -> Push {
        Push {
            id,
            number: String::new(),
            title: String::new(),
            channel: String::new(),
            account: String::new(),
            content: Content::default(),
            targets: Targets::default(),
            schedule: Schedule::now(),
            enabled: true,
            message_id: None,
            message_ids: vec![],
            sent_at: None,
            last_run: None,
            runs: 0,
            recipients: 0,
            skipped: vec![],
            unit,
            created_by,
            created_at: now,
            updated_at: now,
        }
    }

    /// Note a send (once per occurrence of a recurring push).
    fn record(&mut self, s: &Sent) {
        if s.recurring {
            if self.last_run.is_some_and(|l| l >= s.occurrence) {
                return;
            }
            self.last_run = Some(s.occurrence);
            self.runs += 1;
        } else {
            self.message_id = s.message_ids.first().cloned();
        }
        self.message_ids = s.message_ids.clone();
        self.sent_at = Some(s.at);
        self.recipients = s.recipients;
        self.skipped = s.skipped.clone();
    }

    /// This push as edited, keeping what sending recorded in `stored`.
    fn edited_over(&self, stored: &Push) -> Push {
        Push {
            message_id: stored.message_id.clone(),
            message_ids: stored.message_ids.clone(),
            sent_at: stored.sent_at,
            last_run: stored.last_run,
            runs: stored.runs,
            recipients: stored.recipients,
            skipped: stored.skipped.clone(),
            ..self.clone()
        }
    }

    pub fn status(&self) -> &'static str {
        match (self.message_id.is_some(), self.enabled, self.schedule.mode.as_str()) {
            (true, ..) => "sent",
            (false, false, _) => "disabled",
            (false, true, "at") => "scheduled",
            (false, true, "cron") => "recurring",
            _ => "draft",
        }
    }

    fn view(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["status"] = json!(self.status());
        v
    }

    /// When due: the time the send stands for (now, the `at` time, or a cron occurrence).
    fn due(&self, now: i64) -> Option<i64> {
        if !self.enabled || self.message_id.is_some() {
            return None;
        }
        match self.schedule.mode.as_str() {
            "at" => self.schedule.at.map(|t| t.timestamp_millis()).filter(|t| *t <= now),
            "cron" => self.schedule.occurrence(self.last_run.unwrap_or(self.created_at - 1), now),
            _ => Some(now),
        }
    }
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

/// Rich text is sanitized (no scripts, handlers, javascript: URLs).
pub fn sanitize_html(html: &str) -> String {
    ammonia::clean(html)
}

async fn checked(app: &App, caller: &Caller, b: PushBody, push: &mut Push) -> std::result::Result<(), ApiError> {
    push.title = text("title", &b.title, 200)?;
    let account = app
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
    if let Some(plugin) = app.plugins.get(&b.channel) {
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

/// Who the push reaches now; an error when nobody, or too many.
async fn audience(app: &App, tenant: &str, push: &Push) -> std::result::Result<directory::Expanded, ApiError> {
    let repo = Repo::new(app.config.as_ref(), tenant);
    let units: Vec<Unit> = repo.list(UNIT).await?;
    let users: Vec<User> = repo.list(USER).await?;
    // A directory user whose address does not fit the channel (checked as the
    // gateway checks addresses at ingest) is skipped and listed, never sent a
    // failing delivery. Raw list entries were checked when the push was saved.
    let rule = app.plugins.get(&push.channel).map(|p| p.recipients.clone());
    let mut expanded = directory::expand(&push.targets, &units, &users, &push.channel);
    if let Some(rule) = &rule {
        let mut kept = directory::Expanded { skipped: std::mem::take(&mut expanded.skipped), ..Default::default() };
        for (r, user) in expanded.recipients.into_iter().zip(expanded.user_ids) {
            match user {
                Some(id) if rule.check(&r.to).is_err() => kept.skipped.push(id),
                user => {
                    kept.recipients.push(r);
                    kept.user_ids.push(user);
                }
            }
        }
        expanded = kept;
    }
    if expanded.recipients.is_empty() {
        return Err(
            ApiError::new(ErrorKind::Unprocessable, "no_recipients", "none of the targets has an address on this channel").with_field("targets")
        );
    }
    if expanded.recipients.len() > MAX_PUSH_RECIPIENTS {
        return Err(ApiError::invalid("targets", format!("{} recipients; at most {MAX_PUSH_RECIPIENTS}", expanded.recipients.len())));
    }
    Ok(expanded)
}

/// Before an edit or an enable is stored: a push it makes due must be
/// sendable, else the request fails and nothing is stored (as for a new push).
async fn check_sendable(app: &App, tenant: &str, push: &Push) -> std::result::Result<(), ApiError> {
    if push.due(herald_core::now_ms()).is_some() {
        audience(app, tenant, push).await?;
    }
    Ok(())
}

/// Publish the push's message if it is due; idempotent (the message id is
/// derived from the push id, so a repeated publish is recognised downstream).
pub async fn send_if_due(app: &App, tenant: &str, push: &mut Push) -> std::result::Result<bool, ApiError> {
    let now = herald_core::now_ms();
    let Some(occurrence) = push.due(now) else {
        return Ok(false);
    };
    let recurring = push.schedule.mode == "cron";
    let repo = Repo::new(app.config.as_ref(), tenant);
    let expanded = audience(app, tenant, push).await?;
    // Large lists go out as several messages within the gateway's per-message limit.
    let per_message = herald_core::validate::Limits::default().max_recipients.max(1);
    let total = expanded.recipients.len();
    let mut ids = vec![];
    for (i, chunk) in expanded.recipients.chunks(per_message).enumerate() {
        let run = if recurring { format!("@{occurrence}") } else { String::new() };
        let seed = if i == 0 { format!("herald-push:{tenant}:{}{run}", push.id) } else { format!("herald-push:{tenant}:{}{run}:{i}", push.id) };
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_bytes()).simple().to_string();
        let message = Message {
            id: id.clone(),
            tenant: tenant.to_string(),
            channel: push.channel.clone(),
            account: push.account.clone(),
            content: push.content.clone(),
            template: None,
            variables: Default::default(),
            recipients: chunk.to_vec(),
            metadata: [("push".to_string(), push.number.clone())].into(),
            accepted_at: now,
            send_at: None,
        };
        app.store.record_message(&message).await?;
        app.queue.publish(vec![Enqueue { key: tenant.to_string(), not_before: now, work: Work::Message(message) }]).await?;
        ids.push(id);
    }
    let sent = Sent { recurring, occurrence, message_ids: ids, at: now, recipients: total, skipped: expanded.skipped };
    push.record(&sent);
    // Only what this send changed, merged into the stored push: an edit or a
    // disable made meanwhile stays. A push created by this request is stored whole.
    let stored = repo.update::<Push>(PUSH, &push.id, |p| {
        p.record(&sent);
        Ok(())
    });
    if stored.await?.is_none() {
        repo.put(PUSH, &push.id, push).await?;
    }
    tracing::info!(%tenant, push = %push.number, messages = push.message_ids.len(), recipients = push.recipients, "push published");
    Ok(true)
}

/// Publishes scheduled pushes when due.
pub async fn scheduler(app: Arc<App>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Err(e) = publish_due(&app).await {
            tracing::warn!(error = %e.message, "scheduled pushes: will retry");
        }
    }
}

async fn publish_due(app: &App) -> std::result::Result<(), ApiError> {
    let now = herald_core::now_ms();
    for t in app.config.tenants().await? {
        let pushes: Vec<Push> = Repo::new(app.config.as_ref(), &t.id).list(PUSH).await?;
        for mut p in pushes.into_iter().filter(|p| p.schedule.mode != "now" && p.due(now).is_some()) {
            if let Err(e) = send_if_due(app, &t.id, &mut p).await {
                tracing::warn!(tenant = %t.id, push = %p.number, error = %e.message, "scheduled push not sent");
            }
        }
    }
    Ok(())
}

async fn visible(app: &App, caller: &Caller, id: &str) -> std::result::Result<Push, ApiError> {
    let p: Option<Push> = caller.repo(app).get(PUSH, id).await?;
    p.filter(|p| caller.sees_unit(&p.unit)).ok_or_else(|| ApiError::not_found("push", "id"))
}

async fn list(State(app): State<Arc<App>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Response> {
    caller.require("push.view")?;
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
    caller.require("push.edit")?;
    let now = herald_core::now_ms();
    let mut push = Push::draft(new_id(), caller.user.unit.clone(), caller.user.name.clone(), now);
    checked(&app, &caller, b, &mut push).await?;
    if push.enabled {
        caller.require("push.send")?;
    }
    push.number = caller.repo(&app).next_number("P").await?;
    // Sending stores the push; a push that cannot be sent is not stored.
    if !send_if_due(&app, &caller.tenant, &mut push).await? {
        caller.repo(&app).put(PUSH, &push.id, &push).await?;
    }
    Ok(created(push.view()))
}

async fn get(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require("push.view")?;
    Ok(axum::Json(visible(&app, &caller, &id).await?.view()).into_response())
}

async fn update(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Body(b): Body<PushBody>) -> Result<Response> {
    caller.require("push.edit")?;
    let mut push = visible(&app, &caller, &id).await?;
    if push.message_id.is_some() {
        return Err(conflict("sent", "this push was sent; copy it to send again").into());
    }
    checked(&app, &caller, b, &mut push).await?;
    if push.enabled {
        caller.require("push.send")?;
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
    caller.require("push.edit")?;
    let push = visible(&app, &caller, &id).await?;
    if push.enabled {
        return Err(conflict("enabled", "disable the push before deleting it").into());
    }
    caller.repo(&app).delete(PUSH, &id).await?;
    Ok(no_content())
}

async fn copy(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
    caller.require("push.edit")?;
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
    caller.require("push.send")?;
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

impl Push {
    /// Every message the push was published as.
    pub fn messages(&self) -> Vec<String> {
        if self.message_ids.is_empty() { self.message_id.iter().cloned().collect() } else { self.message_ids.clone() }
    }
}

async fn deliveries(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>, Query(q): Query<ListQuery>) -> Result<Response> {
    caller.require("push.view")?;
    let push = visible(&app, &caller, &id).await?;
    let mut items = vec![];
    for mid in push.messages() {
        if let Some(view) = app.store.message(&caller.tenant, &mid).await? {
            items.extend(view.deliveries.iter().map(|d| {
                json!({"recipient": d.recipient, "status": d.status, "attempts": d.attempts, "detail": d.detail,
                       "cost_minor": d.cost_minor, "updated_at": super::session::rfc3339(d.updated_at)})
            }));
        }
    }
    let total = items.len();
    let items: Vec<_> = items.into_iter().skip(q.offset.unwrap_or(0)).take(q.limit.unwrap_or(500).clamp(1, 5000)).collect();
    Ok(axum::Json(json!({"message_id": push.message_id, "message_ids": push.messages(), "deliveries": items, "total": total})).into_response())
}

async fn upload(State(app): State<Arc<App>>, caller: Caller, mut form: Multipart) -> Result<Response> {
    caller.require("push.edit")?;
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
        return match crate::upload_worker::parse(kind, bytes, max).await {
            Ok(json) => Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], json).into_response()),
            Err(crate::upload_worker::Failure::Refused(m)) => Err(bad(m).into()),
            Err(crate::upload_worker::Failure::Died(m)) => Err(ApiError::unknown("unreadable_file", "file", m).into()),
            Err(crate::upload_worker::Failure::Busy) => Err(ApiError::unavailable("every spreadsheet parser is busy: try again shortly").into()),
        };
    }
    Err(bad("send the spreadsheet in the form field `file`".into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(mode: &str) -> Push {
        let mut p = Push::draft("p".into(), "root".into(), "ann".into(), 1);
        p.schedule.mode = mode.into();
        p
    }

    fn sent(recurring: bool, occurrence: i64) -> Sent {
        Sent { recurring, occurrence, message_ids: vec![format!("m{occurrence}")], at: occurrence, recipients: 2, skipped: vec![] }
    }

    #[test]
    fn an_occurrence_recorded_twice_counts_once() {
        let mut p = push("cron");
        p.record(&sent(true, 100));
        p.record(&sent(true, 100));
        p.record(&sent(true, 50));
        assert_eq!((p.runs, p.last_run, p.message_id.clone()), (1, Some(100), None));
        p.record(&sent(true, 200));
        assert_eq!((p.runs, p.last_run, p.message_ids.clone()), (2, Some(200), vec!["m200".to_string()]));
        let mut once = push("now");
        once.record(&sent(false, 7));
        assert_eq!((once.message_id.as_deref(), once.status()), (Some("m7"), "sent"));
    }

    #[test]
    fn an_edit_keeps_the_runs_the_scheduler_recorded_meanwhile() {
        let mut stored = push("cron");
        stored.record(&sent(true, 100));
        let mut edited = push("cron");
        edited.title = "new title".into();
        edited.enabled = false;
        let merged = edited.edited_over(&stored);
        assert_eq!((merged.title.as_str(), merged.enabled), ("new title", false), "the edit");
        assert_eq!((merged.runs, merged.last_run, merged.message_ids.clone()), (1, Some(100), vec!["m100".to_string()]), "the run");
    }
}
