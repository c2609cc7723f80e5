//! The GitHub-compatible API over the upstream repository, plus Mastodon's update-check
//! endpoint, served in-process on a loopback address:
//!
//! - `GET /repos/mastodon/mastodon/releases?per_page=&page=`: newest first, `Link` header
//!   (`first`/`prev`/`next`/`last`), weak `ETag` with `If-None-Match` → 304;
//! - `GET /repos/mastodon/mastodon/releases/latest` and `.../releases/tags/{tag}`;
//! - `GET /repos/mastodon/mastodon/git/ref/tags/{tag}` → the tag's commit, or 404;
//! - `GET /update-check?version=X` → `{"updatesAvailable": [...]}`;
//! - `GET`/`PUT /_sim/faults`: the fault knobs, for other processes.
//!
//! `/repos` answers carry `x-ratelimit-*` headers and 403 once the hourly budget is spent
//! (304s are free, as on GitHub). Every request reads the repository and metadata afresh.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::error::UpstreamError;
use super::releases::{self, ReleaseMeta, Version};
use super::repo::Upstream;

/// GitHub's default page size.
pub const DEFAULT_PER_PAGE: usize = 30;
/// GitHub's largest page size.
pub const MAX_PER_PAGE: usize = 100;
/// Requests per hour when no fault overrides it (GitHub's authenticated budget).
pub const DEFAULT_RATE_LIMIT: u32 = 5000;

const OWNER: &str = "mastodon";
const REPO: &str = "mastodon";

/// Knobs that make the API misbehave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiFaults {
    /// Added before every answer (for client timeout tests).
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// 200 answers carry a body that is not JSON.
    pub garbage_body: bool,
    /// The release list and update-check answer are empty.
    pub empty_list: bool,
    /// Every request is answered with this status (e.g. 502).
    pub error_status: Option<u16>,
    /// The hourly request budget instead of [`DEFAULT_RATE_LIMIT`].
    pub rate_limit_per_hour: Option<u32>,
}

/// The hourly request budget: a fixed window, as GitHub's is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    /// When the window resets (seconds since the epoch).
    pub reset: u64,
    /// Requests counted in it.
    pub used: u32,
}

impl RateWindow {
    /// The window at `now` (epoch seconds): a new one once the old has reset.
    pub fn current(self, now: u64) -> RateWindow {
        if now >= self.reset {
            RateWindow {
                reset: now + 3600,
                used: 0,
            }
        } else {
            self
        }
    }
}

struct ApiState {
    upstream: Upstream,
    base_url: String,
    faults: Mutex<ApiFaults>,
    rate: Mutex<RateWindow>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running API server; dropping it stops the server.
#[derive(Debug)]
pub struct UpstreamServer {
    base_url: String,
    state: Arc<ApiStateHandle>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Wraps the state so `UpstreamServer` can derive Debug without exposing it.
struct ApiStateHandle(Arc<ApiState>);

impl std::fmt::Debug for ApiStateHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("base_url", &self.0.base_url)
            .finish_non_exhaustive()
    }
}

impl UpstreamServer {
    /// `http://127.0.0.1:PORT`; use it as the GitHub API base and the update-check host.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Replaces the fault knobs.
    pub fn set_faults(&self, faults: ApiFaults) {
        *lock(&self.state.0.faults) = faults;
    }

    /// The current fault knobs.
    pub fn faults(&self) -> ApiFaults {
        lock(&self.state.0.faults).clone()
    }
}

