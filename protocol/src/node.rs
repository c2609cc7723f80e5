//! Nodes: one droplet each, reached over SSH through the agent.

use serde::{Deserialize, Serialize};

use crate::{agent::Facts, meta::Condition, meta::Timestamp, resource::Resource};

/// Condition type: the controller holds an open session to the node's agent.
pub const COND_REACHABLE: &str = "Reachable";
/// Condition type: the node presented a host key that differs from the pinned one.
pub const COND_HOST_KEY_MISMATCH: &str = "HostKeyMismatch";
/// Condition type: the agent on the node is the controller's build and speaks its protocol.
pub const COND_AGENT_READY: &str = "AgentReady";

/// Default agent root on a real droplet.
pub const DEFAULT_ROOT: &str = "/";

/// Desired state of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// The pool it belongs to.
    pub pool: String,
    /// IP address the controller connects to.
    pub address: String,
    /// SSH port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Folder every droplet path hangs under; `/` on a real droplet.
    #[serde(default = "default_root")]
    pub root: String,
    /// Set when the node is a droplet its pool created and owns; `apply` leaves such nodes alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub droplet_id: Option<u64>,
}

fn default_port() -> u16 {
    22
}
fn default_root() -> String {
    DEFAULT_ROOT.into()
}

/// The pinned host key of a node, as stored on first contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedHostKey {
    /// Key algorithm name, e.g. `ssh-ed25519`.
    pub key_type: String,
    /// The raw public key blob, base64.
    pub key_base64: String,
    /// `SHA256:...` fingerprint, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// When it was pinned.
    pub pinned_at: Timestamp,
}

/// Observed state of a node. Written only by the controller.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The spec generation this status reflects.
    pub observed_generation: u64,
    /// Whether a session with a ready agent is open.
    pub reachable: bool,
    /// Version of the agent that answered `hello`.
    pub agent_version: Option<String>,
    /// SHA-256 of the agent binary that answered `hello`.
    pub agent_sha256: Option<String>,
    /// Fingerprint of the pinned host key.
    pub host_key_fingerprint: Option<String>,
    /// The latest facts, kept when the node becomes unreachable so operators see the last known
    /// state.
    pub facts: Option<Facts>,
    /// When the node last answered a call.
    pub last_seen: Option<Timestamp>,
    /// Conditions: `Reachable`, `AgentReady`, `HostKeyMismatch`.
    pub conditions: Vec<Condition>,
    /// DigitalOcean's status of its droplet (`new`, `active`, `off`, `archive`), if managed.
    #[serde(default)]
    pub droplet_status: Option<String>,
    /// Whether the pool's load balancer holds it, if the pool has one.
    #[serde(default)]
    pub in_load_balancer: Option<bool>,
}

impl Resource for NodeSpec {
    const KIND: &'static str = "node";
    type Status = NodeStatus;
}
