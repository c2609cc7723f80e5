//! Snapshots on request with retention, and a rejected DigitalOcean token.

use std::time::Duration;

use vmctl_e2e::{bin, cloud::CloudWorld, count_reachable, wait_for, Vmctld};
use vmctl_testbed::generate_client_key;

#[test]
fn snapshots_are_named_for_the_pool_and_old_ones_are_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, pubkey) = generate_client_key(tmp.path()).unwrap();
    let world = CloudWorld::start(tmp.path(), &pubkey);
    let args = world.vmctld_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = Vmctld::start(&tmp.path().join("data"), &bin("vmctl-agent"), &args);
    let toml = world.cluster_toml(&key, 1, "");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str("\n[pools.web.droplets.snapshot]\nkeep = 2\n");
    std::fs::write(&toml, text).unwrap();
    assert!(v
        .vmctl(&["apply", "-f", toml.to_str().unwrap()])
        .status
        .success());
    wait_for("1 reachable node", Duration::from_secs(60), || {
        (count_reachable(&v.status(), true) == 1).then_some(())
    });

    let mut names = Vec::new();
    for _ in 0..3 {
        let out = v.vmctl(&["snapshot", "create", "web"]);
        assert!(
            out.status.success(),
            "snapshot create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let name = stdout
            .split_whitespace()
            .nth(1)
            .expect("snapshot <name> requested")
            .to_string();
        assert!(
            name.starts_with("e2e-web-norelease-"),
            "named <cluster>-<pool>-<release>-<time>: {name}"
        );
        wait_for(
            "the snapshot job to finish",
            Duration::from_secs(30),
            || {
                v.list("snapshots")
                    .iter()
                    .any(|s| {
                        s["metadata"]["name"] == name.as_str() && s["status"]["step"] == "done"
                    })
                    .then_some(())
            },
        );
        names.push(name);
    }
    // Ask the API itself what snapshots exist now.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let token = std::fs::read_to_string(&world.token_file).unwrap();
    let mut config = vmctl_controller::cloud::CloudConfig::new(
        vmctl_controller::cloud::CloudToken::new(&token, "test").unwrap(),
    );
    config.base_url = world.sim.base_url();
    let client = vmctl_controller::cloud::DoClient::new(config).unwrap();
    let snaps: Vec<String> = rt
        .block_on(client.list_snapshots())
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        snaps.contains(&"e2e-base".to_string()),
        "the image the spec names is never pruned: {snaps:?}"
    );
    assert!(
        !snaps.contains(&names[0]),
        "the oldest pool snapshot was pruned: {snaps:?}"
    );
    assert!(
        snaps.contains(&names[1]) && snaps.contains(&names[2]),
        "the newest two are kept: {snaps:?}"
    );
    assert!(v.events().iter().any(|e| e["reason"] == "SnapshotPruned"));

    let out = v.vmctl(&["snapshot", "create", "nope"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_rejected_token_is_reported_and_nothing_is_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, pubkey) = generate_client_key(tmp.path()).unwrap();
    let world = CloudWorld::start(tmp.path(), &pubkey);
    let bad = tmp.path().join("bad-token");
    std::fs::write(&bad, "not-the-token").unwrap();
    let args = [
        "--do-api-url".to_string(),
        world.sim.base_url(),
        "--do-token-file".into(),
        bad.display().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = Vmctld::start(&tmp.path().join("data"), &bin("vmctl-agent"), &args);
    let toml = world.cluster_toml(&key, 2, "");
    assert!(v
        .vmctl(&["apply", "-f", toml.to_str().unwrap()])
        .status
        .success());
    let condition = wait_for(
        "a CloudReady=False condition",
        Duration::from_secs(30),
        || {
            v.list("pools")[0]["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "CloudReady" && c["status"] == "False")
                .cloned()
        },
    );
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains("401") && message.contains("token"),
        "{message}"
    );
    assert!(
        !message.contains("not-the-token"),
        "the token never appears"
    );
    assert!(
        !v.log().contains("not-the-token"),
        "the token never reaches the log"
    );
    assert!(world.droplet_ids().is_empty(), "nothing created");
    assert!(v.status().nodes.is_empty());
}