impl Drop for UpstreamServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Upstream {
    /// Serves the API on `listen` (loopback only; port 0 picks one) from a runtime thread of
    /// its own, so sync and async callers alike can use it.
    ///
    /// # Errors
    /// A non-loopback address, or binding or the runtime failed.
    pub fn serve(&self, listen: SocketAddr) -> Result<UpstreamServer, UpstreamError> {
        let fail = |source| UpstreamError::Serve { listen, source };
        if !listen.ip().is_loopback() {
            return Err(fail(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the testbed only listens on loopback addresses",
            )));
        }
        let listener = std::net::TcpListener::bind(listen).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let local = listener.local_addr().map_err(fail)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(fail)?;
        let state = Arc::new(ApiState {
            upstream: self.clone(),
            base_url: format!("http://{local}"),
            faults: Mutex::new(ApiFaults::default()),
            rate: Mutex::new(RateWindow { reset: 0, used: 0 }),
        });
        let app = router(Arc::clone(&state));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("upstream-api".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            tracing::warn!(%error, "The upstream API could not listen.");
                            return;
                        }
                    };
                    let shutdown = async move {
                        let _ = stopped.await;
                    };
                    if let Err(error) = axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                    {
                        tracing::warn!(%error, "The upstream API server failed.");
                    }
                });
            })
            .map_err(fail)?;
        tracing::info!(address = %local, "Upstream API listening.");
        Ok(UpstreamServer {
            base_url: state.base_url.clone(),
            state: Arc::new(ApiStateHandle(state)),
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

type Api = State<Arc<ApiState>>;

fn router(state: Arc<ApiState>) -> Router {
    let repos = Router::new()
        .route("/repos/{owner}/{repo}/releases", get(list_releases))
        .route("/repos/{owner}/{repo}/releases/latest", get(latest_release))
        .route(
            "/repos/{owner}/{repo}/releases/tags/{tag}",
            get(release_by_tag),
        )
        .route("/repos/{owner}/{repo}/git/ref/tags/{tag}", get(tag_ref))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            rate_limit,
        ));
    Router::new()
        .merge(repos)
        .route("/update-check", get(update_check))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), faults))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .fallback(|| async { not_found() })
        .with_state(state)
}

/// Latency, forced statuses and garbage bodies, for every API route.
async fn faults(State(state): Api, request: Request, next: Next) -> Response {
    let faults = lock(&state.faults).clone();
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if let Some(code) = faults.error_status {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
        return (status, Json(json!({"message": "Server Error"}))).into_response();
    }
    let response = next.run(request).await;
    if faults.garbage_body && response.status() == StatusCode::OK {
        let (mut parts, _) = response.into_parts();
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::ETAG);
        return Response::from_parts(parts, Body::from("<html>{\"tag_name\": garbage"));
    }
    response
}

fn epoch_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// GitHub's budget: 403 once spent; 304s are not counted.
async fn rate_limit(State(state): Api, request: Request, next: Next) -> Response {
    let limit = lock(&state.faults)
        .rate_limit_per_hour
        .unwrap_or(DEFAULT_RATE_LIMIT);
    let window = {
        let mut rate = lock(&state.rate);
        *rate = rate.current(epoch_seconds());
        *rate
    };
    let mut response = if window.used >= limit {
        (
            StatusCode::FORBIDDEN,
            Json(json!({
                "message": "API rate limit exceeded for 127.0.0.1.",
                "documentation_url": "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting",
            })),
        )
            .into_response()
    } else {
        next.run(request).await
    };
    let window = {
        let mut rate = lock(&state.rate);
        if response.status() != StatusCode::NOT_MODIFIED && rate.used < limit {
            rate.used += 1;
        }
        *rate
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", limit.to_string()),
        (
            "x-ratelimit-remaining",
            limit.saturating_sub(window.used).to_string(),
        ),
        ("x-ratelimit-reset", window.reset.to_string()),
        ("x-ratelimit-used", window.used.to_string()),
        ("x-ratelimit-resource", "core".to_owned()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest",
            "status": "404",
        })),
    )
        .into_response()
}

fn server_error(error: &dyn std::error::Error) -> Response {
    tracing::warn!(%error, "The upstream API failed to read the repository.");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"message": "Server Error"})),
    )
        .into_response()
}

fn is_mastodon(owner: &str, repo: &str) -> bool {
    owner.eq_ignore_ascii_case(OWNER) && repo.eq_ignore_ascii_case(REPO)
}

