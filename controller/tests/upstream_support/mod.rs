//! A fake GitHub (releases, tag refs, annotated tags) and a fake Mastodon update-check API for
//! the upstream clients' tests: an axum server on loopback that pages with `Link` headers,
//! answers `If-None-Match` with 304, sends rate-limit headers and injects faults (statuses,
//! garbage bodies, delays). Every request is recorded.

#![allow(dead_code)] // Each test binary uses a different part of the support code.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{
    body::Body,
    extract::{Request, State},
    http::header,
    response::Response,
    Router,
};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use vmctl_controller::retry::Backoff;
use vmctl_controller::upstream::{
    GithubClient, GithubConfig, GithubToken, HttpSettings, UpdateCheckClient, UpdateCheckConfig,
};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Path and query.
    pub uri: String,
    pub authorization: Option<String>,
    pub if_none_match: Option<String>,
    /// Unix seconds when it arrived.
    pub at: u64,
    /// The status answered.
    pub status: u16,
}

/// A canned misbehaviour for requests whose path starts with `path`, used `times` times.
#[derive(Debug, Clone)]
pub struct Fault {
    pub path: String,
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
    pub times: u32,
}

impl Fault {
    pub fn status(path: &str, status: u16, times: u32) -> Self {
        Self {
            path: path.to_owned(),
            status,
            body: json!({"message": "fault"}).to_string(),
            headers: Vec::new(),
            delay: Duration::ZERO,
            times,
        }
    }

    pub fn body(path: &str, body: &str) -> Self {
        Self {
            body: body.to_owned(),
            ..Self::status(path, 200, 1)
        }
    }

    pub fn delay(path: &str, delay: Duration, times: u32) -> Self {
        Self {
            delay,
            ..Self::status(path, 200, times)
        }
    }
}

#[derive(Default)]
struct Shared {
    releases: Vec<Value>,
    /// Bumped on every change to `releases`: part of each page's ETag.
    generation: u64,
    /// `tag -> {"sha", "type"}` for `git/ref/tags/{tag}`.
    refs: HashMap<String, Value>,
    /// `sha -> {"sha", "type"}` for `git/tags/{sha}`.
    tag_objects: HashMap<String, Value>,
    /// `version -> answer` for `update-check`.
    update_check: Value,
    faults: VecDeque<Fault>,
    /// Sent on every answer when set: (remaining, reset).
    rate_limit: Option<(u64, u64)>,
    /// Applied after the next answer (so the answer carrying it still succeeds).
    rate_limit_after: Option<(u64, u64)>,
    requests: Vec<Recorded>,
}

/// A running fake. Dropping it stops the server.
pub struct FakeGithub {
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
    pub url: String,
}

pub const OWNER: &str = "mastodon";
pub const REPO: &str = "mastodon";
pub const TOKEN: &str = "ghp_test_secret";

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A GitHub-shaped release.
pub fn release(tag: &str, published_at: &str, body: &str) -> Value {
    json!({
        "url": format!("https://api.github.com/repos/mastodon/mastodon/releases/{tag}"),
        "id": 1,
        "tag_name": tag,
        "target_commitish": "main",
        "name": tag,
        "body": body,
        "draft": false,
        "prerelease": false,
        "created_at": published_at,
        "published_at": published_at,
        "assets": [],
    })
}

/// Test settings: short timeouts and a fast backoff.
pub fn fast_http() -> HttpSettings {
    HttpSettings {
        request_timeout: Duration::from_secs(5),
        call_timeout: Duration::from_secs(20),
        retry: Backoff::try_new(Duration::from_millis(10), Duration::from_millis(50), 0.0).unwrap(),
        max_attempts: 4,
        max_rate_limit_wait: Duration::from_secs(5),
    }
}

impl FakeGithub {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(Shared {
            update_check: json!({"updatesAvailable": []}),
            ..Shared::default()
        }));
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { shared, task, url }
    }

    pub fn config(&self) -> GithubConfig {
        GithubConfig {
            base_url: self.url.clone(),
            owner: OWNER.into(),
            repo: REPO.into(),
            token: GithubToken::new(TOKEN),
            http: fast_http(),
        }
    }

    pub fn client(&self) -> GithubClient {
        GithubClient::new(self.config()).unwrap()
    }

    pub fn update_check_client(&self) -> UpdateCheckClient {
        UpdateCheckClient::new(UpdateCheckConfig {
            base_url: self.url.clone(),
            http: fast_http(),
        })
        .unwrap()
    }

    pub fn set_releases(&self, releases: Vec<Value>) {
        let mut s = self.shared.lock().unwrap();
        s.releases = releases;
        s.generation += 1;
    }

    pub fn add_ref(&self, tag: &str, sha: &str, kind: &str) {
        self.shared
            .lock()
            .unwrap()
            .refs
            .insert(tag.into(), json!({"sha": sha, "type": kind}));
    }

    pub fn add_tag_object(&self, sha: &str, target: &str, kind: &str) {
        self.shared
            .lock()
            .unwrap()
            .tag_objects
            .insert(sha.into(), json!({"sha": target, "type": kind}));
    }

    pub fn set_update_check(&self, answer: Value) {
        self.shared.lock().unwrap().update_check = answer;
    }

    pub fn fault(&self, fault: Fault) {
        self.shared.lock().unwrap().faults.push_back(fault);
    }

    pub fn set_rate_limit(&self, remaining: u64, reset: u64) {
        self.shared.lock().unwrap().rate_limit = Some((remaining, reset));
    }

    /// The next answer carries `(remaining, reset)`; later ones are back to plenty left.
    pub fn exhaust_rate_limit_after_next(&self, reset: u64) {
        self.shared.lock().unwrap().rate_limit_after = Some((0, reset));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().unwrap().requests.clone()
    }

    pub fn count(&self, path_prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.uri.starts_with(path_prefix))
            .count()
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

