//! Starting, stopping and signalling services for the process backend (the testbed).
//!
//! A service runs detached in its own process group, from `home/mastodon/live`, with output
//! appended to `var/log/<name>.log`. Its pid goes to `run/vmctl/services/<name>.pid` and its
//! kernel start time to `<name>.start`, so a stop never signals a process that merely reused the
//! pid after the service died.

use super::error::ServiceError;
use super::units;
use crate::ops::release::durable;
use crate::run::Cmd;
use rustix::process::{kill_process, kill_process_group, waitpid, Pid, Signal, WaitOptions};
use std::fs::OpenOptions;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a service gets to exit after SIGTERM before SIGKILL (systemd's default is 90 s;
/// the brief for the testbed asks for 10).
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long to wait for the kernel to finish a SIGKILLed process.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How often a stop checks whether the process is gone.
const EXIT_POLL: Duration = Duration::from_millis(25);

/// Files and folders one droplet's services use.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `run/vmctl/services`.
    pub pid_dir: PathBuf,
    /// `var/log`.
    pub log_dir: PathBuf,
    /// `home/mastodon/live`.
    pub live: PathBuf,
    /// `/proc` (the host's).
    pub proc_dir: PathBuf,
}

impl Paths {
    fn pid_file(&self, name: &str) -> PathBuf {
        self.pid_dir.join(format!("{name}.pid"))
    }

    fn start_file(&self, name: &str) -> PathBuf {
        self.pid_dir.join(format!("{name}.start"))
    }
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The state letter.
    pub state: char,
    /// The process group id.
    pub pgrp: u32,
    /// Start time in clock ticks since boot: with the pid, it names one process for good.
    pub start_ticks: u64,
}

/// Parses a `/proc/<pid>/stat` line. Fields are counted after the last `)`, since the command
/// name may hold spaces and parentheses. Pure.
pub fn parse_stat(stat: &str) -> Option<Stat> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0]; field 5 (pgrp) is [2]; field 22 (starttime) is [19].
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

fn read_stat(proc_dir: &Path, pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(proc_dir.join(pid.to_string()).join("stat")).ok()?)
}

/// Starts `name` unless it already runs.
///
/// # Errors
/// No live release, unusable log or pid files, or a failed spawn.
pub fn start(paths: &Paths, name: &str, queues: &[String]) -> Result<(), ServiceError> {
    let cmd = units::command(name, queues)?;
    spawn_service(paths, name, &cmd)
}

/// Starts `cmd` as service `name` (in `live`, detached, logged, pid recorded) unless it already
/// runs.
///
/// # Errors
/// As [`start`].
pub fn spawn_service(paths: &Paths, name: &str, cmd: &Cmd) -> Result<(), ServiceError> {
    if running(paths, name)?.is_some() {
        return Ok(());
    }
    if !paths.live.is_dir() {
        return Err(ServiceError::NoLiveRelease {
            name: name.to_string(),
            path: paths.live.clone(),
        });
    }
    let file_err = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| ServiceError::File { what, path, source }
    };
    std::fs::create_dir_all(&paths.log_dir).map_err(file_err("create", &paths.log_dir))?;
    let log_path = paths.log_dir.join(format!("{name}.log"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(file_err("open", &log_path))?;
    let log2 = log.try_clone().map_err(file_err("open", &log_path))?;
    let child = Command::new(&cmd.program)
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&paths.live)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Its own group: the agent's session ending does not take it down, and stop reaches the
        // workers it forks.
        .process_group(0)
        .spawn()
        .map_err(|source| ServiceError::Spawn {
            name: name.to_string(),
            source,
        })?;
    // The child is deliberately not waited on here; `stop` reaps it when it is ours.
    let pid = child.id();
    let start = read_stat(&paths.proc_dir, pid).map_or(0, |s| s.start_ticks);
    durable::write_file(&paths.start_file(name), format!("{start}\n").as_bytes())
        .map_err(file_err("write", &paths.start_file(name)))?;
    durable::write_file(&paths.pid_file(name), format!("{pid}\n").as_bytes())
        .map_err(file_err("write", &paths.pid_file(name)))
}

