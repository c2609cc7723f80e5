//! Reaching one droplet: TCP connect, SSH handshake, host-key check, public-key login.
//!
//! Everything here runs non-blocking through a [`Driver`], bounded by the fleet's
//! `connect_timeout`, and stops early when the fleet stops the session. What runs on the
//! droplet once logged in is `bootstrap.rs`'s concern.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use ssh2::Session;
use tracing::{debug, info};
use vmctl_protocol::meta::Timestamp;

use super::channel::dispose_session;
use super::config::{FleetConfig, NodeTarget};
use super::error::FleetError;
use super::events::FleetEvent;
use super::host_keys::{self, HostKeyStore, Verdict};
use super::nonblocking::{Blocked, Driver, Io};

/// libssh2's `LIBSSH2_ERROR_FILE`: the private key could not be read.
const LIBSSH2_ERROR_FILE: i32 = -16;

/// A logged-in SSH session and its socket.
pub struct Conn {
    /// The libssh2 session, non-blocking.
    pub session: Session,
    /// A duplicate of the socket libssh2 owns: polled, and used for `TCP_QUICKACK`.
    pub stream: TcpStream,
}

impl Drop for Conn {
    fn drop(&mut self) {
        dispose_session(&self.session);
    }
}

/// Connects, checks the host key and logs in, all before `deadline`.
///
/// # Errors
/// [`FleetError::Connect`], [`FleetError::Handshake`], [`FleetError::HostKeyMismatch`],
/// [`FleetError::HostKeyStore`], [`FleetError::AuthRejected`], [`FleetError::Timeout`] or
/// [`FleetError::ShuttingDown`].
pub fn connect(
    io: &mut Io,
    target: &NodeTarget,
    config: &FleetConfig,
    host_keys: &dyn HostKeyStore,
    deadline: Instant,
    emit: &mut dyn FnMut(FleetEvent),
) -> Result<Conn, FleetError> {
    let node = &target.name;
    let stream = tcp_connect(io, target, deadline)?;
    let mut session = Session::new().map_err(|e| FleetError::Handshake {
        node: node.clone(),
        reason: e.to_string(),
    })?;
    let libssh2_stream = stream.try_clone().map_err(|e| FleetError::Connect {
        node: node.clone(),
        addr: target.addr(),
        reason: format!("duplicating socket: {e}"),
    })?;
    session.set_tcp_stream(libssh2_stream);
    session.set_blocking(false);
    let mut drv = Driver {
        io,
        stream: &stream,
        deadline,
        budget: config.connect_timeout,
    };
    drv.step(node, "handshake", || session.handshake())?;

    check_host_key(&session, node, host_keys, emit)?;

    let user = &config.user;
    let key = &config.private_key;
    match drv.ssh(|| session.userauth_pubkey_file(user, None, key, None)) {
        Ok(()) => {}
        Err(Blocked::Failed(e)) if e.code() == ssh2::ErrorCode::Session(LIBSSH2_ERROR_FILE) => {
            return Err(FleetError::Handshake {
                node: node.clone(),
                reason: format!("reading private key {} failed: {e}", key.display()),
            })
        }
        Err(Blocked::Failed(e)) => {
            debug!(error = %e, "Public-key login refused.");
            return Err(FleetError::AuthRejected {
                node: node.clone(),
                user: user.clone(),
            });
        }
        Err(b) => return Err(drv.ssh_failed(node, "auth", b)),
    }
    if !session.authenticated() {
        return Err(FleetError::AuthRejected {
            node: node.clone(),
            user: user.clone(),
        });
    }
    let secs = u32::try_from(config.keepalive.as_secs())
        .unwrap_or(u32::MAX)
        .max(1);
    session.set_keepalive(true, secs);
    Ok(Conn { session, stream })
}

/// Non-blocking TCP connect, watched by the session's poll from the start.
fn tcp_connect(
    io: &mut Io,
    target: &NodeTarget,
    deadline: Instant,
) -> Result<TcpStream, FleetError> {
    let failed = |reason: String| FleetError::Connect {
        node: target.name.clone(),
        addr: target.addr(),
        reason,
    };
    let addr: SocketAddr = (target.address.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| failed(format!("resolving: {e}")))?
        .next()
        .ok_or_else(|| failed("address resolves to nothing".into()))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| failed(e.to_string()))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| failed(e.to_string()))?;
    socket
        .set_nodelay(true)
        .map_err(|e| failed(e.to_string()))?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e)
            if e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error())
                || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(failed(e.to_string())),
    }
    let stream = TcpStream::from(OwnedFd::from(socket));
    io.watch(&stream)
        .map_err(|e| failed(format!("poll register: {e}")))?;
    loop {
        // Connected, or failed: either way the socket turns writable and the outcome shows
        // in SO_ERROR / peer_addr.
        if let Some(e) = stream.take_error().map_err(|e| failed(e.to_string()))? {
            io.unwatch(&stream);
            return Err(failed(e.to_string()));
        }
        if stream.peer_addr().is_ok() {
            return Ok(stream);
        }
        if io.stopped() {
            io.unwatch(&stream);
            return Err(FleetError::ShuttingDown {
                node: target.name.clone(),
            });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            io.unwatch(&stream);
            return Err(failed("connect timed out".into()));
        }
        io.wait(None, left)
            .map_err(|e| failed(format!("poll: {e}")))?;
    }
}

/// Compares the presented host key with the pin, pinning it on first contact.
fn check_host_key(
    session: &Session,
    node: &str,
    store: &dyn HostKeyStore,
    emit: &mut dyn FnMut(FleetEvent),
) -> Result<(), FleetError> {
    let (blob, kind) = session.host_key().ok_or_else(|| FleetError::Handshake {
        node: node.to_owned(),
        reason: "server presented no host key".into(),
    })?;
    let now: Timestamp = chrono::Utc::now();
    let presented = host_keys::presented_key(host_keys::key_type_name(kind), blob, now);
    let store_failed = |reason: String| FleetError::HostKeyStore {
        node: node.to_owned(),
        reason,
    };
    let pinned = store.pinned(node).map_err(store_failed)?;
    match host_keys::verdict(pinned.as_ref(), &presented) {
        Verdict::Matches => Ok(()),
        Verdict::Pin => {
            store.pin(node, &presented).map_err(store_failed)?;
            info!(fingerprint = %presented.fingerprint, "Pinned host key on first contact.");
            emit(FleetEvent::HostKeyPinned {
                node: node.to_owned(),
                fingerprint: presented.fingerprint,
            });
            Ok(())
        }
        Verdict::Mismatch { pinned } => {
            emit(FleetEvent::HostKeyMismatch {
                node: node.to_owned(),
                pinned_fingerprint: pinned.clone(),
                presented_fingerprint: presented.fingerprint.clone(),
            });
            Err(FleetError::HostKeyMismatch {
                node: node.to_owned(),
                pinned,
                presented: presented.fingerprint,
            })
        }
    }
}
