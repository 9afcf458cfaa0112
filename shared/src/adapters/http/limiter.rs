//! A client-side rate limiter: at most `max` calls per rolling `window`. When several
//! Lambda workers run at once, each takes its share: the CRM's limit divided by the
//! configured maximum concurrency.
//!
//! Calls are paced at `window / max` apart, with a small burst (a fiftieth of `max`)
//! that refills at that pace while calls come slower (a token bucket). Without pacing,
//! a window filled in a burst empties in a burst: every caller waits for the window to
//! roll (seconds, under a steady stream of edits), then the next burst fills it again.
//! Paced, a saturated limiter admits a call every `window / max`, and throughput is the
//! same. The burst refills, so calls that come below the allowance are not held back:
//! two workers' calls a few milliseconds apart both go at once, where strict spacing
//! made the second wait (under 20 edits a second, a wait at most calls).
//!
//! The CRM counts calls when they arrive, and the network does not deliver them with
//! the spacing they were sent at: two calls sent a window apart can arrive a few
//! milliseconds less than a window apart, and the second is refused. A call therefore
//! stays counted for the window and [`JITTER`] more.
//!
//! Calls waiting go in turn ([`RateLimiter::acquire_in_turn`]): writes first, as they
//! finish work already begun (an edit's write waits behind no new edit's read), then
//! the rest in the order they came. Waiters that raced for each freed slot made the
//! wait's tail long under a stream of edits: one unlucky call lost race after race.
//! A change feed's search (under two limits, [`RateLimiter::acquire_all`]) yields to
//! those lines for up to [`YIELD_MS`]: the feeds' polls give way to the edits they back
//! up. A batch's search stands in both lines ([`RateLimiter::acquire_both_in_turn`]).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use super::Pause;

/// The burst is `max` over this: four of HubSpot's 190, a worker's call each. Under a
/// stream at the allowance the burst taken when it began is paid back a window later,
/// when the window fills, as a stall of as many paces (a twentieth, ten calls, stalled
/// the stream half a second every ten).
const BURST_PART: usize = 50;

/// How much closer together two calls may arrive than they were sent.
pub const JITTER: Duration = Duration::from_millis(100);

/// How long a call under several limits (a HubSpot search) yields to the calls waiting
/// their turn. Under a stream of edits at the allowance, the change feeds' searches (the
/// safety net under the pushes) then go in the gaps rather than ahead of an edit's read
/// or write, and a poll that waits polls less often; a line that never empties holds a
/// search back this long at most.
pub const YIELD_MS: i64 = 2_000;

#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    /// When the calls in the window were made, on the pause's clock (ms), and when the
    /// next call is due at the pace (the bucket's theoretical arrival time).
    calls: Mutex<Calls>,
}

#[derive(Debug, Default)]
struct Calls {
    made: VecDeque<i64>,
    due: i64,
    /// The calls waiting their turn, first first.
    waiting: BTreeSet<(Turn, u64)>,
    /// The next waiter's number.
    next: u64,
}

/// Which of the calls waiting goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Turn {
    /// A write: the last step of work already begun.
    Write,
    /// Anything else, in the order they came.
    Other,
}

/// A waiter's place in the line, given up when its wait ends or is abandoned.
struct Place<'a> {
    limiter: &'a RateLimiter,
    at: (Turn, u64),
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut calls = self.limiter.lock();
        calls.waiting.remove(&self.at);
    }
}

