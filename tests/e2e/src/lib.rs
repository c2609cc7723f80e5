//! Harness for the end-to-end tests: starts the real binaries (built once by cargo into the
//! shared target folder) against testbed droplets, and waits on conditions read through the
//! real CLI, each with a deadline and a message naming what was awaited.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

pub mod cloud;

use vmctl_protocol::api::StatusView;
use vmctl_testbed::DropletFarm;

/// The folder holding the workspace's built binaries (`target/debug`), found from this test
/// executable's path (`target/debug/deps/<test>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The path of a workspace binary; panics with the build command when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `deadline` naming `what`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// A running `vmctld` child process.
pub struct Vmctld {
    child: Option<Child>,
    /// Its data folder.
    pub data: PathBuf,
    /// Its API socket.
    pub socket: PathBuf,
    /// The agent binary it installs.
    pub agent: PathBuf,
    extra: Vec<String>,
}

impl Vmctld {
    /// Starts vmctld on `data` and waits until its API answers.
    pub fn start(data: &Path, agent: &Path, extra: &[&str]) -> Vmctld {
        let mut v = Vmctld {
            child: None,
            data: data.to_path_buf(),
            socket: data.join("vmctld.sock"),
            agent: agent.to_path_buf(),
            extra: extra.iter().map(ToString::to_string).collect(),
        };
        v.spawn();
        v
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.with_extension("log"))
            .expect("vmctld log file");
        let child = Command::new(bin("vmctld"))
            .arg("--data")
            .arg(&self.data)
            .arg("--agent-binary")
            .arg(&self.agent)
            .args(&self.extra)
            .env("RUST_LOG", "info,vmctl_controller=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start vmctld");
        self.child = Some(child);
        let socket = self.socket.clone();
        wait_for("vmctld's API to answer", Duration::from_secs(20), || {
            let out = vmctl_raw(&socket, &["get", "nodes", "-o", "json"]);
            out.status.success().then_some(())
        });
    }

    /// The PID of the running vmctld.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills vmctld with SIGKILL (a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops vmctld with SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let pid = rustix::process::Pid::from_raw(c.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::Term).expect("SIGTERM");
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            if Instant::now() > until {
                let _ = c.kill();
                panic!("vmctld did not exit within 30 s of SIGTERM");
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
    }

    /// Starts it again on the same data folder.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs `vmctl` against this controller.
    pub fn vmctl(&self, args: &[&str]) -> Output {
        vmctl_raw(&self.socket, args)
    }

    /// `vmctl status -o json`, parsed.
    pub fn status(&self) -> StatusView {
        let out = self.vmctl(&["status", "-o", "json"]);
        assert!(
            out.status.success(),
            "vmctl status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// `vmctl events -o json --limit 1000` as JSON values, newest first.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let out = self.vmctl(&["events", "--limit", "1000", "-o", "json"]);
        assert!(
            out.status.success(),
            "vmctl events failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("events JSON");
        match v {
            serde_json::Value::Array(a) => a,
            serde_json::Value::Object(mut o) => match o.remove("events") {
                Some(serde_json::Value::Array(a)) => a,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// `vmctl get WHAT -o json`, parsed: the stored objects of a kind.
    pub fn list(&self, what: &str) -> Vec<serde_json::Value> {
        let out = self.vmctl(&["get", what, "-o", "json"]);
        assert!(
            out.status.success(),
            "get {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("get JSON")
    }

    /// The log file vmctld writes.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for Vmctld {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `vmctl --socket SOCKET args...`.
pub fn vmctl_raw(socket: &Path, args: &[&str]) -> Output {
    Command::new(bin("vmctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run vmctl")
}

/// Writes a cluster.toml for the farm's droplets, every one in pool `pool` (role web), with a
/// short probe interval, and returns its path.
pub fn write_cluster_toml(
    dir: &Path,
    farm: &DropletFarm,
    private_key: &Path,
    probe: &str,
) -> PathBuf {
    let mut s = format!(
        "name = \"e2e\"\nprobe_interval = \"{probe}\"\ncall_timeout = \"5s\"\nconnect_timeout = \"5s\"\n\n\
         [ssh]\nuser = \"root\"\nprivate_key = \"{}\"\n\n[pools.web]\nrole = \"web\"\n",
        private_key.display()
    );
    for d in farm.droplets() {
        s.push_str(&format!(
            "\n[[nodes]]\nname = \"{}\"\npool = \"web\"\naddress = \"{}\"\nport = {}\nroot = \"{}\"\n",
            d.name,
            d.address,
            d.port,
            d.root.display()
        ));
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, s).expect("write cluster.toml");
    path
}

/// The node rows whose `reachable` equals `want`.
pub fn count_reachable(status: &StatusView, want: bool) -> usize {
    status.nodes.iter().filter(|n| n.reachable == want).count()
}
