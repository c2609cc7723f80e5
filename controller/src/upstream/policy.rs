//! The release policy as one pure function, [`decide`]: from the upstream releases, the
//! fleet's version, the operator's [`ReleasePolicy`] and the time, which release to roll out
//! next, when it may start, when it must be live, and why.
//!
//! Rules, in the order they apply:
//! 1. Feed entries whose tag is not a version are ignored and named in the reason. Drafts are
//!    never chosen; on the stable channel neither are prereleases nor `-rc`/`-beta` tags.
//!    `skip` removes releases; `hold` removes everything newer than the held tag.
//! 2. Mastodon asks for at least one release of every minor series, so the next step is the
//!    newest release of the lowest series above the fleet's (4.3.x → newest 4.4.z, even when
//!    4.5.y exists); with no newer series, the newest patch of the fleet's own series. A step
//!    that would skip a series (all its releases skipped, say) is refused.
//! 3. A new major version waits for `vmctl release approve` unless `auto_major` is set. While
//!    the step up waits, patches of the current series still go ahead; so does a security
//!    patch of the current series when the step up is not itself a security release.
//! 4. Timing: a security release starts at once and is due `security_deadline` after
//!    publication; a normal release soaks for `soak`, then waits for a maintenance window if
//!    any are set, and is due `deadline` after publication. A window that would open only after
//!    the deadline is overridden.
//!
//! This file reads no clock and no I/O: `now` is an argument.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use chrono::SecondsFormat;
use semver::Version;
use vmctl_protocol::release::{Channel, ReleaseDecision, ReleasePolicy, UpstreamRelease};
use vmctl_protocol::Timestamp;

use super::version::{parse_tag, quote_tag, tag_of};
use super::windows::{add, next_open};

/// A release the policy may choose, with its parsed version.
#[derive(Debug, Clone)]
struct Eligible<'a> {
    version: Version,
    release: &'a UpstreamRelease,
}

/// A minor series, e.g. (4, 3).
type Series = (u64, u64);

fn series(v: &Version) -> Series {
    (v.major, v.minor)
}

fn show_series(s: Series) -> String {
    format!("{}.{}", s.0, s.1)
}

fn time(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A duration in the policy file's own syntax (`48h`, `90m`, `30s`), so a reason quotes the
/// knob the way the operator wrote it.
fn human(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 if d.subsec_millis() > 0 => format!("{}ms", d.as_millis()),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The feed after rule 1.
struct Filtered<'a> {
    /// Newest last; one entry per version.
    eligible: Vec<Eligible<'a>>,
    /// Series with a published stable release anywhere in the feed.
    stable_series: BTreeSet<Series>,
    /// Tags that are not versions.
    invalid: Vec<&'a str>,
}

fn filter<'a>(releases: &'a [UpstreamRelease], policy: &ReleasePolicy) -> Filtered<'a> {
    let skip: BTreeSet<Version> = policy.skip.iter().filter_map(|t| parse_tag(t)).collect();
    let mut eligible: Vec<Eligible<'a>> = Vec::new();
    let mut stable_series = BTreeSet::new();
    let mut invalid = Vec::new();
    for release in releases {
        let Some(version) = parse_tag(&release.tag) else {
            invalid.push(release.tag.as_str());
            continue;
        };
        if release.draft {
            continue;
        }
        let pre = release.prerelease || !version.pre.is_empty();
        if !pre {
            stable_series.insert(series(&version));
        }
        if (pre && policy.channel == Channel::Stable) || skip.contains(&version) {
            continue;
        }
        // A feed listing one version twice: keep the first, but a security flag on either wins.
        if let Some(seen) = eligible.iter_mut().find(|e| e.version == version) {
            if release.security && !seen.release.security {
                seen.release = release;
            }
            continue;
        }
        eligible.push(Eligible { version, release });
    }
    eligible.sort_by(|a, b| a.version.cmp(&b.version));
    Filtered {
        eligible,
        stable_series,
        invalid,
    }
}

