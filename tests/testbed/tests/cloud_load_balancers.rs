//! The simulator's load balancers: membership by droplet id, by tag (which refuses id
//! changes with 422), and deleted droplets leaving. Every answer is checked against the
//! official spec. Needs root (sshd on port 22).

mod cloud_support;

use cloud_support::World;
use serde_json::json;

const RULES: &str =
    r#"[{"entry_protocol":"http","entry_port":80,"target_protocol":"http","target_port":80}]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_removed_and_dropped_on_delete() {
    let world = World::start(|_| {}).await;
    let a = world.create("proxy-1", json!(1001), &[]).await;
    let b = world.create("proxy-2", json!(1001), &[]).await;
    let rules: serde_json::Value = serde_json::from_str(RULES).unwrap();
    let (status, body) = world
        .api
        .post(
            "/v2/load_balancers",
            json!({"name": "front", "region": "nyc3", "forwarding_rules": rules, "droplet_ids": [a]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let lb = body["load_balancer"]["id"].as_str().unwrap().to_owned();
    assert_eq!(world.sim.load_balancer_members(&lb), [a]);

    let path = format!("/v2/load_balancers/{lb}/droplets");
    let (status, _) = world.api.post(&path, json!({"droplet_ids": [b]})).await;
    assert_eq!(status, 204);
    let (status, body) = world.api.get(&format!("/v2/load_balancers/{lb}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["load_balancer"]["droplet_ids"], json!([a, b]));
    let (status, _) = world
        .api
        .delete(&path, Some(json!({"droplet_ids": [a]})))
        .await;
    assert_eq!(status, 204);
    assert_eq!(world.sim.load_balancer_members(&lb), [b]);
    let (status, body) = world.api.post(&path, json!({"droplet_ids": [12345]})).await;
    assert_eq!(status, 422, "{body}");

    world.wait_active(b).await;
    let (status, _) = world.api.delete(&format!("/v2/droplets/{b}"), None).await;
    assert_eq!(status, 204);
    assert!(world.sim.load_balancer_members(&lb).is_empty());
    let (status, body) = world.api.get("/v2/load_balancers").await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["total"], 1);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_based_balancer_follows_the_tag_and_refuses_id_changes() {
    let world = World::start(|_| {}).await;
    let rules: serde_json::Value = serde_json::from_str(RULES).unwrap();
    let (status, body) = world
        .api
        .post(
            "/v2/load_balancers",
            json!({"name": "front", "forwarding_rules": rules, "tag": "pool:proxy"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let lb = body["load_balancer"]["id"].as_str().unwrap().to_owned();
    let tagged = world.create("proxy-1", json!(1001), &["pool:proxy"]).await;
    world.create("web-1", json!(1001), &["pool:web"]).await;
    assert_eq!(world.sim.load_balancer_members(&lb), [tagged]);

    let path = format!("/v2/load_balancers/{lb}/droplets");
    let (status, body) = world
        .api
        .post(&path, json!({"droplet_ids": [tagged]}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("tag"), "{body}");
    let (status, _) = world
        .api
        .delete(&path, Some(json!({"droplet_ids": [tagged]})))
        .await;
    assert_eq!(status, 422);

    let seeded = world.sim.create_load_balancer("seeded", None);
    let (status, _) = world.api.get(&format!("/v2/load_balancers/{seeded}")).await;
    assert_eq!(status, 200);
    let (status, body) = world
        .api
        .post("/v2/load_balancers", json!({"name": "no-rules"}))
        .await;
    assert_eq!(status, 422, "{body}");
    world.stop().await;
}
