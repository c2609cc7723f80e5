//! The snapshot reconciler: carries a persisted snapshot job through request → wait → prune.
//! The snapshot's name is stored before the action is sent, and a replay first looks the name
//! up, so a restart never takes a second snapshot. Decisions are in [`plan`].

pub mod plan;

use std::{collections::BTreeSet, time::Duration};

use vmctl_protocol::{
    cluster::ClusterSpec,
    event::EventType,
    node::NodeSpec,
    pool::PoolSpec,
    provision::ProvisionSpec,
    resource::Stored,
    snapshot::{SnapshotSpec, SnapshotStatus, SnapshotStep},
    Resource,
};
use vmctl_state::Precondition;

use super::{provision::cloud_err, store_err, Ctx};
use crate::{
    cloud::{ActionStatus, CloudError, DropletAction},
    queue::{Action, ObjectKey, ReconcileError, RetryHint},
};
use plan::SnapshotInfo;

/// A snapshot of a small droplet takes minutes; an hour means it is stuck.
const WAIT_DEADLINE: Duration = Duration::from_secs(3600);
/// How often the snapshot action is polled.
const POLL: Duration = Duration::from_secs(1);

/// Starts a snapshot job for `pool` from one of its reachable droplets, unless one is running.
///
/// # Errors
/// A message for the operator: unknown or unmanaged pool, no reachable droplet, no cloud.
pub fn request(ctx: &Ctx, pool: &str) -> Result<String, String> {
    if ctx.cloud.is_none() {
        return Err("snapshots need a DigitalOcean API: start vmctld with DIGITALOCEAN_TOKEN or --do-token-file".into());
    }
    let spec = ctx
        .store
        .get::<PoolSpec>(pool)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("pool {pool:?} does not exist"))?;
    if spec.spec.droplets.is_none() {
        return Err(format!("pool {pool:?} lists its nodes by hand; only pools with [pools.{pool}.droplets] are snapshotted"));
    }
    let jobs = ctx
        .store
        .list::<SnapshotSpec>()
        .map_err(|e| e.to_string())?;
    if let Some(running) = jobs
        .iter()
        .find(|j| j.spec.pool == pool && !is_terminal(j.status.step))
    {
        return Ok(running.metadata.name.clone());
    }
    let cluster = ctx
        .store
        .list::<ClusterSpec>()
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("no cluster spec applied")?;
    let nodes = ctx.store.list::<NodeSpec>().map_err(|e| e.to_string())?;
    let source = nodes
        .iter()
        .filter(|n| n.spec.pool == pool && n.status.reachable)
        .find_map(|n| n.spec.droplet_id.map(|id| (id, n)))
        .ok_or_else(|| format!("pool {pool:?} has no reachable droplet to snapshot"))?;
    let release = source
        .1
        .status
        .facts
        .as_ref()
        .and_then(|f| f.mastodon.live_release.clone());
    let base = plan::snapshot_name(
        &cluster.metadata.name,
        pool,
        release.as_deref(),
        chrono::Utc::now(),
    );
    // Two requests within one second would share a name; names must stay unique because the
    // snapshot is found by name.
    let name = (0..)
        .map(|i| {
            if i == 0 {
                base.clone()
            } else {
                format!("{base}-{i}")
            }
        })
        .find(|n| jobs.iter().all(|j| &j.metadata.name != n))
        .expect("an unused suffix exists");
    let job = SnapshotSpec {
        pool: pool.into(),
        droplet_id: source.0,
        name: name.clone(),
    };
    ctx.store
        .put_spec(&name, job, Precondition::MustNotExist)
        .map_err(|e| e.to_string())?;
    append(
        ctx,
        &name,
        EventType::Normal,
        "SnapshotRequested",
        &format!("snapshot of pool {pool} from droplet {}", source.0),
    );
    ctx.queue.enqueue(
        ObjectKey::new(SnapshotSpec::KIND, &name),
        "snapshot requested",
    );
    Ok(name)
}

