//! Pure parts: the delivery state fold, delivery-id parsing and time buckets.

use std::collections::BTreeMap;

use herald_core::model::{DeliveryRecord, DeliveryStatus};
use herald_core::{Millis, StoreError};

/// One clustering row of `deliveries_by_message` (the static columns aside).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeliveryRow {
    pub seq: i32,
    pub at: Millis,
    /// `""` for the creation row, else the status this event sets.
    pub event: String,
    pub recipient: Option<String>,
    pub attempts: Option<i32>,
    pub detail: Option<String>,
    pub provider_id: Option<String>,
}

/// The creation row's `event`.
pub(crate) const CREATED: &str = "";

/// The rule the SQLite store applies in its `UPDATE ... WHERE`: a late `sent`
/// or `retrying` never overwrites a final or receipt status, and `delivered`
/// never overwrites `read`; a re-drive (`retrying` with attempts at least
/// those of the `dead` delivery) brings a dead delivery back.
pub(crate) fn may_replace(current: DeliveryStatus, current_attempts: u32, new: DeliveryStatus, new_attempts: u32) -> bool {
    use DeliveryStatus::*;
    let redrive = new == Retrying && current == Dead && new_attempts >= current_attempts;
    let late_attempt = matches!(new, Sent | Retrying) && matches!(current, Delivered | Read | Failed | Dead) && !redrive;
    let late_report = new == Delivered && current == Read;
    !(late_attempt || late_report)
}

/// Fold the rows of one message partition (or one delivery's slice of it)
/// into delivery records, ordered by `seq`. Events are applied in `(at,
/// status)` order, so the result does not depend on the order in which
/// concurrent writers' events arrived. Events of a delivery that has no
/// creation row are ignored (an update of an unknown delivery is a no-op).
pub(crate) fn fold(
    message_id: &str,
    rows: impl IntoIterator<Item = DeliveryRow>,
    costs: &BTreeMap<i32, i64>,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let mut by_seq: BTreeMap<i32, (Option<DeliveryRow>, Vec<DeliveryRow>)> = BTreeMap::new();
    for r in rows {
        let slot = by_seq.entry(r.seq).or_default();
        if r.event == CREATED { slot.0 = Some(r) } else { slot.1.push(r) }
    }
    let mut out = Vec::with_capacity(by_seq.len());
    for (seq, (created, mut events)) in by_seq {
        let Some(created) = created else { continue };
        let id = herald_core::model::delivery_id(message_id, seq as usize);
        let mut rec = DeliveryRecord {
            id,
            recipient: created.recipient.unwrap_or_default(),
            status: DeliveryStatus::Queued,
            attempts: 0,
            detail: None,
            provider_id: None,
            cost_minor: costs.get(&seq).copied().unwrap_or(0),
            updated_at: created.at,
        };
        events.sort_by(|a, b| (a.at, &a.event).cmp(&(b.at, &b.event)));
        for e in events {
            let status = DeliveryStatus::parse(&e.event).ok_or_else(|| StoreError::Corrupt(format!("delivery {}: status {:?}", rec.id, e.event)))?;
            if !may_replace(rec.status, rec.attempts, status, e.attempts.unwrap_or(0).max(0) as u32) {
                continue;
            }
            rec.status = status;
            rec.attempts = rec.attempts.max(e.attempts.unwrap_or(0).max(0) as u32);
            rec.detail = e.detail;
            rec.provider_id = e.provider_id.or(rec.provider_id);
            rec.updated_at = e.at;
        }
        out.push(rec);
    }
    Ok(out)
}

/// The recipient index of `delivery_id` if it belongs to `message_id`
/// (ids are `<message id>.<index>`, see `herald_core::model::delivery_id`).
pub(crate) fn seq_in(message_id: &str, delivery_id: &str) -> Option<i32> {
    delivery_id.strip_prefix(message_id)?.strip_prefix('.')?.parse::<i32>().ok().filter(|s| *s >= 0)
}

/// `(message id, recipient index)` of a delivery id.
pub(crate) fn split_delivery_id(delivery_id: &str) -> Option<(&str, i32)> {
    let id = herald_core::model::DeliveryId::parse(delivery_id)?;
    let seq = i32::try_from(id.index()).ok()?;
    Some((&delivery_id[..id.message_id().len()], seq))
}

fn utc(at: Millis) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::from_timestamp_millis(at).ok_or_else(|| StoreError::Backend(format!("time {at} out of range")))
}

/// The UTC day of a time: the `messages_by_day` partition.
pub fn day_of(at: Millis) -> Result<chrono::NaiveDate, StoreError> {
    Ok(utc(at)?.date_naive())
}