/// Stops `name`: SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL. Stopping a service that
/// does not run succeeds.
///
/// # Errors
/// A signal that fails for a reason other than "no such process", or a process that survives
/// SIGKILL.
pub fn stop(paths: &Paths, name: &str) -> Result<(), ServiceError> {
    units::check_name(name)?;
    if let Some((pid, stat)) = running(paths, name)? {
        let leader = stat.pgrp == pid;
        signal(name, pid, leader, Signal::Term, "TERM")?;
        // As systemd does: a stopped (quieted) process must run to act on its SIGTERM.
        signal(name, pid, leader, Signal::Cont, "CONT")?;
        if !wait_gone(paths, pid, STOP_GRACE) {
            signal(name, pid, leader, Signal::Kill, "KILL")?;
            if !wait_gone(paths, pid, KILL_WAIT) {
                return Err(ServiceError::StopTimeout {
                    name: name.to_string(),
                    pid,
                });
            }
        }
        if leader {
            // Workers that outlived their leader would keep its ports.
            let _ = signal(name, pid, true, Signal::Kill, "KILL");
        }
    }
    for f in [paths.pid_file(name), paths.start_file(name)] {
        match std::fs::remove_file(&f) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(ServiceError::File {
                    what: "remove",
                    path: f,
                    source: e,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// Sends SIGTSTP to `name`'s main process (Sidekiq: finish running jobs, take no new ones).
/// A service that is not running takes no jobs already, so quieting it succeeds at once.
///
/// # Errors
/// When the signal fails.
pub fn quiet(paths: &Paths, name: &str) -> Result<(), ServiceError> {
    units::check_name(name)?;
    match running(paths, name)? {
        Some((pid, _)) => signal(name, pid, false, Signal::Tstp, "TSTP"),
        None => Ok(()),
    }
}

/// The pid and stat of `name`'s process when it is alive and is the process that was started
/// (same start time). A dead child of ours is reaped on the way.
fn running(paths: &Paths, name: &str) -> Result<Option<(u32, Stat)>, ServiceError> {
    let pid_file = paths.pid_file(name);
    let text = match std::fs::read_to_string(&pid_file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ServiceError::File {
                what: "read",
                path: pid_file,
                source,
            })
        }
    };
    let Some(pid) = super::process::parse_pid(&text) else {
        return Ok(None);
    };
    reap(pid);
    let Some(stat) = read_stat(&paths.proc_dir, pid) else {
        return Ok(None);
    };
    let recorded = std::fs::read_to_string(paths.start_file(name))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let same = recorded.is_none_or(|r| r == 0 || r == stat.start_ticks);
    let alive = !matches!(stat.state, 'Z' | 'X' | 'x');
    Ok((same && alive).then_some((pid, stat)))
}

/// Collects `pid`'s exit status if it is an exited child of ours; anything else is a no-op.
fn reap(pid: u32) {
    if let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = waitpid(Some(p), WaitOptions::NOHANG);
    }
}

/// Waits up to `limit` for `pid` to be gone (or a zombie), reaping it if it is ours.
fn wait_gone(paths: &Paths, pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        reap(pid);
        let gone =
            read_stat(&paths.proc_dir, pid).is_none_or(|s| matches!(s.state, 'Z' | 'X' | 'x'));
        if gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(EXIT_POLL);
    }
}

