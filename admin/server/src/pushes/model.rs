//! The push model: what a push is, when it is due, and what sending it recorded.

use chrono::DateTime;
use herald_core::directory::Targets;
use herald_core::error::ApiError;
use herald_core::model::Content;
use herald_core::provider_template::ProviderTemplate;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// When a push is sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"mode": "cron", "cron": "0 9 * * Mon-Fri", "time_zone": "Asia/Shanghai"}))]
pub struct Schedule {
    /// "now", "at" (once, at `at`) or "cron" (recurring, by `cron` in `time_zone`).
    #[schema(pattern = "^(now|at|cron)$")]
    pub mode: String,
    /// Mode "at": Unix milliseconds (an RFC 3339 string is accepted too).
    #[serde(default, deserialize_with = "millis_or_rfc3339")]
    pub at: Option<i64>,
    /// Cron expression, Unix semantics: "min hour day-of-month month day-of-week" (or with leading
    /// seconds); day of week 0 or 7 = Sunday, so "0 9 * * 1-5" is 09:00 Monday to Friday; names
    /// (Mon-Fri, Jan) are accepted; when both days are restricted either one matches (as cron does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub cron: Option<String>,
    /// IANA zone of the cron expression; default Asia/Shanghai.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = crate::api::schema::TimeZone)]
    pub time_zone: Option<String>,
}

/// Unix milliseconds, or an RFC 3339 string (pushes stored before times were
/// milliseconds, and older clients).
fn millis_or_rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Time {
        Millis(i64),
        Text(String),
    }
    match Option::<Time>::deserialize(d)? {
        None => Ok(None),
        Some(Time::Millis(ms)) => Ok(Some(ms)),
        Some(Time::Text(s)) => DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.timestamp_millis()))
            .map_err(|e| serde::de::Error::custom(format!("expected Unix milliseconds or an RFC 3339 time: {e}"))),
    }
}

impl Schedule {
    pub fn now() -> Schedule {
        Schedule { mode: "now".into(), at: None, cron: None, time_zone: None }
    }

    /// The parsed recurrence of a "cron" schedule (Unix cron semantics, by
    /// the croner crate); the error names the field.
    pub fn recurrence(&self) -> std::result::Result<(croner::Cron, chrono_tz::Tz), ApiError> {
        let expr = self.cron.as_deref().map(str::trim).unwrap_or("");
        let fields = expr.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(ApiError::invalid("schedule.cron", herald_core::msg!("cron.fields", fields = fields)));
        }
        let parser = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Optional).year(croner::parser::Year::Disallowed).build();
        let schedule = parser.parse(expr).map_err(|e| ApiError::invalid("schedule.cron", herald_core::msg!("cron.invalid", detail = e)))?;
        let tz = self.time_zone.as_deref().unwrap_or("Asia/Shanghai");
        let tz = tz
            .parse::<chrono_tz::Tz>()
            .map_err(|_| ApiError::invalid("schedule.time_zone", herald_core::msg!("cron.time_zone", tz = format!("{tz:?}"))))?;
        Ok((schedule, tz))
    }

    /// The latest occurrence after `after` and at or before `now` (missed ones collapse into it).
    pub fn occurrence(&self, after: i64, now: i64) -> Option<i64> {
        let (schedule, tz) = self.recurrence().ok()?;
        let now = DateTime::from_timestamp_millis(now)?.with_timezone(&tz);
        let last = schedule.find_previous_occurrence(&now, true).ok()?.timestamp_millis();
        (last > after).then_some(last)
    }

    /// The next `n` occurrences after `now` (Unix milliseconds); none unless recurring.
    pub fn next_runs(&self, now: i64, n: usize) -> Vec<i64> {
        let Some((schedule, tz)) = (self.mode == "cron").then(|| self.recurrence().ok()).flatten() else { return Vec::new() };
        let Some(start) = DateTime::from_timestamp_millis(now).map(|t| t.with_timezone(&tz)) else { return Vec::new() };
        schedule.iter_after(start).take(n).map(|t| t.timestamp_millis()).collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Push {
    pub id: String,
    pub number: String,
    pub title: String,
    pub channel: String,
    pub account: String,
    pub content: Content,
    /// What a template-based channel sends instead of the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_template: Option<ProviderTemplate>,
    pub targets: Targets,
    pub schedule: Schedule,
    pub enabled: bool,
    /// The first (or only) message the push was published as (null until sent; recurring pushes keep it null)…
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
    /// Recipients of the last send.
    #[serde(default)]
    pub recipients: usize,
    /// Every send, oldest first (at most [`MAX_SENDS`]; a recurring push's
    /// oldest runs go first): each keeps its own messages, so its own deliveries.
    #[serde(default)]
    pub sends: Vec<SendRecord>,
    /// Directory users without an address on the channel when it was sent.
    #[serde(default)]
    pub skipped: Vec<String>,
    /// The creator's org unit (data permission).
    pub unit: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A push as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "01J9Z8Q4K7", "number": "P000001", "title": "Maintenance tonight", "channel": "sms", "account": "sms-main",
    "content": {"text": "Hello {{ name }}, maintenance starts at 22:00."}, "targets": {"users": [], "units": ["01J9Z8Q4K0"], "list": []},
    "schedule": {"mode": "at", "at": 1830301200000u64}, "enabled": true, "message_id": null, "message_ids": [], "sent_at": null,
    "last_run": null, "runs": 0, "recipients": 0, "skipped": [], "unit": "01J9Z8Q4K0", "created_by": "Ann Lee",
    "created_at": 1795627116051u64, "updated_at": 1795627116051u64, "status": "scheduled", "next_runs": []}))]
