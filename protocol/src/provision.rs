//! Provisions: the persisted state machine that brings one new droplet into a pool, either to
//! scale it up or to replace a failed node (make-before-break).
//!
//! The controller writes the spec (what to do) before it acts, and the status after every
//! step, so a controller killed at any instant resumes at the recorded step. The droplet's name
//! is chosen and stored before the create is sent: after a crash, the droplet is found by that
//! name instead of being created twice.

use serde::{Deserialize, Serialize};

use crate::{meta::Timestamp, resource::Resource};

/// Why a droplet is being provisioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ProvisionReason {
    /// The pool has fewer droplets than its count.
    ScaleUp,
    /// A node failed and is replaced; it is deleted once the new one serves.
    Replace {
        /// The failed node.
        node: String,
        /// Its droplet.
        droplet_id: u64,
        /// Why it was declared failed.
        cause: String,
    },
}

/// What to provision. Written once, before the first step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionSpec {
    /// The pool.
    pub pool: String,
    /// The new droplet's unique name (also the node's name).
    pub droplet_name: String,
    /// The image (snapshot) id it is created from.
    pub image_id: u64,
    /// Why.
    pub reason: ProvisionReason,
}

/// The steps, in order. Each names the step to run next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvisionStep {
    /// Send the create (after looking the name up, so a replay creates nothing twice).
    Create,
    /// Wait for the droplet to be `active` with an address.
    WaitActive,
    /// Register the node; wait until its agent answers `facts`.
    Bootstrap,
    /// Add the droplet to the pool's load balancer.
    AddToLoadBalancer,
    /// Replacement only: take the failed droplet out of the balancer and delete it.
    DeleteOld,
    /// Finished.
    Done,
    /// Gave up; see `last_error`.
    Failed,
}

impl ProvisionStep {
    /// True for `Done` and `Failed`.
    pub fn is_terminal(self) -> bool {
        matches!(self, ProvisionStep::Done | ProvisionStep::Failed)
    }
}

/// Progress of a provision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionStatus {
    /// The next step to run.
    pub step: ProvisionStep,
    /// The new droplet, once created.
    pub droplet_id: Option<u64>,
    /// Its address, once active.
    pub address: Option<String>,
    /// When the provision started.
    pub started_at: Option<Timestamp>,
    /// When the current step started; its deadline counts from here.
    pub step_started_at: Option<Timestamp>,
    /// When it reached Done or Failed.
    pub finished_at: Option<Timestamp>,
    /// The last error, if a step failed.
    pub last_error: Option<String>,
}

impl Default for ProvisionStatus {
    fn default() -> Self {
        ProvisionStatus {
            step: ProvisionStep::Create,
            droplet_id: None,
            address: None,
            started_at: None,
            step_started_at: None,
            finished_at: None,
            last_error: None,
        }
    }
}

impl Resource for ProvisionSpec {
    const KIND: &'static str = "provision";
    type Status = ProvisionStatus;
}
