//! `vmctl-testbed cloud --stubs --upstream DIR` as dev mode runs it: world.json names the
//! upstream repository and API, droplets the simulator creates find the stubs and the real
//! git, and `vmctl-testbed publish` adds a release the running API serves at once.

mod cloud_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cloud_support::{ipv4, wait_for, Api, ACTIVE_DEADLINE};
use serde_json::{json, Value};

fn ssh(key: &Path, address: &str, remote: &str) -> (bool, String) {
    let output = Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .arg(format!("root@{address}"))
        .arg(remote)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if !output.status.success() {
        eprintln!("{remote}: {}", String::from_utf8_lossy(&output.stderr));
    }
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_with_stubs_and_upstream_publishes_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = vmctl_testbed::generate_client_key(&dir.path().join("client")).unwrap();
    let key_file = dir.path().join("client.pub");
    std::fs::write(&key_file, &public).unwrap();
    let cloud_dir = dir.path().join("cloud");
    let upstream_dir = dir.path().join("upstream");
    let binary = env!("CARGO_BIN_EXE_vmctl-testbed");
    let mut child = Command::new(binary)
        .args(["cloud", "--listen", "127.0.0.1:0", "--stubs", "--dir"])
        .arg(&cloud_dir)
        .arg("--upstream")
        .arg(&upstream_dir)
        .arg("--authorized-key-file")
        .arg(&key_file)
        .args(["--create-duration", "100ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"ready"), "{line:?}");
    let world: Value =
        serde_json::from_slice(&std::fs::read(cloud_dir.join("world.json")).unwrap()).unwrap();
    let repo = world["upstream"]["repo"].as_str().unwrap().to_owned();
    let github = world["upstream"]["api"].as_str().unwrap().to_owned();
    assert_eq!(Path::new(&repo), upstream_dir.join("mastodon"));
    assert!(github.starts_with("http://127.0.0.1:"));

    // A droplet the simulator creates has the stubs, the real git and the probe host.
    let token = std::fs::read_to_string(cloud_dir.join("token")).unwrap();
    let api = Api::new(words[1], Some(&token));
    let (status, body) = api
        .post(
            "/v2/droplets",
            json!({"name": "web-1", "size": "s-1vcpu-1gb", "image": 1001}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["droplet"]["id"].as_u64().unwrap();
    let address = wait_for("the droplet to turn active", ACTIVE_DEADLINE, || async {
        let (_, body) = api.get(&format!("/v2/droplets/{id}")).await;
        (body["droplet"]["status"] == "active").then(|| ipv4(&body["droplet"]).unwrap())
    })
    .await;
    let remote = format!(
        "command -v bundle; echo $VMCTL_PROBE_HOST; \
         git -c advice.detachedHead=false clone --quiet --branch v4.4.0 {repo} \"$VMCTL_ROOT/r\" \
         && cat \"$VMCTL_ROOT/r/.ruby-version\""
    );
    let (key2, address2) = (key.clone(), address.clone());
    let (ok, out) = tokio::task::spawn_blocking(move || ssh(&key2, &address2, &remote))
        .await
        .unwrap();
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], cloud_dir.join("stubs/bundle").to_str().unwrap());
    assert_eq!(lines[1], address);
    assert_eq!(lines[2], "3.4.1");

    // Publish through the binary, by the cloud folder; the running API sees it.
    let published = Command::new(binary)
        .args(["publish", "--security", "--dir"])
        .arg(&cloud_dir)
        .arg("v4.4.2")
        .output()
        .unwrap();
    assert!(published.status.success(), "{published:?}");
    let client = reqwest::Client::new();
    let list: Value = client
        .get(format!(
            "{github}/repos/mastodon/mastodon/releases?per_page=1"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["tag_name"], "v4.4.2");
    let updates: Value = client
        .get(format!("{github}/update-check?version=4.4.1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        updates["updatesAvailable"],
        json!([{"version": "4.4.2", "urgent": true, "type": "patch",
                "releaseNotes": "https://github.com/mastodon/mastodon/releases/tag/v4.4.2"}])
    );
    let commit = String::from_utf8(published.stdout).unwrap();
    let ref_body: Value = client
        .get(format!(
            "{github}/repos/mastodon/mastodon/git/ref/tags/v4.4.2"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        commit.trim(),
        format!("v4.4.2 {}", ref_body["object"]["sha"].as_str().unwrap())
    );

    drop(child.stdin.take());
    let status = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the binary did not exit"
            );
            std::thread::park_timeout(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(status.success());
}
