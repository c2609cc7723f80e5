//! Launches one droplet's sshd, waits until it is the process listening on the droplet's
//! address, and kills it with its whole process tree.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::address::SSH_PORT;
use super::error::TestbedError;
use super::listening::owns_listener;
use super::process_tree;

/// sshd re-executes itself for each connection, so it must be started by absolute path.
pub const SSHD_PATH: &str = "/usr/sbin/sshd";

/// The privilege-separation folder sshd insists on; Debian's package creates it only when
/// the system service starts.
const PRIVSEP_DIR: &str = "/run/sshd";

/// How long sshd gets to listen. It is ready in tens of milliseconds; the slack is for a
/// 2-core CI box starting 50 droplets while compiling.
pub const READY_DEADLINE: Duration = Duration::from_secs(5);

/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(10);

/// The PATH sshd runs with; sessions get sshd's own default PATH regardless.
const SSHD_ENV_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How many lines of sshd.log an error quotes.
const LOG_TAIL_LINES: usize = 20;

/// What a launch needs to know about the droplet.
#[derive(Debug, Clone)]
pub struct LaunchSpec<'a> {
    /// The droplet's name, for errors.
    pub name: &'a str,
    /// The address sshd listens on.
    pub address: Ipv4Addr,
    /// The droplet's `sshd_config`.
    pub config: &'a Path,
    /// Where sshd's stderr is appended.
    pub log: &'a Path,
    /// The droplet's environment marker (see `process_tree`).
    pub marker: &'a str,
}

/// Why a launch failed.
#[derive(Debug)]
pub enum LaunchError {
    /// Another process holds the address; the caller may try another one.
    AddressInUse,
    /// Anything else.
    Failed(TestbedError),
}

impl From<TestbedError> for LaunchError {
    fn from(error: TestbedError) -> Self {
        LaunchError::Failed(error)
    }
}

/// A running sshd we spawned. Dropping it kills its process tree.
#[derive(Debug)]
pub struct SshdProcess {
    child: Option<Child>,
    pid: u32,
    marker: String,
}

impl SshdProcess {
    /// The listening sshd's PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// SIGKILLs sshd and everything it started, reaps sshd, and returns the PIDs signalled.
    pub fn kill(mut self) -> Result<BTreeSet<i32>, TestbedError> {
        self.kill_in_place()
    }

    fn kill_in_place(&mut self) -> Result<BTreeSet<i32>, TestbedError> {
        let Some(mut child) = self.child.take() else {
            return Ok(BTreeSet::new());
        };
        // Until the child is reaped its PID cannot be reused, so the walk starts from ours.
        let root = i32::try_from(self.pid).unwrap_or(i32::MAX);
        let killed = process_tree::kill_tree(root, Some(&self.marker));
        // Reap even when a signal failed, so no zombie outlives the farm.
        if killed.is_err() {
            let _ = child.kill();
        }
        child.wait().map_err(|source| TestbedError::Reap {
            pid: self.pid,
            source,
        })?;
        killed
    }
}

impl Drop for SshdProcess {
    fn drop(&mut self) {
        if let Err(error) = self.kill_in_place() {
            tracing::warn!(pid = self.pid, %error, "Killing sshd on drop failed.");
        }
    }
}

/// Creates sshd's privilege-separation folder if the host lacks it.
pub fn ensure_privsep_dir() -> Result<(), TestbedError> {
    let dir = Path::new(PRIVSEP_DIR);
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|source| TestbedError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|source| {
        TestbedError::WriteFile {
            path: dir.to_path_buf(),
            source,
        }
    })
}

/// Starts sshd and waits until it listens on `spec.address:22`.
pub fn launch(spec: &LaunchSpec<'_>) -> Result<SshdProcess, LaunchError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(spec.log)
        .map_err(|source| TestbedError::WriteFile {
            path: spec.log.to_path_buf(),
            source,
        })?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let child = Command::new(SSHD_PATH)
        .args(["-D", "-e", "-f"])
        .arg(spec.config)
        .env_clear()
        .env("PATH", SSHD_ENV_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        // Its own group, so a Ctrl-C at the test's terminal does not race our teardown.
        .process_group(0)
        .spawn()
        .map_err(|source| TestbedError::SpawnSshd {
            name: spec.name.to_owned(),
            source,
        })?;
    let mut process = SshdProcess {
        pid: child.id(),
        child: Some(child),
        marker: spec.marker.to_owned(),
    };
    wait_ready(&mut process, spec, log_start)?;
    Ok(process)
}

/// Polls until our sshd owns the listener and accepts a connection, it exits, or the
/// deadline passes.
fn wait_ready(
    process: &mut SshdProcess,
    spec: &LaunchSpec<'_>,
    log_start: u64,
) -> Result<(), LaunchError> {
    let started = Instant::now();
    let socket = SocketAddrV4::new(spec.address, SSH_PORT);
    loop {
        let exited = match process.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some(format!("unknown status ({e})")),
            None => Some("no process".to_owned()),
        };
        if let Some(status) = exited {
            process.child = None;
            let new_log = read_log_from(spec.log, log_start);
            if is_bind_failure(&new_log) {
                return Err(LaunchError::AddressInUse);
            }
            return Err(LaunchError::Failed(TestbedError::SshdExited {
                name: spec.name.to_owned(),
                address: spec.address,
                status,
                log_tail: tail(&new_log, LOG_TAIL_LINES),
            }));
        }
        if owns_listener(process.pid, spec.address, SSH_PORT)
            && TcpStream::connect_timeout(&socket.into(), READY_POLL * 10).is_ok()
        {
            return Ok(());
        }
        if started.elapsed() >= READY_DEADLINE {
            let _ = process.kill_in_place();
            return Err(LaunchError::Failed(TestbedError::SshdNotReady {
                name: spec.name.to_owned(),
                address: spec.address,
                waited: started.elapsed(),
                log_tail: tail(&read_log_from(spec.log, log_start), LOG_TAIL_LINES),
            }));
        }
        std::thread::sleep(READY_POLL);
    }
}

/// True when sshd's log says it could not bind its address.
pub fn is_bind_failure(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("Cannot bind any address")
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What sshd appended to its log since `start`; empty if the log cannot be read.
fn read_log_from(path: &Path, start: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        if file.seek(SeekFrom::Start(start)).is_ok() {
            let mut bytes = Vec::new();
            if file.read_to_end(&mut bytes).is_ok() {
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
    }
    text
}

/// The absolute form of `path`, since sshd resolves relative paths against `/`.
pub fn absolute(path: &Path) -> Result<PathBuf, TestbedError> {
    std::path::absolute(path).map_err(|source| TestbedError::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_failure_is_recognised() {
        assert!(is_bind_failure(
            "Bind to port 22 on 127.5.5.5 failed: Address already in use.\nCannot bind any address.\n"
        ));
        assert!(!is_bind_failure("Missing privilege separation directory"));
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
