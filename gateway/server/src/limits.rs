//! Rate limits (governor). Tenant quotas and provider limits are different
//! things, so a batch passes two limiters: one per (tenant, channel) and one
//! per sender account. A tenant's work lands on one consumer (partition key =
//! tenant), so a limiter local to the process is correct cluster-wide.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

    /// Take `n` sends under `per_sec` now, or say how long until they could be.
    /// The burst is one second's worth, and a lane's batches are never larger
    /// than its rates (`Job::max_batch`), so `n` always fits in it.
    pub fn try_acquire(&self, key: &LimitKey, per_sec: Option<u32>, n: usize) -> Result<(), Duration> {
        let Some(rate) = per_sec.and_then(NonZeroU32::new) else {
            return Ok(());
        };
        let limiter = self.limiter(key, rate);
        let Some(n) = NonZeroU32::new(n.min(rate.get() as usize) as u32) else {
            return Ok(());
        };
        match limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()))),
            Err(_) => Err(Duration::from_secs(1)),
        }
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

    #[test]
    fn unlimited_always_goes_and_limited_says_when() {
        let l = Limiters::default();
        let key = Limiters::keys("t", "sms", "a")[0].clone();
        assert!(l.try_acquire(&key, None, 1_000_000).is_ok());
        assert!(l.try_acquire(&key, Some(10), 10).is_ok(), "the burst is free");
        let wait = l.try_acquire(&key, Some(10), 5).expect_err("the next five wait");
        assert!(wait >= Duration::from_millis(400) && wait <= Duration::from_millis(600), "about half a second at 10/s: {wait:?}");
        let other = Limiters::keys("t", "sms", "a")[1].clone();
        assert!(l.try_acquire(&other, Some(10), 10).is_ok(), "the account's limit is its own");
    }
}
