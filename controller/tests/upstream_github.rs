//! The upstream clients against a fake GitHub and update-check API (`upstream_support`):
//! pagination by `Link`, `ETag` reuse, rate limits, tag refs, and the bad answers that must
//! stop a rollout with a clear error.

mod upstream_support;

use std::time::Duration;

use semver::Version;
use serde_json::json;
use upstream_support::{release, unix_now, FakeGithub, Fault, TOKEN};
use vmctl_controller::upstream::{GithubClient, HttpSettings, Upstream, UpstreamError};

fn five_releases() -> Vec<serde_json::Value> {
    vec![
        release("v4.4.0", "2026-01-05T00:00:00Z", "### Features"),
        release("v4.3.2", "2026-01-04T00:00:00Z", "### Security\n\n- Fix"),
        release(
            "v4.3.1",
            "2026-01-03T00:00:00Z",
            "Fixes GHSA-3fjr-858r-92rw",
        ),
        release("v4.3.0", "2026-01-02T00:00:00Z", ""),
        release("v4.2.9", "2026-01-01T00:00:00Z", ""),
    ]
}

#[tokio::test]
async fn every_page_is_followed_through_link_headers() {
    let fake = FakeGithub::start().await;
    let mut many: Vec<_> = (0..250)
        .map(|i| {
            release(
                &format!("v4.{}.{}", i / 10, i % 10),
                "2026-01-01T00:00:00Z",
                "",
            )
        })
        .collect();
    many.reverse();
    fake.set_releases(many);
    let releases = fake.client().list_releases().await.unwrap();
    assert_eq!(releases.len(), 250);
    assert_eq!(releases[0].tag, "v4.24.9");
    assert_eq!(releases[249].tag, "v4.0.0");
    let uris: Vec<String> = fake.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(
        uris,
        vec![
            "/repos/mastodon/mastodon/releases?per_page=100",
            "/repositories/42/releases?per_page=100&page=2",
            "/repositories/42/releases?per_page=100&page=3",
        ]
    );
}

#[tokio::test]
async fn security_releases_are_marked_from_notes_and_update_check() {
    let fake = FakeGithub::start().await;
    fake.set_releases(five_releases());
    fake.set_update_check(json!({"updatesAvailable": [
        {"version": "4.4.0", "urgent": true, "type": "minor", "releaseNotes": "https://x"},
        {"version": "4.3.0", "urgent": false, "type": "patch", "releaseNotes": "https://y"},
    ]}));
    let upstream = Upstream::new(fake.client(), Some(fake.update_check_client()));
    let feed = upstream.releases(&Version::new(4, 2, 9)).await.unwrap();
    assert!(feed.update_check_error.is_none());
    let security: Vec<(&str, bool)> = feed
        .releases
        .iter()
        .map(|r| (r.tag.as_str(), r.security))
        .collect();
    assert_eq!(
        security,
        vec![
            ("v4.4.0", true),
            ("v4.3.2", true),
            ("v4.3.1", true),
            ("v4.3.0", false),
            ("v4.2.9", false),
        ]
    );
    assert_eq!(fake.count("/update-check?version=4.2.9"), 1);
}

#[tokio::test]
async fn a_failing_update_check_leaves_the_feed_usable() {
    let fake = FakeGithub::start().await;
    fake.set_releases(five_releases());
    fake.fault(Fault::body("/update-check", "<html>oops</html>"));
    let upstream = Upstream::new(fake.client(), Some(fake.update_check_client()));
    let feed = upstream.releases(&Version::new(4, 2, 9)).await.unwrap();
    assert_eq!(feed.releases.len(), 5);
    let err = feed.update_check_error.expect("the error is reported");
    assert!(err.contains("GET /update-check"), "{err}");
}

#[tokio::test]
async fn unchanged_pages_are_reused_through_etags() {
    let fake = FakeGithub::start().await;
    fake.set_releases(five_releases());
    let client = fake.client();
    let first = client.list_releases().await.unwrap();
    let second = client.list_releases().await.unwrap();
    assert_eq!(first, second);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].if_none_match, None);
    assert_eq!(requests[1].if_none_match.as_deref(), Some("W/\"1-1\""));
    assert_eq!(requests[1].status, 304);
    // A change upstream is seen.
    let mut changed = five_releases();
    changed.insert(0, release("v4.4.1", "2026-01-06T00:00:00Z", ""));
    fake.set_releases(changed);
    let third = client.list_releases().await.unwrap();
    assert_eq!(third[0].tag, "v4.4.1");
    assert_eq!(fake.requests()[2].status, 200);
}

