//! The process backend, for the testbed: a service is running when the pid in
//! `<root>/run/vmctl/services/<name>.pid` names a live, non-zombie process. Starting and
//! stopping live in [`super::process_control`].

use super::process_control::{self, Paths};
use super::{ServiceBackend, ServiceError};
use crate::root::Root;
use std::io;
use std::path::{Path, PathBuf};
use vmctl_protocol::agent::ActiveState;
use vmctl_protocol::release_ops::ServiceAction;

/// Where pid files live, relative to the root.
pub const PID_DIR: &str = "run/vmctl/services";

/// Reads pid files under one root.
#[derive(Debug, Clone)]
pub struct ProcessBackend {
    pid_dir: PathBuf,
    proc_dir: PathBuf,
    paths: Paths,
}

impl ProcessBackend {
    /// The backend for droplet `root`. `/proc` is the host's: testbed droplets share its kernel.
    pub fn new(root: &Root) -> Self {
        let paths = Paths {
            pid_dir: root.join(PID_DIR),
            log_dir: root.join("var/log"),
            live: root.join("home/mastodon/live"),
            proc_dir: PathBuf::from("/proc"),
        };
        ProcessBackend {
            pid_dir: paths.pid_dir.clone(),
            proc_dir: paths.proc_dir.clone(),
            paths,
        }
    }
}

impl ServiceBackend for ProcessBackend {
    fn state(&self, name: &str) -> ActiveState {
        // Names are fixed unit names; anything path-like is refused rather than looked up.
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return ActiveState::Unknown;
        }
        let pid_file = self.pid_dir.join(format!("{name}.pid"));
        let contents = match std::fs::read_to_string(&pid_file) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return ActiveState::Inactive,
            Err(_) => return ActiveState::Unknown,
        };
        let Some(pid) = parse_pid(&contents) else {
            return ActiveState::Unknown;
        };
        match proc_state(&self.proc_dir, pid) {
            Ok(Some(state)) => state_from_proc(state),
            Ok(None) => ActiveState::Failed,
            Err(_) => ActiveState::Unknown,
        }
    }

    fn act(
        &self,
        name: &str,
        action: ServiceAction,
        queues: &[String],
    ) -> Result<(), ServiceError> {
        match action {
            ServiceAction::Start => process_control::start(&self.paths, name, queues),
            ServiceAction::Stop => process_control::stop(&self.paths, name),
            ServiceAction::Restart => {
                process_control::stop(&self.paths, name)?;
                process_control::start(&self.paths, name, queues)
            }
            ServiceAction::Quiet => process_control::quiet(&self.paths, name),
        }
    }
}

/// A pid file's pid: one positive integer, surrounding whitespace allowed.
pub fn parse_pid(contents: &str) -> Option<u32> {
    contents
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|&p| p > 0 && i32::try_from(p).is_ok())
}

/// The state letter of `/proc/<pid>/stat`, or `None` when no such process exists.
fn proc_state(proc_dir: &Path, pid: u32) -> io::Result<Option<char>> {
    match std::fs::read_to_string(proc_dir.join(pid.to_string()).join("stat")) {
        Ok(stat) => Ok(parse_stat_state(&stat)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // The process exited between open and read.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The state letter in a `/proc/<pid>/stat` line. The command name in parentheses may itself
/// contain `)` and spaces, so the state is found after the *last* `)`.
pub fn parse_stat_state(stat: &str) -> Option<char> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// A process that exists but is a zombie (`Z`) or dead (`X`) is a service that exited.
pub fn state_from_proc(state: char) -> ActiveState {
    match state {
        'Z' | 'X' | 'x' => ActiveState::Failed,
        _ => ActiveState::Active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::process::{waitid, Pid, WaitId, WaitidOptions};
    use std::fs;

    fn backend_with(pids: &[(&str, String)]) -> (tempfile::TempDir, ProcessBackend) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let pid_dir = root.join(PID_DIR);
        fs::create_dir_all(&pid_dir).unwrap();
        for (name, contents) in pids {
            fs::write(pid_dir.join(format!("{name}.pid")), contents).unwrap();
        }
        (dir, ProcessBackend::new(&root))
    }

    /// A pid above the kernel's limit can never name a process.
    fn never_a_pid() -> u32 {
        let max = fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
        max.trim().parse::<u32>().unwrap() + 1
    }

    #[test]
    fn own_pid_is_active_absent_is_inactive_stale_is_failed() {
        let (_dir, b) = backend_with(&[
            ("mastodon-web", format!("{}\n", std::process::id())),
            ("mastodon-sidekiq", format!("{}\n", never_a_pid())),
        ]);
        assert_eq!(b.state("mastodon-web"), ActiveState::Active);
        assert_eq!(b.state("mastodon-streaming"), ActiveState::Inactive);
        assert_eq!(b.state("mastodon-sidekiq"), ActiveState::Failed);
    }

    #[test]
    fn a_garbled_pid_file_is_unknown() {
        let (_dir, b) = backend_with(&[("mastodon-web", "twelve".into()), ("x", "-4".into())]);
        assert_eq!(b.state("mastodon-web"), ActiveState::Unknown);
        assert_eq!(b.state("x"), ActiveState::Unknown);
    }

    #[test]
    fn path_like_names_are_not_looked_up() {
        let (_dir, b) = backend_with(&[]);
        assert_eq!(b.state("../../etc/passwd"), ActiveState::Unknown);
        assert_eq!(b.state(""), ActiveState::Unknown);
    }

    #[test]
    fn a_zombie_is_failed() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let raw = i32::try_from(child.id()).unwrap();
        // Wait for the exit without reaping, so the child is a zombie from here on.
        waitid(
            WaitId::Pid(Pid::from_raw(raw).unwrap()),
            WaitidOptions::EXITED | WaitidOptions::NOWAIT,
        )
        .unwrap();
        let (_dir, b) = backend_with(&[("mastodon-web", child.id().to_string())]);
        assert_eq!(b.state("mastodon-web"), ActiveState::Failed);
        child.wait().unwrap();
    }

    #[test]
    fn stat_lines_parse_even_with_odd_command_names() {
        assert_eq!(parse_stat_state("42 (puma) S 1 42"), Some('S'));
        assert_eq!(parse_stat_state("42 (a) b) Z 1 42"), Some('Z'));
        assert_eq!(parse_stat_state("garbage"), None);
        assert_eq!(state_from_proc('R'), ActiveState::Active);
        assert_eq!(state_from_proc('Z'), ActiveState::Failed);
    }

    #[test]
    fn pid_files_parse() {
        assert_eq!(parse_pid(" 123\n"), Some(123));
        assert_eq!(parse_pid("0"), None);
        assert_eq!(parse_pid("4294967295"), None);
        assert_eq!(parse_pid(""), None);
    }
}
