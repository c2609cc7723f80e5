//! The node reconciler's decisions: from the node's previous status and what the fleet layer
//! observes now, the next status and the events to record. Pure: time comes in as an argument.

use vmctl_protocol::{
    agent::Facts,
    event::{Event, EventType},
    meta::{Condition, ConditionStatus, Timestamp},
    node::{NodeStatus, COND_AGENT_READY, COND_HOST_KEY_MISMATCH, COND_REACHABLE},
    Resource,
};

/// What the fleet layer says about the node's session, reduced to what decisions need.
#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    /// A session is being opened (first contact or reconnect).
    Connecting,
    /// A session is open and the agent answered `hello` with the controller's build.
    Ready {
        /// Agent version from `hello`.
        agent_version: String,
        /// Agent binary hash from `hello`.
        agent_sha256: String,
    },
    /// The last attempt failed.
    Down {
        /// CamelCase reason, e.g. `ConnectFailed`, `AuthRejected`, `HostKeyMismatch`.
        reason: String,
        /// A sentence for a person.
        message: String,
    },
}

/// Everything the plan looks at besides the previous status.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeObserved {
    /// The spec generation being reconciled.
    pub generation: u64,
    /// The session.
    pub connection: Connection,
    /// The result of this round's `facts` call, when the session was ready.
    pub facts: Option<Result<Facts, String>>,
    /// Fingerprint of the pinned host key, if one is pinned.
    pub host_key_fingerprint: Option<String>,
    /// Upstream's commit for each release tag the controller knows (from its rollouts).
    pub upstream_commits: std::collections::BTreeMap<String, String>,
}

/// Condition type: the live release is upstream's tag exactly, with a clean tree.
pub const COND_CODE_PURITY: &str = "CodePurity";

/// The plan's output.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePlan {
    /// The status to write.
    pub status: NodeStatus,
    /// Events to append (seq is assigned by the store).
    pub events: Vec<Event>,
}

/// Reason a Ready session still counts as unreachable: the facts call failed.
pub const REASON_FACTS_FAILED: &str = "FactsFailed";

