//! Waiting for a non-blocking libssh2 session: one `mio::Poll` per session thread, watching
//! the session's socket and a [`Waker`] that callers poke after queueing work.
//!
//! A blocking libssh2 read holds the session's lock for the whole wait (ssh2-notes.md), so
//! every session runs non-blocking and its owner thread sleeps here instead. Steps of the
//! connect phase (handshake, auth, exec, scp) answer `EAGAIN` as `Session(-37)` and channel
//! reads and writes as `WouldBlock`; [`Driver`] retries both until a deadline, and re-arms
//! `TCP_QUICKACK` before every wait (ssh2-notes.md: a fresh connect 79 -> 33 ms).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::error::FleetError;

/// The session socket's token.
const SOCKET: Token = Token(0);
/// The waker's token.
const WAKER: Token = Token(1);

/// libssh2's `LIBSSH2_ERROR_EAGAIN`.
const LIBSSH2_ERROR_EAGAIN: i32 = -37;

/// What ended a wait.
#[derive(Debug, Default, Clone, Copy)]
pub struct Woken {
    /// The socket became readable (or closed).
    pub readable: bool,
    /// A caller poked the waker.
    pub poked: bool,
}

/// One session thread's poll, waker and stop flag.
pub struct Io {
    poll: Poll,
    events: Events,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl Io {
    /// A poll with its waker registered.
    ///
    /// # Errors
    /// The OS refused an epoll or eventfd.
    pub fn new(stop: Arc<AtomicBool>) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Self {
            poll,
            events: Events::with_capacity(8),
            waker,
            stop,
        })
    }

    /// The waker callers poke.
    #[must_use]
    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    /// Whether the fleet asked this session to stop.
    #[must_use]
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Starts watching `fd` (edge-triggered, both directions).
    ///
    /// # Errors
    /// The OS refused the registration.
    pub fn watch(&self, fd: &impl AsRawFd) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        self.poll.registry().register(
            &mut SourceFd(&raw),
            SOCKET,
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    /// Stops watching `fd`; harmless if it was never watched.
    pub fn unwatch(&self, fd: &impl AsRawFd) {
        let raw = fd.as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&raw));
    }

    /// Sleeps until the socket or the waker fires, or `timeout` passes.
    ///
    /// # Errors
    /// The poll itself failed (not `EINTR`, which counts as a wake).
    pub fn wait(&mut self, quickack: Option<&TcpStream>, timeout: Duration) -> io::Result<Woken> {
        if let Some(stream) = quickack {
            // Linux clears QUICKACK after a while; re-arm it before each wait.
            let _ = socket2::SockRef::from(stream).set_quickack(true);
        }
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Woken::default()),
            Err(e) => return Err(e),
        }
        let mut woken = Woken::default();
        for ev in &self.events {
            match ev.token() {
                SOCKET => woken.readable |= ev.is_readable() || ev.is_read_closed(),
                WAKER => woken.poked = true,
                _ => {}
            }
        }
        Ok(woken)
    }
}

/// Why a driven step did not finish.
#[derive(Debug)]
pub enum Blocked<E> {
    /// The step failed.
    Failed(E),
    /// The deadline passed first.
    TimedOut,
    /// The fleet asked the session to stop.
    Stopped,
}

/// Whether an ssh2 error is libssh2's "would block".
#[must_use]
pub fn is_eagain(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(LIBSSH2_ERROR_EAGAIN)
}

/// Runs connect-phase steps of one session to completion, each bounded by `deadline`.
pub struct Driver<'a> {
    /// The session thread's poll.
    pub io: &'a mut Io,
    /// The session's socket (a duplicate of the one libssh2 owns), for `TCP_QUICKACK`.
    pub stream: &'a TcpStream,
    /// When the whole phase gives up.
    pub deadline: Instant,
    /// The phase's budget `deadline` was made from, for timeout errors.
    pub budget: Duration,
}

impl Driver<'_> {
    /// Waits for the socket once; fails on deadline or stop.
    fn park<E>(&mut self) -> Result<Woken, Blocked<E>> {
        if self.io.stopped() {
            return Err(Blocked::Stopped);
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Blocked::TimedOut);
        }
        self.io
            .wait(Some(self.stream), left)
            .map_err(|_| Blocked::TimedOut)
    }

    /// Calls `step` until it stops answering `EAGAIN`.
    ///
    /// # Errors
    /// The step's own error, the deadline, or a stop.
    pub fn ssh<T>(
        &mut self,
        mut step: impl FnMut() -> Result<T, ssh2::Error>,
    ) -> Result<T, Blocked<ssh2::Error>> {
        loop {
            match step() {
                Ok(v) => return Ok(v),
                Err(e) if is_eagain(&e) => {
                    self.park()?;
                }
                Err(e) => return Err(Blocked::Failed(e)),
            }
        }
    }

    /// [`Driver::ssh`], with its failure mapped to the fleet error it means.
    ///
    /// # Errors
    /// [`FleetError::Handshake`] naming `step`, [`FleetError::Timeout`] or
    /// [`FleetError::ShuttingDown`].
    pub fn step<T>(
        &mut self,
        node: &str,
        step: &str,
        f: impl FnMut() -> Result<T, ssh2::Error>,
    ) -> Result<T, FleetError> {
        self.ssh(f).map_err(|b| self.ssh_failed(node, step, b))
    }

    /// The fleet error a blocked ssh step means.
    #[must_use]
    pub fn ssh_failed(&self, node: &str, step: &str, b: Blocked<ssh2::Error>) -> FleetError {
        match b {
            Blocked::Failed(e) => FleetError::Handshake {
                node: node.to_owned(),
                reason: format!("{step}: {e}"),
            },
            Blocked::TimedOut => self.timed_out(node, step),
            Blocked::Stopped => FleetError::ShuttingDown {
                node: node.to_owned(),
            },
        }
    }

    /// The fleet error a blocked channel read or write means.
    #[must_use]
    pub fn io_failed(&self, node: &str, step: &str, b: Blocked<io::Error>) -> FleetError {
        match b {
            Blocked::Failed(e) => FleetError::SessionClosed {
                node: node.to_owned(),
                reason: format!("{step}: {e}"),
            },
            Blocked::TimedOut => self.timed_out(node, step),
            Blocked::Stopped => FleetError::ShuttingDown {
                node: node.to_owned(),
            },
        }
    }

    fn timed_out(&self, node: &str, step: &str) -> FleetError {
        FleetError::Timeout {
            node: node.to_owned(),
            op: step.to_owned(),
            after: self.budget,
        }
    }

    /// Writes all of `buf` to a channel stream.
    ///
    /// # Errors
    /// The write error, the deadline, or a stop.
    pub fn write_all(
        &mut self,
        w: &mut impl Write,
        mut buf: &[u8],
    ) -> Result<(), Blocked<io::Error>> {
        while !buf.is_empty() {
            match w.write(buf) {
                Ok(0) => {
                    return Err(Blocked::Failed(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "channel accepted no bytes",
                    )))
                }
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.park()?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Blocked::Failed(e)),
            }
        }
        Ok(())
    }

    /// Waits for more data after a read said `WouldBlock`.
    ///
    /// # Errors
    /// The deadline or a stop.
    pub fn wait_readable(&mut self) -> Result<(), Blocked<io::Error>> {
        self.park().map(|_| ())
    }
}

/// Reads what is available without waiting: `Ok(None)` means "would block".
///
/// # Errors
/// The read failed (for an SSH channel: the session is gone).
pub fn read_now(r: &mut impl Read, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
