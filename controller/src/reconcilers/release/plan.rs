//! Whether to start a rollout now. Pure: the policy's decision (what and when) comes from
//! `upstream::policy::decide`; this adds what the fleet is doing (a rollout in flight, a release
//! that already failed) and the time.

use std::time::Duration;

use vmctl_protocol::{
    meta::Timestamp,
    release::ReleaseDecision,
    rollout::{RolloutPhase, RolloutSpec, RolloutStatus},
};

/// What the release reconciler does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Start a rollout to this tag.
    Start(String),
    /// Nothing until this long has passed (the soak, a window, or the next feed check).
    Wait(Duration, String),
}

/// The lowest live release among the fleet's Mastodon nodes, as a version; `0.0.0` when none
/// runs a release yet (a fresh fleet then installs the chosen release).
pub fn fleet_version(live: &[Option<String>]) -> semver::Version {
    live.iter()
        .flatten()
        .filter_map(|t| semver::Version::parse(t.trim_start_matches('v')).ok())
        .min()
        .unwrap_or_else(|| semver::Version::new(0, 0, 0))
}

/// A pool as readiness needs it: name, the droplet count a managed pool asks for, and its
/// nodes' reachability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolReadiness {
    /// Pool name.
    pub name: String,
    /// `Some(count)` for a managed pool.
    pub desired: Option<u32>,
    /// (node name, reachable) for each of its nodes.
    pub nodes: Vec<(String, bool)>,
}

/// Why the fleet cannot take a rollout now, if it cannot: no nodes, a provision in flight, a
/// managed pool below its count, or a node unreachable. A rollout needs every node. Pure.
pub fn fleet_unready(pools: &[PoolReadiness], provision_in_flight: Option<&str>) -> Option<String> {
    if pools.iter().all(|p| p.nodes.is_empty()) {
        return Some("the fleet has no nodes yet".into());
    }
    if let Some(p) = provision_in_flight {
        return Some(format!("provision {p} is in flight"));
    }
    for p in pools {
        if let Some(want) = p.desired {
            if p.nodes.len() != want as usize {
                return Some(format!(
                    "pool {} has {}/{} nodes",
                    p.name,
                    p.nodes.len(),
                    want
                ));
            }
        }
        if let Some((n, _)) = p.nodes.iter().find(|(_, up)| !up) {
            return Some(format!("node {n} is unreachable"));
        }
    }
    None
}

/// A fleet with no release installed yet: install the held release if the policy pins one,
/// else the newest release the channel allows. There is no upgrade path to respect and nothing
/// to soak against, so it may start now. Pure.
pub fn install_decision(
    releases: &[vmctl_protocol::release::UpstreamRelease],
    policy: &vmctl_protocol::release::ReleasePolicy,
    now: Timestamp,
) -> ReleaseDecision {
    let stable = |r: &&vmctl_protocol::release::UpstreamRelease| {
        !r.draft
            && (policy.channel == vmctl_protocol::release::Channel::Prerelease || !r.prerelease)
            && vmctl_protocol::release_ops::is_valid_tag(&r.tag)
            && semver::Version::parse(r.tag.trim_start_matches('v')).is_ok_and(|v| {
                policy.channel == vmctl_protocol::release::Channel::Prerelease || v.pre.is_empty()
            })
            && !policy.skip.contains(&r.tag)
    };
    let chosen = match &policy.hold {
        Some(hold) => releases.iter().filter(stable).find(|r| &r.tag == hold),
        None => releases
            .iter()
            .filter(stable)
            .max_by_key(|r| semver::Version::parse(r.tag.trim_start_matches('v')).ok()),
    };
    match chosen {
        Some(r) => ReleaseDecision {
            current: "none".into(),
            target: Some(r.tag.clone()),
            security: r.security,
            earliest_start: Some(now),
            deadline: None,
            reason: format!("no node runs Mastodon yet: installing {}", r.tag),
        },
        None => ReleaseDecision {
            current: "none".into(),
            target: None,
            security: false,
            earliest_start: None,
            deadline: None,
            reason: "no node runs Mastodon yet, and the feed has no release the policy allows"
                .into(),
        },
    }
}

