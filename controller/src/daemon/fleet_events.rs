//! Turns fleet events into event-log entries, once per occurrence rather than once per retry.

use std::collections::HashMap;

use vmctl_protocol::{event::Event, event::EventType, meta::Timestamp};

use crate::{fleet::FleetEvent, reconcilers::node::event};

/// Remembers the last warning logged per node so a failure retried every few seconds is logged
/// once, until the node is ready again.
#[derive(Debug, Default)]
pub struct FleetEventLog {
    last_warning: HashMap<String, String>,
}

impl FleetEventLog {
    /// The node the fleet event is about.
    pub fn node(e: &FleetEvent) -> &str {
        match e {
            FleetEvent::Ready { node, .. }
            | FleetEvent::Down { node, .. }
            | FleetEvent::HostKeyPinned { node, .. }
            | FleetEvent::HostKeyMismatch { node, .. }
            | FleetEvent::AgentUploaded { node, .. }
            | FleetEvent::AgentUploadFailed { node, .. } => node,
        }
    }

    /// The log entry for `e`, if it deserves one. Reachability changes are logged by the node
    /// reconciler on its condition transitions, so `Ready` and `Down` give none here.
    pub fn translate(&mut self, e: &FleetEvent, now: Timestamp) -> Option<Event> {
        match e {
            FleetEvent::Ready { node, .. } => {
                self.last_warning.remove(node);
                None
            }
            FleetEvent::Down { .. } | FleetEvent::HostKeyMismatch { .. } => None,
            FleetEvent::HostKeyPinned { node, fingerprint } => Some(event(
                node,
                EventType::Normal,
                "HostKeyPinned",
                &format!("pinned host key {fingerprint} on first contact"),
                now,
            )),
            FleetEvent::AgentUploaded { node, sha256 } => {
                self.last_warning.remove(node);
                Some(event(
                    node,
                    EventType::Normal,
                    "AgentUploaded",
                    &format!("installed vmctl-agent {}", short(sha256)),
                    now,
                ))
            }
            FleetEvent::AgentUploadFailed { node, error } => {
                let message = format!("could not install vmctl-agent: {error}");
                if self.last_warning.get(node) == Some(&message) {
                    return None;
                }
                self.last_warning.insert(node.clone(), message.clone());
                Some(event(
                    node,
                    EventType::Warning,
                    "AgentUploadFailed",
                    &message,
                    now,
                ))
            }
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
