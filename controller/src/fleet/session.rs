//! One droplet's session: the owner thread that holds the ssh2 session and socket, and the
//! handle the [`Fleet`](super::Fleet) keeps to talk to it.
//!
//! The thread is a three-state machine (Connecting, Ready, Down; see [`SessionState`]).
//! Connecting runs connect and bootstrap; Ready multiplexes calls over the agent channel,
//! sends keepalives and watches for silence; Down waits out the backoff, failing calls fast.
//! Callers reach the thread through a queue plus a [`mio::Waker`]; replies go back on tokio
//! oneshots, so async callers never block on ssh2.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Waker;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, info_span, warn};
use vmctl_protocol::agent::{Hello, Op};

use crate::retry::Attempts;

use super::agent_binary::AgentBinary;
use super::bootstrap::{self, decide, Bootstrap, Round};
use super::channel::ExecChannel;
use super::config::{FleetConfig, NodeTarget};
use super::connect::{self, Conn};
use super::error::FleetError;
use super::events::{FleetEvent, SessionState};
use super::frames::{encode_request, Line, Mux, Routed, Waiter};
use super::host_keys::HostKeyStore;
use super::nonblocking::{is_eagain, Driver, Io};

/// Upper bound on one upload + install. A few MiB over loopback or a WAN link takes seconds;
/// this only stops a wedged transfer from holding the session forever.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Session threads do little on their own stack (libssh2 and OpenSSL frames, 16 KiB read
/// buffers), so they need far less than Rust's 2 MiB default.
const THREAD_STACK_BYTES: usize = 512 * 1024;

/// A session that heard nothing for this many keepalive intervals is dead: keepalives are
/// sent with want-reply, so a live peer always answers.
const SILENT_KEEPALIVES: u32 = 3;

/// What the fleet shares with every session thread.
pub struct FleetShared {
    /// Connection settings.
    pub config: FleetConfig,
    /// The agent binary; replaced by `refresh_agent`.
    pub agent: RwLock<Arc<AgentBinary>>,
    /// Host-key pins.
    pub host_keys: Arc<dyn HostKeyStore>,
    /// Where events go.
    pub events: UnboundedSender<FleetEvent>,
    /// Frame ids, unique across the fleet (so logs can name a frame without its node).
    pub ids: AtomicU64,
    /// Live session threads, for a bounded shutdown.
    pub live: Arc<(Mutex<usize>, Condvar)>,
}

