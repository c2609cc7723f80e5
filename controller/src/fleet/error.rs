//! The fleet's one error type, [`FleetError`], and its retry hint.
//!
//! Every variant names the operation that failed and carries the node, so a log line or a
//! `Down` event reads on its own. Errors are `Clone` because one failure (a dropped session)
//! is reported to every waiting caller and kept in the session's state.

use std::time::Duration;

use vmctl_protocol::agent::AgentError;

/// Whether retrying a failed call or connect can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryHint {
    /// Likely to clear by itself (network, restart, timeout): retry with backoff.
    Transient,
    /// Needs a person or a config change (host key, credentials, a refused agent).
    Permanent,
}

/// Why a fleet operation (connect, bootstrap or call) failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FleetError {
    /// TCP connect to the droplet failed or timed out.
    #[error("connect to node {node} at {addr} failed: {reason}")]
    Connect {
        /// The node.
        node: String,
        /// `address:port` dialled.
        addr: String,
        /// The OS or timeout error.
        reason: String,
    },
    /// The SSH handshake (or a later SSH-level step such as opening a channel) failed.
    #[error("ssh handshake with node {node} failed: {reason}")]
    Handshake {
        /// The node.
        node: String,
        /// The libssh2 error.
        reason: String,
    },
    /// The droplet presented a host key other than the pinned one; nothing was sent to it.
    #[error(
        "host key of node {node} changed: pinned {pinned}, presented {presented} \
         (run forget-hostkey if the droplet was rebuilt)"
    )]
    HostKeyMismatch {
        /// The node.
        node: String,
        /// Fingerprint on record.
        pinned: String,
        /// Fingerprint the droplet presented.
        presented: String,
    },
    /// Reading or writing the host-key store failed.
    #[error("host key store for node {node} failed: {reason}")]
    HostKeyStore {
        /// The node.
        node: String,
        /// The store's error.
        reason: String,
    },
    /// The droplet refused our key.
    #[error("node {node} rejected public-key login for user {user}")]
    AuthRejected {
        /// The node.
        node: String,
        /// The login user.
        user: String,
    },
    /// The agent process started but exited before answering `hello`.
    #[error("agent on node {node} exited before answering hello: {stderr_tail}")]
    AgentStart {
        /// The node.
        node: String,
        /// The last lines the agent (or the shell) wrote to stderr, plus its exit status.
        stderr_tail: String,
    },
    /// The agent binary is not on the droplet (and could not be put there).
    #[error("agent binary missing on node {node}")]
    AgentMissing {
        /// The node.
        node: String,
    },
    /// The agent still reports another binary or protocol after an upload.
    #[error("agent on node {node} reports {agent}, expected {ours} (even after an upload)")]
    ProtocolMismatch {
        /// The node.
        node: String,
        /// What the agent reported (protocol version and hash).
        agent: String,
        /// What we expected.
        ours: String,
    },
    /// Uploading or installing the agent binary failed (disk full, read-only, missing dir).
    #[error("agent upload to node {node} failed: {reason}")]
    Upload {
        /// The node.
        node: String,
        /// What failed.
        reason: String,
    },
    /// No reply (or no progress) within the deadline.
    #[error("{op} on node {node} timed out after {}", humantime::format_duration(*after))]
    Timeout {
        /// The node.
        node: String,
        /// The op name (`facts`, `connect`, `keepalive`, ...).
        op: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The session ended while the call was in flight.
    #[error("session to node {node} closed: {reason}")]
    SessionClosed {
        /// The node.
        node: String,
        /// Why it closed.
        reason: String,
    },
    /// The node has no ready session right now; the call was not sent.
    #[error("node {node} is not connected: {reason}")]
    NotConnected {
        /// The node.
        node: String,
        /// The last connect error, or the state it is in.
        reason: String,
    },
    /// No session was ever ensured for this node name.
    #[error("unknown node {node}")]
    UnknownNode {
        /// The name asked for.
        node: String,
    },
    /// The agent answered with an error.
    #[error("agent on node {node} failed: {error}")]
    Agent {
        /// The node.
        node: String,
        /// The agent's error.
        error: AgentError,
    },
    /// The agent's reply could not be understood.
    #[error("bad reply from node {node}: {reason}")]
    BadReply {
        /// The node.
        node: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A [`crate::fleet::NodeTarget`] was refused before any connect.
    #[error("invalid target for node {node}: {reason}")]
    InvalidTarget {
        /// The node.
        node: String,
        /// Which field is wrong and why.
        reason: String,
    },
    /// The fleet is shutting down.
    #[error("fleet is shutting down (node {node})")]
    ShuttingDown {
        /// The node.
        node: String,
    },
}

impl FleetError {
    /// Whether retrying can help; the work queue turns this into a delay.
    #[must_use]
    pub fn retry_hint(&self) -> RetryHint {
        use vmctl_protocol::agent::ErrorCode;
        match self {
            FleetError::Connect { .. }
            | FleetError::Handshake { .. }
            | FleetError::HostKeyStore { .. }
            | FleetError::AgentStart { .. }
            | FleetError::Upload { .. }
            | FleetError::Timeout { .. }
            | FleetError::SessionClosed { .. }
            | FleetError::NotConnected { .. } => RetryHint::Transient,
            FleetError::Agent { error, .. } if error.code == ErrorCode::OpFailed => {
                RetryHint::Transient
            }
            FleetError::HostKeyMismatch { .. }
            | FleetError::AuthRejected { .. }
            | FleetError::AgentMissing { .. }
            | FleetError::ProtocolMismatch { .. }
            | FleetError::UnknownNode { .. }
            | FleetError::Agent { .. }
            | FleetError::BadReply { .. }
            | FleetError::InvalidTarget { .. }
            | FleetError::ShuttingDown { .. } => RetryHint::Permanent,
        }
    }

    /// A stable, short name of the variant, for status conditions and metrics.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            FleetError::Connect { .. } => "connect",
            FleetError::Handshake { .. } => "handshake",
            FleetError::HostKeyMismatch { .. } => "host_key_mismatch",
            FleetError::HostKeyStore { .. } => "host_key_store",
            FleetError::AuthRejected { .. } => "auth_rejected",
            FleetError::AgentStart { .. } => "agent_start",
            FleetError::AgentMissing { .. } => "agent_missing",
            FleetError::ProtocolMismatch { .. } => "protocol_mismatch",
            FleetError::Upload { .. } => "upload",
            FleetError::Timeout { .. } => "timeout",
            FleetError::SessionClosed { .. } => "session_closed",
            FleetError::NotConnected { .. } => "not_connected",
            FleetError::UnknownNode { .. } => "unknown_node",
            FleetError::Agent { .. } => "agent",
            FleetError::BadReply { .. } => "bad_reply",
            FleetError::InvalidTarget { .. } => "invalid_target",
            FleetError::ShuttingDown { .. } => "shutting_down",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_problems_are_permanent_and_network_problems_transient() {
        let node = "web-1".to_string();
        let mismatch = FleetError::HostKeyMismatch {
            node: node.clone(),
            pinned: "SHA256:a".into(),
            presented: "SHA256:b".into(),
        };
        assert_eq!(mismatch.retry_hint(), RetryHint::Permanent);
        let closed = FleetError::SessionClosed {
            node,
            reason: "eof".into(),
        };
        assert_eq!(closed.retry_hint(), RetryHint::Transient);
    }

    #[test]
    fn timeouts_read_as_a_sentence() {
        let e = FleetError::Timeout {
            node: "web-1".into(),
            op: "facts".into(),
            after: Duration::from_millis(1500),
        };
        assert_eq!(
            e.to_string(),
            "facts on node web-1 timed out after 1s 500ms"
        );
    }
}
