//! The rollout reconciler: drives the agents through one persisted rollout. Decisions are in
//! [`plan`]; this executor performs one action per pass and stores its result before the next.
//! Every action is idempotent on replay: a switch to the same tag, a restart, a balancer change
//! and a once-only step (the agent's marker) can all be repeated after a crash.

pub mod plan;

use std::time::Duration;

use futures::future::join_all;
use serde::de::DeserializeOwned;
use vmctl_protocol::{
    agent::Op,
    event::EventType,
    node::NodeSpec,
    pool::{PoolRole, PoolSpec},
    release_ops::{self as ops, MigratePhase, ProbeCheck, ServiceAction},
    resource::Stored,
    rollout::{NodeStep, RolloutPhase, RolloutSpec, RolloutStatus},
};
use vmctl_state::Precondition;

use super::{store_err, Ctx};
use crate::{
    fleet::Fleet,
    queue::{Action as QueueAction, ReconcileError, RetryHint},
};
use plan::{Action, Observed, RollNode};

/// Releases each node keeps after a successful rollout.
const KEEP_RELEASES: u32 = 3;

/// A node as the executor needs it: its spec plus its pool's role, queues and balancer.
struct NodeInfo {
    name: String,
    role: PoolRole,
    queues: Vec<String>,
    droplet_id: Option<u64>,
    load_balancer: Option<String>,
    reachable: bool,
    pool: String,
}

fn nodes(ctx: &Ctx) -> Result<Vec<NodeInfo>, ReconcileError> {
    let pools = ctx.store.list::<PoolSpec>().map_err(store_err)?;
    Ok(ctx
        .store
        .list::<NodeSpec>()
        .map_err(store_err)?
        .into_iter()
        .filter_map(|n| {
            let pool = pools.iter().find(|p| p.metadata.name == n.spec.pool)?;
            Some(NodeInfo {
                name: n.metadata.name.clone(),
                role: pool.spec.role,
                queues: pool.spec.queues.clone(),
                droplet_id: n.spec.droplet_id,
                load_balancer: pool
                    .spec
                    .droplets
                    .as_ref()
                    .and_then(|t| t.load_balancer.clone()),
                reachable: n.status.reachable,
                pool: n.spec.pool.clone(),
            })
        })
        .collect())
}

