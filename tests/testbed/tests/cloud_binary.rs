//! `vmctl-testbed cloud`: prints `ready <base_url> <token file>`, keeps the token out of
//! its output, serves the API, and tears its droplets down when stdin closes.

mod cloud_support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use cloud_support::{ipv4, ssh_port_open, Api};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_api_and_stops_when_stdin_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (_private, public) =
        vmctl_testbed::generate_client_key(&dir.path().join("client")).unwrap();
    let key_file = dir.path().join("client.pub");
    std::fs::write(&key_file, &public).unwrap();
    let cloud_dir = dir.path().join("cloud");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vmctl-testbed"))
        .args(["cloud", "--listen", "127.0.0.1:0", "--dir"])
        .arg(&cloud_dir)
        .arg("--authorized-key-file")
        .arg(&key_file)
        .args(["--create-duration", "100ms", "--action-duration", "100ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{line:?}");
    assert_eq!(words[0], "ready");
    let token_file = std::path::PathBuf::from(words[2]);
    assert_eq!(token_file, cloud_dir.join("token"));
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(!line.contains(&token));

    let api = Api::new(words[1], Some(&token));
    let (status, body) = api
        .post(
            "/v2/droplets",
            json!({"name": "web-1", "size": "s-1vcpu-1gb", "image": 1001}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["droplet"]["id"].as_u64().unwrap();
    let address = WorldView { api: api.clone() }.wait_active(id).await;
    assert!(ssh_port_open(&address));

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
    assert!(!ssh_port_open(&address), "a droplet outlived the binary");
}

/// Waits through a bare [`Api`] (the simulator runs in another process).
struct WorldView {
    api: Api,
}

impl WorldView {
    async fn wait_active(&self, id: u64) -> String {
        let path = format!("/v2/droplets/{id}");
        cloud_support::wait_for(
            "the droplet to turn active",
            cloud_support::ACTIVE_DEADLINE,
            || async {
                let (_, body) = self.api.get(&path).await;
                (body["droplet"]["status"] == "active").then(|| ipv4(&body["droplet"]).unwrap())
            },
        )
        .await
    }
}
