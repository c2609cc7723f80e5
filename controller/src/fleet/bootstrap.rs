//! Getting the right agent running on a droplet: probe it with `hello`, [`decide`] whether it
//! is ready, needs an upload, or must be refused, and carry out the upload.
//!
//! The decision is pure and unit-tested. The executor uploads with scp to a temporary name
//! next to the agent, then runs the uploaded binary's `self-install`, which renames it over the
//! agent (same folder, so the rename is atomic). scp cannot create folders: a missing
//! `<root>/var/lib/vmctl/bin` is reported as an upload error (provisioning creates it).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};
use tracing::info;
use vmctl_protocol::agent::{AgentError, ErrorCode, Hello, Op, Outcome, PROTOCOL_VERSION};

use super::agent_binary::AgentBinary;
use super::channel::{ExecChannel, Exit, OwnedChannel, StderrTail};
use super::config::{self_install_command, NodeTarget};
use super::connect::Conn;
use super::error::FleetError;
use super::frames::{encode_request, parse_response, Line};
use super::nonblocking::{read_now, Driver};

/// How the agent answered (or did not answer) `hello` on a fresh channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// A well-formed hello.
    Answered(Hello),
    /// An error reply (an older agent may not know our protocol version or op).
    Rejected(AgentError),
    /// A reply that is not a hello.
    Unreadable(String),
    /// The command ended before answering: the binary is missing, unrunnable or crashed.
    Exited {
        /// How it ended.
        exit: Exit,
        /// Its stderr tail (the shell's "not found" lands here).
        stderr_tail: String,
    },
}

/// Whether this probe is the first of a connect, or the one after an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Nothing uploaded yet: a wrong or missing agent is replaced.
    First,
    /// We just installed our binary: anything but a match is refused, so we never loop.
    AfterUpload,
}

/// Why the agent is (re)uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadReason {
    /// No agent binary at the path.
    Missing,
    /// The binary is there but cannot run (permissions, wrong format).
    Unrunnable(String),
    /// Another build runs there.
    HashDiffers {
        /// The agent's hash.
        agent: String,
    },
    /// It speaks another protocol version.
    ProtocolDiffers {
        /// The agent's version.
        agent: u32,
    },
    /// It could not understand our hello or answered in another shape: an older agent.
    Incompatible(String),
}

/// What to do after a probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Bootstrap {
    /// The agent matches; serve calls.
    Ready(Hello),
    /// Replace the agent.
    Upload(UploadReason),
    /// Give up on this try (the session retries with backoff).
    Refuse(FleetError),
}

