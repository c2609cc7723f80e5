//! Unit tests for the scheduler's rules. Time is a base instant plus offsets; no runtime.

use std::time::Duration;

use tokio::time::Instant;

use super::{Outcome, Scheduler};
use crate::queue::{Action, ObjectKey, Reason, RetryHint};
use crate::retry::Backoff;

const SEC: Duration = Duration::from_secs(1);
const TRIGGER: Reason = Reason::Trigger("test");

/// Backoff 1s, 2s, 4s, ... capped at 60s, no jitter; nothing scheduled beyond 1h.
fn scheduler() -> Scheduler {
    Scheduler::new(Backoff::try_new(SEC, 60 * SEC, 0.0).unwrap(), 3_600 * SEC)
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("pool", name)
}

/// Fails `k`'s current run (popping it first at `now`) and returns the retry delay.
fn fail_at(s: &mut Scheduler, k: &ObjectKey, now: Instant) -> Option<Duration> {
    let (popped, _) = s.pop_ready(now).expect("key is due");
    assert_eq!(&popped, k);
    s.finish(k, Outcome::Failure(RetryHint::Backoff), 0.0, now)
}

#[test]
fn a_key_scheduled_many_times_is_handed_out_once_at_the_earliest_time() {
    let t0 = Instant::now();
    let mut s = scheduler();
    for offset in [10, 3, 7, 3, 20] {
        s.schedule(key("a"), Some(t0 + offset * SEC), TRIGGER, t0);
    }
    assert_eq!(s.next_due(), Some(t0 + 3 * SEC));
    assert!(s.pop_ready(t0 + 2 * SEC).is_none());
    assert!(s.pop_ready(t0 + 3 * SEC).is_some());
    assert!(s.pop_ready(t0 + 100 * SEC).is_none(), "only one run");
}

#[test]
fn keys_are_handed_out_earliest_first() {
    let t0 = Instant::now();
    let mut s = scheduler();
    s.schedule(key("late"), Some(t0 + 2 * SEC), TRIGGER, t0);
    s.schedule(key("early"), Some(t0 + SEC), TRIGGER, t0);
    let now = t0 + 5 * SEC;
    assert_eq!(s.pop_ready(now).unwrap().0, key("early"));
    assert_eq!(s.pop_ready(now).unwrap().0, key("late"));
}

#[test]
fn a_running_key_is_not_handed_out_again_but_runs_right_after_if_triggered() {
    let t0 = Instant::now();
    let mut s = scheduler();
    s.schedule(key("a"), Some(t0), TRIGGER, t0);
    let (k, ctx) = s.pop_ready(t0).unwrap();
    assert_eq!(ctx.reason, TRIGGER);
    s.schedule(key("a"), Some(t0 + SEC), Reason::Trigger("again"), t0 + SEC);
    assert!(s.pop_ready(t0 + 2 * SEC).is_none(), "still running");
    assert_eq!(s.running(), 1);
    let _ = s.finish(&k, Outcome::Success(Action::AwaitChange), 0.0, t0 + 3 * SEC);
    let (_, ctx) = s.pop_ready(t0 + 3 * SEC).expect("dirty key runs again");
    assert_eq!(ctx.reason, Reason::Trigger("again"));
}

#[test]
fn scheduled_times_are_clamped_to_max_delay() {
    let t0 = Instant::now();
    let mut s = scheduler();
    s.schedule(key("a"), Some(t0 + 86_400 * SEC), TRIGGER, t0);
    assert_eq!(s.next_due(), Some(t0 + 3_600 * SEC));
    s.schedule(key("b"), None, TRIGGER, t0);
    let (k, _) = s.pop_ready(t0 + 3_600 * SEC).unwrap();
    let _ = s.finish(&k, Outcome::Success(Action::Requeue(86_400 * SEC)), 0.0, t0);
    assert!(s.next_due().unwrap() <= t0 + 3_600 * SEC);
}

#[test]
fn failures_back_off_exponentially_up_to_the_cap_and_success_resets() {
    let t0 = Instant::now();
    let mut s = scheduler();
    let k = key("a");
    s.schedule(k.clone(), Some(t0), TRIGGER, t0);
    let mut now = t0;
    let mut delays = Vec::new();
    let mut attempts = Vec::new();
    for _ in 0..8 {
        let (_, ctx) = s.pop_ready(now).unwrap();
        attempts.push(ctx.attempt);
        if ctx.attempt > 1 {
            assert_eq!(ctx.reason, Reason::Retry);
        }
        let d = s
            .finish(&k, Outcome::Failure(RetryHint::Backoff), 0.0, now)
            .unwrap();
        delays.push(d.as_secs());
        now += d;
    }
    assert_eq!(attempts, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);

    let (_, ctx) = s.pop_ready(now).unwrap();
    assert_eq!(ctx.attempt, 9);
    let _ = s.finish(&k, Outcome::Success(Action::Requeue(SEC)), 0.0, now);
    now += SEC;
    let (_, ctx) = s.pop_ready(now).unwrap();
    assert_eq!((ctx.attempt, ctx.reason), (1, Reason::Requeue));
    let d = s.finish(&k, Outcome::Failure(RetryHint::Backoff), 0.0, now);
    assert_eq!(d, Some(SEC), "the count started over");
}

