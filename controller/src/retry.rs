//! The one retry mechanism of vmctld: the backoff policy ([`Backoff`]), a resettable attempt
//! counter ([`Attempts`]), a labelled [`Deadline`], and one async helper ([`retry`]).
//!
//! The work queue, the DigitalOcean client (429 and 5xx), SSH reconnects, health waits and the
//! testbed all use these types, so "every wait has a deadline, every retry a backoff and a cap"
//! is enforced in one tested place (STYLE.md pattern 5). The delay arithmetic is pure: the
//! jitter sample is an argument, so tests are deterministic and the code could move to
//! `protocol/` if the agent needs it.
//!
//! This module does not decide *whether* an error is worth retrying; callers say so by
//! returning a [`Retry`] from the operation they hand to [`retry`].

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

// === impl Backoff ===

/// Exponential backoff with a floor, a cap and downward jitter.
///
/// Built only through [`Backoff::try_new`] (or its `const` twin for literal defaults), and
/// deserialized through the same check, so a config file cannot hold an invalid value.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawBackoff")]
pub struct Backoff {
    min: Duration,
    max: Duration,
    // Why a float: jitter is a fraction of the delay. `try_new` guarantees it is finite and
    // in [0, 1], so comparing it (PartialEq) is well-defined.
    jitter: f64,
}

/// Why a [`Backoff`] was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InvalidBackoff {
    /// The floor is above the cap.
    #[error("backoff min ({min:?}) is greater than max ({max:?})")]
    MinAboveMax {
        /// The configured floor.
        min: Duration,
        /// The configured cap.
        max: Duration,
    },
    /// A zero cap would make every retry immediate: a hot loop.
    #[error("backoff max must be greater than zero")]
    ZeroMax,
    /// Jitter must be a finite fraction in [0, 1].
    #[error("backoff jitter must be a finite number in [0, 1], got {0}")]
    Jitter(f64),
}

/// The shape a config file uses: `{ min = "1s", max = "5m", jitter = 0.2 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackoff {
    #[serde(with = "humantime_serde")]
    min: Duration,
    #[serde(with = "humantime_serde")]
    max: Duration,
    #[serde(default)]
    jitter: f64,
}

impl TryFrom<RawBackoff> for Backoff {
    type Error = InvalidBackoff;

    fn try_from(raw: RawBackoff) -> Result<Self, Self::Error> {
        Backoff::try_new(raw.min, raw.max, raw.jitter)
    }
}

impl Backoff {
    /// Checks and builds a backoff.
    ///
    /// # Errors
    /// [`InvalidBackoff`] when `min > max`, `max` is zero, or `jitter` is not a finite number
    /// in `[0, 1]`.
    pub fn try_new(min: Duration, max: Duration, jitter: f64) -> Result<Self, InvalidBackoff> {
        if max.is_zero() {
            return Err(InvalidBackoff::ZeroMax);
        }
        if min > max {
            return Err(InvalidBackoff::MinAboveMax { min, max });
        }
        if !jitter.is_finite() || !(0.0..=1.0).contains(&jitter) {
            return Err(InvalidBackoff::Jitter(jitter));
        }
        Ok(Self { min, max, jitter })
    }

    /// Builds a backoff without checks, for literal defaults in `const` items.
    ///
    /// # Caveats
    /// The caller vouches for the invariants of [`Backoff::try_new`]; `delay` stays panic-free
    /// even if they are broken, but its guarantees do not hold.
    #[must_use]
    pub const fn new_unchecked(min: Duration, max: Duration, jitter: f64) -> Self {
        Self { min, max, jitter }
    }

    /// The floor: the delay before the first retry, before jitter.
    #[must_use]
    pub const fn min(&self) -> Duration {
        self.min
    }