#[tokio::test]
async fn the_token_is_sent_as_a_bearer_and_never_shown() {
    let fake = FakeGithub::start().await;
    fake.set_releases(five_releases());
    let client = fake.client();
    client.list_releases().await.unwrap();
    assert_eq!(
        fake.requests()[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert!(!format!("{client:?}").contains(TOKEN));
    let mut anonymous = fake.config();
    anonymous.token = None;
    GithubClient::new(anonymous)
        .unwrap()
        .list_releases()
        .await
        .unwrap();
    assert_eq!(fake.requests()[1].authorization, None);
}

#[tokio::test]
async fn a_used_up_rate_limit_is_waited_out_before_the_next_request() {
    let fake = FakeGithub::start().await;
    let many: Vec<_> = (0..150)
        .map(|i| release(&format!("v4.0.{i}"), "2026-01-01T00:00:00Z", ""))
        .collect();
    fake.set_releases(many);
    let reset = unix_now() + 1;
    fake.exhaust_rate_limit_after_next(reset);
    let releases = fake.client().list_releases().await.unwrap();
    assert_eq!(releases.len(), 150);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests.iter().all(|r| r.status == 200), "{requests:?}");
    assert!(
        requests[1].at >= reset,
        "page 2 was asked for before the reset"
    );
}

#[tokio::test]
async fn a_rate_limit_that_resets_too_late_fails_with_a_clear_error() {
    let fake = FakeGithub::start().await;
    fake.set_releases(five_releases());
    fake.set_rate_limit(0, unix_now() + 3600);
    let client = fake.client();
    let err = client.list_releases().await.unwrap_err();
    assert!(matches!(err, UpstreamError::RateLimited { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("rate limit is used up"), "{text}");
    assert!(text.contains("configure a token"), "{text}");
    assert_eq!(fake.requests().len(), 1);
    // The client remembers: the next call fails without spending a request.
    let again = client.list_releases().await.unwrap_err();
    assert!(
        matches!(again, UpstreamError::RateLimited { .. }),
        "{again}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_an_answer() {
    let fake = FakeGithub::start().await;
    fake.set_releases(five_releases());
    fake.fault(Fault::status("/repos/mastodon/mastodon/releases", 502, 2));
    let releases = fake.client().list_releases().await.unwrap();
    assert_eq!(releases.len(), 5);
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn a_garbage_answer_is_refused_without_retrying() {
    let fake = FakeGithub::start().await;
    fake.set_releases(five_releases());
    fake.fault(Fault::body(
        "/repos/mastodon/mastodon/releases",
        "<html>Unicorn!</html>",
    ));
    let err = fake.client().list_releases().await.unwrap_err();
    assert!(matches!(err, UpstreamError::Decode { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("GET /repos/mastodon/mastodon/releases is not a valid release feed"),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn an_empty_feed_is_an_error() {
    let fake = FakeGithub::start().await;
    let err = fake.client().list_releases().await.unwrap_err();
    assert!(matches!(err, UpstreamError::EmptyFeed { .. }), "{err}");
    assert!(err.to_string().contains("no rollout starts"), "{err}");
}

#[tokio::test]
async fn a_feed_that_never_answers_times_out() {
    let fake = FakeGithub::start().await;
    fake.set_releases(five_releases());
    fake.fault(Fault::delay(
        "/repos/mastodon/mastodon/releases",
        Duration::from_secs(30),
        10,
    ));
    let mut config = fake.config();
    config.http = HttpSettings {
        request_timeout: Duration::from_millis(200),
        max_attempts: 2,
        ..config.http
    };
    let err = GithubClient::new(config)
        .unwrap()
        .list_releases()
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::RequestTimeout { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "GET /repos/mastodon/mastodon/releases got no answer within 200ms"
    );
}

#[tokio::test]
async fn a_call_that_outlives_its_deadline_times_out() {
    let fake = FakeGithub::start().await;
    fake.set_releases(five_releases());
    fake.fault(Fault::delay(
        "/repos/mastodon/mastodon/releases",
        Duration::from_secs(30),
        10,
    ));
    let mut config = fake.config();
    config.http = HttpSettings {
        call_timeout: Duration::from_millis(300),
        ..config.http
    };
    let err = GithubClient::new(config)
        .unwrap()
        .list_releases()
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::Timeout { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("timed out after 300ms waiting for GET /repos/mastodon/mastodon/releases"),
        "{err}"
    );
}

#[tokio::test]
async fn a_lightweight_tag_names_its_commit() {
    let fake = FakeGithub::start().await;
    let sha = "0123456789abcdef0123456789abcdef01234567";
    fake.add_ref("v4.3.1", sha, "commit");
    assert_eq!(fake.client().tag_commit("v4.3.1").await.unwrap(), sha);
    assert_eq!(
        fake.requests()[0].uri,
        "/repos/mastodon/mastodon/git/ref/tags/v4.3.1"
    );
}

#[tokio::test]
async fn an_annotated_tag_is_followed_to_its_commit() {
    let fake = FakeGithub::start().await;
    let tag_sha = "1111111111111111111111111111111111111111";
    let commit = "2222222222222222222222222222222222222222";
    fake.add_ref("v4.3.1", tag_sha, "tag");
    fake.add_tag_object(tag_sha, commit, "commit");
    assert_eq!(fake.client().tag_commit("v4.3.1").await.unwrap(), commit);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn bad_tags_are_refused_before_any_request_and_unknown_ones_are_not_found() {
    let fake = FakeGithub::start().await;
    let client = fake.client();
    for bad in ["v4.3.1;rm -rf /", "../../etc/passwd", "v4.3.1/../x", "main"] {
        let err = client.tag_commit(bad).await.unwrap_err();
        assert!(matches!(err, UpstreamError::InvalidTag { .. }), "{err}");
    }
    assert_eq!(fake.requests().len(), 0);
    let err = client.tag_commit("v9.9.9").await.unwrap_err();
    assert!(matches!(err, UpstreamError::NotFound { .. }), "{err}");
    assert!(
        err.to_string().starts_with("tag v9.9.9 was not found"),
        "{err}"
    );
    fake.add_ref("v4.3.2", "not-a-sha", "commit");
    let err = client.tag_commit("v4.3.2").await.unwrap_err();
    assert!(matches!(err, UpstreamError::BadTagRef { .. }), "{err}");
}
