//! Rollouts: the persisted state machine that moves the fleet to one Mastodon release, following
//! DESIGN.md's sequence: prepare everywhere → pre-deploy migrations once → roll pools (Sidekiq
//! quiet → switch → restart; web out of the balancer → switch → restart → health → soak → back
//! in) → post-deploy migrations once → cache clear when asked → snapshots.
//!
//! The controller writes the spec once and the status after every step, so a controller killed
//! at any point resumes at the recorded step. Once-per-cluster steps also leave a marker on the
//! exec node, so a replay that re-sends one is a no-op there.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{meta::Timestamp, resource::Resource};

/// What to roll out. Written once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutSpec {
    /// The release tag.
    pub target: String,
    /// The upstream commit the tag must be at.
    pub commit: String,
    /// Where the git tree is fetched from.
    pub repo_url: String,
    /// The release the fleet ran before (what a revert goes back to).
    pub from: Option<String>,
    /// Whether the release notes ask for `tootctl cache clear`.
    pub cache_clear: bool,
    /// Nodes switched at once within a pool.
    pub max_parallel: u32,
    /// How long a restarted node must stay healthy before the next batch.
    #[serde(with = "crate::duration")]
    pub min_healthy_time: Duration,
    /// How long a restarted node may take to become healthy.
    #[serde(with = "crate::duration")]
    pub healthy_deadline: Duration,
    /// How long any one step may take before the rollout fails.
    #[serde(with = "crate::duration")]
    pub progress_deadline: Duration,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutPhase {
    /// Prepare the release on every node, in parallel; nothing live changes.
    Prepare,
    /// Pre-deploy migrations, once, on the exec node.
    PreMigrate,
    /// Roll pools batch by batch.
    Roll,
    /// Post-deploy migrations, once.
    PostMigrate,
    /// `tootctl cache clear`, once, when the release asks for it.
    CacheClear,
    /// Prune old releases and refresh each pool's snapshot.
    Finish,
    /// Finished.
    Done,
    /// A failure before post-deploy migrations: switching touched nodes back.
    Reverting,
    /// Reverted; the release is marked failed.
    Reverted,
    /// A failure after post-deploy migrations: stopped for a person.
    Halted,
}

impl RolloutPhase {
    /// Done, Reverted and Halted end a rollout.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RolloutPhase::Done | RolloutPhase::Reverted | RolloutPhase::Halted
        )
    }
}

/// Where one node is within its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStep {
    /// Web: take it out of the balancer. Sidekiq: quiet it (TSTP).
    Drain,
    /// Point `live` at the target.
    Switch,
    /// Restart its services.
    Restart,
    /// Wait until its health checks pass (within `healthy_deadline`).
    Check,
    /// Stay healthy for `min_healthy_time`.
    Soak,
    /// Web: back into the balancer.
    Undrain,
    /// Finished.
    Done,
}

/// One node's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeProgress {
    /// Node name.
    pub node: String,
    /// Next step.
    pub step: NodeStep,
    /// When the current step started.
    pub since: Timestamp,
}

/// Progress of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// Phase.
    pub phase: RolloutPhase,
    /// Paused by an operator (`vmctl rollout pause`).
    pub paused: bool,
    /// Nodes whose prepare succeeded.
    pub prepared: Vec<String>,
    /// Nodes switched to the target (what a revert must undo).
    pub switched: Vec<String>,
    /// Nodes fully rolled.
    pub rolled: Vec<String>,
    /// The batch in flight.
    pub batch: Vec<NodeProgress>,
    /// When the current phase started.
    pub phase_since: Option<Timestamp>,
    /// Why it failed or halted.
    pub last_error: Option<String>,
}

impl Default for RolloutStatus {
    fn default() -> Self {
        RolloutStatus {
            phase: RolloutPhase::Prepare,
            paused: false,
            prepared: Vec::new(),
            switched: Vec::new(),
            rolled: Vec::new(),
            batch: Vec::new(),
            phase_since: None,
            last_error: None,
        }
    }
}

impl Resource for RolloutSpec {
    const KIND: &'static str = "rollout";
    type Status = RolloutStatus;
}
