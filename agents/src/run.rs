//! Running one fixed program with a fixed argv: a working directory, extra environment, a
//! deadline, stdout captured (bounded) and the tail of stderr kept for error reports.
//!
//! There is no shell anywhere: the argv reaches the program as given. The child runs in its own
//! process group so a missed deadline kills everything it started (bundler forks compilers, yarn
//! forks node), not just the direct child.

use rustix::process::{kill_process_group, Pid, Signal};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many stderr lines an error report carries: enough to show a compiler or bundler error,
/// small enough for one reply frame.
pub const STDERR_TAIL_LINES: usize = 20;

/// Most stdout kept. The callers read one line (`git rev-parse`) or a short listing
/// (`git status --porcelain`); the bound only protects the agent from a chatty program.
const MAX_STDOUT_BYTES: usize = 256 * 1024;

/// Most stderr bytes kept in memory while the tail is collected.
const MAX_STDERR_BYTES: usize = 64 * 1024;

/// After the child exits, how long to wait for its pipes to close. A grandchild that left the
/// process group could hold them open forever; the output read so far is used then.
const PIPE_DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// After a SIGKILL, how long to wait for the child to be reaped.
const KILL_REAP_DEADLINE: Duration = Duration::from_secs(5);

/// One program with its argv, working directory and extra environment. The agent's own
/// environment (PATH and so on) is inherited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    /// The program, looked up on PATH when it has no `/`.
    pub program: OsString,
    /// Arguments, each passed as one argv element.
    pub args: Vec<OsString>,
    /// Working directory (`None`: the agent's).
    pub cwd: Option<PathBuf>,
    /// Variables added to (or overriding) the inherited environment.
    pub env: Vec<(OsString, OsString)>,
}

impl Cmd {
    /// `program` with `args`, in the agent's directory and environment.
    pub fn new<I, S>(program: impl Into<OsString>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Cmd {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            cwd: None,
            env: Vec::new(),
        }
    }

    /// Runs in `dir`.
    #[must_use]
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Adds `key=value` to the environment.
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// `program arg arg ...` for messages. Arguments are shown as given; none are secrets.
    pub fn display(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// A finished run that exited 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Stdout, lossily decoded, cut at 256 KiB.
    pub stdout: String,
    /// How long it ran.
    pub elapsed: Duration,
}

/// Why a run failed. Every variant names the command.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program could not be started (missing, not executable, bad cwd).
    #[error("start `{cmd}`")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It exited non-zero or was killed by a signal.
    #[error("`{cmd}` failed ({status}){}", tail_suffix(.stderr_tail))]
    Failed {
        /// The command line.
        cmd: String,
        /// How it ended.
        status: ExitStatus,
        /// Its last stderr lines.
        stderr_tail: String,
    },
    /// It ran past its deadline and was killed with its process group.
    #[error("`{cmd}` ran past its {deadline:?} deadline and was killed{}", tail_suffix(.stderr_tail))]
    Deadline {
        /// The command line.
        cmd: String,
        /// The deadline it missed.
        deadline: Duration,
        /// Its last stderr lines.
        stderr_tail: String,
    },
    /// Waiting for it failed.
    #[error("wait for `{cmd}`")]
    Wait {
        /// The command line.
        cmd: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl RunError {
    /// The last stderr lines, when the program ran.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            RunError::Failed { stderr_tail, .. } | RunError::Deadline { stderr_tail, .. } => {
                Some(stderr_tail)
            }
            RunError::Spawn { .. } | RunError::Wait { .. } => None,
        }
    }
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; stderr: {tail}")
    }
}

/// Runs `cmd` with stdin closed, waiting at most `deadline`.
///
/// # Errors
/// See [`RunError`]: not started, non-zero exit, deadline missed (the process group is killed and
/// reaped first), or the wait failed.
pub fn run(cmd: &Cmd, deadline: Duration) -> Result<Output, RunError> {
    let shown = cmd.display();
    let started = Instant::now();
    let mut command = Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &cmd.cwd {
        command.current_dir(dir);
    }
    let mut child = command.spawn().map_err(|source| RunError::Spawn {
        cmd: shown.clone(),
        source,
    })?;
    let pid = Pid::from_child(&child);
    let stdout = Collector::start(child.stdout.take(), MAX_STDOUT_BYTES, Keep::Head);
    let stderr = Collector::start(child.stderr.take(), MAX_STDERR_BYTES, Keep::Tail);

    // A waiter thread turns the blocking wait into one with a deadline. The child is not reaped
    // until it exits, so its pid (and group id) stays valid for the kill below.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(deadline) {
        Ok(r) => r.map_err(|source| RunError::Wait {
            cmd: shown.clone(),
            source,
        })?,
        Err(_) => {
            let _ = kill_process_group(pid, Signal::Kill);
            let _ = rx.recv_timeout(KILL_REAP_DEADLINE);
            return Err(RunError::Deadline {
                cmd: shown,
                deadline,
                stderr_tail: tail_lines(&stderr.finish(), STDERR_TAIL_LINES),
            });
        }
    };
    let out = stdout.finish();
    let err = stderr.finish();
    if !status.success() {
        return Err(RunError::Failed {
            cmd: shown,
            status,
            stderr_tail: tail_lines(&err, STDERR_TAIL_LINES),
        });
    }
    Ok(Output {
        stdout: String::from_utf8_lossy(&out).into_owned(),
        elapsed: started.elapsed(),
    })
}