impl RateLimiter {
    /// `limit` calls per `window` for the whole account, shared by `concurrency`
    /// workers (each gets at least one call per window).
    pub fn shared(limit: u32, window: Duration, concurrency: u32) -> Self {
        let max = (limit / concurrency.max(1)).max(1) as usize;
        RateLimiter {
            max,
            window: window + JITTER,
            calls: Mutex::new(Calls::default()),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for one more call to fit in the window and for the calls waiting ahead of
    /// it (writes before other calls, then first come) to go, then counts it.
    pub async fn acquire_in_turn(&self, turn: Turn, pause: &dyn Pause) {
        self.wait_turn(None, turn, pause).await;
    }

    /// Waits until one more call fits in the window and the calls ahead of it went,
    /// then counts it (a call that is no write: [`RateLimiter::acquire_in_turn`]).
    pub async fn acquire(&self, pause: &dyn Pause) {
        self.acquire_in_turn(Turn::Other, pause).await;
    }

    /// Waits until one more call fits in every one of `limiters` at the same moment,
    /// then counts it in each. A call under two limits (a HubSpot search: the burst
    /// limit and search's own) acquired from one and then the other would be counted by
    /// the first before a wait at the second, and sent later than counted: the first's
    /// spacing would then not hold where the CRM counts.
    pub async fn acquire_all(limiters: &[&RateLimiter], pause: &dyn Pause) {
        let asked = pause.now_ms();
        loop {
            let wait = {
                let now = pause.now_ms();
                // Locked in the order given; every caller gives them in one order.
                let mut held: Vec<_> = limiters.iter().map(|l| (l, l.lock())).collect();
                let mut wait = held
                    .iter_mut()
                    .map(|(l, calls)| l.wait_ms(calls, now))
                    .max()
                    .unwrap_or(0);
                // Calls waiting in line go first, for a while (`YIELD_MS`).
                let line = held.iter().any(|(_, calls)| !calls.waiting.is_empty());
                if line && now - asked < YIELD_MS {
                    let pace = held.iter().map(|(l, _)| l.spacing_ms()).min();
                    wait = wait.max(pace.unwrap_or(1));
                }
                if wait == 0 {
                    for (l, calls) in &mut held {
                        l.count(calls, now);
                    }
                    return;
                }
                Duration::from_millis(u64::try_from(wait).unwrap_or(0))
            };
            pause.pause(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Waits its turn (`turn`) in the lines of both `line` and `also` and until both
    /// admit one more call, then counts it in both. A batch's HubSpot search goes so:
    /// in line with the reads, and ahead of the change feeds' searches, which yield to
    /// any line ([`RateLimiter::acquire_all`]); without it, a feed paging through an
    /// initial sync's own writes took every search, and the batches waiting on one
    /// stalled the sync.
    pub async fn acquire_both_in_turn(
        line: &RateLimiter,
        also: &RateLimiter,
        turn: Turn,
        pause: &dyn Pause,
    ) {
        line.wait_turn(Some(also), turn, pause).await;
    }

    /// Takes a place in this limiter's line (and in `also`'s) and waits until it is
    /// first in both and one more call fits in both; counts it in both.
    async fn wait_turn(&self, also: Option<&RateLimiter>, turn: Turn, pause: &dyn Pause) {
        // Both places are taken under both locks: two callers then stand in the same
        // order in both lines, and neither waits for the other.
        let (place, also_place) = {
            let mut calls = self.lock();
            let mut others = also.map(|a| (a, a.lock()));
            let at = (turn, calls.next);
            calls.next += 1;
            calls.waiting.insert(at);
            let also_place = others.as_mut().map(|(a, o)| {
                let at = (turn, o.next);
                o.next += 1;
                o.waiting.insert(at);
                Place { limiter: a, at }
            });
            (Place { limiter: self, at }, also_place)
        };
        loop {
            let wait = {
                let now = pause.now_ms();
                // Locked in the order `acquire_all` takes them: the line first.
                let mut calls = self.lock();
                let mut others = also.map(|a| (a, a.lock()));
                let mut wait = self.wait_ms(&mut calls, now);
                let mut first = calls.waiting.first() == Some(&place.at);
                if let (Some((a, o)), Some(p)) = (others.as_mut(), &also_place) {
                    wait = wait.max(a.wait_ms(o, now));
                    first = first && o.waiting.first() == Some(&p.at);
                }
                if first && wait == 0 {
                    self.count(&mut calls, now);
                    if let Some((a, o)) = others.as_mut() {
                        a.count(o, now);
                    }
                    // Unlocked before the place leaves the line (it locks too).
                    drop((calls, others));
                    return;
                }
                // Behind others: look again at the pace (the one ahead goes by then).
                let wait = if first {
                    wait
                } else {
                    wait.max(1).min(self.spacing_ms())
                };
                Duration::from_millis(u64::try_from(wait).unwrap_or(0))
            };
            pause.pause(wait.max(Duration::from_millis(1))).await;
        }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }

    /// Counts a call made at `now`, and moves the pace on past it.
    fn count(&self, calls: &mut Calls, now: i64) {
        calls.made.push_back(now);
        calls.due = calls.due.max(now) + self.spacing_ms();
    }

    /// The pace: `window / max` apart.
    fn spacing_ms(&self) -> i64 {
        self.window_ms() / i64::try_from(self.max).unwrap_or(i64::MAX).max(1)
    }

    /// How long until one more call fits (0: now), forgetting calls out of the window.
    fn wait_ms(&self, calls: &mut Calls, now: i64) -> i64 {
        let window = self.window_ms();
        while calls.made.front().is_some_and(|t| now - *t >= window) {
            calls.made.pop_front();
        }
        if calls.made.len() >= self.max {
            let oldest = calls.made.front().copied().unwrap_or(now);
            return (window - (now - oldest)).max(0);
        }
        // A call may go this far ahead of the pace: the burst, less the one it is.
        let burst = i64::try_from(self.max.div_ceil(BURST_PART))
            .unwrap_or(1)
            .max(1);
        let ahead = (burst - 1) * self.spacing_ms();
        (calls.due.max(now) - ahead - now).max(0)
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
        // At most the burst's four paces and one more, once a window (ten paces, a
        // burst of ten, stalled 560 ms).
        assert!(
            longest < Duration::from_millis(400),
            "a stall of {longest:?}"
        );
        // And the allowance is used: 760 calls in about 40 s.
        assert!(
            start.elapsed() < Duration::from_secs(41),
            "{:?}",
            start.elapsed()
        );
    }

    /// Calls that come below the allowance (here 13 a second of HubSpot's 19, in pairs a
    /// few milliseconds apart, as workers' calls come) go when they come: the pace holds
    /// back only what would run ahead of it by more than the burst.
    #[tokio::test(start_paused = true)]
    async fn calls_below_the_allowance_are_not_held_back() {
        let limiter = RateLimiter::shared(190, Duration::from_secs(10), 1);
        let mut held = Duration::ZERO;
        for _ in 0..150 {
            for _ in 0..2 {
                let asked = tokio::time::Instant::now();
                limiter.acquire(&TokioPause).await;
                held += asked.elapsed();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(140)).await;
        }
        assert_eq!(held, Duration::ZERO);
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

    /// Under saturation, waiting calls go in turn: a write ahead of the reads that
    /// came before it, the reads in the order they came. (Racing for each freed slot,
    /// a call could lose again and again.)
    #[tokio::test(start_paused = true)]
    async fn waiting_calls_go_in_turn_writes_first() {
        let limiter = std::sync::Arc::new(RateLimiter::shared(190, Duration::from_secs(10), 1));
        // The burst used up: every call from here on waits.
        for _ in 0..10 {
            limiter.acquire_in_turn(Turn::Other, &TokioPause).await;
        }
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (n, turn) in [
            (0, Turn::Other),
            (1, Turn::Other),
            (2, Turn::Other),
            (3, Turn::Write),
        ] {
            let (limiter, order) = (limiter.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                limiter.acquire_in_turn(turn, &TokioPause).await;
                order.lock().unwrap_or_else(|p| p.into_inner()).push(n);
            }));
            // Each a little after the one before.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for t in tasks {
            let _ = t.await;
        }
        let order = order.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(order, vec![3, 0, 1, 2]);
    }

    /// A search yields to the calls waiting their turn (edits' reads and writes at the
    /// allowance): they go first; a line that never empties holds it back `YIELD_MS`
    /// at most.
    #[tokio::test(start_paused = true)]
    async fn a_search_yields_to_the_line_for_a_while() {
        let burst = std::sync::Arc::new(RateLimiter::shared(190, Duration::from_secs(10), 1));
        let search = RateLimiter::shared(5, Duration::from_secs(1), 1);
        for _ in 0..10 {
            burst.acquire_in_turn(Turn::Other, &TokioPause).await;
        }
        let start = tokio::time::Instant::now();
        let mut line = Vec::new();
        for _ in 0..3 {
            let burst = burst.clone();
            line.push(tokio::spawn(async move {
                burst.acquire_in_turn(Turn::Write, &TokioPause).await;
                start.elapsed()
            }));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        RateLimiter::acquire_all(&[&search, &burst], &TokioPause).await;
        let searched = start.elapsed();
        for call in line {
            let went = call.await.unwrap_or_default();
            assert!(
                went < searched,
                "a call in line at {went:?}, the search at {searched:?}"
            );
        }
        // A line that never empties.
        let crowd = {
            let burst = burst.clone();
            tokio::spawn(async move {
                loop {
                    burst.acquire_in_turn(Turn::Write, &TokioPause).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        let asked = tokio::time::Instant::now();
        RateLimiter::acquire_all(&[&search, &burst], &TokioPause).await;
        crowd.abort();
        let held = asked.elapsed();
        // Two seconds, and a pace.
        let most = Duration::from_millis(2_200);
        assert!(held <= most, "a search held back {held:?}");
    }

    /// A batch's search waits in line at the search limit, and a change feed's search
    /// that asked first yields to it; batches' searches go in the order they came.
    #[tokio::test(start_paused = true)]
    async fn a_batchs_search_goes_ahead_of_a_feeds() {
        let burst = std::sync::Arc::new(RateLimiter::shared(190, Duration::from_secs(10), 1));
        let search = std::sync::Arc::new(RateLimiter::shared(5, Duration::from_secs(1), 1));
        for _ in 0..5 {
            RateLimiter::acquire_all(&[&search, &burst], &TokioPause).await;
        }
        let start = tokio::time::Instant::now();
        let feed = {
            let (search, burst) = (search.clone(), burst.clone());
            tokio::spawn(async move {
                RateLimiter::acquire_all(&[&search, &burst], &TokioPause).await;
                start.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut batches = Vec::new();
        for _ in 0..2 {
            let (search, burst) = (search.clone(), burst.clone());
            batches.push(tokio::spawn(async move {
                RateLimiter::acquire_both_in_turn(&search, &burst, Turn::Other, &TokioPause).await;
                start.elapsed()
            }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let fed = feed.await.unwrap_or_default();
        let mut went = Vec::new();
        for b in batches {
            went.push(b.await.unwrap_or_default());
        }
        assert!(went[0] < went[1], "batches in turn: {went:?}");
        assert!(
            went[1] < fed,
            "the batches at {went:?}, the feed at {fed:?}"
        );
        // Every one of them within the search limit: a pace apart at least.
        assert!(
            fed - went[1] >= Duration::from_millis(200),
            "{went:?} {fed:?}"
        );
    }

    /// A waiter given up (its batch abandoned) leaves the line: the ones behind it go.
    #[tokio::test(start_paused = true)]
    async fn a_waiter_given_up_leaves_the_line() {
        let limiter = RateLimiter::shared(190, Duration::from_secs(10), 1);
        for _ in 0..10 {
            limiter.acquire_in_turn(Turn::Other, &TokioPause).await;
        }
        let given_up = tokio::time::timeout(
            Duration::from_millis(1),
            limiter.acquire_in_turn(Turn::Other, &TokioPause),
        )
        .await;
        assert!(given_up.is_err(), "it was still waiting");
        let next = tokio::time::timeout(
            Duration::from_millis(200),
            limiter.acquire_in_turn(Turn::Other, &TokioPause),
        )
        .await;
        assert!(next.is_ok(), "the next waiter was held behind it");
    }
}
