//! A client-side rate limiter: at most `max` calls per rolling `window`. When several
//! Lambda workers run at once, each takes its share: the CRM's limit divided by the
//! configured maximum concurrency.
//!
//! Past a small burst (a twentieth of `max`) calls are paced at `window / max` apart.
//! Without pacing, a window filled in a burst empties in a burst: every caller waits
//! for the window to roll (seconds, under a steady stream of edits), then the next
//! burst fills it again. Paced, a saturated limiter admits a call every `window / max`,
//! and throughput is the same.
//!
//! The CRM counts calls when they arrive, and the network does not deliver them with
//! the spacing they were sent at: two calls sent a window apart can arrive a few
//! milliseconds less than a window apart, and the second is refused. A call therefore
//! stays counted for the window and [`JITTER`] more.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use super::Pause;

/// How much closer together two calls may arrive than they were sent.
pub const JITTER: Duration = Duration::from_millis(100);

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
            window: window + JITTER,
            calls: Mutex::new(VecDeque::new()),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Waits until one more call fits in the window, then counts it.
    pub async fn acquire(&self, pause: &dyn Pause) {
        Self::acquire_all(&[self], pause).await;
    }

    /// Waits until one more call fits in every one of `limiters` at the same moment,
    /// then counts it in each. A call under two limits (a HubSpot search: the burst
    /// limit and search's own) acquired from one and then the other would be counted by
    /// the first before a wait at the second, and sent later than counted: the first's
    /// spacing would then not hold where the CRM counts.
    pub async fn acquire_all(limiters: &[&RateLimiter], pause: &dyn Pause) {
        loop {
            let wait = {
                let now = pause.now_ms();
                // Locked in the order given; every caller gives them in one order.
                let mut held: Vec<_> = limiters
                    .iter()
                    .map(|l| (l, l.calls.lock().unwrap_or_else(|p| p.into_inner())))
                    .collect();
                let wait = held
                    .iter_mut()
                    .map(|(l, calls)| l.wait_ms(calls, now))
                    .max()
                    .unwrap_or(0);
                if wait == 0 {
                    for (_, calls) in &mut held {
                        calls.push_back(now);
                    }
                    return;
                }
                Duration::from_millis(u64::try_from(wait).unwrap_or(0))
            };
            pause.pause(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// How long until one more call fits (0: now), forgetting calls out of the window.
    fn wait_ms(&self, calls: &mut VecDeque<i64>, now: i64) -> i64 {
        let window = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        while calls.front().is_some_and(|t| now - *t >= window) {
            calls.pop_front();
        }
        let spacing = window / i64::try_from(self.max).unwrap_or(i64::MAX).max(1);
        let paced = calls.len() >= self.max.div_ceil(20);
        let since_last = calls.back().map_or(i64::MAX, |last| now - *last);
        let left = if calls.len() >= self.max {
            calls.front().map_or(0, |oldest| window - (now - *oldest))
        } else if paced && since_last < spacing {
            spacing - since_last
        } else {
            0
        };
        left.max(0)
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

    /// A search is under both of HubSpot's limits. Sent as both admit it, searches keep
    /// search's spacing where they are sent even while other calls crowd the burst limit.
    #[tokio::test(start_paused = true)]
    async fn a_call_under_two_limits_keeps_both() {
        let burst = RateLimiter::shared(190, Duration::from_secs(10), 1);
        let search = RateLimiter::shared(5, Duration::from_secs(1), 1);
        let start = tokio::time::Instant::now();
        let crowd = async {
            for _ in 0..400 {
                burst.acquire(&TokioPause).await;
            }
        };
        let searches = async {
            let mut sent = Vec::new();
            for _ in 0..40 {
                RateLimiter::acquire_all(&[&search, &burst], &TokioPause).await;
                sent.push(start.elapsed());
            }
            sent
        };
        let ((), sent) = tokio::join!(crowd, searches);
        for (i, at) in sent.iter().enumerate().skip(5) {
            let span = *at - sent[i - 5];
            // The window and the margin for the network's jitter, both kept.
            let kept = Duration::from_secs(1) + JITTER;
            assert!(span >= kept, "6 searches sent within {span:?}");
        }
    }
}
