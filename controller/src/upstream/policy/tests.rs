//! Table-driven tests of [`decide`]: releases, current version, policy and time in; target,
//! timing and reason out.

use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use vmctl_protocol::release::MaintenanceWindow;

use super::*;

/// Monday 2026-01-05, noon UTC.
const NOW: &str = "2026-01-05T12:00:00Z";

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn v(text: &str) -> Version {
    parse_tag(text).unwrap()
}

#[derive(Clone, Copy, Default)]
struct Flags {
    security: bool,
    draft: bool,
    prerelease: bool,
}

const NORMAL: Flags = Flags {
    security: false,
    draft: false,
    prerelease: false,
};
const SECURITY: Flags = Flags {
    security: true,
    draft: false,
    prerelease: false,
};
const DRAFT: Flags = Flags {
    security: false,
    draft: true,
    prerelease: false,
};
const PRE: Flags = Flags {
    security: false,
    draft: false,
    prerelease: true,
};

fn rel(tag: &str, published: &str, flags: Flags) -> UpstreamRelease {
    UpstreamRelease {
        tag: tag.into(),
        name: tag.into(),
        body: String::new(),
        draft: flags.draft,
        prerelease: flags.prerelease,
        published_at: at(published),
        security: flags.security,
    }
}

struct Case {
    name: &'static str,
    releases: Vec<UpstreamRelease>,
    current: &'static str,
    policy: ReleasePolicy,
    now: &'static str,
    target: Option<&'static str>,
    security: bool,
    earliest: Option<&'static str>,
    deadline: Option<&'static str>,
    reason: &'static [&'static str],
}

impl Default for Case {
    fn default() -> Self {
        Self {
            name: "",
            releases: Vec::new(),
            current: "v4.3.0",
            policy: ReleasePolicy::default(),
            now: NOW,
            target: None,
            security: false,
            earliest: None,
            deadline: None,
            reason: &[],
        }
    }
}

fn check(case: &Case) {
    let d = decide(&case.releases, &v(case.current), &case.policy, at(case.now));
    let name = case.name;
    assert_eq!(d.current, case.current, "{name}");
    assert_eq!(d.target.as_deref(), case.target, "{name}: {}", d.reason);
    assert_eq!(d.security, case.security, "{name}");
    assert_eq!(d.earliest_start, case.earliest.map(at), "{name}");
    assert_eq!(d.deadline, case.deadline.map(at), "{name}");
    for part in case.reason {
        assert!(
            d.reason.contains(part),
            "{name}: {:?} lacks {part:?}",
            d.reason
        );
    }
}

fn window(days: &[Weekday], start: (u32, u32), hours: u64) -> MaintenanceWindow {
    MaintenanceWindow {
        days: days.to_vec(),
        start: NaiveTime::from_hms_opt(start.0, start.1, 0).unwrap(),
        duration: Duration::from_secs(hours * 3600),
    }
}

#[test]
fn timing_follows_soak_deadline_and_the_security_fast_lane() {
    let cases = [
        Case {
            name: "a normal release soaks 6 h and is due 48 h after publication",
            releases: vec![rel("v4.3.1", "2026-01-05T10:00:00Z", NORMAL)],
            target: Some("v4.3.1"),
            earliest: Some("2026-01-05T16:00:00Z"),
            deadline: Some("2026-01-07T10:00:00Z"),
            reason: &[
                "v4.3.1 was published 2026-01-05T10:00:00Z",
                "soaks 6h",
                "48h",
            ],
            ..Case::default()
        },
        Case {
            name: "a security release has no soak and is due 12 h after publication",
            releases: vec![rel("v4.3.1", "2026-01-05T10:00:00Z", SECURITY)],
            target: Some("v4.3.1"),
            security: true,
            earliest: Some("2026-01-05T10:00:00Z"),
            deadline: Some("2026-01-05T22:00:00Z"),
            reason: &[
                "v4.3.1 is a security release published 2026-01-05T10:00:00Z",
                "no soak",
                "deadline in 12h",
            ],
            ..Case::default()
        },
        Case {
            name: "the knobs change soak and deadlines",
            releases: vec![rel("v4.3.1", "2026-01-05T10:00:00Z", NORMAL)],
            policy: ReleasePolicy {
                soak: Duration::from_secs(3600),
                deadline: Duration::from_secs(24 * 3600),
                ..ReleasePolicy::default()
            },
            target: Some("v4.3.1"),
            earliest: Some("2026-01-05T11:00:00Z"),
            deadline: Some("2026-01-06T10:00:00Z"),
            ..Case::default()
        },
        Case {
            name: "a soak longer than the deadline is cut to the deadline",
            releases: vec![rel("v4.3.1", "2026-01-05T10:00:00Z", NORMAL)],
            policy: ReleasePolicy {
                soak: Duration::from_secs(72 * 3600),
                ..ReleasePolicy::default()
            },
            target: Some("v4.3.1"),
            earliest: Some("2026-01-07T10:00:00Z"),
            deadline: Some("2026-01-07T10:00:00Z"),
            ..Case::default()
        },
        Case {
            name: "within the current series the newest patch is taken",
            releases: vec![
                rel("v4.3.1", "2026-01-01T10:00:00Z", NORMAL),
                rel("v4.3.2", "2026-01-04T10:00:00Z", NORMAL),
                rel("v4.2.9", "2026-01-04T11:00:00Z", SECURITY),
            ],
            target: Some("v4.3.2"),
            earliest: Some("2026-01-04T16:00:00Z"),
            deadline: Some("2026-01-06T10:00:00Z"),
            ..Case::default()
        },
    ];
    for case in &cases {
        check(case);
    }
}

