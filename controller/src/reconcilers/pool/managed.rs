//! Executor for pools whose droplets the controller owns. Gathers what [`managed_plan`] needs
//! (one list-by-tag per pool per resync, from a cache that our own creates and deletes
//! invalidate), then carries out its actions.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use vmctl_protocol::{
    cluster::ClusterSpec,
    event::EventType,
    meta::{Condition, ConditionStatus},
    node::NodeSpec,
    pool::{DropletTemplate, PoolSpec, PoolStatus},
    provision::{ProvisionReason, ProvisionSpec},
    resource::Stored,
    Resource,
};
use vmctl_state::{Precondition, StoreError};

use super::{managed_plan as mp, plan as summary};
use crate::{
    cloud::Droplet,
    queue::{Action, ObjectKey, ReconcileError},
    reconcilers::{
        provision::{cloud_err, forget_node, pool_tags},
        snapshot::{self, plan::SnapshotInfo},
        store_err, Ctx,
    },
};

/// Condition type: replacements are held back because too much of the fleet is unhealthy.
pub const COND_FLEET_DEGRADED: &str = "FleetDegraded";
/// Condition type: the pool's image resolves to a snapshot.
pub const COND_IMAGE_READY: &str = "ImageReady";
/// Condition type: the DigitalOcean API answers.
pub const COND_CLOUD_READY: &str = "CloudReady";
/// How long a pool's droplet list is reused: the resync period, per the issue's "one
/// list-by-tag per pool per resync".
pub const DROPLET_LIST_TTL: Duration = Duration::from_secs(30);
/// Requeue while provisions are in flight, so their end is noticed without waiting for resync.
const BUSY_REQUEUE: Duration = Duration::from_secs(2);

/// Each pool's last droplet list.
#[derive(Default)]
pub struct DropletCache {
    lists: Mutex<HashMap<String, (Instant, Vec<Droplet>)>>,
}

impl DropletCache {
    /// Drops a pool's list so the next reconcile lists again (after our own create or delete).
    pub fn invalidate(&self, pool: &str) {
        self.lists
            .lock()
            .expect("droplet cache poisoned")
            .remove(pool);
    }

    fn fresh(&self, pool: &str) -> Option<Vec<Droplet>> {
        let lists = self.lists.lock().expect("droplet cache poisoned");
        lists
            .get(pool)
            .filter(|(at, _)| at.elapsed() < DROPLET_LIST_TTL)
            .map(|(_, l)| l.clone())
    }

    fn store(&self, pool: &str, list: Vec<Droplet>) {
        self.lists
            .lock()
            .expect("droplet cache poisoned")
            .insert(pool.to_string(), (Instant::now(), list));
    }
}

