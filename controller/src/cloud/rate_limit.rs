//! Rate limiting for the DigitalOcean client, as a tower layer in front of the HTTP transport.
//!
//! DigitalOcean allows 250 requests per minute and 5,000 per hour per token (spec:
//! `components.headers.ratelimit-limit`). vmctld keeps its own budget a little under both
//! ([`Budget`], a rolling window of send times), and also obeys the server's view: when
//! `ratelimit-remaining` reaches 0 it waits until `ratelimit-reset`. Every request passes
//! through [`RateLimitService`] before it is sent, so no call site checks limits itself.
//!
//! Retrying a 429 is not done here: the client's retry policy does that with `retry-after`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::error::CloudError;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

// === impl Budget ===

/// The client-side budget: at most `per_minute` sends in any 60 s and `per_hour` in any hour.
///
/// Pure: the clock is an argument, so tests drive it.
#[derive(Debug)]
pub struct Budget {
    per_minute: u32,
    per_hour: u32,
    // Send times within the last hour, oldest first. At most `per_hour` entries.
    sent: VecDeque<Instant>,
}

impl Budget {
    /// A budget; zero limits are raised to 1 so the client cannot stall forever.
    #[must_use]
    pub fn new(per_minute: u32, per_hour: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            per_hour: per_hour.max(1),
            sent: VecDeque::new(),
        }
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some(&t) = self.sent.front() {
            if now.saturating_duration_since(t) >= HOUR {
                self.sent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Sends in the minute and hour before `now`.
    #[must_use]
    pub fn used(&self, now: Instant) -> (u32, u32) {
        let in_window = |w: Duration| {
            self.sent
                .iter()
                .filter(|&&t| now.saturating_duration_since(t) < w)
                .count()
        };
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (clamp(in_window(MINUTE)), clamp(in_window(HOUR)))
    }

    /// How long until a send is allowed; zero means now.
    #[must_use]
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.forget_before(now);
        let (minute, hour) = self.used(now);
        let mut wait = Duration::ZERO;
        if hour >= self.per_hour {
            // The oldest send leaves the hour window first; then there is room.
            let oldest = self.sent[self.sent.len() - self.per_hour as usize];
            wait = wait.max((oldest + HOUR).saturating_duration_since(now));
        }
        if minute >= self.per_minute {
            let recent: Vec<_> = self
                .sent
                .iter()
                .filter(|&&t| now.saturating_duration_since(t) < MINUTE)
                .collect();
            let oldest = *recent[recent.len() - self.per_minute as usize];
            wait = wait.max((oldest + MINUTE).saturating_duration_since(now));
        }
        wait
    }

    /// Records a send at `now` if the budget allows it; otherwise returns how long to wait.
    ///
    /// # Errors
    /// The wait until a slot frees up.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let wait = self.wait(now);
        if wait.is_zero() {
            self.sent.push_back(now);
            Ok(())
        } else {
            Err(wait)
        }
    }
}

// === server headers ===

/// DigitalOcean's rate-limit headers from one response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerLimits {
    /// `ratelimit-limit`.
    pub limit: Option<u32>,
    /// `ratelimit-remaining`: requests left in the hourly quota.
    pub remaining: Option<u32>,
    /// `ratelimit-reset`: Unix time (seconds) when the oldest counted request expires.
    pub reset: Option<u64>,
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl ServerLimits {
    /// Reads the three `ratelimit-*` headers; missing or malformed ones are `None`.
    #[must_use]
    pub fn parse(headers: &HeaderMap) -> Self {
        let u32_of = |n| header_u64(headers, n).map(|v| u32::try_from(v).unwrap_or(u32::MAX));
        Self {
            limit: u32_of("ratelimit-limit"),
            remaining: u32_of("ratelimit-remaining"),
            reset: header_u64(headers, "ratelimit-reset"),
        }
    }

    /// How long the server wants us to pause: until `reset` when nothing remains, capped at
    /// an hour (the quota's window) in case the clocks disagree.
    #[must_use]
    pub fn wait(&self, now_unix: u64) -> Duration {
        match (self.remaining, self.reset) {
            (Some(0), Some(reset)) => Duration::from_secs(reset.saturating_sub(now_unix)).min(HOUR),
            _ => Duration::ZERO,
        }
    }
}

