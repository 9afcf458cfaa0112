//! What both CRM clients share: retry policy, a client-side rate limiter, call
//! counters, an injectable pause, and secrets that never print.

pub mod limiter;
pub mod retry;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::secret::Secret;
pub use limiter::{RateLimiter, Turn};
pub use retry::RetryPolicy;

pub use crate::ports::crm::ErrorClass;

/// Waits between attempts, and the clock those waits run on. Injected so that tests
/// against a sandbox move the sandbox's clock instead of sleeping; whatever measures
/// time in a client (its rate limiter, its token's expiry) reads this clock too, or a
/// wait that moves one clock would be measured on another.
#[async_trait::async_trait]
pub trait Pause: Send + Sync + std::fmt::Debug {
    async fn pause(&self, duration: Duration);
    /// Milliseconds on this clock (only differences mean anything).
    fn now_ms(&self) -> i64;
}

/// Real waiting, on tokio's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioPause;

#[async_trait::async_trait]
impl Pause for TokioPause {
    async fn pause(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn now_ms(&self) -> i64 {
        static START: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
        let start = *START.get_or_init(tokio::time::Instant::now);
        i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}

/// Calls of one chunked request in flight at once. One after another, a batch of 1,000
/// records read in chunks of 100 waits out ten round trips; together, the rate limiter
/// sets the pace (it admits a call every 53 ms at HubSpot's 190 per 10 s) and the
/// round trips overlap. Four keeps a worker's burst small beside the others'.
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// Runs `call` on each chunk of `size` items, up to [`CHUNKS_IN_FLIGHT`] at once, and
/// gives the answers in the chunks' order. After a call fails, chunks not yet sent are
/// not sent (calls already in flight finish) and the first failure is returned, as a
/// loop that stopped at the failing chunk would.
pub async fn in_chunks<'a, T, R, E, F, Fut>(
    items: &'a [T],
    size: usize,
    call: F,
) -> Result<Vec<R>, E>
where
    F: Fn(&'a [T]) -> Fut,
    Fut: Future<Output = Result<R, E>>,
{
    use futures::StreamExt;
    let failed = AtomicBool::new(false);
    // The calls are made up front (unpolled, they send nothing) rather than in a
    // stream's closure: a closure held across an await trips rustc's higher-ranked
    // lifetime check in `Send` futures (rust-lang/rust#102211).
    let calls: Vec<_> = items
        .chunks(size.max(1))
        .map(|chunk| unless_failed(&failed, call(chunk)))
        .collect();
    let answers: Vec<Option<Result<R, E>>> = futures::stream::iter(calls)
        .buffered(CHUNKS_IN_FLIGHT)
        .collect()
        .await;
    answers.into_iter().flatten().collect()
}

/// `answer`, unless an earlier call has failed (then nothing is sent).
async fn unless_failed<R, E>(
    failed: &AtomicBool,
    answer: impl Future<Output = Result<R, E>>,
) -> Option<Result<R, E>> {
    if failed.load(Ordering::Relaxed) {
        return None;
    }
    let answer = answer.await;
    if answer.is_err() {
        failed.store(true, Ordering::Relaxed);
    }
    Some(answer)
}

/// API calls made, per endpoint (`POST /crm/v3/objects/contacts/batch/read`); every
/// HTTP request counts, retries included, as the CRMs count them.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    pub fn add(&self, endpoint: &str) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(endpoint.to_owned()).or_default() += 1;
    }

    pub fn total(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `/crm/v3/objects/contacts/123` -> `/crm/v3/objects/contacts/{id}`: the counter key.
pub fn endpoint_key(method: &reqwest::Method, path: &str) -> String {
    let shape: Vec<&str> = path
        .split('/')
        .map(|seg| {
            let id_like = seg.len() >= 15
                && seg.chars().all(|c| c.is_ascii_alphanumeric())
                && seg.chars().any(|c| c.is_ascii_digit());
            if (!seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit())) || id_like {
                "{id}"
            } else {
                seg
            }
        })
        .collect();
    format!("{method} {}", shape.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Chunks go out together (up to the bound), answers keep the chunks' order, and a
    /// failure stops the chunks not yet sent.
    #[tokio::test(start_paused = true)]
    async fn chunks_go_out_together_in_order_and_stop_at_a_failure() {
        let items: Vec<u32> = (0..1_000).collect();
        let (now, most, sent) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        let call = |chunk: &[u32]| {
            let first = chunk[0];
            let (now, most, sent) = (&now, &most, &sent);
            async move {
                sent.fetch_add(1, Ordering::SeqCst);
                let in_flight = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(in_flight, Ordering::SeqCst);
                // Later chunks answer sooner: the order must not come from timing.
                tokio::time::sleep(Duration::from_millis(u64::from(1_000 - first))).await;
                now.fetch_sub(1, Ordering::SeqCst);
                if first == 500 {
                    return Err(format!("chunk {first} refused"));
                }
                Ok(first)
            }
        };
        let start = tokio::time::Instant::now();
        let ok = in_chunks(&items[..500], 100, call).await;
        assert_eq!(ok, Ok(vec![0, 100, 200, 300, 400]));
        assert_eq!(most.load(Ordering::SeqCst), CHUNKS_IN_FLIGHT);
        // Five calls of up to a second each, four at a time: two rounds, not five.
        assert!(
            start.elapsed() < Duration::from_millis(2_100),
            "{:?}",
            start.elapsed()
        );

        sent.store(0, Ordering::SeqCst);
        let failed = in_chunks(&items[500..], 100, call).await;
        assert_eq!(failed, Err("chunk 500 refused".to_owned()));
        // Chunks 500-800 were in flight when 500 failed; 900 was never sent.
        assert_eq!(sent.load(Ordering::SeqCst), CHUNKS_IN_FLIGHT);
    }
}