/// Reconciles one rollout.
///
/// # Errors
/// Store failures and transient agent or cloud failures, for the queue's backoff.
pub async fn reconcile(ctx: &Ctx, name: &str) -> Result<QueueAction, ReconcileError> {
    let Some(r) = ctx.store.get::<RolloutSpec>(name).map_err(store_err)? else {
        return Ok(QueueAction::AwaitChange);
    };
    if r.status.phase.is_terminal() {
        return Ok(QueueAction::AwaitChange);
    }
    let Some(fleet) = ctx.fleet.current() else {
        return Err(ReconcileError::new(
            anyhow::anyhow!("no fleet yet"),
            RetryHint::Backoff,
        ));
    };
    let infos = nodes(ctx)?;
    if r.status.phase == RolloutPhase::Reverting {
        // An abort, or a crash mid-revert: finish putting nodes back.
        let reason = r
            .status
            .last_error
            .clone()
            .unwrap_or_else(|| "reverting".into());
        return revert(ctx, &fleet, &infos, &r, r.status.clone(), reason).await;
    }
    let mut obs = Observed {
        nodes: infos
            .iter()
            .map(|n| RollNode {
                name: n.name.clone(),
                pool: n.pool.clone(),
                role: n.role,
                reachable: n.reachable,
            })
            .collect(),
        health: None,
    };
    let now = chrono::Utc::now();
    let mut action = plan::plan(&r.spec, &r.status, &obs, now);
    if let Action::Probe(batch) = &action {
        obs.health = Some(probe(&fleet, &infos, batch).await);
        action = plan::plan(&r.spec, &r.status, &obs, now);
    }
    let mut st = r.status.clone();
    st.phase_since.get_or_insert(now);
    match action {
        Action::Wait(d) => return Ok(QueueAction::Requeue(d)),
        Action::Probe(_) => return Ok(QueueAction::Requeue(Duration::from_millis(250))),
        Action::Prepare(todo) => {
            let assets_for = |n: &NodeInfo| plan::needs_assets(n.role, &n.queues);
            let calls = todo.iter().map(|node| {
                let info = infos.iter().find(|i| &i.name == node);
                let op = Op::PrepareRelease(ops::PrepareRelease {
                    tag: r.spec.target.clone(),
                    repo_url: r.spec.repo_url.clone(),
                    expected_commit: r.spec.commit.clone(),
                    assets: info.is_some_and(assets_for),
                });
                let fleet = fleet.clone();
                let deadline = r.spec.progress_deadline;
                async move {
                    (
                        node.clone(),
                        fleet.call_with_timeout(node, op, deadline).await,
                    )
                }
            });
            let mut failures = Vec::new();
            for (node, result) in join_all(calls).await {
                match result {
                    Ok(_) => st.prepared.push(node),
                    Err(e) => failures.push(format!("{node}: {e}")),
                }
            }
            st.prepared.sort();
            st.prepared.dedup();
            if !failures.is_empty() {
                // No node has switched yet: failing here leaves the live release untouched.
                return revert(
                    ctx,
                    &fleet,
                    &infos,
                    &r,
                    st,
                    format!("prepare failed on {}", failures.join("; ")),
                )
                .await;
            }
            event(
                ctx,
                name,
                EventType::Normal,
                "Prepared",
                &format!("{} prepared on {} nodes", r.spec.target, st.prepared.len()),
            );
            enter(&mut st, RolloutPhase::PreMigrate, now);
        }
        Action::Migrate(phase, exec) => {
            let op = Op::Migrate(ops::Migrate {
                tag: r.spec.target.clone(),
                phase,
            });
            match call::<ops::OnceReport>(&fleet, &exec, op, r.spec.progress_deadline).await {
                Ok(report) => {
                    let what = match phase {
                        MigratePhase::PreDeploy => "pre-deploy",
                        MigratePhase::PostDeploy => "post-deploy",
                    };
                    let how = if report.ran {
                        "ran"
                    } else {
                        "had already run (marker found)"
                    };
                    event(
                        ctx,
                        name,
                        EventType::Normal,
                        "Migrated",
                        &format!("{what} migrations {how} on {exec}"),
                    );
                    let next = match phase {
                        MigratePhase::PreDeploy => RolloutPhase::Roll,
                        MigratePhase::PostDeploy => RolloutPhase::CacheClear,
                    };
                    enter(&mut st, next, now);
                }
                Err(e) if phase == MigratePhase::PreDeploy => {
                    return revert(
                        ctx,
                        &fleet,
                        &infos,
                        &r,
                        st,
                        format!("pre-deploy migrations failed on {exec}: {e}"),
                    )
                    .await;
                }
                Err(e) => {
                    return halt(
                        ctx,
                        &r,
                        st,
                        format!("post-deploy migrations failed on {exec}: {e}"),
                    )
                }
            }
        }
        Action::CacheClear(exec) => {
            let op = Op::CacheClear(ops::CacheClear {
                tag: r.spec.target.clone(),
            });
            match call::<ops::OnceReport>(&fleet, &exec, op, r.spec.progress_deadline).await {
                Ok(_) => {
                    event(
                        ctx,
                        name,
                        EventType::Normal,
                        "CacheCleared",
                        &format!("tootctl cache clear on {exec}"),
                    );
                    enter(&mut st, RolloutPhase::Finish, now);
                }
                Err(e) => {
                    return halt(
                        ctx,
                        &r,
                        st,
                        format!("tootctl cache clear failed on {exec}: {e}"),
                    )
                }
            }
        }
        Action::StartBatch(batch) => {
            event(
                ctx,
                name,
                EventType::Normal,
                "BatchStarted",
                &format!("rolling {}", batch.join(", ")),
            );
            st.batch = plan::new_batch(&batch, now);
        }
        Action::Step(node, step) => {
            let info = infos
                .iter()
                .find(|i| i.name == node)
                .ok_or_else(|| anyhow::anyhow!("node {node} vanished mid-rollout"))?;
            if let Err(e) = do_step(ctx, &fleet, info, &r.spec, step).await {
                return revert(
                    ctx,
                    &fleet,
                    &infos,
                    &r,
                    st,
                    format!("{node}: {step:?} failed: {e}"),
                )
                .await;
            }
            if step == NodeStep::Switch && !st.switched.contains(&node) {
                st.switched.push(node.clone());
            }
            if let Some(p) = st.batch.iter_mut().find(|p| p.node == node) {
                p.step = plan::next_step(step);
                p.since = now;
            }
        }
        Action::Regress(node) => {
            event(
                ctx,
                name,
                EventType::Warning,
                "HealthCheckFailed",
                &format!("{node} failed a health check while soaking; checking it again"),
            );
            if let Some(p) = st.batch.iter_mut().find(|p| p.node == node) {
                p.step = NodeStep::Check;
                p.since = now;
            }
        }
        Action::Promote(done) => {
            event(
                ctx,
                name,
                EventType::Normal,
                "BatchDone",
                &format!("{} on {}", r.spec.target, done.join(", ")),
            );
            st.rolled.extend(done);
            st.batch.clear();
        }
        Action::Enter(RolloutPhase::Done) => {
            finish(ctx, &fleet, &infos, &r).await;
            event(
                ctx,
                name,
                EventType::Normal,
                "RolloutSucceeded",
                &format!("the fleet runs {}", r.spec.target),
            );
            enter(&mut st, RolloutPhase::Done, now);
        }
        Action::Enter(phase) => enter(&mut st, phase, now),
        Action::Revert(reason) => return revert(ctx, &fleet, &infos, &r, st, reason).await,
        Action::Halt(reason) => return halt(ctx, &r, st, reason),
    }
    save(ctx, &r, st)?;
    Ok(QueueAction::Requeue(Duration::ZERO))
}

