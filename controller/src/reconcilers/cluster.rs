//! The cluster reconciler: owns the fleet's lifecycle. A fleet is built for the cluster's SSH
//! settings and rebuilt when they change; without a cluster spec there is no fleet.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::mpsc;
use vmctl_protocol::{
    cluster::{ClusterSpec, ClusterStatus},
    event::EventType,
    meta::{Condition, ConditionStatus},
    node::{NodeSpec, PinnedHostKey},
    Resource,
};
use vmctl_state::{Precondition, Store};

use super::{store_err, Ctx};
use crate::{
    fleet::{Fleet, FleetConfig, FleetEvent, HostKeyStore},
    queue::{Action, ObjectKey, ReconcileError},
    retry::Backoff,
};

/// Condition type: a fleet is running with the cluster's SSH settings.
pub const COND_FLEET_CONFIGURED: &str = "FleetConfigured";
/// Keepalive interval for SSH sessions: well under common NAT idle timeouts.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// First reconnect delay; the cap is the probe interval so a revived droplet is back within one.
const RECONNECT_MIN: Duration = Duration::from_millis(200);

/// The settings a fleet is built from; a change means a new fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// SSH user.
    pub user: String,
    /// Private key path.
    pub private_key: String,
    /// Connect deadline.
    pub connect_timeout: Duration,
    /// Call deadline.
    pub call_timeout: Duration,
    /// Probe interval, which also caps reconnect backoff.
    pub probe_interval: Duration,
}

impl FleetSettings {
    /// The fleet settings a cluster spec asks for.
    pub fn of(spec: &ClusterSpec) -> Self {
        FleetSettings {
            user: spec.ssh.user.clone(),
            private_key: spec.ssh.private_key.clone(),
            connect_timeout: spec.connect_timeout,
            call_timeout: spec.call_timeout,
            probe_interval: spec.probe_interval,
        }
    }
}

/// What to do with the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetAction {
    /// The running fleet matches.
    Keep,
    /// Build a fleet with these settings, replacing any running one.
    Replace(FleetSettings),
    /// No cluster spec: stop the fleet.
    Remove,
}

/// Decides the fleet's fate. Pure.
pub fn plan(desired: Option<&ClusterSpec>, running: Option<&FleetSettings>) -> FleetAction {
    match (desired.map(FleetSettings::of), running) {
        (None, None) => FleetAction::Keep,
        (None, Some(_)) => FleetAction::Remove,
        (Some(want), Some(have)) if &want == have => FleetAction::Keep,
        (Some(want), _) => FleetAction::Replace(want),
    }
}

/// The running fleet and the settings it was built with. Fleet events of every fleet ever
/// installed flow into one sink, so triggers survive a fleet replacement.
pub struct FleetSlot {
    running: Mutex<Option<(FleetSettings, Fleet)>>,
    sink: mpsc::UnboundedSender<FleetEvent>,
}

impl FleetSlot {
    /// An empty slot whose fleets report into `sink`.
    pub fn new(sink: mpsc::UnboundedSender<FleetEvent>) -> Self {
        FleetSlot {
            running: Mutex::new(None),
            sink,
        }
    }

    /// The running fleet.
    pub fn current(&self) -> Option<Fleet> {
        self.running
            .lock()
            .expect("fleet slot poisoned")
            .as_ref()
            .map(|(_, f)| f.clone())
    }

    fn settings(&self) -> Option<FleetSettings> {
        self.running
            .lock()
            .expect("fleet slot poisoned")
            .as_ref()
            .map(|(s, _)| s.clone())
    }

    fn install(
        &self,
        settings: FleetSettings,
        fleet: Fleet,
        mut events: mpsc::UnboundedReceiver<FleetEvent>,
    ) {
        let sink = self.sink.clone();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if sink.send(e).is_err() {
                    break;
                }
            }
        });
        let old = self
            .running
            .lock()
            .expect("fleet slot poisoned")
            .replace((settings, fleet));
        if let Some((_, old)) = old {
            shutdown_in_background(old);
        }
    }

    /// Stops and drops the running fleet.
    pub fn clear(&self) {
        if let Some((_, old)) = self.running.lock().expect("fleet slot poisoned").take() {
            shutdown_in_background(old);
        }
    }
}

/// Fleet shutdown joins session threads; keep that off the async workers.
fn shutdown_in_background(fleet: Fleet) {
    tokio::task::spawn_blocking(move || fleet.shutdown());
}

/// Pinned host keys, kept in the store.
pub struct StoreHostKeys(pub Store);

impl HostKeyStore for StoreHostKeys {
    fn pinned(&self, node: &str) -> Result<Option<PinnedHostKey>, String> {
        self.0.host_key(node).map_err(|e| e.to_string())
    }
    fn pin(&self, node: &str, key: &PinnedHostKey) -> Result<(), String> {
        self.0.pin_host_key(node, key).map_err(|e| e.to_string())
    }
}

