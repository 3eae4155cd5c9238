//! Pages of a tenant's records that the `Store` answers: its ledger
//! ([`LedgerQuery`]) and the deliveries of a push's messages
//! ([`DeliveryQuery`]), filtered, sorted and paged by the store, with how
//! many match. The `apply` functions are the same rules in memory: the
//! reference the stores agree with (the conformance suite compares them).

use std::cmp::Ordering;

use crate::Millis;
use crate::collate::text_order;
use crate::doc_query::TopK;
use crate::model::{DeliveryRecord, LedgerEntry, LedgerKind};

/// A ledger column to sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LedgerSort {
    /// Time (the default, newest first).
    #[default]
    At,
    AmountMinor,
    Units,
    Channel,
}

/// Which ledger entries, in which order, which page.
///
/// Order: by `sort` (`descending` or not); entries of equal value newest
/// first (time descending, then id ascending). By time: time, then id the
/// other way (ascending time is exactly the reverse of descending).
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerQuery {
    /// The period: `start <= at < end`.
    pub start: Millis,
    pub end: Millis,
    /// Whether top-ups are included (transactions) or not (cost details).
    pub top_ups: bool,
    pub sort: LedgerSort,
    pub descending: bool,
    pub offset: u64,
    pub limit: u64,
}

impl Default for LedgerQuery {
    fn default() -> Self {
        Self { start: Millis::MIN, end: Millis::MAX, top_ups: true, sort: LedgerSort::At, descending: true, offset: 0, limit: 50 }
    }
}

/// One ledger entry of a page with the tenant's balance right after it.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerLine {
    pub entry: LedgerEntry,
    /// The balance after this entry: the current balance less every entry
    /// newer than it (of any kind and period; newer: a later time, or the
    /// same time and a smaller id).
    pub balance_minor: i64,
}

/// The entries of one page and how many match in all.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LedgerPage {
    pub lines: Vec<LedgerLine>,
    pub total: u64,
}

/// Whether `x` is newer than `e` (see [`LedgerLine::balance_minor`]).
pub fn newer(x: &LedgerEntry, e: &LedgerEntry) -> bool {
    x.at > e.at || (x.at == e.at && x.id < e.id)
}

/// A ledger entry's place in a query's order.
#[derive(Debug, PartialEq, Eq)]
pub struct LedgerKey {
    value: LedgerValue,
    descending: bool,
    /// Sorting by time (ties reverse with the direction).
    by_time: bool,
    at: Millis,
    id: String,
}

#[derive(Debug, PartialEq, Eq)]
enum LedgerValue {
    Int(i64),
    Text(String),
}

impl Ord for LedgerKey {
    fn cmp(&self, other: &Self) -> Ordering {
        let value = match (&self.value, &other.value) {
            (LedgerValue::Int(a), LedgerValue::Int(b)) => a.cmp(b),
            (LedgerValue::Text(a), LedgerValue::Text(b)) => text_order(a, b),
            (LedgerValue::Int(_), LedgerValue::Text(_)) => Ordering::Less,
            (LedgerValue::Text(_), LedgerValue::Int(_)) => Ordering::Greater,
        };
        let value = if self.descending { value.reverse() } else { value };
        // Ties newest first; by time ascending, the reverse of that.
        let newest_first = other.at.cmp(&self.at).then_with(|| self.id.cmp(&other.id));
        value.then(if self.by_time && !self.descending { newest_first.reverse() } else { newest_first })
    }
}

impl PartialOrd for LedgerKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl LedgerQuery {
    /// Whether an entry is in the period and of a kind asked for.
    pub fn matches(&self, e: &LedgerEntry) -> bool {
        e.at >= self.start && e.at < self.end && (self.top_ups || e.kind != LedgerKind::TopUp)
    }

    /// The key of an entry in this query's order.
    pub fn key(&self, e: &LedgerEntry) -> LedgerKey {
        let value = match self.sort {
            LedgerSort::At => LedgerValue::Int(e.at),
            LedgerSort::AmountMinor => LedgerValue::Int(e.amount_minor),
            LedgerSort::Units => LedgerValue::Int(i64::from(e.units)),
            LedgerSort::Channel => LedgerValue::Text(e.channel.clone()),
        };
        LedgerKey { value, descending: self.descending, by_time: self.sort == LedgerSort::At, at: e.at, id: e.id.clone() }
    }

    /// A bounded window over a stream of entries (any order): the page's
    /// entries (without balances yet) and how many match.
    pub fn window(&self) -> TopK<LedgerKey, LedgerEntry> {
        TopK::new(self.offset, self.limit)
    }

    /// The page of `all` (every entry of the tenant), whose balance is
    /// `balance`, in memory: the reference the stores agree with.
    pub fn apply(&self, all: &[LedgerEntry], balance: i64) -> LedgerPage {
        let mut w = self.window();
        for e in all.iter().filter(|e| self.matches(e)) {
            w.push(self.key(e), e.clone());
        }
        let (entries, total) = w.finish();
        let lines = entries
            .into_iter()
            .map(|e| {
                let later: i64 = all.iter().filter(|x| newer(x, &e)).fold(0, |s, x| s.saturating_add(x.kind.signed(x.amount_minor)));
                LedgerLine { balance_minor: balance.saturating_sub(later), entry: e }
            })
            .collect();
        LedgerPage { lines, total }
    }
}

