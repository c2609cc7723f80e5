//! Every request body the DigitalOcean client sends is checked against the request schema of
//! its operation in the official spec (`shared/reference/digitalocean-openapi.v2.json`).

mod cloud_support;

use std::time::Duration;

use cloud_support::{spec, FakeDo};
use vmctl_controller::cloud::{CreateDroplet, DropletAction, ImageRef};
use vmctl_controller::retry::Deadline;

#[tokio::test]
async fn every_request_body_the_client_sends_matches_the_spec() {
    let fake = FakeDo::start().await;
    fake.add_lb("lb-1", "");
    let client = fake.client();
    let d = client
        .create_droplet(&CreateDroplet {
            name: "web-1".into(),
            region: "fra1".into(),
            size: "s-1vcpu-1gb".into(),
            image: ImageRef::from_snapshot_id("4242"),
            vpc_uuid: Some("vpc-1".into()),
            tags: vec!["vmctl-web".into()],
            ssh_keys: vec!["aa:bb".into()],
            user_data: Some("#cloud-config\n".into()),
        })
        .await
        .unwrap();
    let deadline = Deadline::after("actions", Duration::from_secs(10));
    for action in [
        DropletAction::Snapshot {
            name: "snap-1".into(),
        },
        DropletAction::PowerCycle,
        DropletAction::PowerOff,
        DropletAction::PowerOn,
    ] {
        let a = client.droplet_action(d.id, action).await.unwrap();
        client
            .wait_action(a.id, &deadline, Duration::from_millis(5))
            .await
            .unwrap();
    }
    client.lb_add_droplets("lb-1", &[d.id]).await.unwrap();
    client.lb_remove_droplets("lb-1", &[d.id]).await.unwrap();

    let spec = spec::load();
    let mut checked = Vec::new();
    for r in fake.recorded() {
        let Some(body) = r.body else { continue };
        let (template, schema) = spec::request_schema(&spec, r.method.as_str(), &r.path)
            .unwrap_or_else(|| panic!("no request schema in the spec for {} {}", r.method, r.path));
        let mut errors = Vec::new();
        spec::check(&spec, schema, &body, "body", &mut errors);
        assert!(
            errors.is_empty(),
            "{} {template}: {body} violates the spec: {errors:#?}",
            r.method
        );
        checked.push(format!("{} {template}", r.method));
    }
    checked.sort();
    checked.dedup();
    assert_eq!(
        checked,
        [
            "DELETE /v2/load_balancers/{lb_id}/droplets",
            "POST /v2/droplets",
            "POST /v2/droplets/{droplet_id}/actions",
            "POST /v2/load_balancers/{lb_id}/droplets",
        ]
    );
}

#[test]
fn the_checker_catches_a_missing_or_mistyped_field() {
    let spec = spec::load();
    let (_, schema) = spec::request_schema(&spec, "POST", "/v2/droplets").unwrap();
    let mut errors = Vec::new();
    spec::check(
        &spec,
        schema,
        &serde_json::json!({"name": "x", "size": "s"}),
        "body",
        &mut errors,
    );
    assert!(!errors.is_empty(), "a create without image must fail");
    let (_, schema) = spec::request_schema(&spec, "POST", "/v2/load_balancers/x/droplets").unwrap();
    let mut errors = Vec::new();
    spec::check(
        &spec,
        schema,
        &serde_json::json!({"droplet_ids": ["1"]}),
        "body",
        &mut errors,
    );
    assert!(!errors.is_empty(), "string droplet ids must fail");
}
