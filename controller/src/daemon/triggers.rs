//! What wakes the work queue besides the periodic resync: spec changes in the store (status
//! writes are ignored, or every status write would wake its own reconciler), fleet events, and a
//! changed local agent binary.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};
use vmctl_protocol::rollout::RolloutSpec;
use vmctl_protocol::{
    cluster::ClusterSpec, node::NodeSpec, pool::PoolSpec, provision::ProvisionSpec,
    snapshot::SnapshotSpec, Resource,
};

use super::fleet_events::FleetEventLog;
use crate::{fleet::FleetEvent, queue::ObjectKey, reconcilers::Ctx};

/// How often the local agent binary is checked for a new build (a stat, then a hash only when
/// size or mtime changed).
const AGENT_CHECK_PERIOD: Duration = Duration::from_secs(2);

/// Spawns every trigger task; each ends when `stop` turns true.
pub fn spawn(
    ctx: Arc<Ctx>,
    fleet_events: mpsc::UnboundedReceiver<FleetEvent>,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(watch_specs::<ClusterSpec>(ctx.clone(), stop.clone())),
        tokio::spawn(watch_specs::<PoolSpec>(ctx.clone(), stop.clone())),
        tokio::spawn(watch_specs::<NodeSpec>(ctx.clone(), stop.clone())),
        tokio::spawn(watch_specs::<ProvisionSpec>(ctx.clone(), stop.clone())),
        tokio::spawn(watch_specs::<SnapshotSpec>(ctx.clone(), stop.clone())),
        tokio::spawn(watch_specs::<RolloutSpec>(ctx.clone(), stop.clone())),
        tokio::spawn(forward_fleet_events(
            ctx.clone(),
            fleet_events,
            stop.clone(),
        )),
        tokio::spawn(watch_agent_binary(ctx, stop)),
    ]
}

async fn watch_specs<R: Resource>(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut changes = ctx.store.watch::<R>();
    let mut seen: HashMap<String, u64> = HashMap::new();
    loop {
        let change = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            c = changes.next() => match c { Some(c) => c, None => return },
        };
        let generation = match ctx.store.get::<R>(&change.name) {
            Ok(Some(o)) => Some(o.metadata.generation),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(kind = R::KIND, name = %change.name, error = %e, "Cannot read a changed object; the resync will catch it");
                continue;
            }
        };
        let spec_changed = match generation {
            Some(g) => seen.insert(change.name.clone(), g) != Some(g),
            None => seen.remove(&change.name).is_some() || change.deleted,
        };
        if !spec_changed {
            continue;
        }
        ctx.queue
            .enqueue(ObjectKey::new(R::KIND, &change.name), "spec changed");
        // A node moving between pools, appearing or leaving changes its pools' summaries.
        if R::KIND == NodeSpec::KIND {
            for p in ctx.store.list::<PoolSpec>().unwrap_or_default() {
                ctx.queue.enqueue(
                    ObjectKey::new(PoolSpec::KIND, &p.metadata.name),
                    "node spec changed",
                );
            }
        }
    }
}

async fn forward_fleet_events(
    ctx: Arc<Ctx>,
    mut events: mpsc::UnboundedReceiver<FleetEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let mut log = FleetEventLog::default();
    loop {
        let e = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            e = events.recv() => match e { Some(e) => e, None => return },
        };
        if let Some(entry) = log.translate(&e, chrono::Utc::now()) {
            if let Err(err) = ctx.store.append_event(entry) {
                tracing::warn!(error = %err, "Cannot append a fleet event to the log");
            }
        }
        ctx.queue.enqueue(
            ObjectKey::new(NodeSpec::KIND, FleetEventLog::node(&e)),
            "fleet event",
        );
    }
}

async fn watch_agent_binary(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(AGENT_CHECK_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let Some(fleet) = ctx.fleet.current() else {
            continue;
        };
        let changed = tokio::task::spawn_blocking(move || fleet.refresh_agent())
            .await
            .unwrap_or(false);
        if changed {
            tracing::info!("Local vmctl-agent binary changed; re-installing it on every node");
        }
    }
}