#[test]
fn maintenance_windows_delay_a_normal_release_but_never_past_its_deadline() {
    let saturday = vec![window(&[Weekday::Sat], (2, 0), 4)];
    let daily_night = vec![window(&[], (22, 0), 2)];
    let cases = [
        Case {
            name: "after the soak the rollout waits for the next window",
            releases: vec![rel("v4.3.1", "2026-01-05T10:00:00Z", NORMAL)],
            policy: ReleasePolicy {
                windows: daily_night.clone(),
                ..ReleasePolicy::default()
            },
            target: Some("v4.3.1"),
            earliest: Some("2026-01-05T22:00:00Z"),
            deadline: Some("2026-01-07T10:00:00Z"),
            reason: &["maintenance window at 2026-01-05T22:00:00Z"],
            ..Case::default()
        },
        Case {
            name: "a soak that ends inside a window starts at the end of the soak",
            releases: vec![rel("v4.3.1", "2026-01-05T17:00:00Z", NORMAL)],
            policy: ReleasePolicy {
                windows: daily_night.clone(),
                ..ReleasePolicy::default()
            },
            target: Some("v4.3.1"),
            earliest: Some("2026-01-05T23:00:00Z"),
            deadline: Some("2026-01-07T17:00:00Z"),
            ..Case::default()
        },
        Case {
            name: "once the soak is over, the window is looked for from now",
            releases: vec![rel("v4.3.1", "2026-01-04T00:00:00Z", NORMAL)],
            policy: ReleasePolicy {
                windows: daily_night,
                ..ReleasePolicy::default()
            },
            target: Some("v4.3.1"),
            earliest: Some("2026-01-05T22:00:00Z"),
            deadline: Some("2026-01-06T00:00:00Z"),
            ..Case::default()
        },
        Case {
            name: "a window after the deadline is overridden by the deadline",
            releases: vec![rel("v4.3.1", "2026-01-05T10:00:00Z", NORMAL)],
            policy: ReleasePolicy {
                windows: saturday.clone(),
                ..ReleasePolicy::default()
            },
            target: Some("v4.3.1"),
            earliest: Some("2026-01-05T16:00:00Z"),
            deadline: Some("2026-01-07T10:00:00Z"),
            reason: &["no maintenance window opens before the deadline"],
            ..Case::default()
        },
        Case {
            name: "an overdue release outside any window starts now",
            releases: vec![rel("v4.3.1", "2026-01-01T10:00:00Z", NORMAL)],
            policy: ReleasePolicy {
                windows: saturday.clone(),
                ..ReleasePolicy::default()
            },
            target: Some("v4.3.1"),
            earliest: Some(NOW),
            deadline: Some("2026-01-03T10:00:00Z"),
            ..Case::default()
        },
        Case {
            name: "a security release ignores windows",
            releases: vec![rel("v4.3.1", "2026-01-05T10:00:00Z", SECURITY)],
            policy: ReleasePolicy {
                windows: saturday,
                ..ReleasePolicy::default()
            },
            target: Some("v4.3.1"),
            security: true,
            earliest: Some("2026-01-05T10:00:00Z"),
            deadline: Some("2026-01-05T22:00:00Z"),
            ..Case::default()
        },
    ];
    for case in &cases {
        check(case);
    }
}