    /// The cap: no delay is ever longer.
    #[must_use]
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The jitter fraction in `[0, 1]`.
    #[must_use]
    pub const fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The delay before retry number `attempt` (1 = first retry; 0 is treated as 1).
    ///
    /// Pure: `min * 2^(attempt-1)`, capped at `max`, then reduced by up to the `jitter`
    /// fraction: `base * (1 - jitter * jitter_sample)`. `jitter_sample` should be uniform in
    /// `[0, 1)`; values outside are clamped and NaN counts as 0. Jitter only ever shortens
    /// the delay, so the result never exceeds `max` and is never below `min * (1 - jitter)`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use vmctl_controller::retry::Backoff;
    /// let b = Backoff::try_new(Duration::from_secs(1), Duration::from_secs(60), 0.5).unwrap();
    /// assert_eq!(b.delay(1, 0.0), Duration::from_secs(1));
    /// assert_eq!(b.delay(4, 0.0), Duration::from_secs(8));
    /// assert_eq!(b.delay(4, 0.5), Duration::from_secs(6));
    /// assert_eq!(b.delay(1000, 0.0), Duration::from_secs(60));
    /// ```
    #[must_use]
    pub fn delay(&self, attempt: u32, jitter_sample: f64) -> Duration {
        let base = self.base(attempt);
        let sample = if jitter_sample.is_nan() {
            0.0
        } else {
            jitter_sample.clamp(0.0, 1.0)
        };
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let factor = 1.0 - jitter * sample;
        if factor >= 1.0 {
            return base;
        }
        // f64 has 53 bits of mantissa: for huge durations the product can round up past
        // `base` (or past `Duration::MAX`), so fall back to and cap at `base`.
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).map_or(base, |d| d.min(base))
    }

    /// The delay before jitter: `min * 2^(attempt-1)` capped at `max`, without overflow.
    fn base(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1);
        let grown = 2u32
            .checked_pow(exp)
            .and_then(|factor| self.min.checked_mul(factor))
            .unwrap_or(self.max);
        grown.min(self.max)
    }

    /// Clamps an externally suggested delay (e.g. a server's `retry-after`) into `[min, max]`,
    /// so a server can neither make us hammer it nor park us forever.
    #[must_use]
    pub fn clamp(&self, d: Duration) -> Duration {
        d.max(self.min).min(self.max)
    }
}

// === impl Attempts ===

/// A resettable attempt counter: `next()` returns 1, 2, 3, … until `reset()`.
///
/// Saturates at `u32::MAX` rather than wrapping, so a long outage cannot turn into a fresh,
/// short backoff.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    count: u32,
}

impl Attempts {
    /// A counter with no attempts yet.
    #[must_use]
    pub const fn new() -> Self {
        Self { count: 0 }
    }

    /// Records one more attempt and returns its number (1 for the first).
    #[allow(clippy::should_implement_trait)] // Not an iterator: it never ends and is reset.
    pub fn next(&mut self) -> u32 {
        self.count = self.count.saturating_add(1);
        self.count
    }

    /// How many attempts have been recorded since the last reset.
    #[must_use]
    pub const fn current(&self) -> u32 {
        self.count
    }

    /// Forgets all attempts, e.g. after a success.
    pub fn reset(&mut self) {
        self.count = 0;
    }
}

// === impl Deadline ===

/// A point in (tokio) time, labelled with what is being waited for, so a timeout reads as
/// "timed out after 5s waiting for droplet 42 to boot" rather than "deadline elapsed".
#[derive(Clone, Debug)]
pub struct Deadline {
    what: String,
    at: Instant,
    after: Duration,
}

/// A [`Deadline`] passed before the awaited thing happened.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {} waiting for {what}", humantime::format_duration(*after))]
pub struct DeadlineExceeded {
    /// What was awaited.
    pub what: String,
    /// The full budget the deadline was created with.
    pub after: Duration,
}

impl Deadline {
    /// A deadline `d` from now (tokio time, so paused-time tests control it).
    #[must_use]
    pub fn after(what: impl Into<String>, d: Duration) -> Self {
        let now = Instant::now();
        Self {
            what: what.into(),
            // A huge `d` means "effectively never"; don't panic on overflow.
            at: now
                .checked_add(d)
                .unwrap_or(now + Duration::from_secs(86_400 * 365 * 30)),
            after: d,
        }
    }

    /// Time left before the deadline; zero once it has passed.
    #[must_use]
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    #[must_use]
    pub fn expired(&self) -> bool {
        Instant::now() >= self.at
    }

