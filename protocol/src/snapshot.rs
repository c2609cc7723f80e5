//! Snapshot jobs: the persisted state machine that snapshots one droplet of a pool.
//!
//! DigitalOcean's snapshot action returns no snapshot id, so the snapshot is found by its
//! unique name once the action completes. The name is chosen and stored before the action is
//! sent; a controller that restarts mid-job finds the snapshot by name instead of taking a
//! second one.

use serde::{Deserialize, Serialize};

use crate::{meta::Timestamp, resource::Resource};

/// What to snapshot. Written once, before the action is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSpec {
    /// The pool it refreshes.
    pub pool: String,
    /// The droplet snapshotted.
    pub droplet_id: u64,
    /// `<cluster>-<pool>-<release>-<UTC timestamp>`.
    pub name: String,
}

/// Steps of a snapshot job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotStep {
    /// Send the snapshot action (or find that an earlier one already made the snapshot).
    Request,
    /// Wait for the action, then find the snapshot by name.
    Wait,
    /// Delete the pool's snapshots beyond its `keep`.
    Prune,
    /// Finished.
    Done,
    /// Gave up; see `last_error`.
    Failed,
}

/// Progress of a snapshot job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    /// Next step.
    pub step: SnapshotStep,
    /// The action, once sent.
    pub action_id: Option<u64>,
    /// The snapshot, once found.
    pub snapshot_id: Option<String>,
    /// When the job started.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// The last error.
    pub last_error: Option<String>,
}

impl Default for SnapshotStatus {
    fn default() -> Self {
        SnapshotStatus {
            step: SnapshotStep::Request,
            action_id: None,
            snapshot_id: None,
            started_at: None,
            finished_at: None,
            last_error: None,
        }
    }
}

impl Resource for SnapshotSpec {
    const KIND: &'static str = "snapshot";
    type Status = SnapshotStatus;
}
