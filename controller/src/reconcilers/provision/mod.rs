//! The provision reconciler: carries one persisted provision (scale-up or make-before-break
//! replacement) through its steps. Every step is idempotent and its result is stored before the
//! next one starts, so a controller killed anywhere resumes without creating a second droplet or
//! leaving a droplet out of the balancer. Decisions are in [`plan`].

pub mod plan;

use std::time::Duration;

use vmctl_protocol::{
    cluster::ClusterSpec,
    event::EventType,
    node::NodeSpec,
    pool::PoolSpec,
    provision::{ProvisionReason, ProvisionSpec, ProvisionStatus, ProvisionStep},
    resource::Stored,
    Resource,
};
use vmctl_state::{Precondition, StoreError};

use super::{store_err, Ctx};
use crate::{
    cloud::{CreateDroplet, DropletStatus, ImageRef},
    queue::{Action, ObjectKey, ReconcileError, RetryHint},
};
use plan::{Deadlines, DropletSeen, Next, Observed};

/// Booting a droplet from a snapshot takes about a minute on DigitalOcean; ten is a broken one.
const ACTIVE_DEADLINE: Duration = Duration::from_secs(600);
/// After `active`, the agent must answer within the startup grace plus this.
const BOOTSTRAP_SLACK: Duration = Duration::from_secs(120);

/// The ownership tags every droplet of a pool carries. The first is what the pool lists by.
pub fn pool_tags(cluster: &str, pool: &str) -> Vec<String> {
    vec![format!("vmctl-{cluster}-{pool}"), "vmctl".to_string()]
}