pub struct PushView {
    #[serde(flatten)]
    push: Push,
    /// draft, scheduled, recurring, sent or disabled.
    #[schema(pattern = "^(draft|scheduled|recurring|sent|disabled)$")]
    status: &'static str,
    /// Recurring pushes: the next five occurrences, Unix milliseconds (UTC); empty otherwise.
    next_runs: Vec<i64>,
}

/// How many coming occurrences a recurring push shows.
pub const NEXT_RUNS: usize = 5;

/// One send of a push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SendRecord {
    /// Unix milliseconds.
    pub at: i64,
    /// The messages it was published as (`GET /pushes/{id}/deliveries?send=i` lists their deliveries).
    pub message_ids: Vec<String>,
    pub recipients: usize,
}

/// Sends a push keeps.
pub const MAX_SENDS: usize = 100;

/// What publishing a push produced.
pub struct Sent {
    pub recurring: bool,
    pub occurrence: i64,
    pub message_ids: Vec<String>,
    pub at: i64,
    pub recipients: usize,
    pub skipped: Vec<String>,
}

impl Push {
    /// A new, empty push ("now", enabled) for `checked` to fill in.
    pub fn draft(id: String, unit: String, created_by: String, now: i64) -> Push {
        Push {
            id,
            number: String::new(),
            title: String::new(),
            channel: String::new(),
            account: String::new(),
            content: Content::default(),
            provider_template: None,
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
            sends: vec![],
            unit,
            created_by,
            created_at: now,
            updated_at: now,
        }
    }

    /// Note a send (once per occurrence of a recurring push).
    pub fn record(&mut self, s: &Sent) {
        if s.recurring {
            if self.last_run.is_some_and(|l| l >= s.occurrence) {
                return;
            }
            self.last_run = Some(s.occurrence);
            self.runs += 1;
        } else if self.sends.iter().any(|r| r.message_ids == s.message_ids) {
            return;
        } else if self.message_id.is_none() {
            self.message_id = s.message_ids.first().cloned();
        }
        self.sends.push(SendRecord { at: s.at, message_ids: s.message_ids.clone(), recipients: s.recipients });
        if self.sends.len() > MAX_SENDS {
            self.sends.drain(..self.sends.len() - MAX_SENDS);
        }
        self.message_ids = s.message_ids.clone();
        self.sent_at = Some(s.at);
        self.recipients = s.recipients;
        self.skipped = s.skipped.clone();
    }

    /// This push as edited, keeping what sending recorded in `stored`.
    pub fn edited_over(&self, stored: &Push) -> Push {
        Push {
            message_id: stored.message_id.clone(),
            message_ids: stored.message_ids.clone(),
            sent_at: stored.sent_at,
            last_run: stored.last_run,
            runs: stored.runs,
            recipients: stored.recipients,
            skipped: stored.skipped.clone(),
            sends: stored.sends.clone(),
            ..self.clone()
        }
    }

    /// The messages of every send at or after `since` (pushes sent before
    /// sends were kept: their last send's).
    pub fn messages_since(&self, since: i64) -> Vec<String> {
        if self.sends.is_empty() {
            return self.messages(None).unwrap_or_default();
        }
        self.sends.iter().filter(|s| s.at >= since).flat_map(|s| s.message_ids.iter().cloned()).collect()
    }