/// Reconciles a managed pool.
///
/// # Errors
/// Store and cloud failures, for the queue's backoff.
pub async fn reconcile(
    ctx: &Ctx,
    pool: &Stored<PoolSpec>,
    template: &DropletTemplate,
) -> Result<Action, ReconcileError> {
    let name = pool.metadata.name.as_str();
    let now = chrono::Utc::now();
    let Some(cluster) = ctx
        .store
        .list::<ClusterSpec>()
        .map_err(store_err)?
        .into_iter()
        .next()
    else {
        return Ok(Action::AwaitChange);
    };
    let Some(cloud) = ctx.cloud.clone() else {
        let mut status = pool.status.clone();
        set_condition(
            ctx,
            pool,
            &mut status,
            COND_CLOUD_READY,
            false,
            "NoCloud",
            "no DigitalOcean API configured (DIGITALOCEAN_TOKEN or --do-token-file)",
        );
        write(ctx, pool, status)?;
        return Ok(Action::AwaitChange);
    };
    let tag = pool_tags(&cluster.metadata.name, name).remove(0);
    let droplets = match ctx.droplets.fresh(name) {
        Some(l) => l,
        None => match cloud.list_droplets_by_tag(&tag).await {
            Ok(l) => {
                ctx.droplets.store(name, l.clone());
                l
            }
            Err(e) => {
                let mut status = pool.status.clone();
                set_condition(
                    ctx,
                    pool,
                    &mut status,
                    COND_CLOUD_READY,
                    false,
                    "ListFailed",
                    &e.to_string(),
                );
                write(ctx, pool, status)?;
                return Err(cloud_err(e));
            }
        },
    };
    let lb_members: Option<BTreeSet<u64>> = match &template.load_balancer {
        Some(lb) => Some(
            cloud
                .get_load_balancer(lb)
                .await
                .map_err(cloud_err)?
                .droplet_ids
                .into_iter()
                .collect(),
        ),
        None => None,
    };

    let all_nodes = ctx.store.list::<NodeSpec>().map_err(store_err)?;
    let provisions = ctx.store.list::<ProvisionSpec>().map_err(store_err)?;
    let pools = ctx.store.list::<PoolSpec>().map_err(store_err)?;
    let in_flight_ids: BTreeSet<u64> = provisions
        .iter()
        .filter(|p| !p.status.step.is_terminal())
        .filter_map(|p| p.status.droplet_id)
        .collect();
    // Fleet-wide health, leaving out nodes still in their startup grace or being provisioned.
    let grace_of = |pool: &str| {
        pools
            .iter()
            .find(|p| p.metadata.name == pool)
            .and_then(|p| p.spec.droplets.as_ref())
            .map_or(Duration::ZERO, |t| t.startup_grace)
    };
    let counted: Vec<_> = all_nodes
        .iter()
        .filter(|n| {
            n.spec
                .droplet_id
                .is_none_or(|id| !in_flight_ids.contains(&id))
        })
        .filter(|n| {
            now.signed_duration_since(n.metadata.created_at)
                .to_std()
                .unwrap_or_default()
                >= grace_of(&n.spec.pool)
        })
        .collect();
    let fleet_total = counted.len() as u32;
    let fleet_unhealthy = counted.iter().filter(|n| !n.status.reachable).count() as u32;
    let hour_ago = now - chrono::Duration::hours(1);
    let replacements_last_hour = provisions
        .iter()
        .filter(|p| {
            matches!(p.spec.reason, ProvisionReason::Replace { .. })
                && p.metadata.created_at > hour_ago
        })
        .count() as u32;

    let droplet_obs: Vec<mp::DropletObs> = droplets
        .iter()
        .map(|d| mp::DropletObs {
            id: d.id,
            name: d.name.clone(),
            status: droplet_status(&d.status),
            address: d.public_ipv4.clone(),
            created_at: d.created_at,
        })
        .collect();
    let observed = mp::PoolObserved {
        cluster: &cluster.metadata.name,
        pool: name,
        template,
        healing: &cluster.spec.healing,
        droplets: &droplet_obs,
        nodes: all_nodes
            .iter()
            .filter(|n| n.spec.pool == name)
            .map(|n| mp::NodeObs {
                name: &n.metadata.name,
                spec: &n.spec,
                status: &n.status,
                created_at: n.metadata.created_at,
            })
            .collect(),
        provisions: provisions
            .iter()
            .filter(|p| p.spec.pool == name)
            .map(|p| mp::ProvisionObs {
                name: &p.metadata.name,
                spec: &p.spec,
                status: &p.status,
            })
            .collect(),
        lb_members: lb_members.as_ref(),
        draining: rollout_draining(ctx, &all_nodes)?,
        fleet_total,
        fleet_unhealthy,
        replacements_last_hour,
        // Still degraded as of the last pass: if it clears in this one, it clears now.
        degraded_cleared_at: Condition::find(&pool.status.conditions, COND_FLEET_DEGRADED).map(
            |c| match c.status {
                ConditionStatus::True => now,
                _ => c.last_transition,
            },
        ),
        name_seed: rand::random(),
        now,
    };
    let decided = mp::plan(&observed);

    let mut status = pool.status.clone();
    let mut image: Option<Result<(u64, String), String>> = None;
    for action in &decided.actions {
        match action {
            mp::PoolAction::RegisterNode {
                name: node,
                droplet_id,
                address,
            } => {
                let spec = NodeSpec {
                    pool: name.into(),
                    address: address.clone(),
                    port: 22,
                    root: template.root_for(node),
                    droplet_id: Some(*droplet_id),
                };
                ctx.store
                    .put_spec(node, spec, Precondition::MustNotExist)
                    .map_err(store_err)?;
                event(
                    ctx,
                    name,
                    EventType::Normal,
                    "NodeAdopted",
                    &format!("droplet {node} ({droplet_id}) carries the pool's tag; registered it"),
                );
            }
            mp::PoolAction::ForgetNode { name: node } => {
                forget_node(ctx, node)?;
                event(
                    ctx,
                    name,
                    EventType::Normal,
                    "NodeForgotten",
                    &format!("droplet of node {node} no longer exists"),
                );
            }
            mp::PoolAction::StartProvision {
                droplet_name,
                reason,
            } => {
                if image.is_none() {
                    image = Some(resolve_image(ctx, &cluster.metadata.name, name, template).await?);
                }
                let (image_id, image_name) = match image.as_ref().expect("resolved above") {
                    Ok(i) => i.clone(),
                    Err(message) => {
                        set_condition(
                            ctx,
                            pool,
                            &mut status,
                            COND_IMAGE_READY,
                            false,
                            "ImageMissing",
                            message,
                        );
                        write(ctx, pool, status)?;
                        return Err(anyhow::anyhow!("pool {name}: {message}").into());
                    }
                };
                set_condition(
                    ctx,
                    pool,
                    &mut status,
                    COND_IMAGE_READY,
                    true,
                    "ImageFound",
                    &format!("new droplets start from {image_name}"),
                );
                let spec = ProvisionSpec {
                    pool: name.into(),
                    droplet_name: droplet_name.clone(),
                    image_id,
                    reason: reason.clone(),
                };
                ctx.store
                    .put_spec(droplet_name, spec, Precondition::MustNotExist)
                    .map_err(store_err)?;
                let (reason_code, message) = match reason {
                    ProvisionReason::Replace { node, cause, .. } => {
                        ("ReplacementStarted", format!("replacing failed node {node} ({cause}) with {droplet_name} from {image_name}"))
                    }
                    ProvisionReason::ScaleUp => ("ScaleUpStarted", format!("creating {droplet_name} from {image_name}")),
                };
                event(ctx, name, EventType::Normal, reason_code, &message);
                ctx.queue.enqueue(
                    ObjectKey::new(ProvisionSpec::KIND, droplet_name),
                    "provision started",
                );
            }
            mp::PoolAction::ScaleDown { node, droplet_id } => {
                if let Some(lb) = &template.load_balancer {
                    cloud
                        .lb_remove_droplets(lb, &[*droplet_id])
                        .await
                        .map_err(cloud_err)?;
                }
                cloud.delete_droplet(*droplet_id).await.map_err(cloud_err)?;
                ctx.droplets.invalidate(name);
                forget_node(ctx, node)?;
                event(
                    ctx,
                    name,
                    EventType::Normal,
                    "ScaledDown",
                    &format!("drained and deleted {node} ({droplet_id})"),
                );
            }
            mp::PoolAction::LbAdd(ids) => {
                let lb = template
                    .load_balancer
                    .as_deref()
                    .expect("planned only with a balancer");
                cloud.lb_add_droplets(lb, ids).await.map_err(cloud_err)?;
                event(
                    ctx,
                    name,
                    EventType::Normal,
                    "LoadBalancerAdded",
                    &format!("added healthy droplets {ids:?} to {lb}"),
                );
            }
            mp::PoolAction::LbRemove(ids) => {
                let lb = template
                    .load_balancer
                    .as_deref()
                    .expect("planned only with a balancer");
                cloud.lb_remove_droplets(lb, ids).await.map_err(cloud_err)?;
                event(
                    ctx,
                    name,
                    EventType::Warning,
                    "LoadBalancerRemoved",
                    &format!("took failed droplets {ids:?} out of {lb}"),
                );
            }
        }
    }

    // Status.
    let refs: Vec<_> = all_nodes
        .iter()
        .map(|n| (n.metadata.name.as_str(), &n.spec, &n.status))
        .collect();
    let base = summary::plan(name, pool.metadata.generation, &status, &refs, now);
    status = PoolStatus {
        desired: Some(template.count),
        failed: decided.failed.len() as u32,
        droplet_ids: {
            let mut ids: Vec<u64> = droplets.iter().map(|d| d.id).collect();
            ids.sort_unstable();
            ids
        },
        provisioning: provisions
            .iter()
            .filter(|p| p.spec.pool == name && !p.status.step.is_terminal())
            .map(|p| p.metadata.name.clone())
            .collect(),
        newest_snapshot: snapshot::newest_done(ctx, name)
            .map(|j| j.spec.name)
            .or_else(|| Some(template.image.clone())),
        ..base
    };
    set_condition(
        ctx,
        pool,
        &mut status,
        COND_CLOUD_READY,
        true,
        "Listed",
        "the DigitalOcean API answers",
    );
    match &decided.degraded {
        Some(m) => set_condition(
            ctx,
            pool,
            &mut status,
            COND_FLEET_DEGRADED,
            true,
            "TooManyUnhealthy",
            m,
        ),
        None => set_condition(
            ctx,
            pool,
            &mut status,
            COND_FLEET_DEGRADED,
            false,
            "HealthyEnough",
            "replacements are allowed",
        ),
    }
    if let Some(m) = &decided.held {
        set_condition(ctx, pool, &mut status, "ReplacementHeld", true, "Held", m);
    } else {
        set_condition(
            ctx,
            pool,
            &mut status,
            "ReplacementHeld",
            false,
            "NotHeld",
            "no replacement is waiting",
        );
    }
    write(ctx, pool, status.clone())?;
    write_node_cloud_facts(ctx, &all_nodes, name, &droplets, lb_members.as_ref());

    let busy = !status.provisioning.is_empty();
    let next = match (decided.recheck_in, busy) {
        (_, true) => BUSY_REQUEUE,
        (Some(d), false) => d.min(DROPLET_LIST_TTL),
        (None, false) => DROPLET_LIST_TTL,
    };
    Ok(Action::Requeue(next))
}

