//! A client-side rate limiter: at most `max` calls per rolling `window`. When several
//! Lambda workers run at once, each takes its share: the CRM's limit divided by the
//! configured maximum concurrency.
//!
//! Past a small burst (a twentieth of `max`) calls are paced at `window / max` apart.
//! Without pacing, a window filled in a burst empties in a burst: every caller waits
//! for the window to roll (seconds, under a steady stream of edits), then the next
//! burst fills it again. Paced, a saturated limiter admits a call every `window / max`,
//! and throughput is the same.

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
                let spacing = window / i64::try_from(self.max).unwrap_or(i64::MAX).max(1);
                let paced = calls.len() >= self.max.div_ceil(20);
                let since_last = calls.back().map_or(i64::MAX, |last| now - *last);
                if calls.len() < self.max && !(paced && since_last < spacing) {
                    calls.push_back(now);
                    return;
                }
                let left = if calls.len() < self.max {
                    spacing - since_last
                } else {
                    calls.front().map_or(0, |oldest| window - (now - *oldest))
                };
                Duration::from_millis(u64::try_from(left.max(0)).unwrap_or(0))
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
        limiter.acquire(&TokioPause).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "a burst goes at once");
        for _ in 0..4 {
            limiter.acquire(&TokioPause).await;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        limiter.acquire(&TokioPause).await;
        assert!(start.elapsed() >= Duration::from_secs(10));
    }

    /// A steady stream of calls past the limit is admitted evenly: no caller waits for
    /// the window to roll once the stream runs (HubSpot's 190 per 10 s: a call every
    /// 53 ms, never a stall of seconds).
    #[tokio::test(start_paused = true)]
    async fn a_saturated_limiter_paces_calls_evenly() {
        let limiter = RateLimiter::shared(190, Duration::from_secs(10), 1);
        let start = tokio::time::Instant::now();
        let mut admitted = Vec::new();
        for _ in 0..760 {
            limiter.acquire(&TokioPause).await;
            admitted.push(start.elapsed());
        }
        let longest = admitted
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        assert!(longest < Duration::from_secs(1), "a stall of {longest:?}");
        // And the allowance is used: 760 calls in about 40 s.
        assert!(
            start.elapsed() < Duration::from_secs(41),
            "{:?}",
            start.elapsed()
        );
    }
}