    /// The messages of send `i` (`None`: the latest), if there is such a send.
    pub fn messages(&self, i: Option<usize>) -> Option<Vec<String>> {
        match i {
            Some(i) => self.sends.get(i).map(|s| s.message_ids.clone()),
            // Pushes sent before sends were kept have only these.
            None if self.message_ids.is_empty() => Some(self.message_id.iter().cloned().collect()),
            None => Some(self.message_ids.clone()),
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

    /// The push as the API shows it at `now`.
    pub fn view(&self, now: i64) -> PushView {
        let next_runs = if self.status() == "recurring" { self.schedule.next_runs(now, NEXT_RUNS) } else { Vec::new() };
        PushView { push: self.clone(), status: self.status(), next_runs }
    }

    /// When due: the time the send stands for (now, the `at` time, or a cron occurrence).
    pub fn due(&self, now: i64) -> Option<i64> {
        if !self.enabled || self.message_id.is_some() {
            return None;
        }
        match self.schedule.mode.as_str() {
            "at" => self.schedule.at.filter(|t| *t <= now),
            "cron" => self.schedule.occurrence(self.last_run.unwrap_or(self.created_at - 1), now),
            _ => Some(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(expr: &str) -> Schedule {
        Schedule { mode: "cron".into(), at: None, cron: Some(expr.into()), time_zone: Some("Asia/Shanghai".into()) }
    }

    /// 2026-12-06 (a Sunday) 12:00 in Shanghai.
    const SUNDAY_NOON: i64 = 1_796_529_600_000;

    fn local(ms: i64) -> String {
        DateTime::from_timestamp_millis(ms).unwrap().with_timezone(&chrono_tz::Asia::Shanghai).format("%a %H:%M").to_string()
    }

    #[test]
    fn weekdays_are_numbered_as_unix_cron_does() {
        assert_eq!(local(SUNDAY_NOON), "Sun 12:00");
        // 1-5 is Monday to Friday (the cron crate made it Sunday to Thursday).
        let runs: Vec<String> = cron("0 9 * * 1-5").next_runs(SUNDAY_NOON, 5).into_iter().map(local).collect();
        assert_eq!(runs, ["Mon 09:00", "Tue 09:00", "Wed 09:00", "Thu 09:00", "Fri 09:00"]);
        let names: Vec<String> = cron("0 9 * * Mon-Fri").next_runs(SUNDAY_NOON, 5).into_iter().map(local).collect();
        assert_eq!(names, runs);
        // 0 and 7 are both Sunday.
        for sunday in ["30 8 * * 0", "30 8 * * 7", "30 8 * * SUN"] {
            let runs: Vec<String> = cron(sunday).next_runs(SUNDAY_NOON, 2).into_iter().map(local).collect();
            assert_eq!(runs, ["Sun 08:30", "Sun 08:30"], "{sunday}");
        }
        // Seconds first are accepted too.
        assert_eq!(cron("0 0 9 * * 1-5").next_runs(SUNDAY_NOON, 1).into_iter().map(local).collect::<Vec<_>>(), ["Mon 09:00"]);
    }

    #[test]
    fn a_bad_expression_names_the_field() {
        for bad in ["", "0 9 * *", "0 9 * * 1-5 2027 x", "61 9 * * *", "0 9 * * 8", "every day"] {
            let e = cron(bad).recurrence().unwrap_err();
            assert_eq!(e.field.as_deref(), Some("schedule.cron"), "{bad:?}");
        }
        let mut zone = cron("0 9 * * *");
        zone.time_zone = Some("Mars/Olympus".into());
        assert_eq!(zone.recurrence().unwrap_err().field.as_deref(), Some("schedule.time_zone"));
    }

    #[test]
    fn missed_occurrences_collapse_into_the_latest() {
        let s = cron("*/10 * * * *");
        let hour = 3_600_000;
        // Days behind: one send, for the latest occurrence at or before now.
        let now = SUNDAY_NOON + 5 * 60_000;
        assert_eq!(s.occurrence(SUNDAY_NOON - 72 * hour, now), Some(SUNDAY_NOON));
        // Already sent for it: nothing due.
        assert_eq!(s.occurrence(SUNDAY_NOON, now), None);
    }

    #[test]
    fn a_push_sent_again_keeps_each_send() {
        let mut p = push("now");
        let first = Sent { recurring: false, occurrence: 10, message_ids: vec!["m1".into()], at: 10, recipients: 2, skipped: vec![] };
        let again = Sent { recurring: false, occurrence: 20, message_ids: vec!["m2".into(), "m3".into()], at: 20, recipients: 2, skipped: vec![] };
        p.record(&first);
        p.record(&first); // recorded twice (the in-memory push and the stored one): counted once
        p.record(&again);
        assert_eq!(p.sends.iter().map(|s| s.at).collect::<Vec<_>>(), [10, 20]);
        assert_eq!(p.message_id.as_deref(), Some("m1"), "the first message stays the first");
        assert_eq!(p.messages(None), Some(vec!["m2".to_string(), "m3".to_string()]), "the latest send by default");
        assert_eq!(p.messages(Some(0)), Some(vec!["m1".to_string()]));
        assert_eq!(p.messages(Some(2)), None);
        assert_eq!(p.messages_since(15), ["m2", "m3"]);
        for i in 0..(MAX_SENDS + 5) as i64 {
            p.record(&Sent { recurring: false, occurrence: 0, message_ids: vec![format!("x{i}")], at: 100 + i, recipients: 1, skipped: vec![] });
        }
        assert_eq!(p.sends.len(), MAX_SENDS, "the oldest sends go first");
        assert_eq!(p.sends.last().map(|s| s.at), Some(100 + (MAX_SENDS + 4) as i64));
    }

    #[test]
    fn only_recurring_pushes_show_next_runs() {
        let mut p = push("cron");
        p.schedule = cron("0 9 * * 1-5");
        assert_eq!(p.view(SUNDAY_NOON).next_runs.len(), NEXT_RUNS);
        p.enabled = false;
        assert!(p.view(SUNDAY_NOON).next_runs.is_empty());
        assert!(push("at").view(SUNDAY_NOON).next_runs.is_empty());
    }

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