/// The delay a 429 asks for: `retry-after` (seconds or an HTTP date), else the time until
/// `ratelimit-reset` when the quota is spent. The caller clamps it with `Backoff::clamp`.
#[must_use]
pub fn retry_after(headers: &HeaderMap, now_unix: u64) -> Option<Duration> {
    if let Some(value) = headers.get("retry-after").and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(date) = chrono::DateTime::parse_from_rfc2822(value) {
            let at = u64::try_from(date.timestamp()).unwrap_or(0);
            return Some(Duration::from_secs(at.saturating_sub(now_unix)));
        }
    }
    let server = ServerLimits::parse(headers);
    (server.remaining == Some(0) && server.reset.is_some()).then(|| server.wait(now_unix))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// === impl RateLimiter ===

/// What the rate limiter knows, for `vmctl status` and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitSnapshot {
    /// The last `ratelimit-limit` seen.
    pub server_limit: Option<u32>,
    /// The last `ratelimit-remaining` seen.
    pub server_remaining: Option<u32>,
    /// The last `ratelimit-reset` seen (Unix seconds).
    pub server_reset: Option<u64>,
    /// Requests sent in the last minute.
    pub used_last_minute: u32,
    /// Requests sent in the last hour.
    pub used_last_hour: u32,
    /// The client-side per-minute budget.
    pub per_minute: u32,
    /// The client-side hourly budget.
    pub per_hour: u32,
    /// Requests sent since start.
    pub requests_sent: u64,
}

#[derive(Debug)]
struct LimiterState {
    budget: Budget,
    server: ServerLimits,
}

/// The shared limiter: the budget plus the server's last word. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    state: Arc<Mutex<LimiterState>>,
    sent: Arc<AtomicU64>,
    max_wait: Duration,
}