#[test]
fn the_jitter_sample_shortens_the_retry_delay() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(
        Backoff::try_new(10 * SEC, 60 * SEC, 0.5).unwrap(),
        3_600 * SEC,
    );
    s.schedule(key("a"), Some(t0), TRIGGER, t0);
    let _ = s.pop_ready(t0).unwrap();
    let d = s.finish(&key("a"), Outcome::Failure(RetryHint::Backoff), 0.5, t0);
    assert_eq!(d, Some(Duration::from_millis(7_500)));
}

#[test]
fn retry_after_hints_are_clamped_into_the_backoff_range() {
    let t0 = Instant::now();
    let mut s = scheduler();
    let k = key("a");
    s.schedule(k.clone(), Some(t0), TRIGGER, t0);
    let _ = s.pop_ready(t0).unwrap();
    let d = s.finish(&k, Outcome::Failure(RetryHint::After(3_600 * SEC)), 0.0, t0);
    assert_eq!(d, Some(60 * SEC));
    let (_, ctx) = s.pop_ready(t0 + 60 * SEC).unwrap();
    assert_eq!((ctx.attempt, ctx.reason), (2, Reason::Retry));
    let d = s.finish(
        &k,
        Outcome::Failure(RetryHint::After(Duration::ZERO)),
        0.0,
        t0,
    );
    assert_eq!(d, Some(SEC));
}

#[test]
fn a_no_retry_failure_waits_for_a_trigger_and_keeps_counting() {
    let t0 = Instant::now();
    let mut s = scheduler();
    let k = key("a");
    s.schedule(k.clone(), Some(t0), TRIGGER, t0);
    let _ = s.pop_ready(t0).unwrap();
    assert_eq!(
        s.finish(&k, Outcome::Failure(RetryHint::NoRetry), 0.0, t0),
        None
    );
    assert_eq!(s.next_due(), None);
    s.schedule(
        k.clone(),
        Some(t0 + 10 * SEC),
        Reason::Resync,
        t0 + 10 * SEC,
    );
    let (_, ctx) = s.pop_ready(t0 + 10 * SEC).unwrap();
    assert_eq!((ctx.attempt, ctx.reason), (2, Reason::Resync));
}

/// Regression for kubernetes/kubernetes#132805: triggers that cut a backoff short made
/// every early failure raise the count, so the backoff ran away.
#[test]
fn failures_of_attempts_that_cut_the_backoff_short_do_not_raise_the_count() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(
        Backoff::try_new(10 * SEC, 600 * SEC, 0.0).unwrap(),
        3_600 * SEC,
    );
    let k = key("a");
    s.schedule(k.clone(), Some(t0), TRIGGER, t0);
    assert_eq!(fail_at(&mut s, &k, t0), Some(10 * SEC));

    // Twenty triggers inside the 10s backoff, each run failing.
    let mut now = t0;
    for _ in 0..20 {
        now += Duration::from_millis(400);
        s.schedule(k.clone(), Some(now), TRIGGER, now);
        let (_, ctx) = s.pop_ready(now).unwrap();
        assert_eq!((ctx.attempt, ctx.reason), (2, TRIGGER));
        let d = s.finish(&k, Outcome::Failure(RetryHint::Backoff), 0.0, now);
        assert_eq!(
            d,
            Some(t0 + 10 * SEC - now),
            "an early failure keeps the scheduled retry"
        );
    }

    // The scheduled retry itself counts.
    now = t0 + 10 * SEC;
    let (_, ctx) = s.pop_ready(now).unwrap();
    assert_eq!((ctx.attempt, ctx.reason), (2, Reason::Retry));
    let d = s.finish(&k, Outcome::Failure(RetryHint::Backoff), 0.0, now);
    assert_eq!(d, Some(20 * SEC));
}

#[test]
fn an_early_attempt_asking_for_a_later_retry_pushes_the_scheduled_retry_back() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(
        Backoff::try_new(10 * SEC, 600 * SEC, 0.0).unwrap(),
        3_600 * SEC,
    );
    let k = key("a");
    s.schedule(k.clone(), Some(t0), TRIGGER, t0);
    assert_eq!(fail_at(&mut s, &k, t0), Some(10 * SEC));
    let now = t0 + SEC;
    s.schedule(k.clone(), Some(now), TRIGGER, now);
    let _ = s.pop_ready(now).unwrap();
    let d = s.finish(&k, Outcome::Failure(RetryHint::After(30 * SEC)), 0.0, now);
    assert_eq!(d, Some(30 * SEC), "a rate limit is honoured");
    let (_, ctx) = s.pop_ready(now + 30 * SEC).unwrap();
    assert_eq!((ctx.attempt, ctx.reason), (2, Reason::Retry));
}

