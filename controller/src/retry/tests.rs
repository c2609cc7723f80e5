//! Unit and property-style tests for the retry module. Time-based tests run on paused tokio
//! time, so they are instant and deterministic.

use std::cell::Cell;
use std::time::Duration;

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn backoff(min_ms: u64, max_ms: u64, jitter: f64) -> Backoff {
    Backoff::try_new(
        Duration::from_millis(min_ms),
        Duration::from_millis(max_ms),
        jitter,
    )
    .expect("valid backoff")
}

/// A spread of backoffs, including edge cases: zero min, min == max, full jitter.
fn sample_backoffs() -> Vec<Backoff> {
    vec![
        backoff(0, 1, 0.0),
        backoff(1, 1, 0.0),
        backoff(1, 1_000, 0.5),
        backoff(100, 300_000, 0.2),
        backoff(250, 250, 1.0),
        backoff(7, u64::MAX / 4, 0.1),
        Backoff::try_new(SEC, Duration::MAX, 0.3).unwrap(),
    ]
}

/// Attempts from 0 to 1000 plus the extremes.
fn sample_attempts() -> impl Iterator<Item = u32> {
    (0..=1_000).chain([u32::MAX - 1, u32::MAX])
}

/// Deterministic samples spread over [0, 1), plus out-of-range ones that must be tolerated.
fn sample_jitters() -> Vec<f64> {
    let mut v: Vec<f64> = (0..20).map(|i| f64::from(i) / 20.0).collect();
    v.extend([0.999_999, -1.0, 1.0, 2.0, f64::NAN, f64::INFINITY]);
    v
}

// === try_new ===

#[test]
fn try_new_rejects_min_above_max() {
    assert_eq!(
        Backoff::try_new(2 * SEC, SEC, 0.0),
        Err(InvalidBackoff::MinAboveMax {
            min: 2 * SEC,
            max: SEC
        })
    );
}

#[test]
fn try_new_rejects_zero_max() {
    assert_eq!(
        Backoff::try_new(Duration::ZERO, Duration::ZERO, 0.0),
        Err(InvalidBackoff::ZeroMax)
    );
}

#[test]
fn try_new_rejects_jitter_that_is_not_a_fraction() {
    for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(
            matches!(
                Backoff::try_new(SEC, SEC, bad),
                Err(InvalidBackoff::Jitter(_))
            ),
            "jitter {bad} must be refused"
        );
    }
}

#[test]
fn try_new_accepts_equal_bounds_and_jitter_edges() {
    assert!(Backoff::try_new(SEC, SEC, 0.0).is_ok());
    assert!(Backoff::try_new(Duration::ZERO, SEC, 1.0).is_ok());
}

#[test]
fn new_unchecked_is_usable_in_const_items() {
    const DEFAULT: Backoff = Backoff::new_unchecked(Duration::from_millis(100), SEC, 0.1);
    assert_eq!(DEFAULT.min(), Duration::from_millis(100));
    assert_eq!(DEFAULT.max(), SEC);
}

#[test]
fn deserializing_checks_the_invariants() {
    #[derive(serde::Deserialize)]
    struct Cfg {
        #[allow(dead_code)] // Only its parse result matters.
        backoff: Backoff,
    }
    let good: Cfg = toml::from_str("backoff = { min = \"1s\", max = \"5m\", jitter = 0.2 }")
        .expect("valid config parses");
    assert_eq!(good.backoff, Backoff::try_new(SEC, 300 * SEC, 0.2).unwrap());
    let bad = toml::from_str::<Cfg>("backoff = { min = \"10s\", max = \"1s\" }")
        .err()
        .expect("min above max must fail");
    assert!(bad.to_string().contains("greater than max"), "{bad}");
}

// === delay ===

#[test]
fn delay_doubles_from_min_until_the_cap() {
    let b = backoff(100, 1_000, 0.0);
    let got: Vec<u128> = (1..=6).map(|a| b.delay(a, 0.0).as_millis()).collect();
    assert_eq!(got, [100, 200, 400, 800, 1_000, 1_000]);
}

#[test]
fn delay_treats_attempt_zero_as_the_first_retry() {
    let b = backoff(100, 1_000, 0.0);
    assert_eq!(b.delay(0, 0.0), b.delay(1, 0.0));
}

#[test]
fn delay_jitter_only_shortens() {
    let b = backoff(1_000, 10_000, 0.5);
    assert_eq!(b.delay(1, 0.0), SEC);
    assert_eq!(b.delay(1, 0.5), Duration::from_millis(750));
    assert!(b.delay(1, 0.999_999) > Duration::from_millis(500));
}

#[test]
fn delay_is_monotone_non_decreasing_without_jitter() {
    for b in sample_backoffs() {
        let mut prev = Duration::ZERO;
        for attempt in sample_attempts() {
            let d = b.delay(attempt, 0.0);
            assert!(d >= prev, "{b:?}: attempt {attempt} gave {d:?} < {prev:?}");
            prev = d;
        }
        assert_eq!(prev, b.max(), "{b:?}: the schedule must reach the cap");
    }
}

#[test]
fn delay_never_exceeds_max_nor_drops_below_jittered_min() {
    for b in sample_backoffs() {
        let floor = b.min().mul_f64(1.0 - b.jitter());
        for attempt in sample_attempts() {
            for sample in sample_jitters() {
                let d = b.delay(attempt, sample);
                assert!(
                    d <= b.max(),
                    "{b:?} attempt {attempt} sample {sample}: {d:?}"
                );
                assert!(d >= floor, "{b:?} attempt {attempt} sample {sample}: {d:?}");
            }
        }
    }
}

