//! The DigitalOcean client against a fake API (`cloud_support`): retries, rate limits,
//! pagination, create idempotency and the errors a person has to act on.

mod cloud_support;

use std::time::{Duration, Instant};

use axum::http::Method;
use cloud_support::{FakeDo, Fault, TOKEN};
use serde_json::json;
use vmctl_controller::cloud::{
    CloudError, CloudToken, CreateDroplet, DoClient, DropletAction, DropletStatus, ImageRef,
    RetryHint,
};
use vmctl_controller::retry::Deadline;

fn create_request(name: &str) -> CreateDroplet {
    CreateDroplet {
        name: name.into(),
        region: "fra1".into(),
        size: "s-1vcpu-1gb".into(),
        image: ImageRef::from_snapshot_id("4242"),
        vpc_uuid: Some("vpc-1".into()),
        tags: vec!["vmctl-web".into(), "vmctl".into()],
        ssh_keys: vec!["aa:bb".into()],
        user_data: Some("#cloud-config\n".into()),
    }
}

#[tokio::test]
async fn a_read_is_retried_through_5xx_answers_until_it_succeeds() {
    let fake = FakeDo::start().await;
    let id = fake.add_droplet("web-1", &["vmctl-web"], "active");
    let path = format!("/v2/droplets/{id}");
    fake.fault(Fault::new(Method::GET, &path, 503, 2));
    let d = fake
        .client()
        .get_droplet(id)
        .await
        .unwrap()
        .expect("droplet exists");
    assert_eq!(d.status, DropletStatus::Active);
    assert!(d.public_ipv4.is_some());
    assert_eq!(fake.requests(&Method::GET, &path), 3);
}

#[tokio::test]
async fn retries_stop_after_max_attempts_with_the_servers_error() {
    let fake = FakeDo::start().await;
    fake.fault(Fault::new(Method::GET, "/v2/account", 500, 100));
    let mut config = fake.config();
    config.max_attempts = 3;
    let err = DoClient::new(config).unwrap().account().await.unwrap_err();
    assert!(
        matches!(err, CloudError::Server { status: 500, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("request id req-fault"), "{err}");
    assert_eq!(fake.requests(&Method::GET, "/v2/account"), 3);
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_clamped_by_the_backoff() {
    let fake = FakeDo::start().await;
    let mut f = Fault::new(Method::GET, "/v2/account", 429, 1);
    f.body = json!({"id": "too_many_requests", "message": "API rate limit exceeded."});
    f.headers = vec![("retry-after", "3600".into())];
    fake.fault(f);
    let started = Instant::now();
    let account = fake.client().account().await.unwrap();
    assert_eq!(account.status, "active");
    // retry-after 3600 s is clamped to the backoff's 50 ms cap.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(50) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(fake.requests(&Method::GET, "/v2/account"), 2);
}

#[tokio::test]
async fn rate_limit_headers_are_tracked_for_status() {
    let fake = FakeDo::start().await;
    fake.world.lock().unwrap().remaining = 4321;
    let client = fake.client();
    client.account().await.unwrap();
    let rl = client.rate_limit();
    assert_eq!(rl.server_remaining, Some(4321));
    assert_eq!(rl.server_limit, Some(5000));
    assert_eq!(rl.used_last_minute, 1);
    assert_eq!((rl.per_minute, rl.per_hour), (240, 4800));
    assert_eq!(client.requests_sent(), 1);
}

#[tokio::test]
async fn a_second_action_on_a_busy_droplet_is_a_pending_event_and_not_resent() {
    let fake = FakeDo::start().await;
    let id = fake.add_droplet("web-1", &["vmctl-web"], "active");
    let client = fake.client();
    client
        .droplet_action(id, DropletAction::PowerCycle)
        .await
        .unwrap();
    let err = client
        .droplet_action(id, DropletAction::PowerOff)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CloudError::PendingEvent { droplet } if droplet == id),
        "{err}"
    );
    assert!(matches!(err.retry_hint(), RetryHint::After(_)));
    assert_eq!(
        fake.requests(&Method::POST, &format!("/v2/droplets/{id}/actions")),
        2
    );
}

#[tokio::test]
async fn an_action_post_that_failed_on_the_server_is_not_blindly_resent() {
    let fake = FakeDo::start().await;
    let id = fake.add_droplet("web-1", &["vmctl-web"], "active");
    let path = format!("/v2/droplets/{id}/actions");
    fake.fault(Fault::new(Method::POST, &path, 500, 1));
    let err = fake
        .client()
        .droplet_action(id, DropletAction::PowerCycle)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CloudError::Server { status: 500, .. }),
        "{err}"
    );
    assert_eq!(fake.requests(&Method::POST, &path), 1);
}

