//! Helpers shared by the testbed's integration tests: the system ssh client, and waiting on
//! a condition with a deadline.

#![allow(dead_code)]

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vmctl_testbed::Droplet;

/// Polls `condition` every 20 ms until it holds, or panics naming `what` after `deadline`.
pub fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An `ssh` command to run `remote` on `droplet` as root with `key`, checking the host
/// key against `known_host_key` when given (else accepting any).
pub fn ssh(key: &Path, droplet: &Droplet, known_host_key: Option<&str>, remote: &str) -> Command {
    let known_hosts = match known_host_key {
        Some(host_key) => {
            let file = droplet.dir.join(format!("known_hosts.{}", rand_suffix()));
            let line = format!("{} {host_key}\n", droplet.address);
            if host_key == droplet.host_key_public {
                assert_eq!(line.trim(), droplet.known_hosts_line());
            }
            fs::write(&file, line).unwrap();
            file
        }
        None => "/dev/null".into(),
    };
    let strict = if known_host_key.is_some() {
        "yes"
    } else {
        "no"
    };
    let mut command = Command::new("ssh");
    command
        .args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"])
        .arg("-o")
        .arg(format!("StrictHostKeyChecking={strict}"))
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .arg(format!("root@{}", droplet.address))
        .arg(remote)
        .stdin(Stdio::null());
    command
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs `remote` over ssh and returns whether it exited 0; prints stderr on failure.
pub fn ssh_ok(key: &Path, droplet: &Droplet, known_host_key: Option<&str>, remote: &str) -> bool {
    let output = ssh(key, droplet, known_host_key, remote).output().unwrap();
    if !output.status.success() {
        eprintln!(
            "ssh root@{} {remote:?}: {} {}",
            droplet.address,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.status.success()
}

/// True when a TCP connection to the droplet's sshd succeeds.
pub fn accepts_tcp(droplet: &Droplet) -> bool {
    TcpStream::connect_timeout(&droplet.socket_addr().into(), Duration::from_secs(1)).is_ok()
}

/// The command name of a live process.
pub fn comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}
