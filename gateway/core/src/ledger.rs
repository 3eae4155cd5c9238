//! Ledger arithmetic. Money is integer minor units (fen, cents); never floats.

use crate::Millis;
use crate::model::{LedgerEntry, LedgerKind, Price};

/// Cost of `units` billable units at `price`, saturating instead of overflowing.
pub fn cost(price: &Price, units: u32) -> i64 {
    price.unit_minor.saturating_mul(i64::from(units.max(1)))
}

/// Facts needed to bill one sent delivery.
pub struct Billable<'a> {
    pub tenant: &'a str,
    pub channel: &'a str,
    pub account: &'a str,
    pub delivery_id: &'a str,
    pub units: u32,
    pub at: Millis,
}

/// The debit for a sent delivery, or `None` when the channel is free.
/// The id is deterministic so a replayed record is ignored by the store.
pub fn debit(price: Option<&Price>, b: &Billable<'_>) -> Option<LedgerEntry> {
    let price = price?;
    let amount = cost(price, b.units);
    (amount > 0).then(|| LedgerEntry {
        id: format!("{}:debit", b.delivery_id),
        tenant: b.tenant.to_string(),
        kind: LedgerKind::Debit,
        channel: b.channel.to_string(),
        account: b.account.to_string(),
        delivery_id: Some(b.delivery_id.to_string()),
        units: b.units.max(1),
        amount_minor: amount,
        currency: price.currency.clone(),
        at: b.at,
    })
}

/// The refund of a billed delivery that finally failed (the provider does not
/// bill it): its net cost back, once (`<delivery id>:credit`; a replay is ignored).
pub fn refund(delivery_id: &str, channel: &str, account: &str, amount_minor: i64, currency: &str, tenant: &str, at: crate::Millis) -> LedgerEntry {
    LedgerEntry {
        id: format!("{delivery_id}:credit"),
        tenant: tenant.to_string(),
        kind: LedgerKind::Credit,
        channel: channel.to_string(),
        account: account.to_string(),
        delivery_id: Some(delivery_id.to_string()),
        units: 0,
        amount_minor: amount_minor.max(0),
        currency: currency.to_string(),
        at,
    }
}

/// The debit for usage a provider reported after the send (a call's started
/// minutes): `b.units` in total at `price`, less `billed_minor` already billed
/// for the delivery. `<delivery id>:usage`, so a replayed report bills nothing
/// more; `None` when nothing is owed beyond the send's debit.
pub fn usage(price: Option<&Price>, b: &Billable<'_>, billed_minor: i64) -> Option<LedgerEntry> {
    let price = price?;
    let amount = cost(price, b.units).saturating_sub(billed_minor.max(0));
    let billed_units = if price.unit_minor > 0 { billed_minor.max(0) / price.unit_minor } else { 0 };
    (amount > 0).then(|| LedgerEntry {
        id: format!("{}:usage", b.delivery_id),
        units: u32::try_from(i64::from(b.units).saturating_sub(billed_units)).unwrap_or(0),
        amount_minor: amount,
        ..debit(Some(price), b).expect("a positive amount implies a positive price")
    })
}

/// Whether `id` is the id of an entry of delivery `delivery_id`: every entry
/// of a delivery is `<delivery id>:<kind>` ([`debit`], [`refund`], [`usage`]),
/// which is how a store finds a delivery's entries by their key.
pub fn of_delivery(id: &str, delivery_id: &str) -> bool {
    id.strip_prefix(delivery_id).is_some_and(|rest| rest.starts_with(':'))
}

/// Net effect of entries on a balance (saturating).
pub fn net<'a>(entries: impl IntoIterator<Item = &'a LedgerEntry>) -> i64 {
    entries.into_iter().fold(0i64, |sum, e| sum.saturating_add(e.kind.signed(e.amount_minor)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(unit: i64) -> Price {
        Price { channel: "sms".into(), unit_minor: unit, currency: "CNY".into() }
    }
    fn billable(units: u32) -> Billable<'static> {
        Billable { tenant: "t", channel: "sms", account: "a", delivery_id: "m.0", units, at: 1 }
    }

    #[test]
    fn cost_is_units_times_price_and_zero_units_bill_one() {
        assert_eq!(cost(&price(5), 3), 15);
        assert_eq!(cost(&price(5), 0), 5);
        assert_eq!(cost(&price(i64::MAX), 2), i64::MAX);
    }

    #[test]
    fn debit_has_deterministic_id_and_skips_free_channels() {
        let d = debit(Some(&price(7)), &billable(2)).unwrap();
        assert_eq!(d.id, "m.0:debit");
        assert_eq!(d.amount_minor, 14);
        assert_eq!(d.units, 2);
        assert!(debit(Some(&price(0)), &billable(1)).is_none());
        assert!(debit(None, &billable(1)).is_none());
    }

    #[test]
    fn usage_bills_only_what_exceeds_the_send() {
        // A 3-minute call billed 1 minute at send owes 2 more.
        let u = usage(Some(&price(20)), &billable(3), 20).unwrap();
        assert_eq!((u.id.as_str(), u.kind, u.units, u.amount_minor), ("m.0:usage", LedgerKind::Debit, 2, 40));
        assert_eq!(u.delivery_id.as_deref(), Some("m.0"));
        // Nothing more when the report is within what was billed, or for free channels.
        assert!(usage(Some(&price(20)), &billable(1), 20).is_none());
        assert!(usage(Some(&price(20)), &billable(0), 20).is_none());
        assert!(usage(Some(&price(0)), &billable(5), 0).is_none());
        assert!(usage(None, &billable(5), 0).is_none());
    }

    #[test]
    fn every_entry_of_a_delivery_is_named_by_it() {
        let b = Billable { delivery_id: "m.1", ..billable(3) };
        let entries = [debit(Some(&price(7)), &b).unwrap(), usage(Some(&price(7)), &b, 7).unwrap(), refund("m.1", "sms", "a", 7, "CNY", "t", 1)];
        for e in &entries {
            assert!(of_delivery(&e.id, e.delivery_id.as_deref().unwrap()), "{}", e.id);
            // Not the entry of a delivery whose id is a prefix of this one, or the other way round.
            assert!(!of_delivery(&e.id, "m."));
            assert!(!of_delivery(&e.id, "m.10"));
        }
        assert!(!of_delivery("m.10:debit", "m.1"));
    }

    #[test]
    fn net_subtracts_debits_and_adds_credits() {
        let mut d = debit(Some(&price(10)), &billable(1)).unwrap();
        let mut entries = vec![d.clone()];
        d.kind = LedgerKind::Credit;
        d.amount_minor = 4;
        entries.push(d.clone());
        d.kind = LedgerKind::TopUp;
        d.amount_minor = 100;
        entries.push(d);
        assert_eq!(net(&entries), -10 + 4 + 100);
    }
}
