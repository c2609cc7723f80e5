//! Injected faults: a share of requests answered 500, added latency, and forced 429s. The
//! random draws come from a seeded RNG so a test's failures repeat run after run; the
//! decision itself is a pure function of the knobs and one draw.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The fault knobs, also the JSON body of `PUT /_sim/faults`
/// (`{"error_rate":0.1,"latency":"50ms","force_429":3,"seed":7}`; every field optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of `/v2` requests answered 500 before anything is done, in `0..=1`.
    pub error_rate: f64,
    /// Added to every `/v2` request before it is handled.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// The next this-many `/v2` requests get 429.
    pub force_429: u32,
    /// Seeds the RNG behind `error_rate`.
    pub seed: u64,
}

/// What the faults do to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it normally.
    Pass,
    /// Answer 429 (a forced one).
    TooManyRequests,
    /// Answer 500.
    ServerError,
}

/// Decides one request's fate: forced 429s first (using one up), then the error rate
/// against `draw` (uniform in `0..1`).
pub fn decide(faults: &mut Faults, draw: f64) -> Verdict {
    if faults.force_429 > 0 {
        faults.force_429 -= 1;
        return Verdict::TooManyRequests;
    }
    let rate = if faults.error_rate.is_finite() {
        faults.error_rate.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if draw < rate {
        Verdict::ServerError
    } else {
        Verdict::Pass
    }
}

/// The live knobs and their RNG.
#[derive(Debug)]
pub struct FaultState {
    faults: Faults,
    rng: StdRng,
}

impl Default for FaultState {
    fn default() -> Self {
        FaultState::new(Faults::default())
    }
}

impl FaultState {
    /// Knobs `faults`, RNG seeded from `faults.seed`.
    pub fn new(faults: Faults) -> FaultState {
        FaultState {
            rng: StdRng::seed_from_u64(faults.seed),
            faults,
        }
    }

    /// The current knobs (with forced 429s already used up subtracted).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Draws and decides for one request.
    pub fn next_verdict(&mut self) -> Verdict {
        let draw = self.rng.gen::<f64>();
        decide(&mut self.faults, draw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_429s_are_used_up_one_per_request() {
        let mut faults = Faults {
            force_429: 2,
            ..Faults::default()
        };
        assert_eq!(decide(&mut faults, 0.5), Verdict::TooManyRequests);
        assert_eq!(decide(&mut faults, 0.5), Verdict::TooManyRequests);
        assert_eq!(decide(&mut faults, 0.5), Verdict::Pass);
    }

    #[test]
    fn error_rate_is_clamped_and_compared_with_the_draw() {
        let mut faults = Faults {
            error_rate: 0.25,
            ..Faults::default()
        };
        assert_eq!(decide(&mut faults, 0.1), Verdict::ServerError);
        assert_eq!(decide(&mut faults, 0.3), Verdict::Pass);
        faults.error_rate = 7.0;
        assert_eq!(decide(&mut faults, 0.999), Verdict::ServerError);
        faults.error_rate = f64::NAN;
        assert_eq!(decide(&mut faults, 0.0), Verdict::Pass);
    }

    #[test]
    fn same_seed_same_verdicts() {
        let knobs = Faults {
            error_rate: 0.5,
            seed: 42,
            ..Faults::default()
        };
        let mut a = FaultState::new(knobs.clone());
        let mut b = FaultState::new(knobs);
        let run = |s: &mut FaultState| (0..32).map(|_| s.next_verdict()).collect::<Vec<_>>();
        assert_eq!(run(&mut a), run(&mut b));
    }

    #[test]
    fn faults_json_reads_humantime_latency_and_defaults() {
        let faults: Faults = serde_json::from_str(r#"{"latency":"50ms","force_429":1}"#).unwrap();
        assert_eq!(faults.latency, Duration::from_millis(50));
        assert_eq!(faults.force_429, 1);
        assert!(faults.error_rate.abs() < f64::EPSILON);
    }
}
