//! Drives the built `vmctl-agent serve` binary over its stdin/stdout the way vmctld does over SSH,
//! against a testbed root.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;
use vmctl_agent::ops::hello::sha256_file;
use vmctl_protocol::agent::{ActiveState, Facts, Hello, PROTOCOL_VERSION};

const AGENT: &str = env!("CARGO_BIN_EXE_vmctl-agent");
/// Generous: a reply takes milliseconds; this only bounds a hung agent.
const REPLY_DEADLINE: Duration = Duration::from_secs(20);

struct Served {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<String>,
}

impl Served {
    fn start(root: &std::path::Path) -> Self {
        let mut child = Command::new(AGENT)
            .args(["serve", "--root"])
            .arg(root)
            .env_remove("VMCTL_ROOT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn vmctl-agent serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, replies) = mpsc::channel();
        // Lines arrive on a channel so every read below can carry a deadline.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Served {
            child,
            stdin,
            replies,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stdin.as_mut().unwrap().write_all(bytes).unwrap();
        self.stdin.as_mut().unwrap().flush().unwrap();
    }

    fn reply(&self, what: &str) -> serde_json::Value {
        let line = self
            .replies
            .recv_timeout(REPLY_DEADLINE)
            .unwrap_or_else(|e| panic!("no reply to {what} within {REPLY_DEADLINE:?}: {e}"));
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("reply to {what} is not JSON ({e}): {line}"))
    }

    /// Closes stdin and waits for the agent to close stdout and exit.
    fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        match self.replies.recv_timeout(REPLY_DEADLINE) {
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
            Ok(extra) => panic!("unexpected reply after EOF: {extra}"),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("agent did not exit within {REPLY_DEADLINE:?} of stdin closing");
            }
        }
        self.child.wait().unwrap()
    }
}

fn error_of(reply: &serde_json::Value) -> (serde_json::Value, &str, &str) {
    let err = &reply["err"];
    (
        reply["id"].clone(),
        err["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error: {reply}")),
        err["message"].as_str().unwrap_or(""),
    )
}

fn testbed_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "web-7\n").unwrap();
    std::fs::write(
        root.join("etc/os-release"),
        "NAME=x\nPRETTY_NAME=\"Testbed Linux 1\"\n",
    )
    .unwrap();
    for r in ["v4.3.1", "v4.3.0"] {
        std::fs::create_dir_all(root.join("home/mastodon/releases").join(r)).unwrap();
    }
    std::os::unix::fs::symlink(
        root.join("home/mastodon/releases/v4.3.1"),
        root.join("home/mastodon/live"),
    )
    .unwrap();
    let pids = root.join("run/vmctl/services");
    std::fs::create_dir_all(&pids).unwrap();
    // This test process stands in for a running Puma.
    std::fs::write(
        pids.join("mastodon-web.pid"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    dir
}

#[test]
fn serve_answers_every_frame_in_order_and_exits_on_eof() {
    let root = testbed_root();
    let mut agent = Served::start(root.path());

    agent.send(b"{\"id\":1,\"op\":\"hello\"}\n");
    let r = agent.reply("hello");
    assert_eq!(r["id"], 1);
    let hello: Hello = serde_json::from_value(r["ok"].clone()).unwrap();
    assert_eq!(hello.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(hello.protocol_version, PROTOCOL_VERSION);
    assert_eq!(
        hello.binary_sha256,
        sha256_file(std::path::Path::new(AGENT)).unwrap()
    );

    agent.send(b"\n\nthis is not json\n");
    let r = agent.reply("garbage");
    assert_eq!(error_of(&r).0, serde_json::Value::Null);
    assert_eq!(error_of(&r).1, "bad_frame");

    let mut big = vec![b'x'; 1_100 * 1024];
    big.push(b'\n');
    agent.send(&big);
    let r = agent.reply("oversize line");
    assert_eq!(error_of(&r).0, serde_json::Value::Null);
    assert_eq!(error_of(&r).1, "frame_too_large");

    agent.send(b"{\"id\":4,\"op\":\"shell\",\"cmd\":\"id\"}\n");
    let r = agent.reply("unknown op");
    let (id, code, message) = error_of(&r);
    assert_eq!((id, code), (4.into(), "unknown_op"));
    assert!(message.contains("shell"), "{message}");

    agent.send(b"{\"id\":5,\"v\":2,\"op\":\"ping\"}\n");
    let r = agent.reply("wrong v");
    assert_eq!(error_of(&r).0, 5);
    assert_eq!(error_of(&r).1, "protocol_mismatch");

    agent.send(b"{\"id\":6,\"v\":1,\"op\":\"facts\"}\n");
    let r = agent.reply("facts");
    assert_eq!(r["id"], 6);
    let facts: Facts =
        serde_json::from_value(r["ok"].clone()).unwrap_or_else(|e| panic!("{e}: {r}"));
    assert_eq!(facts.hostname, "web-7");
    assert_eq!(facts.os_release.as_deref(), Some("Testbed Linux 1"));
    assert_eq!(facts.mastodon.live_release.as_deref(), Some("v4.3.1"));
    assert_eq!(facts.mastodon.releases, vec!["v4.3.0", "v4.3.1"]);
    assert!(facts.memory.total_bytes > 0 && facts.disk.total_bytes > 0);
    let states: Vec<_> = facts
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("mastodon-web", ActiveState::Active),
            ("mastodon-streaming", ActiveState::Inactive),
            ("mastodon-sidekiq", ActiveState::Inactive),
        ]
    );

    agent.send(b"{\"id\":7,\"op\":\"ping\"}\n");
    assert_eq!(agent.reply("ping"), serde_json::json!({"id": 7, "ok": {}}));

    // A frame cut short by EOF is answered, then the agent exits cleanly.
    agent.send(b"{\"id\":8,\"op\":\"pi");
    drop(agent.stdin.take());
    let r = agent.reply("truncated tail");
    assert_eq!(error_of(&r).0, serde_json::Value::Null);
    assert_eq!(error_of(&r).1, "bad_frame");
    assert!(agent.finish().success());
}

#[test]
fn version_prints_hello_as_json() {
    let out = Command::new(AGENT).arg("version").output().unwrap();
    assert!(out.status.success());
    let hello: Hello = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        hello.binary_sha256,
        sha256_file(std::path::Path::new(AGENT)).unwrap()
    );
    assert_eq!(hello.protocol_version, PROTOCOL_VERSION);
}

#[test]
fn bad_command_lines_exit_2_with_usage() {
    for args in [&["frobnicate"][..], &[], &["serve", "--bogus"]] {
        let out = Command::new(AGENT).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage: vmctl-agent"),
            "{args:?}"
        );
        assert!(out.stdout.is_empty());
    }
}