#[tokio::test]
async fn members_of_a_tag_based_balancer_are_refused_with_a_clear_error() {
    let fake = FakeDo::start().await;
    fake.add_lb("lb-tagged", "vmctl-proxy");
    let err = fake
        .client()
        .lb_add_droplets("lb-tagged", &[1, 2])
        .await
        .unwrap_err();
    assert!(
        matches!(err, CloudError::TagBasedBalancer { ref lb, ref tag } if lb == "lb-tagged" && tag.as_deref() == Some("vmctl-proxy")),
        "{err}"
    );
    assert!(err.to_string().contains("by tag"), "{err}");
    assert_eq!(err.retry_hint(), RetryHint::Permanent);
}

#[tokio::test]
async fn balancer_members_are_added_and_removed_by_id() {
    let fake = FakeDo::start().await;
    fake.add_lb("lb-1", "");
    let client = fake.client();
    client.lb_add_droplets("lb-1", &[7, 8]).await.unwrap();
    client.lb_remove_droplets("lb-1", &[7]).await.unwrap();
    let lb = client.get_load_balancer("lb-1").await.unwrap();
    assert_eq!(lb.droplet_ids, vec![8]);
    assert_eq!(lb.tag, None);
}

#[tokio::test]
async fn listing_by_tag_follows_next_links_across_three_pages() {
    let fake = FakeDo::start().await;
    fake.world.lock().unwrap().page_size = 2;
    for i in 0..5 {
        fake.add_droplet(&format!("web-{i}"), &["vmctl-web"], "active");
    }
    fake.add_droplet("db-0", &["other"], "active");
    let droplets = fake
        .client()
        .list_droplets_by_tag("vmctl-web")
        .await
        .unwrap();
    let names: Vec<_> = droplets.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["web-0", "web-1", "web-2", "web-3", "web-4"]);
    // The links name api.digitalocean.com; all three requests still went to the fake.
    assert_eq!(fake.requests(&Method::GET, "/v2/droplets"), 3);
    let first = &fake.recorded()[0];
    assert!(
        first.query.contains("per_page=200") && first.query.contains("tag_name=vmctl-web"),
        "{}",
        first.query
    );
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_finds_the_droplet_by_name_instead_of_duplicating() {
    let fake = FakeDo::start().await;
    let mut f = Fault::new(Method::POST, "/v2/droplets", 500, 1);
    f.after_work = true;
    fake.fault(f);
    let d = fake
        .client()
        .create_droplet(&create_request("web-7f3a"))
        .await
        .unwrap();
    assert_eq!(d.name, "web-7f3a");
    assert_eq!(fake.droplets_named("web-7f3a"), 1);
    assert_eq!(fake.requests(&Method::POST, "/v2/droplets"), 1);
}

#[tokio::test]
async fn a_create_returns_an_existing_droplet_with_the_same_name_without_posting() {
    let fake = FakeDo::start().await;
    let id = fake.add_droplet("web-7f3a", &["vmctl-web"], "active");
    let d = fake
        .client()
        .create_droplet(&create_request("web-7f3a"))
        .await
        .unwrap();
    assert_eq!(d.id, id);
    assert_eq!(fake.requests(&Method::POST, "/v2/droplets"), 0);
}

