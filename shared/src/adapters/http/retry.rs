//! When and how long to wait before trying again. Classification (which answers are
//! worth another attempt) belongs to each CRM's error type; this is only the policy.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff; each further one doubles, with jitter.
    pub base: Duration,
    /// No single wait is longer, unless the CRM's `Retry-After` asks for more.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // Six attempts over about half a minute: long enough to ride out a rate
        // window or a brief outage, short enough to stay inside a Lambda invocation and
        // an SQS visibility timeout.
        RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(15),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1): exponential with
    /// "equal jitter" (half fixed, half random), and at least what `Retry-After` asked.
    pub fn backoff(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let ceiling = exp.min(self.cap);
        let half = ceiling / 2;
        let jitter = Duration::from_millis(
            rng.random_range(0..=half.as_millis().min(u128::from(u64::MAX)) as u64),
        );
        let wait = half + jitter;
        match retry_after {
            Some(asked) => wait.max(asked),
            None => wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn waits_grow_stay_under_the_cap_and_honour_retry_after() {
        let policy = RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let first = policy.backoff(1, None, &mut rng);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for attempt in 1..20 {
            assert!(policy.backoff(attempt, None, &mut rng) <= Duration::from_secs(1));
        }
        let late = policy.backoff(5, None, &mut rng);
        assert!(late >= Duration::from_millis(500));
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(10)), &mut rng),
            Duration::from_secs(10)
        );
    }
}