/// Runs a repository read off the runtime thread.
async fn read<T: Send + 'static>(
    state: &Arc<ApiState>,
    f: impl FnOnce(&Upstream) -> Result<T, UpstreamError> + Send + 'static,
) -> Result<T, Response> {
    let upstream = state.upstream.clone();
    match tokio::task::spawn_blocking(move || f(&upstream)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(server_error(&error)),
        Err(error) => Err(server_error(&error)),
    }
}

/// A release as GitHub's REST API shows it.
pub fn release_json(base_url: &str, release: &ReleaseMeta) -> Value {
    let api = format!("{base_url}/repos/{OWNER}/{REPO}");
    json!({
        "url": format!("{api}/releases/{}", release.id),
        "assets_url": format!("{api}/releases/{}/assets", release.id),
        "html_url": releases::html_url(&release.tag_name),
        "tarball_url": format!("{api}/tarball/{}", release.tag_name),
        "zipball_url": format!("{api}/zipball/{}", release.tag_name),
        "id": release.id,
        "node_id": format!("RE_kwDOAEIyV84{}", release.id),
        "tag_name": release.tag_name,
        "target_commitish": "main",
        "name": release.name,
        "body": release.body,
        "draft": release.draft,
        "prerelease": release.prerelease,
        "created_at": release.published_at,
        "published_at": release.published_at,
        "author": {"login": "Gargron", "id": 1_029_489, "type": "User"},
        "assets": [],
    })
}

/// The `Link` header for `page` of `total` items, or none when everything fits one page.
pub fn link_header(base_url: &str, per_page: usize, page: usize, total: usize) -> Option<String> {
    let last = total.div_ceil(per_page).max(1);
    let url = |n: usize| {
        format!("<{base_url}/repos/{OWNER}/{REPO}/releases?per_page={per_page}&page={n}>")
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", url((page - 1).min(last))));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
        links.push(format!("{}; rel=\"last\"", url(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", url(1)));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

/// A positive integer query parameter; GitHub ignores a bad one, and so do we.
fn query_number(query: &HashMap<String, String>, key: &str, default: usize) -> usize {
    query
        .get(key)
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(default)
}

/// A weak ETag over the body.
pub fn etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

/// Whether an `If-None-Match` value names `tag` (weak comparison, lists and `*`).
pub fn etag_matches(if_none_match: &str, tag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    if_none_match
        .split(',')
        .any(|candidate| candidate.trim() == "*" || bare(candidate) == bare(tag))
}

/// A JSON answer with an ETag, or 304 when the client already has it.
fn json_answer(request: &HeaderMap, value: &Value, link: Option<String>) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let tag = etag(&body);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &tag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, value);
    }
    if let Some(value) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LINK, value);
    }
    response
}

async fn list_releases(
    State(state): Api,
    UrlPath((owner, repo)): UrlPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !is_mastodon(&owner, &repo) {
        return not_found();
    }
    let all = match read(&state, Upstream::releases).await {
        Ok(all) => all,
        Err(response) => return response,
    };
    let shown = if lock(&state.faults).empty_list {
        Vec::new()
    } else {
        releases::newest_first(&all)
    };
    let per_page = query_number(&query, "per_page", DEFAULT_PER_PAGE).min(MAX_PER_PAGE);
    let page = query_number(&query, "page", 1);
    let items: Vec<Value> = shown
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|r| release_json(&state.base_url, r))
        .collect();
    let link = link_header(&state.base_url, per_page, page, shown.len());
    json_answer(&headers, &Value::Array(items), link)
}