impl FleetShared {
    /// The current agent binary.
    pub fn agent(&self) -> Arc<AgentBinary> {
        Arc::clone(
            &self
                .agent
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// A fresh frame id.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// Work for a session thread.
pub enum Command {
    /// Send `op` as frame `id`, and reply through `waiter`.
    Call {
        /// Frame id.
        id: u64,
        /// The op.
        op: Op,
        /// The caller.
        waiter: Waiter,
    },
    /// Drop the session and connect again now (e.g. after `forget-hostkey`).
    Reconnect {
        /// When it was asked for: a session that started later already satisfies it.
        at: Instant,
    },
    /// The local agent binary changed: re-check the agent, and re-install it if it differs.
    Rebootstrap,
}

// === impl SessionHandle ===

/// The fleet's side of one session thread.
pub struct SessionHandle {
    /// Where this session connects.
    pub target: NodeTarget,
    state: Arc<Mutex<SessionState>>,
    stop: Arc<AtomicBool>,
    tx: Mutex<Sender<Command>>,
    waker: Arc<Waker>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SessionHandle {
    /// Starts the session thread for `target`.
    ///
    /// # Errors
    /// The OS refused a poll, waker or thread.
    pub fn spawn(target: NodeTarget, fleet: Arc<FleetShared>) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let io = Io::new(Arc::clone(&stop))?;
        let waker = io.waker();
        let state = Arc::new(Mutex::new(SessionState::Connecting { attempt: 1 }));
        let (tx, rx) = mpsc::channel();
        let worker = Worker {
            target: target.clone(),
            fleet: Arc::clone(&fleet),
            state: Arc::clone(&state),
            rx,
            io,
            backlog: VecDeque::new(),
            last_down: None,
            last_mismatch: None,
        };
        let live = Arc::clone(&fleet.live);
        *live
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        let spawned = std::thread::Builder::new()
            .name(format!("fleet-{}", target.name))
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || {
                let _live = LiveGuard(live);
                worker.run();
            });
        let thread = match spawned {
            Ok(t) => t,
            Err(e) => {
                drop(LiveGuard(Arc::clone(&fleet.live)));
                return Err(e);
            }
        };
        Ok(Self {
            target,
            state,
            stop,
            tx: Mutex::new(tx),
            waker,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The session's state now.
    #[must_use]
    pub fn state(&self) -> SessionState {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Queues `cmd` and wakes the thread.
    ///
    /// # Errors
    /// The thread is gone; the command comes back.
    #[allow(clippy::result_large_err)] // The command is handed back so its waiter can be failed.
    pub fn send(&self, cmd: Command) -> Result<(), Command> {
        let sent = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(cmd);
        sent.map_err(|e| e.0)?;
        // A failed wake means the poll is gone, i.e. the thread exited; the queue then drops.
        let _ = self.waker.wake();
        Ok(())
    }

    /// Asks the thread to end; it fails its callers and exits soon.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    /// The thread, for joining; `None` once taken.
    pub fn take_thread(&self) -> Option<JoinHandle<()>> {
        self.thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Counts a session thread as live until it ends, however it ends.
struct LiveGuard(Arc<(Mutex<usize>, Condvar)>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let (count, cv) = &*self.0;
        let mut n = count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *n = n.saturating_sub(1);
        cv.notify_all();
    }
}

// === impl Worker ===

/// How a Ready session ended.
enum Ended {
    /// The fleet stopped it.
    Stop,
    /// Reconnect at once, without backoff and without reporting Down.
    Restart,
    /// It failed; report Down and back off.
    Failed(FleetError),
}

/// How a backoff wait ended.
enum Waited {
    Elapsed,
    Reconnect,
    Stop,
}

/// A session that passed connect and bootstrap.
struct Established {
    conn: Conn,
    chan: ExecChannel,
    hello: Hello,
    uploaded: bool,
}

/// The session thread's state.
struct Worker {
    target: NodeTarget,
    fleet: Arc<FleetShared>,
    state: Arc<Mutex<SessionState>>,
    rx: Receiver<Command>,
    io: Io,
    /// Calls taken off the queue but not yet sent (while connecting or draining).
    backlog: VecDeque<(u64, Op, Waiter)>,
    /// The last Down reported, so a retry loop does not repeat the same event.
    last_down: Option<String>,
    /// The last presented fingerprint reported as a mismatch.
    last_mismatch: Option<String>,
}

impl Worker {
    fn run(mut self) {
        let span = info_span!("fleet_session", node = %self.target.name);
        let _entered = span.enter();
        let mut attempts = Attempts::new();
        loop {
            if self.io.stopped() {
                break;
            }
            let attempt = attempts.next();
            self.set_state(SessionState::Connecting { attempt });
            let started = Instant::now();
            let failure = match self.establish() {
                Ok(est) => {
                    attempts.reset();
                    self.last_down = None;
                    self.last_mismatch = None;
                    info!(
                        agent_version = %est.hello.agent_version,
                        uploaded = est.uploaded,
                        "Session ready."
                    );
                    self.set_state(SessionState::Ready {
                        hello: est.hello.clone(),
                        since: chrono::Utc::now(),
                    });
                    self.emit(FleetEvent::Ready {
                        node: self.target.name.clone(),
                        hello: est.hello.clone(),
                        uploaded: est.uploaded,
                    });
                    match self.serve(est, started) {
                        Ended::Stop => break,
                        Ended::Restart => continue,
                        Ended::Failed(e) => e,
                    }
                }
                Err(FleetError::ShuttingDown { .. }) => break,
                Err(e) => e,
            };
            self.go_down(failure, attempts.current());
            match self.wait_backoff(attempts.current().max(1)) {
                Waited::Elapsed => {}
                Waited::Reconnect => attempts.reset(),
                Waited::Stop => break,
            }
        }
        let gone = FleetError::ShuttingDown {
            node: self.target.name.clone(),
        };
        self.fail_queued(&gone);
        self.set_state(SessionState::Down {
            error: gone,
            since: chrono::Utc::now(),
            attempt: 0,
        });
        debug!("Session thread ended.");
    }

    fn set_state(&self, s: SessionState) {
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = s;
    }

    fn emit(&self, ev: FleetEvent) {
        // Nobody listening is fine: events are advisory, state is authoritative.
        let _ = self.fleet.events.send(ev);
    }

    /// Connect, start the agent, and make sure it is ours (uploading it if not).
    fn establish(&mut self) -> Result<Established, FleetError> {
        let fleet = Arc::clone(&self.fleet);
        let config = &fleet.config;
        let node = self.target.name.clone();
        let started = Instant::now();
        let deadline = started + config.connect_timeout;
        let mut host_key_events = Vec::new();
        let conn = connect::connect(
            &mut self.io,
            &self.target,
            config,
            fleet.host_keys.as_ref(),
            deadline,
            &mut |ev| host_key_events.push(ev),
        );
        for ev in host_key_events {
            if let FleetEvent::HostKeyMismatch {
                presented_fingerprint,
                ..
            } = &ev
            {
                if self.last_mismatch.as_ref() == Some(presented_fingerprint) {
                    continue;
                }
                warn!(presented = %presented_fingerprint, "Host key changed; refusing to log in.");
                self.last_mismatch = Some(presented_fingerprint.clone());
            }
            self.emit(ev);
        }
        let conn = conn?;
        debug!(elapsed_ms = since_ms(started), "Logged in.");

        let agent = fleet.agent();
        let mut uploaded = false;
        let mut round = Round::First;
        loop {
            let mut drv = Driver {
                io: &mut self.io,
                stream: &conn.stream,
                deadline: Instant::now() + config.call_timeout,
                budget: config.call_timeout,
            };
            let chan =
                ExecChannel::exec(&mut drv, &conn, &self.target, &self.target.serve_command())?;
            let (probe, chan) = bootstrap::probe_hello(&mut drv, chan, &node, fleet.next_id())?;
            debug!(
                elapsed_ms = since_ms(started),
                ?probe,
                "Agent answered hello."
            );
            match (decide(&node, probe, agent.sha256(), round), chan) {
                (Bootstrap::Ready(hello), Some(chan)) => {
                    return Ok(Established {
                        conn,
                        chan,
                        hello,
                        uploaded,
                    });
                }
                (Bootstrap::Ready(_), None) => {
                    // `probe_hello` only returns no channel for an exited agent, which is never
                    // Ready; refuse rather than trust it.
                    return Err(FleetError::AgentStart {
                        node,
                        stderr_tail: "agent exited after answering hello".into(),
                    });
                }
                (Bootstrap::Refuse(e), _) => return Err(e),
                (Bootstrap::Upload(reason), chan) => {
                    info!(?reason, sha256 = %agent.sha256(), "Uploading agent.");
                    // Stop the old agent before replacing its binary.
                    if let Some(chan) = chan {
                        chan.finish(&mut drv, &node)?;
                    }
                    let mut drv = Driver {
                        io: &mut self.io,
                        stream: &conn.stream,
                        deadline: Instant::now() + UPLOAD_TIMEOUT,
                        budget: UPLOAD_TIMEOUT,
                    };
                    if let Err(e) =
                        bootstrap::upload(&mut drv, &conn, &self.target, &agent, rand::random())
                    {
                        if !matches!(e, FleetError::ShuttingDown { .. }) {
                            self.emit(FleetEvent::AgentUploadFailed {
                                node: node.clone(),
                                error: e.clone(),
                            });
                        }
                        return Err(e);
                    }
                    self.emit(FleetEvent::AgentUploaded {
                        node: node.clone(),
                        sha256: agent.sha256().to_owned(),
                    });
                    uploaded = true;
                    round = Round::AfterUpload;
                }
            }
        }
    }

    /// Serves calls until the session fails, is stopped, or must restart.
    fn serve(&mut self, est: Established, started: Instant) -> Ended {
        let Established {
            conn,
            mut chan,
            hello,
            ..
        } = est;
        let node = self.target.name.clone();
        let keepalive = self.fleet.config.keepalive.max(Duration::from_secs(1));
        let silence_limit = keepalive * SILENT_KEEPALIVES;
        let mut mux = Mux::default();
        let mut out: Vec<u8> = Vec::new();
        let mut draining = false;
        let mut last_heard = Instant::now();
        let mut next_keepalive = Instant::now();

        let ended = 'serve: loop {
            if self.io.stopped() {
                break Ended::Stop;
            }
            loop {
                match self.rx.try_recv() {
                    Ok(Command::Call { id, op, waiter }) => {
                        self.backlog.push_back((id, op, waiter))
                    }
                    Ok(Command::Reconnect { at }) if at >= started => {
                        info!("Reconnecting on request.");
                        break 'serve Ended::Restart;
                    }
                    Ok(Command::Reconnect { .. }) => {}
                    Ok(Command::Rebootstrap) => {
                        let ours = self.fleet.agent();
                        if ours.sha256() != hello.binary_sha256 && !draining {
                            info!(sha256 = %ours.sha256(), "Agent binary changed; re-installing.");
                            draining = true;
                        }
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            let now = Instant::now();
            if draining {
                expire_backlog(&mut self.backlog, &node, now);
            } else {
                while let Some((id, op, waiter)) = self.backlog.pop_front() {
                    if waiter.deadline <= now {
                        expire_one(&node, waiter);
                        continue;
                    }
                    debug!(frame_id = id, op = op.name(), "Sending call.");
                    out.extend_from_slice(&encode_request(id, &op));
                    mux.insert(id, waiter);
                }
            }
            while !out.is_empty() {
                match chan.channel.write(&out) {
                    Ok(n) => {
                        out.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        break 'serve Ended::Failed(closed(
                            &node,
                            format!("writing to agent: {e}"),
                        ));
                    }
                }
            }
            match chan.pump() {
                Err(e) => break Ended::Failed(closed(&node, format!("reading from agent: {e}"))),
                Ok(pumped) => {
                    for line in pumped.lines {
                        route(&mut mux, &node, line);
                    }
                    if pumped.eof {
                        let tail = chan.stderr.text();
                        break Ended::Failed(closed(
                            &node,
                            format!("agent exited; stderr: {tail}"),
                        ));
                    }
                }
            }
            let now = Instant::now();
            mux.expire(&node, now);
            // libssh2 refuses a new packet while a partly sent one waits (LIBSSH2_ERROR_BAD_USE),
            // so keepalives wait for queued frames to go out first.
            if now >= next_keepalive && out.is_empty() {
                match conn.session.keepalive_send() {
                    Ok(secs) => {
                        next_keepalive = now + Duration::from_secs(u64::from(secs.max(1)));
                    }
                    Err(e) if is_eagain(&e) => next_keepalive = now + Duration::from_millis(100),
                    Err(e) => break Ended::Failed(closed(&node, format!("keepalive: {e}"))),
                }
            }
            if now.duration_since(last_heard) >= silence_limit {
                break Ended::Failed(FleetError::Timeout {
                    node: node.clone(),
                    op: "keepalive".into(),
                    after: silence_limit,
                });
            }
            if draining && mux.is_empty() && out.is_empty() {
                break Ended::Restart;
            }
            let mut wake_at = next_keepalive.min(last_heard + silence_limit);
            if let Some(d) = mux.next_deadline() {
                wake_at = wake_at.min(d);
            }
            if let Some(d) = self.backlog.iter().map(|(_, _, w)| w.deadline).min() {
                wake_at = wake_at.min(d);
            }
            let timeout = wake_at.saturating_duration_since(Instant::now());
            match self.io.wait(Some(&conn.stream), timeout) {
                Ok(woken) if woken.readable => last_heard = Instant::now(),
                Ok(_) => {}
                Err(e) => break Ended::Failed(closed(&node, format!("poll: {e}"))),
            }
        };
        let why = match &ended {
            Ended::Stop => FleetError::ShuttingDown { node: node.clone() },
            Ended::Restart => closed(&node, "session restarted".into()),
            Ended::Failed(e) => e.clone(),
        };
        mux.fail_all(&why);
        self.io.unwatch(&conn.stream);
        // The channel goes first: freeing it needs the session.
        drop(chan);
        drop(conn);
        ended
    }

    /// Reports Down (once per distinct error) and fails the calls that waited for a connect.
    fn go_down(&mut self, error: FleetError, attempt: u32) {
        let text = error.to_string();
        if self.last_down.as_ref() != Some(&text) {
            warn!(error = %text, kind = error.kind(), attempt, "Session down; retrying with backoff.");
            self.emit(FleetEvent::Down {
                node: self.target.name.clone(),
                error: error.clone(),
            });
            self.last_down = Some(text.clone());
        } else {
            debug!(error = %text, attempt, "Session still down.");
        }
        let not_connected = FleetError::NotConnected {
            node: self.target.name.clone(),
            reason: text,
        };
        for (_, _, w) in self.backlog.drain(..) {
            let _ = w.reply.send(Err(not_connected.clone()));
        }
        self.set_state(SessionState::Down {
            error,
            since: chrono::Utc::now(),
            attempt,
        });
    }

    /// Sleeps out the backoff; calls made meanwhile fail fast.
    fn wait_backoff(&mut self, attempt: u32) -> Waited {
        let delay = self
            .fleet
            .config
            .reconnect
            .delay(attempt, rand::random::<f64>());
        let until = Instant::now() + delay;
        loop {
            if self.io.stopped() {
                return Waited::Stop;
            }
            loop {
                match self.rx.try_recv() {
                    Ok(Command::Call { waiter, .. }) => {
                        let reason = self.last_down.clone().unwrap_or_default();
                        let _ = waiter.reply.send(Err(FleetError::NotConnected {
                            node: self.target.name.clone(),
                            reason,
                        }));
                    }
                    Ok(Command::Reconnect { .. }) => return Waited::Reconnect,
                    Ok(Command::Rebootstrap) => {}
                    Err(_) => break,
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Waited::Elapsed;
            }
            if self.io.wait(None, left).is_err() {
                // A broken poll cannot wait; fall through to the next attempt.
                return Waited::Elapsed;
            }
        }
    }

    /// Fails every queued call (the thread is ending).
    fn fail_queued(&mut self, error: &FleetError) {
        for (_, _, w) in self.backlog.drain(..) {
            let _ = w.reply.send(Err(error.clone()));
        }
        while let Ok(cmd) = self.rx.try_recv() {
            if let Command::Call { waiter, .. } = cmd {
                let _ = waiter.reply.send(Err(error.clone()));
            }
        }
    }
}

fn since_ms(t: Instant) -> u128 {
    t.elapsed().as_millis()
}

fn closed(node: &str, reason: String) -> FleetError {
    FleetError::SessionClosed {
        node: node.to_owned(),
        reason,
    }
}

fn route(mux: &mut Mux, node: &str, line: Line) {
    match line {
        Line::TooLarge => warn!("Dropped an oversized reply frame."),
        Line::Frame(frame) => match mux.route(node, &frame) {
            Routed::Delivered(id) => debug!(frame_id = id, "Reply delivered."),
            Routed::Unmatched(id) => debug!(frame_id = id, "Reply for a call that gave up."),
            Routed::Unaddressed(why) => warn!(reason = %why, "Agent could not read a frame."),
            Routed::Bad(why) => warn!(reason = %why, "Unreadable reply frame."),
        },
    }
}

fn expire_one(node: &str, waiter: Waiter) {
    let _ = waiter.reply.send(Err(FleetError::Timeout {
        node: node.to_owned(),
        op: waiter.op.to_owned(),
        after: waiter.budget,
    }));
}

fn expire_backlog(backlog: &mut VecDeque<(u64, Op, Waiter)>, node: &str, now: Instant) {
    let mut kept = VecDeque::with_capacity(backlog.len());
    for (id, op, w) in backlog.drain(..) {
        if w.deadline <= now {
            expire_one(node, w);
        } else {
            kept.push_back((id, op, w));
        }
    }
    *backlog = kept;
}
