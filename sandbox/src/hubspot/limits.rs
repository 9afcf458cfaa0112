//! HubSpot's rate limits on the integration's calls: a rolling 10-second burst, a daily
//! cap, and search's own per-second limit, answered with HubSpot's 429 bodies and
//! `X-HubSpot-RateLimit-*` headers. Human users (other tokens, the control API) are not
//! limited.

use std::collections::VecDeque;

use super::error::HsError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Calls per rolling 10 seconds (a Professional private app: 190).
    pub per_ten_seconds: u32,
    /// Calls per day, reset at midnight UTC (Professional: 625,000).
    pub daily: u64,
    /// Search calls per second (5).
    pub search_per_second: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_ten_seconds: 190,
            daily: 625_000,
            search_per_second: 5,
        }
    }
}

const TEN_SECONDS: i64 = 10_000;
const DAY: i64 = 86_400_000;

#[derive(Debug, Default)]
pub struct Limiter {
    calls: VecDeque<i64>,
    searches: VecDeque<i64>,
    day: i64,
    today: u64,
}

/// Headers HubSpot sends with every rate-limited caller's response.
pub type LimitHeaders = Vec<(&'static str, String)>;

impl Limiter {
    /// Admits one call at `now`, or answers the 429 HubSpot would.
    pub fn admit(
        &mut self,
        limits: &RateLimits,
        now: i64,
        search: bool,
    ) -> Result<LimitHeaders, HsError> {
        while self.calls.front().is_some_and(|t| *t <= now - TEN_SECONDS) {
            self.calls.pop_front();
        }
        while self.searches.front().is_some_and(|t| *t <= now - 1_000) {
            self.searches.pop_front();
        }
        if now.div_euclid(DAY) != self.day {
            self.day = now.div_euclid(DAY);
            self.today = 0;
        }
        let headers = |calls: usize, today: u64| -> LimitHeaders {
            vec![
                ("x-hubspot-ratelimit-daily", limits.daily.to_string()),
                (
                    "x-hubspot-ratelimit-daily-remaining",
                    limits.daily.saturating_sub(today).to_string(),
                ),
                (
                    "x-hubspot-ratelimit-interval-milliseconds",
                    TEN_SECONDS.to_string(),
                ),
                (
                    "x-hubspot-ratelimit-max",
                    limits.per_ten_seconds.to_string(),
                ),
                (
                    "x-hubspot-ratelimit-remaining",
                    (limits.per_ten_seconds as usize)
                        .saturating_sub(calls)
                        .to_string(),
                ),
            ]
        };
        if self.today >= limits.daily {
            let mut e = HsError::rate_limited("DAILY", "You have reached your daily limit.");
            e.headers = headers(self.calls.len(), self.today);
            let midnight = (self.day + 1) * DAY;
            e.headers
                .push(("retry-after", ((midnight - now) / 1000 + 1).to_string()));
            return Err(e);
        }
        if self.calls.len() >= limits.per_ten_seconds as usize {
            let mut e = HsError::rate_limited(
                "TEN_SECONDLY_ROLLING",
                "You have reached your ten_secondly_rolling limit.",
            );
            e.headers = headers(self.calls.len(), self.today);
            let oldest = self.calls.front().copied().unwrap_or(now);
            e.headers.push((
                "retry-after",
                ((oldest + TEN_SECONDS - now) / 1000 + 1).to_string(),
            ));
            return Err(e);
        }
        if search && self.searches.len() >= limits.search_per_second as usize {
            // Search's own limit: no rate headers, HubSpot's "secondly" message.
            let mut e = HsError::rate_limited("SECONDLY", "You have reached your secondly limit.");
            e.headers.push(("retry-after", "1".into()));
            return Err(e);
        }
        self.calls.push_back(now);
        if search {
            self.searches.push_back(now);
        }
        self.today += 1;
        Ok(headers(self.calls.len(), self.today))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_window_rolls_and_search_has_its_own_limit() {
        let limits = RateLimits {
            per_ten_seconds: 3,
            daily: 100,
            search_per_second: 2,
        };
        let mut l = Limiter::default();
        for _ in 0..3 {
            assert!(l.admit(&limits, 1_000, false).is_ok());
        }
        let e = l.admit(&limits, 1_500, false).err();
        assert_eq!(e.map(|e| e.status.as_u16()), Some(429));
        assert!(l.admit(&limits, 11_001, true).is_ok());
        assert!(l.admit(&limits, 11_002, true).is_ok());
        let e = l.admit(&limits, 11_003, true).err();
        assert_eq!(
            e.map(|e| e.body["policyName"].clone()),
            Some("SECONDLY".into())
        );
    }

    #[test]
    fn the_daily_cap_resets_at_midnight() {
        let limits = RateLimits {
            per_ten_seconds: 100,
            daily: 2,
            search_per_second: 5,
        };
        let mut l = Limiter::default();
        assert!(l.admit(&limits, 0, false).is_ok());
        assert!(l.admit(&limits, 20_000, false).is_ok());
        let e = l.admit(&limits, 40_000, false).err();
        assert_eq!(
            e.map(|e| e.body["policyName"].clone()),
            Some("DAILY".into())
        );
        assert!(l.admit(&limits, DAY + 1, false).is_ok());
    }
}
