//! Drives the `vmctl-testbed droplets` binary as `vmctld --dev` will: wait for `ready`,
//! read the manifest, use the control socket, and stop it by closing stdin or SIGTERM.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::wait_until;
use vmctl_testbed::droplets::control::{self, ControlOp, ControlRequest};
use vmctl_testbed::droplets::process_tree::{is_alive, tree};
use vmctl_testbed::{generate_client_key, Manifest};

const DEADLINE: Duration = Duration::from_secs(20);

/// Starts the binary and returns it once it printed `ready <manifest>`.
fn start(dir: &Path, size: &[&str]) -> (Child, PathBuf) {
    let (_key, public) = generate_client_key(&dir.join("client")).unwrap();
    let key_file = dir.join("client/id_ed25519.pub");
    assert!(std::fs::read_to_string(&key_file)
        .unwrap()
        .starts_with(&public));
    let manifest = dir.join("manifest.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmctl-testbed"))
        .arg("droplets")
        .arg("--dir")
        .arg(dir.join("farm"))
        .arg("--authorized-key-file")
        .arg(&key_file)
        .args(size)
        .arg("--manifest")
        .arg(&manifest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(DEADLINE).expect("no ready line in time");
    assert_eq!(line.trim(), format!("ready {}", manifest.display()));
    (child, manifest)
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < DEADLINE, "vmctl-testbed did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn accepts(address: &str) -> bool {
    let address: Ipv4Addr = address.parse().unwrap();
    TcpStream::connect_timeout(
        &SocketAddrV4::new(address, 22).into(),
        Duration::from_secs(1),
    )
    .is_ok()
}

fn ask(socket: &Path, op: ControlOp, name: &str) -> control::ControlResponse {
    control::request(
        socket,
        &ControlRequest {
            op,
            name: name.into(),
        },
    )
    .unwrap()
}

#[test]
fn binary_serves_pools_and_control_socket_then_stops_when_stdin_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, manifest_path) = start(dir.path(), &["--pools", "web=2,exec=1"]);
    let manifest = Manifest::read(&manifest_path).unwrap();
    let names: Vec<(&str, Option<&str>)> = manifest
        .droplets
        .iter()
        .map(|d| (d.name.as_str(), d.pool.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            ("web-1", Some("web")),
            ("web-2", Some("web")),
            ("exec-1", Some("exec"))
        ]
    );
    for droplet in &manifest.droplets {
        assert!(accepts(&droplet.address), "{} refuses TCP", droplet.name);
        assert_eq!(droplet.port, 22);
        assert!(Path::new(&droplet.root).join("etc/hostname").is_file());
    }
    let web1 = &manifest.droplets[0];
    let socket = dir.path().join("farm/control.sock");

    assert!(ask(&socket, ControlOp::KillSshd, "web-1").ok);
    assert!(!accepts(&web1.address));
    assert!(ask(&socket, ControlOp::StartSshd, "web-1").ok);
    assert!(accepts(&web1.address));
    assert!(ask(&socket, ControlOp::RotateHostKey, "web-1").ok);
    let rotated = Manifest::read(&manifest_path).unwrap();
    assert_ne!(rotated.droplets[0].host_key_public, web1.host_key_public);
    let unknown = ask(&socket, ControlOp::KillSshd, "nope-1");
    assert!(!unknown.ok);
    assert!(unknown.error.unwrap().contains("nope-1"));

    let pid = i32::try_from(child.id()).unwrap();
    let processes: BTreeSet<i32> = tree(Some(pid), None);
    assert!(
        processes.len() > 3,
        "expected the binary and its sshds: {processes:?}"
    );
    drop(child.stdin.take());
    assert!(wait_exit(&mut child).success());
    wait_until("every sshd of the binary is gone", DEADLINE, || {
        processes.iter().all(|&pid| !is_alive(pid))
    });
    assert!(!socket.exists(), "control socket left behind");
}

#[test]
fn binary_tears_down_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, manifest_path) = start(dir.path(), &["--count", "2", "--prefix", "n"]);
    let manifest = Manifest::read(&manifest_path).unwrap();
    assert_eq!(manifest.droplets[1].name, "n-2");
    assert_eq!(manifest.droplets[1].pool, None);
    let pid = i32::try_from(child.id()).unwrap();
    let processes = tree(Some(pid), None);

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::Term,
    )
    .unwrap();
    assert!(wait_exit(&mut child).success());
    wait_until("every sshd of the binary is gone", DEADLINE, || {
        processes.iter().all(|&pid| !is_alive(pid))
    });
    for droplet in &manifest.droplets {
        assert!(!accepts(&droplet.address));
    }
}