/// Reconciles the cluster object `name`.
///
/// # Errors
/// Store failures.
pub async fn reconcile(ctx: &Ctx, name: &str) -> Result<Action, ReconcileError> {
    let cluster = ctx.store.get::<ClusterSpec>(name).map_err(store_err)?;
    // The release settings may have changed with the spec: let the release reconciler look.
    ctx.queue
        .enqueue(super::release::key(name), "cluster spec changed");
    match plan(
        cluster.as_ref().map(|c| &c.spec),
        ctx.fleet.settings().as_ref(),
    ) {
        FleetAction::Keep => return Ok(Action::AwaitChange),
        FleetAction::Remove => ctx.fleet.clear(),
        FleetAction::Replace(settings) => {
            let cluster = cluster.as_ref().expect("Replace implies a cluster spec");
            let now = chrono::Utc::now();
            let mut status = ClusterStatus {
                observed_generation: cluster.metadata.generation,
                ..cluster.status.clone()
            };
            if let Err(e) = std::fs::metadata(&settings.private_key) {
                let message = format!("cannot read SSH private key {}: {e}", settings.private_key);
                let changed = Condition::upsert(
                    &mut status.conditions,
                    Condition {
                        type_: COND_FLEET_CONFIGURED.into(),
                        status: ConditionStatus::False,
                        reason: "PrivateKeyUnreadable".into(),
                        message: message.clone(),
                        last_transition: now,
                    },
                );
                write_status(ctx, name, status)?;
                if changed {
                    append(
                        ctx,
                        name,
                        EventType::Warning,
                        "PrivateKeyUnreadable",
                        &message,
                    )?;
                }
                return Err(anyhow::anyhow!(message).into());
            }
            let backoff = Backoff::try_new(
                RECONNECT_MIN,
                settings.probe_interval.max(RECONNECT_MIN),
                0.2,
            )
            .map_err(|e| anyhow::anyhow!("reconnect backoff: {e}"))?;
            let config = FleetConfig {
                user: settings.user.clone(),
                private_key: settings.private_key.clone().into(),
                connect_timeout: settings.connect_timeout,
                call_timeout: settings.call_timeout,
                keepalive: KEEPALIVE,
                reconnect: backoff,
                agent: ctx.agent.clone(),
            };
            let (fleet, events) = Fleet::new(config, Arc::new(StoreHostKeys(ctx.store.clone())));
            ctx.fleet.install(settings, fleet, events);
            Condition::upsert(
                &mut status.conditions,
                Condition {
                    type_: COND_FLEET_CONFIGURED.into(),
                    status: ConditionStatus::True,
                    reason: "FleetStarted".into(),
                    message: "sessions use the cluster's SSH settings".into(),
                    last_transition: now,
                },
            );
            write_status(ctx, name, status)?;
        }
    }
    for n in ctx.store.list::<NodeSpec>().map_err(store_err)? {
        ctx.queue.enqueue(
            ObjectKey::new(NodeSpec::KIND, &n.metadata.name),
            "fleet replaced",
        );
    }
    Ok(Action::AwaitChange)
}

fn write_status(ctx: &Ctx, name: &str, status: ClusterStatus) -> Result<(), ReconcileError> {
    match ctx
        .store
        .put_status::<ClusterSpec>(name, status, Precondition::None)
    {
        Ok(_) | Err(vmctl_state::StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(store_err(e)),
    }
}

fn append(
    ctx: &Ctx,
    name: &str,
    type_: EventType,
    reason: &str,
    message: &str,
) -> Result<(), ReconcileError> {
    super::record::<ClusterSpec>(ctx, name, type_, reason, message);
    Ok(())
}

#[cfg(test)]
mod tests {
    use vmctl_protocol::cluster::SshSpec;

    use super::*;

    fn spec(user: &str) -> ClusterSpec {
        ClusterSpec {
            release: None,
            healing: Default::default(),
            ssh: SshSpec {
                user: user.into(),
                private_key: "/k".into(),
            },
            probe_interval: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_fleet_is_built_for_a_new_spec_kept_while_it_matches_and_rebuilt_on_change() {
        let a = spec("root");
        let FleetAction::Replace(settings) = plan(Some(&a), None) else {
            panic!("expected Replace")
        };
        assert_eq!(plan(Some(&a), Some(&settings)), FleetAction::Keep);
        assert!(
            matches!(plan(Some(&spec("admin")), Some(&settings)), FleetAction::Replace(s) if s.user == "admin")
        );
        assert_eq!(plan(None, Some(&settings)), FleetAction::Remove);
        assert_eq!(plan(None, None), FleetAction::Keep);
    }
}
