//! The controller's HTTP/JSON API: request and response bodies shared by `vmctld` and `vmctl`.

use serde::{Deserialize, Serialize};

use crate::{
    cluster::ClusterSpec,
    event::Event,
    meta::{Condition, Timestamp},
    node::NodeSpec,
    pool::{PoolRole, PoolSpec},
};

/// Path prefix of every API route.
pub const API_PREFIX: &str = "/v1";

/// A whole cluster document, as `vmctl apply` sends it after validating the TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDocument {
    /// The cluster's name.
    pub name: String,
    /// Cluster-wide settings.
    pub cluster: ClusterSpec,
    /// Pools by name, in file order.
    pub pools: Vec<Named<PoolSpec>>,
    /// Nodes by name, in file order.
    pub nodes: Vec<Named<NodeSpec>>,
}

/// A spec with its object name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named<S> {
    /// Object name.
    pub name: String,
    /// Its spec.
    pub spec: S,
}

/// What `apply` or `diff` would do to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `cluster`, `pool` or `node`.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// What happens to it.
    pub action: ChangeAction,
    /// Human-readable field changes, e.g. `address: 127.0.1.1 -> 127.0.1.2`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

/// Kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    /// The object is new.
    Create,
    /// The object's spec changes.
    Update,
    /// The object is not in the document and is removed.
    Delete,
}

/// Reply to `POST /v1/apply` and `POST /v1/diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResult {
    /// True for `diff` (nothing was stored).
    pub dry_run: bool,
    /// Every change, in kind then name order. Empty when the store already matches.
    pub changes: Vec<Change>,
}

/// An API error body. Every non-2xx reply carries one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable code, e.g. `not_found`, `invalid`, `conflict`, `unauthorized`.
    pub code: String,
    /// A sentence for a person.
    pub message: String,
}

/// One row of `vmctl status`'s node table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Its pool.
    pub pool: String,
    /// `address:port`.
    pub address: String,
    /// Whether a session with a ready agent is open.
    pub reachable: bool,
    /// Agent version, when one answered.
    pub agent_version: Option<String>,
    /// The live Mastodon release.
    pub release: Option<String>,
    /// 1-minute load average.
    pub load: Option<f64>,
    /// Memory used, percent.
    pub memory_used_pct: Option<f64>,
    /// Root filesystem used, percent.
    pub disk_used_pct: Option<f64>,
    /// When it last answered.
    pub last_seen: Option<Timestamp>,
    /// All its conditions.
    pub conditions: Vec<Condition>,
    /// Its droplet, when its pool created it.
    #[serde(default)]
    pub droplet_id: Option<u64>,
    /// DigitalOcean's status of that droplet (`new`, `active`, `off`, `archive`).
    #[serde(default)]
    pub droplet_status: Option<String>,
    /// Whether the pool's load balancer holds it; `None` when the pool has no balancer.
    #[serde(default)]
    pub in_load_balancer: Option<bool>,
}

/// One row of `vmctl status`'s pool summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolView {
    /// Pool name.
    pub name: String,
    /// Its role.
    pub role: PoolRole,
    /// Reachable nodes.
    pub ready: u32,
    /// Nodes in the spec.
    pub total: u32,
    /// Distinct live releases on its nodes.
    pub releases: Vec<String>,
    /// For a managed pool, the droplet count asked for; `None` for a hand-listed pool.
    #[serde(default)]
    pub desired: Option<u32>,
    /// Nodes declared failed.
    #[serde(default)]
    pub failed: u32,
    /// Droplet ids of a managed pool, sorted.
    #[serde(default)]
    pub droplet_ids: Vec<u64>,
    /// Provisions (scale-ups and replacements) in flight.
    #[serde(default)]
    pub provisioning: Vec<String>,
    /// Name of the pool's newest snapshot.
    #[serde(default)]
    pub newest_snapshot: Option<String>,
}

/// Reply to `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// Cluster name, when a spec has been applied.
    pub cluster: Option<String>,
    /// Pool summaries, by name.
    pub pools: Vec<PoolView>,
    /// Nodes, by pool then name.
    pub nodes: Vec<NodeView>,
}

/// Reply to `POST /v1/pools/{name}/snapshot` (202): the snapshot job that was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRequested {
    /// Name of the stored snapshot job (kind `snapshot`).
    pub name: String,
}

/// Reply to `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventList {
    /// Newest first.
    pub events: Vec<Event>,
}
