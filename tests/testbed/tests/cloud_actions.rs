//! The simulator's droplet actions: snapshots carry the root to new droplets, one action at
//! a time, power actions, and droplet death behind the API's back. Every answer is checked
//! against the official spec. Needs root (sshd on port 22).

mod cloud_support;

use cloud_support::{ipv4, ssh_port_open, wait_for, World, ACTIVE_DEADLINE};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_copies_the_root_and_a_droplet_from_it_starts_from_that_copy() {
    let world = World::start(|_| {}).await;
    let id = world.create("web-1", json!("debian-12-x64"), &[]).await;
    world.wait_active(id).await;
    let root = world.sim.droplets()[0].root.clone().unwrap();
    std::fs::write(root.join("home/mastodon/marker"), "before snapshot").unwrap();

    let (status, body) = world
        .api
        .post(
            &format!("/v2/droplets/{id}/actions"),
            json!({"type": "snapshot", "name": "web-golden"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["action"]["status"], "in-progress");
    assert_eq!(body["action"]["type"], "snapshot");
    assert_eq!(body["action"]["resource_id"], id);
    assert!(body["action"]["completed_at"].is_null());
    let action_id = body["action"]["id"].as_u64().unwrap();
    let done = world.wait_action(action_id).await;
    assert_eq!(done["status"], "completed");
    let (status, body) = world
        .api
        .get(&format!("/v2/droplets/{id}/actions/{action_id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["action"]["status"], "completed");
    // Written after the snapshot: must not reach droplets made from it.
    std::fs::write(root.join("home/mastodon/later"), "after").unwrap();

    let (status, body) = world
        .api
        .get("/v2/snapshots?resource_type=droplet&per_page=200")
        .await;
    assert_eq!(status, 200);
    let snapshot = body["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web-golden")
        .expect("the snapshot is listed by name")
        .clone();
    assert_eq!(snapshot["resource_id"], id.to_string());
    let snapshot_id: u64 = snapshot["id"].as_str().unwrap().parse().unwrap();
    let (status, body) = world.api.get(&format!("/v2/snapshots/{snapshot_id}")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = world.api.get(&format!("/v2/images/{snapshot_id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["image"]["type"], "snapshot");
    let (_, droplet) = world.api.get(&format!("/v2/droplets/{id}")).await;
    assert_eq!(droplet["droplet"]["snapshot_ids"], json!([snapshot_id]));

    let copy = world.create("web-2", json!(snapshot_id), &[]).await;
    let droplet = world.wait_active(copy).await;
    assert_eq!(droplet["image"]["id"], snapshot_id);
    let copy_root = world
        .sim
        .droplets()
        .into_iter()
        .find(|d| d.id == copy)
        .unwrap()
        .root
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(copy_root.join("home/mastodon/marker")).unwrap(),
        "before snapshot"
    );
    assert!(!copy_root.join("home/mastodon/later").exists());
    assert_eq!(
        std::fs::read_to_string(copy_root.join("etc/hostname")).unwrap(),
        "web-2\n"
    );

    let (status, _) = world
        .api
        .delete(&format!("/v2/snapshots/{snapshot_id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = world.api.get(&format!("/v2/snapshots/{snapshot_id}")).await;
    assert_eq!(status, 404);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_action_while_one_runs_gets_pending_event_422() {
    let world = World::start(|c| c.action_duration = std::time::Duration::from_secs(2)).await;
    let id = world.create("web-1", json!(1001), &[]).await;
    let path = format!("/v2/droplets/{id}/actions");
    // Still new: the create action is the pending event.
    let (status, body) = world.api.post(&path, json!({"type": "power_cycle"})).await;
    assert_eq!(status, 422, "{body}");
    world.wait_active(id).await;
    let (status, body) = world.api.post(&path, json!({"type": "power_cycle"})).await;
    assert_eq!(status, 201, "{body}");
    let first = body["action"]["id"].as_u64().unwrap();
    let (status, body) = world
        .api
        .post(&path, json!({"type": "snapshot", "name": "x"}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["id"], "unprocessable_entity");
    assert_eq!(body["message"], "Droplet already has a pending event.");
    assert_eq!(world.wait_action(first).await["status"], "completed");
    let (status, body) = world.api.post(&path, json!({"type": "power_on"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = world.api.post(&path, json!({"type": "resize"})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = world.api.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["meta"]["total"], 3,
        "create, power_cycle, power_on: {body}"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_off_and_on_actions_stop_and_start_the_droplet() {
    let world = World::start(|_| {}).await;
    let id = world.create("web-1", json!(1001), &[]).await;
    let address = ipv4(&world.wait_active(id).await).unwrap();
    let path = format!("/v2/droplets/{id}/actions");
    let (status, body) = world.api.post(&path, json!({"type": "power_off"})).await;
    assert_eq!(status, 201, "{body}");
    world
        .wait_action(body["action"]["id"].as_u64().unwrap())
        .await;
    let (_, body) = world.api.get(&format!("/v2/droplets/{id}")).await;
    assert_eq!(body["droplet"]["status"], "off");
    assert!(!ssh_port_open(&address));
    let (status, body) = world.api.post(&path, json!({"type": "power_on"})).await;
    assert_eq!(status, 201, "{body}");
    world
        .wait_action(body["action"]["id"].as_u64().unwrap())
        .await;
    let (_, body) = world.api.get(&format!("/v2/droplets/{id}")).await;
    assert_eq!(body["droplet"]["status"], "active");
    assert!(ssh_port_open(&address));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_droplet_still_reads_active_and_power_off_reads_off() {
    let world = World::start(|_| {}).await;
    let id = world.create("web-1", json!(1001), &[]).await;
    let address = ipv4(&world.wait_active(id).await).unwrap();
    let sim = world.sim.clone();
    tokio::task::spawn_blocking(move || sim.hang_droplet(id))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !ssh_port_open(&address),
        "a hung droplet's sshd still listens"
    );
    let (_, body) = world.api.get(&format!("/v2/droplets/{id}")).await;
    assert_eq!(body["droplet"]["status"], "active");

    let sim = world.sim.clone();
    tokio::task::spawn_blocking(move || sim.revive_droplet(id))
        .await
        .unwrap()
        .unwrap();
    assert!(ssh_port_open(&address));

    // The same through the admin routes, as dev mode uses them.
    let admin = reqwest::Client::new();
    let base = world.sim.base_url();
    let answer = admin
        .post(format!("{base}/_sim/droplets/{id}/power_off"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    let (_, body) = world.api.get(&format!("/v2/droplets/{id}")).await;
    assert_eq!(body["droplet"]["status"], "off");
    wait_for("sshd to be gone", ACTIVE_DEADLINE, || async {
        (!ssh_port_open(&address)).then_some(())
    })
    .await;
    let answer = admin
        .post(format!("{base}/_sim/droplets/999/hang"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    world.stop().await;
}