/// Reconciles one provision.
///
/// # Errors
/// Store and cloud failures, for the queue's backoff.
pub async fn reconcile(ctx: &Ctx, name: &str) -> Result<Action, ReconcileError> {
    let Some(p) = ctx.store.get::<ProvisionSpec>(name).map_err(store_err)? else {
        return Ok(Action::AwaitChange);
    };
    if p.status.step.is_terminal() {
        return Ok(Action::AwaitChange);
    }
    let Some(cloud) = ctx.cloud.clone() else {
        return Err(ReconcileError::new(
            anyhow::anyhow!("no DigitalOcean API configured"),
            RetryHint::NoRetry,
        ));
    };
    let cluster = ctx
        .store
        .list::<ClusterSpec>()
        .map_err(store_err)?
        .into_iter()
        .next();
    let Some(cluster) = cluster else {
        return Ok(Action::AwaitChange);
    };
    let Some(pool) = ctx.store.get::<PoolSpec>(&p.spec.pool).map_err(store_err)? else {
        return fail(ctx, &p, "its pool was deleted".into()).await;
    };
    let Some(template) = pool.spec.droplets.clone() else {
        return fail(ctx, &p, "its pool no longer manages droplets".into()).await;
    };
    let now = chrono::Utc::now();
    let deadlines = Deadlines {
        active: ACTIVE_DEADLINE,
        bootstrap: template.startup_grace + BOOTSTRAP_SLACK,
    };

    let mut obs = Observed {
        load_balancer: template.load_balancer.clone(),
        ..Default::default()
    };
    match p.status.step {
        ProvisionStep::WaitActive => {
            let id = p
                .status
                .droplet_id
                .ok_or_else(|| anyhow::anyhow!("provision {name} lost its droplet id"))?;
            obs.droplet = cloud
                .get_droplet(id)
                .await
                .map_err(cloud_err)?
                .map(|d| DropletSeen {
                    active: d.status == DropletStatus::Active,
                    address: d.public_ipv4,
                });
        }
        ProvisionStep::Bootstrap => {
            let node = ctx
                .store
                .get::<NodeSpec>(&p.spec.droplet_name)
                .map_err(store_err)?;
            let answering = node
                .as_ref()
                .is_some_and(|n| n.status.reachable && n.status.facts.is_some());
            // A droplet booted from an older snapshot runs an older release: bring it to the
            // fleet's release before it joins the balancer.
            obs.node_ready = answering
                && super::release_sync::bring_to_fleet_release(ctx, &p.spec, node.as_ref()).await?;
        }
        _ => {}
    }

    match plan::plan(&p.spec, &p.status, &obs, deadlines, now) {
        Next::Create => {
            let mut tags = pool_tags(&cluster.metadata.name, &p.spec.pool);
            tags.extend(template.tags.iter().cloned());
            let req = CreateDroplet {
                name: p.spec.droplet_name.clone(),
                region: template.region.clone(),
                size: template.size.clone(),
                image: ImageRef::Id(p.spec.image_id),
                vpc_uuid: template.vpc_uuid.clone(),
                tags,
                ssh_keys: template.ssh_keys.clone(),
                user_data: None,
            };
            let droplet = cloud.create_droplet(&req).await.map_err(cloud_err)?;
            ctx.droplets.invalidate(&p.spec.pool);
            advance(ctx, &p, ProvisionStep::WaitActive, |s| {
                s.droplet_id = Some(droplet.id)
            })?;
            record(
                ctx,
                &p,
                EventType::Normal,
                "DropletCreated",
                &format!("created droplet {} ({})", p.spec.droplet_name, droplet.id),
            )?;
            Ok(Action::Requeue(plan::POLL_ACTIVE))
        }
        Next::Wait(d) => Ok(Action::Requeue(d)),
        Next::RegisterNode { address } => {
            let node = NodeSpec {
                pool: p.spec.pool.clone(),
                address: address.clone(),
                port: 22,
                root: template.root_for(&p.spec.droplet_name),
                droplet_id: p.status.droplet_id,
            };
            ctx.store
                .put_spec(&p.spec.droplet_name, node, Precondition::None)
                .map_err(store_err)?;
            advance(ctx, &p, ProvisionStep::Bootstrap, |s| {
                s.address = Some(address.clone())
            })?;
            record(
                ctx,
                &p,
                EventType::Normal,
                "DropletActive",
                &format!(
                    "droplet {} is active at {address}; bootstrapping its agent",
                    p.spec.droplet_name
                ),
            )?;
            Ok(Action::Requeue(plan::POLL_BOOTSTRAP))
        }
        Next::Advance(step) => {
            advance(ctx, &p, step, |_| {})?;
            if step == ProvisionStep::Done {
                return finish(ctx, &p).await;
            }
            Ok(Action::Requeue(Duration::ZERO))
        }
        Next::AddToLoadBalancer(lb) => {
            let id = p
                .status
                .droplet_id
                .ok_or_else(|| anyhow::anyhow!("provision {name} lost its droplet id"))?;
            cloud.lb_add_droplets(&lb, &[id]).await.map_err(cloud_err)?;
            advance(ctx, &p, plan::after_load_balancer(&p.spec), |_| {})?;
            record(
                ctx,
                &p,
                EventType::Normal,
                "AddedToLoadBalancer",
                &format!(
                    "droplet {} added to load balancer {lb}",
                    p.spec.droplet_name
                ),
            )?;
            Ok(Action::Requeue(Duration::ZERO))
        }
        Next::DeleteOld {
            node,
            droplet_id,
            load_balancer,
        } => {
            if let Some(lb) = &load_balancer {
                cloud
                    .lb_remove_droplets(lb, &[droplet_id])
                    .await
                    .map_err(cloud_err)?;
            }
            cloud.delete_droplet(droplet_id).await.map_err(cloud_err)?;
            ctx.droplets.invalidate(&p.spec.pool);
            forget_node(ctx, &node)?;
            advance(ctx, &p, ProvisionStep::Done, |_| {})?;
            record(
                ctx,
                &p,
                EventType::Normal,
                "OldDropletDeleted",
                &format!("failed node {node} (droplet {droplet_id}) drained and deleted"),
            )?;
            finish(ctx, &p).await
        }
        Next::Fail(reason) => fail(ctx, &p, reason).await,
        Next::Finished => Ok(Action::AwaitChange),
    }
}