/// Series strictly between `from` and `to` that the fleet would skip: every minor of the same
/// major, the `.0` of every major jumped over, the minors of `to`'s major below it, and any
/// series the feed shows a stable release of.
fn skipped_series(from: Series, to: Series, stable: &BTreeSet<Series>) -> Vec<Series> {
    let mut missing = BTreeSet::new();
    if from.0 == to.0 {
        missing.extend((from.1 + 1..to.1).map(|m| (from.0, m)));
    } else {
        missing.extend((from.0 + 1..to.0).map(|major| (major, 0)));
        missing.extend((0..to.1).map(|m| (to.0, m)));
    }
    missing.extend(stable.iter().copied().filter(|s| *s > from && *s < to));
    missing.into_iter().collect()
}

fn major_approved(target: &Version, policy: &ReleasePolicy) -> bool {
    policy.auto_major
        || policy
            .approved
            .iter()
            .filter_map(|t| parse_tag(t))
            .any(|v| v.major == target.major)
}

/// The chosen step, before timing.
struct Step<'a> {
    target: &'a Eligible<'a>,
    /// Why this one and not another, when that is not obvious.
    why: Option<String>,
}

/// Rules 2 and 3: which candidate (all newer than `current`, allowed by the policy) is next.
fn choose<'a>(
    candidates: &'a [Eligible<'a>],
    current: &Version,
    policy: &ReleasePolicy,
    stable_series: &BTreeSet<Series>,
) -> Result<Step<'a>, String> {
    let here = series(current);
    let patch = candidates.iter().rev().find(|c| series(&c.version) == here);
    let Some(next_series) = candidates
        .iter()
        .map(|c| series(&c.version))
        .find(|s| *s > here)
    else {
        let target = patch.ok_or_else(|| "no newer release".to_owned())?;
        return Ok(Step { target, why: None });
    };
    let up = candidates
        .iter()
        .rev()
        .find(|c| series(&c.version) == next_series)
        .expect("the series came from a candidate");
    let newest = candidates.last().expect("candidates are not empty");
    let blocked = {
        let gap = skipped_series(here, next_series, stable_series);
        if !gap.is_empty() {
            let names: Vec<String> = gap.into_iter().map(show_series).collect();
            Some(format!(
                "{} would skip the {} series, which has no release the policy allows",
                tag_of(&up.version),
                names.join(", ")
            ))
        } else if up.version.major > current.major && !major_approved(&up.version, policy) {
            Some(format!(
                "{} is a new major version and waits for `vmctl release approve {}`",
                tag_of(&up.version),
                tag_of(&up.version)
            ))
        } else {
            None
        }
    };
    match (blocked, patch) {
        (None, Some(p)) if p.release.security && !up.release.security => Ok(Step {
            target: p,
            why: Some(format!(
                "the security patch comes before moving to the {} series",
                show_series(next_series)
            )),
        }),
        (None, _) => {
            let why = (newest.version > up.version).then(|| {
                format!(
                    "Mastodon needs every minor series, so {} comes before {}",
                    show_series(next_series),
                    tag_of(&newest.version)
                )
            });
            Ok(Step { target: up, why })
        }
        (Some(block), Some(p)) => Ok(Step {
            target: p,
            why: Some(block),
        }),
        (Some(block), None) => Err(block),
    }
}