/// Droplets of nodes a rollout has drained and not yet put back.
fn rollout_draining(
    ctx: &Ctx,
    nodes: &[Stored<NodeSpec>],
) -> Result<BTreeSet<u64>, ReconcileError> {
    use vmctl_protocol::rollout::{NodeStep, RolloutSpec};
    let mut out = BTreeSet::new();
    for r in ctx.store.list::<RolloutSpec>().map_err(store_err)? {
        if r.status.phase.is_terminal() {
            continue;
        }
        for p in r
            .status
            .batch
            .iter()
            .filter(|p| p.step != NodeStep::Drain && p.step != NodeStep::Done)
        {
            if let Some(id) = nodes
                .iter()
                .find(|n| n.metadata.name == p.node)
                .and_then(|n| n.spec.droplet_id)
            {
                out.insert(id);
            }
        }
    }
    Ok(out)
}

fn droplet_status(s: &crate::cloud::DropletStatus) -> String {
    use crate::cloud::DropletStatus as S;
    match s {
        S::New => "new".into(),
        S::Active => "active".into(),
        S::Off => "off".into(),
        S::Archive => "archive".into(),
        S::Other(o) => o.clone(),
    }
}

async fn resolve_image(
    ctx: &Ctx,
    cluster: &str,
    pool: &str,
    template: &DropletTemplate,
) -> Result<Result<(u64, String), String>, ReconcileError> {
    let cloud = ctx.cloud.clone().expect("checked by reconcile");
    let snapshots: Vec<SnapshotInfo> = cloud
        .list_snapshots()
        .await
        .map_err(cloud_err)?
        .into_iter()
        .map(|s| SnapshotInfo {
            id: s.id,
            name: s.name,
            created_at: s.created_at,
        })
        .collect();
    Ok(snapshot::plan::resolve_image(
        cluster, pool, template, &snapshots,
    ))
}

