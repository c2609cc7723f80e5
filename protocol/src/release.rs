//! Upstream releases and the release policy: what the feed says ([`UpstreamRelease`]), what the
//! operator allows ([`ReleasePolicy`]) and what the controller decided ([`ReleaseDecision`]).
//!
//! The decision itself is made by a pure function in the controller (`upstream::policy`); this
//! file only holds the shapes the controller, the CLI and the testbed share. Tags found in the
//! policy are checked with [`crate::release_ops::is_valid_tag`] as the policy is read, so a
//! `hold` or `skip` entry can never carry shell characters or a path.

use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::{meta::Timestamp, release_ops::is_valid_tag};

/// Route of the controller's current release decision (`vmctl release plan`).
pub const PLAN_PATH: &str = "/v1/release/plan";

/// Default for [`ReleasePolicy::soak`]: a normal release waits this long after publication, so
/// a broken release is usually pulled or patched upstream before it reaches the fleet.
pub const DEFAULT_SOAK: Duration = Duration::from_secs(6 * 3600);
/// Default for [`ReleasePolicy::deadline`]: DESIGN.md's "live within 48 hours of its tag".
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(48 * 3600);
/// Default for [`ReleasePolicy::security_deadline`]: security releases go live sooner.
pub const DEFAULT_SECURITY_DEADLINE: Duration = Duration::from_secs(12 * 3600);
/// A maintenance window may last at most a week (a longer one is always open).
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Which upstream releases may be chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Published, non-prerelease releases whose tag has no `-rc`/`-beta` suffix.
    #[default]
    Stable,
    /// Prereleases too (release candidates and betas). Drafts are never chosen.
    Prerelease,
}

/// A weekly maintenance window in UTC: on each of `days`, from `start` for `duration`.
///
/// A window may run past midnight into the next day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Days the window opens, e.g. `["sat", "sun"]` (short or long English names, any case).
    /// Empty means every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// Opening time, `"HH:MM"` UTC.
    #[serde(with = "hhmm")]
    pub start: NaiveTime,
    /// How long it stays open: more than zero and at most [`MAX_WINDOW`].
    #[serde(
        serialize_with = "crate::duration::serialize",
        deserialize_with = "window_duration"
    )]
    pub duration: Duration,
}

/// The operator's rules for taking upstream releases. Every knob has a default, so an empty
/// policy file is the issue's default policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasePolicy {
    /// Which releases may be chosen.
    #[serde(default)]
    pub channel: Channel,
    /// How long a normal release waits after publication before it starts on its own.
    #[serde(default = "default_soak", with = "crate::duration")]
    pub soak: Duration,
    /// A normal release must be live this long after publication; overrides windows.
    #[serde(default = "default_deadline", with = "crate::duration")]
    pub deadline: Duration,
    /// A security release (no soak) must be live this long after publication.
    #[serde(default = "default_security_deadline", with = "crate::duration")]
    pub security_deadline: Duration,
    /// When a normal release may start. Empty means any time.
    #[serde(default)]
    pub windows: Vec<MaintenanceWindow>,
    /// Pin: never go beyond this tag.
    #[serde(default, deserialize_with = "optional_tag")]
    pub hold: Option<String>,
    /// Releases never to take (known bad).
    #[serde(default, deserialize_with = "tag_list")]
    pub skip: Vec<String>,
    /// Major upgrades an operator approved (`vmctl release approve vX.Y.Z`). A tag approves
    /// moving to its major version.
    #[serde(default, deserialize_with = "tag_list")]
    pub approved: Vec<String>,
    /// Take new major versions without approval.
    #[serde(default)]
    pub auto_major: bool,
}

impl Default for ReleasePolicy {
    fn default() -> Self {
        Self {
            channel: Channel::Stable,
            soak: DEFAULT_SOAK,
            deadline: DEFAULT_DEADLINE,
            security_deadline: DEFAULT_SECURITY_DEADLINE,
            windows: Vec::new(),
            hold: None,
            skip: Vec::new(),
            approved: Vec::new(),
            auto_major: false,
        }
    }
}

/// One release as the upstream feed reports it, after security classification.
///
/// `tag` is exactly what upstream sent and may not be a valid version; the policy ignores (and
/// reports) such entries rather than trusting them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamRelease {
    /// The git tag, e.g. `v4.3.1`.
    pub tag: String,
    /// The release title.
    #[serde(default)]
    pub name: String,
    /// The release notes (markdown).
    #[serde(default)]
    pub body: String,
    /// An unpublished draft.
    #[serde(default)]
    pub draft: bool,
    /// Marked as a prerelease upstream.
    #[serde(default)]
    pub prerelease: bool,
    /// When it was published.
    pub published_at: Timestamp,
    /// A security release: a `### Security` section or GHSA/CVE ids in its notes, or called
    /// urgent by Mastodon's update-check API.
    #[serde(default)]
    pub security: bool,
}

