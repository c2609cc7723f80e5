//! Foundation end to end: real vmctld, vmctl and vmctl-agent against real sshd droplets.

use std::time::Duration;

use vmctl_e2e::{bin, count_reachable, wait_for, write_cluster_toml, Vmctld};
use vmctl_testbed::{generate_client_key, DropletFarm};

fn names(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}-{i}")).collect()
}

fn node_json(v: &Vmctld, name: &str) -> serde_json::Value {
    let out = v.vmctl(&["get", "nodes", "-o", "json"]);
    assert!(out.status.success());
    let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.into_iter()
        .find(|n| n["metadata"]["name"] == name)
        .expect("node listed")
}

fn has_event(v: &Vmctld, name: &str, reason: &str) -> bool {
    v.events()
        .iter()
        .any(|e| e["name"] == name && e["reason"] == reason)
}

fn sha256_hex(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Ten droplets become reachable with facts, a rebuilt agent is re-installed everywhere, and a
/// SIGTERM stops the controller cleanly.
#[test]
fn ten_droplets_become_reachable_and_a_new_agent_build_reaches_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, pubkey) = generate_client_key(tmp.path()).unwrap();
    let farm =
        DropletFarm::start(&tmp.path().join("droplets"), &names("web", 10), &pubkey).unwrap();
    let agent = tmp.path().join("vmctl-agent");
    std::fs::copy(bin("vmctl-agent"), &agent).unwrap();
    let mut v = Vmctld::start(&tmp.path().join("data"), &agent, &[]);
    let toml = write_cluster_toml(tmp.path(), &farm, &key, "1s");
    let out = v.vmctl(&["apply", "-f", toml.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let status = wait_for("all 10 nodes reachable", Duration::from_secs(60), || {
        let s = v.status();
        (count_reachable(&s, true) == 10).then_some(s)
    });
    assert_eq!(status.nodes.len(), 10);
    for n in &status.nodes {
        assert!(n.agent_version.is_some(), "{} has no agent version", n.name);
        assert!(
            n.load.is_some() && n.memory_used_pct.is_some() && n.disk_used_pct.is_some(),
            "{} has no facts",
            n.name
        );
        assert!(n.last_seen.is_some());
    }
    let pools = &status.pools;
    assert_eq!(
        (pools[0].name.as_str(), pools[0].ready, pools[0].total),
        ("web", 10, 10)
    );
    let hostname = node_json(&v, "web-3")["status"]["facts"]["hostname"].clone();
    assert_eq!(hostname, "web-3", "facts come from the droplet's own root");
    assert!(has_event(&v, "web-1", "AgentUploaded"));
    assert!(has_event(&v, "web-1", "HostKeyPinned"));

    // A new agent build: same program, different bytes. Replace it atomically, as a package
    // upgrade would.
    let mut bytes = std::fs::read(&agent).unwrap();
    bytes.extend_from_slice(b"\nrebuilt");
    let staged = tmp.path().join("vmctl-agent.new");
    std::fs::write(&staged, &bytes).unwrap();
    std::fs::rename(&staged, &agent).unwrap();
    let new_hash = sha256_hex(&agent);
    wait_for(
        "every node to run the new agent build",
        Duration::from_secs(60),
        || {
            let out = v.vmctl(&["get", "nodes", "-o", "json"]);
            let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
            all.iter()
                .all(|n| {
                    n["status"]["agent_sha256"] == new_hash.as_str()
                        && n["status"]["reachable"] == true
                })
                .then_some(())
        },
    );
    for d in farm.droplets() {
        let installed = d.root.join("var/lib/vmctl/bin/vmctl-agent");
        assert_eq!(
            sha256_hex(&installed),
            new_hash,
            "{} runs the new build",
            d.name
        );
    }

    let code = v.terminate();
    assert!(code.success(), "vmctld exited with {code:?} on SIGTERM");
}

/// A killed sshd makes its node Unreachable within one probe interval, and Reachable again when
/// it comes back, without touching the controller or the other nodes.
#[test]
fn a_dead_sshd_is_noticed_within_a_probe_interval_and_its_return_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, pubkey) = generate_client_key(tmp.path()).unwrap();
    let mut farm =
        DropletFarm::start(&tmp.path().join("droplets"), &names("web", 3), &pubkey).unwrap();
    let v = Vmctld::start(&tmp.path().join("data"), &bin("vmctl-agent"), &[]);
    let probe = Duration::from_secs(2);
    let toml = write_cluster_toml(tmp.path(), &farm, &key, "2s");
    assert!(v
        .vmctl(&["apply", "-f", toml.to_str().unwrap()])
        .status
        .success());
    wait_for("3 nodes reachable", Duration::from_secs(60), || {
        (count_reachable(&v.status(), true) == 3).then_some(())
    });
    let pid = v.pid();

    farm.kill_sshd("web-2").unwrap();
    let killed = std::time::Instant::now();
    wait_for("web-2 unreachable", probe + Duration::from_secs(1), || {
        v.status()
            .nodes
            .iter()
            .any(|n| n.name == "web-2" && !n.reachable)
            .then_some(())
    });
    eprintln!("web-2 unreachable after {:?}", killed.elapsed());
    let s = v.status();
    assert_eq!(
        count_reachable(&s, true),
        2,
        "the other nodes stay reachable"
    );
    assert!(has_event(&v, "web-2", "NodeUnreachable"));

    farm.start_sshd("web-2").unwrap();
    wait_for("web-2 reachable again", probe * 3, || {
        v.status()
            .nodes
            .iter()
            .any(|n| n.name == "web-2" && n.reachable)
            .then_some(())
    });
    assert!(has_event(&v, "web-2", "NodeReachable"));
    assert_eq!(v.pid(), pid, "vmctld kept running");
}

