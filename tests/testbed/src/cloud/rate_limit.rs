//! DigitalOcean's request budget: a rolling minute and a rolling hour (250 and 5,000 by
//! default, the real API's numbers). Each admitted request is remembered until it leaves
//! both windows; a request past either budget is refused with how long until room opens.
//! Time is passed in, so the arithmetic is tested without waiting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The values of the `ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// `ratelimit-limit`: the hourly budget, or the minute one while that is spent.
    pub limit: u32,
    /// `ratelimit-remaining`: requests left in that window.
    pub remaining: u32,
    /// `ratelimit-reset`: unix time when that window's oldest request expires.
    pub reset: i64,
}

/// Whether a request may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted against the budget; go ahead.
    Allowed(RateHeaders),
    /// Over budget; retry after this many whole seconds (at least 1).
    Limited {
        /// Header values.
        headers: RateHeaders,
        /// `retry-after`.
        retry_after_secs: u64,
    },
}

/// The two rolling windows.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    per_hour: u32,
    /// Admission times within the last hour, oldest first.
    admitted: VecDeque<Instant>,
}

impl RateLimiter {
    /// A limiter with the given budgets.
    pub fn new(per_minute: u32, per_hour: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            per_hour,
            admitted: VecDeque::new(),
        }
    }

    /// Counts a request at `now` if both windows have room. `now_unix` is `now` as unix
    /// seconds, for the reset header.
    pub fn admit(&mut self, now: Instant, now_unix: i64) -> Admission {
        self.expire(now);
        let in_minute = self.in_window(now, MINUTE);
        let in_hour = self.admitted.len();
        if in_minute >= self.per_minute as usize || in_hour >= self.per_hour as usize {
            let headers = self.headers(now, now_unix);
            let minute_wait = self.wait_for_room(now, MINUTE, self.per_minute);
            let hour_wait = self.wait_for_room(now, HOUR, self.per_hour);
            let wait = minute_wait.max(hour_wait);
            return Admission::Limited {
                headers,
                retry_after_secs: ceil_secs(wait).max(1),
            };
        }
        self.admitted.push_back(now);
        Admission::Allowed(self.headers(now, now_unix))
    }

    /// The header values at `now`, without counting a request (for refused requests).
    pub fn peek(&mut self, now: Instant, now_unix: i64) -> RateHeaders {
        self.expire(now);
        self.headers(now, now_unix)
    }

    fn expire(&mut self, now: Instant) {
        while self
            .admitted
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= HOUR)
        {
            self.admitted.pop_front();
        }
    }

    fn in_window(&self, now: Instant, window: Duration) -> usize {
        self.admitted
            .iter()
            .rev()
            .take_while(|&&at| now.saturating_duration_since(at) < window)
            .count()
    }

    /// The oldest admission still inside `window`.
    fn oldest_in(&self, now: Instant, window: Duration) -> Option<Instant> {
        self.admitted
            .iter()
            .find(|&&at| now.saturating_duration_since(at) < window)
            .copied()
    }

    /// How long until the window holds fewer than `budget` requests.
    fn wait_for_room(&self, now: Instant, window: Duration, budget: u32) -> Duration {
        let inside: Vec<Instant> = self
            .admitted
            .iter()
            .filter(|&&at| now.saturating_duration_since(at) < window)
            .copied()
            .collect();
        if inside.len() < budget as usize {
            return Duration::ZERO;
        }
        // Room opens when the request `len - budget` (0-based) leaves the window.
        let leaving = inside[inside.len() - budget as usize];
        (leaving + window).saturating_duration_since(now)
    }

    fn headers(&self, now: Instant, now_unix: i64) -> RateHeaders {
        let minute_left = self
            .per_minute
            .saturating_sub(count_u32(self.in_window(now, MINUTE)));
        let hour_left = self.per_hour.saturating_sub(count_u32(self.admitted.len()));
        // Like the real API, report the hourly budget, except while the minute one is spent.
        let (limit, remaining, window) = if minute_left == 0 && hour_left > 0 {
            (self.per_minute, minute_left, MINUTE)
        } else {
            (self.per_hour, hour_left, HOUR)
        };
        let reset_in = self.oldest_in(now, window).map_or(Duration::ZERO, |at| {
            (at + window).saturating_duration_since(now)
        });
        RateHeaders {
            limit,
            remaining,
            reset: now_unix + i64::try_from(ceil_secs(reset_in)).unwrap_or(i64::MAX / 2),
        }
    }
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000;

    #[test]
    fn minute_budget_refuses_then_reopens_after_the_oldest_leaves() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(3, 100);
        for i in 0..3 {
            let at = start + Duration::from_secs(i * 10);
            assert!(matches!(limiter.admit(at, T0), Admission::Allowed(_)));
        }
        let at = start + Duration::from_secs(30);
        match limiter.admit(at, T0) {
            Admission::Limited {
                headers,
                retry_after_secs,
            } => {
                assert_eq!(retry_after_secs, 30);
                assert_eq!(headers.remaining, 0);
                assert_eq!(headers.limit, 3);
            }
            other => panic!("expected a 429, got {other:?}"),
        }
        let later = start + Duration::from_secs(60);
        assert!(matches!(limiter.admit(later, T0), Admission::Allowed(_)));
    }

    #[test]
    fn hour_budget_counts_across_minutes() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(100, 2);
        assert!(matches!(limiter.admit(start, T0), Admission::Allowed(_)));
        let second = start + Duration::from_secs(120);
        assert!(matches!(limiter.admit(second, T0), Admission::Allowed(_)));
        let third = start + Duration::from_secs(240);
        match limiter.admit(third, T0) {
            Admission::Limited {
                retry_after_secs, ..
            } => assert_eq!(retry_after_secs, 3600 - 240),
            other => panic!("expected a 429, got {other:?}"),
        }
    }

    #[test]
    fn headers_report_remaining_and_reset_of_the_tighter_window() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(250, 5000);
        let Admission::Allowed(headers) = limiter.admit(start, T0) else {
            panic!("first request refused");
        };
        assert_eq!(headers.limit, 5000);
        assert_eq!(headers.remaining, 4999);
        assert_eq!(headers.reset, T0 + 3600);
        let peek = limiter.peek(start + Duration::from_secs(10), T0 + 10);
        assert_eq!(peek.remaining, 4999);
    }
}
