//! Decides which key runs next and when. Pure: every method takes `now`, and the jitter
//! sample is passed in, so the rules below are unit-tested without a runtime.
//!
//! Rules (STYLE.md pattern 4):
//! - A key has at most one pending run; scheduling it again keeps the earliest time.
//! - A running key is never handed out again; scheduling it while it runs marks it dirty,
//!   and it becomes due as soon as the run finishes.
//! - Failures are counted per key and reset on success. See [`Scheduler::pop_ready`] for
//!   which failures count (kubernetes#132805).
//!
//! It does not bound concurrency or run anything; that is the runner's job.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use super::{Action, ObjectKey, Reason, ReconcileContext, RetryHint};
use crate::retry::Backoff;

/// How a run ended, as far as scheduling cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success(Action),
    Failure(RetryHint),
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    at: Instant,
    /// Tie-breaker so the timeline keeps one entry per enqueue, in order.
    seq: u64,
    reason: Reason,
}

#[derive(Debug, Default)]
struct KeyState {
    /// The next run; while the key runs, the run after this one (the dirty mark).
    pending: Option<Pending>,
    /// `Some(counts)` while running; `counts` says whether a failure of this run raises
    /// `failures`.
    running: Option<bool>,
    /// Counted consecutive failures since the last success.
    failures: u32,
    /// When the backoff schedule allows the next counted attempt; `None` when not backing off.
    retry_due: Option<Instant>,
}

impl KeyState {
    fn is_forgettable(&self) -> bool {
        self.pending.is_none() && self.running.is_none() && self.failures == 0
    }
}

/// Pending keys and their times, plus per-key failure state.
#[derive(Debug)]
pub(crate) struct Scheduler {
    keys: HashMap<ObjectKey, KeyState>,
    /// Due times of keys that are pending and not running, earliest first.
    timeline: BTreeMap<(Instant, u64), ObjectKey>,
    next_seq: u64,
    backoff: Backoff,
    max_delay: Duration,
}

impl Scheduler {
    pub(crate) fn new(backoff: Backoff, max_delay: Duration) -> Self {
        Self {
            keys: HashMap::new(),
            timeline: BTreeMap::new(),
            next_seq: 0,
            backoff,
            max_delay,
        }
    }

    /// Asks for `key` to run at `at` (`None`: as late as allowed), clamped to
    /// `now + max_delay`. The earliest pending time wins.
    ///
    /// A resync does not cut short a pending backoff retry: the key will run anyway, and a
    /// resync must not defeat a rate limit's backoff. Triggers do cut it short, because a
    /// change may be what fixes the error.
    pub(crate) fn schedule(
        &mut self,
        key: ObjectKey,
        at: Option<Instant>,
        reason: Reason,
        now: Instant,
    ) {
        let latest = now.checked_add(self.max_delay).unwrap_or(now);
        let at = at.map_or(latest, |at| at.min(latest));
        let state = self.keys.entry(key.clone()).or_default();
        if let Some(old) = state.pending {
            let backing_off = old.reason == Reason::Retry && state.retry_due.is_some();
            if old.at <= at || (reason == Reason::Resync && backing_off) {
                return;
            }
            if state.running.is_none() {
                self.timeline.remove(&(old.at, old.seq));
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        state.pending = Some(Pending { at, seq, reason });
        if state.running.is_none() {
            self.timeline.insert((at, seq), key);
        }
    }

    /// When the earliest pending key is due, if any.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.timeline.keys().next().map(|(at, _)| *at)
    }

    /// Hands out the earliest key due at `now` and marks it running.
    ///
    /// The failure counting rule, against kubernetes#132805 (backoff running away when
    /// triggers cut it short): a run's failure raises the key's count only if the run started
    /// once the backoff schedule allowed a next attempt, i.e. at or after the scheduled
    /// retry's time, or when no backoff was in progress. A trigger that cuts the backoff short
    /// still runs, but if it fails, the count and the scheduled retry time stay as they were
    /// (a `RetryHint::After` may only push the retry later). So counted failures are never
    /// closer together than the pure backoff schedule, however many triggers arrive.
    pub(crate) fn pop_ready(&mut self, now: Instant) -> Option<(ObjectKey, ReconcileContext)> {
        let entry = self.timeline.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let key = entry.remove();
        let state = self
            .keys
            .get_mut(&key)
            .expect("every timeline entry has a key state");
        let pending = state.pending.take().expect("timeline entry is pending");
        let in_backoff = matches!(state.retry_due, Some(due) if now < due);
        let counts = state.failures == 0 || !in_backoff;
        state.running = Some(counts);
        let ctx = ReconcileContext {
            attempt: state.failures.saturating_add(1),
            reason: pending.reason,
        };
        Some((key, ctx))
    }

    /// Records how `key`'s run ended and schedules what follows. Returns the retry delay
    /// after a failure that will be retried, for the log line.
    pub(crate) fn finish(
        &mut self,
        key: &ObjectKey,
        outcome: Outcome,
        jitter_sample: f64,
        now: Instant,
    ) -> Option<Duration> {
        let state = self.keys.get_mut(key)?;
        let counts = state.running.take().unwrap_or(true);
        let (next, retry_in) = match outcome {
            Outcome::Success(action) => {
                state.failures = 0;
                state.retry_due = None;
                match action {
                    Action::Requeue(d) => (Some((d, Reason::Requeue)), None),
                    Action::AwaitChange => (None, None),
                }
            }
            Outcome::Failure(hint) => {
                let due = if counts {
                    state.failures = state.failures.saturating_add(1);
                    let delay = match hint {
                        RetryHint::Backoff => {
                            Some(self.backoff.delay(state.failures, jitter_sample))
                        }
                        RetryHint::After(d) => Some(self.backoff.clamp(d)),
                        RetryHint::NoRetry => None,
                    };
                    delay.map(|d| now.checked_add(d.min(self.max_delay)).unwrap_or(now))
                } else {
                    // An early attempt: keep the backoff schedule it cut short, so the
                    // scheduled retry neither moves later nor comes sooner than planned.
                    match hint {
                        RetryHint::Backoff => state.retry_due,
                        RetryHint::After(d) => {
                            let asked = now.checked_add(self.backoff.clamp(d).min(self.max_delay));
                            state.retry_due.max(asked)
                        }
                        RetryHint::NoRetry => None,
                    }
                };
                state.retry_due = due;
                let retry_in = due.map(|at| at.saturating_duration_since(now));
                (retry_in.map(|d| (d, Reason::Retry)), retry_in)
            }
        };
        // Put a dirty mark left while running on the timeline, then merge in what follows.
        if let Some(dirty) = state.pending.take() {
            self.schedule(key.clone(), Some(dirty.at), dirty.reason, now);
        }
        if let Some((delay, reason)) = next {
            self.schedule(key.clone(), now.checked_add(delay), reason, now);
        }
        if self.keys.get(key).is_some_and(KeyState::is_forgettable) {
            self.keys.remove(key);
        }
        retry_in
    }

    /// How many keys are running.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.keys.values().filter(|s| s.running.is_some()).count()
    }

    /// How many keys the scheduler holds state for (pending, running or backing off).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests;
