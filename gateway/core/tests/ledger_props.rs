//! Property tests of the ledger arithmetic: random per-delivery outcomes are
//! turned into ledger entries the way dispatch does (`ledger::debit` for a
//! sent delivery; a refund is the debit re-keyed `<delivery id>:credit`, as
//! the store conformance suite writes it), and the money must add up: the
//! balance, the monthly bills and the per-delivery costs agree, amounts are
//! never negative, and replaying entries (the stores keep the first entry per
//! id) changes nothing.

use std::collections::{BTreeMap, HashSet};

use herald_core::bills::{BillLine, monthly_bills};
use herald_core::ledger::{self, Billable};
use herald_core::model::{LedgerEntry, LedgerKind, Price, delivery_id};
use proptest::prelude::*;

/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600_000;
const DAY_MS: i64 = 86_400_000;

/// What happened to one delivery, or a top-up.
#[derive(Debug, Clone)]
enum Event {
    /// Sent and billed.
    Sent { channel: usize, units: u32 },
    /// Failed permanently before the provider billed anything.
    FailedPermanent,
    /// Billed, then the provider reported failure and `refund_pct` % was refunded.
    Refunded { channel: usize, units: u32, refund_pct: u8, refund_delay_ms: i64 },
    /// Money added to the balance.
    TopUp { amount: i64 },
}

const CHANNELS: [&str; 3] = ["sms", "voice", "email"];

fn event() -> impl Strategy<Value = Event> {
    let channel = 0..CHANNELS.len();
    prop_oneof![
        (channel.clone(), 0u32..10).prop_map(|(channel, units)| Event::Sent { channel, units }),
        Just(Event::FailedPermanent),
        (channel, 0u32..10, 0u8..=100, 0..40 * DAY_MS)
            .prop_map(|(channel, units, refund_pct, refund_delay_ms)| { Event::Refunded { channel, units, refund_pct, refund_delay_ms } }),
        (1i64..1_000_000).prop_map(|amount| Event::TopUp { amount }),
    ]
}

/// Per-channel price; `None` = a free channel (no ledger entries at all).
fn prices() -> impl Strategy<Value = Vec<Option<i64>>> {
    proptest::collection::vec(proptest::option::weighted(0.8, 0i64..500), CHANNELS.len())
}

struct Built {
    entries: Vec<LedgerEntry>,
    /// Net cost (debit - refund) per delivery id.
    costs: BTreeMap<String, i64>,
    top_ups: i64,
}

/// Entries for `events`, event `i` at `times[i]`, written as dispatch and the
/// recorder do.
fn build(events: &[(Event, i64)], prices: &[Option<i64>]) -> Built {
    let price = |channel: usize| prices[channel].map(|unit_minor| Price { channel: CHANNELS[channel].into(), unit_minor, currency: "CNY".into() });
    let mut built = Built { entries: vec![], costs: BTreeMap::new(), top_ups: 0 };
    for (i, (event, at)) in events.iter().enumerate() {
        let message = format!("m{i}");
        let did = delivery_id(&message, 0);
        let billable =
            |channel: usize, units: u32| Billable { tenant: "t", channel: CHANNELS[channel], account: "acc", delivery_id: &did, units, at: *at };
        match *event {
            Event::Sent { channel, units } => {
                let debit = ledger::debit(price(channel).as_ref(), &billable(channel, units));
                built.costs.insert(did.clone(), debit.as_ref().map_or(0, |d| d.amount_minor));
                built.entries.extend(debit);
            }
            Event::FailedPermanent => {
                built.costs.insert(did.clone(), 0);
            }
            Event::Refunded { channel, units, refund_pct, refund_delay_ms } => {
                let mut cost = 0;
                if let Some(debit) = ledger::debit(price(channel).as_ref(), &billable(channel, units)) {
                    let refund = debit.amount_minor * i64::from(refund_pct) / 100;
                    cost = debit.amount_minor - refund;
                    let credit = LedgerEntry {
                        id: format!("{did}:credit"),
                        kind: LedgerKind::Credit,
                        amount_minor: refund,
                        at: at + refund_delay_ms,
                        ..debit.clone()
                    };
                    built.entries.push(debit);
                    // A zero refund is not written.
                    if refund > 0 {
                        built.entries.push(credit);
                    }
                }
                built.costs.insert(did.clone(), cost);
            }
            Event::TopUp { amount } => {
                built.top_ups += amount;
                built.entries.push(LedgerEntry {
                    id: format!("topup-{i}"),
                    tenant: "t".into(),
                    kind: LedgerKind::TopUp,
                    channel: CHANNELS[i % CHANNELS.len()].into(),
                    account: "acc".into(),
                    delivery_id: None,
                    units: 0,
                    amount_minor: amount,
                    currency: "CNY".into(),
                    at: *at,
                });
            }
        }
    }
    built
}

