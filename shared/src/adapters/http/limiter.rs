//! A client-side rate limiter: at most `max` calls per rolling `window`. When several
//! Lambda workers run at once, each takes its share: the CRM's limit divided by the
//! configured maximum concurrency.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use super::Pause;

#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    /// When the calls in the window were made, on the pause's clock (ms).
    calls: Mutex<VecDeque<i64>>,
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
                let now = pause.now_ms();
                let window = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
                let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
                while calls.front().is_some_and(|t| now - *t >= window) {
                    calls.pop_front();
                }
                if calls.len() < self.max {
                    calls.push_back(now);
                    return;
                }
                calls.front().map_or(Duration::ZERO, |oldest| {
                    let left = (window - (now - *oldest)).max(0);
                    Duration::from_millis(u64::try_from(left).unwrap_or(0))
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
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            limiter.acquire(&TokioPause).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire(&TokioPause).await;
        assert!(start.elapsed() >= Duration::from_secs(10));
    }
}