/// The last `n` non-empty lines of `bytes`, joined with `\n`, lossily decoded.
pub fn tail_lines(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[derive(Debug, Clone, Copy)]
enum Keep {
    Head,
    Tail,
}

/// Reads one pipe on a thread into a bounded buffer that can be taken at any time.
struct Collector {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Collector {
    fn start(pipe: Option<impl Read + Send + 'static>, max: usize, keep: Keep) -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let shared = Arc::clone(&buf);
        std::thread::spawn(move || {
            if let Some(mut pipe) = pipe {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    let Ok(mut b) = shared.lock() else { break };
                    append_bounded(&mut b, &chunk[..n], max, keep);
                }
            }
            let _ = tx.send(());
        });
        Collector { buf, done }
    }

    /// What was read, once the pipe closed or [`PIPE_DRAIN_DEADLINE`] passed.
    fn finish(self) -> Vec<u8> {
        let _ = self.done.recv_timeout(PIPE_DRAIN_DEADLINE);
        self.buf.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

fn append_bounded(buf: &mut Vec<u8>, chunk: &[u8], max: usize, keep: Keep) {
    match keep {
        Keep::Head => {
            let room = max.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Keep::Tail => {
            buf.extend_from_slice(chunk);
            if buf.len() > max {
                let cut = buf.len() - max;
                buf.drain(..cut);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_is_captured_and_env_and_cwd_apply() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(
            &Cmd::new("sh", ["-c", "pwd; echo \"$VMCTL_X\""])
                .cwd(dir.path())
                .env("VMCTL_X", "a b;c"),
            Duration::from_secs(10),
        )
        .unwrap();
        let canon = dir.path().canonicalize().unwrap();
        assert_eq!(out.stdout, format!("{}\na b;c\n", canon.display()));
    }

    #[test]
    fn a_failure_carries_the_last_stderr_lines() {
        let err = run(
            &Cmd::new(
                "sh",
                [
                    "-c",
                    "for i in $(seq 1 30); do echo line$i >&2; done; exit 3",
                ],
            ),
            Duration::from_secs(10),
        )
        .unwrap_err();
        let tail = err.stderr_tail().unwrap();
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines.len(), STDERR_TAIL_LINES);
        assert_eq!(lines.first(), Some(&"line11"));
        assert_eq!(lines.last(), Some(&"line30"));
        assert!(matches!(err, RunError::Failed { .. }), "{err}");
        assert!(err.to_string().contains("exit status: 3"), "{err}");
    }

    #[test]
    fn the_deadline_kills_the_program_and_its_children() {
        let started = Instant::now();
        // The shell forks `sleep`, which would hold stderr open if only the shell were killed.
        let err = run(
            &Cmd::new("sh", ["-c", "echo starting >&2; sleep 10; echo never"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{err}");
        assert!(matches!(err, RunError::Deadline { .. }), "{err}");
        assert_eq!(err.stderr_tail(), Some("starting"));
    }

    #[test]
    fn a_plain_sleep_is_killed_at_the_deadline() {
        let started = Instant::now();
        let err = run(&Cmd::new("sleep", ["10"]), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, RunError::Deadline { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = run(
            &Cmd::new("/nonexistent/bundle", ["install"]),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, RunError::Spawn { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/bundle install"));
    }

    #[test]
    fn tails_keep_the_last_lines_and_buffers_stay_bounded() {
        assert_eq!(tail_lines(b"a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines(b"", 2), "");
        let mut b = Vec::new();
        append_bounded(&mut b, b"abcdef", 4, Keep::Tail);
        assert_eq!(b, b"cdef");
        let mut h = Vec::new();
        append_bounded(&mut h, b"abcdef", 4, Keep::Head);
        append_bounded(&mut h, b"gh", 4, Keep::Head);
        assert_eq!(h, b"abcd");
    }
}
