//! Pools: tiers of droplets built from the same snapshot and playing the same role.

use serde::{Deserialize, Serialize};

use crate::{meta::Condition, resource::Resource};

/// What a pool's droplets run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolRole {
    /// nginx and TLS termination behind the load balancer.
    Proxy,
    /// Puma on :3000.
    Web,
    /// The streaming API on :4000.
    Streaming,
    /// Sidekiq workers for the queues in [`PoolSpec::queues`].
    Sidekiq,
    /// The one node that runs the `scheduler` queue and the once-per-cluster steps.
    Exec,
    /// OpenSearch.
    Search,
}

impl PoolRole {
    /// The lower-case name used in config files and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolRole::Proxy => "proxy",
            PoolRole::Web => "web",
            PoolRole::Streaming => "streaming",
            PoolRole::Sidekiq => "sidekiq",
            PoolRole::Exec => "exec",
            PoolRole::Search => "search",
        }
    }
}

/// Desired state of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// What its nodes run.
    pub role: PoolRole,
    /// Sidekiq queues its nodes listen to (Sidekiq and exec pools only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
}

/// Observed state of a pool, summarised from its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PoolStatus {
    /// The spec generation this status reflects.
    pub observed_generation: u64,
    /// Nodes of this pool in the spec.
    pub total: u32,
    /// Nodes that are reachable with a ready agent.
    pub ready: u32,
    /// Names of the nodes in this pool, sorted.
    pub nodes: Vec<String>,
    /// Distinct live releases running on its nodes, sorted.
    pub releases: Vec<String>,
    /// Pool conditions.
    pub conditions: Vec<Condition>,
}

impl Resource for PoolSpec {
    const KIND: &'static str = "pool";
    type Status = PoolStatus;
}
