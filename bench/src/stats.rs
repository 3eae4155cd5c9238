//! Small helpers: a monotonic clock shared by every phase, percentiles, rates.

use std::sync::OnceLock;
use std::time::Instant;

static T0: OnceLock<Instant> = OnceLock::new();

/// Start the bench clock (idempotent).
pub fn init_clock() {
    T0.get_or_init(Instant::now);
}

/// Nanoseconds since the bench clock started.
pub fn now_ns() -> u64 {
    T0.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Percentile (0..=100) of an already sorted slice, nearest-rank; None when empty.
pub fn percentile_sorted(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50, p95, p99, p99.9 and max of a set of nanosecond samples, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Latency {
    pub fn from_ns(mut v: Vec<u64>) -> Self {
        v.sort_unstable();
        let ms = |x: Option<u64>| x.map(|n| n as f64 / 1e6);
        let p = |q: f64| ms(percentile_sorted(&v, q));
        Latency { samples: v.len(), p50_ms: p(50.0), p95_ms: p(95.0), p99_ms: p(99.0), p999_ms: p(99.9), max_ms: ms(v.last().copied()) }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "samples": self.samples, "p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "p99_ms": self.p99_ms,
            "p99_9_ms": self.p999_ms, "max_ms": self.max_ms,
        })
    }
}

/// Events per second over a nanosecond span; None for an empty span.
pub fn rate(count: u64, span_ns: u64) -> Option<f64> {
    (span_ns > 0 && count > 0).then(|| count as f64 / (span_ns as f64 / 1e9))
}

pub fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_sorted(&v, 50.0), Some(50));
        assert_eq!(percentile_sorted(&v, 99.0), Some(99));
        assert_eq!(percentile_sorted(&v, 100.0), Some(100));
        assert_eq!(percentile_sorted(&[7], 99.0), Some(7));
        assert_eq!(percentile_sorted(&[], 50.0), None);
        assert_eq!(rate(10, 2_000_000_000), Some(5.0));
        assert_eq!(rate(0, 1), None);
    }
}