#[tokio::test]
async fn a_create_is_resent_after_a_failure_that_made_nothing() {
    let fake = FakeDo::start().await;
    fake.fault(Fault::new(Method::POST, "/v2/droplets", 503, 1));
    let d = fake
        .client()
        .create_droplet(&create_request("web-1"))
        .await
        .unwrap();
    assert_eq!(d.status, DropletStatus::New);
    assert_eq!(d.image_id, Some(4242));
    assert_eq!(fake.droplets_named("web-1"), 1);
    assert_eq!(fake.requests(&Method::POST, "/v2/droplets"), 2);
}

#[tokio::test]
async fn a_bad_token_is_a_401_that_names_the_fix_and_is_not_retried() {
    let fake = FakeDo::start().await;
    let mut config = fake.config();
    config.token = CloudToken::new("dop_v1_wrong_token", "test").unwrap();
    let err = DoClient::new(config).unwrap().account().await.unwrap_err();
    assert!(matches!(err, CloudError::Unauthorized { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("DIGITALOCEAN_TOKEN") && text.contains("--do-token-file"),
        "{text}"
    );
    assert!(
        !text.contains("wrong_token") && !text.contains(TOKEN),
        "{text}"
    );
    assert_eq!(fake.requests(&Method::GET, "/v2/account"), 1);
}

#[tokio::test]
async fn missing_droplets_read_as_none_and_deleting_them_twice_succeeds() {
    let fake = FakeDo::start().await;
    let client = fake.client();
    assert_eq!(client.get_droplet(999_999).await.unwrap(), None);
    let id = fake.add_droplet("web-1", &["vmctl-web"], "active");
    client.delete_droplet(id).await.unwrap();
    client.delete_droplet(id).await.unwrap();
    assert_eq!(client.get_droplet(id).await.unwrap(), None);
    assert!(matches!(
        client.get_action(12).await,
        Err(CloudError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_snapshot_is_found_by_name_once_its_action_completes() {
    let fake = FakeDo::start().await;
    let id = fake.add_droplet("web-1", &["vmctl-web"], "active");
    let client = fake.client();
    let action = client
        .droplet_action(
            id,
            DropletAction::Snapshot {
                name: "web-2024-05-01".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        client
            .find_snapshot_by_name("web-2024-05-01")
            .await
            .unwrap(),
        None
    );
    let deadline = Deadline::after("snapshot of web-1", Duration::from_secs(10));
    let done = client
        .wait_action(action.id, &deadline, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(done.kind, "snapshot");
    let snap = client
        .find_snapshot_by_name("web-2024-05-01")
        .await
        .unwrap()
        .expect("snapshot exists");
    assert_eq!(snap.resource_id, Some(id.to_string()));
    assert!(snap.tags.is_empty());
    client.delete_snapshot(&snap.id).await.unwrap();
    client.delete_snapshot(&snap.id).await.unwrap();
    assert!(client.list_snapshots().await.unwrap().is_empty());
}

#[tokio::test]
async fn waiting_on_an_action_gives_up_at_its_deadline() {
    let fake = FakeDo::start().await;
    let id = fake.add_droplet("web-1", &["vmctl-web"], "active");
    let client = fake.client();
    let action = client
        .droplet_action(id, DropletAction::PowerCycle)
        .await
        .unwrap();
    let deadline = Deadline::after("power cycle of web-1", Duration::from_millis(30));
    let err = client
        .wait_action(action.id, &deadline, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("power cycle of web-1"), "{err}");
}

#[tokio::test]
async fn connection_errors_are_retried_then_reported() {
    // A port nobody listens on: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fake = FakeDo::start().await;
    let mut config = fake.config();
    config.base_url = format!("http://127.0.0.1:{port}");
    config.max_attempts = 3;
    let client = DoClient::new(config).unwrap();
    let err = client.account().await.unwrap_err();
    assert!(matches!(err, CloudError::Transport { .. }), "{err}");
    assert_eq!(client.requests_sent(), 3);
}
