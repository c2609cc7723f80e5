//! The simulator's droplets: create → active with an address and a listening sshd, list by
//! tag across pages, delete kills it, and the 401/422 answers. Every answer is checked
//! against the official spec. Needs root (sshd on port 22).

mod cloud_support;

use std::collections::BTreeSet;

use cloud_support::{ipv4, ssh_port_open, World};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_droplet_turns_active_with_an_address_and_a_listening_sshd() {
    let world = World::start(|_| {}).await;
    let (status, body) = world
        .api
        .post(
            "/v2/droplets",
            json!({"name": "web-1", "region": "nyc3", "size": "s-1vcpu-1gb",
                   "image": "debian-12-x64", "tags": ["pool:web"]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["droplet"]["status"], "new");
    assert_eq!(body["droplet"]["networks"]["v4"], json!([]));
    let id = body["droplet"]["id"].as_u64().unwrap();
    let create_action = body["links"]["actions"][0]["id"].as_u64().unwrap();

    let droplet = world.wait_active(id).await;
    let address = ipv4(&droplet).expect("an active droplet has a public IPv4");
    assert!(address.starts_with("127."), "{address}");
    assert!(ssh_port_open(&address), "sshd of {address} refuses TCP");
    assert_eq!(
        world.wait_action(create_action).await["status"],
        "completed"
    );
    let sim = &world.sim.droplets()[0];
    assert_eq!(sim.tags, ["pool:web"]);
    assert!(sim.root.as_ref().unwrap().join("etc/hostname").is_file());
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_by_tag_follows_next_links_across_pages() {
    let world = World::start(|_| {}).await;
    let mut created = BTreeSet::new();
    for i in 1..=5 {
        created.insert(
            world
                .create(&format!("web-{i}"), json!("debian-12-x64"), &["pool:web"])
                .await,
        );
    }
    world
        .create("other-1", json!("debian-12-x64"), &["pool:other"])
        .await;

    let mut seen = BTreeSet::new();
    let mut next = Some("/v2/droplets?tag_name=pool:web&per_page=2".to_owned());
    let mut pages = 0;
    while let Some(url) = next {
        let (status, body) = world.api.get(&url).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["meta"]["total"], 5);
        for droplet in body["droplets"].as_array().unwrap() {
            assert!(seen.insert(droplet["id"].as_u64().unwrap()));
        }
        next = body["links"]["pages"]["next"].as_str().map(str::to_owned);
        pages += 1;
        assert!(pages <= 3, "more pages than 5 droplets need");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_answers_204_then_404_and_kills_sshd() {
    let world = World::start(|_| {}).await;
    let id = world.create("db-1", json!(1001), &[]).await;
    let droplet = world.wait_active(id).await;
    let address = ipv4(&droplet).unwrap();
    let path = format!("/v2/droplets/{id}");
    let (status, _) = world.api.delete(&path, None).await;
    assert_eq!(status, 204);
    let (status, body) = world.api.get(&path).await;
    assert_eq!(status, 404);
    assert_eq!(body["id"], "not_found");
    assert!(
        !ssh_port_open(&address),
        "sshd of a deleted droplet still listens"
    );
    let (status, _) = world.api.delete(&path, None).await;
    assert_eq!(status, 404);
    assert!(world.sim.droplets().is_empty());
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_droplet_deleted_while_new_is_not_left_running() {
    let world = World::start(|_| {}).await;
    let (status, body) = world
        .api
        .post(
            "/v2/droplets",
            json!({"name": "gone-1", "size": "s-1vcpu-1gb", "image": 1001}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["droplet"]["id"].as_u64().unwrap();
    let create_action = body["links"]["actions"][0]["id"].as_u64().unwrap();
    let (status, _) = world.api.delete(&format!("/v2/droplets/{id}"), None).await;
    assert_eq!(status, 204);
    // The create action ends (errored) only once nothing of the droplet is left.
    assert_eq!(world.wait_action(create_action).await["status"], "errored");
    assert!(!world.dir.path().join("cloud/droplets/gone-1").exists());
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_creates_are_refused_with_422_and_create_nothing() {
    let world = World::start(|_| {}).await;
    let cases = [
        json!({"name": "web_1", "size": "s-1vcpu-1gb", "image": 1001}),
        json!({"name": "-web", "size": "s-1vcpu-1gb", "image": 1001}),
        json!({"name": "web-1", "size": "s-1vcpu-1gb", "image": "no-such-image"}),
        json!({"name": "web-1", "size": "s-1vcpu-1gb", "image": 987_654}),
        json!({"name": "web-1", "size": "s-1vcpu-1gb", "image": 1001, "ssh_keys": [1]}),
        json!({"name": "web-1", "image": 1001}),
    ];
    for case in cases {
        let (status, body) = world.api.post("/v2/droplets", case.clone()).await;
        assert_eq!(status, 422, "{case} → {body}");
        assert_eq!(body["id"], "unprocessable_entity");
    }
    let (status, body) = world.api.get("/v2/droplets").await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["total"], 0);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_token_get_401() {
    let world = World::start(|_| {}).await;
    let anonymous = world.api.without_token();
    let answer = anonymous
        .call(reqwest::Method::GET, "/v2/droplets", None)
        .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.body["id"], "Unauthorized");
    assert!(answer.headers.contains_key("ratelimit-remaining"));
    let (status, _) = anonymous
        .post(
            "/v2/droplets",
            json!({"name": "x", "size": "s", "image": 1001}),
        )
        .await;
    assert_eq!(status, 401);
    assert!(world.sim.droplets().is_empty());
    let (status, body) = world.api.get("/v2/account").await;
    assert_eq!(status, 200, "{body}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_keys_registered_through_the_api_can_be_named_in_a_create() {
    let world = World::start(|_| {}).await;
    let (status, body) = world
        .api
        .post(
            "/v2/account/keys",
            json!({"name": "ops", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests ops"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let key_id = body["ssh_key"]["id"].as_u64().unwrap();
    let fingerprint = body["ssh_key"]["fingerprint"].as_str().unwrap().to_owned();
    let (status, body) = world.api.get("/v2/account/keys").await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["total"], 2, "the simulator's own key and ours");
    let (status, body) = world
        .api
        .post(
            "/v2/droplets",
            json!({"name": "k-1", "size": "s-1vcpu-1gb", "image": 1001,
                   "ssh_keys": [key_id, fingerprint]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    world.stop().await;
}