#[test]
fn delay_does_not_overflow_at_attempt_1000() {
    let b = Backoff::try_new(Duration::from_secs(u64::MAX / 2), Duration::MAX, 0.0).unwrap();
    assert_eq!(b.delay(1_000, 0.0), Duration::MAX);
    assert_eq!(b.delay(u32::MAX, 0.0), Duration::MAX);
    let b = backoff(1, 60_000, 0.2);
    assert_eq!(b.delay(1_000, 0.0), Duration::from_secs(60));
}

#[test]
fn clamp_keeps_a_retry_after_within_bounds() {
    let b = backoff(1_000, 60_000, 0.0);
    assert_eq!(b.clamp(Duration::ZERO), SEC);
    assert_eq!(b.clamp(5 * SEC), 5 * SEC);
    assert_eq!(b.clamp(3_600 * SEC), 60 * SEC);
}

// === Attempts ===

#[test]
fn attempts_count_up_from_one_and_reset() {
    let mut a = Attempts::new();
    assert_eq!(a.current(), 0);
    assert_eq!((a.next(), a.next(), a.next()), (1, 2, 3));
    a.reset();
    assert_eq!(a.current(), 0);
    assert_eq!(a.next(), 1);
}

#[test]
fn attempts_saturate_instead_of_wrapping() {
    let mut a = Attempts {
        count: u32::MAX - 1,
    };
    assert_eq!(a.next(), u32::MAX);
    assert_eq!(a.next(), u32::MAX);
}

// === Deadline ===

#[tokio::test(start_paused = true)]
async fn deadline_counts_down_on_tokio_time() {
    let d = Deadline::after("droplet 1 to boot", 5 * SEC);
    assert_eq!(d.remaining(), 5 * SEC);
    assert!(!d.expired());
    tokio::time::advance(2 * SEC).await;
    assert_eq!(d.remaining(), 3 * SEC);
    tokio::time::advance(3 * SEC).await;
    assert!(d.expired());
    assert_eq!(d.remaining(), Duration::ZERO);
    assert_eq!(d.what(), "droplet 1 to boot");
}

#[tokio::test(start_paused = true)]
async fn deadline_run_returns_the_output_in_time() {
    let d = Deadline::after("answer", 5 * SEC);
    let out = d
        .run(async {
            tokio::time::sleep(SEC).await;
            42
        })
        .await;
    assert_eq!(out, Ok(42));
}

#[tokio::test(start_paused = true)]
async fn deadline_run_reports_what_it_waited_for() {
    let d = Deadline::after("droplet 7 to boot", 5 * SEC);
    let err = d
        .run(std::future::pending::<()>())
        .await
        .expect_err("pending never finishes");
    assert_eq!(
        err.to_string(),
        "timed out after 5s waiting for droplet 7 to boot"
    );
}

#[test]
fn deadline_after_a_huge_duration_does_not_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let d = Deadline::after("forever", Duration::MAX);
        assert!(!d.expired());
    });
}

#[tokio::test(start_paused = true)]
async fn deadline_sleep_stops_at_the_deadline() {
    let d = Deadline::after("x", 3 * SEC);
    let start = Instant::now();
    assert!(d.sleep(SEC).await.is_ok());
    assert!(d.sleep(10 * SEC).await.is_err());
    assert_eq!(start.elapsed(), 3 * SEC);
}

// === retry ===

#[tokio::test(start_paused = true)]
async fn retry_backs_off_until_success() {
    let b = backoff(1_000, 60_000, 0.0);
    let deadline = Deadline::after("flaky op", 60 * SEC);
    let start = Instant::now();
    let out = retry(b, &deadline, |attempt| async move {
        if attempt < 4 {
            Err(Retry::Transient(format!("fail {attempt}")))
        } else {
            Ok(attempt)
        }
    })
    .await;
    assert_eq!(out.unwrap(), 4);
    // 1s + 2s + 4s of backoff.
    assert_eq!(start.elapsed(), 7 * SEC);
}

#[tokio::test(start_paused = true)]
async fn retry_honours_a_clamped_retry_after() {
    let b = backoff(1_000, 10_000, 0.0);
    let deadline = Deadline::after("rate-limited op", 60 * SEC);
    let calls = Cell::new(0);
    let start = Instant::now();
    let out = retry(b, &deadline, |_| {
        calls.set(calls.get() + 1);
        let first = calls.get() == 1;
        async move {
            if first {
                Err(Retry::After("429", 3_600 * SEC))
            } else {
                Ok(())
            }
        }
    })
    .await;
    assert!(out.is_ok());
    assert_eq!(start.elapsed(), 10 * SEC, "retry-after is clamped to max");
}

#[tokio::test(start_paused = true)]
async fn retry_stops_on_a_permanent_error() {
    let b = backoff(1_000, 10_000, 0.0);
    let deadline = Deadline::after("op", 60 * SEC);
    let err = retry(b, &deadline, |attempt| async move {
        if attempt == 2 {
            Err::<(), _>(Retry::Permanent("no such droplet"))
        } else {
            Err(Retry::Transient("flaky"))
        }
    })
    .await
    .unwrap_err();
    assert!(matches!(err, RetryError::Permanent { attempts: 2, .. }));
    assert_eq!(
        err.to_string(),
        "op failed permanently on attempt 2: no such droplet"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_gives_up_at_the_deadline_with_the_last_error() {
    let b = backoff(1_000, 1_000, 0.0);
    let deadline = Deadline::after("health check", 5 * SEC);
    let start = Instant::now();
    let err = retry(b, &deadline, |_| async {
        Err::<(), _>(Retry::Transient("connection refused"))
    })
    .await
    .unwrap_err();
    assert_eq!(start.elapsed(), 5 * SEC);
    assert_eq!(
        err.to_string(),
        "timed out after 5s waiting for health check (6 attempts; last error: connection refused)"
    );
}