fn signal(
    name: &str,
    pid: u32,
    group: bool,
    sig: Signal,
    sig_name: &'static str,
) -> Result<(), ServiceError> {
    let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return Ok(());
    };
    let sent = if group {
        kill_process_group(p, sig)
    } else {
        kill_process(p, sig)
    };
    match sent {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(ServiceError::Signal {
            name: name.to_string(),
            pid,
            signal: sig_name,
            source: e.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root::Root;
    use crate::services::process::ProcessBackend;
    use crate::services::ServiceBackend;
    use vmctl_protocol::agent::ActiveState;
    use vmctl_protocol::release_ops::ServiceAction;

    fn droplet() -> (tempfile::TempDir, Paths, ProcessBackend) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("home/mastodon/releases/v1.0.0")).unwrap();
        std::os::unix::fs::symlink("releases/v1.0.0", root.join("home/mastodon/live")).unwrap();
        let paths = Paths {
            pid_dir: root.join(super::super::process::PID_DIR),
            log_dir: root.join("var/log"),
            live: root.join("home/mastodon/live"),
            proc_dir: PathBuf::from("/proc"),
        };
        (dir, paths, ProcessBackend::new(&root))
    }

    #[test]
    fn a_started_service_runs_in_live_logs_and_stops_on_term() {
        let (_d, paths, backend) = droplet();
        let cmd = Cmd::new("sh", ["-c", "pwd; echo \"env=$RAILS_ENV\"; exec sleep 30"])
            .env("RAILS_ENV", "production");
        spawn_service(&paths, "mastodon-web", &cmd).unwrap();
        assert_eq!(backend.state("mastodon-web"), ActiveState::Active);
        let pid: u32 = std::fs::read_to_string(paths.pid_file("mastodon-web"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Starting again while it runs is a no-op: same pid.
        spawn_service(&paths, "mastodon-web", &cmd).unwrap();
        assert!(std::fs::read_to_string(paths.pid_file("mastodon-web"))
            .unwrap()
            .starts_with(&pid.to_string()));
        backend
            .act("mastodon-web", ServiceAction::Quiet, &[])
            .unwrap();
        backend
            .act("mastodon-web", ServiceAction::Stop, &[])
            .unwrap();
        assert_eq!(backend.state("mastodon-web"), ActiveState::Inactive);
        assert!(
            read_stat(&paths.proc_dir, pid).is_none(),
            "pid {pid} survived"
        );
        let log = std::fs::read_to_string(paths.log_dir.join("mastodon-web.log")).unwrap();
        assert!(
            log.ends_with("/home/mastodon/releases/v1.0.0\nenv=production\n"),
            "{log}"
        );
        // Stopping a stopped service succeeds.
        backend
            .act("mastodon-web", ServiceAction::Stop, &[])
            .unwrap();
    }

    #[test]
    fn a_reused_pid_is_never_signalled() {
        let (_d, paths, backend) = droplet();
        std::fs::create_dir_all(&paths.pid_dir).unwrap();
        // The pid file names this test process, but the recorded start time is another's.
        std::fs::write(
            paths.pid_file("mastodon-web"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        std::fs::write(paths.start_file("mastodon-web"), "1\n").unwrap();
        backend
            .act("mastodon-web", ServiceAction::Stop, &[])
            .unwrap();
        assert!(!paths.pid_file("mastodon-web").exists());
        backend
            .act("mastodon-web", ServiceAction::Quiet, &[])
            .expect("quieting a stopped service is a no-op");
    }

    #[test]
    fn starting_without_a_live_release_fails() {
        let (_d, paths, backend) = droplet();
        std::fs::remove_file(&paths.live).unwrap();
        let err = backend
            .act("mastodon-streaming", ServiceAction::Start, &[])
            .unwrap_err();
        assert!(matches!(err, ServiceError::NoLiveRelease { .. }), "{err}");
        assert!(backend.act("sshd", ServiceAction::Start, &[]).is_err());
    }

    #[test]
    fn stat_fields_are_found_after_the_command_name() {
        let line = "4242 (bundle exec) puma) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 10 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                pgrp: 4242,
                start_ticks: 987_654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_stat(&own).is_some());
    }
}