fn enter(st: &mut RolloutStatus, phase: RolloutPhase, now: vmctl_protocol::Timestamp) {
    st.phase = phase;
    st.phase_since = Some(now);
}

fn save(ctx: &Ctx, r: &Stored<RolloutSpec>, st: RolloutStatus) -> Result<(), ReconcileError> {
    ctx.store
        .put_status::<RolloutSpec>(
            &r.metadata.name,
            st,
            Precondition::ResourceVersion(r.metadata.resource_version),
        )
        .map_err(store_err)?;
    Ok(())
}

async fn call<T: DeserializeOwned>(
    fleet: &Fleet,
    node: &str,
    op: Op,
    timeout: Duration,
) -> Result<T, String> {
    let v = fleet
        .call_with_timeout(node, op, timeout)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| format!("unexpected reply: {e}"))
}

async fn do_step(
    ctx: &Ctx,
    fleet: &Fleet,
    n: &NodeInfo,
    spec: &RolloutSpec,
    step: NodeStep,
) -> Result<(), String> {
    let t = spec.progress_deadline;
    let service = |action| {
        Op::Service(ops::Service {
            name: plan::unit_of(n.role).unwrap_or("mastodon-web").to_string(),
            action,
            queues: plan::service_queues(n.role, &n.queues),
        })
    };
    match step {
        NodeStep::Drain => match (n.role, &n.load_balancer, n.droplet_id, &ctx.cloud) {
            (PoolRole::Web, Some(lb), Some(id), Some(cloud)) => cloud
                .lb_remove_droplets(lb, &[id])
                .await
                .map_err(|e| e.to_string()),
            (PoolRole::Sidekiq | PoolRole::Exec, ..) => {
                call::<serde_json::Value>(fleet, &n.name, service(ServiceAction::Quiet), t)
                    .await
                    .map(drop)
            }
            _ => Ok(()),
        },
        NodeStep::Switch => call::<ops::SwitchReport>(
            fleet,
            &n.name,
            Op::Switch(ops::Switch {
                tag: spec.target.clone(),
            }),
            t,
        )
        .await
        .map(drop),
        NodeStep::Restart => {
            call::<serde_json::Value>(fleet, &n.name, service(ServiceAction::Restart), t)
                .await
                .map(drop)
        }
        NodeStep::Check | NodeStep::Soak | NodeStep::Done => Ok(()),
        NodeStep::Undrain => match (n.role, &n.load_balancer, n.droplet_id, &ctx.cloud) {
            (PoolRole::Web, Some(lb), Some(id), Some(cloud)) => cloud
                .lb_add_droplets(lb, &[id])
                .await
                .map_err(|e| e.to_string()),
            _ => Ok(()),
        },
    }
}

/// The batch nodes that pass their role's health check now.
async fn probe(fleet: &Fleet, infos: &[NodeInfo], batch: &[String]) -> Vec<String> {
    let checks = batch.iter().filter_map(|node| {
        let info = infos.iter().find(|i| &i.name == node)?;
        let check = match info.role {
            PoolRole::Web => ProbeCheck::Web,
            PoolRole::Streaming => ProbeCheck::Streaming,
            _ => ProbeCheck::Sidekiq,
        };
        let fleet = fleet.clone();
        Some(async move {
            let r = call::<ops::ProbeReport>(
                &fleet,
                node,
                Op::Probe(ops::Probe { check }),
                Duration::from_secs(5),
            )
            .await;
            r.is_ok_and(|p| p.healthy).then(|| node.clone())
        })
    });
    join_all(checks).await.into_iter().flatten().collect()
}