fn series_feed() -> Vec<UpstreamRelease> {
    vec![
        rel("v4.3.1", "2025-10-01T00:00:00Z", NORMAL),
        rel("v4.3.2", "2025-11-01T00:00:00Z", NORMAL),
        rel("v4.4.0", "2025-12-01T00:00:00Z", NORMAL),
        rel("v4.4.3", "2025-12-20T00:00:00Z", NORMAL),
        rel("v4.5.0", "2026-01-01T00:00:00Z", NORMAL),
        rel("v4.5.1", "2026-01-03T00:00:00Z", NORMAL),
    ]
}

#[test]
fn no_minor_series_is_skipped() {
    let cases = [
        Case {
            name: "4.3 goes to the newest 4.4 before 4.5",
            releases: series_feed(),
            current: "v4.3.1",
            target: Some("v4.4.3"),
            earliest: Some("2025-12-20T06:00:00Z"),
            deadline: Some("2025-12-22T00:00:00Z"),
            reason: &["Mastodon needs every minor series, so 4.4 comes before v4.5.1"],
            ..Case::default()
        },
        Case {
            name: "then 4.4 goes to the newest 4.5",
            releases: series_feed(),
            current: "v4.4.3",
            target: Some("v4.5.1"),
            earliest: Some("2026-01-03T06:00:00Z"),
            deadline: Some("2026-01-05T00:00:00Z"),
            ..Case::default()
        },
        Case {
            name: "skipping every 4.4 release refuses the jump and keeps patching 4.3",
            releases: series_feed(),
            current: "v4.3.1",
            policy: ReleasePolicy {
                skip: vec!["v4.4.0".into(), "v4.4.3".into()],
                ..ReleasePolicy::default()
            },
            target: Some("v4.3.2"),
            earliest: Some("2025-11-01T06:00:00Z"),
            deadline: Some("2025-11-03T00:00:00Z"),
            reason: &["v4.5.1 would skip the 4.4 series"],
            ..Case::default()
        },
        Case {
            name: "a series missing from the feed is not jumped over either",
            releases: vec![rel("v4.5.0", "2026-01-01T00:00:00Z", NORMAL)],
            current: "v4.3.1",
            reason: &["v4.5.0 would skip the 4.4 series"],
            ..Case::default()
        },
        Case {
            name: "a security patch of the current series comes before a normal step up",
            releases: vec![
                rel("v4.3.2", "2026-01-05T08:00:00Z", SECURITY),
                rel("v4.4.0", "2026-01-01T00:00:00Z", NORMAL),
            ],
            current: "v4.3.1",
            target: Some("v4.3.2"),
            security: true,
            earliest: Some("2026-01-05T08:00:00Z"),
            deadline: Some("2026-01-05T20:00:00Z"),
            reason: &["the security patch comes before moving to the 4.4 series"],
            ..Case::default()
        },
    ];
    for case in &cases {
        check(case);
    }
}