async fn latest_release(
    State(state): Api,
    UrlPath((owner, repo)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !is_mastodon(&owner, &repo) {
        return not_found();
    }
    let all = match read(&state, Upstream::releases).await {
        Ok(all) => all,
        Err(response) => return response,
    };
    // GitHub's "latest" skips pre-releases.
    let latest = releases::newest_first(&all)
        .into_iter()
        .filter(|r| !r.prerelease)
        .max_by_key(|r| Version::parse(&r.tag_name));
    match latest {
        Some(release) => json_answer(&headers, &release_json(&state.base_url, &release), None),
        None => not_found(),
    }
}

async fn release_by_tag(
    State(state): Api,
    UrlPath((owner, repo, tag)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !is_mastodon(&owner, &repo) {
        return not_found();
    }
    let all = match read(&state, Upstream::releases).await {
        Ok(all) => all,
        Err(response) => return response,
    };
    match all.iter().find(|r| r.tag_name == tag && !r.draft) {
        Some(release) => json_answer(&headers, &release_json(&state.base_url, release), None),
        None => not_found(),
    }
}

async fn tag_ref(
    State(state): Api,
    UrlPath((owner, repo, tag)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !is_mastodon(&owner, &repo) {
        return not_found();
    }
    let wanted = tag.clone();
    let commit = match read(&state, move |u| u.tag_commit(&wanted)).await {
        Ok(commit) => commit,
        Err(response) => return response,
    };
    let Some(sha) = commit else {
        return not_found();
    };
    let api = format!("{}/repos/{OWNER}/{REPO}", state.base_url);
    let value = json!({
        "ref": format!("refs/tags/{tag}"),
        "node_id": format!("REF_{tag}"),
        "url": format!("{api}/git/refs/tags/{tag}"),
        "object": {
            "sha": sha,
            "type": "commit",
            "url": format!("{api}/git/commits/{sha}"),
        },
    });
    json_answer(&headers, &value, None)
}

async fn update_check(State(state): Api, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(current) = query.get("version").and_then(|v| Version::parse(v)) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "version must be MAJOR.MINOR.PATCH"})),
        )
            .into_response();
    };
    let all = match read(&state, Upstream::releases).await {
        Ok(all) => all,
        Err(response) => return response,
    };
    let updates = if lock(&state.faults).empty_list {
        Vec::new()
    } else {
        releases::updates_available(&all, &current)
    };
    Json(json!({ "updatesAvailable": updates })).into_response()
}

async fn get_faults(State(state): Api) -> Json<ApiFaults> {
    Json(lock(&state.faults).clone())
}

async fn put_faults(State(state): Api, Json(faults): Json<ApiFaults>) -> Json<ApiFaults> {
    *lock(&state.faults) = faults.clone();
    Json(faults)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_names_next_last_and_back() {
        let base = "http://h";
        assert_eq!(link_header(base, 30, 1, 4), None);
        let first = link_header(base, 2, 1, 5).unwrap();
        assert_eq!(
            first,
            "<http://h/repos/mastodon/mastodon/releases?per_page=2&page=2>; rel=\"next\", \
             <http://h/repos/mastodon/mastodon/releases?per_page=2&page=3>; rel=\"last\""
        );
        let last = link_header(base, 2, 3, 5).unwrap();
        assert!(last.contains("page=2>; rel=\"prev\""));
        assert!(last.contains("page=1>; rel=\"first\""));
        assert!(!last.contains("rel=\"next\""));
    }

    #[test]
    fn etags_match_weakly_in_lists() {
        let tag = etag(b"[]");
        assert!(tag.starts_with("W/\""));
        assert!(etag_matches(&tag, &tag));
        assert!(etag_matches(tag.trim_start_matches("W/"), &tag));
        assert!(etag_matches(&format!("\"x\", {tag}"), &tag));
        assert!(etag_matches("*", &tag));
        assert!(!etag_matches("W/\"other\"", &tag));
    }

    #[test]
    fn rate_window_resets_after_an_hour() {
        let window = RateWindow { reset: 0, used: 0 }.current(100);
        assert_eq!(
            window,
            RateWindow {
                reset: 3700,
                used: 0
            }
        );
        let used = RateWindow {
            reset: 3700,
            used: 9,
        };
        assert_eq!(used.current(3699), used);
        assert_eq!(used.current(3700).used, 0);
    }

    #[test]
    fn faults_read_from_partial_json() {
        let faults: ApiFaults = serde_json::from_str(r#"{"latency":"2s"}"#).unwrap();
        assert_eq!(faults.latency, Duration::from_secs(2));
        assert!(!faults.garbage_body);
    }
}
