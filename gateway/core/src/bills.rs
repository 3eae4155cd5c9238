//! Monthly bills: ledger entries summed per (month, channel, currency).
//!
//! The month of an entry is the calendar month of its time in the tenant's
//! UTC offset (so 2026-10-31T20:00Z is November at UTC+8). Amounts stay
//! integer minor units; each line keeps debits, refunds (credits) and
//! top-ups apart and gives the net effect on the balance,
//! `credits + top-ups - debits`, i.e. the sum of [`LedgerKind::signed`].
//!
//! The input is taken as given: pass entries already de-duplicated by id, as
//! the stores return them. Sums saturate instead of overflowing; no input
//! panics.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::model::{LedgerEntry, LedgerKind};

/// One line of a monthly bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillLine {
    /// Calendar month, "YYYY-MM", in the offset the bill was made for.
    pub period: String,
    pub channel: String,
    pub currency: String,
    /// Number of debit entries (billed sends).
    pub debit_count: u64,
    /// Billable units of those debits (SMS parts, minutes, ...).
    pub debit_units: u64,
    /// Sum of debits (positive).
    pub debit_minor: i64,
    /// Sum of credits, i.e. refunds (positive).
    pub credit_minor: i64,
    /// Sum of top-ups (positive).
    pub top_up_minor: i64,
    /// Effect on the balance: `credit_minor + top_up_minor - debit_minor`.
    pub net_minor: i64,
}

/// Largest offset accepted, in minutes (just under a day); larger ones are clamped.
const MAX_OFFSET_MINUTES: i32 = 24 * 60 - 1;

/// "YYYY-MM" of `at` shifted by `offset_ms`. Times beyond what the calendar
/// supports (about ±262,000 years) are clamped to its ends.
fn period(at: Millis, offset_ms: i64) -> String {
    let min = DateTime::<chrono::Utc>::MIN_UTC.timestamp_millis();
    let max = DateTime::<chrono::Utc>::MAX_UTC.timestamp_millis();
    let local = at.saturating_add(offset_ms).clamp(min, max);
    match DateTime::from_timestamp_millis(local) {
        Some(t) => t.format("%Y-%m").to_string(),
        None => String::from("0000-00"),
    }
}

/// Bill lines for `entries`, per (month in `utc_offset_minutes`, channel,
/// currency), sorted by period, then channel, then currency.
/// `utc_offset_minutes` is east of UTC (UTC+8 = 480) and is clamped to ±23:59.
pub fn monthly_bills(entries: &[LedgerEntry], utc_offset_minutes: i32) -> Vec<BillLine> {
    let mut bills = Bills::new(utc_offset_minutes);
    entries.iter().for_each(|e| bills.add(e));
    bills.finish()
}

/// [`monthly_bills`] of entries handed over in pieces (a ledger read page
/// by page): memory is the bill lines, not the entries.
pub struct Bills {
    offset_ms: i64,
    lines: BTreeMap<(String, String, String), BillLine>,
}

impl Bills {
    pub fn new(utc_offset_minutes: i32) -> Self {
        let offset = utc_offset_minutes.clamp(-MAX_OFFSET_MINUTES, MAX_OFFSET_MINUTES);
        Self { offset_ms: i64::from(offset) * 60_000, lines: BTreeMap::new() }
    }

    pub fn add(&mut self, e: &LedgerEntry) {
        let period = period(e.at, self.offset_ms);
        let key = (period, e.channel.clone(), e.currency.clone());
        let line = self.lines.entry(key).or_insert_with_key(|(period, channel, currency)| BillLine {
            period: period.clone(),
            channel: channel.clone(),
            currency: currency.clone(),
            debit_count: 0,
            debit_units: 0,
            debit_minor: 0,
            credit_minor: 0,
            top_up_minor: 0,
            net_minor: 0,
        });
        match e.kind {
            LedgerKind::Debit => {
                line.debit_count = line.debit_count.saturating_add(1);
                line.debit_units = line.debit_units.saturating_add(u64::from(e.units));
                line.debit_minor = line.debit_minor.saturating_add(e.amount_minor);
            }
            LedgerKind::Credit => line.credit_minor = line.credit_minor.saturating_add(e.amount_minor),
            LedgerKind::TopUp => line.top_up_minor = line.top_up_minor.saturating_add(e.amount_minor),
        }
        line.net_minor = line.net_minor.saturating_add(e.kind.signed(e.amount_minor));
    }