/// Puts every switched node back on the previous release, restarts it and returns web nodes to
/// the balancer. Failures here are recorded; the rollout still ends as Reverted so a person sees
/// it (the nodes' status shows what runs where).
async fn revert(
    ctx: &Ctx,
    fleet: &Fleet,
    infos: &[NodeInfo],
    r: &Stored<RolloutSpec>,
    mut st: RolloutStatus,
    reason: String,
) -> Result<QueueAction, ReconcileError> {
    let now = chrono::Utc::now();
    // Persist the intent first: a crash mid-revert resumes the revert, never the rollout.
    st.last_error = Some(reason.clone());
    if st.phase != RolloutPhase::Reverting {
        st.phase = RolloutPhase::Reverting;
        st.phase_since = Some(now);
        event(
            ctx,
            &r.metadata.name,
            EventType::Warning,
            "RolloutReverting",
            &reason,
        );
        ctx.store
            .put_status::<RolloutSpec>(
                &r.metadata.name,
                st.clone(),
                Precondition::ResourceVersion(r.metadata.resource_version),
            )
            .map_err(store_err)?;
    }
    let mut problems = Vec::new();
    if let Some(from) = &r.spec.from {
        for node in &st.switched {
            let Some(info) = infos.iter().find(|i| &i.name == node) else {
                continue;
            };
            let back = Op::Switch(ops::Switch { tag: from.clone() });
            if let Err(e) =
                call::<ops::SwitchReport>(fleet, node, back, r.spec.progress_deadline).await
            {
                problems.push(format!("{node}: switch back: {e}"));
                continue;
            }
            if let Err(e) = do_step(ctx, fleet, info, &r.spec, NodeStep::Restart).await {
                problems.push(format!("{node}: restart: {e}"));
            }
        }
    }
    // Every drained web node of the batch goes back in, reverted or not switched at all.
    for p in &st.batch {
        if let Some(info) = infos.iter().find(|i| i.name == p.node) {
            if let Err(e) = do_step(ctx, fleet, info, &r.spec, NodeStep::Undrain).await {
                problems.push(format!("{}: back into the balancer: {e}", p.node));
            }
        }
    }
    if !problems.is_empty() {
        // Keep Reverting and retry: a node left drained or switched is worse than a retry.
        return Err(ReconcileError::new(
            anyhow::anyhow!("revert incomplete: {}", problems.join("; ")),
            RetryHint::Backoff,
        ));
    }
    let message = format!(
        "{} reverted to {}: {reason}",
        r.spec.target,
        r.spec.from.as_deref().unwrap_or("(nothing)")
    );
    event(
        ctx,
        &r.metadata.name,
        EventType::Warning,
        "RolloutFailed",
        &message,
    );
    let latest = ctx
        .store
        .get::<RolloutSpec>(&r.metadata.name)
        .map_err(store_err)?
        .ok_or_else(|| anyhow::anyhow!("rollout vanished"))?;
    let mut done = latest.status.clone();
    done.phase = RolloutPhase::Reverted;
    done.batch.clear();
    done.phase_since = Some(chrono::Utc::now());
    ctx.store
        .put_status::<RolloutSpec>(
            &r.metadata.name,
            done,
            Precondition::ResourceVersion(latest.metadata.resource_version),
        )
        .map_err(store_err)?;
    Ok(QueueAction::AwaitChange)
}

fn halt(
    ctx: &Ctx,
    r: &Stored<RolloutSpec>,
    mut st: RolloutStatus,
    reason: String,
) -> Result<QueueAction, ReconcileError> {
    st.phase = RolloutPhase::Halted;
    st.last_error = Some(reason.clone());
    st.phase_since = Some(chrono::Utc::now());
    event(ctx, &r.metadata.name, EventType::Warning, "RolloutHalted", &format!("{reason}; post-deploy migrations have run, so nothing was reverted: a person must look"));
    save(ctx, r, st)?;
    Ok(QueueAction::AwaitChange)
}

/// Prunes old releases everywhere and refreshes each managed pool's snapshot.
async fn finish(ctx: &Ctx, fleet: &Fleet, infos: &[NodeInfo], r: &Stored<RolloutSpec>) {
    let protect: Vec<String> = std::iter::once(r.spec.target.clone())
        .chain(r.spec.from.clone())
        .collect();
    for n in infos {
        let op = Op::PruneReleases(ops::PruneReleases {
            keep: KEEP_RELEASES,
            protect: protect.clone(),
        });
        if let Err(e) = call::<ops::PruneReport>(fleet, &n.name, op, Duration::from_secs(60)).await
        {
            tracing::warn!(node = %n.name, error = %e, "Could not prune old releases");
        }
    }
    let mut pools: Vec<&str> = infos.iter().map(|n| n.pool.as_str()).collect();
    pools.sort_unstable();
    pools.dedup();
    for pool in pools {
        match super::snapshot::request(ctx, pool) {
            Ok(job) => event(
                ctx,
                &r.metadata.name,
                EventType::Normal,
                "SnapshotRequested",
                &format!("refreshing pool {pool}'s snapshot ({job})"),
            ),
            Err(e) => tracing::debug!(pool, error = %e, "No snapshot after the rollout"),
        }
    }
}

fn event(ctx: &Ctx, name: &str, type_: EventType, reason: &str, message: &str) {
    super::record::<RolloutSpec>(ctx, name, type_, reason, message);
}
