//! Batching and fair scheduling of deliveries. Pure and clock-free (the
//! caller passes `now`), so it is tested without timers.
//!
//! Deliveries wait in one *lane* per (tenant, channel, account). A batch
//! leaves a lane when it is full (count or bytes) or its oldest delivery has
//! waited `linger`. Which lane goes next is decided round robin, first
//! between tenants and then between one tenant's lanes, never in arrival
//! order: a tenant's backlog of thousands puts at most one batch ahead of
//! another tenant's next delivery. Slots bound the batches running at once,
//! in total, per tenant and per lane, so a receiver that hangs or throttles
//! holds only its own account's slots. A lane can be held back until a time
//! (a rate limit, a provider's Retry-After) without holding a slot.

use std::collections::{HashMap, VecDeque};
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

/// How many batches may run at once.
#[derive(Debug, Clone, Copy)]
pub struct Slots {
    pub total: usize,
    pub per_tenant: usize,
    /// Per lane: one sender account of a tenant on one channel.
    pub per_account: usize,
}

/// Whether a batch may start now (the caller's rate limits).
pub enum Admit {
    Go,
    /// Not before this time: the lane is held until then.
    Hold(Instant),
}

struct Waiting<T> {
    item: T,
    bytes: usize,
    since: Instant,
}

struct Lane<T> {
    items: VecDeque<Waiting<T>>,
    bytes: usize,
    max_items: usize,
    running: usize,
    held_until: Option<Instant>,
}

#[derive(Default)]
struct Tenant {
    /// This tenant's lanes, in round-robin order.
    lanes: VecDeque<BatchKey>,
    running: usize,
    queued: usize,
}

/// Lanes of waiting deliveries and the batches running from them.
pub struct Scheduler<T> {
    bounds: Bounds,
    slots: Slots,
    lanes: HashMap<BatchKey, Lane<T>>,
    tenants: HashMap<String, Tenant>,
    /// Tenants with lanes, in round-robin order.
    ring: VecDeque<String>,
    running: usize,
    queued: usize,
    /// Shutting down: a lane need not wait for `linger`.
    flush: bool,
}

impl<T> Scheduler<T> {
    pub fn new(bounds: Bounds, slots: Slots) -> Self {
        let slots = Slots { total: slots.total.max(1), per_tenant: slots.per_tenant.max(1), per_account: slots.per_account.max(1) };
        Self { bounds, slots, lanes: HashMap::new(), tenants: HashMap::new(), ring: VecDeque::new(), running: 0, queued: 0, flush: false }
    }

    /// Add an item of `bytes` size; `max_items` is the lane's own limit (a
    /// plugin's max batch, a rate's burst), capped by the configured bound.
    pub fn push(&mut self, key: BatchKey, item: T, bytes: usize, max_items: usize, now: Instant) {
        let max_items = max_items.clamp(1, self.bounds.max_items.max(1));
        let lane = self.lane(&key);
        lane.max_items = max_items;
        lane.bytes += bytes;
        lane.items.push_back(Waiting { item, bytes, since: now });
        self.tenants.get_mut(&key.tenant).expect("lane's tenant").queued += 1;
        self.queued += 1;
    }

    fn lane(&mut self, key: &BatchKey) -> &mut Lane<T> {
        if !self.lanes.contains_key(key) {
            let tenant = self.tenants.entry(key.tenant.clone()).or_insert_with(|| {
                self.ring.push_back(key.tenant.clone());
                Tenant::default()
            });
            tenant.lanes.push_back(key.clone());
            let lane = Lane { items: VecDeque::new(), bytes: 0, max_items: 1, running: 0, held_until: None };
            self.lanes.insert(key.clone(), lane);
        }
        self.lanes.get_mut(key).expect("present")
    }

    fn ripe(&self, lane: &Lane<T>, now: Instant) -> bool {
        lane.items.front().is_some_and(|first| {
            self.flush
                || lane.items.len() >= lane.max_items
                || lane.bytes >= self.bounds.max_bytes
                || now.saturating_duration_since(first.since) >= self.bounds.linger
        })
    }