    /// The lines, sorted by period, then channel, then currency.
    pub fn finish(self) -> Vec<BillLine> {
        self.lines.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epoch ms of an RFC 3339 time (test data only).
    fn ms(rfc3339: &str) -> Millis {
        DateTime::parse_from_rfc3339(rfc3339).expect("test time").timestamp_millis()
    }

    fn entry(id: &str, kind: LedgerKind, channel: &str, units: u32, amount: i64, at: &str) -> LedgerEntry {
        LedgerEntry {
            id: id.into(),
            tenant: "t".into(),
            kind,
            channel: channel.into(),
            account: "a".into(),
            delivery_id: None,
            units,
            amount_minor: amount,
            currency: "CNY".into(),
            at: ms(at),
        }
    }

    #[test]
    fn empty_ledger_has_no_lines() {
        assert_eq!(monthly_bills(&[], 0), vec![]);
    }

    #[test]
    fn sums_per_month_and_channel_sorted() {
        let entries = vec![
            entry("3", LedgerKind::Debit, "sms", 2, 10, "2026-02-01T00:00:00Z"),
            entry("1", LedgerKind::Debit, "sms", 1, 5, "2026-01-10T00:00:00Z"),
            entry("2", LedgerKind::Debit, "email", 1, 1, "2026-01-11T00:00:00Z"),
            entry("4", LedgerKind::Debit, "sms", 3, 15, "2026-01-12T00:00:00Z"),
            entry("5", LedgerKind::Credit, "sms", 3, 15, "2026-01-13T00:00:00Z"),
            entry("6", LedgerKind::TopUp, "sms", 0, 100, "2026-01-14T00:00:00Z"),
        ];
        let bills = monthly_bills(&entries, 0);
        let keys: Vec<_> = bills.iter().map(|b| (b.period.as_str(), b.channel.as_str())).collect();
        assert_eq!(keys, [("2026-01", "email"), ("2026-01", "sms"), ("2026-02", "sms")]);
        assert_eq!(
            bills[1],
            BillLine {
                period: "2026-01".into(),
                channel: "sms".into(),
                currency: "CNY".into(),
                debit_count: 2,
                debit_units: 4,
                debit_minor: 20,
                credit_minor: 15,
                top_up_minor: 100,
                net_minor: 95,
            }
        );
        assert_eq!((bills[0].debit_count, bills[0].net_minor), (1, -1));
        assert_eq!((bills[2].debit_units, bills[2].net_minor), (2, -10));
        let total: i64 = bills.iter().map(|b| b.net_minor).sum();
        assert_eq!(total, crate::ledger::net(&entries));
    }

    #[test]
    fn currencies_are_not_mixed() {
        let mut usd = entry("2", LedgerKind::Debit, "sms", 1, 3, "2026-01-01T00:00:00Z");
        usd.currency = "USD".into();
        let entries = vec![entry("1", LedgerKind::Debit, "sms", 1, 5, "2026-01-01T00:00:00Z"), usd];
        let bills = monthly_bills(&entries, 0);
        let keys: Vec<_> = bills.iter().map(|b| (b.currency.as_str(), b.debit_minor)).collect();
        assert_eq!(keys, [("CNY", 5), ("USD", 3)]);
    }

    #[test]
    fn month_depends_on_the_offset() {
        let entries = vec![entry("1", LedgerKind::Debit, "sms", 1, 5, "2026-10-31T20:00:00Z")];
        assert_eq!(monthly_bills(&entries, 0)[0].period, "2026-10");
        assert_eq!(monthly_bills(&entries, 8 * 60)[0].period, "2026-11", "UTC+8");
        assert_eq!(monthly_bills(&entries, 4 * 60)[0].period, "2026-11", "exactly midnight is the new day");
        assert_eq!(monthly_bills(&entries, 4 * 60 - 1)[0].period, "2026-10");
        let early = vec![entry("1", LedgerKind::Debit, "sms", 1, 5, "2026-01-01T03:00:00Z")];
        assert_eq!(monthly_bills(&early, -5 * 60)[0].period, "2025-12", "UTC-5: still last year");
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        let mut a = entry("1", LedgerKind::Debit, "sms", u32::MAX, i64::MAX, "2026-01-01T00:00:00Z");
        let mut b = a.clone();
        b.id = "2".into();
        a.at = i64::MAX;
        b.at = i64::MIN;
        for offset in [i32::MIN, -1440, 0, 1440, i32::MAX] {
            let bills = monthly_bills(&[a.clone(), b.clone(), a.clone()], offset);
            assert_eq!(bills.len(), 2);
            assert!(bills.iter().all(|l| l.net_minor == i64::MIN + 1 || l.net_minor == i64::MIN));
        }
        let c = entry("3", LedgerKind::TopUp, "sms", 0, i64::MAX, "2026-01-01T00:00:00Z");
        assert_eq!(monthly_bills(&[c.clone(), c], 0)[0].net_minor, i64::MAX);
    }
}
