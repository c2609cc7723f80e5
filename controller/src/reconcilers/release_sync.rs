//! Brings a freshly provisioned node to the release the fleet runs, before it serves users.

use std::time::Duration;

use vmctl_protocol::{
    agent::Op,
    node::NodeSpec,
    pool::{PoolRole, PoolSpec},
    provision::ProvisionSpec,
    release_ops::{self as ops, ServiceAction},
    resource::Stored,
    rollout::{RolloutPhase, RolloutSpec},
};

use super::{store_err, Ctx};
use crate::queue::{ReconcileError, RetryHint};

/// The release the fleet was last rolled to, with how to fetch it.
fn fleet_release(ctx: &Ctx) -> Result<Option<RolloutSpec>, ReconcileError> {
    Ok(ctx
        .store
        .list::<RolloutSpec>()
        .map_err(store_err)?
        .into_iter()
        .filter(|r| r.status.phase == RolloutPhase::Done)
        .max_by_key(|r| r.status.phase_since)
        .map(|r| r.spec))
}

/// True once the node runs the fleet's release (or the fleet has none); otherwise prepares,
/// switches and restarts it and returns false so the provision looks again.
///
/// # Errors
/// An agent failure, retried with backoff until the provision's bootstrap deadline.
pub async fn bring_to_fleet_release(
    ctx: &Ctx,
    p: &ProvisionSpec,
    node: Option<&Stored<NodeSpec>>,
) -> Result<bool, ReconcileError> {
    let Some(node) = node else { return Ok(false) };
    let Some(release) = fleet_release(ctx)? else {
        return Ok(true);
    };
    let live = node
        .status
        .facts
        .as_ref()
        .and_then(|f| f.mastodon.live_release.clone());
    if live.as_deref() == Some(release.target.as_str()) {
        return Ok(true);
    }
    let Some(fleet) = ctx.fleet.current() else {
        return Ok(false);
    };
    let pool = ctx.store.get::<PoolSpec>(&p.pool).map_err(store_err)?;
    let (role, queues) = pool.map_or((PoolRole::Web, Vec::new()), |p| {
        (p.spec.role, p.spec.queues)
    });
    let name = &p.droplet_name;
    let fail = |what: &str, e: String| {
        ReconcileError::new(
            anyhow::anyhow!("bringing {name} to {}: {what}: {e}", release.target),
            RetryHint::Backoff,
        )
    };
    let prepare = Op::PrepareRelease(ops::PrepareRelease {
        tag: release.target.clone(),
        repo_url: release.repo_url.clone(),
        expected_commit: release.commit.clone(),
        assets: super::rollout::plan::needs_assets(role, &queues),
    });
    fleet
        .call_with_timeout(name, prepare, release.progress_deadline)
        .await
        .map_err(|e| fail("prepare", e.to_string()))?;
    fleet
        .call_with_timeout(
            name,
            Op::Switch(ops::Switch {
                tag: release.target.clone(),
            }),
            Duration::from_secs(60),
        )
        .await
        .map_err(|e| fail("switch", e.to_string()))?;
    let Some(unit) = super::rollout::plan::unit_of(role) else {
        return Ok(true);
    };
    let restart = Op::Service(ops::Service {
        name: unit.into(),
        action: ServiceAction::Restart,
        queues: super::rollout::plan::service_queues(role, &queues),
    });
    fleet
        .call_with_timeout(name, restart, Duration::from_secs(120))
        .await
        .map_err(|e| fail("restart", e.to_string()))?;
    tracing::info!(node = %name, release = %release.target, "Brought a new node to the fleet's release");
    // The next facts probe shows the new live release; the provision moves on then.
    Ok(false)
}
