//! Reports (报表): deliveries sent / delivered / failed / acknowledged by
//! channel and day, per push and per action (from the deliveries of the
//! tenant's pushes and tiered-push incidents), and spend by channel and day
//! (from the ledger, which also covers sends made straight through the API).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use herald_core::model::{DeliveryStatus, LedgerKind, MessageView};
use herald_core::rbac::Permission;
use herald_core::tiered::{ACTION, Action, INCIDENT, Incident};
use serde::Serialize;
use serde_json::json;

use crate::auth::Caller;
use crate::pushes::{PUSH, Push};
use crate::state::App;
use crate::web::{BILL_OFFSET_MINUTES, LEDGER_WINDOW, Range, Result, Routes};

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.add("GET", "/reports/summary", "Deliveries and spend by channel and day, per push and per action (days=30)", summary)
}

/// At most this many pushes and incidents are read for one report.
const MAX_SOURCES: usize = 500;

#[derive(Debug, Default, Clone, Serialize)]
struct Counts {
    sent: u64,
    delivered: u64,
    failed: u64,
    acknowledged: u64,
    pending: u64,
    cost_minor: i64,
}

impl Counts {
    fn add(&mut self, status: DeliveryStatus, cost: i64) {
        match status {
            DeliveryStatus::Sent => self.sent += 1,
            DeliveryStatus::Delivered => (self.sent, self.delivered) = (self.sent + 1, self.delivered + 1),
            DeliveryStatus::Read => (self.sent, self.delivered, self.acknowledged) = (self.sent + 1, self.delivered + 1, self.acknowledged + 1),
            DeliveryStatus::Failed | DeliveryStatus::Dead => self.failed += 1,
            _ => self.pending += 1,
        }
        self.cost_minor += cost;
    }

    fn merge(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.failed += o.failed;
        self.acknowledged += o.acknowledged;
        self.pending += o.pending;
        self.cost_minor += o.cost_minor;
    }
}

fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms + i64::from(BILL_OFFSET_MINUTES) * 60_000)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

#[derive(Default)]
struct Tally {
    by_day: BTreeMap<(String, String), Counts>,
    by_channel: BTreeMap<String, Counts>,
}

impl Tally {
    /// Count a message's deliveries; returns its own counts.
    fn message(&mut self, view: &MessageView) -> Counts {
        let mut own = Counts::default();
        for d in &view.deliveries {
            own.add(d.status, d.cost_minor);
            self.by_day.entry((day(d.updated_at), view.channel.clone())).or_default().add(d.status, d.cost_minor);
            self.by_channel.entry(view.channel.clone()).or_default().add(d.status, d.cost_minor);
        }
        own
    }
}

async fn summary(State(app): State<Arc<App>>, caller: Caller, Query(r): Query<Range>) -> Result<Response> {
    caller.require(Permission::ReportsView)?;
    let days = r.days.unwrap_or(30).clamp(1, 366);
    let since = herald_core::now_ms() - days * 86_400_000;
    let repo = caller.repo(&app);
    let mut tally = Tally::default();

    let mut pushes: Vec<Push> = repo.list(PUSH).await?;
    pushes.retain(|p| caller.sees_unit(&p.unit) && p.sent_at.is_some_and(|t| t >= since));
    pushes.sort_by_key(|p| std::cmp::Reverse(p.sent_at));
    let mut per_push = vec![];
    for p in pushes.iter().take(MAX_SOURCES) {
        let mut own = Counts::default();
        for mid in p.messages() {
            if let Some(view) = app.deps.backends.store.message(&caller.tenant, &mid).await? {
                own.merge(&tally.message(&view));
            }
        }
        per_push.push(json!({"id": p.id, "number": p.number, "title": p.title, "channel": p.channel, "counts": own}));
    }

    let actions: Vec<Action> = repo.list(ACTION).await?;
    let mut incidents: Vec<Incident> = repo.list(INCIDENT).await?;
    incidents.retain(|i| i.created_at >= since);
    incidents.sort_by_key(|i| std::cmp::Reverse(i.created_at));
    let mut per_action: BTreeMap<String, (u64, u64, Counts)> = BTreeMap::new();
    for inc in incidents.iter().take(MAX_SOURCES) {
        let entry = per_action.entry(inc.action.clone()).or_default();
        entry.0 += 1;
        entry.1 += u64::from(inc.state == "acknowledged");
        for (_, mid) in &inc.messages {
            if let Some(view) = app.deps.backends.store.message(&caller.tenant, mid).await? {
                entry.2.merge(&tally.message(&view));
            }
        }
    }
    let per_action: Vec<_> = per_action
        .into_iter()
        .map(|(id, (incidents, acked, counts))| {
            let a = actions.iter().find(|a| a.id == id);
            json!({"id": id, "number": a.map(|a| &a.number), "title": a.map(|a| &a.title),
                   "incidents": incidents, "acknowledged_incidents": acked, "counts": counts})
        })
        .collect();

    // Spend from the ledger (every billed send, whatever its source).
    let mut spend: BTreeMap<(String, String), (u64, i64)> = BTreeMap::new();
    for e in app.deps.backends.store.ledger(&caller.tenant, LEDGER_WINDOW).await?.iter().filter(|e| e.at >= since && e.kind != LedgerKind::TopUp) {
        let slot = spend.entry((day(e.at), e.channel.clone())).or_default();
        if e.kind == LedgerKind::Debit {
            slot.0 += u64::from(e.units);
        }
        slot.1 += e.kind.signed(e.amount_minor).saturating_neg();
    }
    let by_day: Vec<_> = tally
        .by_day
        .into_iter()
        .map(|((day, channel), c)| {
            json!({"day": day, "channel": channel, "sent": c.sent, "delivered": c.delivered, "failed": c.failed,
                                          "acknowledged": c.acknowledged, "pending": c.pending, "cost_minor": c.cost_minor})
        })
        .collect();
    let by_channel: Vec<_> = tally
        .by_channel
        .into_iter()
        .map(|(channel, c)| {
            json!({"channel": channel, "sent": c.sent, "delivered": c.delivered, "failed": c.failed,
                                   "acknowledged": c.acknowledged, "pending": c.pending, "cost_minor": c.cost_minor})
        })
        .collect();
    let spend: Vec<_> = spend
        .into_iter()
        .map(|((day, channel), (units, cost))| json!({"day": day, "channel": channel, "units": units, "cost_minor": cost}))
        .collect();
    Ok(axum::Json(
        json!({"days": days, "by_day": by_day, "by_channel": by_channel, "per_push": per_push, "per_action": per_action, "spend_by_day": spend}),
    )
    .into_response())
}
