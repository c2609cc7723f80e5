//! The HTTP edge of the upstream clients: one GET with a per-request timeout, retried with
//! `crate::retry` on 5xx and timeouts within a per-call deadline, a wait when GitHub's rate
//! limit is used up, `ETag` / `If-None-Match` reuse of unchanged answers, and a bound on the
//! body size.
//!
//! Nothing here knows what a release is; `github.rs` and `update_check.rs` say what to fetch
//! and what the answer means.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{ACCEPT, ETAG, IF_NONE_MATCH, LINK};
use reqwest::{StatusCode, Url};

use crate::retry::{retry, Backoff, Deadline, Retry, RetryError};

use super::error::UpstreamError;
use super::headers::{next_link, rate_limited_wait, RateLimit};
use super::token::GithubToken;

/// Largest answer read. A page of 100 GitHub releases with their notes is a few hundred KiB.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// The REST API version vmctld was written against.
pub const GITHUB_API_VERSION: &str = "2022-11-28";

/// Settings shared by the upstream clients.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Time limit for one HTTP exchange.
    pub request_timeout: Duration,
    /// Time limit for one call including its retries and rate-limit waits.
    pub call_timeout: Duration,
    /// Backoff between retries of one call.
    pub retry: Backoff,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The longest wait for a used-up rate limit to reset; a longer one fails the call.
    pub max_rate_limit_wait: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(120),
            // 500 ms doubling to 15 s: a feed check is never urgent to the second.
            retry: Backoff::new_unchecked(Duration::from_millis(500), Duration::from_secs(15), 0.2),
            max_attempts: 4,
            max_rate_limit_wait: Duration::from_secs(60),
        }
    }
}

/// A successful answer: the body, and the `rel="next"` link if any.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub next: Option<String>,
}

#[derive(Debug)]
struct Cached {
    etag: String,
    answer: Fetched,
}

#[derive(Debug, Default)]
struct Shared {
    /// Answers with an `ETag`, by URL; a 304 reuses them.
    cache: HashMap<Url, Cached>,
    /// The last rate limit the server reported.
    limit: Option<RateLimit>,
}

/// One configured HTTP client. Cheap to clone; clones share the cache and the rate limit.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    token: Option<GithubToken>,
    accept: &'static str,
    settings: HttpSettings,
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("token", &self.token)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned()
}

