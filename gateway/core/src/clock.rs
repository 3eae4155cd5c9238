//! The time a process's rules see, passed in as a value: production runs on
//! the system clock; in-process tests run on tokio's clock (paused time moves
//! it instantly: a ten-minute escalation passes in milliseconds); a real
//! binary started for tests with `testing_clock = true` gets a clock an
//! operator can move forward (`POST /admin/clock`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::Millis;

#[derive(Clone, Debug, Default)]
pub struct Clock(Source);

#[derive(Clone, Debug, Default)]
enum Source {
    #[default]
    System,
    /// The system clock plus an offset that only grows.
    Movable(Arc<AtomicI64>),
    /// `start` plus the time tokio's clock moved since `origin`.
    Tokio { start: Millis, origin: tokio::time::Instant },
}

impl Clock {
    /// Wall-clock time.
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// Wall-clock time that [`Clock::advance`] can move forward (tests of a real binary).
    pub fn movable() -> Clock {
        Clock(Source::Movable(Arc::new(AtomicI64::new(0))))
    }

    /// Tokio's time, starting at the wall-clock time of this call: under
    /// `#[tokio::test(start_paused = true)]` it moves only when every task
    /// waits on a timer, and then at once to the next timer.
    pub fn tokio() -> Clock {
        Clock(Source::Tokio { start: now_ms(), origin: tokio::time::Instant::now() })
    }

    /// Whether this is tokio's clock (which jumps ahead whenever every task
    /// waits, so waits on other threads must go through the blocking pool).
    pub fn is_tokio(&self) -> bool {
        matches!(self.0, Source::Tokio { .. })
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> Millis {
        match &self.0 {
            Source::System => now_ms(),
            Source::Movable(offset) => now_ms() + offset.load(Ordering::Relaxed),
            Source::Tokio { start, origin } => start + origin.elapsed().as_millis() as Millis,
        }
    }

    /// Move a movable clock forward by `ms`; `None` for any other clock.
    /// Returns the total offset.
    pub fn advance(&self, ms: Millis) -> Option<Millis> {
        match &self.0 {
            Source::Movable(offset) => Some(offset.fetch_add(ms.max(0), Ordering::Relaxed) + ms.max(0)),
            _ => None,
        }
    }
}

/// Wall-clock milliseconds, for timestamps that no rule depends on (record
/// metadata, schema migrations). Rules take a [`Clock`].
pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_movable_clock_only_moves_forward() {
        let c = Clock::movable();
        let before = c.now_ms();
        assert_eq!(c.advance(60_000), Some(60_000));
        assert_eq!(c.advance(-5), Some(60_000), "never backwards");
        assert!(c.now_ms() >= before + 60_000);
        assert_eq!(Clock::system().advance(1), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time() {
        let c = Clock::tokio();
        let t0 = c.now_ms();
        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
        assert_eq!(c.now_ms() - t0, 600_000);
    }
}