/// A changed host key is refused with a condition and an event; forget-hostkey accepts it.
/// A restarted controller keeps specs, pinned keys and events.
#[test]
fn a_changed_host_key_is_refused_and_state_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, pubkey) = generate_client_key(tmp.path()).unwrap();
    let mut farm =
        DropletFarm::start(&tmp.path().join("droplets"), &names("web", 2), &pubkey).unwrap();
    let mut v = Vmctld::start(&tmp.path().join("data"), &bin("vmctl-agent"), &[]);
    let toml = write_cluster_toml(tmp.path(), &farm, &key, "1s");
    assert!(v
        .vmctl(&["apply", "-f", toml.to_str().unwrap()])
        .status
        .success());
    wait_for("2 nodes reachable", Duration::from_secs(60), || {
        (count_reachable(&v.status(), true) == 2).then_some(())
    });
    let pinned_before = node_json(&v, "web-1")["status"]["host_key_fingerprint"].clone();
    assert!(pinned_before.is_string());

    // Restart with SIGKILL: specs, pinned keys and events survive; the key is not re-pinned.
    let events_before = v.events().len();
    v.restart();
    wait_for(
        "2 nodes reachable after restart",
        Duration::from_secs(60),
        || (count_reachable(&v.status(), true) == 2).then_some(()),
    );
    assert_eq!(
        node_json(&v, "web-1")["status"]["host_key_fingerprint"],
        pinned_before
    );
    let events = v.events();
    assert!(events.len() >= events_before, "events survive a restart");
    let pins = events
        .iter()
        .filter(|e| e["name"] == "web-1" && e["reason"] == "HostKeyPinned")
        .count();
    assert_eq!(
        pins, 1,
        "the host key was pinned once, not again after the restart"
    );

    farm.rotate_host_key("web-1").unwrap();
    wait_for(
        "web-1 refused for its changed host key",
        Duration::from_secs(20),
        || {
            let s = v.status();
            let n = s.nodes.iter().find(|n| n.name == "web-1")?;
            (!n.reachable
                && n.conditions.iter().any(|c| {
                    c.type_ == "HostKeyMismatch"
                        && c.status == vmctl_protocol::ConditionStatus::True
                }))
            .then_some(())
        },
    );
    assert!(has_event(&v, "web-1", "HostKeyMismatch"));
    assert_eq!(
        node_json(&v, "web-1")["status"]["host_key_fingerprint"],
        pinned_before,
        "the old pin stays"
    );

    let out = v.vmctl(&["node", "forget-hostkey", "web-1"]);
    assert!(
        out.status.success(),
        "forget-hostkey failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "web-1 reachable with its new key",
        Duration::from_secs(20),
        || {
            v.status()
                .nodes
                .iter()
                .any(|n| n.name == "web-1" && n.reachable)
                .then_some(())
        },
    );
    assert_ne!(
        node_json(&v, "web-1")["status"]["host_key_fingerprint"],
        pinned_before
    );
    let out = v.vmctl(&["node", "forget-hostkey", "no-such-node"]);
    assert_eq!(out.status.code(), Some(1));
}

/// A bad cluster file is refused with file, line and field, and nothing is stored.
#[test]
fn a_bad_cluster_file_is_refused_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let v = Vmctld::start(&tmp.path().join("data"), &bin("vmctl-agent"), &[]);
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"e2e\"\n[ssh]\nprivate_key = \"/k\"\n[pools.web]\nrole = \"web\"\n\n[[nodes]]\nname = \"web-1\"\npool = \"wbe\"\naddress = \"127.0.0.1\"\n",
    )
    .unwrap();
    let out = v.vmctl(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:9:"),
        "error names file and line: {err}"
    );
    assert!(
        err.contains("nodes[0].pool"),
        "error names the field: {err}"
    );
    let nodes = v.vmctl(&["get", "nodes", "-o", "json"]);
    assert_eq!(
        String::from_utf8_lossy(&nodes.stdout).trim(),
        "[]",
        "nothing stored"
    );
}

/// Over TCP the API demands the bearer token; the unix socket is private to its owner.
#[test]
fn the_tcp_api_requires_the_bearer_token_and_the_socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let v = Vmctld::start(
        &tmp.path().join("data"),
        &bin("vmctl-agent"),
        &["--listen", &addr],
    );
    let mode = std::fs::metadata(&v.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token_file = tmp.path().join("data/api-token");
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let run = |extra: &[&str]| {
        std::process::Command::new(bin("vmctl"))
            .args(["--server", &format!("http://{addr}")])
            .args(extra)
            .args(["get", "nodes", "-o", "json"])
            .env_remove("VMCTL_TOKEN")
            .env_remove("VMCTL_TOKEN_FILE")
            .output()
            .unwrap()
    };
    let anonymous = run(&[]);
    assert_eq!(anonymous.status.code(), Some(1), "no token, no answer");
    let authed = run(&["--token-file", token_file.to_str().unwrap()]);
    assert!(
        authed.status.success(),
        "{}",
        String::from_utf8_lossy(&authed.stderr)
    );
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(
        !v.log().contains(token.trim()),
        "the token never reaches the log"
    );
}