/// Decides, given the policy's decision, the rollouts so far and when the feed is read next.
pub fn next(
    decision: &ReleaseDecision,
    rollouts: &[(&RolloutSpec, &RolloutStatus)],
    retried: &[String],
    withdrawn: &[String],
    fleet_unready: Option<String>,
    check_interval: Duration,
    now: Timestamp,
) -> Next {
    if let Some(why) = fleet_unready {
        // A rollout needs every node: one missing or unreachable would be left on the old
        // release (or fail the prepare). Wait for the pools to settle.
        return Next::Wait(Duration::from_secs(2).min(check_interval), why);
    }
    if let Some((spec, _)) = rollouts.iter().find(|(_, st)| !st.phase.is_terminal()) {
        return Next::Wait(
            check_interval,
            format!("the rollout to {} is in flight", spec.target),
        );
    }
    let Some(target) = &decision.target else {
        return Next::Wait(check_interval, decision.reason.clone());
    };
    let failed = withdrawn.contains(target)
        || rollouts.iter().any(|(spec, st)| {
            &spec.target == target
                && matches!(st.phase, RolloutPhase::Reverted | RolloutPhase::Halted)
        });
    if failed && !retried.contains(target) {
        return Next::Wait(
            check_interval,
            format!("{target} failed before; waiting for a newer release or `vmctl release retry {target}`"),
        );
    }
    match decision.earliest_start {
        Some(start) if start > now => {
            let wait = start
                .signed_duration_since(now)
                .to_std()
                .unwrap_or_default();
            Next::Wait(
                wait.min(check_interval),
                format!("{target} may start at {start}"),
            )
        }
        _ => Next::Start(target.clone()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;

    fn at(s: i64) -> Timestamp {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn decision(target: Option<&str>, start: i64) -> ReleaseDecision {
        ReleaseDecision {
            current: "v4.3.0".into(),
            target: target.map(str::to_string),
            security: false,
            earliest_start: target.map(|_| at(start)),
            deadline: None,
            reason: "r".into(),
        }
    }

    fn rollout(target: &str, phase: RolloutPhase) -> (RolloutSpec, RolloutStatus) {
        (
            RolloutSpec {
                target: target.into(),
                commit: "c".into(),
                repo_url: "r".into(),
                from: None,
                cache_clear: false,
                max_parallel: 1,
                min_healthy_time: Duration::ZERO,
                healthy_deadline: Duration::ZERO,
                progress_deadline: Duration::ZERO,
            },
            RolloutStatus {
                phase,
                ..Default::default()
            },
        )
    }

    const CHECK: Duration = Duration::from_secs(900);

    #[test]
    fn starts_once_the_soak_is_over_and_never_beside_another_rollout() {
        assert!(
            matches!(next(&decision(Some("v4.3.1"), 100), &[], &[], &[], None, CHECK, at(50)), Next::Wait(d, _) if d == Duration::from_secs(50))
        );
        assert_eq!(
            next(
                &decision(Some("v4.3.1"), 100),
                &[],
                &[],
                &[],
                None,
                CHECK,
                at(100)
            ),
            Next::Start("v4.3.1".into())
        );
        let busy = rollout("v4.3.1", RolloutPhase::Roll);
        assert!(matches!(
            next(
                &decision(Some("v4.3.1"), 0),
                &[(&busy.0, &busy.1)],
                &[],
                &[],
                None,
                CHECK,
                at(1)
            ),
            Next::Wait(..)
        ));
    }

    #[test]
    fn a_failed_release_waits_for_a_retry() {
        let failed = rollout("v4.4.1", RolloutPhase::Reverted);
        let d = decision(Some("v4.4.1"), 0);
        assert!(
            matches!(next(&d, &[(&failed.0, &failed.1)], &[], &[], None, CHECK, at(1)), Next::Wait(_, m) if m.contains("retry"))
        );
        assert_eq!(
            next(
                &d,
                &[(&failed.0, &failed.1)],
                &["v4.4.1".into()],
                &[],
                None,
                CHECK,
                at(1)
            ),
            Next::Start("v4.4.1".into())
        );
    }

    #[test]
    fn an_unsettled_fleet_starts_nothing() {
        assert!(matches!(
            next(&decision(Some("v4.3.1"), 0), &[], &[], &[], Some("web 1/2".into()), CHECK, at(1)),
            Next::Wait(_, m) if m == "web 1/2"
        ));
    }

    #[test]
    fn a_withdrawn_release_waits_like_a_failed_one() {
        let d = decision(Some("v4.3.1"), 0);
        assert!(matches!(
            next(&d, &[], &[], &["v4.3.1".into()], None, CHECK, at(1)),
            Next::Wait(..)
        ));
        assert_eq!(
            next(
                &d,
                &[],
                &["v4.3.1".into()],
                &["v4.3.1".into()],
                None,
                CHECK,
                at(1)
            ),
            Next::Start("v4.3.1".into())
        );
    }

    #[test]
    fn nothing_to_do_waits_for_the_next_check() {
        assert_eq!(
            next(&decision(None, 0), &[], &[], &[], None, CHECK, at(1)),
            Next::Wait(CHECK, "r".into())
        );
    }

    #[test]
    fn a_rollout_waits_for_every_pool_to_be_full_and_reachable() {
        let pool = |desired, nodes: &[(&str, bool)]| PoolReadiness {
            name: "web".into(),
            desired,
            nodes: nodes.iter().map(|(n, u)| (n.to_string(), *u)).collect(),
        };
        assert!(fleet_unready(&[pool(Some(2), &[])], None)
            .unwrap()
            .contains("no nodes"));
        assert!(fleet_unready(&[pool(Some(2), &[("a", true)])], None)
            .unwrap()
            .contains("1/2"));
        assert!(fleet_unready(&[pool(None, &[("a", false)])], None)
            .unwrap()
            .contains("a is unreachable"));
        assert!(fleet_unready(&[pool(Some(1), &[("a", true)])], Some("p"))
            .unwrap()
            .contains("provision p"));
        assert_eq!(fleet_unready(&[pool(Some(1), &[("a", true)])], None), None);
    }

    #[test]
    fn a_fresh_fleet_installs_the_held_or_newest_stable_release() {
        let rel = |tag: &str, pre: bool| vmctl_protocol::release::UpstreamRelease {
            tag: tag.into(),
            name: tag.into(),
            body: String::new(),
            draft: false,
            prerelease: pre,
            published_at: at(0),
            security: false,
        };
        let feed = [
            rel("v4.3.0", false),
            rel("v4.3.1", false),
            rel("v4.4.0-rc.1", true),
        ];
        let mut policy = vmctl_protocol::release::ReleasePolicy::default();
        assert_eq!(
            install_decision(&feed, &policy, at(5)).target.as_deref(),
            Some("v4.3.1")
        );
        policy.hold = Some("v4.3.0".into());
        assert_eq!(
            install_decision(&feed, &policy, at(5)).target.as_deref(),
            Some("v4.3.0")
        );
        policy.hold = Some("v9.9.9".into());
        assert_eq!(install_decision(&feed, &policy, at(5)).target, None);
    }

    #[test]
    fn the_fleet_version_is_its_oldest_live_release() {
        let live = [Some("v4.3.1".to_string()), Some("v4.3.0".to_string()), None];
        assert_eq!(fleet_version(&live), semver::Version::new(4, 3, 0));
        assert_eq!(fleet_version(&[None]), semver::Version::new(0, 0, 0));
    }
}