/// The UTC month of a time as `yyyymm`: the `ledger_entries` partition.
pub(crate) fn month_of(at: Millis) -> Result<i32, StoreError> {
    use chrono::Datelike;
    let t = utc(at)?;
    Ok(t.year() * 100 + t.month() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryStatus::*;

    fn created(seq: i32, at: i64) -> DeliveryRow {
        DeliveryRow { seq, at, event: CREATED.into(), recipient: Some(format!("r{seq}")), attempts: None, detail: None, provider_id: None }
    }
    fn ev(seq: i32, at: i64, s: DeliveryStatus, attempts: i32) -> DeliveryRow {
        DeliveryRow {
            seq,
            at,
            event: s.as_str().into(),
            recipient: None,
            attempts: Some(attempts),
            detail: Some(format!("{s:?}")),
            provider_id: (s == Sent).then(|| format!("p{seq}")),
        }
    }

    #[test]
    fn never_attempted_is_queued() {
        let recs = fold("m", vec![created(1, 5), created(0, 5)], &BTreeMap::new()).unwrap();
        assert_eq!(recs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["m.0", "m.1"]);
        assert!(recs.iter().all(|r| r.status == Queued && r.attempts == 0 && r.updated_at == 5));
    }

    #[test]
    fn late_sent_and_late_delivered_do_not_downgrade() {
        let rows = vec![created(0, 1), ev(0, 2, Sent, 1), ev(0, 3, Delivered, 1), ev(0, 4, Sent, 1)];
        let r = &fold("m", rows, &BTreeMap::new()).unwrap()[0];
        assert_eq!((r.status, r.provider_id.as_deref(), r.updated_at), (Delivered, Some("p0"), 3));
        let rows = vec![created(0, 1), ev(0, 2, Read, 1), ev(0, 3, Delivered, 1)];
        assert_eq!(fold("m", rows, &BTreeMap::new()).unwrap()[0].status, Read);
    }

    #[test]
    fn arrival_order_does_not_matter() {
        let events = [ev(0, 2, Sent, 1), ev(0, 3, Delivered, 1), ev(0, 3, Read, 1), ev(0, 5, Sent, 2), ev(0, 1, Retrying, 1)];
        let want = fold("m", std::iter::once(created(0, 0)).chain(events.iter().cloned()), &BTreeMap::new()).unwrap();
        assert_eq!(want[0].status, Read);
        let mut shuffled = events.to_vec();
        shuffled.reverse();
        shuffled.swap(0, 2);
        let got = fold("m", shuffled.into_iter().chain([created(0, 0)]), &BTreeMap::new()).unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn attempts_take_the_max_of_applied_events() {
        let rows = vec![created(0, 0), ev(0, 1, Retrying, 1), ev(0, 2, Retrying, 3), ev(0, 3, Retrying, 2)];
        let r = &fold("m", rows, &BTreeMap::new()).unwrap()[0];
        assert_eq!((r.status, r.attempts, r.updated_at), (Retrying, 3, 3));
        // Not applied (late "retrying" after "failed"): attempts stay.
        let rows = vec![created(0, 0), ev(0, 1, Failed, 1), ev(0, 2, Retrying, 4)];
        let r = &fold("m", rows, &BTreeMap::new()).unwrap()[0];
        assert_eq!((r.status, r.attempts), (Failed, 1));
    }

    #[test]
    fn events_of_unknown_deliveries_are_ignored_and_costs_attached() {
        let costs = BTreeMap::from([(0, 5)]);
        let recs = fold("m", vec![created(0, 0), ev(7, 1, Sent, 1)], &costs).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].cost_minor, 5);
        assert!(fold("m", vec![created(0, 0), DeliveryRow { event: "bogus".into(), ..created(0, 1) }], &costs).is_err());
    }

    #[test]
    fn delivery_ids_parse() {
        assert_eq!(seq_in("msg-1", "msg-1.12"), Some(12));
        assert_eq!(seq_in("msg-1", "msg-2.12"), None);
        assert_eq!(seq_in("msg-1", "msg-1.x"), None);
        assert_eq!(seq_in("msg-1", "msg-1.-1"), None);
        assert_eq!(split_delivery_id("a.b.3"), Some(("a.b", 3)));
        assert_eq!(split_delivery_id("nodot"), None);
    }

    #[test]
    fn buckets() {
        // 2024-02-29T23:59:59.999Z and a millisecond later.
        let t = 1_709_251_199_999;
        assert_eq!(month_of(t).unwrap(), 202402);
        assert_eq!(month_of(t + 1).unwrap(), 202403);
        assert_eq!(day_of(t).unwrap().to_string(), "2024-02-29");
        assert_eq!(day_of(t + 1).unwrap().to_string(), "2024-03-01");
    }
}