/// Decides the next release to roll out. Pure: the same inputs give the same decision.
///
/// # Caveats
/// `earliest_start` may lie in the past: it then means "may start now". With maintenance
/// windows it is computed from `now` once the soak is over, so it moves as time passes.
#[must_use]
pub fn decide(
    releases: &[UpstreamRelease],
    current: &Version,
    policy: &ReleasePolicy,
    now: Timestamp,
) -> ReleaseDecision {
    let filtered = filter(releases, policy);
    let mut notes = String::new();
    if !filtered.invalid.is_empty() {
        let shown: Vec<String> = filtered
            .invalid
            .iter()
            .take(3)
            .map(|t| quote_tag(t))
            .collect();
        let more = filtered.invalid.len().saturating_sub(shown.len());
        let _ = write!(
            notes,
            "; ignored {} feed entr{} whose tag is not a version: {}{}",
            filtered.invalid.len(),
            if filtered.invalid.len() == 1 {
                "y"
            } else {
                "ies"
            },
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    let none = |reason: String| ReleaseDecision {
        current: tag_of(current),
        target: None,
        security: false,
        earliest_start: None,
        deadline: None,
        reason: format!("{reason}{notes}"),
    };

    let hold = match policy.hold.as_deref().map(|h| (h, parse_tag(h))) {
        None => None,
        Some((h, None)) => {
            return none(format!(
                "the hold {} is not a version, so nothing is taken",
                quote_tag(h)
            ))
        }
        Some((_, Some(v))) => Some(v),
    };
    let newer: Vec<Eligible<'_>> = filtered
        .eligible
        .iter()
        .filter(|e| e.version > *current)
        .cloned()
        .collect();
    let (candidates, held): (Vec<_>, Vec<_>) = newer
        .into_iter()
        .partition(|e| hold.as_ref().is_none_or(|h| e.version <= *h));

    if candidates.is_empty() {
        let reason = if releases.is_empty() {
            "the release feed lists no releases, so no rollout starts".to_owned()
        } else if let (Some(h), Some(newest)) = (&hold, held.last()) {
            format!(
                "held at {}: {}{} waits until the hold is lifted",
                tag_of(h),
                tag_of(&newest.version),
                if newest.release.security {
                    " (a security release)"
                } else {
                    ""
                }
            )
        } else if let Some(newest) = filtered.eligible.last() {
            format!(
                "up to date: {} is at or past the newest release the policy allows ({})",
                tag_of(current),
                tag_of(&newest.version)
            )
        } else {
            "no release in the feed is one the policy allows, so no rollout starts".to_owned()
        };
        return none(reason);
    }

    let step = match choose(&candidates, current, policy, &filtered.stable_series) {
        Ok(step) => step,
        Err(block) => return none(block),
    };
    let release = step.target.release;
    let tag = tag_of(&step.target.version);
    let published = release.published_at;
    let (earliest, deadline, timing) = if release.security {
        let deadline = add(published, policy.security_deadline);
        let timing = format!(
            "{tag} is a security release published {}; no soak, deadline in {} ({})",
            time(published),
            human(policy.security_deadline),
            time(deadline)
        );
        (published, deadline, timing)
    } else {
        normal_timing(&tag, published, policy, now)
    };
    let why = step.why.map(|w| format!("; {w}")).unwrap_or_default();
    ReleaseDecision {
        current: tag_of(current),
        target: Some(tag),
        security: release.security,
        earliest_start: Some(earliest),
        deadline: Some(deadline),
        reason: format!("{timing}{why}{notes}"),
    }
}

/// Soak, maintenance windows and the deadline for a normal release.
fn normal_timing(
    tag: &str,
    published: Timestamp,
    policy: &ReleasePolicy,
    now: Timestamp,
) -> (Timestamp, Timestamp, String) {
    let deadline = add(published, policy.deadline);
    let soak_end = add(published, policy.soak).min(deadline);
    let head = format!(
        "{tag} was published {}; it soaks {} and must be live within {} ({})",
        time(published),
        human(policy.soak),
        human(policy.deadline),
        time(deadline)
    );
    if policy.windows.is_empty() {
        return (soak_end, deadline, head);
    }
    let from = soak_end.max(now);
    match next_open(&policy.windows, from) {
        Some(open) if open <= deadline => (
            open,
            deadline,
            format!(
                "{head}; it starts in a maintenance window at {}",
                time(open)
            ),
        ),
        _ => (
            from,
            deadline,
            format!(
                "{head}; no maintenance window opens before the deadline, so it starts without one"
            ),
        ),
    }
}

#[cfg(test)]
mod tests;
