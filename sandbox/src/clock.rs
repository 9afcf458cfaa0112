//! The sandboxes' one clock. Rate windows, daily caps, token expiry, retry schedules and
//! search lag all read it, and the control API moves it forward, so tests advance time
//! instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Clock(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    mode: Mode,
    /// Milliseconds added by `advance`.
    offset_ms: AtomicI64,
}

#[derive(Debug)]
enum Mode {
    /// Wall time (plus advances): the demo and the binary.
    Running { start_ms: i64, start: Instant },
    /// Stands still unless advanced: tests.
    Frozen { at_ms: i64 },
}

impl Clock {
    /// A clock that runs with wall time.
    pub fn running() -> Self {
        let start_ms = chrono::Utc::now().timestamp_millis();
        Self::with(Mode::Running {
            start_ms,
            start: Instant::now(),
        })
    }

    /// A clock that stands at `at_ms` (epoch milliseconds) until advanced.
    pub fn frozen(at_ms: i64) -> Self {
        Self::with(Mode::Frozen { at_ms })
    }

    fn with(mode: Mode) -> Self {
        Clock(Arc::new(Inner {
            mode,
            offset_ms: AtomicI64::new(0),
        }))
    }

    /// Now, in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        let base = match &self.0.mode {
            Mode::Running { start_ms, start } => {
                start_ms + i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX / 2)
            }
            Mode::Frozen { at_ms } => *at_ms,
        };
        base + self.0.offset_ms.load(Ordering::SeqCst)
    }

    /// Moves time forward (never back: a negative amount is ignored).
    pub fn advance(&self, ms: i64) {
        if ms > 0 {
            self.0.offset_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }

    pub fn is_frozen(&self) -> bool {
        matches!(self.0.mode, Mode::Frozen { .. })
    }
}

/// `2024-09-11T13:27:39.356Z`, as both CRMs print times.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_clock_moves_only_when_advanced() {
        let c = Clock::frozen(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance(500);
        c.advance(-100);
        assert_eq!(c.now_ms(), 1_500);
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
    }
}