/// Decides what a probe means. Pure.
#[must_use]
pub fn decide(node: &str, probe: Probe, ours_sha256: &str, round: Round) -> Bootstrap {
    let upload_or = |reason: UploadReason, refuse: FleetError| match round {
        Round::First => Bootstrap::Upload(reason),
        Round::AfterUpload => Bootstrap::Refuse(refuse),
    };
    let mismatch = |agent: String| FleetError::ProtocolMismatch {
        node: node.to_owned(),
        agent,
        ours: format!("protocol {PROTOCOL_VERSION}, sha256 {ours_sha256}"),
    };
    match probe {
        Probe::Answered(hello) => {
            let theirs = format!(
                "protocol {}, sha256 {}",
                hello.protocol_version, hello.binary_sha256
            );
            if hello.protocol_version != PROTOCOL_VERSION {
                upload_or(
                    UploadReason::ProtocolDiffers {
                        agent: hello.protocol_version,
                    },
                    mismatch(theirs),
                )
            } else if hello.binary_sha256 != ours_sha256 {
                upload_or(
                    UploadReason::HashDiffers {
                        agent: hello.binary_sha256.clone(),
                    },
                    mismatch(theirs),
                )
            } else {
                Bootstrap::Ready(hello)
            }
        }
        Probe::Rejected(error) => match error.code {
            ErrorCode::ProtocolMismatch | ErrorCode::UnknownOp | ErrorCode::BadFrame => upload_or(
                UploadReason::Incompatible(error.to_string()),
                FleetError::Agent {
                    node: node.to_owned(),
                    error,
                },
            ),
            ErrorCode::FrameTooLarge | ErrorCode::OpFailed => {
                Bootstrap::Refuse(FleetError::Agent {
                    node: node.to_owned(),
                    error,
                })
            }
        },
        Probe::Unreadable(reason) => upload_or(
            UploadReason::Incompatible(reason.clone()),
            FleetError::BadReply {
                node: node.to_owned(),
                reason,
            },
        ),
        Probe::Exited { exit, stderr_tail } => {
            let missing = exit.signal.is_none()
                && (exit.status == 127
                    || stderr_tail.contains("No such file")
                    || stderr_tail.contains("not found"));
            // 126 is the shell's "found but cannot execute".
            let unrunnable = exit.signal.is_none() && exit.status == 126;
            let start_failed = FleetError::AgentStart {
                node: node.to_owned(),
                stderr_tail: format!("{}; stderr: {stderr_tail}", exit.describe()),
            };
            if missing {
                upload_or(
                    UploadReason::Missing,
                    FleetError::AgentMissing {
                        node: node.to_owned(),
                    },
                )
            } else if unrunnable {
                upload_or(UploadReason::Unrunnable(stderr_tail), start_failed)
            } else {
                Bootstrap::Refuse(start_failed)
            }
        }
    }
}

// === executor ===

/// Sends `hello` on a freshly started agent channel and waits for its answer or its exit.
///
/// # Errors
/// The session failed, the driver's deadline passed, or the fleet stopped.
pub fn probe_hello(
    drv: &mut Driver<'_>,
    chan: ExecChannel,
    node: &str,
    id: u64,
) -> Result<(Probe, Option<ExecChannel>), FleetError> {
    let mut chan = chan;
    // A write to an agent that already exited fails; its exit is then read below.
    let _ = drv.write_all(&mut *chan.channel, &encode_request(id, &Op::Hello));
    loop {
        let pumped = chan.pump().map_err(|e| FleetError::SessionClosed {
            node: node.to_owned(),
            reason: e.to_string(),
        })?;
        for line in pumped.lines {
            let Line::Frame(frame) = line else { continue };
            let resp = match parse_response(&frame) {
                Ok(r) => r,
                Err(reason) => return Ok((Probe::Unreadable(reason), Some(chan))),
            };
            if resp.id.is_some_and(|got| got != id) {
                continue;
            }
            let probe = match resp.result {
                Outcome::Ok(v) => match serde_json::from_value::<Hello>(v) {
                    Ok(h) => Probe::Answered(h),
                    Err(e) => Probe::Unreadable(format!("hello reply: {e}")),
                },
                Outcome::Err(e) => Probe::Rejected(e),
            };
            return Ok((probe, Some(chan)));
        }
        if pumped.eof {
            let (exit, stderr) = chan.finish(drv, node)?;
            return Ok((
                Probe::Exited {
                    exit,
                    stderr_tail: stderr.text(),
                },
                None,
            ));
        }
        drv.wait_readable()
            .map_err(|b| drv.io_failed(node, "hello", b))?;
    }
}

