//! Retry schedule: exponential backoff with "equal jitter", honouring the
//! provider's Retry-After, with a cap on attempts.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// When and how often a delivery is tried again. The defaults outlast real
/// provider outages: backoff doubles from 1 s up to an hour between tries, and
/// a delivery is dead-lettered only after 24 hours without success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Most attempts including the first; after that the delivery is
    /// dead-lettered (a ceiling: `give_up_after_ms` usually ends it first).
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds.
    pub base_ms: u64,
    /// Upper bound of the backoff delay.
    pub max_ms: u64,
    /// Upper bound for a provider's Retry-After (a provider asking for a day is not obeyed).
    pub max_retry_after_ms: u64,
    /// No retry is scheduled once the delivery has been due this long: it is
    /// dead-lettered with its history.
    pub give_up_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 100, base_ms: 1_000, max_ms: 3_600_000, max_retry_after_ms: 3_600_000, give_up_after_ms: 86_400_000 }
    }
}

impl RetryPolicy {
    /// Delay before attempt `failed_attempt + 1`, or `None` when the delivery
    /// is to be dead-lettered: attempts exhausted, or `due_for_ms` (how long
    /// ago it first became due) past `give_up_after_ms`. `unit` is a uniform
    /// random number in [0, 1).
    pub fn next_delay(&self, failed_attempt: u32, retry_after_ms: Option<u64>, unit: f64, due_for_ms: i64) -> Option<u64> {
        if failed_attempt >= self.max_attempts || due_for_ms.max(0) as u64 >= self.give_up_after_ms {
            return None;
        }
        let exp = failed_attempt.saturating_sub(1).min(32);
        let ceiling = self.base_ms.saturating_mul(1u64 << exp).min(self.max_ms);
        // Equal jitter: half fixed, half random, so retries never bunch at zero.
        let half = ceiling / 2;
        let jittered = half + ((ceiling - half) as f64 * unit.clamp(0.0, 1.0)) as u64;
        let floor = retry_after_ms.unwrap_or(0).min(self.max_retry_after_ms);
        Some(jittered.max(floor))
    }

    /// Problems with the values, naming the field under `prefix`.
    pub fn check(&self, prefix: &str) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err(format!("{prefix}.max_attempts must be at least 1"));
        }
        if self.base_ms == 0 || self.max_ms < self.base_ms {
            return Err(format!("{prefix}.base_ms must be at least 1 and {prefix}.max_ms at least base_ms"));
        }
        Ok(())
    }
}

/// Some fields of a [`RetryPolicy`], set for a channel, a tenant, or a
/// tenant's channel; the rest come from the wider level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryOverride {
    pub max_attempts: Option<u32>,
    pub base_ms: Option<u64>,
    pub max_ms: Option<u64>,
    pub max_retry_after_ms: Option<u64>,
    pub give_up_after_ms: Option<u64>,
}

impl RetryOverride {
    pub fn over(&self, base: &RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            base_ms: self.base_ms.unwrap_or(base.base_ms),
            max_ms: self.max_ms.unwrap_or(base.max_ms),
            max_retry_after_ms: self.max_retry_after_ms.unwrap_or(base.max_retry_after_ms),
            give_up_after_ms: self.give_up_after_ms.unwrap_or(base.give_up_after_ms),
        }
    }
}

/// The retry policy of every (tenant, channel): the most specific of
/// tenant+channel, tenant, channel, and the default.
#[derive(Debug, Clone, Default)]
pub struct RetryPolicies {
    default: RetryPolicy,
    /// Tenant ("" = every tenant) → channel ("" = every channel) → policy,
    /// so that a lookup borrows its keys.
    specific: HashMap<String, HashMap<String, RetryPolicy>>,
}