/// Decides the node's next status and events.
pub fn plan(
    name: &str,
    previous: &NodeStatus,
    observed: &NodeObserved,
    now: Timestamp,
) -> NodePlan {
    let mut status = previous.clone();
    status.observed_generation = observed.generation;
    status.host_key_fingerprint = observed.host_key_fingerprint.clone();
    let mut events = Vec::new();

    let (reachable, reach_reason, reach_message) = match (&observed.connection, &observed.facts) {
        (Connection::Ready { .. }, Some(Ok(_))) | (Connection::Ready { .. }, None) => (
            ConditionStatus::True,
            "SessionReady".to_string(),
            "agent session is open".to_string(),
        ),
        (Connection::Ready { .. }, Some(Err(e))) => (
            ConditionStatus::False,
            REASON_FACTS_FAILED.to_string(),
            format!("facts call failed: {e}"),
        ),
        (Connection::Down { reason, message }, _) => {
            (ConditionStatus::False, reason.clone(), message.clone())
        }
        (Connection::Connecting, _) => {
            match Condition::find(&previous.conditions, COND_REACHABLE) {
                // A reconnect in progress does not erase what we last knew.
                Some(c) => (c.status, c.reason.clone(), c.message.clone()),
                None => (
                    ConditionStatus::Unknown,
                    "Connecting".into(),
                    "first contact in progress".into(),
                ),
            }
        }
    };
    let was_reachable = previous.reachable;
    status.reachable = reachable == ConditionStatus::True;
    let transitioned = Condition::upsert(
        &mut status.conditions,
        cond(
            COND_REACHABLE,
            reachable,
            &reach_reason,
            &reach_message,
            now,
        ),
    );
    if transitioned && reachable != ConditionStatus::Unknown {
        let (type_, reason) = if status.reachable {
            (EventType::Normal, "NodeReachable")
        } else {
            (EventType::Warning, "NodeUnreachable")
        };
        let first_contact = Condition::find(&previous.conditions, COND_REACHABLE)
            .is_none_or(|c| c.status == ConditionStatus::Unknown);
        let message = match (status.reachable, was_reachable, first_contact) {
            (true, _, true) => "agent session ready on first contact".to_string(),
            (true, false, false) => "node answers its agent again".to_string(),
            _ => reach_message.clone(),
        };
        events.push(event(name, type_, reason, &message, now));
    }

    if let Connection::Ready {
        agent_version,
        agent_sha256,
    } = &observed.connection
    {
        status.agent_version = Some(agent_version.clone());
        status.agent_sha256 = Some(agent_sha256.clone());
        Condition::upsert(
            &mut status.conditions,
            cond(
                COND_AGENT_READY,
                ConditionStatus::True,
                "HelloAnswered",
                "agent matches the controller's build",
                now,
            ),
        );
    } else if let Connection::Down { reason, message } = &observed.connection {
        if is_agent_reason(reason) {
            Condition::upsert(
                &mut status.conditions,
                cond(
                    COND_AGENT_READY,
                    ConditionStatus::False,
                    reason,
                    message,
                    now,
                ),
            );
        }
    }

    let mismatch = matches!(&observed.connection, Connection::Down { reason, .. } if reason == COND_HOST_KEY_MISMATCH);
    match (
        mismatch,
        Condition::find(&previous.conditions, COND_HOST_KEY_MISMATCH).is_some(),
    ) {
        (true, _) => {
            let message = match &observed.connection {
                Connection::Down { message, .. } => message.clone(),
                _ => String::new(),
            };
            let changed = Condition::upsert(
                &mut status.conditions,
                cond(
                    COND_HOST_KEY_MISMATCH,
                    ConditionStatus::True,
                    "HostKeyChanged",
                    &message,
                    now,
                ),
            );
            if changed {
                let text = format!("{message}; refusing the node until an operator runs `vmctl node forget-hostkey {name}`");
                events.push(event(
                    name,
                    EventType::Warning,
                    COND_HOST_KEY_MISMATCH,
                    &text,
                    now,
                ));
            }
        }
        // Once a session is up again with a pinned key, the mismatch is resolved.
        (false, true) if matches!(observed.connection, Connection::Ready { .. }) => {
            Condition::upsert(
                &mut status.conditions,
                cond(
                    COND_HOST_KEY_MISMATCH,
                    ConditionStatus::False,
                    "HostKeyPinned",
                    "host key matches the pinned key",
                    now,
                ),
            );
        }
        _ => {}
    }

    if let Some(Ok(facts)) = &observed.facts {
        status.facts = Some(facts.clone());
        status.last_seen = Some(now);
        if let Some((pure, reason, message)) = purity(facts, &observed.upstream_commits) {
            let cs = if pure {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            };
            let changed = Condition::upsert(
                &mut status.conditions,
                cond(COND_CODE_PURITY, cs, reason, &message, now),
            );
            if changed && !pure {
                events.push(event(name, EventType::Warning, "CodeDrift", &message, now));
            }
        }
    }
    NodePlan { status, events }
}

/// Whether a status change matters to the node's pool (reachability, conditions, the live
/// release), as opposed to facts that move on every probe (load, uptime, memory).
pub fn pool_relevant_change(old: &NodeStatus, new: &NodeStatus) -> bool {
    let release = |s: &NodeStatus| {
        s.facts
            .as_ref()
            .and_then(|f| f.mastodon.live_release.clone())
    };
    old.reachable != new.reachable
        || old.conditions != new.conditions
        || release(old) != release(new)
}

/// Whether the live tree is exactly upstream's: `None` when there is no live release or git
/// could not tell.
fn purity(
    facts: &Facts,
    upstream: &std::collections::BTreeMap<String, String>,
) -> Option<(bool, &'static str, String)> {
    let m = &facts.mastodon;
    let tag = m.live_release.as_ref()?;
    if m.live_clean == Some(false) {
        return Some((
            false,
            "DirtyTree",
            format!("the live tree of {tag} has local changes"),
        ));
    }
    match (m.live_commit.as_ref(), upstream.get(tag)) {
        (Some(head), Some(want)) if head != want => Some((
            false,
            "CommitMismatch",
            format!("live {tag} is at {head}, upstream's tag is at {want}"),
        )),
        (Some(_), Some(_)) if m.live_clean == Some(true) => Some((
            true,
            "UpstreamTag",
            format!("live {tag} is upstream's commit, unmodified"),
        )),
        _ => None,
    }
}

fn is_agent_reason(reason: &str) -> bool {
    matches!(
        reason,
        "AgentMissing" | "AgentStartFailed" | "ProtocolMismatch" | "UploadFailed" | "BadReply"
    )
}

fn cond(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: message.into(),
        last_transition: now,
    }
}

