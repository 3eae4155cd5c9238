//! Retry schedule: exponential backoff with "equal jitter", honouring the
//! provider's Retry-After, with a cap on attempts.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total attempts including the first; after that the delivery is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds.
    pub base_ms: u64,
    /// Upper bound of the backoff delay.
    pub max_ms: u64,
    /// Upper bound for a provider's Retry-After (a provider asking for a day is not obeyed).
    pub max_retry_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_ms: 1_000, max_ms: 300_000, max_retry_after_ms: 3_600_000 }
    }
}

impl RetryPolicy {
    /// Delay before attempt `failed_attempt + 1`, or `None` when attempts are
    /// exhausted. `unit` is a uniform random number in [0, 1).
    pub fn next_delay(&self, failed_attempt: u32, retry_after_ms: Option<u64>, unit: f64) -> Option<u64> {
        if failed_attempt >= self.max_attempts {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 4, base_ms: 1000, max_ms: 5000, max_retry_after_ms: 60_000 }
    }

    #[test]
    fn doubles_within_jitter_bounds_and_caps() {
        let p = policy();
        assert_eq!(p.next_delay(1, None, 0.0), Some(500));
        assert_eq!(p.next_delay(1, None, 0.999_999), Some(999));
        assert_eq!(p.next_delay(2, None, 0.0), Some(1000));
        assert_eq!(p.next_delay(3, None, 1.0), Some(4000));
        let capped = RetryPolicy { max_attempts: 50, ..p };
        assert_eq!(capped.next_delay(40, None, 1.0), Some(5000));
    }

    #[test]
    fn retry_after_is_a_floor_but_bounded() {
        let p = policy();
        assert_eq!(p.next_delay(1, Some(30_000), 0.5), Some(30_000));
        assert_eq!(p.next_delay(1, Some(10), 0.0), Some(500));
        assert_eq!(p.next_delay(1, Some(u64::MAX), 0.0), Some(60_000));
    }

    #[test]
    fn stops_after_max_attempts() {
        let p = policy();
        assert!(p.next_delay(3, None, 0.0).is_some());
        assert_eq!(p.next_delay(4, None, 0.0), None);
    }
}
