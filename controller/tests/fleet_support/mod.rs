//! Shared set-up for the fleet's integration tests: a droplet farm (real sshd), a client key,
//! an in-memory host-key store, a fleet pointed at them, and bounded waits on its state and
//! events.
//!
//! The agent binary must be built first: `cargo build -p vmctl-agent`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use vmctl_controller::fleet::{
    AgentBinary, Fleet, FleetConfig, FleetEvent, MemoryHostKeyStore, NodeTarget, SessionState,
};
use vmctl_controller::retry::Backoff;
use vmctl_testbed::{generate_client_key, Droplet, DropletFarm};

/// The debug agent binary, built by `cargo build -p vmctl-agent`.
pub fn agent_binary_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug/vmctl-agent");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p vmctl-agent` first",
        path.display()
    );
    path
}

/// Settings for tests: short timeouts and a quick backoff so failures show fast.
pub fn config(private_key: PathBuf, agent: &std::path::Path) -> FleetConfig {
    FleetConfig {
        user: "root".into(),
        private_key,
        connect_timeout: Duration::from_secs(5),
        call_timeout: Duration::from_secs(10),
        keepalive: Duration::from_secs(15),
        reconnect: Backoff::try_new(Duration::from_millis(100), Duration::from_secs(1), 0.2)
            .unwrap(),
        agent: AgentBinary::load(agent).unwrap(),
    }
}

/// How a droplet is reached.
pub fn target(d: &Droplet) -> NodeTarget {
    NodeTarget {
        name: d.name.clone(),
        address: d.address.to_string(),
        port: d.port,
        root: d.root.display().to_string(),
    }
}

/// A farm and a fleet over it.
pub struct World {
    pub farm: DropletFarm,
    pub fleet: Fleet,
    pub events: UnboundedReceiver<FleetEvent>,
    pub store: Arc<MemoryHostKeyStore>,
    pub key: PathBuf,
    pub agent: PathBuf,
    pub dir: tempfile::TempDir,
}

impl World {
    /// Starts droplets `<prefix>-0..n` and a fleet that knows (but has not ensured) them.
    pub fn start(prefix: &str, n: usize) -> World {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = generate_client_key(&dir.path().join("client")).unwrap();
        let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
        let farm = DropletFarm::start(&dir.path().join("farm"), &names, &public).unwrap();
        let agent = agent_binary_path();
        let store = Arc::new(MemoryHostKeyStore::default());
        let (fleet, events) = Fleet::new(config(key.clone(), &agent), store.clone());
        World {
            farm,
            fleet,
            events,
            store,
            key,
            agent,
            dir,
        }
    }

    /// Ensures a session for every droplet.
    pub fn ensure_all(&self) {
        for d in self.farm.droplets() {
            self.fleet.ensure(target(d)).unwrap();
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.farm
            .droplets()
            .iter()
            .map(|d| d.name.clone())
            .collect()
    }

    /// Waits for the next event matching `pred`, skipping others; panics after `within`.
    pub async fn event(
        &mut self,
        what: &str,
        within: Duration,
        mut pred: impl FnMut(&FleetEvent) -> bool,
    ) -> FleetEvent {
        let wait = async {
            loop {
                match self.events.recv().await {
                    Some(ev) if pred(&ev) => return ev,
                    Some(_) => {}
                    None => panic!("event channel closed waiting for {what}"),
                }
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .unwrap_or_else(|_| panic!("timed out after {within:?} waiting for {what}"))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.fleet.shutdown();
        self.farm.teardown();
    }
}

/// Waits until `cond` holds for the node's state; panics naming `what` after `within`.
pub async fn wait_state(
    fleet: &Fleet,
    node: &str,
    what: &str,
    within: Duration,
    cond: impl Fn(&SessionState) -> bool,
) -> SessionState {
    let wait = async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            if let Some(s) = fleet.state(node) {
                if cond(&s) {
                    return s;
                }
            }
        }
    };
    match tokio::time::timeout(within, wait).await {
        Ok(s) => s,
        Err(_) => panic!(
            "timed out after {within:?} waiting until {node} is {what}; it is {:?}",
            fleet.state(node)
        ),
    }
}

/// Waits until every node is Ready.
pub async fn wait_all_ready(fleet: &Fleet, names: &[String], within: Duration) {
    for n in names {
        wait_state(fleet, n, "ready", within, SessionState::is_ready).await;
    }
}
