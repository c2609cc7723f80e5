//! Reconcilers, one per kind: each has a pure `plan` and an executor that carries it out.
//! [`reconcile`] dispatches a queue key to its kind's reconciler.

pub mod cluster;
pub mod node;
pub mod pool;
pub mod provision;
pub mod release;
pub mod release_sync;
pub mod rollout;
pub mod snapshot;

use std::sync::Arc;

use vmctl_protocol::rollout::RolloutSpec;
use vmctl_protocol::{
    cluster::ClusterSpec, node::NodeSpec, pool::PoolSpec, provision::ProvisionSpec,
    snapshot::SnapshotSpec, Resource,
};
use vmctl_state::Store;

use crate::{
    fleet::{AgentBinary, Fleet},
    queue::{Action, ObjectKey, QueueHandle, ReconcileContext, ReconcileError},
};

/// Shared by every reconcile.
pub struct Ctx {
    /// The store.
    pub store: Store,
    /// The queue, so a reconciler can wake related keys.
    pub queue: QueueHandle,
    /// The fleet for the current cluster spec; replaced when the SSH settings change.
    pub fleet: cluster::FleetSlot,
    /// The agent binary every droplet must run.
    pub agent: AgentBinary,
    /// The DigitalOcean API, when a token was given.
    pub cloud: Option<Arc<dyn crate::cloud::Cloud>>,
    /// Each managed pool's last droplet list.
    pub droplets: pool::managed::DropletCache,
    /// The upstream release feed client.
    pub upstream: release::UpstreamSlot,
}

/// Runs the reconciler for `key`'s kind.
///
/// # Errors
/// The reconciler's error, for the queue's retry policy.
pub async fn reconcile(
    ctx: Arc<Ctx>,
    key: ObjectKey,
    rc: ReconcileContext,
) -> Result<Action, ReconcileError> {
    let _ = rc;
    match key.kind.as_str() {
        k if k == ClusterSpec::KIND => cluster::reconcile(&ctx, &key.name).await,
        k if k == NodeSpec::KIND => node::reconcile(&ctx, &key.name).await,
        k if k == PoolSpec::KIND => pool::reconcile(&ctx, &key.name).await,
        k if k == ProvisionSpec::KIND => provision::reconcile(&ctx, &key.name).await,
        k if k == SnapshotSpec::KIND => snapshot::reconcile(&ctx, &key.name).await,
        k if k == RolloutSpec::KIND => rollout::reconcile(&ctx, &key.name).await,
        "release" => release::reconcile(&ctx, &key.name).await,
        other => Err(anyhow::anyhow!("no reconciler for kind {other:?}").into()),
    }
}

/// Every key the periodic resync visits.
///
/// # Errors
/// When the store cannot be read.
pub fn all_keys(store: &Store) -> Result<Vec<ObjectKey>, vmctl_state::StoreError> {
    let mut keys = Vec::new();
    for c in store.list::<ClusterSpec>()? {
        keys.push(ObjectKey::new(ClusterSpec::KIND, &c.metadata.name));
        if c.spec.release.is_some() {
            keys.push(release::key(&c.metadata.name));
        }
    }
    for p in store.list::<PoolSpec>()? {
        keys.push(ObjectKey::new(PoolSpec::KIND, &p.metadata.name));
    }
    for n in store.list::<NodeSpec>()? {
        keys.push(ObjectKey::new(NodeSpec::KIND, &n.metadata.name));
    }
    for p in store.list::<ProvisionSpec>()? {
        if !p.status.step.is_terminal() {
            keys.push(ObjectKey::new(ProvisionSpec::KIND, &p.metadata.name));
        }
    }
    for r in store.list::<RolloutSpec>()? {
        if !r.status.phase.is_terminal() {
            keys.push(ObjectKey::new(RolloutSpec::KIND, &r.metadata.name));
        }
    }
    for s in store.list::<SnapshotSpec>()? {
        keys.push(ObjectKey::new(SnapshotSpec::KIND, &s.metadata.name));
    }
    Ok(keys)
}

/// The current fleet, if a cluster spec has been applied.
pub fn current_fleet(ctx: &Ctx) -> Option<Fleet> {
    ctx.fleet.current()
}

/// Appends an event about the `R` object `name`. A failure to record is logged, not returned:
/// the step the event describes has already happened, and retrying it to log it would be worse.
pub fn record<R: Resource>(
    ctx: &Ctx,
    name: &str,
    type_: vmctl_protocol::event::EventType,
    reason: &str,
    message: &str,
) {
    let e = vmctl_protocol::event::Event {
        seq: 0,
        time: chrono::Utc::now(),
        type_,
        kind: R::KIND.into(),
        name: name.into(),
        reason: reason.into(),
        message: message.into(),
    };
    if let Err(err) = ctx.store.append_event(e) {
        tracing::warn!(kind = R::KIND, name, error = %err, "Cannot append an event");
    }
}

/// Wraps a store error for the queue.
pub(crate) fn store_err(e: vmctl_state::StoreError) -> ReconcileError {
    anyhow::Error::from(e).into()
}
