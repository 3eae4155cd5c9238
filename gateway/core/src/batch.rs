//! Batching by (tenant, channel, account), bounded by count, bytes and age.
//! Pure and clock-free (the caller passes `now`), so it is tested without timers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Deliveries with the same key can go to a provider in one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchKey {
    pub tenant: String,
    pub channel: String,
    pub account: String,
}

/// Bounds of one batch.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_items: usize,
    pub max_bytes: usize,
    pub linger: Duration,
}

struct Open<T> {
    since: Instant,
    bytes: usize,
    max_items: usize,
    items: Vec<T>,
}

/// Open batches, one per key.
pub struct Batcher<T> {
    bounds: Bounds,
    open: HashMap<BatchKey, Open<T>>,
}

impl<T> Batcher<T> {
    pub fn new(bounds: Bounds) -> Self {
        Self { bounds, open: HashMap::new() }
    }

    /// Add an item of `bytes` size; `max_items` is the channel's own limit
    /// (a plugin's max batch), capped by the configured bound. Returns the
    /// batch if it is now full.
    pub fn push(&mut self, key: BatchKey, item: T, bytes: usize, max_items: usize, now: Instant) -> Option<(BatchKey, Vec<T>)> {
        let max_items = max_items.clamp(1, self.bounds.max_items.max(1));
        let open = self.open.entry(key.clone()).or_insert_with(|| Open { since: now, bytes: 0, max_items, items: Vec::new() });
        open.items.push(item);
        open.bytes += bytes;
        if open.items.len() >= open.max_items || open.bytes >= self.bounds.max_bytes {
            let open = self.open.remove(&key).expect("present");
            return Some((key, open.items));
        }
        None
    }

    /// Batches that have waited `linger` or longer.
    pub fn due(&mut self, now: Instant) -> Vec<(BatchKey, Vec<T>)> {
        let linger = self.bounds.linger;
        let keys: Vec<BatchKey> = self.open.iter().filter(|(_, o)| now.duration_since(o.since) >= linger).map(|(k, _)| k.clone()).collect();
        keys.into_iter().filter_map(|k| self.open.remove(&k).map(|o| (k, o.items))).collect()
    }

    /// When the oldest open batch becomes due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open.values().map(|o| o.since + self.bounds.linger).min()
    }

    /// Everything still open (shutdown).
    pub fn drain(&mut self) -> Vec<(BatchKey, Vec<T>)> {
        self.open.drain().map(|(k, o)| (k, o.items)).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &str, a: &str) -> BatchKey {
        BatchKey { tenant: t.into(), channel: "webhook".into(), account: a.into() }
    }
    fn bounds() -> Bounds {
        Bounds { max_items: 3, max_bytes: 1000, linger: Duration::from_millis(20) }
    }

    #[test]
    fn flushes_when_full_per_key() {
        let mut b = Batcher::new(bounds());
        let now = Instant::now();
        assert!(b.push(key("t1", "a"), 1, 10, 100, now).is_none());
        assert!(b.push(key("t2", "a"), 2, 10, 100, now).is_none());
        assert!(b.push(key("t1", "a"), 3, 10, 100, now).is_none());
        let (k, items) = b.push(key("t1", "a"), 4, 10, 100, now).unwrap();
        assert_eq!(k, key("t1", "a"));
        assert_eq!(items, vec![1, 3, 4]);
        assert!(!b.is_empty());
    }

    #[test]
    fn plugin_limit_below_configured_bound_wins() {
        let mut b = Batcher::new(bounds());
        let now = Instant::now();
        assert_eq!(b.push(key("t", "a"), 1, 1, 1, now).unwrap().1, vec![1]);
    }

    #[test]
    fn flushes_on_bytes() {
        let mut b = Batcher::new(bounds());
        let now = Instant::now();
        assert!(b.push(key("t", "a"), 1, 600, 100, now).is_none());
        assert_eq!(b.push(key("t", "a"), 2, 600, 100, now).unwrap().1, vec![1, 2]);
    }

    #[test]
    fn flushes_on_age_and_reports_deadline() {
        let mut b = Batcher::new(bounds());
        let t0 = Instant::now();
        b.push(key("t", "a"), 1, 1, 100, t0);
        b.push(key("t", "b"), 2, 1, 100, t0 + Duration::from_millis(10));
        assert_eq!(b.next_deadline(), Some(t0 + Duration::from_millis(20)));
        assert!(b.due(t0 + Duration::from_millis(19)).is_empty());
        let due = b.due(t0 + Duration::from_millis(20));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, key("t", "a"));
        assert_eq!(b.drain().len(), 1);
        assert!(b.is_empty());
    }
}