/// Stores the next step (and any field the step produced) before anything else happens.
fn advance(
    ctx: &Ctx,
    p: &Stored<ProvisionSpec>,
    step: ProvisionStep,
    set: impl FnOnce(&mut ProvisionStatus),
) -> Result<(), ReconcileError> {
    let now = chrono::Utc::now();
    let mut status = p.status.clone();
    status.started_at.get_or_insert(now);
    status.step = step;
    status.step_started_at = Some(now);
    if step.is_terminal() {
        status.finished_at = Some(now);
    }
    set(&mut status);
    ctx.store
        .put_status::<ProvisionSpec>(
            &p.metadata.name,
            status,
            Precondition::ResourceVersion(p.metadata.resource_version),
        )
        .map_err(store_err)?;
    Ok(())
}

async fn finish(ctx: &Ctx, p: &Stored<ProvisionSpec>) -> Result<Action, ReconcileError> {
    let message = match &p.spec.reason {
        ProvisionReason::Replace { node, .. } => {
            format!("{node} replaced by {}", p.spec.droplet_name)
        }
        ProvisionReason::ScaleUp => format!("{} joined the pool", p.spec.droplet_name),
    };
    let reason = match p.spec.reason {
        ProvisionReason::Replace { .. } => "ReplacementSucceeded",
        ProvisionReason::ScaleUp => "ScaleUpSucceeded",
    };
    record(ctx, p, EventType::Normal, reason, &message)?;
    ctx.queue.enqueue(
        ObjectKey::new(PoolSpec::KIND, &p.spec.pool),
        "provision finished",
    );
    if matches!(p.spec.reason, ProvisionReason::Replace { .. }) {
        if let Err(e) = super::snapshot::request_if_stale(ctx, &p.spec.pool) {
            tracing::warn!(pool = %p.spec.pool, error = %e, "Could not request a snapshot after a replacement");
        }
    }
    Ok(Action::AwaitChange)
}

/// Gives up: deletes the new droplet and its node, keeps the old one (make-before-break).
async fn fail(
    ctx: &Ctx,
    p: &Stored<ProvisionSpec>,
    reason: String,
) -> Result<Action, ReconcileError> {
    if let (Some(cloud), Some(id)) = (ctx.cloud.clone(), p.status.droplet_id) {
        cloud.delete_droplet(id).await.map_err(cloud_err)?;
        ctx.droplets.invalidate(&p.spec.pool);
    }
    forget_node(ctx, &p.spec.droplet_name)?;
    advance(ctx, p, ProvisionStep::Failed, |s| {
        s.last_error = Some(reason.clone())
    })?;
    record(
        ctx,
        p,
        EventType::Warning,
        "ProvisionFailed",
        &format!(
            "{}: {reason}; the new droplet was deleted",
            p.spec.droplet_name
        ),
    )?;
    ctx.queue.enqueue(
        ObjectKey::new(PoolSpec::KIND, &p.spec.pool),
        "provision failed",
    );
    Ok(Action::AwaitChange)
}

/// Removes a node object and its pinned key; a droplet's address can be reused by a new droplet.
pub fn forget_node(ctx: &Ctx, node: &str) -> Result<(), ReconcileError> {
    match ctx.store.delete::<NodeSpec>(node, Precondition::None) {
        Ok(_) | Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(store_err(e)),
    }
    ctx.store.forget_host_key(node).map_err(store_err)?;
    Ok(())
}

fn record(
    ctx: &Ctx,
    p: &Stored<ProvisionSpec>,
    type_: EventType,
    reason: &str,
    message: &str,
) -> Result<(), ReconcileError> {
    super::record::<ProvisionSpec>(ctx, &p.metadata.name, type_, reason, message);
    Ok(())
}

/// Maps a cloud error to the queue's retry policy.
pub fn cloud_err(e: crate::cloud::CloudError) -> ReconcileError {
    let hint = match e.retry_hint() {
        crate::cloud::RetryHint::Transient => RetryHint::Backoff,
        crate::cloud::RetryHint::After(d) => RetryHint::After(d),
        // Permanent cloud errors (a bad token, a bad image) still get retried slowly: the operator
        // fixes them outside vmctl, and nothing else would wake this key.
        crate::cloud::RetryHint::Permanent => RetryHint::Backoff,
    };
    ReconcileError::new(anyhow::Error::from(e), hint)
}
