//! What both CRM clients share: retry policy, a client-side rate limiter, call
//! counters, an injectable pause, and secrets that never print.

pub mod limiter;
pub mod retry;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::secret::Secret;
pub use limiter::RateLimiter;
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