/// Builds a node event; the store assigns `seq`.
pub fn event(name: &str, type_: EventType, reason: &str, message: &str, now: Timestamp) -> Event {
    Event {
        seq: 0,
        time: now,
        type_,
        kind: vmctl_protocol::node::NodeSpec::KIND.into(),
        name: name.into(),
        reason: reason.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use vmctl_protocol::agent::{Capacity, MastodonInstall};

    use super::*;

    fn at(s: i64) -> Timestamp {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn facts() -> Facts {
        Facts {
            hostname: "web-1".into(),
            os_release: None,
            kernel: "6".into(),
            uptime_s: 1,
            load: [0.0; 3],
            memory: Capacity {
                total_bytes: 1,
                available_bytes: 1,
            },
            disk: Capacity {
                total_bytes: 1,
                available_bytes: 1,
            },
            mastodon: MastodonInstall::default(),
            services: vec![],
        }
    }

    fn ready() -> Connection {
        Connection::Ready {
            agent_version: "0.1.0".into(),
            agent_sha256: "ab".into(),
        }
    }

    fn observed(connection: Connection, facts: Option<Result<Facts, String>>) -> NodeObserved {
        NodeObserved {
            generation: 3,
            connection,
            facts,
            host_key_fingerprint: Some("SHA256:x".into()),
            upstream_commits: Default::default(),
        }
    }

    fn down(reason: &str) -> Connection {
        Connection::Down {
            reason: reason.into(),
            message: format!("{reason} happened"),
        }
    }

    #[test]
    fn a_ready_node_with_facts_becomes_reachable_once() {
        let p = plan(
            "web-1",
            &NodeStatus::default(),
            &observed(ready(), Some(Ok(facts()))),
            at(10),
        );
        assert!(p.status.reachable);
        assert_eq!(p.status.observed_generation, 3);
        assert_eq!(p.status.last_seen, Some(at(10)));
        assert_eq!(p.status.agent_version.as_deref(), Some("0.1.0"));
        assert!(Condition::is_true(&p.status.conditions, COND_AGENT_READY));
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].reason, "NodeReachable");

        let again = plan(
            "web-1",
            &p.status,
            &observed(ready(), Some(Ok(facts()))),
            at(15),
        );
        assert!(again.events.is_empty(), "no event without a transition");
        let c = Condition::find(&again.status.conditions, COND_REACHABLE).unwrap();
        assert_eq!(c.last_transition, at(10));
    }

    #[test]
    fn losing_the_session_marks_the_node_unreachable_and_keeps_last_facts() {
        let up = plan(
            "web-1",
            &NodeStatus::default(),
            &observed(ready(), Some(Ok(facts()))),
            at(10),
        )
        .status;
        let p = plan("web-1", &up, &observed(down("SessionClosed"), None), at(20));
        assert!(!p.status.reachable);
        assert!(p.status.facts.is_some());
        assert_eq!(p.status.last_seen, Some(at(10)));
        assert_eq!(p.events[0].reason, "NodeUnreachable");
        assert_eq!(p.events[0].type_, EventType::Warning);
    }

    #[test]
    fn a_failed_facts_call_counts_as_unreachable() {
        let up = plan(
            "web-1",
            &NodeStatus::default(),
            &observed(ready(), Some(Ok(facts()))),
            at(10),
        )
        .status;
        let p = plan(
            "web-1",
            &up,
            &observed(ready(), Some(Err("timed out".into()))),
            at(20),
        );
        assert!(!p.status.reachable);
        assert_eq!(
            Condition::find(&p.status.conditions, COND_REACHABLE)
                .unwrap()
                .reason,
            REASON_FACTS_FAILED
        );
    }

    #[test]
    fn a_reconnect_in_progress_keeps_the_last_known_reachability() {
        let gone = plan(
            "web-1",
            &NodeStatus::default(),
            &observed(down("ConnectFailed"), None),
            at(10),
        )
        .status;
        let p = plan(
            "web-1",
            &gone,
            &observed(Connection::Connecting, None),
            at(11),
        );
        assert!(!p.status.reachable);
        assert!(p.events.is_empty());
        let first = plan(
            "web-1",
            &NodeStatus::default(),
            &observed(Connection::Connecting, None),
            at(1),
        );
        assert!(first.events.is_empty());
        assert_eq!(
            Condition::find(&first.status.conditions, COND_REACHABLE)
                .unwrap()
                .status,
            ConditionStatus::Unknown
        );
    }

    #[test]
    fn a_changed_host_key_sets_the_condition_until_a_session_is_ready_again() {
        let p = plan(
            "web-1",
            &NodeStatus::default(),
            &observed(down(COND_HOST_KEY_MISMATCH), None),
            at(10),
        );
        assert!(Condition::is_true(
            &p.status.conditions,
            COND_HOST_KEY_MISMATCH
        ));
        assert!(!p.status.reachable);
        assert!(p.events.iter().any(|e| e.reason == COND_HOST_KEY_MISMATCH));
        let later = plan(
            "web-1",
            &p.status,
            &observed(Connection::Connecting, None),
            at(11),
        );
        assert!(Condition::is_true(
            &later.status.conditions,
            COND_HOST_KEY_MISMATCH
        ));
        let again = plan(
            "web-1",
            &later.status,
            &observed(down(COND_HOST_KEY_MISMATCH), None),
            at(12),
        );
        assert!(
            again.events.is_empty(),
            "one event per mismatch, not per retry"
        );
        let fixed = plan(
            "web-1",
            &later.status,
            &observed(ready(), Some(Ok(facts()))),
            at(12),
        );
        assert!(!Condition::is_true(
            &fixed.status.conditions,
            COND_HOST_KEY_MISMATCH
        ));
        assert!(fixed.status.reachable);
    }

    #[test]
    fn agent_failures_clear_agent_ready() {
        let up = plan(
            "web-1",
            &NodeStatus::default(),
            &observed(ready(), Some(Ok(facts()))),
            at(10),
        )
        .status;
        let p = plan("web-1", &up, &observed(down("UploadFailed"), None), at(20));
        let c = Condition::find(&p.status.conditions, COND_AGENT_READY).unwrap();
        assert_eq!(c.status, ConditionStatus::False);
        assert_eq!(c.reason, "UploadFailed");
    }
}