/// Requests a snapshot when the pool's newest one is older than its policy.
///
/// # Errors
/// As [`request`].
pub fn request_if_stale(ctx: &Ctx, pool: &str) -> Result<Option<String>, String> {
    let Some(spec) = ctx.store.get::<PoolSpec>(pool).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let Some(template) = spec.spec.droplets else {
        return Ok(None);
    };
    let newest =
        newest_done(ctx, pool).map(|j| j.status.finished_at.unwrap_or(j.metadata.created_at));
    if plan::is_stale(newest, &template, chrono::Utc::now()) {
        request(ctx, pool).map(Some)
    } else {
        Ok(None)
    }
}

/// The pool's newest finished snapshot job.
pub fn newest_done(ctx: &Ctx, pool: &str) -> Option<Stored<SnapshotSpec>> {
    ctx.store
        .list::<SnapshotSpec>()
        .ok()?
        .into_iter()
        .filter(|j| j.spec.pool == pool && j.status.step == SnapshotStep::Done)
        .max_by_key(|j| j.status.finished_at)
}

fn is_terminal(step: SnapshotStep) -> bool {
    matches!(step, SnapshotStep::Done | SnapshotStep::Failed)
}

/// Reconciles one snapshot job.
///
/// # Errors
/// Store and cloud failures, for the queue's backoff.
pub async fn reconcile(ctx: &Ctx, name: &str) -> Result<Action, ReconcileError> {
    let Some(job) = ctx.store.get::<SnapshotSpec>(name).map_err(store_err)? else {
        return Ok(Action::AwaitChange);
    };
    if is_terminal(job.status.step) {
        return Ok(Action::AwaitChange);
    }
    let Some(cloud) = ctx.cloud.clone() else {
        return Err(ReconcileError::new(
            anyhow::anyhow!("no DigitalOcean API configured"),
            RetryHint::NoRetry,
        ));
    };
    match job.status.step {
        SnapshotStep::Request => {
            if let Some(s) = cloud
                .find_snapshot_by_name(&job.spec.name)
                .await
                .map_err(cloud_err)?
            {
                set(ctx, &job, |st| {
                    st.step = SnapshotStep::Prune;
                    st.snapshot_id = Some(s.id.clone());
                })?;
                return Ok(Action::Requeue(Duration::ZERO));
            }
            let action = match cloud
                .droplet_action(
                    job.spec.droplet_id,
                    DropletAction::Snapshot {
                        name: job.spec.name.clone(),
                    },
                )
                .await
            {
                Ok(a) => a,
                // An earlier request of ours (before a crash) or another action is still running.
                Err(CloudError::PendingEvent { .. }) => {
                    return Ok(Action::Requeue(Duration::from_secs(2)))
                }
                Err(e) if e.retry_hint() == crate::cloud::RetryHint::Permanent => {
                    return fail(ctx, &job, e.to_string());
                }
                Err(e) => return Err(cloud_err(e)),
            };
            set(ctx, &job, |st| {
                st.step = SnapshotStep::Wait;
                st.action_id = Some(action.id);
                st.started_at.get_or_insert(chrono::Utc::now());
            })?;
            Ok(Action::Requeue(POLL))
        }
        SnapshotStep::Wait => {
            let Some(action_id) = job.status.action_id else {
                set(ctx, &job, |st| st.step = SnapshotStep::Request)?;
                return Ok(Action::Requeue(Duration::ZERO));
            };
            let action = cloud.get_action(action_id).await.map_err(cloud_err)?;
            match action.status {
                ActionStatus::Completed => {
                    let Some(s) = cloud
                        .find_snapshot_by_name(&job.spec.name)
                        .await
                        .map_err(cloud_err)?
                    else {
                        return Ok(Action::Requeue(POLL));
                    };
                    set(ctx, &job, |st| {
                        st.step = SnapshotStep::Prune;
                        st.snapshot_id = Some(s.id.clone());
                    })?;
                    append(
                        ctx,
                        name,
                        EventType::Normal,
                        "SnapshotCreated",
                        &format!(
                            "snapshot {} ({}) of pool {}",
                            job.spec.name, s.id, job.spec.pool
                        ),
                    );
                    Ok(Action::Requeue(Duration::ZERO))
                }
                ActionStatus::Errored => fail(
                    ctx,
                    &job,
                    format!("the snapshot action {action_id} errored"),
                ),
                _ => {
                    let started = job.status.started_at.unwrap_or(job.metadata.created_at);
                    if chrono::Utc::now()
                        .signed_duration_since(started)
                        .to_std()
                        .unwrap_or_default()
                        > WAIT_DEADLINE
                    {
                        return fail(
                            ctx,
                            &job,
                            format!("the snapshot action did not finish within {WAIT_DEADLINE:?}"),
                        );
                    }
                    Ok(Action::Requeue(POLL))
                }
            }
        }
        SnapshotStep::Prune => {
            prune(ctx, &job).await?;
            set(ctx, &job, |st| {
                st.step = SnapshotStep::Done;
                st.finished_at = Some(chrono::Utc::now());
            })?;
            ctx.queue.enqueue(
                ObjectKey::new(PoolSpec::KIND, &job.spec.pool),
                "snapshot done",
            );
            Ok(Action::AwaitChange)
        }
        SnapshotStep::Done | SnapshotStep::Failed => Ok(Action::AwaitChange),
    }
}

