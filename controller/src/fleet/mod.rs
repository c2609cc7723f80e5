//! The fleet: one persistent SSH session per droplet, each running `vmctl-agent serve`, with
//! calls multiplexed over it by frame id.
//!
//! [`Fleet`] is the async-facing handle vmctld keeps. Each node gets one owner thread
//! (`session.rs`) that holds its ssh2 session non-blocking and waits in `mio` (a blocking
//! libssh2 read would lock the whole session; see ssh2-notes.md). Files, one concern each:
//!
//! - `config.rs`: settings, targets, droplet paths and command lines;
//! - `connect.rs`: TCP, handshake, host-key check, login; `host_keys.rs`: pinning;
//! - `bootstrap.rs`: hello probe, the ready/upload/refuse decision, the upload;
//! - `frames.rs`: line framing and the reply mux; `channel.rs`: one exec channel;
//! - `nonblocking.rs`: the poll loop plumbing; `agent_binary.rs`: the local binary's hash;
//! - `events.rs`: states and events; `error.rs`: [`FleetError`].
//!
//! This module does not decide what to call or when; reconcilers do.

mod agent_binary;
mod bootstrap;
mod channel;
mod config;
mod connect;
mod error;
mod events;
mod frames;
mod host_keys;
mod nonblocking;
mod session;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug_span, warn, Instrument};
use vmctl_protocol::agent::{Facts, Op};

pub use agent_binary::{AgentBinary, AgentBinaryError};
pub use bootstrap::{decide, Bootstrap, Probe, Round, UploadReason};
pub use config::{FleetConfig, NodeTarget};
pub use error::{FleetError, RetryHint};
pub use events::{FleetEvent, SessionState};
pub use host_keys::{fingerprint, HostKeyStore, MemoryHostKeyStore};

use frames::Waiter;
use session::{Command, FleetShared, SessionHandle};