impl RetryPolicies {
    /// `channels`: per-channel overrides for everyone; `tenants`: per tenant,
    /// its own override and its per-channel ones.
    pub fn new(
        default: RetryPolicy,
        channels: &HashMap<String, RetryOverride>,
        tenants: &[(String, Option<RetryOverride>, HashMap<String, RetryOverride>)],
    ) -> Result<Self, String> {
        default.check("retry")?;
        let mut everyone = HashMap::new();
        for (ch, o) in channels {
            let p = o.over(&default);
            p.check(&format!("retry.channels.{ch}"))?;
            everyone.insert(ch.clone(), p);
        }
        let mut specific = HashMap::new();
        for (tenant, own, per_channel) in tenants {
            let mut mine = HashMap::new();
            let base = own.as_ref().map(|o| o.over(&default));
            if let Some(p) = &base {
                p.check(&format!("tenants.{tenant}.retry"))?;
                mine.insert(String::new(), p.clone());
            }
            for (ch, o) in per_channel {
                // Tenant+channel over tenant, over channel, over the default.
                let wider = base.clone().or_else(|| everyone.get(ch).cloned()).unwrap_or_else(|| default.clone());
                let p = o.over(&wider);
                p.check(&format!("tenants.{tenant}.retry_channels.{ch}"))?;
                mine.insert(ch.clone(), p);
            }
            if !mine.is_empty() {
                specific.insert(tenant.clone(), mine);
            }
        }
        if !everyone.is_empty() {
            specific.insert(String::new(), everyone);
        }
        Ok(Self { default, specific })
    }

    pub fn get(&self, tenant: &str, channel: &str) -> &RetryPolicy {
        let mine = self.specific.get(tenant).and_then(|m| m.get(channel).or_else(|| m.get("")));
        mine.or_else(|| self.specific.get("").and_then(|m| m.get(channel))).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 4, base_ms: 1000, max_ms: 5000, max_retry_after_ms: 60_000, give_up_after_ms: 86_400_000 }
    }

    #[test]
    fn doubles_within_jitter_bounds_and_caps() {
        let p = policy();
        assert_eq!(p.next_delay(1, None, 0.0, 0), Some(500));
        assert_eq!(p.next_delay(1, None, 0.999_999, 0), Some(999));
        assert_eq!(p.next_delay(2, None, 0.0, 0), Some(1000));
        assert_eq!(p.next_delay(3, None, 1.0, 0), Some(4000));
        let capped = RetryPolicy { max_attempts: 50, ..p };
        assert_eq!(capped.next_delay(40, None, 1.0, 0), Some(5000));
    }

    #[test]
    fn retry_after_is_a_floor_but_bounded() {
        let p = policy();
        assert_eq!(p.next_delay(1, Some(30_000), 0.5, 0), Some(30_000));
        assert_eq!(p.next_delay(1, Some(10), 0.0, 0), Some(500));
        assert_eq!(p.next_delay(1, Some(u64::MAX), 0.0, 0), Some(60_000));
    }

    #[test]
    fn gives_up_after_the_time_budget_not_before() {
        let p = RetryPolicy::default();
        // A delivery failing for 23 hours is still retried, at most an hour apart.
        assert!(p.next_delay(30, None, 1.0, 23 * 3_600_000).is_some_and(|d| d <= 3_600_000));
        assert_eq!(p.next_delay(30, None, 1.0, 24 * 3_600_000), None);
        // The defaults outlast a 30-minute outage by far.
        let (mut at, mut attempt) = (0i64, 1);
        while at < 1_800_000 {
            at += p.next_delay(attempt, None, 0.5, at).expect("still retrying") as i64;
            attempt += 1;
        }
    }

    #[test]
    fn most_specific_override_wins() {
        let channels = HashMap::from([("sms".to_string(), RetryOverride { max_attempts: Some(7), ..Default::default() })]);
        let tenants = vec![
            ("a".to_string(), Some(RetryOverride { base_ms: Some(50), ..Default::default() }), HashMap::new()),
            ("b".to_string(), None, HashMap::from([("sms".to_string(), RetryOverride { max_ms: Some(9_000), ..Default::default() })])),
        ];
        let all = RetryPolicies::new(RetryPolicy::default(), &channels, &tenants).unwrap();
        assert_eq!(all.get("x", "email"), &RetryPolicy::default());
        assert_eq!(all.get("x", "sms").max_attempts, 7);
        assert_eq!((all.get("a", "sms").base_ms, all.get("a", "sms").max_attempts), (50, 100), "tenant over channel");
        let b = all.get("b", "sms");
        assert_eq!((b.max_ms, b.max_attempts), (9_000, 7), "tenant+channel over channel");
        let bad = HashMap::from([("sms".to_string(), RetryOverride { max_attempts: Some(0), ..Default::default() })]);
        assert!(RetryPolicies::new(RetryPolicy::default(), &bad, &[]).unwrap_err().contains("retry.channels.sms.max_attempts"));
    }

    #[test]
    fn stops_after_max_attempts() {
        let p = policy();
        assert!(p.next_delay(3, None, 0.0, 0).is_some());
        assert_eq!(p.next_delay(4, None, 0.0, 0), None);
    }
}
