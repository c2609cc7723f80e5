//! The simulator's budget and faults: rate-limit headers, 429 with retry-after past the
//! budget, forced 429s, a 500 error rate that creates nothing, latency, and the admin
//! routes that set them. Every answer is checked against the official spec.

mod cloud_support;

use std::time::{Duration, Instant};

use cloud_support::World;
use serde_json::json;
use vmctl_testbed::cloud::Faults;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_budget_answers_429_with_retry_after() {
    let world = World::start(|c| {
        c.rate_limit_per_minute = 3;
        c.rate_limit_per_hour = 100;
    })
    .await;
    // Hourly numbers until the minute budget is spent; then the minute's.
    for (expected_limit, expected_remaining) in [(100, 99), (100, 98), (3, 0)] {
        let answer = world
            .api
            .call(reqwest::Method::GET, "/v2/account", None)
            .await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            header::<u32>(&answer.headers, "ratelimit-remaining"),
            expected_remaining
        );
        assert_eq!(
            header::<u32>(&answer.headers, "ratelimit-limit"),
            expected_limit
        );
        let reset: i64 = header(&answer.headers, "ratelimit-reset");
        assert!(reset > chrono::Utc::now().timestamp());
    }
    let answer = world
        .api
        .call(reqwest::Method::GET, "/v2/droplets", None)
        .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.body["id"], "too_many_requests");
    let retry_after: u64 = header(&answer.headers, "retry-after");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(header::<u32>(&answer.headers, "ratelimit-remaining"), 0);
    assert_eq!(header::<u32>(&answer.headers, "ratelimit-limit"), 3);
    let log = world.sim.request_log();
    assert_eq!(log.len(), 4);
    assert_eq!(log[3].status, 429);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_429s_come_first_then_requests_pass() {
    let world = World::start(|_| {}).await;
    world.sim.set_faults(Faults {
        force_429: 2,
        ..Faults::default()
    });
    for _ in 0..2 {
        let answer = world
            .api
            .call(reqwest::Method::GET, "/v2/account", None)
            .await;
        assert_eq!(answer.status, 429);
        assert_eq!(header::<u64>(&answer.headers, "retry-after"), 1);
    }
    let (status, _) = world.api.get("/v2/account").await;
    assert_eq!(status, 200);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rate_one_answers_500_and_creates_nothing() {
    let world = World::start(|_| {}).await;
    world.sim.set_faults(Faults {
        error_rate: 1.0,
        seed: 7,
        ..Faults::default()
    });
    let (status, body) = world
        .api
        .post(
            "/v2/droplets",
            json!({"name": "web-1", "size": "s-1vcpu-1gb", "image": 1001}),
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert!(body["message"].is_string());
    assert!(world.sim.droplets().is_empty());
    world.sim.set_faults(Faults::default());
    let (status, body) = world.api.get("/v2/droplets").await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["total"], 0);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_set_faults_and_read_the_request_log() {
    let world = World::start(|_| {}).await;
    let admin = reqwest::Client::new();
    let base = world.sim.base_url();
    let answer = admin
        .put(format!("{base}/_sim/faults"))
        .json(&json!({"latency": "300ms"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    assert_eq!(world.sim.faults().latency, Duration::from_millis(300));
    let started = Instant::now();
    let (status, _) = world.api.get("/v2/account").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let log: serde_json::Value = admin
        .get(format!("{base}/_sim/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log[0]["path"], "/v2/account");
    assert_eq!(log[0]["status"], 200);
    let answer = admin
        .put(format!("{base}/_sim/faults"))
        .json(&json!({"bogus": 1}))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_client_error());
    world.stop().await;
}

fn header<T: std::str::FromStr>(headers: &reqwest::header::HeaderMap, name: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}