impl RateLimiter {
    /// A limiter; a request that would have to wait longer than `max_wait` for a slot fails
    /// at once with [`CloudError::BudgetExhausted`] so the work queue can requeue it.
    #[must_use]
    pub fn new(per_minute: u32, per_hour: u32, max_wait: Duration) -> Self {
        Self {
            state: Arc::new(Mutex::new(LimiterState {
                budget: Budget::new(per_minute, per_hour),
                server: ServerLimits::default(),
            })),
            sent: Arc::new(AtomicU64::new(0)),
            max_wait,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        // A panic while holding this lock leaves plain counters behind; they stay usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a send slot and takes it.
    ///
    /// # Errors
    /// [`CloudError::BudgetExhausted`] when the wait would exceed the limiter's `max_wait`.
    pub async fn acquire(&self, op: &str) -> Result<(), CloudError> {
        let started = Instant::now();
        loop {
            let wait = {
                let mut state = self.lock();
                let server_wait = state.server.wait(unix_now());
                if server_wait.is_zero() {
                    match state.budget.try_take(Instant::now()) {
                        Ok(()) => {
                            self.sent.fetch_add(1, Ordering::Relaxed);
                            return Ok(());
                        }
                        Err(wait) => wait,
                    }
                } else {
                    server_wait
                }
            };
            if started.elapsed() + wait > self.max_wait {
                return Err(CloudError::BudgetExhausted {
                    op: op.to_owned(),
                    wait,
                });
            }
            tracing::debug!(
                op,
                wait_ms = wait.as_millis() as u64,
                "Waiting for DigitalOcean request budget"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Records the rate-limit headers of a response.
    pub fn observe(&self, headers: &HeaderMap) {
        let seen = ServerLimits::parse(headers);
        if seen.remaining.is_none() && seen.reset.is_none() && seen.limit.is_none() {
            return;
        }
        let mut state = self.lock();
        state.server = ServerLimits {
            limit: seen.limit.or(state.server.limit),
            remaining: seen.remaining,
            reset: seen.reset,
        };
    }

    /// The current numbers.
    #[must_use]
    pub fn snapshot(&self) -> RateLimitSnapshot {
        let state = self.lock();
        let (used_last_minute, used_last_hour) = state.budget.used(Instant::now());
        RateLimitSnapshot {
            server_limit: state.server.limit,
            server_remaining: state.server.remaining,
            server_reset: state.server.reset,
            used_last_minute,
            used_last_hour,
            per_minute: state.budget.per_minute,
            per_hour: state.budget.per_hour,
            requests_sent: self.sent.load(Ordering::Relaxed),
        }
    }

    /// Requests sent since start.
    #[must_use]
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

// === impl RateLimitLayer ===

/// Puts a [`RateLimiter`] in front of an HTTP service whose errors are already [`CloudError`].
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limiter: RateLimiter,
}

impl RateLimitLayer {
    /// A layer sharing `limiter`.
    #[must_use]
    pub fn new(limiter: RateLimiter) -> Self {
        Self { limiter }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// The service made by [`RateLimitLayer`].
#[derive(Clone, Debug)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: RateLimiter,
}

impl<S> Service<reqwest::Request> for RateLimitService<S>
where
    S: Service<reqwest::Request, Response = reqwest::Response, Error = CloudError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = reqwest::Response;
    type Error = CloudError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, CloudError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), CloudError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: reqwest::Request) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        Box::pin(async move {
            let op = format!("{} {}", req.method(), req.url().path());
            limiter.acquire(&op).await?;
            let response = inner.call(req).await?;
            limiter.observe(response.headers());
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn budget_allows_per_minute_sends_then_waits_for_the_oldest_to_age_out() {
        let t0 = Instant::now();
        let mut b = Budget::new(3, 100);
        for i in 0..3 {
            assert_eq!(b.try_take(t0 + Duration::from_secs(i)), Ok(()));
        }
        // The first send (t0) leaves the minute window at t0 + 60 s.
        assert_eq!(
            b.try_take(t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(50))
        );
        assert_eq!(b.try_take(t0 + MINUTE), Ok(()));
        assert_eq!(b.used(t0 + MINUTE), (3, 4));
    }

    #[test]
    fn budget_enforces_the_hourly_limit_across_minutes() {
        let t0 = Instant::now();
        let mut b = Budget::new(240, 4);
        for i in 0..4 {
            assert_eq!(b.try_take(t0 + MINUTE * i), Ok(()));
        }
        let now = t0 + MINUTE * 10;
        assert_eq!(b.try_take(now), Err(HOUR - MINUTE * 10));
        assert_eq!(b.try_take(t0 + HOUR), Ok(()));
        // Old sends are forgotten, so the window never grows past the hour.
        assert_eq!(b.used(t0 + HOUR), (1, 4));
    }

    #[test]
    fn the_default_budget_stays_under_digitaloceans_250_per_minute() {
        let t0 = Instant::now();
        let mut b = Budget::new(240, 4800);
        let sent = (0..1000)
            .filter(|i| b.try_take(t0 + Duration::from_millis(*i)).is_ok())
            .count();
        assert_eq!(sent, 240);
    }

    #[test]
    fn server_headers_are_parsed_and_a_spent_quota_waits_until_reset() {
        let h = headers(&[
            ("ratelimit-limit", "5000"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "1000030"),
        ]);
        let s = ServerLimits::parse(&h);
        assert_eq!(
            s,
            ServerLimits {
                limit: Some(5000),
                remaining: Some(0),
                reset: Some(1_000_030)
            }
        );
        assert_eq!(s.wait(1_000_000), Duration::from_secs(30));
        assert_eq!(s.wait(2_000_000), Duration::ZERO);
        // Clock skew cannot park us longer than the quota window.
        assert_eq!(s.wait(0), HOUR);
        let s = ServerLimits::parse(&headers(&[
            ("ratelimit-remaining", "12"),
            ("ratelimit-reset", "x"),
        ]));
        assert_eq!(s.remaining, Some(12));
        assert_eq!(s.reset, None);
        assert_eq!(s.wait(0), Duration::ZERO);
    }

    #[test]
    fn retry_after_reads_seconds_dates_or_the_reset_header() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", " 7 ")]), 0),
            Some(Duration::from_secs(7))
        );
        let date = headers(&[("retry-after", "Thu, 01 Jan 1970 00:01:40 +0000")]);
        assert_eq!(retry_after(&date, 40), Some(Duration::from_secs(60)));
        let reset = headers(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "105")]);
        assert_eq!(retry_after(&reset, 100), Some(Duration::from_secs(5)));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), 0), None);
        assert_eq!(retry_after(&HeaderMap::new(), 0), None);
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_waits_for_a_slot_or_fails_fast_when_the_wait_is_too_long() {
        let limiter = RateLimiter::new(2, 100, Duration::from_secs(90));
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire("GET /v2/account").await.unwrap();
        }
        assert_eq!(start.elapsed(), MINUTE);
        assert_eq!(limiter.requests_sent(), 3);

        let impatient = RateLimiter::new(1, 100, Duration::from_secs(5));
        impatient.acquire("GET /v2/account").await.unwrap();
        let err = impatient.acquire("GET /v2/account").await.unwrap_err();
        assert!(matches!(err, CloudError::BudgetExhausted { wait, .. } if wait == MINUTE));
    }
}