fn header_value(req: &Request, name: header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn handle(State(shared): State<Arc<Mutex<Shared>>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let authorization = header_value(&req, header::AUTHORIZATION);
    let if_none_match = header_value(&req, header::IF_NONE_MATCH);

    // Like GitHub: a used-up limit refuses requests until its reset, then starts afresh.
    let exhausted = {
        let mut s = shared.lock().unwrap();
        match s.rate_limit {
            Some((0, reset)) if reset <= unix_now() => {
                s.rate_limit = Some((5000, unix_now() + 3600));
                false
            }
            Some((0, _)) => true,
            _ => false,
        }
    };
    let fault = if exhausted {
        Some(Fault {
            body: json!({"message": "API rate limit exceeded"}).to_string(),
            ..Fault::status("/", 403, 1)
        })
    } else {
        let mut s = shared.lock().unwrap();
        let hit = s.faults.iter().position(|f| path.starts_with(&f.path));
        hit.map(|i| {
            let f = &mut s.faults[i];
            f.times -= 1;
            let fault = f.clone();
            if f.times == 0 {
                s.faults.remove(i);
            }
            fault
        })
    };
    let (status, body, mut headers) = match &fault {
        Some(f) => {
            if !f.delay.is_zero() {
                tokio::time::sleep(f.delay).await;
            }
            (f.status, f.body.clone(), f.headers.clone())
        }
        None => answer(&shared, &path, &query, &host, if_none_match.as_deref()),
    };

    let mut s = shared.lock().unwrap();
    if let Some((remaining, reset)) = s.rate_limit {
        headers.push(("x-ratelimit-remaining", remaining.to_string()));
        headers.push(("x-ratelimit-reset", reset.to_string()));
    }
    if let Some(after) = s.rate_limit_after.take() {
        s.rate_limit = Some(after);
        headers.retain(|(k, _)| !k.starts_with("x-ratelimit"));
        headers.push(("x-ratelimit-remaining", after.0.to_string()));
        headers.push(("x-ratelimit-reset", after.1.to_string()));
    }
    s.requests.push(Recorded {
        uri: if query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{query}")
        },
        authorization,
        if_none_match,
        at: unix_now(),
        status,
    });
    drop(s);
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        response = response.header(k, v);
    }
    response.body(Body::from(body)).unwrap()
}

type Answer = (u16, String, Vec<(&'static str, String)>);

fn answer(
    shared: &Arc<Mutex<Shared>>,
    path: &str,
    query: &str,
    host: &str,
    if_none_match: Option<&str>,
) -> Answer {
    let s = shared.lock().unwrap();
    let not_found = || (404, json!({"message": "Not Found"}).to_string(), vec![]);
    let repo = format!("/repos/{OWNER}/{REPO}");
    // GitHub's next links name the repository by id; serve both forms.
    if path == format!("{repo}/releases") || path == "/repositories/42/releases" {
        let per_page: usize = query_param(query, "per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(30);
        let page: usize = query_param(query, "page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let etag = format!("W/\"{}-{page}\"", s.generation);
        if if_none_match == Some(etag.as_str()) {
            return (304, String::new(), vec![("etag", etag)]);
        }
        let items: Vec<&Value> = s
            .releases
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect();
        let mut headers = vec![("etag", etag)];
        if page * per_page < s.releases.len() {
            headers.push((
                "link",
                format!(
                    "<http://{host}/repositories/42/releases?per_page={per_page}&page={}>; rel=\"next\", <http://{host}/repositories/42/releases?per_page={per_page}&page=99>; rel=\"last\"",
                    page + 1
                ),
            ));
        }
        return (200, serde_json::to_string(&items).unwrap(), headers);
    }
    if let Some(tag) = path.strip_prefix(&format!("{repo}/git/ref/tags/")) {
        return match s.refs.get(tag) {
            Some(object) => (
                200,
                json!({"ref": format!("refs/tags/{tag}"), "object": object}).to_string(),
                vec![],
            ),
            None => not_found(),
        };
    }
    if let Some(sha) = path.strip_prefix(&format!("{repo}/git/tags/")) {
        return match s.tag_objects.get(sha) {
            Some(object) => (
                200,
                json!({"sha": sha, "tag": "v", "object": object}).to_string(),
                vec![],
            ),
            None => not_found(),
        };
    }
    if path == "/update-check" && query_param(query, "version").is_some() {
        return (200, s.update_check.to_string(), vec![]);
    }
    not_found()
}
