//! The GitHub-compatible API and the update-check endpoint, over a real repository: shapes,
//! pagination, ETags, refs, rate-limit headers and the fault knobs.

use std::time::Duration;

use reqwest::header::{ETAG, IF_NONE_MATCH, LINK};
use reqwest::StatusCode;
use serde_json::Value;
use vmctl_testbed::upstream::{ApiFaults, Upstream, UpstreamServer};

struct Fixture {
    upstream: Upstream,
    server: UpstreamServer,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::create(&dir.path().join("upstream")).unwrap();
    let server = upstream.serve("127.0.0.1:0".parse().unwrap()).unwrap();
    Fixture {
        upstream,
        server,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl Fixture {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.server.base_url()))
            .send()
            .await
            .unwrap()
    }

    async fn json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.get(path).await;
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

fn tags(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["tag_name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn releases_list_newest_first_in_github_shape() {
    let f = start();
    let response = f.get("/repos/mastodon/mastodon/releases").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-ratelimit-limit"], "5000");
    assert_eq!(headers["x-ratelimit-remaining"], "4999");
    assert!(headers["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert!(headers.get(LINK).is_none(), "one page needs no Link");
    let list: Value = response.json().await.unwrap();
    assert_eq!(tags(&list), ["v4.4.1", "v4.4.0", "v4.3.1", "v4.3.0"]);
    let v431 = &list[2];
    for key in ["id", "name", "body", "published_at", "html_url"] {
        assert!(!v431[key].is_null(), "{key} missing");
    }
    assert!(v431["id"].is_u64());
    assert_eq!(v431["draft"], false);
    assert_eq!(v431["prerelease"], false);
    assert_eq!(
        v431["html_url"],
        "https://github.com/mastodon/mastodon/releases/tag/v4.3.1"
    );
    assert!(v431["body"].as_str().unwrap().contains("### Security"));
    assert!(v431["published_at"]
        .as_str()
        .unwrap()
        .starts_with("2024-10-21T12:00:00"));

    let (status, latest) = f.json("/repos/mastodon/mastodon/releases/latest").await;
    assert_eq!(
        (status, latest["tag_name"].as_str()),
        (StatusCode::OK, Some("v4.4.1"))
    );
    let (status, _) = f.json("/repos/someone/else/releases").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pagination_follows_link_headers() {
    let f = start();
    let mut url = format!(
        "{}/repos/mastodon/mastodon/releases?per_page=3",
        f.server.base_url()
    );
    let mut seen = Vec::new();
    for _ in 0..5 {
        let response = f.client.get(&url).send().await.unwrap();
        let link = response
            .headers()
            .get(LINK)
            .map(|v| v.to_str().unwrap().to_owned());
        seen.extend(tags(&response.json().await.unwrap()));
        let next = link.as_deref().and_then(|l| {
            l.split(", ")
                .find(|part| part.ends_with("rel=\"next\""))
                .map(|part| part[1..part.find('>').unwrap()].to_owned())
        });
        match next {
            Some(next) => {
                assert!(link.unwrap().contains("rel=\"last\""));
                url = next;
            }
            None => break,
        }
    }
    assert_eq!(seen, ["v4.4.1", "v4.4.0", "v4.3.1", "v4.3.0"]);
    let (_, beyond) = f
        .json("/repos/mastodon/mastodon/releases?per_page=3&page=9")
        .await;
    assert_eq!(beyond, Value::Array(Vec::new()));
}

#[tokio::test]
async fn etags_answer_304_until_a_release_is_published() {
    let f = start();
    let path = format!("{}/repos/mastodon/mastodon/releases", f.server.base_url());
    let first = f.client.get(&path).send().await.unwrap();
    let etag = first.headers()[ETAG].to_str().unwrap().to_owned();
    assert!(etag.starts_with("W/\""));
    let again = f
        .client
        .get(&path)
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        again.headers()["x-ratelimit-remaining"],
        "4999",
        "304s are free"
    );

    let upstream = f.upstream.clone();
    tokio::task::spawn_blocking(move || upstream.publish("v4.4.2", "- Fix", false, true))
        .await
        .unwrap()
        .unwrap();
    let changed = f
        .client
        .get(&path)
        .header(IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(tags(&changed.json().await.unwrap())[0], "v4.4.2");
}

#[tokio::test]
async fn tag_refs_resolve_to_commits() {
    let f = start();
    let commits = f.upstream.tags().unwrap();
    let (status, body) = f.json("/repos/mastodon/mastodon/git/ref/tags/v4.3.1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["ref"], "refs/tags/v4.3.1");
    assert_eq!(body["object"]["type"], "commit");
    assert_eq!(body["object"]["sha"], commits["v4.3.1"].as_str());
    let (status, body) = f.json("/repos/mastodon/mastodon/git/ref/tags/v9.9.9").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Not Found");
}

#[tokio::test]
async fn update_check_lists_newer_versions_with_urgency() {
    let f = start();
    let (status, body) = f.json("/update-check?version=4.3.0").await;
    assert_eq!(status, StatusCode::OK);
    let updates = body["updatesAvailable"].as_array().unwrap();
    let summary: Vec<(&str, bool, &str)> = updates
        .iter()
        .map(|u| {
            (
                u["version"].as_str().unwrap(),
                u["urgent"].as_bool().unwrap(),
                u["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("4.4.1", false, "minor"),
            ("4.4.0", false, "minor"),
            ("4.3.1", true, "patch")
        ]
    );
    assert!(updates[2]["releaseNotes"]
        .as_str()
        .unwrap()
        .ends_with("/releases/tag/v4.3.1"));
    let (_, none) = f.json("/update-check?version=4.4.1").await;
    assert_eq!(none["updatesAvailable"], Value::Array(Vec::new()));
    let (status, _) = f.json("/update-check?version=banana").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn faults_garble_empty_delay_and_exhaust() {
    let f = start();
    let releases = "/repos/mastodon/mastodon/releases";
    f.server.set_faults(ApiFaults {
        garbage_body: true,
        ..ApiFaults::default()
    });
    let garbled = f.get(releases).await;
    assert_eq!(garbled.status(), StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&garbled.bytes().await.unwrap()).is_err());

    f.server.set_faults(ApiFaults {
        empty_list: true,
        ..ApiFaults::default()
    });
    assert_eq!(f.json(releases).await.1, Value::Array(Vec::new()));
    assert_eq!(
        f.json("/update-check?version=4.3.0").await.1["updatesAvailable"],
        Value::Array(Vec::new())
    );

    f.server.set_faults(ApiFaults {
        latency: Duration::from_secs(2),
        ..ApiFaults::default()
    });
    let impatient = f
        .client
        .get(format!("{}{releases}", f.server.base_url()))
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(impatient.unwrap_err().is_timeout());

    f.server.set_faults(ApiFaults {
        rate_limit_per_hour: Some(0),
        ..ApiFaults::default()
    });
    let limited = f.get(releases).await;
    assert_eq!(limited.status(), StatusCode::FORBIDDEN);
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");

    // The knobs are also reachable over HTTP, for other processes.
    let put = f
        .client
        .put(format!("{}/_sim/faults", f.server.base_url()))
        .json(&serde_json::json!({"error_status": 502}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    assert_eq!(f.get(releases).await.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(f.server.faults().error_status, Some(502));
}
