//! The spec validator itself, against the real bundled spec: it accepts the simulator's
//! shapes and rejects broken ones, so the other cloud tests' checks mean something.

mod cloud_support;

use serde_json::json;
use vmctl_testbed::cloud::shapes;
use vmctl_testbed::cloud::state::{DropletRecord, DropletStatus, ImageKind, ImageRecord};

fn droplet() -> serde_json::Value {
    let now = chrono::Utc::now();
    let image = ImageRecord {
        id: 1001,
        name: "12 x64".into(),
        kind: ImageKind::Base,
        slug: Some("debian-12-x64".into()),
        distribution: "Debian".into(),
        created_at: now,
        resource_id: None,
        root: None,
        regions: vec!["nyc3".into()],
        tags: vec![],
    };
    shapes::droplet(&DropletRecord {
        id: 7,
        name: "web-1".into(),
        farm_name: "web-1".into(),
        status: DropletStatus::Active,
        size_slug: "s-1vcpu-1gb".into(),
        region: "nyc3".into(),
        image,
        tags: vec!["a".into()],
        vpc_uuid: "v".into(),
        created_at: now,
        address: Some("127.9.9.9".parse().unwrap()),
        root: None,
        host_key_public: None,
        provisioned: true,
        snapshot_ids: vec![],
        pending_action: None,
        error: None,
    })
}

fn headers() -> Vec<String> {
    ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]
        .map(String::from)
        .to_vec()
}

#[test]
fn the_real_spec_accepts_a_droplet_and_rejects_broken_ones() {
    let spec = cloud_support::spec();
    let good = json!({ "droplet": droplet() });
    let bytes = serde_json::to_vec(&good).unwrap();
    spec.check("GET", "/v2/droplets/7", 200, &headers(), &bytes)
        .unwrap();

    let mut missing = droplet();
    missing.as_object_mut().unwrap().remove("memory");
    let bytes = serde_json::to_vec(&json!({ "droplet": missing })).unwrap();
    let errors = spec
        .check("GET", "/v2/droplets/7", 200, &headers(), &bytes)
        .unwrap_err();
    assert!(errors.join("\n").contains("memory"), "{errors:?}");

    let mut bad_status = droplet();
    bad_status["status"] = json!("exploded");
    let bytes = serde_json::to_vec(&json!({ "droplet": bad_status })).unwrap();
    assert!(spec
        .check("GET", "/v2/droplets/7", 200, &headers(), &bytes)
        .is_err());

    let bytes = serde_json::to_vec(&json!({ "droplet": droplet() })).unwrap();
    assert!(
        spec.check("GET", "/v2/droplets/7", 200, &[], &bytes)
            .is_err(),
        "missing rate-limit headers must be reported"
    );
    let error = br#"{"id":"not_found"}"#;
    assert!(spec
        .check("GET", "/v2/droplets/7", 404, &headers(), error)
        .is_err());
}