/// The node fields only the cloud knows: its droplet's API status and balancer membership.
fn write_node_cloud_facts(
    ctx: &Ctx,
    nodes: &[Stored<NodeSpec>],
    pool: &str,
    droplets: &[Droplet],
    members: Option<&BTreeSet<u64>>,
) {
    for n in nodes.iter().filter(|n| n.spec.pool == pool) {
        let Some(id) = n.spec.droplet_id else {
            continue;
        };
        let mut st = n.status.clone();
        st.droplet_status = droplets
            .iter()
            .find(|d| d.id == id)
            .map(|d| droplet_status(&d.status));
        st.in_load_balancer = members.map(|m| m.contains(&id));
        if st != n.status {
            // A conflict means the node reconciler just wrote; the next pass writes these again.
            match ctx.store.put_status::<NodeSpec>(
                &n.metadata.name,
                st,
                Precondition::ResourceVersion(n.metadata.resource_version),
            ) {
                Ok(_) | Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(node = %n.metadata.name, error = %e, "Cannot record droplet facts")
                }
            }
        }
    }
}

fn set_condition(
    ctx: &Ctx,
    pool: &Stored<PoolSpec>,
    status: &mut PoolStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
) {
    let cs = if value {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    let changed = Condition::upsert(
        &mut status.conditions,
        Condition {
            type_: type_.into(),
            status: cs,
            reason: reason.into(),
            message: message.into(),
            last_transition: chrono::Utc::now(),
        },
    );
    let notable = match type_ {
        COND_FLEET_DEGRADED => true,
        COND_IMAGE_READY | COND_CLOUD_READY => !value,
        _ => false,
    };
    let had = Condition::find(&pool.status.conditions, type_).map(|c| c.status);
    if changed && notable && !(had.is_none() && !value && type_ == COND_FLEET_DEGRADED) {
        let (t, r) = match (type_, value) {
            (COND_FLEET_DEGRADED, true) => (EventType::Warning, COND_FLEET_DEGRADED),
            (COND_FLEET_DEGRADED, false) => (EventType::Normal, "FleetRecovered"),
            (_, _) => (EventType::Warning, reason),
        };
        event(ctx, &pool.metadata.name, t, r, message);
    }
}

fn write(ctx: &Ctx, pool: &Stored<PoolSpec>, status: PoolStatus) -> Result<(), ReconcileError> {
    if status == pool.status {
        return Ok(());
    }
    match ctx
        .store
        .put_status::<PoolSpec>(&pool.metadata.name, status, Precondition::None)
    {
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(store_err(e)),
    }
}

fn event(ctx: &Ctx, pool: &str, type_: EventType, reason: &str, message: &str) {
    crate::reconcilers::record::<PoolSpec>(ctx, pool, type_, reason, message);
}
