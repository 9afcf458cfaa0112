//! Starting sandboxes for client tests, and a pause that moves the sandbox clock
//! instead of sleeping.

use std::sync::Arc;
use std::time::Duration;

use crmsync_sandbox::Clock;
use crmsync_shared::adapters::http::Pause;

/// 2024-05-01T00:00:00Z.
pub const T0: i64 = 1_714_521_600_000;

/// Waiting, as far as the sandboxes can tell: their clock moves forward by the
/// duration, and nothing sleeps.
#[derive(Debug, Clone)]
pub struct SandboxPause(pub Clock);

#[async_trait::async_trait]
impl Pause for SandboxPause {
    async fn pause(&self, duration: Duration) {
        self.0
            .advance(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4));
        tokio::task::yield_now().await;
    }

    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
}

pub fn pause(clock: &Clock) -> Arc<dyn Pause> {
    Arc::new(SandboxPause(clock.clone()))
}
