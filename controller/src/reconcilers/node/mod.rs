//! The node reconciler: keeps a session open to the node's agent, probes `facts`, and writes
//! the node's status and events. Decisions are in [`plan`].

pub mod plan;

use vmctl_protocol::{
    cluster::ClusterSpec,
    node::{NodeSpec, COND_HOST_KEY_MISMATCH},
    pool::PoolSpec,
    Resource,
};

pub use plan::event;
use plan::{Connection, NodeObserved};

use super::{store_err, Ctx};
use crate::{
    fleet::{FleetError, NodeTarget, SessionState},
    queue::{Action, ObjectKey, ReconcileError},
};

/// Reconciles one node.
///
/// # Errors
/// Store failures; fleet failures are observations, not errors.
pub async fn reconcile(ctx: &Ctx, name: &str) -> Result<Action, ReconcileError> {
    let Some(fleet) = ctx.fleet.current() else {
        tracing::debug!(
            node = name,
            "No fleet yet: the cluster spec has not been reconciled"
        );
        return Ok(Action::AwaitChange);
    };
    let Some(node) = ctx.store.get::<NodeSpec>(name).map_err(store_err)? else {
        fleet.remove(name);
        return Ok(Action::AwaitChange);
    };
    let probe_interval = ctx
        .store
        .list::<ClusterSpec>()
        .map_err(store_err)?
        .first()
        .map_or(vmctl_protocol::cluster::DEFAULT_PROBE_INTERVAL, |c| {
            c.spec.probe_interval
        });

    let target = NodeTarget {
        name: name.to_string(),
        address: node.spec.address.clone(),
        port: node.spec.port,
        root: node.spec.root.clone(),
    };
    let connection = match fleet.ensure(target) {
        // A target the fleet refuses (e.g. a root it cannot quote) is an observation to show,
        // not an error to retry: only a new spec can fix it.
        Err(e) => Connection::Down {
            reason: "InvalidTarget".into(),
            message: e.to_string(),
        },
        Ok(()) => match fleet.state(name) {
            None | Some(SessionState::Connecting { .. }) => Connection::Connecting,
            Some(SessionState::Ready { hello, .. }) => Connection::Ready {
                agent_version: hello.agent_version.clone(),
                agent_sha256: hello.binary_sha256.clone(),
            },
            Some(SessionState::Down { error, .. }) => Connection::Down {
                reason: reason_of(&error).into(),
                message: error.to_string(),
            },
        },
    };
    let facts = match connection {
        Connection::Ready { .. } => Some(fleet.facts(name).await.map_err(|e| e.to_string())),
        _ => None,
    };
    let pinned = ctx.store.host_key(name).map_err(store_err)?;
    let upstream_commits = ctx
        .store
        .list::<vmctl_protocol::rollout::RolloutSpec>()
        .map_err(store_err)?
        .into_iter()
        .map(|r| (r.spec.target, r.spec.commit))
        .collect();
    let observed = NodeObserved {
        generation: node.metadata.generation,
        connection,
        facts,
        host_key_fingerprint: pinned.map(|k| k.fingerprint),
        upstream_commits,
    };
    let planned = plan::plan(name, &node.status, &observed, chrono::Utc::now());
    tracing::debug!(node = name, connection = ?observed.connection, "Node observed");
    if planned.status != node.status {
        // Load and uptime change on every probe; the pool only cares about reachability,
        // conditions and the live release. Waking it on every probe would cost a balancer
        // lookup per node per probe interval against DigitalOcean's request budget.
        let pool_cares = plan::pool_relevant_change(&node.status, &planned.status);
        match ctx.store.put_status::<NodeSpec>(
            name,
            planned.status,
            vmctl_state::Precondition::None,
        ) {
            Ok(_) => {}
            // Deleted while we probed: nothing to record.
            Err(vmctl_state::StoreError::NotFound { .. }) => return Ok(Action::AwaitChange),
            Err(e) => return Err(store_err(e)),
        }
        if pool_cares {
            ctx.queue.enqueue(
                ObjectKey::new(PoolSpec::KIND, &node.spec.pool),
                "node status changed",
            );
        }
    }
    for e in planned.events {
        ctx.store.append_event(e).map_err(store_err)?;
    }
    Ok(Action::Requeue(probe_interval))
}

/// The condition reason for a fleet error.
pub fn reason_of(error: &FleetError) -> &'static str {
    match error {
        FleetError::Connect { .. } => "ConnectFailed",
        FleetError::Handshake { .. } => "HandshakeFailed",
        FleetError::HostKeyMismatch { .. } => COND_HOST_KEY_MISMATCH,
        FleetError::AuthRejected { .. } => "AuthRejected",
        FleetError::AgentStart { .. } => "AgentStartFailed",
        FleetError::AgentMissing { .. } => "AgentMissing",
        FleetError::ProtocolMismatch { .. } => "ProtocolMismatch",
        FleetError::Upload { .. } => "UploadFailed",
        FleetError::Timeout { .. } => "Timeout",
        FleetError::SessionClosed { .. } => "SessionClosed",
        FleetError::NotConnected { .. } => "NotConnected",
        FleetError::BadReply { .. } => "BadReply",
        _ => "FleetError",
    }
}

/// The queue key of a node.
pub fn key(name: &str) -> ObjectKey {
    ObjectKey::new(NodeSpec::KIND, name)
}