/// Balances after each of `page` (any order) from the entries newer than
/// the oldest of them, offered in any order: for stores that stream them.
pub struct Balances {
    /// The page's entries, newest first, with their index in the page.
    order: Vec<(LedgerEntry, usize)>,
    /// `gaps[j]`: the sum of the entries newer than `order[j]` and not
    /// newer than `order[j - 1]` (for j = 0: all newer than `order[0]`).
    gaps: Vec<i64>,
}

impl Balances {
    pub fn new(page: &[LedgerEntry]) -> Self {
        let mut order: Vec<(LedgerEntry, usize)> = page.iter().cloned().zip(0..).collect();
        order.sort_by(|(a, _), (b, _)| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
        let gaps = vec![0; order.len()];
        Self { order, gaps }
    }

    /// The oldest entry of the page: entries not newer than it need not be offered.
    pub fn oldest(&self) -> Option<&LedgerEntry> {
        self.order.last().map(|(e, _)| e)
    }

    /// Offer one entry of the tenant's ledger.
    pub fn push(&mut self, x: &LedgerEntry) {
        // The first page entry that `x` is newer than: it and all older ones gain it.
        let first = self.order.partition_point(|(e, _)| !newer(x, e));
        if let Some(g) = self.gaps.get_mut(first) {
            *g = g.saturating_add(x.kind.signed(x.amount_minor));
        }
    }

    /// The balance after each page entry, in the page's order, given the current balance.
    pub fn finish(self, balance: i64) -> Vec<i64> {
        let mut out = vec![0; self.order.len()];
        let mut later = 0i64;
        for ((_, i), gap) in self.order.iter().zip(self.gaps) {
            later = later.saturating_add(gap);
            out[*i] = balance.saturating_sub(later);
        }
        out
    }
}

/// A delivery column to sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverySort {
    Recipient,
    Status,
    Attempts,
    CostMinor,
    UpdatedAt,
}

impl DeliverySort {
    /// By the name of the delivery's field (as the API names it).
    pub fn parse(field: &str) -> Option<Self> {
        Some(match field {
            "recipient" => Self::Recipient,
            "status" => Self::Status,
            "attempts" => Self::Attempts,
            "cost_minor" => Self::CostMinor,
            "updated_at" => Self::UpdatedAt,
            _ => return None,
        })
    }
}

/// Which deliveries of some messages, in which order, which page.
///
/// Order: sending order (the messages as listed, each message's deliveries
/// by index) or by `sort` (status by its name, recipient as text), equals
/// in sending order; `descending` reverses the column (without `sort`, the
/// sending order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeliveryQuery {
    pub sort: Option<DeliverySort>,
    pub descending: bool,
    pub offset: u64,
    pub limit: u64,
}

/// One page of deliveries (message id, delivery) and how many there are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeliveryPage {
    pub deliveries: Vec<(String, DeliveryRecord)>,
    pub total: u64,
}

/// A delivery's place in a query's order: its column and its place in
/// sending order (message, index).
#[derive(Debug, PartialEq, Eq)]
pub struct DeliveryKey {
    value: Option<LedgerValue>,
    descending: bool,
    natural: (usize, u64),
}

impl Ord for DeliveryKey {
    fn cmp(&self, other: &Self) -> Ordering {
        let by = match (&self.value, &other.value) {
            (Some(LedgerValue::Int(a)), Some(LedgerValue::Int(b))) => a.cmp(b),
            (Some(LedgerValue::Text(a)), Some(LedgerValue::Text(b))) => text_order(a, b),
            _ => Ordering::Equal,
        };
        match (self.descending, self.value.is_some()) {
            (true, true) => by.reverse().then(self.natural.cmp(&other.natural)),
            (true, false) => other.natural.cmp(&self.natural),
            (false, _) => by.then(self.natural.cmp(&other.natural)),
        }
    }
}

impl PartialOrd for DeliveryKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A delivery's index in its message (`<message id>.<index>`).
pub fn delivery_index(id: &str) -> u64 {
    id.rsplit_once('.').and_then(|(_, i)| i.parse().ok()).unwrap_or(u64::MAX)
}

impl DeliveryQuery {
    /// The key of the delivery `d` of the `message`-th message.
    pub fn key(&self, message: usize, d: &DeliveryRecord) -> DeliveryKey {
        let value = self.sort.map(|s| match s {
            DeliverySort::Recipient => LedgerValue::Text(d.recipient.clone()),
            DeliverySort::Status => LedgerValue::Text(d.status.as_str().to_string()),
            DeliverySort::Attempts => LedgerValue::Int(i64::from(d.attempts)),
            DeliverySort::CostMinor => LedgerValue::Int(d.cost_minor),
            DeliverySort::UpdatedAt => LedgerValue::Int(d.updated_at),
        });
        DeliveryKey { value, descending: self.descending, natural: (message, delivery_index(&d.id)) }
    }

    /// A bounded window over the deliveries (any order).
    pub fn window(&self) -> TopK<DeliveryKey, (String, DeliveryRecord)> {
        TopK::new(self.offset, self.limit)
    }

    /// The page of `messages` (id and deliveries, in the order asked), in memory.
    pub fn apply(&self, messages: &[(String, Vec<DeliveryRecord>)]) -> DeliveryPage {
        let mut w = self.window();
        for (i, (id, ds)) in messages.iter().enumerate() {
            for d in ds {
                w.push(self.key(i, d), (id.clone(), d.clone()));
            }
        }
        let (deliveries, total) = w.finish();
        DeliveryPage { deliveries, total }
    }
}