/// How long [`Fleet::shutdown`] waits for session threads to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The fleet of agent sessions. Cheap to clone; all clones share the sessions.
///
/// Dropping the last clone asks every session to stop (without waiting);
/// [`Fleet::shutdown`] also waits for them.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<FleetShared>,
    sessions: Mutex<HashMap<String, Arc<SessionHandle>>>,
    /// Threads of removed or replaced sessions, joined on shutdown.
    retired: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for s in lock(&self.sessions).values() {
            s.stop();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Fleet {
    /// A fleet with no sessions yet, and the receiver of its events.
    #[must_use]
    pub fn new(
        config: FleetConfig,
        host_keys: Arc<dyn HostKeyStore>,
    ) -> (Fleet, mpsc::UnboundedReceiver<FleetEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let agent = RwLock::new(Arc::new(config.agent.clone()));
        let shared = Arc::new(FleetShared {
            config,
            agent,
            host_keys,
            events,
            ids: AtomicU64::new(1),
            live: Arc::new((Mutex::new(0), Condvar::new())),
        });
        let inner = Inner {
            shared,
            sessions: Mutex::new(HashMap::new()),
            retired: Mutex::new(Vec::new()),
        };
        (
            Fleet {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    /// Starts a session for `target.name` if there is none; restarts it if the target
    /// changed; does nothing if it is already there unchanged.
    ///
    /// # Errors
    /// [`FleetError::InvalidTarget`] (nothing is started), or the OS refused a thread.
    pub fn ensure(&self, target: NodeTarget) -> Result<(), FleetError> {
        target.validate()?;
        let mut sessions = lock(&self.inner.sessions);
        if let Some(existing) = sessions.get(&target.name) {
            if existing.target == target {
                return Ok(());
            }
            let old = sessions.remove(&target.name);
            if let Some(old) = old {
                self.retire(&old);
            }
        }
        let name = target.name.clone();
        let handle = SessionHandle::spawn(target, Arc::clone(&self.inner.shared)).map_err(|e| {
            FleetError::SessionClosed {
                node: name.clone(),
                reason: format!("starting session thread: {e}"),
            }
        })?;
        sessions.insert(name, Arc::new(handle));
        Ok(())
    }

    /// Closes the node's session and forgets it.
    pub fn remove(&self, name: &str) {
        let removed = lock(&self.inner.sessions).remove(name);
        if let Some(s) = removed {
            self.retire(&s);
        }
    }

    fn retire(&self, s: &SessionHandle) {
        s.stop();
        let mut retired = lock(&self.inner.retired);
        // Reap threads that already ended, so a long-lived fleet does not collect handles.
        let (done, running): (Vec<_>, Vec<_>) = retired
            .drain(..)
            .partition(std::thread::JoinHandle::is_finished);
        for t in done {
            let _ = t.join();
        }
        *retired = running;
        retired.extend(s.take_thread());
    }

    /// The names of all nodes with a session, sorted.
    #[must_use]
    pub fn nodes(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.inner.sessions).keys().cloned().collect();
        names.sort();
        names
    }

    /// The node's session state, or `None` for an unknown node.
    #[must_use]
    pub fn state(&self, name: &str) -> Option<SessionState> {
        lock(&self.inner.sessions).get(name).map(|s| s.state())
    }

    /// Runs `op` on the node's agent with the configured `call_timeout`.
    ///
    /// # Errors
    /// See [`Fleet::call_with_timeout`].
    pub async fn call(&self, name: &str, op: Op) -> Result<serde_json::Value, FleetError> {
        self.call_with_timeout(name, op, self.inner.shared.config.call_timeout)
            .await
    }

    /// Runs `op` on the node's agent, giving up after `timeout`.
    ///
    /// A node that is Down fails at once with [`FleetError::NotConnected`]; a node that is
    /// Connecting holds the call until it is Ready (or the timeout passes).
    ///
    /// # Errors
    /// [`FleetError::UnknownNode`], [`FleetError::NotConnected`], [`FleetError::Timeout`],
    /// [`FleetError::SessionClosed`] (the session dropped with the call in flight),
    /// [`FleetError::Agent`] (the agent answered with an error).
    pub async fn call_with_timeout(
        &self,
        name: &str,
        op: Op,
        timeout: Duration,
    ) -> Result<serde_json::Value, FleetError> {
        let session = lock(&self.inner.sessions)
            .get(name)
            .cloned()
            .ok_or_else(|| FleetError::UnknownNode {
                node: name.to_owned(),
            })?;
        if let SessionState::Down { error, .. } = session.state() {
            return Err(FleetError::NotConnected {
                node: name.to_owned(),
                reason: error.to_string(),
            });
        }
        let id = self.inner.shared.next_id();
        let op_name = op.name();
        let span = debug_span!("fleet_call", node = %name, op = op_name, frame_id = id);
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            op: op_name,
            deadline: Instant::now() + timeout,
            budget: timeout,
            reply: tx,
        };
        if session.send(Command::Call { id, op, waiter }).is_err() {
            return Err(FleetError::SessionClosed {
                node: name.to_owned(),
                reason: "session thread ended".into(),
            });
        }
        let timed_out = || FleetError::Timeout {
            node: name.to_owned(),
            op: op_name.to_owned(),
            after: timeout,
        };
        match tokio::time::timeout(timeout, rx).instrument(span).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(FleetError::SessionClosed {
                node: name.to_owned(),
                reason: "session ended before replying".into(),
            }),
            Err(_) => Err(timed_out()),
        }
    }

    /// The node's facts.
    ///
    /// # Errors
    /// As [`Fleet::call`], plus [`FleetError::BadReply`] if the reply is not [`Facts`].
    pub async fn facts(&self, name: &str) -> Result<Facts, FleetError> {
        let v = self.call(name, Op::Facts).await?;
        serde_json::from_value(v).map_err(|e| FleetError::BadReply {
            node: name.to_owned(),
            reason: format!("facts: {e}"),
        })
    }

    /// Drops the node's session and connects again now, skipping any backoff (e.g. after the
    /// operator forgot a host key). Unknown nodes are ignored.
    pub fn reconnect(&self, name: &str) {
        let session = lock(&self.inner.sessions).get(name).cloned();
        if let Some(s) = session {
            let _ = s.send(Command::Reconnect { at: Instant::now() });
        }
    }

    /// Re-hashes the local agent binary. If it changed, every session re-checks its agent and
    /// re-installs it (after its in-flight calls finish); returns whether it changed.
    pub fn refresh_agent(&self) -> bool {
        let shared = &self.inner.shared;
        let mut current = shared
            .agent
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = AgentBinary::clone(&current);
        match next.refresh() {
            Ok(false) => return false,
            Ok(true) => *current = Arc::new(next),
            Err(e) => {
                warn!(error = %e, "Could not re-hash the agent binary; keeping the old one.");
                return false;
            }
        }
        drop(current);
        let sessions: Vec<_> = lock(&self.inner.sessions).values().cloned().collect();
        for s in sessions {
            let _ = s.send(Command::Rebootstrap);
        }
        true
    }

    /// The agent binary sessions install now.
    #[must_use]
    pub fn agent(&self) -> Arc<AgentBinary> {
        self.inner.shared.agent()
    }

    /// Closes every session and waits (up to a few seconds) for their threads to end.
    pub fn shutdown(&self) {
        let all: Vec<_> = lock(&self.inner.sessions).drain().map(|(_, s)| s).collect();
        for s in &all {
            self.retire(s);
        }
        let (count, cv) = &*self.inner.shared.live;
        let n = lock(count);
        let (n, waited) = cv
            .wait_timeout_while(n, SHUTDOWN_GRACE, |n| *n > 0)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if waited.timed_out() {
            warn!(
                threads = *n,
                "Some fleet sessions did not stop in time; leaving them."
            );
        }
        drop(n);
        let mut retired = lock(&self.inner.retired);
        let (done, running): (Vec<_>, Vec<_>) = retired
            .drain(..)
            .partition(std::thread::JoinHandle::is_finished);
        for t in done {
            let _ = t.join();
        }
        *retired = running;
    }
}