#[test]
fn a_trigger_while_a_failing_run_is_in_flight_runs_right_after_without_raising_the_count() {
    let t0 = Instant::now();
    let mut s = scheduler();
    let k = key("a");
    s.schedule(k.clone(), Some(t0), TRIGGER, t0);
    assert_eq!(fail_at(&mut s, &k, t0), Some(SEC));
    // The retry runs at 1s; a trigger arrives while it runs; it fails at 1.5s.
    let (_, ctx) = s.pop_ready(t0 + SEC).unwrap();
    assert_eq!(ctx.reason, Reason::Retry);
    s.schedule(k.clone(), Some(t0 + SEC), TRIGGER, t0 + SEC);
    let now = t0 + Duration::from_millis(1_500);
    assert_eq!(
        s.finish(&k, Outcome::Failure(RetryHint::Backoff), 0.0, now),
        Some(2 * SEC)
    );
    // The dirty trigger runs at once, inside the new 2s backoff, so its failure doesn't count.
    let (_, ctx) = s.pop_ready(now).unwrap();
    assert_eq!((ctx.attempt, ctx.reason), (3, TRIGGER));
    assert_eq!(
        s.finish(&k, Outcome::Failure(RetryHint::Backoff), 0.0, now),
        Some(2 * SEC)
    );
}

#[test]
fn a_resync_does_not_cut_a_backoff_short() {
    let t0 = Instant::now();
    let mut s = scheduler();
    let k = key("a");
    s.schedule(k.clone(), Some(t0), TRIGGER, t0);
    assert_eq!(fail_at(&mut s, &k, t0), Some(SEC));
    s.schedule(k.clone(), Some(t0), Reason::Resync, t0);
    assert_eq!(s.next_due(), Some(t0 + SEC));
    let (_, ctx) = s.pop_ready(t0 + SEC).unwrap();
    assert_eq!(ctx.reason, Reason::Retry);
}

#[test]
fn a_resync_does_run_a_key_with_a_later_requeue() {
    let t0 = Instant::now();
    let mut s = scheduler();
    s.schedule(key("a"), Some(t0 + 600 * SEC), Reason::Requeue, t0);
    s.schedule(key("a"), Some(t0 + 60 * SEC), Reason::Resync, t0 + 60 * SEC);
    assert_eq!(s.next_due(), Some(t0 + 60 * SEC));
}

#[test]
fn keys_that_succeeded_and_await_change_are_forgotten() {
    let t0 = Instant::now();
    let mut s = scheduler();
    s.schedule(key("a"), Some(t0), TRIGGER, t0);
    let (k, _) = s.pop_ready(t0).unwrap();
    let _ = s.finish(&k, Outcome::Success(Action::AwaitChange), 0.0, t0);
    assert_eq!(s.tracked(), 0);
    assert_eq!(s.next_due(), None);
}

#[test]
fn property_triggers_neither_speed_up_nor_slow_down_the_backoff_schedule() {
    // Whatever rhythm triggers arrive in, a key that always fails counts exactly the failures
    // the pure backoff schedule would: one at t0, then one each time a delay elapses.
    let backoff = Backoff::try_new(SEC, 64 * SEC, 0.0).unwrap();
    for pattern in 1u64..=40 {
        let t0 = Instant::now();
        let mut s = Scheduler::new(backoff, 3_600 * SEC);
        let k = key("a");
        s.schedule(k.clone(), Some(t0), TRIGGER, t0);
        let mut now = t0;
        let mut max_attempt = 0;
        // Step 100ms at a time for 200s; trigger on a pattern-dependent rhythm.
        for step in 1..=2_000u64 {
            now = t0 + Duration::from_millis(100 * step);
            if step % pattern == 0 {
                s.schedule(k.clone(), Some(now), TRIGGER, now);
            }
            while let Some((_, ctx)) = s.pop_ready(now) {
                max_attempt = max_attempt.max(ctx.attempt);
                let _ = s.finish(&k, Outcome::Failure(RetryHint::Backoff), 0.0, now);
            }
        }
        // Pure schedule over 200s: failures at 0, 1, 3, 7, 15, 31, 63, 127, 191 (cap 64s).
        let elapsed = now - t0;
        let mut failures = 1;
        let mut t = Duration::ZERO;
        while t + backoff.delay(failures, 0.0) <= elapsed {
            t += backoff.delay(failures, 0.0);
            failures += 1;
        }
        // A run reports attempt = 1 + failures counted before it.
        assert_eq!(
            max_attempt,
            failures + 1,
            "trigger every {pattern} steps: attempt {max_attempt}, schedule allows {failures} failures"
        );
    }
}