/// Uploads `agent` to a temporary path and installs it over the agent.
///
/// # Errors
/// [`FleetError::Upload`] naming what failed (scp refused, short write, install failed), or
/// the driver's timeout / stop.
pub fn upload(
    drv: &mut Driver<'_>,
    conn: &Conn,
    target: &NodeTarget,
    agent: &AgentBinary,
    random: u64,
) -> Result<(), FleetError> {
    let node = &target.name;
    let failed = |reason: String| FleetError::Upload {
        node: node.clone(),
        reason,
    };
    let tmp = target.upload_path(random);
    let mut file = File::open(agent.path())
        .map_err(|e| failed(format!("opening local {}: {e}", agent.path().display())))?;
    let size = file
        .metadata()
        .map_err(|e| failed(format!("stat local {}: {e}", agent.path().display())))?
        .len();
    let mode = 0o755;
    let mut scp = match drv.ssh(|| conn.session.scp_send(Path::new(&tmp), mode, size, None)) {
        Ok(ch) => OwnedChannel::new(&conn.session, ch),
        Err(super::nonblocking::Blocked::Failed(e)) => {
            return Err(failed(format!(
                "scp to {tmp} refused: {e} (is {} a writable directory?)",
                target.agent_dir()
            )))
        }
        Err(b) => return Err(drv.ssh_failed(node, "scp", b)),
    };

    // Stream the file and hash what was sent: if it changed since it was hashed, the droplet
    // would get a binary that never matches, so stop here instead.
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut sent = 0u64;
    while sent < size {
        let want = usize::try_from((size - sent).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = file
            .read(&mut buf[..want])
            .map_err(|e| failed(format!("reading local {}: {e}", agent.path().display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        drv.write_all(&mut *scp, &buf[..n]).map_err(|b| {
            failed(format!(
                "writing {tmp}: {}",
                drv.io_failed(node, "scp write", b)
            ))
        })?;
        sent += n as u64;
    }
    let sha = hex::encode(hasher.finalize());
    if sent != size || sha != agent.sha256() {
        return Err(failed(format!(
            "local {} changed while uploading (refresh the agent binary)",
            agent.path().display()
        )));
    }
    // The scp protocol ends a file with a zero byte; libssh2 leaves it to us, and without it
    // the remote scp reports a lost connection and exits 1.
    drv.write_all(&mut *scp, &[0]).map_err(|b| {
        failed(format!(
            "writing {tmp}: {}",
            drv.io_failed(node, "scp write", b)
        ))
    })?;
    drv.step(node, "scp eof", || scp.send_eof())?;
    drv.step(node, "scp wait eof", || scp.wait_eof())?;
    // What scp said (errors come as text on stdout and stderr), for the error message.
    let mut said = StderrTail::default();
    let mut buf = [0u8; 1024];
    while let Ok(Some(n @ 1..)) = read_now(&mut *scp, &mut buf) {
        said.push(&buf[..n]);
    }
    while let Ok(Some(n @ 1..)) = read_now(&mut scp.stderr(), &mut buf) {
        said.push(&buf[..n]);
    }
    drv.step(node, "scp close", || scp.close())?;
    drv.step(node, "scp wait close", || scp.wait_close())?;
    let scp_exit = Exit {
        status: scp.exit_status().unwrap_or(-1),
        signal: scp.exit_signal().ok().and_then(|s| s.exit_signal),
    };
    if scp_exit.status != 0 || scp_exit.signal.is_some() {
        let said = said.text().replace(['\x01', '\x02', '\0'], "");
        return Err(failed(format!(
            "scp to {tmp} ended with {}: {said}",
            scp_exit.describe()
        )));
    }
    drop(scp);

    let install = ExecChannel::exec(
        drv,
        conn,
        target,
        &self_install_command(&tmp, &target.agent_path()),
    )?;
    let (exit, stderr) = install.finish(drv, node)?;
    // A 0 that never arrived also reads 0; the hello after this checks the hash, which is
    // the real proof that the install worked.
    if exit.status != 0 || exit.signal.is_some() {
        return Err(failed(install_failure(&tmp, &exit, &stderr)));
    }
    info!(bytes = size, sha256 = %sha, "Installed agent binary.");
    Ok(())
}

fn install_failure(tmp: &str, exit: &Exit, stderr: &StderrTail) -> String {
    format!(
        "self-install of {tmp} ended with {}: {}",
        exit.describe(),
        stderr.text()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "aa";

    fn hello(sha: &str, protocol: u32) -> Probe {
        Probe::Answered(Hello {
            agent_version: "0.1.0".into(),
            binary_sha256: sha.into(),
            protocol_version: protocol,
        })
    }

    fn exited(status: i32, stderr: &str) -> Probe {
        Probe::Exited {
            exit: Exit {
                status,
                signal: None,
            },
            stderr_tail: stderr.into(),
        }
    }

    #[test]
    fn our_binary_and_protocol_is_ready() {
        assert!(matches!(
            decide("n", hello(OURS, PROTOCOL_VERSION), OURS, Round::First),
            Bootstrap::Ready(_)
        ));
        assert!(matches!(
            decide("n", hello(OURS, PROTOCOL_VERSION), OURS, Round::AfterUpload),
            Bootstrap::Ready(_)
        ));
    }

    #[test]
    fn another_build_is_replaced_once_then_refused() {
        assert_eq!(
            decide("n", hello("bb", PROTOCOL_VERSION), OURS, Round::First),
            Bootstrap::Upload(UploadReason::HashDiffers { agent: "bb".into() })
        );
        let Bootstrap::Refuse(e) =
            decide("n", hello("bb", PROTOCOL_VERSION), OURS, Round::AfterUpload)
        else {
            panic!("expected refuse")
        };
        assert_eq!(e.kind(), "protocol_mismatch");
    }

    #[test]
    fn another_protocol_is_replaced() {
        assert_eq!(
            decide("n", hello(OURS, PROTOCOL_VERSION + 1), OURS, Round::First),
            Bootstrap::Upload(UploadReason::ProtocolDiffers {
                agent: PROTOCOL_VERSION + 1
            })
        );
    }

    #[test]
    fn a_missing_binary_is_uploaded_and_still_missing_is_refused() {
        for probe in [
            exited(127, "sh: 1: /r/var/lib/vmctl/bin/vmctl-agent: not found"),
            exited(127, ""),
            exited(1, "bash: /x: No such file or directory"),
        ] {
            assert_eq!(
                decide("n", probe.clone(), OURS, Round::First),
                Bootstrap::Upload(UploadReason::Missing)
            );
            let Bootstrap::Refuse(e) = decide("n", probe, OURS, Round::AfterUpload) else {
                panic!()
            };
            assert_eq!(e.kind(), "agent_missing");
        }
    }

    #[test]
    fn an_unrunnable_binary_is_replaced() {
        assert!(matches!(
            decide("n", exited(126, "Permission denied"), OURS, Round::First),
            Bootstrap::Upload(UploadReason::Unrunnable(_))
        ));
    }

    #[test]
    fn an_agent_that_crashes_on_start_is_refused_with_its_stderr() {
        let Bootstrap::Refuse(e) =
            decide("n", exited(2, "error: root /r missing"), OURS, Round::First)
        else {
            panic!()
        };
        assert_eq!(e.kind(), "agent_start");
        assert!(e.to_string().contains("root /r missing"));
        let killed = Probe::Exited {
            exit: Exit {
                status: 0,
                signal: Some("KILL".into()),
            },
            stderr_tail: String::new(),
        };
        assert!(matches!(
            decide("n", killed, OURS, Round::First),
            Bootstrap::Refuse(_)
        ));
    }

    #[test]
    fn an_older_agent_that_rejects_our_hello_is_replaced() {
        let rejected = Probe::Rejected(AgentError {
            code: ErrorCode::ProtocolMismatch,
            message: "v2".into(),
        });
        assert!(matches!(
            decide("n", rejected.clone(), OURS, Round::First),
            Bootstrap::Upload(_)
        ));
        assert!(matches!(
            decide("n", rejected, OURS, Round::AfterUpload),
            Bootstrap::Refuse(_)
        ));
        let failed = Probe::Rejected(AgentError {
            code: ErrorCode::OpFailed,
            message: "x".into(),
        });
        assert!(matches!(
            decide("n", failed, OURS, Round::First),
            Bootstrap::Refuse(_)
        ));
    }
}