/// What the controller intends to do about upstream releases, and why. Its JSON is the
/// contract of `vmctl release plan -o json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseDecision {
    /// The fleet's version, e.g. `v4.3.1`.
    pub current: String,
    /// The release to roll out next, or `None` when nothing should start.
    pub target: Option<String>,
    /// Whether the target is a security release.
    pub security: bool,
    /// The rollout must not start before this (end of soak, or a maintenance window).
    pub earliest_start: Option<Timestamp>,
    /// The target must be live by this.
    pub deadline: Option<Timestamp>,
    /// One sentence saying why.
    pub reason: String,
}

fn default_soak() -> Duration {
    DEFAULT_SOAK
}

fn default_deadline() -> Duration {
    DEFAULT_DEADLINE
}

fn default_security_deadline() -> Duration {
    DEFAULT_SECURITY_DEADLINE
}

fn checked_tag<E: de::Error>(tag: String) -> Result<String, E> {
    if is_valid_tag(&tag) {
        Ok(tag)
    } else {
        Err(E::custom(format!(
            "{tag:?} is not a release tag (expected vMAJOR.MINOR.PATCH, e.g. \"v4.3.1\")"
        )))
    }
}

fn optional_tag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(checked_tag)
        .transpose()
}

fn tag_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<String>::deserialize(d)?
        .into_iter()
        .map(checked_tag)
        .collect()
}

fn window_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let duration = crate::duration::deserialize(d)?;
    if duration.is_zero() || duration > MAX_WINDOW {
        return Err(de::Error::custom(
            "a maintenance window lasts more than zero and at most 168h",
        ));
    }
    Ok(duration)
}

/// `"HH:MM"` times of day.
mod hhmm {
    use super::*;

    pub fn serialize<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.format("%H:%M"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let text = String::deserialize(d)?;
        NaiveTime::parse_from_str(&text, "%H:%M").map_err(|_| {
            de::Error::custom(format!(
                "invalid time {text:?}: expected \"HH:MM\" (UTC), e.g. \"02:30\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn an_empty_policy_is_the_default_policy() {
        let p: ReleasePolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, ReleasePolicy::default());
        assert_eq!(p.soak, Duration::from_secs(6 * 3600));
        assert_eq!(p.deadline, Duration::from_secs(48 * 3600));
        assert_eq!(p.security_deadline, Duration::from_secs(12 * 3600));
        assert_eq!(p.channel, Channel::Stable);
    }

    #[test]
    fn a_full_policy_reads_and_round_trips() {
        let p: ReleasePolicy = serde_json::from_str(
            r#"{"channel":"prerelease","soak":"2h","deadline":"24h","security_deadline":"4h",
                "windows":[{"days":["sat","Sunday"],"start":"02:30","duration":"3h"}],
                "hold":"v4.3.1","skip":["v4.3.2"],"approved":["v5.0.0"],"auto_major":true}"#,
        )
        .unwrap();
        assert_eq!(p.windows[0].days, vec![Weekday::Sat, Weekday::Sun]);
        assert_eq!(
            p.windows[0].start,
            NaiveTime::from_hms_opt(2, 30, 0).unwrap()
        );
        assert_eq!(p.windows[0].duration, Duration::from_secs(3 * 3600));
        assert_eq!(p.hold.as_deref(), Some("v4.3.1"));
        let again: ReleasePolicy =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn bad_tags_times_windows_and_unknown_fields_are_refused() {
        for bad in [
            r#"{"hold":"v4.3.1;rm -rf /"}"#,
            r#"{"skip":["../etc"]}"#,
            r#"{"approved":["4.0.0"]}"#,
            r#"{"windows":[{"start":"25:00","duration":"1h"}]}"#,
            r#"{"windows":[{"start":"02:00","duration":"0s"}]}"#,
            r#"{"windows":[{"days":["funday"],"start":"02:00","duration":"1h"}]}"#,
            r#"{"soak":"6"}"#,
            r#"{"sock":"6h"}"#,
        ] {
            assert!(serde_json::from_str::<ReleasePolicy>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_decision_has_the_documented_json_shape() {
        let d = ReleaseDecision {
            current: "v4.3.0".into(),
            target: Some("v4.3.1".into()),
            security: true,
            earliest_start: DateTime::from_timestamp(1_767_225_600, 0),
            deadline: None,
            reason: "r".into(),
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({"current":"v4.3.0","target":"v4.3.1","security":true,
                "earliest_start":"2026-01-01T00:00:00Z","deadline":null,"reason":"r"})
        );
    }
}

/// An operator's word on releases, kept per cluster beside the spec: approvals of new major
/// versions, retries of failed releases, and releases withdrawn by `vmctl rollout undo`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReleaseOverrides {
    /// Tags approved with `vmctl release approve` (added to the policy's `approved`).
    #[serde(default)]
    pub approved: Vec<String>,
    /// Failed tags an operator asked to try again (`vmctl release retry`).
    #[serde(default)]
    pub retried: Vec<String>,
    /// Tags rolled back with `vmctl rollout undo`; treated like failed ones until retried.
    #[serde(default)]
    pub withdrawn: Vec<String>,
}

impl crate::resource::Resource for ReleaseOverrides {
    const KIND: &'static str = "release_overrides";
    type Status = ();
}
