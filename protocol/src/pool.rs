//! Pools: tiers of droplets built from the same snapshot and playing the same role.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{meta::Condition, resource::Resource};

/// Default for [`DropletTemplate::startup_grace`]: a droplet from a snapshot boots and answers
/// SSH in well under a minute on DigitalOcean.
pub const DEFAULT_STARTUP_GRACE: Duration = Duration::from_secs(60);
/// Default for [`DropletTemplate::failure_grace`] (the default).
pub const DEFAULT_FAILURE_GRACE: Duration = Duration::from_secs(60);
/// Default for [`SnapshotPolicy::keep`].
pub const DEFAULT_SNAPSHOT_KEEP: u32 = 3;
/// Default for [`SnapshotPolicy::max_age`]: a day, so a replacement boots at most a day behind.
pub const DEFAULT_SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

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
    /// Droplets the controller creates and heals for this pool. `None`: the pool's nodes are
    /// listed by hand in the cluster file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub droplets: Option<DropletTemplate>,
}

/// How a managed pool's droplets are made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropletTemplate {
    /// How many droplets the pool keeps.
    pub count: u32,
    /// DigitalOcean region slug, e.g. `nyc3`.
    pub region: String,
    /// Size slug, e.g. `s-2vcpu-4gb`.
    pub size: String,
    /// The snapshot new droplets start from: a snapshot name or numeric id. The pool's own newer
    /// snapshots (`<cluster>-<pool>-...`) are preferred once they exist.
    pub image: String,
    /// Extra tags; the controller adds its own ownership tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// VPC to place droplets in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_uuid: Option<String>,
    /// SSH key ids or fingerprints DigitalOcean installs for root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
    /// Load balancer id whose membership the controller keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<String>,
    /// After creation, how long a droplet may be unreachable before it can be declared failed.
    #[serde(with = "crate::duration", default = "default_startup_grace")]
    pub startup_grace: Duration,
    /// How long a node must fail its probes continuously to be declared failed.
    #[serde(with = "crate::duration", default = "default_failure_grace")]
    pub failure_grace: Duration,
    /// The agent root on each droplet; `{name}` is replaced by the droplet's name. `/` on
    /// DigitalOcean; the testbed gives each simulated droplet its own folder.
    #[serde(default = "default_root")]
    pub root: String,
    /// Snapshot retention and freshness.
    #[serde(default)]
    pub snapshot: SnapshotPolicy,
}

/// When a pool's snapshot is refreshed and how many are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPolicy {
    /// Newest snapshots kept per pool; older ones are deleted.
    #[serde(default = "default_keep")]
    pub keep: u32,
    /// After a successful replacement, a new snapshot is taken when the newest is older.
    #[serde(with = "crate::duration", default = "default_max_age")]
    pub max_age: Duration,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            keep: DEFAULT_SNAPSHOT_KEEP,
            max_age: DEFAULT_SNAPSHOT_MAX_AGE,
        }
    }
}

fn default_startup_grace() -> Duration {
    DEFAULT_STARTUP_GRACE
}
fn default_failure_grace() -> Duration {
    DEFAULT_FAILURE_GRACE
}
fn default_root() -> String {
    crate::node::DEFAULT_ROOT.into()
}
fn default_keep() -> u32 {
    DEFAULT_SNAPSHOT_KEEP
}
fn default_max_age() -> Duration {
    DEFAULT_SNAPSHOT_MAX_AGE
}

impl DropletTemplate {
    /// The agent root for a droplet of this pool.
    pub fn root_for(&self, droplet_name: &str) -> String {
        self.root.replace("{name}", droplet_name)
    }
}

/// Observed state of a pool, summarised from its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PoolStatus {
    /// The spec generation this status reflects.
    pub observed_generation: u64,
    /// Nodes of this pool in the spec.
    pub total: u32,
    /// For a managed pool: the droplet count asked for.
    #[serde(default)]
    pub desired: Option<u32>,
    /// Nodes declared failed (unreachable past their grace, or powered off).
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
