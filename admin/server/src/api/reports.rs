//! Reports (报表): deliveries sent / delivered / failed / acknowledged by
//! channel and day, per push and per action (from the deliveries of the
//! tenant's pushes and tiered-push incidents), and spend by channel and day
//! (from the ledger, which also covers sends made straight through the API).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use herald_core::model::{DeliveryStatus, LedgerKind, MessageView};
use herald_core::rbac::Permission;
use herald_core::tiered::{ACTION, Action, INCIDENT, Incident};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::pushes::{PUSH, Push};
use crate::state::App;
use crate::web::{BILL_OFFSET_MINUTES, Query, Range, Result, Routes};

pub fn routes(r: Routes<Arc<App>>) -> Routes<Arc<App>> {
    r.routes(routes!(summary))
}

/// At most this many pushes and incidents are read for one report.
const MAX_SOURCES: usize = 500;

/// Delivery counts: `sent` includes delivered and read; `acknowledged` counts
/// read receipts; `cost_minor` is the deliveries' cost.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
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

/// Counts of one day and channel.
#[derive(Serialize, ToSchema)]
struct DayRow {
    /// YYYY-MM-DD, China Standard Time.
    day: String,
    channel: String,
    #[serde(flatten)]
    counts: Counts,
}

#[derive(Serialize, ToSchema)]
struct ChannelRow {
    channel: String,
    #[serde(flatten)]
    counts: Counts,
}

#[derive(Serialize, ToSchema)]
struct PushRow {
    id: String,
    number: String,
    title: String,
    channel: String,
    counts: Counts,
}

#[derive(Serialize, ToSchema)]
struct ActionRow {
    id: String,
    /// Null when the action was deleted.
    number: Option<String>,
    title: Option<String>,
    incidents: u64,
    acknowledged_incidents: u64,
    counts: Counts,
}

/// Spend of one day and channel, from the ledger (also sends made straight through the gateway API).
#[derive(Serialize, ToSchema)]
struct SpendRow {
    day: String,
    channel: String,
    /// Billed units of debits.
    units: u64,
    /// Debits less refunds.
    cost_minor: i64,
}

#[derive(Serialize, ToSchema)]
struct Summary {
    days: i64,
    by_day: Vec<DayRow>,
    by_channel: Vec<ChannelRow>,
    per_push: Vec<PushRow>,
    per_action: Vec<ActionRow>,
    spend_by_day: Vec<SpendRow>,
}

/// Needs `reports.view`. Delivery counts come from the tenant's pushes and
/// incidents (at most 500 of each); spend from the ledger.
#[utoipa::path(get, path = "/reports/summary", tag = "reports", summary = "Deliveries and spend by channel and day, per push and per action",
    params(("days" = Option<i64>, Query, description = "How many days back, default 30, 1–366")),
    responses((status = 200, description = "The report", body = Summary)))]
async fn summary(State(app): State<Arc<App>>, caller: Caller, Query(r): Query<Range>) -> Result<Response> {
    let scope = caller.require(Permission::ReportsView)?;
    let days = r.days.unwrap_or(30).clamp(1, 366);
    let since = herald_core::now_ms() - days * 86_400_000;
    let repo = caller.repo(&app);
    let mut tally = Tally::default();

    let mut pushes: Vec<Push> = repo.list(PUSH).await?;
    pushes.retain(|p| scope.sees(&p.unit) && p.sent_at.is_some_and(|t| t >= since));
    pushes.sort_by_key(|p| std::cmp::Reverse(p.sent_at));
    let mut per_push = vec![];
    for p in pushes.iter().take(MAX_SOURCES) {
        let mut own = Counts::default();
        for mid in p.messages_since(since) {
            if let Some(view) = app.deps.backends.store.message(&caller.tenant, &mid).await? {
                own.merge(&tally.message(&view));
            }
        }
        per_push.push(PushRow { id: p.id.clone(), number: p.number.clone(), title: p.title.clone(), channel: p.channel.clone(), counts: own });
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
            ActionRow { id, number: a.map(|a| a.number.clone()), title: a.map(|a| a.title.clone()), incidents, acknowledged_incidents: acked, counts }
        })
        .collect();

    // Spend from the ledger (every billed send, whatever its source).
    // The period's debits and refunds, read from the store page by page (all of them, no window).
    let mut spend: BTreeMap<(String, String), (u64, i64)> = BTreeMap::new();
    let query = herald_core::store_query::LedgerQuery { start: since, top_ups: false, ..Default::default() };
    crate::api::cost::each_page(&app, &caller, query, u64::MAX, |page| {
        for e in page.lines.iter().map(|l| &l.entry) {
            let slot = spend.entry((day(e.at), e.channel.clone())).or_default();
            if e.kind == LedgerKind::Debit {
                slot.0 += u64::from(e.units);
            }
            slot.1 += e.kind.signed(e.amount_minor).saturating_neg();
        }
    })
    .await?;
    let by_day = tally.by_day.into_iter().map(|((day, channel), counts)| DayRow { day, channel, counts }).collect();
    let by_channel = tally.by_channel.into_iter().map(|(channel, counts)| ChannelRow { channel, counts }).collect();
    let spend_by_day = spend.into_iter().map(|((day, channel), (units, cost_minor))| SpendRow { day, channel, units, cost_minor }).collect();
    Ok(axum::Json(Summary { days, by_day, by_channel, per_push, per_action, spend_by_day }).into_response())
}
