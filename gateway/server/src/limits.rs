//! Rate limits (governor). Tenant quotas and provider limits are different
//! things, so a batch passes two limiters: one per (tenant, channel) and one
//! per sender account. A tenant's work lands on one consumer (partition key =
//! tenant), so a limiter local to the process is correct cluster-wide.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// What a limiter is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    TenantChannel { tenant: String, channel: String },
    Account { tenant: String, account: String },
}

#[derive(Default)]
pub struct Limiters {
    limiters: Mutex<HashMap<LimitKey, Arc<DefaultDirectRateLimiter>>>,
    /// Keys a provider throttled, and until when to hold back.
    paused: Mutex<HashMap<LimitKey, std::time::Instant>>,
}

impl Limiters {
    /// Keys (and rates) that apply to one batch.
    pub fn keys(tenant: &str, channel: &str, account: &str) -> [LimitKey; 2] {
        [
            LimitKey::TenantChannel { tenant: tenant.into(), channel: channel.into() },
            LimitKey::Account { tenant: tenant.into(), account: account.into() },
        ]
    }

    fn limiter(&self, key: &LimitKey, per_sec: NonZeroU32) -> Arc<DefaultDirectRateLimiter> {
        self.limiters
            .lock()
            .expect("limiters")
            .entry(key.clone())
            .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_second(per_sec))))
            .clone()
    }

    /// A provider said "slow down" for this key: hold new batches back until
    /// `for_ms` has passed (the provider's Retry-After, or a second).
    pub fn pause(&self, key: &LimitKey, for_ms: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(for_ms.clamp(100, 60_000));
        let mut paused = self.paused.lock().expect("paused");
        let e = paused.entry(key.clone()).or_insert(until);
        *e = (*e).max(until);
    }

    /// Wait out a pause set by `pause`; returns whether it waited.
    pub async fn wait_pause(&self, key: &LimitKey) -> bool {
        let until = self.paused.lock().expect("paused").get(key).copied();
        match until {
            Some(u) if u > std::time::Instant::now() => {
                tokio::time::sleep_until(tokio::time::Instant::from_std(u)).await;
                true
            }
            _ => false,
        }
    }

    /// Wait until `n` sends are allowed under `per_sec`. Returns whether it had
    /// to wait (the "throttled by Herald" metric). Batches larger than the burst
    /// are admitted in burst-sized steps.
    pub async fn acquire(&self, key: &LimitKey, per_sec: Option<u32>, n: usize) -> bool {
        let Some(rate) = per_sec.and_then(NonZeroU32::new) else {
            return false;
        };
        let limiter = self.limiter(key, rate);
        let mut waited = false;
        let mut left = n as u32;
        while left > 0 {
            let step = NonZeroU32::new(left.min(rate.get())).expect("non-zero");
            if limiter.check_n(step).map(|r| r.is_err()).unwrap_or(true) {
                waited = true;
                // check_n can only fail with InsufficientCapacity when step > burst, which it is not.
                let _ = limiter.until_n_ready(step).await;
            }
            left -= step.get();
        }
        waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_tenant_quota_from_account_limit() {
        let [a, b] = Limiters::keys("t1", "sms", "aliyun");
        assert_eq!(a, LimitKey::TenantChannel { tenant: "t1".into(), channel: "sms".into() });
        assert_eq!(b, LimitKey::Account { tenant: "t1".into(), account: "aliyun".into() });
        let [c, _] = Limiters::keys("t2", "sms", "aliyun");
        assert_ne!(a, c, "tenants never share a quota");
    }

    #[tokio::test]
    async fn a_throttled_key_waits_out_its_pause_and_others_do_not() {
        let l = Limiters::default();
        let [a, b] = Limiters::keys("t", "sms", "acct");
        l.pause(&b, 300);
        assert!(!l.wait_pause(&a).await, "tenant key not paused");
        let start = std::time::Instant::now();
        assert!(l.wait_pause(&b).await);
        assert!(start.elapsed() >= std::time::Duration::from_millis(250), "{:?}", start.elapsed());
        assert!(!l.wait_pause(&b).await, "the pause is over");
    }

    #[tokio::test]
    async fn unlimited_never_waits_and_limited_waits_past_the_burst() {
        let l = Limiters::default();
        let key = Limiters::keys("t", "sms", "a")[0].clone();
        assert!(!l.acquire(&key, None, 1_000_000).await);
        assert!(!l.acquire(&key, Some(10), 10).await, "the burst is free");
        let start = std::time::Instant::now();
        assert!(l.acquire(&key, Some(10), 5).await, "the next five wait");
        assert!(start.elapsed() >= std::time::Duration::from_millis(300), "about half a second at 10/s");
    }
}