    /// How many items the lane's next batch takes.
    fn batch_len(&self, lane: &Lane<T>) -> usize {
        let (mut n, mut bytes) = (0, 0);
        for w in lane.items.iter().take(lane.max_items) {
            if n > 0 && bytes + w.bytes > self.bounds.max_bytes {
                break;
            }
            n += 1;
            bytes += w.bytes;
        }
        n
    }

    /// The next batch that may start, if any: round robin between tenants,
    /// then between the tenant's lanes. `admit` applies rate limits to a
    /// candidate (its key, first item and length); a lane it holds back is
    /// skipped until then.
    pub fn next(&mut self, now: Instant, mut admit: impl FnMut(&BatchKey, &T, usize) -> Admit) -> Option<(BatchKey, Vec<T>)> {
        if self.running >= self.slots.total {
            return None;
        }
        for _ in 0..self.ring.len() {
            let tenant = self.ring.front().expect("non-empty ring").clone();
            if let Some(key) = self.pick_lane(&tenant, now, &mut admit) {
                self.ring.rotate_left(1);
                return Some(self.take(key));
            }
            self.ring.rotate_left(1);
        }
        None
    }

    fn pick_lane(&mut self, tenant: &str, now: Instant, admit: &mut impl FnMut(&BatchKey, &T, usize) -> Admit) -> Option<BatchKey> {
        let t = &self.tenants[tenant];
        if t.running >= self.slots.per_tenant {
            return None;
        }
        for i in 0..t.lanes.len() {
            let key = &self.tenants[tenant].lanes[i];
            let lane = &self.lanes[key];
            let ready = lane.running < self.slots.per_account && lane.held_until.is_none_or(|u| u <= now) && self.ripe(lane, now);
            if !ready {
                continue;
            }
            let n = self.batch_len(lane);
            if let Admit::Hold(until) = admit(key, &lane.items[0].item, n) {
                let key = key.clone();
                self.hold(&key, until);
                continue;
            }
            let lanes = &mut self.tenants.get_mut(tenant).expect("tenant").lanes;
            let key = lanes.remove(i).expect("index in range");
            lanes.push_back(key.clone());
            return Some(key);
        }
        None
    }

    fn take(&mut self, key: BatchKey) -> (BatchKey, Vec<T>) {
        let n = self.batch_len(&self.lanes[&key]);
        let lane = self.lanes.get_mut(&key).expect("lane");
        let items: Vec<T> = lane
            .items
            .drain(..n)
            .map(|w| {
                lane.bytes -= w.bytes;
                w.item
            })
            .collect();
        lane.running += 1;
        let t = self.tenants.get_mut(&key.tenant).expect("tenant");
        t.running += 1;
        t.queued -= items.len();
        self.running += 1;
        self.queued -= items.len();
        (key, items)
    }

    /// Hold a lane back until `until` (a provider asked to slow down).
    pub fn hold(&mut self, key: &BatchKey, until: Instant) {
        if let Some(lane) = self.lanes.get_mut(key) {
            lane.held_until = Some(lane.held_until.map_or(until, |u| u.max(until)));
        }
    }

    /// A batch from this lane finished: its slots are free again. An idle
    /// lane is forgotten, unless it is held past `now` (a provider's
    /// Retry-After applies to the account's next work too).
    pub fn done(&mut self, key: &BatchKey, now: Instant) {
        let Some(lane) = self.lanes.get_mut(key) else {
            return;
        };
        lane.running = lane.running.saturating_sub(1);
        let empty = lane.running == 0 && lane.items.is_empty() && lane.held_until.is_none_or(|u| u <= now);
        let t = self.tenants.get_mut(&key.tenant).expect("tenant");
        t.running = t.running.saturating_sub(1);
        self.running = self.running.saturating_sub(1);
        if empty {
            self.lanes.remove(key);
            t.lanes.retain(|k| k != key);
            if t.lanes.is_empty() {
                self.tenants.remove(&key.tenant);
                self.ring.retain(|id| id != &key.tenant);
            }
        }
    }