impl Http {
    /// Builds the client. `accept` is the media type asked for.
    pub fn new(
        settings: HttpSettings,
        token: Option<GithubToken>,
        accept: &'static str,
    ) -> Result<Self, UpstreamError> {
        let client = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .user_agent(concat!("vmctld/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| UpstreamError::Client { source })?;
        Ok(Self {
            client,
            token,
            accept,
            settings,
            shared: Arc::default(),
        })
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        // The state is a cache and a hint; one left half-written by a panic is still usable.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// GETs `url`, retrying as described in the module docs. `what` names the object for a
    /// 404 (`tag v4.3.1`).
    pub async fn get(&self, url: &Url, what: &str) -> Result<Fetched, UpstreamError> {
        let op = format!("GET {}", url.path());
        let deadline = Deadline::after(op.clone(), self.settings.call_timeout);
        let max = self.settings.max_attempts.max(1);
        let op = &op;
        let outcome = retry(self.settings.retry, &deadline, |attempt| async move {
            self.send_once(url, op, what).await.map_err(|e| match e {
                Retry::Transient(e) | Retry::After(e, _) if attempt >= max => Retry::Permanent(e),
                other => other,
            })
        })
        .await;
        outcome.map_err(|e| match e {
            RetryError::Permanent { error, .. } => error,
            RetryError::TimedOut { deadline, last, .. } => UpstreamError::Timeout {
                what: deadline.what,
                after: deadline.after,
                last: last.map(Box::new),
            },
        })
    }

    /// Waits out a used-up rate limit, or refuses when the reset is too far away.
    async fn rate_limit_gate(&self, op: &str) -> Result<(), UpstreamError> {
        let Some(limit) = self.shared().limit else {
            return Ok(());
        };
        let wait = limit.wait(unix_now());
        if wait.is_zero() {
            return Ok(());
        }
        if wait > self.settings.max_rate_limit_wait {
            return Err(self.rate_limited(op, Some(limit.reset)));
        }
        tracing::info!(op, wait = %humantime::format_duration(wait), "Waiting for the upstream rate limit to reset");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn rate_limited(&self, op: &str, reset: Option<u64>) -> UpstreamError {
        UpstreamError::RateLimited {
            op: op.to_owned(),
            reset: reset
                .and_then(|r| i64::try_from(r).ok())
                .and_then(|r| chrono::DateTime::from_timestamp(r, 0)),
            max_wait: self.settings.max_rate_limit_wait,
        }
    }

    async fn send_once(
        &self,
        url: &Url,
        op: &str,
        what: &str,
    ) -> Result<Fetched, Retry<UpstreamError>> {
        self.rate_limit_gate(op).await.map_err(Retry::Permanent)?;
        let mut request = self.client.get(url.clone()).header(ACCEPT, self.accept);
        if self.accept.starts_with("application/vnd.github") {
            request = request.header("X-GitHub-Api-Version", GITHUB_API_VERSION);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let etag = self.shared().cache.get(url).map(|c| c.etag.clone());
        if let Some(etag) = &etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                UpstreamError::RequestTimeout {
                    op: op.to_owned(),
                    after: self.settings.request_timeout,
                }
            } else {
                UpstreamError::Transport {
                    op: op.to_owned(),
                    source,
                }
            }
        };
        let mut response = request
            .send()
            .await
            .map_err(|e| Retry::Transient(transport(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(limit) = RateLimit::parse(&headers) {
            self.shared().limit = Some(limit);
        }
        if status == StatusCode::NOT_MODIFIED {
            if let Some(cached) = self.shared().cache.get(url) {
                tracing::debug!(op, "Upstream answer unchanged (304)");
                return Ok(cached.answer.clone());
            }
            // A 304 to a request without If-None-Match: the server is confused.
            return Err(Retry::Permanent(UpstreamError::Rejected {
                op: op.to_owned(),
                status: 304,
                message: "not modified, but nothing is cached".to_owned(),
            }));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Retry::Transient(transport(e)))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Retry::Permanent(UpstreamError::TooLarge {
                    op: op.to_owned(),
                    limit: MAX_BODY_BYTES,
                }));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            let next = headers
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let answer = Fetched { body, next };
            if let Some(tag) = headers.get(ETAG).and_then(|v| v.to_str().ok()) {
                self.shared().cache.insert(
                    url.clone(),
                    Cached {
                        etag: tag.to_owned(),
                        answer: answer.clone(),
                    },
                );
            }
            return Ok(answer);
        }
        Err(self.refusal(op, what, status, &headers, &body))
    }

    /// Classifies a non-2xx answer.
    fn refusal(
        &self,
        op: &str,
        what: &str,
        status: StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Retry<UpstreamError> {
        let code = status.as_u16();
        if matches!(code, 403 | 429) {
            if let Some(wait) = rate_limited_wait(headers, unix_now()) {
                if wait > self.settings.max_rate_limit_wait {
                    let reset = RateLimit::parse(headers).map(|l| l.reset);
                    return Retry::Permanent(self.rate_limited(op, reset));
                }
                return Retry::After(self.rate_limited(op, None), wait);
            }
        }
        let message = snippet(body);
        match code {
            401 => Retry::Permanent(UpstreamError::Unauthorized { op: op.to_owned() }),
            404 => Retry::Permanent(UpstreamError::NotFound {
                what: what.to_owned(),
                op: op.to_owned(),
            }),
            500..=599 => Retry::Transient(UpstreamError::Server {
                op: op.to_owned(),
                status: code,
                message,
            }),
            _ => Retry::Permanent(UpstreamError::Rejected {
                op: op.to_owned(),
                status: code,
                message,
            }),
        }
    }
}