#[test]
fn a_new_major_waits_for_approval_unless_auto_major() {
    let feed = || {
        vec![
            rel("v4.5.2", "2026-01-02T00:00:00Z", NORMAL),
            rel("v5.0.0", "2026-01-01T00:00:00Z", NORMAL),
            rel("v5.0.1", "2026-01-03T00:00:00Z", NORMAL),
        ]
    };
    let cases = [
        Case {
            name: "unapproved major: patch the current series meanwhile",
            releases: feed(),
            current: "v4.5.1",
            target: Some("v4.5.2"),
            earliest: Some("2026-01-02T06:00:00Z"),
            deadline: Some("2026-01-04T00:00:00Z"),
            reason: &["v5.0.1 is a new major version and waits for `vmctl release approve v5.0.1`"],
            ..Case::default()
        },
        Case {
            name: "unapproved major with nothing else: no target",
            releases: feed(),
            current: "v4.5.2",
            reason: &["waits for `vmctl release approve v5.0.1`"],
            ..Case::default()
        },
        Case {
            name: "an approval of the major lets it go",
            releases: feed(),
            current: "v4.5.2",
            policy: ReleasePolicy {
                approved: vec!["v5.0.0".into()],
                ..ReleasePolicy::default()
            },
            target: Some("v5.0.1"),
            earliest: Some("2026-01-03T06:00:00Z"),
            deadline: Some("2026-01-05T00:00:00Z"),
            ..Case::default()
        },
        Case {
            name: "auto_major needs no approval",
            releases: feed(),
            current: "v4.5.2",
            policy: ReleasePolicy {
                auto_major: true,
                ..ReleasePolicy::default()
            },
            target: Some("v5.0.1"),
            earliest: Some("2026-01-03T06:00:00Z"),
            deadline: Some("2026-01-05T00:00:00Z"),
            ..Case::default()
        },
        Case {
            name: "a major jump still goes through x.0 first",
            releases: vec![
                rel("v5.0.1", "2026-01-03T00:00:00Z", NORMAL),
                rel("v5.1.0", "2026-01-04T00:00:00Z", NORMAL),
            ],
            current: "v4.5.2",
            policy: ReleasePolicy {
                auto_major: true,
                ..ReleasePolicy::default()
            },
            target: Some("v5.0.1"),
            earliest: Some("2026-01-03T06:00:00Z"),
            deadline: Some("2026-01-05T00:00:00Z"),
            ..Case::default()
        },
        Case {
            name: "approving a later major does not approve an earlier one",
            releases: feed(),
            current: "v4.5.2",
            policy: ReleasePolicy {
                approved: vec!["v6.0.0".into()],
                ..ReleasePolicy::default()
            },
            reason: &["waits for `vmctl release approve v5.0.1`"],
            ..Case::default()
        },
    ];
    for case in &cases {
        check(case);
    }
}

#[test]
fn hold_and_skip_narrow_the_choice() {
    let feed = || {
        vec![
            rel("v4.3.1", "2026-01-01T00:00:00Z", NORMAL),
            rel("v4.3.2", "2026-01-02T00:00:00Z", NORMAL),
            rel("v4.3.3", "2026-01-05T06:00:00Z", SECURITY),
        ]
    };
    let cases = [
        Case {
            name: "hold pins the fleet at the held version",
            releases: feed(),
            current: "v4.3.1",
            policy: ReleasePolicy {
                hold: Some("v4.3.2".into()),
                ..ReleasePolicy::default()
            },
            target: Some("v4.3.2"),
            earliest: Some("2026-01-02T06:00:00Z"),
            deadline: Some("2026-01-04T00:00:00Z"),
            ..Case::default()
        },
        Case {
            name: "at the hold nothing is taken, not even a security release",
            releases: feed(),
            current: "v4.3.2",
            policy: ReleasePolicy {
                hold: Some("v4.3.2".into()),
                ..ReleasePolicy::default()
            },
            reason: &["held at v4.3.2: v4.3.3 (a security release) waits until the hold is lifted"],
            ..Case::default()
        },
        Case {
            name: "a skipped release is passed over for the next one",
            releases: feed(),
            current: "v4.3.1",
            policy: ReleasePolicy {
                skip: vec!["v4.3.3".into()],
                ..ReleasePolicy::default()
            },
            target: Some("v4.3.2"),
            earliest: Some("2026-01-02T06:00:00Z"),
            deadline: Some("2026-01-04T00:00:00Z"),
            ..Case::default()
        },
        Case {
            name: "skipping the only newer release leaves the fleet up to date",
            releases: feed(),
            current: "v4.3.2",
            policy: ReleasePolicy {
                skip: vec!["v4.3.3".into()],
                ..ReleasePolicy::default()
            },
            reason: &["up to date"],
            ..Case::default()
        },
    ];
    for case in &cases {
        check(case);
    }
}

