//! One exec channel on a droplet: the running agent (or a one-shot command), its stdout split
//! into frames and the tail of its stderr.
//!
//! The agent's stderr must be drained even though frames only come on stdout: unread stderr
//! holds the channel window shut and the agent would block writing to it.

use std::io;
use std::ops::{Deref, DerefMut};

use ssh2::{Channel, Session};
use tracing::debug;

use super::config::NodeTarget;
use super::connect::Conn;
use super::error::FleetError;
use super::frames::{Line, LineSplitter};
use super::nonblocking::{read_now, Driver};

/// How long freeing a channel or session may wait for the peer.
const DISPOSE_TIMEOUT_MS: u32 = 500;

/// A channel that is freed in blocking mode.
///
/// libssh2 frees a channel by sending a close; in non-blocking mode that can answer `EAGAIN`
/// and libssh2 then leaks the channel. So the session is switched to blocking (with a short
/// timeout) around the free, and back.
pub struct OwnedChannel {
    session: Session,
    channel: Option<Channel>,
}

impl OwnedChannel {
    /// Wraps a channel of `session`.
    #[must_use]
    pub fn new(session: &Session, channel: Channel) -> Self {
        Self {
            session: session.clone(),
            channel: Some(channel),
        }
    }
}

impl Deref for OwnedChannel {
    type Target = Channel;

    fn deref(&self) -> &Channel {
        // Only `drop` takes the channel out.
        self.channel
            .as_ref()
            .unwrap_or_else(|| unreachable!("channel taken before drop"))
    }
}

impl DerefMut for OwnedChannel {
    fn deref_mut(&mut self) -> &mut Channel {
        self.channel
            .as_mut()
            .unwrap_or_else(|| unreachable!("channel taken before drop"))
    }
}

impl Drop for OwnedChannel {
    fn drop(&mut self) {
        let was_blocking = self.session.is_blocking();
        self.session.set_timeout(DISPOSE_TIMEOUT_MS);
        self.session.set_blocking(true);
        drop(self.channel.take());
        self.session.set_blocking(was_blocking);
        self.session.set_timeout(0);
    }
}

/// Ends a session politely and frees it in blocking mode (see [`OwnedChannel`]).
pub fn dispose_session(session: &Session) {
    session.set_timeout(DISPOSE_TIMEOUT_MS);
    session.set_blocking(true);
    let _ = session.disconnect(None, "vmctld closing session", None);
}

/// How much of a command's stderr is kept for error messages.
const STDERR_TAIL_BYTES: usize = 2048;

/// The last bytes a command wrote to stderr.
#[derive(Debug, Default)]
pub struct StderrTail {
    buf: Vec<u8>,
}

impl StderrTail {
    /// Appends, keeping only the last [`STDERR_TAIL_BYTES`].
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        if self.buf.len() > STDERR_TAIL_BYTES {
            let cut = self.buf.len() - STDERR_TAIL_BYTES;
            self.buf.drain(..cut);
        }
    }

    /// The tail as text, trimmed.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).trim().to_owned()
    }
}

/// How a command ended, read after the channel closed (before that libssh2 reports 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The exit status. libssh2 also reads 0 when no status arrived; a signal is then set, or
    /// the caller must not read 0 as success on its own.
    pub status: i32,
    /// The signal that killed it, without `SIG`.
    pub signal: Option<String>,
}

impl Exit {
    /// `status 127` or `signal KILL`, for messages.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.signal {
            Some(sig) => format!("killed by signal {sig}"),
            None => format!("exit status {}", self.status),
        }
    }
}

/// What one [`ExecChannel::pump`] read.
#[derive(Debug, Default)]
pub struct Pumped {
    /// Complete stdout lines.
    pub lines: Vec<Line>,
    /// stdout reached end of file.
    pub eof: bool,
}

/// A command running on the droplet.
pub struct ExecChannel {
    /// The libssh2 channel (non-blocking, like its session).
    pub channel: OwnedChannel,
    lines: LineSplitter,
    /// The command's stderr tail.
    pub stderr: StderrTail,
}

impl ExecChannel {
    /// Opens a session channel and runs `command` on it.
    ///
    /// # Errors
    /// [`FleetError::Handshake`] when the channel or exec is refused, or the driver's
    /// timeout / stop.
    pub fn exec(
        drv: &mut Driver<'_>,
        conn: &Conn,
        target: &NodeTarget,
        command: &str,
    ) -> Result<Self, FleetError> {
        let node = &target.name;
        let channel = drv.step(node, "channel open", || conn.session.channel_session())?;
        let mut channel = OwnedChannel::new(&conn.session, channel);
        drv.step(node, "exec", || channel.exec(command))?;
        Ok(Self {
            channel,
            lines: LineSplitter::default(),
            stderr: StderrTail::default(),
        })
    }

    /// Reads whatever stdout and stderr hold now, without waiting.
    ///
    /// # Errors
    /// A read failed: the SSH session itself is gone.
    pub fn pump(&mut self) -> io::Result<Pumped> {
        let mut out = Pumped::default();
        let mut buf = [0u8; 16 * 1024];
        // Reading either stream makes libssh2 drain the socket, which can queue packets for the
        // other stream (or the EOF) in libssh2's own buffer. The socket then shows nothing new,
        // and a poll on it would sleep until the deadline with data already here. So keep
        // reading both until a whole pass makes no progress.
        loop {
            let mut progressed = false;
            while let Some(n) = read_now(&mut *self.channel, &mut buf)? {
                if n == 0 {
                    break;
                }
                progressed = true;
                out.lines.extend(self.lines.feed(&buf[..n]));
            }
            let mut stderr = self.channel.stderr();
            while let Some(n) = read_now(&mut stderr, &mut buf)? {
                if n == 0 {
                    break;
                }
                progressed = true;
                debug!(stderr = %String::from_utf8_lossy(&buf[..n]).trim_end(), "Agent wrote to stderr.");
                self.stderr.push(&buf[..n]);
            }
            if !progressed {
                break;
            }
        }
        out.eof = self.channel.eof();
        Ok(out)
    }

    /// Closes our side, waits for the command to end, and reads how it ended.
    ///
    /// # Errors
    /// [`FleetError::Handshake`] on a channel error, or the driver's timeout / stop.
    pub fn finish(
        mut self,
        drv: &mut Driver<'_>,
        node: &str,
    ) -> Result<(Exit, StderrTail), FleetError> {
        let ch = &mut self.channel;
        drv.step(node, "send eof", || ch.send_eof())?;
        // Drain output until the remote side ends it, so its exit status can arrive.
        loop {
            let pumped = self.pump().map_err(|e| FleetError::SessionClosed {
                node: node.to_owned(),
                reason: e.to_string(),
            })?;
            if pumped.eof {
                break;
            }
            drv.wait_readable()
                .map_err(|b| drv.io_failed(node, "wait for exit", b))?;
        }
        let ch = &mut self.channel;
        drv.step(node, "close", || ch.close())?;
        drv.step(node, "wait close", || ch.wait_close())?;
        let signal = ch.exit_signal().ok().and_then(|s| s.exit_signal);
        let status = ch.exit_status().unwrap_or(-1);
        Ok((Exit { status, signal }, self.stderr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_the_end() {
        let mut t = StderrTail::default();
        t.push(&vec![b'a'; STDERR_TAIL_BYTES]);
        t.push(b"sh: 1: /x/vmctl-agent: not found\n");
        assert!(t.text().ends_with("not found"));
        assert!(t.text().len() <= STDERR_TAIL_BYTES);
    }
}
