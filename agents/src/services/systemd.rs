//! The systemd backend: `systemctl is-active|start|stop|restart <unit>` and
//! `systemctl kill -s TSTP <unit>`, each a fixed argv (no shell) with a deadline.

use super::{units, ServiceBackend, ServiceError};
use crate::run::{run, Cmd};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use vmctl_protocol::agent::ActiveState;
use vmctl_protocol::release_ops::ServiceAction;

/// How long `systemctl is-active` may take. It answers in milliseconds; a stuck D-Bus is the only
/// way to exceed this, and then the facts call should still come back well inside the
/// controller's own per-call deadline.
pub const IS_ACTIVE_DEADLINE: Duration = Duration::from_secs(5);

/// How long `systemctl start|stop|restart` may take: it waits for the unit's own start or stop,
/// which systemd bounds at 90 s by default (`DefaultTimeoutStartSec`), plus slack.
pub const ACTION_DEADLINE: Duration = Duration::from_secs(120);

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

    /// Queues are the unit file's business on systemd droplets, so they are only checked.
    fn act(
        &self,
        name: &str,
        action: ServiceAction,
        queues: &[String],
    ) -> Result<(), ServiceError> {
        let unit = units::check_name(name)?;
        units::check_queues(name, queues)?;
        let (verb, cmd) = action_command(&self.program, unit, action);
        run(&cmd, ACTION_DEADLINE)
            .map(|_| ())
            .map_err(|source| ServiceError::Systemctl {
                name: unit.to_string(),
                action: verb,
                source,
            })
    }
}

/// The systemctl verb and command for `action` on `unit`. Quiet is SIGTSTP to the unit's
/// processes, which Sidekiq reads as "finish running jobs, take no new ones".
pub fn action_command(program: &str, unit: &str, action: ServiceAction) -> (&'static str, Cmd) {
    let (verb, args): (&'static str, Vec<&str>) = match action {
        ServiceAction::Start => ("start", vec!["start", "--", unit]),
        ServiceAction::Stop => ("stop", vec!["stop", "--", unit]),
        ServiceAction::Restart => ("restart", vec!["restart", "--", unit]),
        ServiceAction::Quiet => ("kill", vec!["kill", "-s", "TSTP", "--", unit]),
    };
    (verb, Cmd::new(program, args))
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
    fn actions_map_to_systemctl_verbs() {
        let shown = |a| {
            action_command("systemctl", "mastodon-sidekiq", a)
                .1
                .display()
        };
        assert_eq!(
            shown(ServiceAction::Start),
            "systemctl start -- mastodon-sidekiq"
        );
        assert_eq!(
            shown(ServiceAction::Restart),
            "systemctl restart -- mastodon-sidekiq"
        );
        assert_eq!(
            shown(ServiceAction::Stop),
            "systemctl stop -- mastodon-sidekiq"
        );
        assert_eq!(
            shown(ServiceAction::Quiet),
            "systemctl kill -s TSTP -- mastodon-sidekiq"
        );
    }

    #[test]
    fn a_failing_systemctl_is_an_error_naming_the_unit() {
        let b = Systemd {
            program: "false".into(),
            deadline: IS_ACTIVE_DEADLINE,
        };
        let err = b
            .act("mastodon-web", ServiceAction::Restart, &[])
            .unwrap_err();
        assert_eq!(err.to_string(), "systemctl restart mastodon-web");
        assert!(b.act("cron", ServiceAction::Start, &[]).is_err());
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
