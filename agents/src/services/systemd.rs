//! The systemd backend: `systemctl is-active <unit>` with a fixed argv (no shell) and a deadline.

use super::ServiceBackend;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use vmctl_protocol::agent::ActiveState;

/// How long `systemctl is-active` may take. It answers in milliseconds; a stuck D-Bus is the only
/// way to exceed this, and then the facts call should still come back well inside the
/// controller's own per-call deadline.
pub const IS_ACTIVE_DEADLINE: Duration = Duration::from_secs(5);

/// Asks systemd through `systemctl`.
#[derive(Debug, Clone)]
pub struct Systemd {
    program: String,
    deadline: Duration,
}

impl Default for Systemd {
    fn default() -> Self {
        Systemd {
            program: "systemctl".into(),
            deadline: IS_ACTIVE_DEADLINE,
        }
    }
}

impl ServiceBackend for Systemd {
    fn state(&self, name: &str) -> ActiveState {
        match run_is_active(&self.program, name, self.deadline) {
            Some(stdout) => parse_is_active(&stdout),
            None => ActiveState::Unknown,
        }
    }
}

/// `systemctl is-active`'s first output line mapped to a state. Transitional states
/// (`activating`, `reloading`, ...) are neither up nor down yet, so they are `Unknown`.
pub fn parse_is_active(stdout: &str) -> ActiveState {
    match stdout.lines().next().unwrap_or("").trim() {
        "active" => ActiveState::Active,
        "inactive" => ActiveState::Inactive,
        "failed" => ActiveState::Failed,
        _ => ActiveState::Unknown,
    }
}

/// `program is-active -- unit`: a fixed argv, no shell, so a unit name is never interpreted.
fn run_is_active(program: &str, unit: &str, deadline: Duration) -> Option<String> {
    let mut cmd = Command::new(program);
    cmd.args(["is-active", "--", unit]);
    stdout_within(cmd, deadline)
}

/// Runs `cmd` and returns the start of its stdout, or `None` when it could not be run or missed
/// `deadline` (then it is killed and reaped). The exit status is ignored on purpose: `is-active`
/// exits non-zero for every state but `active`, and stdout already says which.
fn stdout_within(mut cmd: Command, deadline: Duration) -> Option<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let (tx, rx) = mpsc::channel();
    // A reader thread turns the blocking pipe read into something with a deadline. It ends when
    // the child closes stdout, which killing it guarantees.
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let res = stdout.take(4096).read_to_end(&mut out).map(|_| out);
        let _ = tx.send(res);
    });
    let got = rx.recv_timeout(deadline);
    if !matches!(got, Ok(Ok(_))) {
        let _ = child.kill();
    }
    let _ = child.wait();
    match got {
        Ok(Ok(out)) => Some(String::from_utf8_lossy(&out).into_owned()),
        Ok(Err(_)) | Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_active_output_maps_to_states() {
        assert_eq!(parse_is_active("active\n"), ActiveState::Active);
        assert_eq!(parse_is_active("inactive\n"), ActiveState::Inactive);
        assert_eq!(parse_is_active("failed\n"), ActiveState::Failed);
        assert_eq!(parse_is_active("activating\n"), ActiveState::Unknown);
        assert_eq!(parse_is_active(""), ActiveState::Unknown);
    }

    #[test]
    fn a_missing_systemctl_is_unknown() {
        let b = Systemd {
            program: "/nonexistent/systemctl".into(),
            deadline: IS_ACTIVE_DEADLINE,
        };
        assert_eq!(b.state("mastodon-web"), ActiveState::Unknown);
    }

    #[test]
    fn the_unit_name_reaches_the_program_without_a_shell() {
        let out = run_is_active("echo", "mastodon-web; rm -rf /", IS_ACTIVE_DEADLINE).unwrap();
        assert_eq!(out, "is-active -- mastodon-web; rm -rf /\n");
    }

    #[test]
    fn a_hung_program_is_killed_at_the_deadline() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        assert_eq!(stdout_within(cmd, Duration::from_millis(50)), None);
    }
}
