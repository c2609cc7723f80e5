//! The cluster: settings that apply to the whole fleet.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{meta::Condition, resource::Resource};

/// Default for [`ClusterSpec::probe_interval`]: short enough that a dead droplet shows within
/// seconds, long enough that 50 `facts` calls a round are noise on the droplets.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// Default for [`ClusterSpec::call_timeout`]: a `facts` call answers in milliseconds; ten seconds
/// only trips on a wedged droplet.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ClusterSpec::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the controller reaches droplets over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshSpec {
    /// Login user, `root` on DigitalOcean droplets.
    #[serde(default = "default_user")]
    pub user: String,
    /// Path (on the controller's machine) of the private key, OpenSSH format; ed25519 works.
    pub private_key: String,
}

fn default_user() -> String {
    "root".into()
}

/// The cluster-wide desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// SSH settings for every node.
    pub ssh: SshSpec,
    /// How often each node is probed with `facts`.
    #[serde(with = "crate::duration", default = "default_probe_interval")]
    pub probe_interval: Duration,
    /// Deadline for one agent call.
    #[serde(with = "crate::duration", default = "default_call_timeout")]
    pub call_timeout: Duration,
    /// Deadline for TCP connect plus SSH handshake and auth.
    #[serde(with = "crate::duration", default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// Guards on automatic replacement.
    #[serde(default)]
    pub healing: HealingPolicy,
    /// Upstream releases and how they roll out. `None`: vmctl does not upgrade Mastodon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseSpec>,
}

/// Where releases come from and how they roll out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSpec {
    /// The git URL droplets fetch release tags from.
    pub repo_url: String,
    /// GitHub's REST API base URL.
    #[serde(default = "default_github_api")]
    pub github_api: String,
    /// `owner/name` of the upstream repository.
    #[serde(default = "default_github_repo")]
    pub github_repo: String,
    /// Mastodon's update-check API base URL (for its `urgent` flag); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_check_url: Option<String>,
    /// How often the feed is read.
    #[serde(with = "crate::duration", default = "default_check_interval")]
    pub check_interval: Duration,
    /// When a release may start and by when it must be live.
    #[serde(default)]
    pub policy: crate::release::ReleasePolicy,
    /// Nodes switched at once within a pool.
    #[serde(default = "default_max_parallel")]
    pub max_parallel: u32,
    /// How long a restarted node must stay healthy before the next batch.
    #[serde(with = "crate::duration", default = "default_min_healthy")]
    pub min_healthy_time: Duration,
    /// How long a restarted node may take to pass its health checks.
    #[serde(with = "crate::duration", default = "default_healthy_deadline")]
    pub healthy_deadline: Duration,
    /// How long any one rollout step may take.
    #[serde(with = "crate::duration", default = "default_progress_deadline")]
    pub progress_deadline: Duration,
}

fn default_github_api() -> String {
    "https://api.github.com".into()
}
fn default_github_repo() -> String {
    "mastodon/mastodon".into()
}
fn default_check_interval() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_max_parallel() -> u32 {
    1
}
fn default_min_healthy() -> Duration {
    Duration::from_secs(30)
}
fn default_healthy_deadline() -> Duration {
    Duration::from_secs(300)
}
fn default_progress_deadline() -> Duration {
    Duration::from_secs(1800)
}

/// Limits on self-healing, so a network problem on the controller's side never replaces half
/// the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealingPolicy {
    /// Replacements started fleet-wide in any rolling hour.
    #[serde(default = "default_max_per_hour")]
    pub max_replacements_per_hour: u32,
    /// No replacement in a pool while more than this percentage of it is unhealthy.
    #[serde(default = "default_pool_pct")]
    pub max_unhealthy_pool_percent: u32,
    /// No replacement anywhere while more than this percentage of the fleet is unhealthy.
    #[serde(default = "default_fleet_pct")]
    pub max_unhealthy_fleet_percent: u32,
    /// First delay after a failed replacement; doubles per consecutive failure.
    #[serde(with = "crate::duration", default = "default_retry_base")]
    pub retry_backoff: Duration,
}

impl Default for HealingPolicy {
    fn default() -> Self {
        HealingPolicy {
            max_replacements_per_hour: default_max_per_hour(),
            max_unhealthy_pool_percent: default_pool_pct(),
            max_unhealthy_fleet_percent: default_fleet_pct(),
            retry_backoff: default_retry_base(),
        }
    }
}

fn default_max_per_hour() -> u32 {
    6
}
fn default_pool_pct() -> u32 {
    50
}
fn default_fleet_pct() -> u32 {
    33
}
fn default_retry_base() -> Duration {
    Duration::from_secs(30)
}

fn default_probe_interval() -> Duration {
    DEFAULT_PROBE_INTERVAL
}
fn default_call_timeout() -> Duration {
    DEFAULT_CALL_TIMEOUT
}
fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}

/// What the controller observes about the cluster as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The spec generation this status reflects.
    pub observed_generation: u64,
    /// Cluster-wide conditions.
    pub conditions: Vec<Condition>,
    /// The release controller's latest decision.
    #[serde(default)]
    pub release: Option<crate::release::ReleaseDecision>,
}

impl Resource for ClusterSpec {
    const KIND: &'static str = "cluster";
    type Status = ClusterStatus;
}
