//! What the fleet tells the rest of vmctld: each session's [`SessionState`] (polled) and
//! [`FleetEvent`]s (pushed, for the work queue's triggers and the event log).

use vmctl_protocol::agent::Hello;
use vmctl_protocol::meta::Timestamp;

use super::error::FleetError;

/// Where one node's session is. Follows linkerd's three-state reconnect (STYLE.md pattern 3).
#[derive(Debug, Clone, PartialEq)]
pub enum SessionState {
    /// Connecting and bootstrapping; calls made now wait (up to their deadline) for it.
    Connecting {
        /// 1 for the first try after a success or a start, counting up while tries fail.
        attempt: u32,
    },
    /// The agent answered `hello` with our binary and protocol; calls are sent at once.
    Ready {
        /// What the agent said.
        hello: Hello,
        /// Since when.
        since: Timestamp,
    },
    /// The last try failed (or the session dropped); a retry is scheduled with backoff.
    /// Calls made now fail at once with [`FleetError::NotConnected`].
    Down {
        /// Why.
        error: FleetError,
        /// Since when.
        since: Timestamp,
        /// How many tries in a row have failed (0: a ready session dropped).
        attempt: u32,
    },
}

impl SessionState {
    /// Whether calls are sent right away.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        matches!(self, SessionState::Ready { .. })
    }
}

/// Something that happened to a node's session.
#[derive(Debug, Clone, PartialEq)]
pub enum FleetEvent {
    /// The agent answered `hello` and the session is serving calls.
    Ready {
        /// The node.
        node: String,
        /// The agent's `hello`.
        hello: Hello,
        /// Whether the agent was uploaded to get here.
        uploaded: bool,
    },
    /// The session failed or could not be set up; it retries with backoff. Repeats of the
    /// same error are not re-sent.
    Down {
        /// The node.
        node: String,
        /// Why.
        error: FleetError,
    },
    /// First contact: this host key is now pinned.
    HostKeyPinned {
        /// The node.
        node: String,
        /// `SHA256:...`.
        fingerprint: String,
    },
    /// The droplet presented another host key than the pinned one and was refused. Sent once
    /// per presented key, not on every retry.
    HostKeyMismatch {
        /// The node.
        node: String,
        /// What is pinned.
        pinned_fingerprint: String,
        /// What was presented.
        presented_fingerprint: String,
    },
    /// The agent binary was uploaded and installed.
    AgentUploaded {
        /// The node.
        node: String,
        /// The SHA-256 installed.
        sha256: String,
    },
    /// Uploading or installing the agent failed; the session retries with backoff.
    AgentUploadFailed {
        /// The node.
        node: String,
        /// Why.
        error: FleetError,
    },
}