#[test]
fn drafts_prereleases_and_bad_tags_are_never_chosen_on_stable() {
    let feed = || {
        vec![
            rel("v4.3.1", "2026-01-01T00:00:00Z", NORMAL),
            rel("v4.3.2", "2026-01-02T00:00:00Z", DRAFT),
            rel("v4.4.0-rc.1", "2026-01-03T00:00:00Z", NORMAL),
            rel("v4.4.0-beta.2", "2026-01-03T00:00:00Z", NORMAL),
            rel("v4.3.3", "2026-01-04T00:00:00Z", PRE),
            rel("v4.3.9;rm -rf /", "2026-01-04T00:00:00Z", SECURITY),
            rel("../../v4.3.9", "2026-01-04T00:00:00Z", NORMAL),
        ]
    };
    let cases = [
        Case {
            name: "stable takes only the published stable release",
            releases: feed(),
            current: "v4.3.0",
            target: Some("v4.3.1"),
            earliest: Some("2026-01-01T06:00:00Z"),
            deadline: Some("2026-01-03T00:00:00Z"),
            reason: &[
                "ignored 2 feed entries whose tag is not a version",
                r#""v4.3.9;rm -rf /""#,
                r#""../../v4.3.9""#,
            ],
            ..Case::default()
        },
        Case {
            name: "up to date when only drafts, prereleases and bad tags are newer",
            releases: feed(),
            current: "v4.3.1",
            reason: &[
                "up to date: v4.3.1 is at or past the newest release the policy allows (v4.3.1)",
            ],
            ..Case::default()
        },
        Case {
            name: "the prerelease channel takes prereleases but never drafts",
            releases: feed(),
            current: "v4.3.1",
            policy: ReleasePolicy {
                channel: Channel::Prerelease,
                ..ReleasePolicy::default()
            },
            target: Some("v4.4.0-rc.1"),
            earliest: Some("2026-01-03T06:00:00Z"),
            deadline: Some("2026-01-05T00:00:00Z"),
            ..Case::default()
        },
    ];
    for case in &cases {
        check(case);
    }
}

#[test]
fn nothing_to_do_says_why() {
    let cases = [
        Case {
            name: "empty feed",
            reason: &["the release feed lists no releases, so no rollout starts"],
            ..Case::default()
        },
        Case {
            name: "only bad tags",
            releases: vec![rel("latest", "2026-01-01T00:00:00Z", NORMAL)],
            reason: &[
                "no release in the feed is one the policy allows",
                "\"latest\"",
            ],
            ..Case::default()
        },
        Case {
            name: "fleet ahead of the feed",
            releases: vec![rel("v4.3.1", "2026-01-01T00:00:00Z", NORMAL)],
            current: "v4.4.0",
            reason: &["up to date: v4.4.0"],
            ..Case::default()
        },
        Case {
            name: "a hold below the fleet takes nothing (no downgrades)",
            releases: vec![rel("v4.4.1", "2026-01-01T00:00:00Z", NORMAL)],
            current: "v4.4.0",
            policy: ReleasePolicy {
                hold: Some("v4.3.0".into()),
                ..ReleasePolicy::default()
            },
            reason: &["held at v4.3.0: v4.4.1 waits"],
            ..Case::default()
        },
    ];
    for case in &cases {
        check(case);
    }
}

#[test]
fn a_version_listed_twice_keeps_its_security_flag() {
    let releases = vec![
        rel("v4.3.1", "2026-01-05T10:00:00Z", NORMAL),
        rel("v4.3.1", "2026-01-05T10:00:00Z", SECURITY),
    ];
    let d = decide(&releases, &v("v4.3.0"), &ReleasePolicy::default(), at(NOW));
    assert!(d.security);
    assert_eq!(d.target.as_deref(), Some("v4.3.1"));
}

#[test]
fn skipped_series_counts_every_series_jumped_over() {
    let none = BTreeSet::new();
    assert_eq!(skipped_series((4, 3), (4, 4), &none), vec![]);
    assert_eq!(skipped_series((4, 3), (4, 6), &none), vec![(4, 4), (4, 5)]);
    assert_eq!(skipped_series((3, 5), (4, 0), &none), vec![]);
    assert_eq!(skipped_series((3, 5), (4, 1), &none), vec![(4, 0)]);
    assert_eq!(skipped_series((3, 5), (5, 0), &none), vec![(4, 0)]);
    let stable = BTreeSet::from([(3, 6), (4, 0)]);
    assert_eq!(skipped_series((3, 5), (4, 0), &stable), vec![(3, 6)]);
}

#[test]
fn durations_in_reasons_use_the_policy_files_units() {
    let cases = [(48 * 3600, "48h"), (90 * 60, "90m"), (45, "45s"), (0, "0s")];
    for (secs, want) in cases {
        assert_eq!(human(Duration::from_secs(secs)), want);
    }
    assert_eq!(human(Duration::from_millis(250)), "250ms");
}
