//! A client-side rate limiter: at most `max` calls per rolling `window`. When several
//! Lambda workers run at once, each takes its share: the CRM's limit divided by the
//! configured maximum concurrency.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::Pause;

#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    calls: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    /// `limit` calls per `window` for the whole account, shared by `concurrency`
    /// workers (each gets at least one call per window).
    pub fn shared(limit: u32, window: Duration, concurrency: u32) -> Self {
        let max = (limit / concurrency.max(1)).max(1) as usize;
        RateLimiter {
            max,
            window,
            calls: Mutex::new(VecDeque::new()),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Waits until one more call fits in the window, then counts it.
    pub async fn acquire(&self, pause: &dyn Pause) {
        loop {
            let wait = {
                let now = Instant::now();
                let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
                while calls
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    calls.pop_front();
                }
                if calls.len() < self.max {
                    calls.push_back(now);
                    return;
                }
                calls.front().map_or(Duration::ZERO, |oldest| {
                    self.window.saturating_sub(now.duration_since(*oldest))
                })
            };
            pause.pause(wait.max(Duration::from_millis(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::http::TokioPause;

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_window_wait_for_it_to_roll() {
        let limiter = RateLimiter::shared(10, Duration::from_secs(10), 2);
        assert_eq!(limiter.max(), 5);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire(&TokioPause).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire(&TokioPause).await;
        assert!(start.elapsed() >= Duration::from_secs(10));
    }
}