/// What the stores do with replays: the first entry per id wins.
fn dedupe(entries: &[LedgerEntry]) -> Vec<LedgerEntry> {
    let mut seen = HashSet::new();
    entries.iter().filter(|e| seen.insert(e.id.clone())).cloned().collect()
}

fn sum(bills: &[BillLine], f: impl Fn(&BillLine) -> i64) -> i64 {
    bills.iter().map(f).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn money_adds_up(
        events in proptest::collection::vec((event(), 0..730 * DAY_MS), 0..60),
        prices in prices(),
        offset in -12 * 60..=14 * 60i32,
    ) {
        let events: Vec<(Event, i64)> = events.into_iter().map(|(e, dt)| (e, T0 + dt)).collect();
        let built = build(&events, &prices);
        let total_cost: i64 = built.costs.values().sum();
        let expected = built.top_ups - total_cost;

        prop_assert!(built.entries.iter().all(|e| e.amount_minor >= 0), "no negative amounts");
        prop_assert!(built.costs.values().all(|&c| c >= 0), "no delivery earns money");
        prop_assert_eq!(dedupe(&built.entries).len(), built.entries.len(), "ids are unique");
        prop_assert_eq!(ledger::net(&built.entries), expected);

        let bills = monthly_bills(&built.entries, offset);
        prop_assert_eq!(sum(&bills, |b| b.net_minor), expected);
        prop_assert_eq!(sum(&bills, |b| b.top_up_minor), built.top_ups);
        prop_assert_eq!(sum(&bills, |b| b.debit_minor - b.credit_minor), total_cost);
        let debits = built.entries.iter().filter(|e| e.kind == LedgerKind::Debit).count();
        prop_assert_eq!(bills.iter().map(|b| b.debit_count).sum::<u64>(), debits as u64);
        for b in &bills {
            prop_assert_eq!(b.net_minor, b.credit_minor + b.top_up_minor - b.debit_minor);
            prop_assert!(b.debit_minor >= 0 && b.credit_minor >= 0 && b.top_up_minor >= 0);
            prop_assert!(b.debit_units >= b.debit_count, "a debit bills at least one unit");
        }
        let keys: Vec<_> = bills.iter().map(|b| (&b.period, &b.channel, &b.currency)).collect();
        prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted and one line per key");
    }

    #[test]
    fn replays_change_nothing(
        events in proptest::collection::vec((event(), 0..730 * DAY_MS), 1..40),
        prices in prices(),
        replay in proptest::collection::vec((any::<prop::sample::Index>(), 0..60 * DAY_MS), 0..40),
        offset in -12 * 60..=14 * 60i32,
    ) {
        let events: Vec<(Event, i64)> = events.into_iter().map(|(e, dt)| (e, T0 + dt)).collect();
        let built = build(&events, &prices);
        prop_assume!(!built.entries.is_empty());
        // Redelivered work re-creates entries with the same ids, possibly
        // later (even in another month); a whole batch may also come twice.
        let mut log = built.entries.clone();
        for (index, delay) in &replay {
            let original = &built.entries[index.index(built.entries.len())];
            log.push(LedgerEntry { at: original.at + delay, ..original.clone() });
        }
        log.extend(built.entries.iter().cloned());
        let stored = dedupe(&log);
        prop_assert_eq!(&stored, &built.entries);
        prop_assert_eq!(ledger::net(&stored), ledger::net(&built.entries));
        prop_assert_eq!(monthly_bills(&stored, offset), monthly_bills(&built.entries, offset));
    }
}