    /// What this deadline waits for.
    #[must_use]
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The instant at which the deadline passes.
    #[must_use]
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The error to report when this deadline has passed.
    #[must_use]
    pub fn exceeded(&self) -> DeadlineExceeded {
        DeadlineExceeded {
            what: self.what.clone(),
            after: self.after,
        }
    }

    /// Runs `f` until it finishes or the deadline passes, whichever is first.
    ///
    /// # Errors
    /// [`DeadlineExceeded`] if the deadline passes first; `f` is then dropped.
    pub async fn run<F: Future>(&self, f: F) -> Result<F::Output, DeadlineExceeded> {
        tokio::time::timeout_at(self.at, f)
            .await
            .map_err(|_| self.exceeded())
    }

    /// Sleeps for `d`, or until the deadline if that is sooner.
    ///
    /// # Errors
    /// [`DeadlineExceeded`] if the deadline passes before `d` is up.
    pub async fn sleep(&self, d: Duration) -> Result<(), DeadlineExceeded> {
        let wake = Instant::now().checked_add(d).unwrap_or(self.at);
        if wake > self.at {
            tokio::time::sleep_until(self.at).await;
            return Err(self.exceeded());
        }
        tokio::time::sleep_until(wake).await;
        Ok(())
    }
}

// === fn retry ===

/// How an operation run by [`retry`] failed, and so whether to try again.
#[derive(Debug)]
pub enum Retry<E> {
    /// Try again after the backoff's next delay.
    Transient(E),
    /// Try again after this delay (e.g. a `retry-after`), clamped into the backoff's range.
    After(E, Duration),
    /// Don't try again.
    Permanent(E),
}

/// Why [`retry`] gave up.
///
/// The last error is shown in the message instead of chained as `#[source]` so that `E` may
/// be `anyhow::Error`, which does not implement `std::error::Error`.
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E: fmt::Debug + fmt::Display> {
    /// The operation failed in a way that retrying cannot fix.
    #[error("{what} failed permanently on attempt {attempts}: {error}")]
    Permanent {
        /// What was being attempted (the deadline's label).
        what: String,
        /// How many attempts were made.
        attempts: u32,
        /// The final error.
        error: E,
    },
    /// The deadline passed before the operation succeeded.
    #[error("{deadline} ({attempts} attempts{})", last_error_suffix(.last))]
    TimedOut {
        /// Which deadline passed.
        deadline: DeadlineExceeded,
        /// How many attempts were made.
        attempts: u32,
        /// The last error seen, if any attempt finished.
        last: Option<E>,
    },
}

fn last_error_suffix<E: fmt::Display>(last: &Option<E>) -> String {
    last.as_ref()
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default()
}

/// Runs `op` until it succeeds, fails permanently, or `deadline` passes, sleeping
/// `backoff.delay(attempt, random)` between tries. `op` receives the attempt number (1-based).
///
/// The deadline bounds the attempts too: an attempt still running when it passes is dropped.
///
/// # Errors
/// [`RetryError::Permanent`] on a [`Retry::Permanent`] error; [`RetryError::TimedOut`] when
/// the deadline passes first.
pub async fn retry<T, E, F, Fut>(
    backoff: Backoff,
    deadline: &Deadline,
    mut op: F,
) -> Result<T, RetryError<E>>
where
    E: fmt::Debug + fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Retry<E>>>,
{
    let mut attempts = Attempts::new();
    let mut last = None;
    loop {
        let attempt = attempts.next();
        let timed_out = |last| RetryError::TimedOut {
            deadline: deadline.exceeded(),
            attempts: attempt,
            last,
        };
        let wait = match deadline.run(op(attempt)).await {
            Err(_) => return Err(timed_out(last)),
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(Retry::Permanent(error))) => {
                return Err(RetryError::Permanent {
                    what: deadline.what().to_owned(),
                    attempts: attempt,
                    error,
                })
            }
            Ok(Err(Retry::Transient(error))) => {
                last = Some(error);
                backoff.delay(attempt, rand::random::<f64>())
            }
            Ok(Err(Retry::After(error, d))) => {
                last = Some(error);
                backoff.clamp(d)
            }
        };
        if deadline.sleep(wait).await.is_err() {
            return Err(timed_out(last));
        }
    }
}

#[cfg(test)]
mod tests;