    /// When a lane that waits (for `linger` or a hold) may go; lanes that
    /// wait only for a slot go when a batch is `done`.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        self.lanes
            .values()
            .filter(|l| !l.items.is_empty() && l.running < self.slots.per_account)
            .filter_map(|l| match l.held_until {
                Some(u) if u > now => Some(u),
                _ if self.ripe(l, now) => None,
                _ => l.items.front().map(|w| w.since + self.bounds.linger),
            })
            .min()
    }

    /// Items waiting for a tenant (not yet in a running batch).
    pub fn queued(&self, tenant: &str) -> usize {
        self.tenants.get(tenant).map_or(0, |t| t.queued)
    }

    /// Items waiting in all lanes.
    pub fn len(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Tenants with at least `cap` items waiting.
    pub fn saturated(&self, cap: usize) -> Vec<String> {
        self.tenants.iter().filter(|(_, t)| t.queued >= cap).map(|(id, _)| id.clone()).collect()
    }

    /// Shutting down: from now on a lane goes without waiting for `linger`.
    pub fn flush(&mut self) {
        self.flush = true;
    }

    /// Nothing waits and nothing runs.
    pub fn is_idle(&self) -> bool {
        self.queued == 0 && self.running == 0
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
    fn slots(total: usize, per_tenant: usize, per_account: usize) -> Slots {
        Slots { total, per_tenant, per_account }
    }
    fn go(_: &BatchKey, _: &u32, _: usize) -> Admit {
        Admit::Go
    }
    fn sched() -> Scheduler<u32> {
        Scheduler::new(bounds(), slots(64, 64, 64))
    }

    #[test]
    fn a_full_lane_goes_at_once_and_a_partial_one_after_linger() {
        let mut s = sched();
        let now = Instant::now();
        for i in 0..4 {
            s.push(key("t1", "a"), i, 10, 100, now);
        }
        s.push(key("t2", "a"), 9, 10, 100, now);
        assert_eq!(s.next(now, go), Some((key("t1", "a"), vec![0, 1, 2])));
        assert_eq!(s.next(now, go), None, "the rest waits for linger");
        assert_eq!(s.next_wakeup(now), Some(now + Duration::from_millis(20)));
        let later = now + Duration::from_millis(20);
        let mut got = vec![s.next(later, go).unwrap(), s.next(later, go).unwrap()];
        got.sort_by(|a, b| a.0.tenant.cmp(&b.0.tenant));
        assert_eq!(got, vec![(key("t1", "a"), vec![3]), (key("t2", "a"), vec![9])]);
        assert!(s.is_empty());
    }

    #[test]
    fn the_plugins_limit_and_the_byte_bound_cut_batches() {
        let mut s = sched();
        let now = Instant::now();
        s.push(key("t", "a"), 1, 1, 1, now);
        assert_eq!(s.next(now, go).unwrap().1, vec![1]);
        s.push(key("t", "b"), 2, 600, 100, now);
        s.push(key("t", "b"), 3, 600, 100, now);
        assert_eq!(s.next(now, go).unwrap().1, vec![2], "600 + 600 is over 1000 bytes");
        assert_eq!(s.next(now, go), None, "the second is alone and young");
    }

    #[test]
    fn tenants_take_turns_whatever_arrived_first() {
        let mut s = sched();
        let now = Instant::now();
        for i in 0..300 {
            s.push(key("big", "a"), i, 1, 100, now);
        }
        for i in 1000..1003 {
            s.push(key("small", "a"), i, 1, 100, now);
        }
        let order: Vec<String> = std::iter::from_fn(|| s.next(now, go)).take(4).map(|(k, _)| k.tenant).collect();
        assert_eq!(order, ["big", "small", "big", "big"]);
    }

    #[test]
    fn a_tenants_accounts_take_turns_too() {
        let mut s = sched();
        let now = Instant::now();
        for i in 0..9 {
            s.push(key("t", "a"), i, 1, 100, now);
        }
        for i in 10..13 {
            s.push(key("t", "b"), i, 1, 100, now);
        }
        let order: Vec<String> = std::iter::from_fn(|| s.next(now, go)).map(|(k, _)| k.account).collect();
        assert_eq!(order, ["a", "b", "a", "a"]);
    }

    #[test]
    fn a_stuck_account_holds_only_its_own_slots() {
        let mut s = Scheduler::new(bounds(), slots(4, 3, 2));
        let now = Instant::now();
        for i in 0..30 {
            s.push(key("a", "slow"), i, 1, 100, now);
        }
        assert!(s.next(now, go).is_some() && s.next(now, go).is_some());
        assert_eq!(s.next(now, go), None, "two batches of the slow account run and never finish");
        s.push(key("a", "other"), 100, 1, 1, now);
        s.push(key("b", "x"), 200, 1, 1, now);
        s.push(key("b", "y"), 201, 1, 1, now);
        s.push(key("c", "z"), 300, 1, 1, now);
        let got: Vec<_> = std::iter::from_fn(|| s.next(now, go)).map(|(k, _)| k).collect();
        assert_eq!(got.len(), 2, "four slots in total: {got:?}");
        assert!(got.iter().all(|k| k.account != "slow"), "{got:?}");
        s.done(&key("a", "slow"), now);
        let more: Vec<_> = std::iter::from_fn(|| s.next(now, go)).map(|(k, _)| k).collect();
        assert_eq!(more.len(), 1, "one slot came free: {more:?}");
    }

    #[test]
    fn a_tenant_cannot_take_every_slot_with_many_accounts() {
        let mut s = Scheduler::new(bounds(), slots(10, 3, 10));
        let now = Instant::now();
        for a in 0..10 {
            s.push(key("many", &a.to_string()), a, 1, 1, now);
        }
        let n = std::iter::from_fn(|| s.next(now, go)).count();
        assert_eq!(n, 3, "three slots per tenant");
        s.push(key("other", "x"), 99, 1, 1, now);
        assert_eq!(s.next(now, go).unwrap().0.tenant, "other");
    }

    #[test]
    fn a_held_lane_waits_without_a_slot_and_others_go() {
        let mut s = Scheduler::new(bounds(), slots(1, 1, 1));
        let now = Instant::now();
        s.push(key("a", "limited"), 1, 1, 1, now);
        s.push(key("b", "free"), 2, 1, 1, now);
        let until = now + Duration::from_secs(1);
        let admit = |k: &BatchKey, _: &u32, _: usize| if k.tenant == "a" { Admit::Hold(until) } else { Admit::Go };
        assert_eq!(s.next(now, admit).unwrap().0.tenant, "b");
        s.done(&key("b", "free"), now);
        assert_eq!(s.next(now, go), None, "held until a second from now");
        assert_eq!(s.next_wakeup(now), Some(until));
        assert_eq!(s.next(until, go).unwrap().0.tenant, "a");
    }

    #[test]
    fn saturation_counts_waiting_items_and_idle_lanes_are_forgotten() {
        let mut s = sched();
        let now = Instant::now();
        for i in 0..5 {
            s.push(key("t", "a"), i, 1, 100, now);
        }
        assert_eq!(s.saturated(5), vec!["t".to_string()]);
        assert!(s.saturated(6).is_empty());
        s.flush();
        let (k, first) = s.next(now, go).unwrap();
        let (_, second) = s.next(now, go).unwrap();
        assert_eq!((first.len(), second.len(), s.queued("t")), (3, 2, 0));
        assert!(!s.is_idle(), "two batches run");
        s.done(&k, now);
        s.done(&k, now);
        assert!(s.is_idle() && s.lanes.is_empty() && s.ring.is_empty());
    }

    #[test]
    fn a_throttled_lane_stays_held_after_its_last_batch() {
        let mut s = sched();
        let now = Instant::now();
        s.push(key("t", "a"), 1, 1, 1, now);
        let (k, _) = s.next(now, go).unwrap();
        let until = now + Duration::from_secs(20);
        s.hold(&k, until);
        s.done(&k, now);
        s.push(key("t", "a"), 2, 1, 1, now);
        assert_eq!(s.next(now, go), None, "new work for the account waits out its Retry-After");
        assert_eq!(s.next(until, go).unwrap().1, vec![2]);
    }
}