#[cfg(test)]
mod pool_wake_tests {
    use super::*;

    #[test]
    fn load_changes_do_not_wake_the_pool_but_reachability_does() {
        let a = NodeStatus {
            reachable: true,
            ..Default::default()
        };
        let mut b = a.clone();
        b.last_seen = chrono::DateTime::from_timestamp(5, 0);
        assert!(!pool_relevant_change(&a, &b));
        b.reachable = false;
        assert!(pool_relevant_change(&a, &b));
    }
}

#[cfg(test)]
mod purity_tests {
    use std::collections::BTreeMap;

    use vmctl_protocol::agent::{Capacity, MastodonInstall};

    use super::*;

    fn facts(commit: &str, clean: bool) -> Facts {
        Facts {
            hostname: "web-1".into(),
            os_release: None,
            kernel: "6".into(),
            uptime_s: 1,
            load: [0.0; 3],
            memory: Capacity {
                total_bytes: 1,
                available_bytes: 1,
            },
            disk: Capacity {
                total_bytes: 1,
                available_bytes: 1,
            },
            mastodon: MastodonInstall {
                live_release: Some("v4.3.1".into()),
                releases: vec![],
                live_commit: Some(commit.into()),
                live_clean: Some(clean),
            },
            services: vec![],
        }
    }

    #[test]
    fn drift_is_a_condition_and_one_event() {
        let upstream = BTreeMap::from([("v4.3.1".to_string(), "abc".to_string())]);
        let now = chrono::DateTime::from_timestamp(1, 0).unwrap();
        let obs = |f: Facts| NodeObserved {
            generation: 1,
            connection: Connection::Ready {
                agent_version: "1".into(),
                agent_sha256: "x".into(),
            },
            facts: Some(Ok(f)),
            host_key_fingerprint: None,
            upstream_commits: upstream.clone(),
        };
        let pure = plan(
            "web-1",
            &NodeStatus::default(),
            &obs(facts("abc", true)),
            now,
        );
        assert!(Condition::is_true(
            &pure.status.conditions,
            COND_CODE_PURITY
        ));
        let dirty = plan("web-1", &pure.status, &obs(facts("abc", false)), now);
        assert_eq!(
            Condition::find(&dirty.status.conditions, COND_CODE_PURITY)
                .unwrap()
                .reason,
            "DirtyTree"
        );
        assert!(dirty.events.iter().any(|e| e.reason == "CodeDrift"));
        let again = plan("web-1", &dirty.status, &obs(facts("abc", false)), now);
        assert!(
            !again.events.iter().any(|e| e.reason == "CodeDrift"),
            "one event per drift"
        );
        let other = plan(
            "web-1",
            &NodeStatus::default(),
            &obs(facts("def", true)),
            now,
        );
        assert_eq!(
            Condition::find(&other.status.conditions, COND_CODE_PURITY)
                .unwrap()
                .reason,
            "CommitMismatch"
        );
    }
}