async fn prune(ctx: &Ctx, job: &Stored<SnapshotSpec>) -> Result<(), ReconcileError> {
    let cloud = ctx.cloud.clone().expect("checked by reconcile");
    let Some(pool) = ctx
        .store
        .get::<PoolSpec>(&job.spec.pool)
        .map_err(store_err)?
    else {
        return Ok(());
    };
    let Some(template) = pool.spec.droplets else {
        return Ok(());
    };
    let Some(cluster) = ctx
        .store
        .list::<ClusterSpec>()
        .map_err(store_err)?
        .into_iter()
        .next()
    else {
        return Ok(());
    };
    let in_use: BTreeSet<u64> = ctx
        .store
        .list::<ProvisionSpec>()
        .map_err(store_err)?
        .into_iter()
        .filter(|p| !p.status.step.is_terminal())
        .map(|p| p.spec.image_id)
        .collect();
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
    for old in plan::to_prune(
        &cluster.metadata.name,
        &job.spec.pool,
        &template,
        &snapshots,
        &in_use,
    ) {
        cloud.delete_snapshot(&old.id).await.map_err(cloud_err)?;
        append(
            ctx,
            &job.metadata.name,
            EventType::Normal,
            "SnapshotPruned",
            &format!("deleted old snapshot {} ({})", old.name, old.id),
        );
    }
    Ok(())
}

fn set(
    ctx: &Ctx,
    job: &Stored<SnapshotSpec>,
    f: impl FnOnce(&mut SnapshotStatus),
) -> Result<(), ReconcileError> {
    let mut st = job.status.clone();
    f(&mut st);
    ctx.store
        .put_status::<SnapshotSpec>(
            &job.metadata.name,
            st,
            Precondition::ResourceVersion(job.metadata.resource_version),
        )
        .map_err(store_err)?;
    Ok(())
}

fn fail(ctx: &Ctx, job: &Stored<SnapshotSpec>, reason: String) -> Result<Action, ReconcileError> {
    set(ctx, job, |st| {
        st.step = SnapshotStep::Failed;
        st.last_error = Some(reason.clone());
        st.finished_at = Some(chrono::Utc::now());
    })?;
    append(
        ctx,
        &job.metadata.name,
        EventType::Warning,
        "SnapshotFailed",
        &reason,
    );
    Ok(Action::AwaitChange)
}

fn append(ctx: &Ctx, name: &str, type_: EventType, reason: &str, message: &str) {
    super::record::<SnapshotSpec>(ctx, name, type_, reason, message);
}
